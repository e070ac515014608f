import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { encrypt } from 'unixcrypt';
import { requireTool } from '../../test/helpers/tools.js';
import { sha512Crypt, verifySha512Crypt } from './sha-crypt.js';
import { SCHED_AT, SHA512_IV, SHA512_K, sha512Wasm } from './sha512-wasm.js';

/** Drepper's test vectors for SHA-512-crypt (the specification's own table). */
const SPEC: readonly [string, string, string][] = [
  ['$6$saltstring', 'Hello world!', '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1'],
  ['$6$rounds=10000$saltstringsaltstring', 'Hello world!',
    '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.'],
  ['$6$rounds=5000$toolongsaltstring', 'This is just a test',
    '$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0'],
  ['$6$rounds=1400$anotherlongsaltstring', 'a very much longer text to encrypt.  This one even stretches over morethan one line.',
    '$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1'],
  ['$6$rounds=77777$short', 'we have a short salt string but not a short password',
    '$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0'],
  ['$6$rounds=123456$asaltof16chars..', 'a short string',
    '$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1'],
  // glibc clamps rounds below 1000 (libxcrypt rejects them instead).
  ['$6$rounds=10$roundstoolow', 'the minimum number is still observed',
    '$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.'],
];

/** Pads `len` message bytes at `msg` in place (0x80, zeros, 128-bit big-endian bit length), as
 *  the module's crypt function does for its rounds; returns the block count. */
function padSha512(mem: Uint8Array, msg: number, len: number): number {
  const blocks = Math.floor((len + 16) / 128) + 1;
  const end = msg + blocks * 128;
  mem[msg + len] = 0x80;
  mem.fill(0, msg + len + 1, end - 4);
  new DataView(mem.buffer, mem.byteOffset).setUint32(end - 4, len * 8);
  return blocks;
}

const SALT_CHARS = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function randomPassword(len: number): string {
  const alphabet = `${SALT_CHARS} !#%&()*+,-:;<=>?@[]^_{|}~\`'"äöüß€`;
  let s = '';
  for (let i = 0; i < len; i++) s += alphabet[crypto.randomInt(alphabet.length)];
  return s;
}

describe('auth: SHA-512 in wasm and SHA-512-crypt', () => {
  it('the constants derived from their definition are the standard ones', () => {
    expect(SHA512_K).to.have.length(80);
    expect(SHA512_K[0]!.toString(16)).to.equal('428a2f98d728ae22');
    expect(SHA512_K[79]!.toString(16)).to.equal('6c44198c4a475817');
    expect(SHA512_IV.map((v) => v.toString(16).padStart(16, '0'))).to.deep.equal([
      '6a09e667f3bcc908', 'bb67ae8584caa73b', '3c6ef372fe94f82b', 'a54ff53a5f1d36f1',
      '510e527fade682d1', '9b05688c2b3e6c1f', '1f83d9abfb41bd6b', '5be0cd19137e2179',
    ]);
  });

  it('digest equals node:crypto SHA-512 for every length across the block boundaries, and random long inputs', () => {
    const w = sha512Wasm();
    expect(w, 'wasm SIMD is available on Node 20').to.not.equal(null);
    const lengths = [...Array.from({ length: 300 }, (_, i) => i), 1000, 4096, 20_000 + crypto.randomInt(10_000)];
    for (const len of lengths) {
      const data = crypto.randomBytes(len);
      w!.mem.set(data, 4096);
      w!.digest(4096, padSha512(w!.mem, 4096, len), 64);
      expect(Buffer.from(w!.mem.subarray(64, 128)).toString('hex'), `length ${len}`).to.equal(crypto.createHash('sha512').update(data).digest('hex'));
    }
  });

  it('reproduces the specification\'s test vectors (salt cut at 16, rounds clamped)', () => {
    for (const [setting, password, want] of SPEC) expect(sha512Crypt(password, setting), setting).to.equal(want);
  });

  it('equals openssl passwd -6 for random passwords and salts, including 64- and 128-byte passwords', function () {
    requireTool(this, 'openssl', 'openssl');
    const cases = [...[0, 1, 7, 8, 15, 16, 63, 64, 65, 111, 112, 127, 128, 200].map((n) => 'p'.repeat(n)),
      ...Array.from({ length: 12 }, () => randomPassword(1 + crypto.randomInt(90)))].filter((p) => p.length > 0); // openssl reads no empty line
    for (const password of cases) {
      const salt = Array.from({ length: 1 + crypto.randomInt(16) }, () => SALT_CHARS[crypto.randomInt(64)]).join('');
      const want = execFileSync('openssl', ['passwd', '-6', '-salt', salt, '-stdin'], { input: `${password}\n` }).toString().trim();
      expect(sha512Crypt(password, `$6$${salt}`), `${JSON.stringify(password)} / ${salt}`).to.equal(want);
    }
  });

  it('agrees with unixcrypt (what earlier versions used) except where unixcrypt departs from glibc: passwords of 64·k bytes', () => {
    for (const len of [1, 5, 20, 63, 65, 100, 127, 129]) {
      const password = randomPassword(len).replace(/[^\x20-\x7e]/g, 'x');
      for (const setting of ['$6$abcdefgh', '$6$rounds=1000$Zz09./', '$6$rounds=7777$0123456789abcdef']) {
        expect(sha512Crypt(password, setting), `${len} ${setting}`).to.equal(encrypt(password, setting));
      }
    }
    expect(sha512Crypt('x'.repeat(64), '$6$ab')).to.not.equal(encrypt('x'.repeat(64), '$6$ab'));
  });

  it('verify: the right password only, the whole string compared', () => {
    const hash = sha512Crypt('correct horse', '$6$rounds=2000$saltysalt')!;
    expect(verifySha512Crypt('correct horse', hash)).to.equal(true);
    expect(verifySha512Crypt('correct hors', hash)).to.equal(false);
    expect(verifySha512Crypt('correct horse ', hash)).to.equal(false);
    const last = hash.at(-1) === 'a' ? 'b' : 'a';
    expect(verifySha512Crypt('correct horse', hash.slice(0, -1) + last)).to.equal(false);
    expect(verifySha512Crypt('correct horse', hash.slice(0, -1))).to.equal(false);
    expect(verifySha512Crypt('correct horse', hash.replace('rounds=2000', 'rounds=2001'))).to.equal(false);
  });

  it('leaves no password-derived bytes in the module memory', () => {
    const w = sha512Wasm()!;
    sha512Crypt('a password that must not linger', '$6$saltsalt');
    expect(w.mem.subarray(0, 4096).every((b) => b === 0)).to.equal(true);
    expect(w.mem.subarray(SCHED_AT).every((b) => b === 0), 'the message schedule').to.equal(true);
  });
});

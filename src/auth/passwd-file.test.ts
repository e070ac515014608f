/** passwd-file: parsing, scrypt verification, reload on change, atomic locked edits. */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ConfigError } from '../errors.js';
import { addUser, deleteUser, hashPassword, listUsers, parsePasswdFile, PasswdFile, setPassword, validateUsername } from './passwd-file.js';
import { parseScrypt } from './scrypt.js';

const ctx = { remoteAddress: '127.0.0.1', secure: true };

describe('auth/passwd-file', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'popspool-passwd-'));
    file = join(dir, 'users');
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('validateUsername keeps names inside a path template', () => {
    for (const ok of ['alice', 'a', 'bob.smith', 'x_y+z-1', 'A'.repeat(64)]) expect(validateUsername(ok), ok).to.equal(true);
    for (const bad of ['', '.hidden', '../etc', 'a..b', 'a/b', 'a b', 'a:b', '-x', 'A'.repeat(65), 'é', 'a\0']) expect(validateUsername(bad), bad).to.equal(false);
  });

  it('hashPassword writes the documented {SCRYPT} encoding', async () => {
    const h = await hashPassword('wonderland');
    expect(h).to.match(/^\{SCRYPT\}N=16384,r=8,p=1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    expect(parseScrypt(h.slice(8))).to.not.equal(undefined);
    expect(await hashPassword('wonderland')).to.not.equal(h); // fresh salt
  });

  it('verifies scrypt and plain entries; unknown users and wrong passwords fail', async () => {
    await writeFile(file, `# demo\n\nalice:${await hashPassword('wonderland')}:1000:1000::/home/alice::\nbob:{PLAIN}builder\r\n`);
    const pf = new PasswdFile(file);
    await pf.load();
    expect(await pf.verify('alice', 'wonderland', ctx)).to.equal(true);
    expect(await pf.verify('alice', 'Wonderland', ctx)).to.equal(false);
    expect(await pf.verify('bob', 'builder', ctx)).to.equal(true);
    expect(await pf.verify('bob', 'builde', ctx)).to.equal(false);
    expect(await pf.verify('nobody', 'wonderland', ctx)).to.equal(false);
    expect(await pf.verify('../alice', 'wonderland', ctx)).to.equal(false);
  });

  it('remembers a successful login (one hash per TTL), never a failure, and forgets on reload', async () => {
    await writeFile(file, `alice:${await hashPassword('wonderland')}\n`);
    const pf = new PasswdFile(file);
    await pf.load();
    const hashes = () => pf.hashChecks.SCRYPT;
    expect(await pf.verify('alice', 'wonderland', ctx)).to.equal(true);
    expect(await pf.verify('alice', 'wonderland', ctx)).to.equal(true);
    expect(hashes()).to.equal(1);
    expect(await pf.verify('alice', 'wrong', ctx)).to.equal(false);
    expect(await pf.verify('alice', 'wrong', ctx)).to.equal(false);
    expect(await pf.verify('mallory', 'wonderland', ctx)).to.equal(false);
    expect(hashes()).to.equal(4);
    await setPassword(file, 'alice', 'new password');
    expect(await pf.verify('alice', 'wonderland', ctx)).to.equal(false);
    expect(await pf.verify('alice', 'new password', ctx)).to.equal(true);
    expect(hashes()).to.equal(6);
  });

  it('a file of {PLAIN} entries costs no hash for anyone', async () => {
    await writeFile(file, 'bob:{PLAIN}builder\n');
    const pf = new PasswdFile(file);
    await pf.load();
    expect(await pf.verify('bob', 'builder', ctx)).to.equal(true);
    expect(await pf.verify('bob', 'wrong', ctx)).to.equal(false);
    expect(await pf.verify('nobody', 'builder', ctx)).to.equal(false);
    expect(Object.values(pf.hashChecks).reduce((a, b) => a + b, 0)).to.equal(0);
  });

  it('refuses unsupported schemes, bad names, duplicates and malformed hashes at load, naming the line', () => {
    const bad: [string, RegExp][] = [
      ['alice:{ARGON2ID}$argon2id$v=19$x', /users:1: unsupported scheme ARGON2ID/],
      ['alice:{SHA512-CRYPT}$6$x$y', /users:1: unsupported or malformed crypt hash/],
      ['alice:$y$j9T$abc$def', /users:1: unsupported or malformed crypt hash/],
      [`alice:{SHA512-CRYPT}$6$rounds=900000$salt$${'a'.repeat(86)}`, /unsupported or malformed crypt hash/],
      [`alice:{BLF-CRYPT}$2y$31$${'a'.repeat(53)}`, /unsupported or malformed crypt hash/],
      [`alice:{SHA256-CRYPT}$6$salt$${'a'.repeat(86)}`, /\{SHA256-CRYPT\} holds a SHA512-CRYPT hash/],
      ['# c\nalice:nohash', /users:2: password has no \{SCHEME\}/],
      ['../x:{PLAIN}a', /invalid user name/],
      ['a:{PLAIN}x\na:{PLAIN}y', /duplicate user/],
      ['a:{SCRYPT}N=3,r=8,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==', /malformed \{SCRYPT\}/],
      ['a:{SCRYPT}N=1073741824,r=8,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==', /malformed \{SCRYPT\}/],
      ['justaname', /expected user/],
    ];
    for (const [text, re] of bad) expect(() => parsePasswdFile(text, 'users'), text).to.throw(ConfigError, re);
  });

  it('reloads when the file changes, keeps the old users when the new file is broken', async () => {
    await writeFile(file, 'alice:{PLAIN}one\n');
    const pf = new PasswdFile(file);
    await pf.load();
    expect(await pf.verify('alice', 'one', ctx)).to.equal(true);
    await setPassword(file, 'alice', 'two');
    expect(await pf.verify('alice', 'one', ctx)).to.equal(false);
    expect(await pf.verify('alice', 'two', ctx)).to.equal(true);
    await writeFile(file, 'alice:{MD5}broken-and-longer\n');
    expect(await pf.verify('alice', 'two', ctx)).to.equal(true);
  });

  it('addUser / setPassword / deleteUser / listUsers edit atomically with mode 0600', async () => {
    await writeFile(file, '# keep this comment\nbob:{PLAIN}builder:1000:1000::/home/bob::\n', { mode: 0o644 });
    await addUser(file, 'alice', 'wonderland');
    let dup: unknown;
    try {
      await addUser(file, 'alice', 'x');
    } catch (e) {
      dup = e;
    }
    expect(dup).to.be.instanceOf(ConfigError);
    await setPassword(file, 'bob', 'new pass');
    expect(await listUsers(file)).to.deep.equal(['bob', 'alice']);
    const text = await readFile(file, 'utf8');
    expect(text).to.match(/^# keep this comment\nbob:\{SCRYPT\}[^:]+:1000:1000::\/home\/bob::\nalice:\{SCRYPT\}/);
    expect((await stat(file)).mode & 0o777).to.equal(0o600);
    const pf = new PasswdFile(file);
    await pf.load();
    expect(await pf.verify('bob', 'new pass', ctx)).to.equal(true);
    await deleteUser(file, 'bob');
    expect(await listUsers(file)).to.deep.equal(['alice']);
    let thrown: unknown;
    try {
      await deleteUser(file, 'bob');
    } catch (e) {
      thrown = e;
    }
    expect(thrown).to.be.instanceOf(ConfigError);
    try {
      await addUser(file, 'x/y', 'p');
      expect.fail('accepted a bad name');
    } catch (e) {
      expect(e).to.be.instanceOf(ConfigError);
    }
  });

  it('concurrent edits from several processes lose nothing', async function () {
    this.timeout(60000);
    const mod = resolve('dist/src/auth/passwd-file.js');
    const script = `import(${JSON.stringify(mod)}).then(async (m) => { for (const u of process.argv.slice(1)) await m.addUser(${JSON.stringify(file)}, u, 'pw-' + u); })`;
    const run = promisify(execFile);
    const names = (p: number) => [0, 1, 2].map((i) => `p${p}u${i}`);
    await Promise.all([0, 1, 2, 3].map((p) => run(process.execPath, ['-e', script, ...names(p)])));
    const users = await listUsers(file);
    expect(users.sort()).to.deep.equal([0, 1, 2, 3].flatMap(names).sort());
  });
});

// Tests for the scan cache: real spool files and descriptors in a temp dir, real cache files,
// hostile edits of the cache (with recomputed checksums) that must all end in a miss.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import lockfile from 'proper-lockfile';
import { msum } from '../mbox/msum.js';
import type { ScannedMessage, ScanResult } from '../mbox/types.js';
import { backgroundSettled, gate } from './background.js';
import { ScanCache, stampOf, type CacheLookup, type SpoolStamp } from './cache.js';

// The file layout (see the comment atop cache.ts) for the 5-message cache built in beforeEach.
const HEADER_SIZE = 128;
const N = 5;
const F64_AT = HEADER_SIZE; // N rows of [fromOffset, end, size]
const U32_AT = F64_AT + N * 24; // N rows of [fromLen, headerLen, bodyLines, statusRel, statusLength, crc]
const U8_AT = U32_AT + N * 24 + N * 2; // N UIDL lengths (after N u16 status lengths)
const STRINGS_AT = U8_AT + N;

/** Builds mbox text for messages [first, first + n) and the scan a correct scanner returns. */
function buildSpool(n: number, first = 0, base = 0): { text: string; messages: ScannedMessage[] } {
  const parts: string[] = [];
  const messages: ScannedMessage[] = [];
  let off = base;
  for (let i = first; i < first + n; i++) {
    const fromLine = `From sender${i}@example.org Mon Jan  1 00:00:00 2024\n`;
    const subject = `Subject: message ${i}\n`;
    const statusLine = i % 3 === 0 ? '' : i % 3 === 1 ? 'Status: RO\n' : 'Status: O\n';
    const body = `line one of ${i}\n.dot line\n`;
    const msg = fromLine + subject + statusLine + '\n' + body;
    const start = off + fromLine.length;
    const bodyStart = start + subject.length + statusLine.length + 1;
    const end = bodyStart + body.length;
    const content = msg.slice(fromLine.length);
    messages.push({
      fromOffset: off,
      start,
      bodyStart,
      end,
      size: content.length + (content.match(/\n/g)?.length ?? 0),
      bodyLines: 2,
      uidlBase: createHash('md5').update(`uid${i}`).digest('hex'),
      status: statusLine === '' ? '' : statusLine.slice(8, -1),
      statusOffset: statusLine === '' ? -1 : start + subject.length,
      statusLength: statusLine.length,
      sum: msum(Buffer.from(msg, 'latin1')),
    });
    parts.push(msg + '\n');
    off += msg.length + 1;
  }
  return { text: parts.join(''), messages };
}

/** Recomputes the whole-file crc32 after a deliberate edit, so validation (not the checksum) is tested. */
function fixCrc(buf: Buffer): void {
  buf.writeUInt32LE(crc32(buf.subarray(HEADER_SIZE), crc32(buf.subarray(0, 124))), 124);
}

function expectMiss(r: CacheLookup, reason?: RegExp): void {
  expect(r.kind, JSON.stringify(r.kind === 'miss' ? r : r.kind)).to.equal('miss');
  if (reason && r.kind === 'miss') expect(r.reason).to.match(reason);
}

describe('spool/cache', function () {
  let dir: string;
  let spoolPath: string;
  let fd: number;
  let cache: ScanCache;
  let scan: ScanResult;
  const fds: number[] = [];

  const stamp = (f = fd): SpoolStamp => stampOf(fs.fstatSync(f, { bigint: true }));
  const open = (p: string): number => {
    const f = fs.openSync(p, 'r');
    fds.push(f);
    return f;
  };

  beforeEach(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-cache-'));
    spoolPath = path.join(dir, 'spool');
    const { text, messages } = buildSpool(N);
    fs.writeFileSync(spoolPath, text);
    fd = open(spoolPath);
    cache = new ScanCache(path.join(dir, 'cache'));
    scan = { messages, scanEnd: text.length, bytesRead: text.length };
    await cache.store('alice', fd, stamp(), scan);
  });

  afterEach(function () {
    for (const f of fds.splice(0)) fs.closeSync(f);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('hits on an unchanged spool without reading it, and writes private files', async function () {
    const r = await cache.lookup('alice', fd, stamp());
    expect(r.kind).to.equal('hit');
    if (r.kind !== 'hit') return;
    expect(r.scan).to.deep.equal({ ...scan, bytesRead: 0 });
    expect(cache.path('alice')).to.equal(path.join(dir, 'cache', 'alice.cache'));
    expect(fs.statSync(cache.path('alice')).mode & 0o777).to.equal(0o600);
    expect(fs.statSync(path.join(dir, 'cache')).mode & 0o777).to.equal(0o700);
    expect(fs.readdirSync(path.join(dir, 'cache'))).to.deep.equal(['alice.cache']);
  });

  it('hits even when the spool descriptor cannot be read (no read on a hit)', async function () {
    const st = stamp();
    const wfd = fs.openSync(path.join(dir, 'unrelated'), 'w'); // write-only: any read would fail
    fds.push(wfd);
    expect((await cache.lookup('alice', wfd, st)).kind).to.equal('hit');
  });

  it('returns the stored table as a tail prefix when mail was appended', async function () {
    const more = buildSpool(2, 5, scan.scanEnd);
    fs.appendFileSync(spoolPath, more.text);
    const r = await cache.lookup('alice', fd, stamp());
    expect(r.kind).to.equal('tail');
    if (r.kind !== 'tail') return;
    expect(r.prefix.messages).to.deep.equal(scan.messages);
    expect(r.prefix.scanEnd).to.equal(scan.scanEnd);
    expect(r.prefix.bytesRead).to.be.within(1, 4096 + 5);
  });

  it('treats a stored scan that stops short of EOF as a tail prefix', async function () {
    const more = buildSpool(1, 5, scan.scanEnd);
    fs.appendFileSync(spoolPath, more.text);
    await cache.store('alice', fd, stamp(), scan); // survivors written, MDA tail not scanned
    const r = await cache.lookup('alice', fd, stamp());
    expect(r.kind).to.equal('tail');
  });

  it('misses when the appended bytes do not start with a From_ line', async function () {
    fs.appendFileSync(spoolPath, 'Received: garbage\n\n');
    expectMiss(await cache.lookup('alice', fd, stamp()), /From_/);
  });

  it('misses when the scanned spool lacked the separator before the appended From_ line', async function () {
    const text = 'From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n';
    fs.writeFileSync(spoolPath, text);
    const m: ScannedMessage = {
      fromOffset: 0, start: 34, bodyStart: 46, end: text.length, size: text.length - 34 + 3,
      bodyLines: 1, uidlBase: 'u1', status: '', statusOffset: -1, statusLength: 0, sum: 1,
    };
    await cache.store('alice', fd, stamp(), { messages: [m], scanEnd: text.length, bytesRead: 0 });
    expect((await cache.lookup('alice', fd, stamp())).kind).to.equal('hit');
    fs.appendFileSync(spoolPath, 'From c@d Mon Jan  1 00:00:00 2024\n\nx\n');
    expectMiss(await cache.lookup('alice', fd, stamp()), /empty line/);
  });

  it('misses when the spool was truncated', async function () {
    fs.truncateSync(spoolPath, scan.messages[3]!.fromOffset);
    expectMiss(await cache.lookup('alice', fd, stamp()), /shrank/);
  });

  it('misses when the spool was rewritten with the same size', async function () {
    const before = stamp();
    const text = fs.readFileSync(spoolPath, 'latin1').replace('line one of 2', 'LINE ONE OF 2');
    fs.writeFileSync(spoolPath, text, 'latin1');
    const after = stamp();
    expect(after.size).to.equal(before.size);
    expect(after.ctimeNs).to.not.equal(before.ctimeNs);
    expectMiss(await cache.lookup('alice', fd, after), /same size/);
  });

  it('misses on a same-size rewrite whose mtime was restored (ctime still differs)', async function () {
    fs.utimesSync(spoolPath, 1_700_000_000, 1_700_000_000);
    await cache.store('alice', fd, stamp(), scan);
    const stored = stamp();
    expect((await cache.lookup('alice', fd, stored)).kind).to.equal('hit');
    const h = fs.openSync(spoolPath, 'r+');
    fs.writeSync(h, 'X', scan.messages[0]!.bodyStart);
    fs.closeSync(h);
    fs.utimesSync(spoolPath, 1_700_000_000, 1_700_000_000);
    const after = stamp();
    expect(after.mtimeNs).to.equal(stored.mtimeNs);
    expect(after.ctimeNs).to.not.equal(stored.ctimeNs);
    expectMiss(await cache.lookup('alice', fd, after), /same size/);
  });

  it('misses when another file was renamed over the spool', async function () {
    const other = path.join(dir, 'spool.new');
    fs.writeFileSync(other, fs.readFileSync(spoolPath));
    fs.renameSync(other, spoolPath);
    const fd2 = open(spoolPath);
    expectMiss(await cache.lookup('alice', fd2, stamp(fd2)), /another file/);
  });

  it('misses without a cache file, for another tag, and for unusable user names', async function () {
    expectMiss(await cache.lookup('bob', fd, stamp()), /no cache file/);
    const tagged = new ScanCache(path.join(dir, 'cache'), { tag: 'strictFrom=1' });
    expectMiss(await tagged.lookup('alice', fd, stamp()), /settings/);
    expectMiss(await cache.lookup('../alice', fd, stamp()), /user name/);
    let threw = false;
    await cache.store('a/b', fd, stamp(), scan).catch(() => (threw = true));
    expect(threw).to.equal(true);
  });

  it('does not trust an exact match of a racy stamp (ctime in the future)', async function () {
    const st = { ...stamp(), ctimeNs: BigInt(Date.now() + 60_000) * 1_000_000n };
    await cache.store('alice', fd, st, scan);
    expectMiss(await cache.lookup('alice', fd, st), /racy/);
  });

  it('reuses a parse in memory only while the cache file is unchanged, and hands out fresh arrays', async function () {
    await new Promise((r) => setTimeout(r, 30)); // past the racy window of the cache file itself
    const first = await cache.lookup('alice', fd, stamp());
    if (first.kind !== 'hit') throw new Error('expected a hit');
    first.scan.messages.pop(); // the caller's copy; must not leak into the next lookup
    const second = await cache.lookup('alice', fd, stamp());
    expect(second.kind === 'hit' && second.scan.messages.length).to.equal(N);
    // An in-place edit (same inode) changes size/mtime/ctime: parsed again, and found bad.
    const file = cache.path('alice');
    const b = fs.readFileSync(file);
    b[STRINGS_AT] = 0x20;
    fixCrc(b);
    fs.writeFileSync(file, b);
    expectMiss(await cache.lookup('alice', fd, stamp()), /UIDL/);
  });

  it('storeInBackground: reads the spool before it resolves, writes after; same stamp answered from memory, others wait', async function () {
    const fresh = new ScanCache(path.join(dir, 'cache2'));
    const f2 = fs.openSync(spoolPath, 'r');
    await fresh.storeInBackground('bob', f2, stamp(f2), scan);
    fs.closeSync(f2); // the caller closes its descriptor at once: the write must not need it
    // The same stamp is a hit at once, whether or not the file exists yet.
    expect((await fresh.lookup('bob', fd, stamp())).kind).to.equal('hit');
    // Mail appended: this lookup needs the file (a tail prefix is checked against it), so it waits.
    fs.appendFileSync(spoolPath, buildSpool(1, N, scan.scanEnd).text);
    expect((await fresh.lookup('bob', fd, stamp())).kind).to.equal('tail');
    // Another instance (another process) sees the file once every background write is done.
    await backgroundSettled();
    expect((await new ScanCache(path.join(dir, 'cache2')).lookup('bob', fd, stamp())).kind).to.equal('tail');
    expect(fs.readdirSync(path.join(dir, 'cache2'))).to.deep.equal(['bob.cache']); // no probe or temp file left
  });

  it('storeInBackground then store() for the same user: the later store wins', async function () {
    const fresh = new ScanCache(path.join(dir, 'cache3'));
    await fresh.storeInBackground('carol', fd, stamp(), scan);
    const shorter: ScanResult = { messages: scan.messages.slice(0, 1), scanEnd: scan.messages[1]!.fromOffset, bytesRead: 0 };
    await fresh.store('carol', fd, stamp(), shorter);
    await backgroundSettled();
    const r = await new ScanCache(path.join(dir, 'cache3')).lookup('carol', fd, stamp());
    expect(r.kind).to.equal('tail'); // the table of the later store(), which stops short of EOF
  });

  it('storeInBackground with startAfter: nothing is written until it resolves; the same stamp is answered from memory meanwhile', async function () {
    const dirD = path.join(dir, 'cache4');
    const fresh = new ScanCache(dirD);
    const g = gate();
    await fresh.storeInBackground('dave', fd, stamp(), scan, undefined, g.opened);
    await new Promise((r) => setTimeout(r, 50));
    expect(fs.existsSync(fresh.path('dave'))).to.equal(false);
    expect((await fresh.lookup('dave', fd, stamp())).kind).to.equal('hit');
    g.open();
    await backgroundSettled();
    expect((await new ScanCache(dirD).lookup('dave', fd, stamp())).kind).to.equal('hit');
  });

  it('a store for the same user replaces a background store that has not started: its gate opening later writes nothing', async function () {
    for (const later of ['background', 'store'] as const) {
      const dirE = path.join(dir, `cache5-${later}`);
      const fresh = new ScanCache(dirE);
      const g = gate();
      await fresh.storeInBackground('erin', fd, stamp(), scan, undefined, g.opened);
      const shorter: ScanResult = { messages: scan.messages.slice(0, 1), scanEnd: scan.messages[1]!.fromOffset, bytesRead: 0 };
      // Must not wait for the gate (a session's update stores while its drop still holds the gate shut).
      if (later === 'store') await fresh.store('erin', fd, stamp(), shorter);
      else await fresh.storeInBackground('erin', fd, stamp(), shorter);
      await backgroundSettled();
      g.open();
      await backgroundSettled();
      const r = await new ScanCache(dirE).lookup('erin', fd, stamp());
      expect(r.kind, later).to.equal('tail'); // the later, shorter table: the first store never wrote
    }
  });

  it('a lookup while a background store waits to start is judged against it in memory: an append is a tail at once; a rewrite a miss that drops it', async function () {
    const dirF = path.join(dir, 'cache6');
    const fresh = new ScanCache(dirF);
    const g = gate();
    await fresh.storeInBackground('fred', fd, stamp(), scan, undefined, g.opened);
    // Mail appended: a tail of the pending scan, answered without the gate ever opening.
    fs.appendFileSync(spoolPath, buildSpool(1, N, scan.scanEnd).text);
    const tail = await fresh.lookup('fred', fd, stamp());
    expect(tail.kind).to.equal('tail');
    if (tail.kind === 'tail') expect(tail.prefix.messages).to.deep.equal(scan.messages);
    expect(fs.existsSync(fresh.path('fred'))).to.equal(false);
    // Rewritten in place (same size, new times): a miss, and the pending store is dropped.
    const b = fs.readFileSync(spoolPath);
    b.write('X', scan.messages[0]!.bodyStart);
    fs.writeFileSync(spoolPath, b);
    fs.utimesSync(spoolPath, new Date(), new Date(Date.now() + 5000));
    expectMiss(await fresh.lookup('fred', fd, stamp()), /rewritten|changed/);
    g.open();
    await backgroundSettled();
    expect(fs.existsSync(fresh.path('fred')), 'the dropped store wrote its file').to.equal(false);
  });

  it('remove() deletes the cache and is idempotent', async function () {
    await cache.remove('alice');
    await cache.remove('alice');
    expectMiss(await cache.lookup('alice', fd, stamp()), /no cache file/);
  });

  it('refuses to cache an inconsistent scan', async function () {
    const bad = { ...scan, messages: [scan.messages[1]!, scan.messages[0]!] };
    await cache.store('alice', fd, stamp(), bad);
    expectMiss(await cache.lookup('alice', fd, stamp()), /no cache file/);
  });

  describe('corrupt or hostile cache files: always a miss, never a throw', function () {
    const corruptions: Array<[string, (b: Buffer) => Buffer, RegExp]> = [
      ['truncated', (b) => b.subarray(0, b.length - 7), /length/],
      ['truncated header', (b) => b.subarray(0, 40), /truncated/],
      ['a flipped byte', (b) => { b[HEADER_SIZE + 17]! ^= 0x10; return b; }, /checksum/],
      ['a flipped key byte', (b) => { b[33]! ^= 1; return b; }, /checksum/],
      ['a wrong version', (b) => { b.writeUInt32LE(99, 16); fixCrc(b); return b; }, /version/],
      ['garbage', () => Buffer.from(Array.from({ length: 9000 }, (_, i) => (i * 7919) & 0xff)), /magic/],
      ['an empty file', () => Buffer.alloc(0), /truncated/],
      ['an absurd count', (b) => { b.writeUInt32LE(0xffffffff, 72); fixCrc(b); return b; }, /count/],
      ['a count that disagrees with the length', (b) => { b.writeUInt32LE(4, 72); fixCrc(b); return b; }, /length/],
      ['offsets out of order', (b) => {
        const f = new Float64Array(b.buffer, b.byteOffset + F64_AT, 6);
        const t = f[0]!; f[0] = f[3]!; f[3] = t;
        fixCrc(b); return b;
      }, /order/],
      ['an end past scanEnd', (b) => { b.writeBigUInt64LE(BigInt(scan.scanEnd - 2), 64); fixCrc(b); return b; }, /order/],
      ['a fractional offset', (b) => { new Float64Array(b.buffer, b.byteOffset + F64_AT, 3)[1] += 0.5; fixCrc(b); return b; }, /integer/],
      ['a negative size', (b) => { new Float64Array(b.buffer, b.byteOffset + F64_AT, 3)[2] = -1; fixCrc(b); return b; }, /integer/],
      ['a size smaller than the content', (b) => { new Float64Array(b.buffer, b.byteOffset + F64_AT, 3)[2] = 3; fixCrc(b); return b; }, /size/],
      ['a headers length past the end', (b) => { new Uint32Array(b.buffer, b.byteOffset + U32_AT, 6)[1] = 1e6; fixCrc(b); return b; }, /order/],
      ['too many body lines', (b) => { new Uint32Array(b.buffer, b.byteOffset + U32_AT, 6)[2] = 1e6; fixCrc(b); return b; }, /line count/],
      ['a Status header outside the headers', (b) => {
        new Uint32Array(b.buffer, b.byteOffset + U32_AT + 24, 6)[3] = 1000; fixCrc(b); return b;
      }, /Status/],
      ['a status value without a Status header', (b) => {
        new Uint32Array(b.buffer, b.byteOffset + U32_AT + 24, 6)[3] = 0xffffffff; fixCrc(b); return b;
      }, /without/],
      ['a UIDL with a space', (b) => { b[STRINGS_AT + 3] = 0x20; fixCrc(b); return b; }, /UIDL/],
      ['an overlong UIDL', (b) => { b[U8_AT] = 71; fixCrc(b); return b; }, /UIDL/],
      ['UIDL lengths that disagree with the table', (b) => { b[U8_AT] -= 1; b[U8_AT + 1] += 1; b[U8_AT + 2] += 1; fixCrc(b); return b; }, /UIDL|string table/],
      ['unknown flags', (b) => { b[108] = 0x80; fixCrc(b); return b; }, /flags/],
    ];
    for (const [name, corrupt, reason] of corruptions) {
      it(`misses on ${name}`, async function () {
        const file = cache.path('alice');
        const orig = fs.readFileSync(file);
        const b = Buffer.from(new Uint8Array(orig).buffer); // aligned copy for Float64Array edits
        fs.writeFileSync(file, corrupt(b));
        expectMiss(await cache.lookup('alice', fd, stamp()), reason);
      });
    }

    it('misses on a directory or a symlink in place of the cache file', async function () {
      const file = cache.path('alice');
      fs.rmSync(file);
      fs.symlinkSync(spoolPath, file);
      expectMiss(await cache.lookup('alice', fd, stamp()), /unreadable/);
      fs.rmSync(file);
      fs.mkdirSync(file);
      expectMiss(await cache.lookup('alice', fd, stamp()), /regular file/);
    });
  });

  it('leaves a valid file after concurrent stores, and skips while another writer holds the lock', async function () {
    const shorter = { ...scan, messages: scan.messages.slice(0, 2), scanEnd: scan.messages[2]!.fromOffset };
    await cache.remove('alice');
    await Promise.all([
      cache.store('alice', fd, stamp(), scan),
      cache.store('alice', fd, stamp(), shorter),
      new ScanCache(path.join(dir, 'cache')).store('alice', fd, stamp(), scan),
    ]);
    const r = await cache.lookup('alice', fd, stamp());
    expect(r.kind).to.be.oneOf(['hit', 'tail']);
    const got = r.kind === 'hit' ? r.scan : r.kind === 'tail' ? r.prefix : undefined;
    expect(got?.messages).to.deep.equal(r.kind === 'hit' ? scan.messages : shorter.messages);
    expect(fs.readdirSync(path.join(dir, 'cache'))).to.deep.equal(['alice.cache']);

    await cache.remove('alice');
    const release = await lockfile.lock(cache.path('alice'), { realpath: false });
    try {
      await cache.store('alice', fd, stamp(), scan); // cannot get the lock: skips, no throw
    } finally {
      await release();
    }
    expectMiss(await cache.lookup('alice', fd, stamp()), /no cache file/);
  });

  it('round-trips 50,000 messages and looks them up in milliseconds', async function () {
    this.timeout(30_000);
    const big = buildSpool(50_000);
    const bigPath = path.join(dir, 'big');
    fs.writeFileSync(bigPath, big.text);
    const bfd = open(bigPath);
    const bigScan: ScanResult = { messages: big.messages, scanEnd: big.text.length, bytesRead: big.text.length };
    await cache.store('big', bfd, stamp(bfd), bigScan);
    const st = stamp(bfd);
    await new Promise((r) => setTimeout(r, 30)); // let the memo keep it (past the racy window)
    const timed = async (c: ScanCache): Promise<[number, CacheLookup]> => {
      const t0 = process.hrtime.bigint();
      const r = await c.lookup('big', bfd, st);
      return [Number(process.hrtime.bigint() - t0) / 1e6, r];
    };
    const parses: number[] = [];
    const memos: number[] = [];
    let last: CacheLookup | undefined;
    for (let i = 0; i < 7; i++) {
      const [ms, r] = await timed(new ScanCache(path.join(dir, 'cache'))); // read + crc + validate + build
      parses.push(ms);
      last = r;
      memos.push((await timed(cache))[0]); // same file as last time: fstat + copy of the array
    }
    expect(last?.kind).to.equal('hit');
    if (last?.kind !== 'hit') return;
    expect(last.scan.messages.length).to.equal(50_000);
    expect(last.scan.messages).to.deep.equal(big.messages);
    const median = (xs: number[]): string => [...xs].sort((a, b) => a - b)[xs.length >> 1]!.toFixed(1);
    const size = fs.statSync(cache.path('big')).size;
    console.log(
      `      50k-message cache: ${(size / 1e6).toFixed(1)} MB; lookup with parse: median ${median(parses)} ms ` +
        `(first ${parses[0]!.toFixed(1)}); memoized: median ${median(memos.slice(1))} ms`,
    );
  });
});

// Golden tests for the mbox scanner: hand-checked tables over spool-fixtures/, every-split-offset
// chunking, scanFd on real descriptors, and a fast-check property against a naive line-based oracle.
import { expect } from 'chai';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MboxFormatError } from '../errors.js';
import { FROM_LINE_MAX, isFromLine } from './from-line.js';
import { msum } from './msum.js';
import { finalizeUidls, KEPT_HEADERS, type KeptHeaders, uidlBase } from './uidl.js';
import { HEADER_KEEP_MAX, MboxScanner, SCAN_CHUNK } from './scanner.js';
import { readSlot, scanFd } from './scan-fd.js';
import type { ScannedMessage, ScanResult } from './types.js';
import { wireSize } from './wire.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// dist/src/mbox -> project root
const ROOT = path.resolve(here, '..', '..', '..');
const FIX = path.join(ROOT, 'spool-fixtures');
const load = (rel: string): Buffer => fs.readFileSync(path.join(FIX, rel));

// ------------------------------------------------------------------------------------------
// The naive oracle: split into lines, apply the framing rules literally, size with wireSize.
// ------------------------------------------------------------------------------------------
interface Line {
  off: number;
  textEnd: number; // end of text (CR of a CRLF excluded)
  next: number; // offset after the terminator
  hasLF: boolean;
}

function splitLines(buf: Buffer): Line[] {
  const lines: Line[] = [];
  let p = 0;
  while (p < buf.length) {
    const nl = buf.indexOf(10, p);
    if (nl < 0) {
      lines.push({ off: p, textEnd: buf.length, next: buf.length, hasLF: false });
      break;
    }
    lines.push({ off: p, textEnd: nl > p && buf[nl - 1] === 13 ? nl - 1 : nl, next: nl + 1, hasLF: true });
    p = nl + 1;
  }
  return lines;
}

export function naiveScan(buf: Buffer, strict: boolean): ScannedMessage[] {
  const lines = splitLines(buf);
  const text = (l: Line) => buf.toString('latin1', l.off, l.textEnd);
  const empty = (l: Line) => l.hasLF && l.textEnd === l.off;
  const starts: number[] = [];
  lines.forEach((l, k) => {
    if ((k === 0 || empty(lines[k - 1]!)) && isFromLine(text(l), strict)) starts.push(k);
  });
  if (lines.length > 0 && starts[0] !== 0) throw new MboxFormatError('naive: no From_ line at offset 0');
  return starts.map((s, idx) => {
    const nextStart = idx + 1 < starts.length ? starts[idx + 1]! : lines.length;
    let last = nextStart - 1; // last content line index
    if (last > s && empty(lines[last]!)) last--; // the separator
    const fromL = lines[s]!;
    const start = fromL.next;
    const end = last > s ? lines[last]!.next : start;
    let hdrEnd = -1;
    for (let k = s + 1; k <= last; k++) if (empty(lines[k]!)) { hdrEnd = k; break; }
    const bodyStart = hdrEnd >= 0 ? lines[hdrEnd]!.next : end;
    const bodyLines = hdrEnd >= 0 ? last - hdrEnd : 0;
    // Kept headers (first occurrence, with folded continuations).
    const headers: KeptHeaders = {};
    let statusOffset = -1;
    let statusLength = -1;
    const hLast = hdrEnd >= 0 ? hdrEnd - 1 : last;
    for (let k = s + 1; k <= hLast; k++) {
      const t = text(lines[k]!);
      const m = /^([^:]{1,20}):/.exec(t);
      if (!m || t.startsWith(' ') || t.startsWith('\t')) continue;
      const name = m[1]!.replace(/[ \t]+$/, '').toLowerCase();
      if (!KEPT_HEADERS.has(name) || headers[name] !== undefined) continue;
      let value = t.slice(m[0].length);
      let j = k + 1;
      while (j <= hLast && /^[ \t]/.test(text(lines[j]!))) value += '\n' + text(lines[j++]!);
      headers[name] = value;
      if (name === 'status') {
        statusOffset = lines[k]!.off;
        statusLength = lines[j - 1]!.next - statusOffset;
      }
    }
    const fromText = text(fromL).slice(0, FROM_LINE_MAX);
    return {
      fromOffset: fromL.off,
      start,
      bodyStart,
      end,
      size: wireSize(buf.subarray(start, end)),
      bodyLines,
      uidlBase: uidlBase(fromText, headers),
      status: (headers['status'] ?? '').trim(),
      statusOffset,
      statusLength,
      sum: msum(buf.subarray(fromL.off, end)),
    };
  });
}

// ------------------------------------------------------------------------------------------
function scanChunks(buf: Buffer, cuts: number[], strict = false, baseOffset = 0): ScanResult {
  const s = new MboxScanner({ strictFrom: strict, baseOffset });
  let p = 0;
  for (const c of [...cuts, buf.length]) {
    // Copy into a scratch buffer that is clobbered after push: the scanner must not keep views.
    const scratch = Buffer.from(buf.subarray(p, c));
    s.push(scratch);
    scratch.fill(0x5a);
    p = c;
  }
  return s.finish();
}
const scanAll = (buf: Buffer, strict = false) => scanChunks(buf, [], strict);

const SMALL_FIXTURES = [
  'mail/alice',
  'mail/bob',
  'mail/carol',
  'cases/no-final-newline.mbox',
  'cases/nul-bytes.mbox',
  'cases/duplicates.mbox',
  'cases/x-uidl.mbox',
  'cases/from-in-body.mbox',
  'cases/trailing-empty-lines.mbox',
  'cases/strict-vs-loose.mbox',
  'cases/mixed-endings.mbox',
  'cases/empty-message.mbox',
  'cases/status.mbox',
];

type Expect = Pick<ScannedMessage, 'fromOffset' | 'start' | 'bodyStart' | 'end' | 'size' | 'bodyLines'>;
const row = (fromOffset: number, start: number, bodyStart: number, end: number, size: number, bodyLines: number): Expect => ({
  fromOffset, start, bodyStart, end, size, bodyLines,
});

/** Hand-computed (From_ lines of cases/* are 43 bytes + LF). */
const HAND: Record<string, Expect[]> = {
  'cases/no-final-newline.mbox': [row(0, 44, 58, 64, 23, 1), row(65, 109, 123, 144, 39, 1)],
  'cases/trailing-empty-lines.mbox': [row(0, 44, 83, 90, 51, 3), row(91, 135, 173, 173, 39, 0), row(174, 218, 255, 261, 47, 2)],
  'cases/empty-message.mbox': [row(0, 44, 44, 44, 0, 0), row(45, 89, 90, 90, 2, 0), row(91, 134, 134, 134, 0, 0)],
  'cases/mixed-endings.mbox': [row(0, 45, 62, 100, 58, 4), row(102, 146, 159, 162, 19, 1)],
};

describe('mbox scanner', () => {
  describe('hand-checked fixtures', () => {
    for (const [rel, rows] of Object.entries(HAND)) {
      it(`${rel}: offsets, sizes, body lines`, () => {
        const r = scanAll(load(rel));
        expect(r.messages.map((m) => row(m.fromOffset, m.start, m.bodyStart, m.end, m.size, m.bodyLines))).to.deep.equal(rows);
        expect(r.scanEnd).to.equal(load(rel).length);
      });
    }

    it('mail/alice: 21 messages, body From_ lines after text are not separators', () => {
      const buf = load('mail/alice');
      const r = scanAll(buf);
      expect(r.messages).to.have.length(21);
      const dave = r.messages[3]!;
      const content = buf.toString('latin1', dave.start, dave.end);
      expect(content).to.contain('\nFrom Tuesday on I am travelling');
      expect(buf.toString('latin1', r.messages[1]!.bodyStart, r.messages[1]!.end)).to.contain('\n..\n');
      expect(buf.toString('latin1', r.messages[2]!.bodyStart, r.messages[2]!.end)).to.contain('>From the desk');
      // X-UIDL reused verbatim; all UIDLs unique after finalize.
      expect(r.messages[6]!.uidlBase).to.equal('9d1c2f7a3b4e5d6c');
      expect(new Set(finalizeUidls(r.messages.map((m) => m.uidlBase))).size).to.equal(21);
      expect(r.messages[1]!.status).to.equal('RO');
      expect(buf.toString('latin1', r.messages[1]!.statusOffset, r.messages[1]!.statusOffset + r.messages[1]!.statusLength)).to.equal('Status: RO\n');
      expect(r.messages[0]!.statusOffset).to.equal(-1);
      expect(r.messages[0]!.status).to.equal('');
    });

    it('mail/carol: CRLF spool, a CRLF is one line ending', () => {
      const buf = load('mail/carol');
      const r = scanAll(buf);
      expect(r.messages).to.have.length(3);
      for (const m of r.messages) expect(m.size).to.equal(m.end - m.start); // already CRLF: size == bytes
      expect(r.messages[1]!.status).to.equal('RO');
      expect(buf.toString('latin1', r.messages[1]!.statusOffset, r.messages[1]!.statusOffset + r.messages[1]!.statusLength)).to.equal('Status: RO\r\n');
    });

    it('mail/bob: empty spool is zero messages', () => {
      expect(scanAll(load('mail/bob'))).to.deep.equal({ messages: [], scanEnd: 0, bytesRead: 0 });
    });

    it('mail/mallory: garbage before the first From_ line is refused, naming the offset', () => {
      const buf = load('mail/mallory');
      for (const cut of [0, 3, 30]) {
        expect(() => scanChunks(buf, cut ? [cut] : [])).to.throw(MboxFormatError, /offset 0/);
      }
      expect(() => scanAll(Buffer.from('\nFrom a Mon Jan 1 00:00 2024\n'))).to.throw(MboxFormatError);
      expect(() => scanAll(Buffer.from('From: a\n'))).to.throw(MboxFormatError);
      // strict: a From line that does not look like one is refused as the first line
      expect(() => scanAll(Buffer.from('From here on\n'), true)).to.throw(MboxFormatError);
      expect(scanAll(Buffer.from('From here on\n'), false).messages).to.have.length(1);
    });

    it('duplicates: byte-identical messages share a base and get -2, -3', () => {
      const r = scanAll(load('cases/duplicates.mbox'));
      const b = r.messages.map((m) => m.uidlBase);
      expect(b).to.have.length(4);
      expect(b[0]).to.equal(b[1]).and.equal(b[3]).and.not.equal(b[2]);
      expect(finalizeUidls(b)).to.deep.equal([b[0], `${b[0]}-2`, b[2], `${b[0]}-3`]);
    });

    it('x-uidl: valid values reused (trimmed, any case), invalid ones hashed', () => {
      const r = scanAll(load('cases/x-uidl.mbox'));
      const b = r.messages.map((m) => m.uidlBase);
      expect(b[0]).to.equal('1a2b3c4d5e6f');
      expect(b[1]).to.match(/^[0-9a-f]{32}$/);
      expect(b[2]).to.match(/^[0-9a-f]{32}$/);
      expect(b[3]).to.equal('1a2b3c4d5e6f');
      expect(finalizeUidls(b)[3]).to.equal('1a2b3c4d5e6f-2');
    });

    it('from-in-body: loose splits after an empty line only; strict keeps "From here on" as body', () => {
      const buf = load('cases/from-in-body.mbox');
      expect(scanAll(buf, false).messages).to.have.length(3);
      expect(scanAll(buf, true).messages).to.have.length(2);
    });

    it('strict-vs-loose: real-world From_ variants split in both modes', () => {
      const buf = load('cases/strict-vs-loose.mbox');
      expect(scanAll(buf, true).messages).to.have.length(6);
      expect(scanAll(buf, false).messages).to.have.length(7);
    });

    it('nul-bytes and long lines are content like any other', () => {
      const nul = scanAll(load('cases/nul-bytes.mbox')).messages;
      expect(nul).to.have.length(2);
      expect(nul[0]!.bodyLines).to.equal(3);
      const long = scanAll(load('cases/long-line.mbox')).messages;
      expect(long).to.have.length(2);
      expect(long[0]!.bodyLines).to.equal(3);
      expect(long[0]!.size).to.be.greaterThan(200 * 1024);
    });

    it('status: only in the header block; value trimmed; name case-insensitive', () => {
      const m = scanAll(load('cases/status.mbox')).messages;
      expect(m.map((x) => x.status)).to.deep.equal(['RO', '', 'O']);
      expect(m[1]!.statusOffset).to.equal(-1);
      expect(m[2]!.statusLength).to.equal('status:O  \n'.length);
    });
  });

  describe('agrees with the naive oracle', () => {
    for (const rel of [...SMALL_FIXTURES, 'cases/long-line.mbox']) {
      for (const strict of [false, true]) {
        it(`${rel} (strict=${strict})`, () => {
          const buf = load(rel);
          expect(scanAll(buf, strict).messages).to.deep.equal(naiveScan(buf, strict));
        });
      }
    }
  });

  describe('identical results at every split offset', function () {
    this.timeout(30_000); // thousands of scans each; generous for a loaded CI machine
    for (const rel of SMALL_FIXTURES) {
      it(rel, function () {
        const buf = load(rel);
        const want = JSON.stringify(scanAll(buf));
        const wantStrict = JSON.stringify(scanAll(buf, true));
        for (let cut = 0; cut <= buf.length; cut++) {
          if (JSON.stringify(scanChunks(buf, [cut])) !== want) expect.fail(`${rel}: split at ${cut} differs`);
          if (buf.length < 2000 && JSON.stringify(scanChunks(buf, [cut], true)) !== wantStrict) {
            expect.fail(`${rel}: strict split at ${cut} differs`);
          }
        }
        // one byte at a time
        const ones = Array.from({ length: Math.max(0, buf.length - 1) }, (_, k) => k + 1);
        expect(JSON.stringify(scanChunks(buf, ones))).to.equal(want);
        expect(JSON.stringify(scanChunks(buf, ones, true))).to.equal(wantStrict);
      });
    }

    it('cases/long-line.mbox at many splits (inside and around the 200 KB line)', () => {
      const buf = load('cases/long-line.mbox');
      const want = JSON.stringify(scanAll(buf));
      for (let cut = 0; cut <= buf.length; cut += 997) expect(JSON.stringify(scanChunks(buf, [cut]))).to.equal(want);
      const every4k = Array.from({ length: Math.floor(buf.length / 4096) }, (_, k) => (k + 1) * 4096);
      expect(JSON.stringify(scanChunks(buf, every4k))).to.equal(want);
    });
  });

  describe('edge rules', () => {
    it('a From_ line longer than FROM_LINE_MAX: loose accepts it, strict treats it as body', () => {
      const long = `From ${'x'.repeat(FROM_LINE_MAX + 10)} Mon Jan  1 00:00:00 2024`;
      const buf = Buffer.from(`From a Mon Jan  1 00:00:00 2024\nS: 1\n\nbody\n\n${long}\nS: 2\n\nb\n`);
      expect(scanAll(buf, false).messages).to.have.length(2);
      expect(scanAll(buf, true).messages).to.have.length(1);
      for (const strict of [false, true]) {
        const want = JSON.stringify(naiveScan(buf, strict));
        expect(JSON.stringify(scanAll(buf, strict).messages)).to.equal(want);
        for (let cut = 40; cut < 60 + FROM_LINE_MAX + 20; cut += 7) {
          expect(JSON.stringify(scanChunks(buf, [cut, cut + 4097], strict).messages)).to.equal(want);
        }
      }
    });

    it('a strict From_ line exactly at FROM_LINE_MAX, with CRLF, is judged the same at every split', () => {
      const date = ' Mon Jan  1 00:00:00 2024';
      const sender = 'y'.repeat(FROM_LINE_MAX - 5 - date.length);
      const buf = Buffer.from(`From a${date}\r\n\r\nx\r\n\r\nFrom ${sender}${date}\r\nS: 2\r\n`);
      const want = JSON.stringify(naiveScan(buf, true));
      expect(scanAll(buf, true).messages).to.have.length(2);
      for (let cut = 0; cut <= buf.length; cut += 3) expect(JSON.stringify(scanChunks(buf, [cut], true).messages)).to.equal(want);
    });

    it('header bytes kept per message are capped (a Status after 64 KiB of headers is not seen)', () => {
      const buf = Buffer.from(`From a Mon Jan 1 00:00 2024\nX-Big: ${'b'.repeat(HEADER_KEEP_MAX)}\nStatus: RO\n\nbody\n`);
      const r = scanAll(buf);
      expect(r.messages[0]!.status).to.equal('');
      expect(r.messages[0]!.size).to.equal(wireSize(buf.subarray(r.messages[0]!.start)));
      for (let cut = 1; cut < buf.length; cut += 4099) expect(scanChunks(buf, [cut])).to.deep.equal(r);
    });

    it('baseOffset: scanning a tail gives the same messages as the full scan', () => {
      const buf = load('mail/alice');
      const full = scanAll(buf).messages;
      const k = 9;
      const tailStart = full[k]!.fromOffset;
      const tail = scanChunks(buf.subarray(tailStart), [100, 2000], false, tailStart);
      expect(tail.messages).to.deep.equal(full.slice(k));
      expect(tail.scanEnd).to.equal(buf.length);
      expect(tail.bytesRead).to.equal(buf.length - tailStart);
    });
  });

  describe('scanFd', () => {
    let dir: string;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-scan-'));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('reads [start, end) positionally, leaves the fd open, ignores bytes past end', async () => {
      const buf = load('mail/alice');
      const p = path.join(dir, 'alice');
      fs.writeFileSync(p, Buffer.concat([buf, Buffer.from('From late Mon Jan 1 00:00 2024\nSubject: appended\n')]));
      const fd = fs.openSync(p, 'r');
      try {
        const r = await scanFd(fd, 0, buf.length, { strictFrom: false });
        expect(r.messages).to.deep.equal(naiveScan(buf, false));
        expect(r.scanEnd).to.equal(buf.length);
        expect(r.bytesRead).to.equal(buf.length);
        const start = r.messages[15]!.fromOffset;
        const t = await scanFd(fd, start, buf.length, { strictFrom: false });
        expect(t.messages).to.deep.equal(r.messages.slice(15));
        expect(t.bytesRead).to.equal(buf.length - start);
        fs.fstatSync(fd); // still open
      } finally {
        fs.closeSync(fd);
      }
    });

    it('multi-chunk files (> 1 MiB) and an empty range', async () => {
      const unit = load('mail/alice');
      const big = Buffer.concat(Array.from({ length: 200 }, () => unit)); // ~2.8 MB
      const p = path.join(dir, 'big');
      fs.writeFileSync(p, big);
      const fd = fs.openSync(p, 'r');
      try {
        const r = await scanFd(fd, 0, big.length, { strictFrom: false });
        expect(r.messages).to.have.length(21 * 200);
        expect(r.messages).to.deep.equal(naiveScan(big, false));
        expect(await scanFd(fd, 0, 0, { strictFrom: false })).to.deep.equal({ messages: [], scanEnd: 0, bytesRead: 0 });
      } finally {
        fs.closeSync(fd);
      }
    });

    it('reads from an offset inside a page: same messages, every read at its page offset (readSlot)', async () => {
      const unit = load('mail/alice');
      const big = Buffer.concat(Array.from({ length: 700 }, () => unit)); // ~9.8 MB: several 4 MiB reads
      const p = path.join(dir, 'unaligned');
      fs.writeFileSync(p, big);
      const all = naiveScan(big, false);
      const k = all.findIndex((m) => m.fromOffset % 4096 > 100 && m.fromOffset > 5000);
      const start = all[k]!.fromOffset;
      const fd = fs.openSync(p, 'r');
      try {
        for (const offloadMin of [Infinity, 0]) { // all on this thread; split, the far part read by the worker
          const r = await scanFd(fd, start, big.length, { strictFrom: false }, offloadMin);
          expect(r.messages).to.deep.equal(all.slice(k));
          expect(r.bytesRead).to.equal(big.length - start);
        }
      } finally {
        fs.closeSync(fd);
      }
      // The first read fills the buffer from the file's offset within its page; the rest start on a page.
      expect(readSlot(5000, 1 << 30, 1 << 22)).to.deep.equal([5000 % 4096, (1 << 22) - (5000 % 4096)]);
      expect(readSlot(8192, 1 << 30, 1 << 22)).to.deep.equal([0, 1 << 22]);
      expect(readSlot(8192 + 7, 8192 + 100, 1 << 22)).to.deep.equal([7, 93]);
      expect(readSlot(10, 3010, 3000)).to.deep.equal([0, 3000]); // a whole small range: one read at 0
    });

    it('the kernel memory\'s read buffers sit 64 or more bytes past a page start (rep movsb on AMD)', () => {
      const bufs = new MboxScanner({ strictFrom: false }).ioBuffersFromKernel(2, SCAN_CHUNK);
      if (bufs === null) return; // no wasm: plain buffers
      for (const b of bufs) expect(b.byteOffset % 4096).to.satisfy((o: number) => o === 0 || o >= 64);
    });

    it('rejects a malformed spool with MboxFormatError', async () => {
      const p = path.join(FIX, 'mail/mallory');
      const fd = fs.openSync(p, 'r');
      try {
        let err: unknown;
        await scanFd(fd, 0, fs.fstatSync(fd).size, { strictFrom: false }).catch((e: unknown) => (err = e));
        expect(err).to.be.instanceOf(MboxFormatError);
      } finally {
        fs.closeSync(fd);
      }
    });
  });

  describe('body kernel paths (long bodies: copy window, zero-copy reads, crc worker)', function () {
    this.timeout(30_000); // CPU-bound properties; generous for a loaded CI machine
    // Bodies of many lines, long enough for the wasm kernel, with empty lines (LF and CRLF),
    // lone CRs, CR CR LF and candidate From_ lines at random places.
    const bodyLine = fc.oneof(
      { weight: 6, arbitrary: fc.nat(150).map((n) => 'b'.repeat(n)) },
      { weight: 2, arbitrary: fc.constant('') },
      { weight: 1, arbitrary: fc.constantFrom('From a@b Mon Jan  1 00:00:00 2024', 'From here on', '\r', 'x\r', 'Received: r') },
    );
    const msgArb = fc
      .tuple(fc.array(fc.tuple(bodyLine, fc.constantFrom('\n', '\r\n', '\n', '\r\r\n')), { maxLength: 60 }), fc.boolean())
      .map(([lines, crlfHead]) => {
        const nl = crlfHead ? '\r\n' : '\n';
        return `From a@b Mon Jan  1 00:00:00 2024${nl}Received: x${nl}Status: RO${nl}${nl}` + lines.map(([l, t]) => l + t).join('');
      });
    const spoolArb = fc.array(msgArb, { minLength: 1, maxLength: 8 }).map((ms) => Buffer.from(ms.join('\n'), 'latin1'));

    it('pushed in random chunks == naive oracle', () => {
      fc.assert(
        fc.property(spoolArb, fc.array(fc.nat(), { maxLength: 5 }), fc.boolean(), (buf, rawCuts, strict) => {
          const cuts = [...new Set(rawCuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
          expect(scanChunks(buf, cuts, strict).messages).to.deep.equal(naiveScan(buf, strict));
        }),
        { numRuns: 1500 },
      );
    });

    it('a body longer than the copy window, pushed whole and in 1 MiB chunks', () => {
      const para = ('z'.repeat(70) + '\r\n').repeat(5000) + '\r\n'; // ~360 KiB paragraphs
      const one = `From a@b Mon Jan  1 00:00:00 2024\nSubject: s\n\n${para.repeat(3)}tail\n`;
      const buf = Buffer.from((one + '\n').repeat(4), 'latin1');
      const want = naiveScan(buf, false);
      expect(scanAll(buf).messages).to.deep.equal(want);
      expect(scanChunks(buf, [1 << 20, 2 << 20, 3 << 20]).messages).to.deep.equal(want);
    });

    it('scanFd (zero-copy reads, with and without the crc worker) == naive oracle', async function () {
      this.timeout(30_000); // CPU-bound; generous for a loaded CI machine
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-kern-'));
      try {
        const samples = fc.sample(spoolArb, { numRuns: 40, seed: 7 });
        // One multi-chunk file too: every sample back to back, a few MB.
        const big = Buffer.concat(Array.from({ length: 400 }, (_, k) => Buffer.concat([samples[k % 40]!, Buffer.from('\n')])));
        for (const buf of [...samples, big]) {
          const p = path.join(dir, 'spool');
          fs.writeFileSync(p, buf);
          const fd = fs.openSync(p, 'r');
          try {
            const want = naiveScan(buf, false);
            for (const offloadMin of [0, Infinity]) {
              const r = await scanFd(fd, 0, buf.length, { strictFrom: false }, offloadMin);
              expect(r.messages).to.deep.equal(want);
            }
          } finally {
            fs.closeSync(fd);
          }
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('scanFd with the crc worker rejects a malformed spool and leaves the fd usable', async () => {
      const fd = fs.openSync(path.join(FIX, 'mail/mallory'), 'r');
      try {
        let err: unknown;
        await scanFd(fd, 0, fs.fstatSync(fd).size, { strictFrom: false }, 0).catch((e: unknown) => (err = e));
        expect(err).to.be.instanceOf(MboxFormatError);
        fs.fstatSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    });
  });

  describe('property: random mbox-ish input, random chunking == naive oracle', () => {
    const FROMS = ['From a@b Mon Jan  1 00:00:00 2024', 'From MAILER-DAEMON Fri Jul  8 12:08:34 2011', 'From here on', 'From '];
    const lineArb = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...FROMS) },
      { weight: 4, arbitrary: fc.constant('') },
      {
        weight: 5,
        arbitrary: fc.constantFrom('.', '..', '.x', '>From x', 'Status: RO', 'status:  O ', ' folded', 'Received: r',
          'Date: d', 'Message-ID: <m>', 'X-UIDL: abc', 'Delivered-To: u', 'text', '\r', 'a\rb', '\0', 'From:'),
      },
    );
    const mboxArb = fc
      .tuple(
        fc.array(fc.tuple(lineArb, fc.constantFrom('\n', '\r\n', '\n', '\r\n', '\r\r\n')), { maxLength: 40 }),
        fc.boolean(), // drop the final terminator
        fc.boolean(), // start with a From_ line
      )
      .map(([lines, dropLast, fromFirst]) => {
        let s = (fromFirst ? FROMS[0] + '\n' : '') + lines.map(([l, t]) => l + t).join('');
        if (dropLast && s.length > 0) s = s.replace(/\r?\n$/, '');
        return Buffer.from(s, 'latin1');
      });

    it('frames, sizes, UIDLs, Status and crc match; errors match', () => {
      fc.assert(
        fc.property(mboxArb, fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), (buf, rawCuts, strict) => {
          const cuts = [...new Set(rawCuts.map((c) => (buf.length ? c % (buf.length + 1) : 0)))].sort((a, b) => a - b);
          let want: ScannedMessage[] | 'error';
          try {
            want = naiveScan(buf, strict);
          } catch {
            want = 'error';
          }
          let got: ScannedMessage[] | 'error';
          try {
            got = scanChunks(buf, cuts, strict).messages;
          } catch (e) {
            if (!(e instanceof MboxFormatError)) throw e;
            got = 'error';
          }
          expect(got).to.deep.equal(want);
          if (got !== 'error') for (const m of got) expect(m.size).to.equal(wireSize(buf.subarray(m.start, m.end)));
        }),
        { numRuns: 3000 },
      );
    });
  });
});

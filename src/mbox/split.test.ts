// Split scans (split.ts): every cut the finder proposes is a real message boundary, and the two
// halves scanned apart concatenate to exactly the sequential scan — fixtures and fast-check.
import { expect } from 'chai';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MboxFormatError } from '../errors.js';
import { FROM_LINE_MAX } from './from-line.js';
import { MboxScanner } from './scanner.js';
import { stopScanWorker } from './scan-worker.js';
import { scanFd } from './scan-fd.js';
import { findBoundaryIn, findSplit } from './split.js';
import type { ScannedMessage } from './types.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIX = path.resolve(here, '..', '..', '..', 'spool-fixtures');

function scan(buf: Buffer, from: number, to: number, strict: boolean): ScannedMessage[] {
  const s = new MboxScanner({ strictFrom: strict, baseOffset: from });
  s.push(buf.subarray(from, to));
  return s.finish().messages;
}

/** Every boundary the finder reports, walking the whole buffer. */
function allBoundaries(buf: Buffer, strict: boolean): number[] {
  const out: number[] = [];
  for (let lo = 0; ; ) {
    const p = findBoundaryIn(buf, lo, strict, true);
    if (p < 0) return out;
    out.push(p);
    lo = p - 1;
  }
}

/** Asserts each reported boundary is a sequential From_ offset and the halves concatenate exactly. */
function checkSplits(buf: Buffer, strict: boolean): number {
  let seq: ScannedMessage[];
  try {
    seq = scan(buf, 0, buf.length, strict);
  } catch (e) {
    if (e instanceof MboxFormatError) return 0; // not an mbox: nothing to split
    throw e;
  }
  const starts = new Set(seq.map((m) => m.fromOffset));
  const cuts = allBoundaries(buf, strict).filter((p) => p > 0);
  for (const p of cuts) {
    expect(starts.has(p), `cut at ${p} is a message boundary`).to.equal(true);
    expect([...scan(buf, 0, p, strict), ...scan(buf, p, buf.length, strict)]).to.deep.equal(seq);
  }
  return cuts.length;
}

const FIXTURES = ['mail/alice', 'mail/bob', 'mail/carol', ...fs.readdirSync(path.join(FIX, 'cases')).map((f) => `cases/${f}`)];

describe('split scans', () => {
  describe('fixtures: every cut is a boundary, halves == sequential', () => {
    for (const rel of FIXTURES) {
      for (const strict of [false, true]) {
        it(`${rel} (strict=${strict})`, () => {
          checkSplits(fs.readFileSync(path.join(FIX, rel)), strict);
        });
      }
    }
    it('finds cuts in a multi-message fixture (the test is not vacuous)', () => {
      expect(checkSplits(fs.readFileSync(path.join(FIX, 'mail/alice')), false)).to.be.greaterThan(5);
    });
  });

  it('what is not a cut: From after a non-empty line, a lone-CR line, strict non-dates, long lines', () => {
    const long = 'From ' + 'x'.repeat(FROM_LINE_MAX); // text longer than FROM_LINE_MAX
    const buf = Buffer.from(
      'From a@b Mon Jan  1 00:00:00 2024\n\nbody\nFrom here\n\r\rFrom x\n\n' + long + '\n\nFrom a@b Mon Jan  1 00:00:00 2024\r\nX: y\n',
      'latin1',
    );
    const strictCuts = allBoundaries(buf, true);
    const looseCuts = allBoundaries(buf, false);
    const last = buf.lastIndexOf('From a@b');
    expect(strictCuts).to.deep.equal([last]);
    expect(looseCuts).to.deep.equal([last]); // the long line is skipped, not judged
    checkSplits(buf, true);
    checkSplits(buf, false);
  });

  describe('property: random mbox-ish input', () => {
    const FROMS = ['From a@b Mon Jan  1 00:00:00 2024', 'From MAILER-DAEMON Fri Jul  8 12:08:34 2011', 'From here on', 'From ', 'From x\r'];
    const lineArb = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...FROMS) },
      { weight: 4, arbitrary: fc.constant('') },
      {
        weight: 5,
        arbitrary: fc.constantFrom('.', '>From x', 'Status: RO', ' folded', 'Received: r', 'Date: d', 'Message-ID: <m>',
          'X-UIDL: abc', 'text', '\r', 'a\rb', '\0', 'From:', 'x'.repeat(200)),
      },
    );
    const mboxArb = fc
      .tuple(fc.array(fc.tuple(lineArb, fc.constantFrom('\n', '\r\n', '\n', '\r\n', '\r\r\n')), { maxLength: 50 }), fc.boolean())
      .map(([lines, dropLast]) => {
        let s = FROMS[0] + '\n' + lines.map(([l, t]) => l + t).join('');
        if (dropLast) s = s.replace(/\r?\n$/, '');
        return Buffer.from(s, 'latin1');
      });

    it('every cut is a sequential boundary and halves concatenate to the sequential scan', () => {
      fc.assert(
        fc.property(mboxArb, fc.boolean(), (buf, strict) => {
          checkSplits(buf, strict);
        }),
        { numRuns: 2000 },
      );
    });
  });

  describe('findSplit and scanFd on files', function () {
    this.timeout(30_000);
    let dir: string;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-split-'));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    // Messages with bodies of long paragraph-free text, so boundaries are rare and land at
    // every position relative to findSplit's read windows.
    const msg = (k: number, bodyLines: number, crlf: boolean): string => {
      const nl = crlf ? '\r\n' : '\n';
      return `From u${k}@x Mon Jan  1 00:00:00 2024${nl}Subject: ${k}${nl}${nl}` + `${'t'.repeat(k % 97)}line ${k}${nl}`.repeat(bodyLines) + nl;
    };

    it('finds the first boundary at or after the target, across read windows; halves == sequential', async () => {
      const parts: string[] = [];
      for (let k = 0; k < 60; k++) parts.push(msg(k, 200 + ((k * 7919) % 900), k % 3 === 0));
      parts.push('From z@x Mon Jan  1 00:00:00 2024\n' + 'From y\n'.repeat(10)); // no separator-preceded From_
      const buf = Buffer.from(parts.join(''), 'latin1');
      const file = path.join(dir, 'spool');
      fs.writeFileSync(file, buf);
      const seq = scan(buf, 0, buf.length, false);
      const starts = seq.map((m) => m.fromOffset);
      const fd = fs.openSync(file, 'r');
      try {
        for (let target = 1; target < buf.length; target += 997) {
          const p = await findSplit(fd, 0, target, buf.length, false);
          const next = starts.find((s) => s >= target + 1);
          if (next === undefined) {
            expect(p === -1 || (starts.includes(p) && p >= target - 1)).to.equal(true);
            continue;
          }
          expect(starts.includes(p), `split ${p} for target ${target} is a boundary`).to.equal(true);
          expect(p).to.be.within(target - 1, next);
        }
        // The whole scan, split (offloadMin 0) and not, equals the sequential in-memory scan.
        for (const offloadMin of [0, Infinity]) {
          expect((await scanFd(fd, 0, buf.length, { strictFrom: false }, offloadMin)).messages).to.deep.equal(seq);
          expect((await scanFd(fd, 0, buf.length, { strictFrom: true }, offloadMin)).messages).to.deep.equal(scan(buf, 0, buf.length, true));
        }
        // A tail scan (start at a From_ line) splits too.
        const from = starts[17]!;
        expect((await scanFd(fd, from, buf.length, { strictFrom: false }, 0)).messages).to.deep.equal(seq.slice(17));
      } finally {
        fs.closeSync(fd);
      }
    });

    it('a spool shorter than the range asked for: the scan fails with "spool shrank", on this thread and in the worker', async () => {
      const parts: string[] = [];
      for (let k = 0; k < 40; k++) parts.push(msg(k, 300 + ((k * 31) % 400), false));
      const buf = Buffer.from(parts.join(''), 'latin1');
      const file = path.join(dir, 'short');
      fs.writeFileSync(file, buf);
      const fd = fs.openSync(file, 'r');
      try {
        // As if the file lost its last 300 KB after the size was taken: the worker's blocking
        // reads (256 KiB each) and this thread's reads both come back short.
        for (const offloadMin of [0, Infinity]) {
          let err: unknown = null;
          await scanFd(fd, 0, buf.length + 300_000, { strictFrom: false }, offloadMin).catch((e: unknown) => { err = e; });
          expect(String(err), `offloadMin ${offloadMin}`).to.match(/spool shrank during scan/);
        }
        expect((await scanFd(fd, 0, buf.length, { strictFrom: false }, 0)).messages, 'the descriptor still scans').to.deep.equal(scan(buf, 0, buf.length, false));
      } finally {
        fs.closeSync(fd);
      }
    });

    it('one huge message: no cut, the worker sum path gives the same result', async () => {
      const buf = Buffer.from(msg(1, 40_000, false), 'latin1');
      const file = path.join(dir, 'one');
      fs.writeFileSync(file, buf);
      const fd = fs.openSync(file, 'r');
      try {
        expect(await findSplit(fd, 0, buf.length >> 1, buf.length, false)).to.equal(-1);
        const r = await scanFd(fd, 0, buf.length, { strictFrom: false }, 0);
        expect(r.messages).to.deep.equal(scan(buf, 0, buf.length, false));
        expect(r.bytesRead).to.equal(buf.length);
      } finally {
        fs.closeSync(fd);
      }
    });

    /** A spool file of `count` messages made by `make`, its bytes and an open descriptor. */
    const spoolOf = (name: string, count: number, make: (i: number) => string): { buf: Buffer; fd: number } => {
      const buf = Buffer.from(Array.from({ length: count }, (_, i) => make(i)).join(''), 'latin1');
      const file = path.join(dir, name);
      fs.writeFileSync(file, buf);
      return { buf, fd: fs.openSync(file, 'r') };
    };
    // 400 longer messages; and 6,000 small ones, whose far half (~3,000) comes in several parts (PART_MESSAGES).
    const dying = [
      { name: 'dies', count: 400, make: (i: number) => msg(i, 200 + (i % 50), i % 7 === 0) },
      { name: 'many', count: 6000, make: (i: number) => msg(i, 1 + (i % 3), i % 5 === 0) },
    ];

    it('a worker part of thousands of messages comes in several parts, in order', async () => {
      const { buf, fd } = spoolOf('parts', 6000, dying[1]!.make);
      try {
        const r = await scanFd(fd, 0, buf.length, { strictFrom: false }, 0);
        expect(r.messages.length).to.equal(6000);
        expect(r.messages).to.deep.equal(scan(buf, 0, buf.length, false));
        expect(r.bytesRead).to.equal(buf.length);
      } finally {
        fs.closeSync(fd);
      }
    });

    for (const { name, count, make } of dying) {
      it(`the worker dying mid-scan (${count} messages): its part is scanned here, same result, no unhandled rejection`, async () => {
        const { buf, fd } = spoolOf(name, count, make);
        const unhandled: unknown[] = [];
        const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
        process.on('unhandledRejection', onUnhandled);
        try {
          const seq = scan(buf, 0, buf.length, false);
          for (const delayMs of [0, 1, 2, 4]) {
            const scanning = scanFd(fd, 0, buf.length, { strictFrom: false }, 0);
            setTimeout(() => void stopScanWorker(), delayMs);
            expect((await scanning).messages, `worker stopped after ${delayMs} ms`).to.deep.equal(seq);
          }
          expect((await scanFd(fd, 0, buf.length, { strictFrom: false }, 0)).messages, 'a new worker afterwards').to.deep.equal(seq);
          await new Promise((r) => setTimeout(r, 50)); // let any late rejection surface
          expect(unhandled.map(String)).to.deep.equal([]);
        } finally {
          process.off('unhandledRejection', onUnhandled);
          fs.closeSync(fd);
        }
      });
    }
  });
});

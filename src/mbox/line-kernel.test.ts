// The wasm body kernel against its plain-JS contract (scanBodyRef) on random bytes: lengths
// not multiple of 16, CR/LF at the edges of the range and of 16-byte blocks, CRLF empty lines.
import { expect } from 'chai';
import fc from 'fast-check';
import { acquireKernel, type BodyKernel, createBodyKernel, KERNEL_WASM, releaseKernel, scanBodyRef } from './line-kernel.js';

/** Where the tests put their bytes: the kernel writes its counts at addresses 0..7. */
const B = 16;
const wasm = (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly;

/** Puts `text` (which starts with an LF) at B, ends the range 0-3 bytes short of it, and
 *  checks the kernel against scanBodyRef from B + 1. */
function expectAgrees(k: BodyKernel, text: string, trim: number): void {
  const buf = Buffer.from(text, 'latin1');
  const mem = k.bytes;
  mem.fill(0x0a, B, B + buf.length + 64);
  mem.set(buf, B);
  const n = B + Math.max(1, buf.length - (trim % 4));
  const want = scanBodyRef(mem, B + 1, n);
  const ret = k.scan(B + 1, n);
  expect({ ret, lf: k.lf(), crlf: k.crlf() }).to.deep.equal(want);
}

describe('mbox body kernel (wasm SIMD)', () => {
  it('the hand-assembled module validates and instantiates', () => {
    expect(wasm.validate(KERNEL_WASM)).to.equal(true);
    expect(createBodyKernel(1)).to.not.equal(null);
  });

  it('agrees with scanBodyRef on random ranges', () => {
    const k = createBodyKernel(1)!;
    const bytesArb = fc.array(fc.constantFrom(0x0a, 0x0d, 0x41, 0x0a, 0x41, 0x20, 0x46), { minLength: 1, maxLength: 300 });
    fc.assert(
      fc.property(bytesArb, fc.nat(), fc.nat(40), (arr, sPick, trim) => {
        const mem = k.bytes;
        mem.fill(0x0a, B, B + 400); // whatever lies past n must not matter
        mem.set([0x0a, ...arr], B); // mem[B] is an LF: B + 1 is always a line start
        const n = B + Math.max(1, arr.length + 1 - (trim % 4));
        const starts = [B + 1];
        for (let p = B + 1; p < n; p++) if (mem[p - 1] === 0x0a) starts.push(p);
        const s = starts[sPick % starts.length]!;
        const want = scanBodyRef(mem, s, n);
        const ret = k.scan(s, n);
        expect({ ret, lf: k.lf(), crlf: k.crlf() }).to.deep.equal(want);
      }),
      { numRuns: 5000 },
    );
  });

  it('finds the empty line and counts in long ranges (LF and CRLF, every block position)', () => {
    const k = createBodyKernel(1)!;
    for (const eol of ['\n', '\r\n']) {
      for (let len = 20; len < 120; len += 7) {
        for (let at = 0; at < 40; at++) {
          const line = 'x'.repeat(len % 23) + eol;
          const text = '\n' + line.repeat(at) + eol + 'tail'.repeat(10) + '\n'.repeat(20);
          const buf = Buffer.from(text, 'latin1');
          k.bytes.set(buf, B);
          const want = scanBodyRef(k.bytes, B + 1, B + buf.length);
          const ret = k.scan(B + 1, B + buf.length);
          expect(ret).to.be.greaterThan(0);
          expect({ ret, lf: k.lf(), crlf: k.crlf() }).to.deep.equal(want);
        }
      }
    }
  });

  it('agrees with scanBodyRef over kilobytes without an empty line (the 64-byte path and its counter flushes)', () => {
    const k = createBodyKernel(2)!;
    // Lines of 1-150 bytes ending in LF or CRLF, a few lone CRs, an empty line only now and then:
    // long stretches go through the fast path, which flushes its byte counters every 63 turns.
    const lineArb = fc.tuple(fc.integer({ min: 0, max: 150 }), fc.boolean(), fc.nat(99), fc.nat(149));
    fc.assert(
      fc.property(fc.array(lineArb, { minLength: 1, maxLength: 160 }), fc.nat(40), (lines, trim) => {
        let text = '\n';
        for (const [len, crlf, emptyPick, crAt] of lines) {
          const body = 'x'.repeat(len).split('');
          if (len > 0 && crAt < len && emptyPick % 7 === 0) body[crAt] = '\r'; // a CR not before an LF
          text += (emptyPick === 0 ? '' : body.join('') || 'y') + (crlf ? '\r\n' : '\n');
        }
        expectAgrees(k, text, trim);
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees with scanBodyRef on LF text with rare CRs anywhere (the CR-free path and where it hands over)', () => {
    const k = createBodyKernel(2)!;
    // Mostly LF lines, so the CR-free path runs for many turns; now and then a CRLF, a lone CR
    // or an empty line (LF or CRLF), at every position relative to the 64-byte turns.
    const lineArb = fc.tuple(fc.integer({ min: 0, max: 130 }), fc.nat(29), fc.nat(129));
    fc.assert(
      fc.property(fc.array(lineArb, { minLength: 1, maxLength: 200 }), fc.nat(40), fc.boolean(), (lines, trim, crFirst) => {
        let text = crFirst ? '\n\r' : '\n';
        for (const [len, pick, crAt] of lines) {
          const body = 'x'.repeat(len).split('');
          if (pick === 1 && len > 0) body[crAt % len] = '\r'; // a lone CR
          const line = pick === 2 ? '' : body.join('') || 'y';
          text += line + (pick === 3 || pick === 4 ? '\r\n' : '\n');
        }
        expectAgrees(k, text, trim);
      }),
      { numRuns: 3000 },
    );
  });

  it('passes over empty lines followed by text that cannot start a From_ line, and stops at one followed by F, LF or CR', () => {
    const k = createBodyKernel(2)!;
    for (const eol of ['\n', '\r\n']) {
      for (const stop of ['From x', 'F', eol, '\r\n']) {
        const para = ('some text here' + eol).repeat(5);
        const head = '\n' + (para + eol).repeat(30) + para; // 30 empty lines, each before 'some text'
        const buf = Buffer.from(head + eol + stop + eol + 'z'.repeat(40) + eol, 'latin1');
        k.bytes.fill(0, B, B + buf.length + 64);
        k.bytes.set(buf, B);
        const ret = k.scan(B + 1, B + buf.length);
        expect(ret, `${JSON.stringify(eol)} then ${JSON.stringify(stop)}`).to.equal(B + head.length);
        const lfs = head.split('\n').length - 2; // the LFs in [s, e): all but the one before s
        expect([k.lf(), k.crlf()]).to.deep.equal([lfs, eol === '\r\n' ? lfs : 0]);
        expect({ ret, lf: k.lf(), crlf: k.crlf() }).to.deep.equal(scanBodyRef(k.bytes, B + 1, B + buf.length));
      }
    }
  });

  it('pooled kernels are reused, with fresh counts', () => {
    const a = acquireKernel(2)!;
    releaseKernel(a);
    const b = acquireKernel(2)!;
    expect(b).to.equal(a);
    const c = acquireKernel(2)!;
    expect(c).to.not.equal(b);
    b.bytes.set(Buffer.from('\nab\n\ncd'), B);
    expect(b.scan(B + 1, B + 3)).to.equal(-(B + 1)); // too short to judge anything
    expect([b.lf(), b.crlf()]).to.deep.equal([0, 0]);
  });
});

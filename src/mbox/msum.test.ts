// The message checksum: the wasm stripe function against its JS twin, the result independent of
// how input is cut and of where it lies, and the changes it must always catch.
import { expect } from 'chai';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { createBodyKernel } from './line-kernel.js';
import { createMessageSum, MessageSum, msum, STRIPE, SUM_STATE_BYTES, sumStripesRef } from './msum.js';

/** msum computed by the JS-only path (no wasm), in one update. */
function jsSum(buf: Uint8Array): number {
  const s = new MessageSum(null);
  s.update(buf);
  return s.digest();
}

describe('msum (message checksum)', () => {
  it('the wasm stripe function equals the JS one', () => {
    const k = createBodyKernel(2)!;
    const at = 64;
    const data = at + SUM_STATE_BYTES;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: STRIPE, maxLength: 8 * STRIPE }), fc.array(fc.nat(), { minLength: 32, maxLength: 32 }), (bytes, seeds) => {
        const n = Math.floor(bytes.length / STRIPE);
        const lanes = Uint32Array.from(seeds, (v) => v >>> 0);
        new Uint32Array(k.buffer, at, 32).set(lanes);
        k.bytes.set(bytes, data);
        k.sum(at, data, n);
        sumStripesRef(lanes, bytes, 0, n);
        expect(Array.from(new Uint32Array(k.buffer, at, 32))).to.deep.equal(Array.from(lanes));
      }),
      { numRuns: 300 },
    );
  });

  it('does not depend on how the input is cut, nor on whether it lies in the kernel memory', () => {
    const k = createBodyKernel(4)!;
    const inPlace = new MessageSum(k, 64, 64 + SUM_STATE_BYTES, 4 * STRIPE);
    const inMem = Buffer.from(k.buffer, 65536, 3 * 65536);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat(3000), { maxLength: 8 }), (bytes, cutsRaw) => {
        const want = jsSum(bytes);
        const cuts = [0, ...cutsRaw.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b), bytes.length];
        const copied = createMessageSum();
        inMem.set(bytes);
        for (let c = 1; c < cuts.length; c++) {
          copied.update(bytes, cuts[c - 1], cuts[c]);
          inPlace.update(inMem, cuts[c - 1], cuts[c]);
        }
        expect(copied.digest()).to.equal(want);
        expect(inPlace.digest()).to.equal(want);
        expect(msum(bytes)).to.equal(want);
      }),
      { numRuns: 500 },
    );
  });

  it('a large input copied through a small scratch area gives the same sum', () => {
    const big = randomBytes(1_000_003);
    const k = createBodyKernel(1)!;
    const small = new MessageSum(k, 64, 64 + SUM_STATE_BYTES, 2 * STRIPE);
    small.update(big);
    expect(small.digest()).to.equal(jsSum(big));
  });

  it('always catches one changed byte, one changed aligned word, and a different length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 2000 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (bytes, at, delta) => {
        const base = msum(bytes);
        const one = Buffer.from(bytes);
        const i = at % one.length;
        one[i] = (one[i]! + delta) & 0xff;
        expect(msum(one), 'one byte').to.not.equal(base);
        const word = Buffer.from(bytes);
        const w = (at % Math.ceil(word.length / 4)) * 4;
        for (let j = w; j < Math.min(w + 4, word.length); j++) word[j] = (word[j]! ^ (delta * (j + 1))) & 0xff || 1;
        if (!word.equals(bytes)) expect(msum(word), 'one word').to.not.equal(base);
        expect(msum(Buffer.concat([bytes, Buffer.alloc(1)])), 'one NUL more').to.not.equal(base);
      }),
      { numRuns: 2000 },
    );
  });

  it('tells apart a message and the same bytes moved by a line, and two messages swapped', () => {
    const a = Buffer.from('From a@example.org Tue Jun  4 10:00:00 2024\nSubject: one\n\nbody one\n'.repeat(20));
    const b = Buffer.from('From b@example.org Tue Jun  4 10:00:00 2024\nSubject: two\n\nbody two\n'.repeat(20));
    expect(msum(Buffer.concat([a, b]))).to.not.equal(msum(Buffer.concat([b, a])));
    expect(msum(Buffer.concat([Buffer.from('x\n'), a]))).to.not.equal(msum(Buffer.concat([a, Buffer.from('x\n')])));
  });

  it('is the function the cache files were written with (a change here needs a cache format version)', () => {
    expect(msum(Buffer.alloc(0))).to.equal(PINNED.empty);
    expect(msum(Buffer.from('From a@b Tue Jun  4 10:00:00 2024\nSubject: x\n\nhello\n'))).to.equal(PINNED.short);
    expect(msum(Buffer.from('0123456789abcdef'.repeat(1000)))).to.equal(PINNED.long);
  });
});

const PINNED = { empty: 210160899, short: 1944321318, long: 3527552100 };

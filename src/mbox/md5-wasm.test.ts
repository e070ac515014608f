// The UIDLs' MD5 in wasm against node:crypto's, over lengths around every padding edge, bytes of
// every value, inputs that follow longer ones in the module's memory, and the fallback.
import { expect } from 'chai';
import fc from 'fast-check';
import { hash } from 'node:crypto';
import { MD5_K, MD5_WASM_MAX, md5HexLatin1, md5Parts, md5WasmAvailable } from './md5-wasm.js';

const oracle = (s: string): string => hash('md5', Buffer.from(s, 'latin1'), 'hex');
const latin1 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1');

describe('md5 in wasm (UIDLs)', () => {
  it('runs in wasm here', () => {
    expect(md5WasmAvailable()).to.equal(true);
  });

  it('derives the step constants RFC 1321 lists', () => {
    expect([MD5_K[0], MD5_K[1], MD5_K[31], MD5_K[32], MD5_K[63]]).to.deep.equal([0xd76aa478, 0xe8c7b756, 0x8d2a4c8a, 0xfffa3942, 0xeb86d391]);
  });

  it('gives RFC 1321\'s test suite digests', () => {
    expect(md5HexLatin1('')).to.equal('d41d8cd98f00b204e9800998ecf8427e');
    expect(md5HexLatin1('abc')).to.equal('900150983cd24fb0d6963f7d28e17f72');
    expect(md5HexLatin1('12345678901234567890123456789012345678901234567890123456789012345678901234567890')).to.equal('57edf4a22be3c955ac49da2e2107b67a');
  });

  it('equals node:crypto at every length up to five blocks, whatever came before', () => {
    // Longest first, so each input lies over the padding and bytes of a longer one.
    for (let n = 5 * 64 + 9; n >= 0; n--) {
      const s = latin1(Uint8Array.from({ length: n }, (_, i) => (i * 131 + n * 7) & 0xff));
      expect(md5HexLatin1(s), `length ${n}`).to.equal(oracle(s));
    }
  });

  it('equals node:crypto on random inputs, bytes 0x00-0xff', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
      const s = latin1(bytes);
      expect(md5HexLatin1(s)).to.equal(oracle(s));
    }), { numRuns: 500 });
  });

  it('hashes a character above 0xff by its low byte, as Buffer.from(s, "latin1") does', () => {
    expect(md5HexLatin1('\u0141x')).to.equal(oracle('\u0141x')).and.to.equal(oracle('\u0041x'));
  });

  it('hands inputs longer than its memory to node:crypto, and stays right after them', () => {
    for (const n of [MD5_WASM_MAX - 1, MD5_WASM_MAX, MD5_WASM_MAX + 1, 3 * MD5_WASM_MAX]) {
      const s = 'x'.repeat(n - 1) + '\xe9';
      expect(md5HexLatin1(s), `length ${n}`).to.equal(oracle(s));
    }
    expect(md5HexLatin1('abc')).to.equal('900150983cd24fb0d6963f7d28e17f72');
  });

  it('in parts equals node:crypto of the parts joined: short and long parts, chars above 0xff, past its memory', () => {
    const part = fc.oneof(
      fc.string({ maxLength: 20 }), // short parts are stored a character at a time
      fc.uint8Array({ maxLength: 600 }).map(latin1),
      fc.constantFrom('\u0141', '\n', 'received:', ''),
      fc.nat({ max: MD5_WASM_MAX + 100 }).map((n) => 'y'.repeat(n)),
    );
    fc.assert(fc.property(fc.array(part, { maxLength: 8 }), (parts) => {
      md5Parts.begin();
      for (const p of parts) md5Parts.add(p);
      expect(md5Parts.hex()).to.equal(oracle(parts.join('')));
    }), { numRuns: 300 });
    md5Parts.begin();
    md5Parts.add('abc');
    expect(md5Parts.hex(), 'after a spilled input').to.equal('900150983cd24fb0d6963f7d28e17f72');
  });
});

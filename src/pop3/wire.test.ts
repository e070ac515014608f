/** Wire encoder: CRLF conversion, dot-stuffing, final CRLF, TOP limits, chunk boundaries. */
import { expect } from 'chai';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { releaseWire, WireEncoder, WireTransform } from './wire.js';
import { FRAME_MAX, SIMD_CHUNK, simdAvailable } from './wire-simd.js';
import { cutAt } from './test-support.js';

function encode(chunks: Buffer[], bodyLines?: number, portable = false): { out: Buffer; enc: WireEncoder } {
  const enc = new WireEncoder(bodyLines === undefined ? { portable } : { bodyLines, portable });
  const parts = chunks.map((c) => enc.push(c));
  parts.push(enc.end());
  return { out: Buffer.concat(parts), enc };
}

/** Reference model: split into lines by the documented rules, no streaming. */
function reference(raw: string): { lines: string[] } {
  const lines: string[] = [];
  let rest = raw;
  for (;;) {
    const nl = rest.indexOf('\n');
    if (nl < 0) break;
    lines.push(rest.slice(0, nl > 0 && rest[nl - 1] === '\r' ? nl - 1 : nl));
    rest = rest.slice(nl + 1);
  }
  if (rest.length) lines.push(rest);
  return { lines };
}

const unstuff = (wire: string): string =>
  wire
    .split('\r\n')
    .map((l) => (l.startsWith('.') ? l.slice(1) : l))
    .join('\r\n');


describe('WireEncoder', () => {
  const table: [string, string][] = [
    ['', ''],
    ['a', 'a\r\n'],
    ['a\n', 'a\r\n'],
    ['a\r\n', 'a\r\n'],
    ['a\r\r\n', 'a\r\r\n'],
    ['a\rb\n', 'a\rb\r\n'],
    ['a\r', 'a\r\r\n'],
    ['\n\n', '\r\n\r\n'],
    ['.\n', '..\r\n'],
    ['..x\n.', '...x\r\n..\r\n'],
    ['x.\n.y', 'x.\r\n..y\r\n'],
    ['\r.\n', '\r.\r\n'],
  ];
  for (const [input, want] of table) {
    it(`encodes ${JSON.stringify(input)}`, () => {
      expect(encode([Buffer.from(input, 'latin1')]).out.toString('latin1')).to.equal(want);
      expect(encode([Buffer.from(input, 'latin1')], undefined, true).out.toString('latin1')).to.equal(want);
    });
  }

  it('uses the SIMD kernel on this runtime (Node 20 has WebAssembly SIMD)', () => {
    expect(simdAvailable).to.equal(true);
  });

  it('property: the SIMD kernel and the JavaScript path agree byte for byte, at any split', () => {
    // Mostly ordinary bytes, so 16-byte blocks with and without CR/LF/dot both occur.
    const alphabet = fc.oneof(
      { weight: 12, arbitrary: fc.constant('a') },
      { weight: 1, arbitrary: fc.constantFrom('.', '\r', '\n', '\r\n', '\n.', '\n..', 'x'.repeat(40)) },
    );
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 120 }), fc.array(fc.nat(2000), { maxLength: 6 }), (parts, cuts) => {
        const buf = Buffer.from(parts.join(''), 'latin1');
        const chunks = cutAt(buf, cuts);
        const fast = encode(chunks);
        const slow = encode(chunks, undefined, true);
        expect(fast.out.toString('latin1')).to.equal(slow.out.toString('latin1'));
        expect(fast.enc.octets).to.equal(slow.enc.octets);
        expect(fast.enc.stuffed).to.equal(slow.enc.stuffed);
        expect(fast.enc.complete).to.equal(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('SIMD kernel: a chunk larger than its buffer, with a CR/LF pair and a dot across the piece boundary', () => {
    const buf = Buffer.alloc(SIMD_CHUNK * 2 + 100, 0x41);
    buf[SIMD_CHUNK - 1] = 0x0d;
    buf[SIMD_CHUNK] = 0x0a;
    buf[SIMD_CHUNK + 1] = 0x2e;
    buf[2 * SIMD_CHUNK - 1] = 0x0a;
    buf[2 * SIMD_CHUNK] = 0x2e;
    const fast = encode([buf]);
    const slow = encode([buf], undefined, true);
    expect(fast.out.equals(slow.out)).to.equal(true);
    expect(fast.enc.stuffed).to.equal(2);
  });

  it('reuses an output buffer handed back with releaseWire, never one buffer for two live outputs', () => {
    // Chunks the size a RETR streams (its output goes into reusable slabs), different contents.
    const chunk = (fill: number): Buffer => {
      const b = Buffer.alloc(SIMD_CHUNK, fill);
      for (let i = 77; i < b.length; i += 78) b[i] = 0x0a;
      b[78] = 0x2e;
      return b;
    };
    const one = (b: Buffer): Buffer => new WireEncoder().push(b);
    const want = (b: Buffer): Buffer => new WireEncoder({ portable: true }).push(b);
    const a = one(chunk(0x41));
    expect(a.equals(want(chunk(0x41)))).to.equal(true);
    releaseWire(a);
    releaseWire(a); // a second release must not put it in the free list twice
    releaseWire(Buffer.from('not from the encoder')); // ignored
    const b = one(chunk(0x42));
    const c = one(chunk(0x43));
    expect(b.buffer).to.equal(a.buffer); // reused
    expect(c.buffer).to.not.equal(b.buffer);
    expect(b.equals(want(chunk(0x42)))).to.equal(true);
    expect(c.equals(want(chunk(0x43)))).to.equal(true);
    // Small outputs are exact buffers, never slabs (a held slab per small RETR would waste memory).
    const small = one(Buffer.from('hello\n'));
    releaseWire(small);
    expect(one(Buffer.from('x\n')).buffer === small.buffer && small.buffer.byteLength > 8192).to.equal(false);
  });

  it('frame(): status line, encoded message, final CRLF and terminator as push() and end() give them', () => {
    const tail = Buffer.from('.\r\n');
    const alphabet = fc.constantFrom('a', '.', '\r', '\n', 'F', ' ', '\u00e9');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 3000 }), fc.nat(99999), (chars, size) => {
        const msg = Buffer.from(chars.join(''), 'latin1');
        const head = `+OK ${size} octets\r\n`;
        const enc = new WireEncoder();
        const frame = enc.frame(head, msg, tail);
        const { out, enc: ref } = encode([msg], undefined, true);
        expect(frame, 'framed').to.not.equal(null);
        expect(frame!.equals(Buffer.concat([Buffer.from(head), out, tail]))).to.equal(true);
        expect([enc.octets, enc.stuffed, enc.complete]).to.deep.equal([ref.octets, ref.stuffed, true]);
        expect(enc.frame(head, msg, tail), 'once per encoder').to.equal(null);
        releaseWire(frame!);
      }),
      { numRuns: 300 },
    );
  });

  it('frame(): reuses a released frame of its size class, never one still lent; declines what might not fit, and TOP', () => {
    const tail = Buffer.from('.\r\n');
    const msg = (fill: number, n: number): Buffer => Buffer.alloc(n, fill).fill(0x0a, n - 1);
    const a = new WireEncoder().frame('+OK\r\n', msg(0x41, 10_000), tail)!;
    const b = new WireEncoder().frame('+OK\r\n', msg(0x42, 10_000), tail)!;
    expect(b.buffer).to.not.equal(a.buffer); // a is still lent
    releaseWire(a);
    releaseWire(a); // twice: still one entry in the free list
    const c = new WireEncoder().frame('+OK\r\n', msg(0x43, 10_000), tail)!;
    const d = new WireEncoder().frame('+OK\r\n', msg(0x44, 10_000), tail)!;
    expect(c.buffer).to.equal(a.buffer);
    expect(d.buffer).to.not.equal(a.buffer);
    expect(c.subarray(5, 10).toString()).to.equal('CCCCC');
    expect(b.subarray(5, 10).toString()).to.equal('BBBBB'); // untouched by c
    // A small message takes a small frame: a slow client's queued frames hold at most twice their bytes.
    const small = new WireEncoder().frame('+OK\r\n', Buffer.from('hi\n'), tail)!;
    expect(small.buffer.byteLength).to.equal(4096);
    for (const f of [b, c, d, small]) releaseWire(f);
    // Every byte may double: a message that could outgrow the largest frame is declined (push/end then).
    const big = Buffer.alloc((FRAME_MAX >> 1) - 2, 0x41);
    expect(new WireEncoder().frame('+OK\r\n', big, tail)).to.equal(null);
    expect(new WireEncoder().frame('+OK\r\n', big.subarray(0, (FRAME_MAX >> 1) - 10), tail)).to.not.equal(null);
    expect(new WireEncoder({ bodyLines: 3 }).frame('+OK\r\n', Buffer.from('a\n'), tail)).to.equal(null);
    expect(new WireEncoder({ portable: true }).frame('+OK\r\n', Buffer.from('a\n'), tail)).to.equal(null);
  });

  it('handles a CR at the end of one chunk and LF at the start of the next', () => {
    const { out } = encode([Buffer.from('a\r'), Buffer.from('\n.b\r'), Buffer.from('c\r'), Buffer.from('')]);
    expect(out.toString('latin1')).to.equal('a\r\n..b\rc\r\r\n');
  });

  it('property: output minus stuffing is the CRLF form; octets follow the size rule; any split', () => {
    const alphabet = fc.constantFrom('a', '.', '\r', '\n', 'F', ' ');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 80 }), fc.array(fc.nat(80), { maxLength: 5 }), (chars, cuts) => {
        const raw = chars.join('');
        const buf = Buffer.from(raw, 'latin1');
        const chunks = cutAt(buf, cuts);
        const { out, enc } = encode(chunks);
        const { lines } = reference(raw);
        const expected = lines.map((l) => l + '\r\n').join('');
        const wire = out.toString('latin1');
        expect(unstuff(wire)).to.equal(expected);
        const size = lines.reduce((n, l) => n + l.length + 2, 0);
        expect(enc.octets).to.equal(size);
        expect(out.length - enc.stuffed).to.equal(size);
        // every line that starts with "." on the wire is stuffed
        for (const l of wire.split('\r\n').slice(0, -1)) if (l.startsWith('.')) expect(l.startsWith('..')).to.equal(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('TOP: headers, the empty line, then n body lines', () => {
    const msg = Buffer.from('A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\nl3\nl4');
    expect(encode([msg], 0).out.toString()).to.equal('A: 1\r\nB: 2\r\n\r\n');
    expect(encode([msg], 2).out.toString()).to.equal('A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n');
    expect(encode([msg], 4).out.toString()).to.equal('A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\nl3\r\nl4\r\n');
    const big = encode([msg], 99);
    expect(big.out.toString()).to.equal('A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\nl3\r\nl4\r\n');
    expect(big.enc.complete).to.equal(true);
    expect(encode([msg], 1).enc.complete).to.equal(false);
    expect(encode([Buffer.from('H: x\n')], 0).out.toString()).to.equal('H: x\r\n'); // no body at all
  });

  it('TOP: same result at every split, and done stops consuming', () => {
    const msg = Buffer.from('A: 1\r\n\r\nl1\r\nl2\r\nl3\r\n');
    const want = 'A: 1\r\n\r\nl1\r\n';
    for (let i = 0; i <= msg.length; i++) {
      const { out, enc } = encode([msg.subarray(0, i), msg.subarray(i)], 1);
      expect(out.toString(), `split ${i}`).to.equal(want);
      expect(enc.done).to.equal(true);
    }
  });

  it('streams a large message in bounded chunks (64 MiB of long lines)', () => {
    const enc = new WireEncoder();
    const chunk = Buffer.alloc(65536, 0x41);
    chunk[100] = 0x0a;
    chunk[65535] = 0x0d; // CR at a chunk boundary, then LF? next chunk starts with 'A': ordinary CR
    let total = 0;
    for (let i = 0; i < 1024; i++) {
      const out = enc.push(chunk);
      expect(out.length).to.be.at.most(chunk.length * 2 + 3);
      total += out.length;
    }
    total += enc.end().length;
    expect(total).to.equal(enc.octets);
    expect(enc.octets).to.equal(1024 * 65536 + 1024 + 2); // one LF→CRLF per chunk, final CRLF
  });
});

describe('WireTransform', () => {
  it('ends early and emits truncated when the TOP limit is reached', async () => {
    const t = new WireTransform({ bodyLines: 1 });
    let truncated = false;
    t.on('truncated', () => (truncated = true));
    const src = Readable.from([Buffer.from('H: 1\n\nb1\nb2\n'), Buffer.from('b3\n')]);
    src.pipe(t);
    const out: Buffer[] = [];
    for await (const c of t) out.push(c as Buffer);
    expect(Buffer.concat(out).toString()).to.equal('H: 1\r\n\r\nb1\r\n');
    expect(truncated).to.equal(true);
  });

  it('passes a whole message through', async () => {
    const t = new WireTransform();
    Readable.from([Buffer.from('a\r'), Buffer.from('\nb')]).pipe(t);
    const out: Buffer[] = [];
    for await (const c of t) out.push(c as Buffer);
    expect(Buffer.concat(out).toString()).to.equal('a\r\nb\r\n');
  });
});

/**
 * The RETR fast path of the wire encoder (wire.ts): a tiny hand-assembled WebAssembly SIMD
 * kernel that turns stored bytes into CRLF lines with dot-stuffing at memory speed.
 *
 * Why: a 1 GB base64 attachment has ~14 million 76-byte lines. Any JavaScript formulation costs
 * at least one native call (indexOf, copy) or a bounds-checked byte loop per line and tops out
 * near 500 MB/s on this class of machine; this kernel moves 16 bytes per step through one SIMD
 * compare and store, and only looks at single bytes around CR and LF (~1.5 GB/s and more).
 *
 * Byte rule (equivalent to the line rules at the top of wire.ts, for RETR without a TOP limit):
 *   - every input byte is copied, a CR included, when it comes;
 *   - an LF gets a CR in front of it unless the byte just before it was a CR (so CRLF stays
 *     CRLF, LF becomes CRLF, and a CR not followed by LF stays an ordinary byte);
 *   - a "." that starts a line gets a second "." in front of it.
 * State between chunks is two bits: at line start, and last byte was CR. The caller appends the
 * final CRLF when the message does not end at a line start.
 *
 * Memory layout of the instance: [0,4) state out, [4,8) stuffed count out, SRC: input chunk,
 * DST: output (2×chunk + 16: every byte may double, and the 16-byte store may run past the end).
 * The instance is shared by all sessions: encode() is synchronous, so no two calls interleave.
 */
import { MODULE_HEADER, name, section, uleb, WA, type WasmMemory } from '../wasm/asm.js';

/** Input bytes per kernel call; larger chunks are fed in pieces. */
export const SIMD_CHUNK = 256 * 1024;
const SRC = 16;
const DST = SRC + SIMD_CHUNK;
const PAGES = Math.ceil((DST + 2 * SIMD_CHUNK + 16) / 65536);

// --- a minimal assembler: just the opcodes the kernel uses ----------------------------------
const BLOCK = [0x02, 0x40], LOOP = [0x03, 0x40], IF = [0x04, 0x40], ELSE = [0x05], END = [0x0b];
const BR = (d: number): number[] => [0x0c, d];
const BR_IF = (d: number): number[] => [0x0d, d];
const GET = (l: number): number[] => [0x20, l];
const SET = (l: number): number[] => [0x21, l];
const TEE = (l: number): number[] => [0x22, l];
const C = (n: number): number[] => [0x41, n]; // small non-negative constants only (< 64)
const LOAD8U = [0x2d, 0x00, 0x00], STORE8 = [0x3a, 0x00, 0x00], STORE8_1 = [0x3a, 0x00, 0x01], STORE32 = [0x36, 0x02, 0x00];
const EQZ = [0x45], EQ = [0x46], LE_U = [0x4d], GE_U = [0x4f];
const CTZ = [0x68], ADD = [0x6a], SUB = [0x6b], AND = [0x71], OR = [0x72], SHL = [0x74], SHR_U = [0x76];
const V_LOAD = [0xfd, 0x00, 0x00, 0x00], V_STORE = [0xfd, 0x0b, 0x00, 0x00];
const SPLAT8 = [0xfd, 0x0f], EQ8 = [0xfd, 0x23], V_OR = [0xfd, 0x50], BITMASK8 = [0xfd, 0x64];

// Locals: params 0 src, 1 end, 2 o (output pointer), 3 flags; then i32 and v128 locals.
const END_ = 1, O = 2, FLAGS = 3;
const I = 4, CH = 5, BOL = 6, PCR = 7, ST = 8, M = 9, K = 10, DST0 = 11;
const V = 12, LFV = 13, CRV = 14;
const inc = (l: number, by: number[]): number[] => [...GET(l), ...by, ...ADD, ...SET(l)];
const emit = (byte: number[]): number[] => [...GET(O), ...byte, ...STORE8, ...inc(O, C(1))];

const BODY: number[] = [
  ...GET(0), ...SET(I), ...GET(O), ...SET(DST0),
  ...GET(FLAGS), ...C(1), ...AND, ...SET(BOL),
  ...GET(FLAGS), ...C(1), ...SHR_U, ...C(1), ...AND, ...SET(PCR),
  ...C(10), ...SPLAT8, ...SET(LFV), ...C(13), ...SPLAT8, ...SET(CRV),
  ...BLOCK, ...LOOP,
  ...GET(I), ...GET(END_), ...GE_U, ...BR_IF(1),
  // Fast path: not at a line start and 16 bytes left: copy them, find the first CR or LF.
  ...GET(BOL), ...EQZ, ...GET(I), ...C(16), ...ADD, ...GET(END_), ...LE_U, ...AND, ...IF,
  ...GET(I), ...V_LOAD, ...SET(V), ...GET(O), ...GET(V), ...V_STORE,
  ...GET(V), ...GET(LFV), ...EQ8, ...GET(V), ...GET(CRV), ...EQ8, ...V_OR, ...BITMASK8, ...TEE(M), ...EQZ, ...IF,
  ...inc(I, C(16)), ...inc(O, C(16)), ...C(0), ...SET(PCR), ...BR(2),
  ...END,
  ...GET(M), ...CTZ, ...SET(K),
  // The first of them an LF not right after a CR (k > 0: the byte before it is ordinary): the
  // 16-byte store already put that LF at o+k; make it CR LF, and judge the next line's first
  // byte here, so an ordinary one goes straight on in this fast path.
  ...GET(I), ...GET(K), ...ADD, ...LOAD8U, ...C(10), ...EQ,
  ...GET(K), ...EQZ, ...EQZ, ...GET(PCR), ...EQZ, ...OR, ...AND, ...IF,
  ...GET(O), ...GET(K), ...ADD, ...C(13), ...STORE8,
  ...GET(O), ...GET(K), ...ADD, ...C(10), ...STORE8_1,
  ...inc(I, [...GET(K), ...C(1), ...ADD]), ...inc(O, [...GET(K), ...C(2), ...ADD]), ...C(0), ...SET(PCR),
  ...C(1), ...SET(BOL),
  ...GET(I), ...GET(END_), ...GE_U, ...EQZ, ...IF, ...GET(I), ...LOAD8U, ...C(46), ...EQ, ...SET(BOL), ...END,
  ...BR(2),
  ...END,
  ...GET(K), ...IF,
  ...inc(I, GET(K)), ...inc(O, GET(K)), ...C(0), ...SET(PCR),
  ...END,
  ...END,
  // One byte at a time: line starts, CR and LF.
  ...GET(I), ...LOAD8U, ...SET(CH), ...inc(I, C(1)),
  ...GET(BOL), ...IF,
  ...C(0), ...SET(BOL),
  ...GET(CH), ...C(46), ...EQ, ...IF, ...emit(C(46)), ...inc(ST, C(1)), ...END,
  ...END,
  ...GET(CH), ...C(10), ...EQ, ...IF,
  ...GET(PCR), ...EQZ, ...IF, ...emit(C(13)), ...END,
  ...emit(C(10)), ...C(1), ...SET(BOL), ...C(0), ...SET(PCR),
  ...ELSE,
  ...emit(GET(CH)), ...GET(CH), ...C(13), ...EQ, ...SET(PCR),
  ...END,
  ...BR(0),
  ...END, ...END,
  ...C(0), ...GET(BOL), ...GET(PCR), ...C(1), ...SHL, ...OR, ...STORE32,
  ...C(4), ...GET(ST), ...STORE32,
  ...GET(O), ...GET(DST0), ...SUB,
  ...END,
];

function moduleBytes(): Uint8Array {
  const locals = [2, 8, 0x7f, 3, 0x7b]; // 8 × i32, 3 × v128
  const fn = [...locals, ...BODY];
  return Uint8Array.from([
    ...MODULE_HEADER,
    ...section(1, [1, 0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0x00, ...uleb(PAGES)]),
    ...section(7, [2, ...name('encode'), 0x00, 0, ...name('mem'), 0x02, 0]),
    ...section(10, [1, ...uleb(fn.length), ...fn]),
  ]);
}

type Kernel = (src: number, end: number, dst: number, flags: number) => number;

/** The instance, or null where WebAssembly SIMD is unavailable (the JS encoder is used then). */
const kernel = ((): { encode: Kernel; mem: Uint8Array; state: Int32Array } | null => {
  try {
    if (process.env.POPSPOOL_NO_SIMD) return null; // lets tests and operators force the JS path
    const bytes = moduleBytes();
    if (!WA || !WA.validate(bytes)) return null;
    const exports = new WA.Instance(new WA.Module(bytes)).exports as { encode: Kernel; mem: WasmMemory };
    const buffer = exports.mem.buffer; // fixed size: the module never grows its memory
    return { encode: exports.encode, mem: new Uint8Array(buffer), state: new Int32Array(buffer, 0, 2) };
  } catch {
    return null;
  }
})();

export const simdAvailable = kernel !== null;

/** Encoder state carried between chunks. */
export interface SimdState {
  atLineStart: boolean;
  lastCR: boolean;
}

/**
 * Output slabs: a 1 GB RETR would otherwise allocate a fresh Buffer per chunk, ~1 GB in all:
 * fresh memory costs page faults and collections (1 GB RETR: 3 s of CPU with fresh buffers on
 * both sides, 1 s with reused ones), and the collector's pace, not the data, set the peak RSS
 * (300 MB and more were seen). Output goes into slabs of SLAB bytes instead; the session hands each one back with
 * releaseWire() once the socket has written it, and the next chunk reuses it. A chunk whose
 * output does not fit a slab (dot-stuffing and CRs on almost every byte) gets an exact Buffer,
 * as does a small one (SLAB_MIN).
 */
const SLAB = SIMD_CHUNK + (SIMD_CHUNK >> 2);
/** Smaller outputs get an exact Buffer: a slab held for a 10 KB message would waste 300 KB per
 *  session while the socket drains, and small buffers come from Node's pool anyway. */
const SLAB_MIN = SLAB >> 1;
/** Free slabs kept for reuse, all sessions together (more are left to the garbage collector):
 *  a streaming RETR has ~3 in flight (one held back, one in the socket, one being filled). */
const FREE_SLABS_MAX = 16;

/**
 * Frames: a whole reply to a RETR of a small message (its status line, the encoded message and
 * the ".CRLF") in one buffer, so it goes out as one plain write instead of a corked writev of
 * three buffers, and takes a reused buffer instead of a fresh ArrayBuffer per message (for a
 * message of 2–20 KB, Buffer.allocUnsafe allocates one every time). Frames come in size
 * classes, powers of two from FRAME_MIN to FRAME_MAX, so a frame waiting in a slow client's
 * socket buffer holds at most twice its bytes.
 */
const FRAME_MIN = 4096;
export const FRAME_MAX = 64 * 1024;
const FREE_FRAMES_MAX = 32;

/** Free buffers by capacity (SLAB, or a frame class), and how many of each are kept. */
const free = new Map<number, Buffer[]>([[SLAB, []]]);
const keep = new Map<number, number>([[SLAB, FREE_SLABS_MAX]]);
for (let size = FRAME_MIN; size <= FRAME_MAX; size <<= 1) {
  free.set(size, []);
  keep.set(size, FREE_FRAMES_MAX);
}
/** Buffers handed out and not yet released, with their capacity (keyed by their memory: a
 *  released view may be a subarray). */
const lent = new WeakMap<ArrayBufferLike, number>();

/** A reused (or new) buffer of `capacity` bytes, one of the capacities in `free`. */
function take(capacity: number): Buffer {
  const b = free.get(capacity)!.pop() ?? Buffer.allocUnsafeSlow(capacity);
  lent.set(b.buffer, capacity);
  return b;
}

/**
 * Gives an output buffer of simdEncode or simdFrame back for reuse. Call it only when nothing
 * will read `buf` again (the socket's write callback); buffers that are neither slabs nor
 * frames, or already released, are ignored, so calling it on any encoder output is safe.
 */
export function releaseWire(buf: Buffer): void {
  const ab = buf.buffer;
  const capacity = lent.get(ab);
  if (capacity === undefined) return;
  lent.delete(ab);
  const list = free.get(capacity)!;
  if (list.length < keep.get(capacity)!) list.push(Buffer.from(ab, 0, capacity));
}

/** Whether simdFrame takes a message of `len` bytes after a status line of `headLen`: each byte may double. */
export function frameFits(headLen: number, len: number, tailLen: number): boolean {
  return headLen + 2 * len + 2 + tailLen <= FRAME_MAX;
}

/**
 * `head` (headLen bytes as UTF-8), `chunk` encoded from state `st`, the CRLF a message without
 * a final newline still needs, then `tail`, in one frame (see releaseWire). Only call when
 * simdAvailable and frameFits. Leaves `st` at a line start; returns the frame, the stuffing
 * dots added and the wire octets of the message (the RFC 1939 size: stuffing not counted).
 */
export function simdFrame(head: string, headLen: number, chunk: Buffer, st: SimdState, tail: Buffer): { out: Buffer; stuffed: number; octets: number } {
  const k = kernel!;
  let n = 0;
  let stuffed = 0;
  let atLineStart = st.atLineStart;
  if (chunk.length > 0) {
    k.mem.set(chunk, SRC);
    n = k.encode(SRC, SRC + chunk.length, DST, (st.atLineStart ? 1 : 0) | (st.lastCR ? 2 : 0));
    atLineStart = (k.state[0]! & 1) !== 0;
    stuffed = k.state[1]!;
  }
  // The kernel already sent a trailing CR as an ordinary byte; only a final CRLF may be missing.
  const crlf = !atLineStart;
  st.atLineStart = true;
  st.lastCR = false;
  const size = headLen + n + (crlf ? 2 : 0) + tail.length;
  let capacity = FRAME_MIN;
  while (capacity < size) capacity <<= 1;
  const frame = take(capacity);
  frame.write(head, 0, headLen, 'utf8');
  frame.set(k.mem.subarray(DST, DST + n), headLen);
  let o = headLen + n;
  if (crlf) {
    frame[o++] = 0x0d;
    frame[o++] = 0x0a;
  }
  frame.set(tail, o);
  return { out: frame.subarray(0, size), stuffed, octets: n - stuffed + (crlf ? 2 : 0) };
}

/**
 * Encodes `chunk` (any length) into a Buffer (a slab when it fits; see releaseWire); updates
 * `st` and returns the stuffing dots added in `stuffed`. Only call when simdAvailable.
 */
export function simdEncode(chunk: Buffer, st: SimdState): { out: Buffer; stuffed: number } {
  const k = kernel!;
  const parts: Buffer[] = [];
  let stuffed = 0;
  for (let p = 0; p < chunk.length; p += SIMD_CHUNK) {
    const piece = chunk.subarray(p, Math.min(chunk.length, p + SIMD_CHUNK));
    k.mem.set(piece, SRC);
    const n = k.encode(SRC, SRC + piece.length, DST, (st.atLineStart ? 1 : 0) | (st.lastCR ? 2 : 0));
    const flags = k.state[0]!;
    st.atLineStart = (flags & 1) !== 0;
    st.lastCR = (flags & 2) !== 0;
    stuffed += k.state[1]!;
    const out = n >= SLAB_MIN && n <= SLAB ? take(SLAB).subarray(0, n) : Buffer.allocUnsafe(n);
    out.set(k.mem.subarray(DST, DST + n));
    parts.push(out);
  }
  if (parts.length === 1) return { out: parts[0]!, stuffed };
  const out = Buffer.concat(parts);
  for (const b of parts) releaseWire(b);
  return { out, stuffed };
}

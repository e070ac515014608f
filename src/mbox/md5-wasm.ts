/**
 * MD5 (RFC 1321) as a hand-assembled wasm function, for the UIDLs of a scan (uidl.ts): one per
 * message, over ~100–300 bytes (the From_ line and a few header fields). node:crypto hashes a
 * long input faster, but each call costs a Buffer for the input, a hash context and a trip into
 * C++. Here the input is written as latin1 straight into the module's memory, one call pads it,
 * hashes it and writes the digest as 32 lower-case hex digits, and those are read back as a
 * string. 50,000 inputs of 183 bytes: 37–41 ms against 45 ms through `crypto.hash` (the hashing
 * itself is 22 ms of that: ~430 MB/s). In a scan the gain is larger, since no Buffer per message
 * feeds the garbage collector: scan-bench on the 865 MB 50k spool, alternating runs (11 and
 * 15): process CPU 649 → 591 and 704 → 638 ms median, wall 355 → 340 and 382 → 348 ms.
 *
 * hex(len): the MD5 of the `len` bytes at IN_AT, as hex at OUT_AT. The caller leaves PAD_ROOM
 * bytes free after the input for the padding. Per 64-byte block the 64 steps run unrolled with
 * the four working variables in locals, renamed at assembly time (no moves); the sixteen message
 * words are loaded little-endian as they are (wasm's byte order is MD5's). The step constants
 * are derived here from their definition (the integer part of 2^32 |sin(i + 1)|), not typed in.
 *
 * The WAT:
 *   end = IN_AT + ((len + 8) / 64 + 1) * 64
 *   mem[IN_AT + len] = 0x80; fill [IN_AT + len + 1, end - 8) with 0; i64 at end - 8 = len * 8
 *   a, b, c, d = the initial values; p = IN_AT
 *   (loop while p < end: save a..d; 64 steps; add the saved values; p += 64)
 *   step i: a = b + rotl(a + f_i(b, c, d) + K[i] + M[g_i], s_i), then (a, b, c, d) ← (d, a, b, c)
 *   the digest's 16 bytes (a..d little-endian) → each byte's high and low nibble looked up in
 *   "0123456789abcdef" (i8x16.swizzle) and interleaved (i8x16.shuffle) into 32 characters.
 */
import { hash } from 'node:crypto';
import { i32const, i64const, instantiateOwn, MODULE_HEADER, name, section, uleb, vec, type WasmMemory } from '../wasm/asm.js';

/** The 64 step constants: floor(2^32 · |sin(i + 1)|). */
export const MD5_K: readonly number[] = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);
const SHIFTS = [[7, 12, 17, 22], [5, 9, 14, 20], [4, 11, 16, 23], [6, 10, 15, 21]] as const;
const IV = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/** Where the hex digest is written, the digest's bytes on the way, and where the input starts. */
const OUT_AT = 0;
const DIGEST_AT = 32;
const IN_AT = 64;
/** Bytes after the input that the padding may overwrite. */
const PAD_ROOM = 72;
const PAGES = 2;

// Opcodes.
const BLOCK = 0x02, LOOP = 0x03, END = 0x0b, BR_IF = 0x0d, VOID = 0x40;
const LOCAL_GET = 0x20, LOCAL_SET = 0x21;
const I32_LOAD = 0x28, I32_STORE = 0x36, I64_STORE = 0x37, I32_STORE8 = 0x3a;
const I32_GE_U = 0x4f, I32_ADD = 0x6a, I32_SUB = 0x6b, I32_MUL = 0x6c, I32_DIV_U = 0x6e;
const I32_AND = 0x71, I32_OR = 0x72, I32_XOR = 0x73, I32_ROTL = 0x77, I64_SHL = 0x86, I64_EXTEND_I32_U = 0xad;
const MEMORY_FILL = [0xfc, 0x0b, 0x00];
const V128_LOAD = [0xfd, 0x00], V128_STORE = [0xfd, 0x0b], V128_CONST = [0xfd, 0x0c];
const I8X16_SHUFFLE = [0xfd, 0x0d], I8X16_SWIZZLE = [0xfd, 0x0e], I8X16_SPLAT = [0xfd, 0x0f];
const V128_AND = [0xfd, 0x4e], I8X16_SHR_U = [0xfd, 0x6d];
const I32 = 0x7f, V128 = 0x7b;

// Locals: param len; i32 p, end, a, b, c, d, sa, sb, sc, sd; v128 x, hi.
const LEN = 0, P = 1, END_ = 2, A = 3, SAVED = 7, X = 11, HI = 12;
const get = (k: number): number[] => [LOCAL_GET, k];
const set = (k: number): number[] => [LOCAL_SET, k];

/** The round function of step i on the locals b, c, d (its value on the stack). */
function f(i: number, b: number, c: number, d: number): number[] {
  switch (i >> 4) {
    case 0: return [...get(d), ...get(b), ...get(c), ...get(d), I32_XOR, I32_AND, I32_XOR]; // d ^ (b & (c ^ d))
    case 1: return [...get(c), ...get(d), ...get(b), ...get(c), I32_XOR, I32_AND, I32_XOR]; // c ^ (d & (b ^ c))
    case 2: return [...get(b), ...get(c), I32_XOR, ...get(d), I32_XOR]; // b ^ c ^ d
    default: return [...get(c), ...get(b), ...get(d), ...i32const(-1), I32_XOR, I32_OR, I32_XOR]; // c ^ (b | ~d)
  }
}

/** Which message word step i adds. */
const word = (i: number): number => [i, 5 * i + 1, 3 * i + 5, 7 * i][i >> 4]! % 16;

function steps(): number[] {
  const out: number[] = [];
  // v[j] is the local currently holding working variable j (a = 0 … d = 3).
  let v = [A, A + 1, A + 2, A + 3];
  for (let i = 0; i < 64; i++) {
    const [a, b, c, d] = v as [number, number, number, number];
    out.push(
      ...get(b),
      ...get(a), ...f(i, b, c, d), I32_ADD, ...i32const(MD5_K[i]! | 0), I32_ADD,
      ...get(P), I32_LOAD, 2, ...uleb(4 * word(i)), I32_ADD,
      ...i32const(SHIFTS[i >> 4]![i & 3]!), I32_ROTL, I32_ADD, ...set(a),
    );
    v = [d, a, b, c];
  }
  // 64 steps rotate the names 64 times (a multiple of 4): v is a, b, c, d again.
  return out;
}

const HEX_DIGITS = [...Buffer.from('0123456789abcdef', 'latin1')];

const BODY: number[] = [
  2, 10, I32, 2, V128, // locals: 10 i32 (p, end, a, b, c, d, and the saved four), 2 v128
  // end = IN_AT + ((len + 8) / 64 + 1) * 64
  ...i32const(IN_AT), ...get(LEN), ...i32const(8), I32_ADD, ...i32const(64), I32_DIV_U, ...i32const(1), I32_ADD,
  ...i32const(64), I32_MUL, I32_ADD, ...set(END_),
  // mem[IN_AT + len] = 0x80
  ...get(LEN), ...i32const(0x80), I32_STORE8, 0, ...uleb(IN_AT),
  // zero [IN_AT + len + 1, end - 8)
  ...get(LEN), ...i32const(IN_AT + 1), I32_ADD, ...i32const(0),
  ...get(END_), ...get(LEN), I32_SUB, ...i32const(IN_AT + 9), I32_SUB, ...MEMORY_FILL,
  // the bit length, little-endian, in the last 8 bytes
  ...get(END_), ...i32const(8), I32_SUB, ...get(LEN), I64_EXTEND_I32_U, ...i64const(3n), I64_SHL, I64_STORE, 3, 0,
  ...IV.flatMap((x, j) => [...i32const(x | 0), ...set(A + j)]),
  ...i32const(IN_AT), ...set(P),
  BLOCK, VOID, LOOP, VOID,
  ...get(P), ...get(END_), I32_GE_U, BR_IF, 1,
  ...[0, 1, 2, 3].flatMap((j) => [...get(A + j), ...set(SAVED + j)]),
  ...steps(),
  ...[0, 1, 2, 3].flatMap((j) => [...get(A + j), ...get(SAVED + j), I32_ADD, ...set(A + j)]),
  ...get(P), ...i32const(64), I32_ADD, ...set(P),
  0x0c, 0, // br 0
  END, END,
  // The digest's bytes, then each byte as two hex digits.
  ...[0, 1, 2, 3].flatMap((j) => [...i32const(DIGEST_AT + 4 * j), ...get(A + j), I32_STORE, 2, 0]),
  ...i32const(0), ...V128_LOAD, 0, ...uleb(DIGEST_AT), ...set(X),
  ...V128_CONST, ...HEX_DIGITS, ...get(X), ...i32const(4), ...I8X16_SHR_U, ...I8X16_SWIZZLE, ...set(HI),
  ...V128_CONST, ...HEX_DIGITS, ...get(X), ...i32const(0x0f), ...I8X16_SPLAT, ...V128_AND, ...I8X16_SWIZZLE, ...set(X),
  // x now holds the low digits, hi the high ones. Interleaved: hi0 lo0 hi1 lo1 …
  ...i32const(0), ...get(HI), ...get(X), ...I8X16_SHUFFLE, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
  ...V128_STORE, 0, ...uleb(OUT_AT),
  ...i32const(0), ...get(HI), ...get(X), ...I8X16_SHUFFLE, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31,
  ...V128_STORE, 0, ...uleb(OUT_AT + 16),
  END,
];

/** The module's binary: two pages of its own memory, exported as "mem". */
export const MD5_WASM = new Uint8Array([
  ...MODULE_HEADER,
  ...section(1, vec([[0x60, 1, I32, 0]])), // (i32) -> ()
  ...section(3, vec([[0]])),
  ...section(5, vec([[0x00, PAGES]])),
  ...section(7, vec([[...name('hex'), 0x00, 0], [...name('mem'), 0x02, 0]])),
  ...section(10, vec([[...uleb(BODY.length), ...BODY]])),
]);

interface Md5Wasm {
  readonly mem: Buffer;
  hex(len: number): void;
}

let instance: Md5Wasm | null | undefined;

function md5Wasm(): Md5Wasm | null {
  if (instance !== undefined) return instance;
  const ex = instantiateOwn(MD5_WASM);
  instance = ex && { mem: Buffer.from((ex['mem'] as WasmMemory).buffer), hex: ex['hex'] as Md5Wasm['hex'] };
  return instance;
}

/** Whether the wasm module runs here (else every call goes to node:crypto). */
export function md5WasmAvailable(): boolean {
  return md5Wasm() !== null;
}

/** The largest input the module takes; longer ones (rare: huge header fields) go to node:crypto. */
export const MD5_WASM_MAX = PAGES * 65536 - IN_AT - PAD_ROOM;

/** MD5 of a latin1 string (each character's low byte, as Buffer.from(s, 'latin1')), in hex. */
export function md5HexLatin1(s: string): string {
  const w = md5Wasm();
  if (w === null || s.length > MD5_WASM_MAX) return hash('md5', Buffer.from(s, 'latin1'), 'hex');
  w.hex(w.mem.write(s, IN_AT, 'latin1'));
  return w.mem.toString('latin1', OUT_AT, OUT_AT + 32);
}

/**
 * MD5 of a latin1 input given in parts, written one after another straight into the module's
 * memory: begin(), add() each part, hex(). Same digest as md5HexLatin1 of the parts joined,
 * without the joined string (a scan hashes one input a message, and joining its From_ line and
 * header fields cost ~400 bytes of strings a message). Synchronous use only: one writer per
 * thread, shared.
 */
class Md5Parts {
  #len = 0;
  /** The parts so far as a string, once they do not fit the module (or without wasm). */
  #spill: string | null = null;

  begin(): void {
    this.#len = 0;
    this.#spill = md5Wasm() === null ? '' : null;
  }

  add(s: string): void {
    if (this.#spill !== null) {
      this.#spill += s;
      return;
    }
    const w = md5Wasm()!;
    if (this.#len + s.length > MD5_WASM_MAX) {
      this.#spill = w.mem.toString('latin1', IN_AT, IN_AT + this.#len) + s;
      return;
    }
    const mem = w.mem;
    let at = IN_AT + this.#len;
    if (s.length <= SHORT_PART) {
      for (let i = 0; i < s.length; i++) mem[at++] = s.charCodeAt(i); // a typed array keeps the low byte, as latin1 does
      this.#len += s.length;
    } else {
      this.#len += mem.write(s, at, 'latin1');
    }
  }

  hex(): string {
    if (this.#spill !== null) return md5HexLatin1(this.#spill);
    const w = md5Wasm()!;
    w.hex(this.#len);
    return w.mem.toString('latin1', OUT_AT, OUT_AT + 32);
  }
}

/** Parts up to this long are stored a character at a time rather than through Buffer.write. */
const SHORT_PART = 16;

export const md5Parts = new Md5Parts();

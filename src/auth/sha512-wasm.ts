/**
 * SHA-512 (FIPS 180-4) as a hand-assembled wasm function, for SHA-512-crypt's 5,000 rounds
 * (sha-crypt.ts). Node's crypto hashes a block far faster, but a round of SHA-512-crypt hashes
 * only one or two blocks, and through node:crypto each round costs a Hash object and five calls
 * into C++: that overhead, not the hashing, made unixcrypt take ~20 ms a login here. One call
 * into this module per round, on bytes already in its memory, takes well under a microsecond.
 *
 * digest(msg, blocks, out): the SHA-512 of `blocks` 128-byte blocks at `msg` (already padded by
 * the caller), written big-endian to the 64 bytes at `out`. Per block, the 80-word message
 * schedule is expanded into memory (SCHED_AT), then the 80 rounds run unrolled with the working
 * variables in locals, renamed at assembly time (no moves), so few values are live at once.
 * Words are byte-swapped on load and store with one i8x16.shuffle per pair. The round constants
 * and initial values are derived here from their definition (fractional parts of the cube and
 * square roots of the first primes) rather than typed in.
 *
 * The WAT (W[t] is the i64 at SCHED_AT + 8t; a..h named after their current locals):
 *   for t in 16..79: W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16]
 *   round t: T1 = h + Σ1(e) + (g ^ (e & (f ^ g))) + K[t] + W[t]
 *            d += T1;  h = T1 + Σ0(a) + ((a & b) | (c & (a | b)))
 *            then the names rotate: (a..h) ← (h, a, b, c, d, e, f, g)
 */
import { i32const, i64const, instantiateOwn, MODULE_HEADER, name, section, uleb, vec, type WasmMemory } from '../wasm/asm.js';

/** Exact integer k-th root (floor) of a non-negative BigInt, by Newton's method. */
function iroot(n: bigint, k: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << (BigInt(n.toString(2).length) / k + 1n); // above the root
  for (;;) {
    const y = ((k - 1n) * x + n / x ** (k - 1n)) / k;
    if (y >= x) return x;
    x = y;
  }
}

function firstPrimes(count: number): bigint[] {
  const out: bigint[] = [];
  for (let n = 2; out.length < count; n++) if (out.every((p) => n % Number(p) !== 0)) out.push(BigInt(n));
  return out;
}

const MASK64 = (1n << 64n) - 1n;
/** K[t]: the first 64 fractional bits of the cube roots of the first 80 primes. */
export const SHA512_K: readonly bigint[] = firstPrimes(80).map((p) => iroot(p << 192n, 3n) & MASK64);
/** H(0): the first 64 fractional bits of the square roots of the first 8 primes. */
export const SHA512_IV: readonly bigint[] = firstPrimes(8).map((p) => iroot(p << 128n, 2n) & MASK64);

// Opcodes.
const BLOCK = 0x02, LOOP = 0x03, END = 0x0b, BR = 0x0c, BR_IF = 0x0d, VOID = 0x40;
const LOCAL_GET = 0x20, LOCAL_SET = 0x21, LOCAL_TEE = 0x22;
const I32_EQZ = 0x45, I32_ADD = 0x6a, I32_SUB = 0x6b, I64_LOAD = 0x29, I64_STORE = 0x37;
const I64_ADD = 0x7c, I64_AND = 0x83, I64_OR = 0x84, I64_XOR = 0x85, I64_SHR_U = 0x88, I64_ROTR = 0x8a;
const V128_LOAD = [0xfd, 0x00], V128_STORE = [0xfd, 0x0b], I8X16_SHUFFLE = [0xfd, 0x0d];
const I64X2_SPLAT = [0xfd, 0x12], I64X2_REPLACE_LANE = [0xfd, 0x1e];
const I32 = 0x7f, I64 = 0x7e, V128 = 0x7b;

// Locals: params msg, blocks, out (i32); then i64 H0..H7, V0..V7 (working), T1; v128 tmp.
const MSG = 0, BLOCKS = 1, OUT = 2;
const H0 = 3, V0 = 11, T1 = 19, TMP = 20;
/** Where the message schedule lives: the last 640 bytes of the page (callers keep out). */
export const SCHED_AT = 65536 - 640;

const get = (k: number): number[] => [LOCAL_GET, k];
/** Reverses the bytes of each 64-bit half of the v128 on the stack (big-endian words to and
 *  from wasm's little-endian): a shuffle of the vector with itself. */
const BSWAP64X2 = [LOCAL_TEE, TMP, LOCAL_GET, TMP, ...I8X16_SHUFFLE, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8];
/** i64.load / i64.store of W[t] (align 8: 2^3). */
const loadW = (t: number): number[] => [...i32const(0), I64_LOAD, 3, ...uleb(SCHED_AT + 8 * t)];
const storeW = (t: number, value: number[]): number[] => [...i32const(0), ...value, I64_STORE, 3, ...uleb(SCHED_AT + 8 * t)];
const rotrOf = (x: number[], n: number): number[] => [...x, ...i64const(BigInt(n)), I64_ROTR];
const rotr = (k: number, n: number): number[] => rotrOf(get(k), n);
const bigSigma = (k: number, a: number, b: number, c: number): number[] => [...rotr(k, a), ...rotr(k, b), I64_XOR, ...rotr(k, c), I64_XOR];
/** σ(x) = rotr(x, a) ^ rotr(x, b) ^ (x >>> s), x a schedule word (kept in T1 while in use). */
const smallSigma = (t: number, a: number, b: number, sh: number): number[] =>
  [...loadW(t), LOCAL_TEE, T1, ...i64const(BigInt(a)), I64_ROTR, ...rotr(T1, b), I64_XOR, ...get(T1), ...i64const(BigInt(sh)), I64_SHR_U, I64_XOR];

function schedule(): number[] {
  const out: number[] = [];
  for (let t = 16; t < 80; t++) {
    out.push(...storeW(t, [...smallSigma(t - 2, 19, 61, 6), ...loadW(t - 7), I64_ADD, ...smallSigma(t - 15, 1, 8, 7), I64_ADD, ...loadW(t - 16), I64_ADD]));
  }
  return out;
}

function rounds(): number[] {
  const out: number[] = [];
  // v[j] is the local currently holding working variable j (a = 0 … h = 7).
  let v = [0, 1, 2, 3, 4, 5, 6, 7].map((j) => V0 + j);
  for (let t = 0; t < 80; t++) {
    const [a, b, c, d, e, f, g, h] = v as [number, number, number, number, number, number, number, number];
    out.push(
      ...get(h), ...bigSigma(e, 14, 18, 41), I64_ADD,
      ...get(g), ...get(e), ...get(f), ...get(g), I64_XOR, I64_AND, I64_XOR, I64_ADD,
      ...i64const(SHA512_K[t]!), I64_ADD, ...loadW(t), I64_ADD, LOCAL_TEE, T1,
      ...get(d), I64_ADD, LOCAL_SET, d,
      ...get(T1), ...bigSigma(a, 28, 34, 39), I64_ADD,
      ...get(a), ...get(b), I64_AND, ...get(c), ...get(a), ...get(b), I64_OR, I64_AND, I64_OR, I64_ADD, LOCAL_SET, h,
    );
    v = [h, a, b, c, d, e, f, g];
  }
  // After 80 rounds the names have rotated 80 times (a multiple of 8): v is V0..V7 again.
  return out;
}

const BODY: number[] = [
  2, 17, I64, 1, V128, // locals: 17 i64 (H0-H7, V0-V7, T1), 1 v128
  ...SHA512_IV.flatMap((iv, j) => [...i64const(iv), LOCAL_SET, H0 + j]),
  BLOCK, VOID, LOOP, VOID,
  ...get(BLOCKS), I32_EQZ, BR_IF, 1,
  // The block's 16 big-endian words, two per load, into W[0..15]; then the rest of the schedule.
  ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((j) => [
    ...i32const(0), ...get(MSG), ...V128_LOAD, 0, ...uleb(16 * j), ...BSWAP64X2, ...V128_STORE, 0, ...uleb(SCHED_AT + 16 * j),
  ]),
  ...schedule(),
  ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((j) => [...get(H0 + j), LOCAL_SET, V0 + j]),
  ...rounds(),
  ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((j) => [...get(H0 + j), ...get(V0 + j), I64_ADD, LOCAL_SET, H0 + j]),
  ...get(MSG), ...i32const(128), I32_ADD, LOCAL_SET, MSG,
  ...get(BLOCKS), ...i32const(1), I32_SUB, LOCAL_SET, BLOCKS,
  BR, 0,
  END, END,
  ...[0, 1, 2, 3].flatMap((j) => [
    ...get(OUT),
    ...get(H0 + 2 * j), ...I64X2_SPLAT, ...get(H0 + 2 * j + 1), ...I64X2_REPLACE_LANE, 1, ...BSWAP64X2,
    ...V128_STORE, 0, ...uleb(16 * j),
  ]),
  END,
];

/** Where SHA-512-crypt's rounds keep their inputs: the running digest C, the S and P sequences. */
export const CRYPT_C_AT = 0;
export const CRYPT_S_AT = 64;
export const CRYPT_P_AT = 128;

const IF = 0x04, ELSE = 0x05, CALL = 0x10, I32_STORE8 = 0x3a, I32_GE_U = 0x4f, I32_REM_U = 0x70;
const I32_AND = 0x71, I32_MUL = 0x6c, I32_DIV_U = 0x6e, I32_SHR_U = 0x76;
const MEMORY_COPY = [0xfc, 0x0a, 0x00, 0x00], MEMORY_FILL = [0xfc, 0x0b, 0x00];
// crypt's locals: params n, p, s, msg; i32 i, at, end, bits.
const N = 0, PL = 1, SL = 2, CMSG = 3, I = 4, AT = 5, END_ = 6, BITS = 7;
/** Appends `len` (code) bytes from `from` at `at`, and advances `at`. */
const append = (from: number, len: number[]): number[] => [
  ...get(AT), ...i32const(from), ...len, ...MEMORY_COPY, ...get(AT), ...len, I32_ADD, LOCAL_SET, AT,
];
const storeByte = (offset: number, shift: number): number[] => [
  ...get(END_), ...i32const(offset), I32_SUB, ...get(BITS), ...i32const(shift), I32_SHR_U, I32_STORE8, 0, 0,
];

/**
 * crypt(n, p, s, msg): step 21 of SHA-512-crypt, n rounds, with C (64 bytes) at CRYPT_C_AT, the
 * S sequence (s bytes) at CRYPT_S_AT, the P sequence (p bytes) at CRYPT_P_AT; each round's
 * message is assembled and padded at `msg` and its digest replaces C. The WAT:
 *   (loop: while i < n
 *     at = msg; append (i odd ? P : C); (if i % 3: append S); (if i % 7: append P); append (i odd ? C : P)
 *     mem[at] = 0x80; end = msg + ((at - msg + 16) / 128 + 1) * 128; fill [at + 1, end - 4) with 0
 *     the last 4 bytes = (at - msg) * 8, big-endian (the 12 before them are zero)
 *     (call digest msg ((end - msg) / 128) C); i += 1)
 */
const CRYPT_BODY: number[] = [
  1, 4, I32, // locals: 4 i32
  BLOCK, VOID, LOOP, VOID,
  ...get(I), ...get(N), I32_GE_U, BR_IF, 1,
  ...get(CMSG), LOCAL_SET, AT,
  ...get(I), ...i32const(1), I32_AND, IF, VOID, ...append(CRYPT_P_AT, get(PL)), ELSE, ...append(CRYPT_C_AT, i32const(64)), END,
  ...get(I), ...i32const(3), I32_REM_U, IF, VOID, ...append(CRYPT_S_AT, get(SL)), END,
  ...get(I), ...i32const(7), I32_REM_U, IF, VOID, ...append(CRYPT_P_AT, get(PL)), END,
  ...get(I), ...i32const(1), I32_AND, IF, VOID, ...append(CRYPT_C_AT, i32const(64)), ELSE, ...append(CRYPT_P_AT, get(PL)), END,
  ...get(AT), ...get(CMSG), I32_SUB, ...i32const(8), I32_MUL, LOCAL_SET, BITS,
  ...get(AT), ...i32const(0x80), I32_STORE8, 0, 0,
  ...get(CMSG), ...get(AT), ...get(CMSG), I32_SUB, ...i32const(16), I32_ADD, ...i32const(128), I32_DIV_U, ...i32const(1), I32_ADD,
  ...i32const(128), I32_MUL, I32_ADD, LOCAL_SET, END_,
  ...get(AT), ...i32const(1), I32_ADD, ...i32const(0), ...get(END_), ...i32const(4), I32_SUB, ...get(AT), ...i32const(1), I32_ADD, I32_SUB, ...MEMORY_FILL,
  ...storeByte(4, 24), ...storeByte(3, 16), ...storeByte(2, 8), ...storeByte(1, 0),
  ...get(CMSG), ...get(END_), ...get(CMSG), I32_SUB, ...i32const(128), I32_DIV_U, ...i32const(CRYPT_C_AT), CALL, 0,
  ...get(I), ...i32const(1), I32_ADD, LOCAL_SET, I,
  BR, 0,
  END, END,
  END,
];

/** The module's binary: one page of its own memory, exported as "mem". */
export const SHA512_WASM = new Uint8Array([
  ...MODULE_HEADER,
  ...section(1, vec([[0x60, 3, I32, I32, I32, 0], [0x60, 4, I32, I32, I32, I32, 0]])), // (i32 ×3) -> (); (i32 ×4) -> ()
  ...section(3, vec([[0], [1]])),
  ...section(5, vec([[0x00, 1]])), // memory: 1 page (64 KiB)
  ...section(7, vec([[...name('digest'), 0x00, 0], [...name('crypt'), 0x00, 1], [...name('mem'), 0x02, 0]])),
  ...section(10, vec([[...uleb(BODY.length), ...BODY], [...uleb(CRYPT_BODY.length), ...CRYPT_BODY]])),
]);

export interface Sha512Wasm {
  /** The module's memory (64 KiB, never grows). */
  readonly mem: Uint8Array;
  /** SHA-512 of `blocks` padded blocks at `msg`, big-endian into [out, out + 64). */
  digest(msg: number, blocks: number, out: number): void;
  /** SHA-512-crypt's rounds (see CRYPT_BODY). */
  crypt(rounds: number, p: number, s: number, msg: number): void;
}

let instance: Sha512Wasm | null | undefined;

/** The shared instance (its users are synchronous), or null without wasm SIMD. */
export function sha512Wasm(): Sha512Wasm | null {
  if (instance !== undefined) return instance;
  const ex = instantiateOwn(SHA512_WASM);
  instance = ex && {
    mem: new Uint8Array((ex['mem'] as WasmMemory).buffer),
    digest: ex['digest'] as Sha512Wasm['digest'],
    crypt: ex['crypt'] as Sha512Wasm['crypt'],
  };
  return instance;
}

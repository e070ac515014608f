/**
 * The scanner's body kernel: a hand-assembled WebAssembly SIMD function that, from a line
 * start, finds the next empty line and counts the LFs and CRLFs before it, 16 bytes at a time.
 * `scanBodyRef` is the same contract in plain JS: the tests' oracle and the fallback.
 *
 * Contract of scan(s, n) over bytes mem[0, n):
 *   precondition: 1 <= s, mem[s - 1] is an LF (s is a line start), s + 18 <= n or it returns at once.
 *   It looks at LFs at positions p >= s and asks: does an empty line (LF, or CR LF) start at
 *   p + 1? Only positions whose answer lies wholly inside [0, n) are judged (p + 3 <= n).
 *   - Found: returns e = p + 1 (> s), the start of the first such empty line; the i32s at
 *     addresses 0 (lf) and 4 (crlf) = number of LFs in [s, e) and how many of them follow a CR.
 *   - Not found: returns -q, s <= q, q + 18 > n: no empty line starts at p + 1 for an LF at p in
 *     [s, q); lf/crlf count the LFs in [s, q). The caller carries on from q.
 * (Whether the line at s itself is empty is the caller's business: p = s - 1 is not judged.)
 *
 * The WAT it corresponds to (locals: 0 a, 1 n, 2 lf, 3 crlf, 4 keep; v128: 5 LFs, 6 CRs, 7 l, 8 c, 9 det, 10 v):
 *   (module (import "e" "m" (memory 0))
 *     (func (export "scan") (param $a i32) (param $n i32) (result i32) (local ...)
 *       (local.set $a (i32.sub (local.get $a) (i32.const 1)))            ;; a = s - 1: block at q = a + 1
 *       (local.set $LFs (i8x16.splat (i32.const 10)))  (local.set $CRs (i8x16.splat (i32.const 13)))
 *       (block $done (loop $blocks
 *         (br_if $done (i32.gt_u (i32.add (local.get $a) (i32.const 19)) (local.get $n)))
 *         (local.tee $l (i8x16.eq (v128.load offset=1 (local.get $a)) (local.get $LFs)))   ;; LF here
 *         (if (v128.any_true) (then                                 ;; most blocks of text hold no LF
 *         (local.set $c (i8x16.eq (v128.load offset=0 (local.get $a)) (local.get $CRs)))   ;; CR before
 *         (local.set $v (v128.load offset=2 (local.get $a)))                               ;; next byte
 *         (local.tee $det (v128.and (local.get $l) (v128.or (i8x16.eq (local.get $v) (local.get $LFs))
 *             (v128.and (i8x16.eq (local.get $v) (local.get $CRs))
 *                       (i8x16.eq (v128.load offset=3 (local.get $a)) (local.get $LFs))))))
 *         (if (v128.any_true) (then                                 ;; an empty line starts in this block
 *           (local.set $keep (i32.sub (i32.shl (i32.const 2) (i32.ctz (i8x16.bitmask (local.get $det)))) (i32.const 1)))
 *           (i32.store offset=0 (i32.const 0) (i32.add (local.get $lf) (i32.popcnt (i32.and (i8x16.bitmask (local.get $l)) (local.get $keep)))))
 *           (i32.store offset=4 (i32.const 0) (i32.add (local.get $crlf) (i32.popcnt (i32.and (i8x16.bitmask
 *               (v128.and (local.get $l) (local.get $c))) (local.get $keep)))))
 *           (return (i32.add (i32.add (local.get $a) (i32.ctz (i8x16.bitmask (local.get $det)))) (i32.const 2)))))
 *         (local.set $lf (i32.add (local.get $lf) (i32.popcnt (i8x16.bitmask (local.get $l)))))
 *         (local.set $crlf (i32.add (local.get $crlf) (i32.popcnt (i8x16.bitmask (v128.and (local.get $l) (local.get $c)))))))
 *         (local.set $a (i32.add (local.get $a) (i32.const 16)))
 *         (br $blocks)))
 *       (i32.store offset=0 (i32.const 0) (local.get $lf))  (i32.store offset=4 (i32.const 0) (local.get $crlf))
 *       (i32.sub (i32.const 0) (i32.add (local.get $a) (i32.const 1))))) ;; -q
 */

/** Minimal typing of the WebAssembly JS API (the project's lib settings do not include it). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (desc: { initial: number; maximum?: number }) => WasmMemory;
}
const WA = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

/** Wasm memory page size. */
export const WASM_PAGE = 65536;

// Opcodes used below (core and the 0xFD SIMD prefix).
const LOCAL_GET = 0x20, LOCAL_SET = 0x21, LOCAL_TEE = 0x22, I32_STORE = 0x36;
const I32_CONST = 0x41, I32_ADD = 0x6a, I32_SUB = 0x6b, I32_AND = 0x71, I32_SHL = 0x74, I32_CTZ = 0x68, I32_POPCNT = 0x69, I32_GT_U = 0x4b;
const BLOCK = 0x02, LOOP = 0x03, IF = 0x04, END = 0x0b, BR = 0x0c, BR_IF = 0x0d, RETURN = 0x0f, VOID = 0x40;
const V128_LOAD = [0xfd, 0x00], I8X16_SPLAT = [0xfd, 0x0f], I8X16_EQ = [0xfd, 0x23], V128_AND = [0xfd, 0x4e];
const V128_OR = [0xfd, 0x50], V128_ANY_TRUE = [0xfd, 0x53], I8X16_BITMASK = [0xfd, 0x64];
const I32 = 0x7f, V128 = 0x7b;
/** Where scan() leaves its counts (i32 at addresses 0 and 4: callers keep data at 8 and above). */
const LF_AT = 0, CRLF_AT = 4;
// Locals.
const A = 0, N = 1, LFC = 2, CRLFC = 3, KEEP = 4, LFS = 5, CRS = 6, L = 7, C = 8, DET = 9, V = 10;

const load = (offset: number): number[] => [LOCAL_GET, A, ...V128_LOAD, 0, offset];
const get = (k: number): number[] => [LOCAL_GET, k];
const bitmaskLC = [...get(L), ...get(C), ...V128_AND, ...I8X16_BITMASK];

const BODY: number[] = [
  2, 3, I32, 6, V128, // locals: 2 groups, 3 i32 then 6 v128
  ...get(A), I32_CONST, 1, I32_SUB, LOCAL_SET, A,
  I32_CONST, 10, ...I8X16_SPLAT, LOCAL_SET, LFS,
  I32_CONST, 13, ...I8X16_SPLAT, LOCAL_SET, CRS,
  BLOCK, VOID, LOOP, VOID,
  ...get(A), I32_CONST, 19, I32_ADD, ...get(N), I32_GT_U, BR_IF, 1,
  ...load(1), ...get(LFS), ...I8X16_EQ, LOCAL_TEE, L,
  ...V128_ANY_TRUE, IF, VOID, // most 16-byte blocks of text hold no LF at all
  ...load(0), ...get(CRS), ...I8X16_EQ, LOCAL_SET, C,
  ...load(2), LOCAL_SET, V,
  ...get(L),
  ...get(V), ...get(LFS), ...I8X16_EQ,
  ...get(V), ...get(CRS), ...I8X16_EQ,
  ...load(3), ...get(LFS), ...I8X16_EQ,
  ...V128_AND, ...V128_OR, ...V128_AND, LOCAL_TEE, DET,
  ...V128_ANY_TRUE, IF, VOID,
  I32_CONST, 2, ...get(DET), ...I8X16_BITMASK, I32_CTZ, I32_SHL, I32_CONST, 1, I32_SUB, LOCAL_SET, KEEP,
  I32_CONST, 0, ...get(LFC), ...get(L), ...I8X16_BITMASK, ...get(KEEP), I32_AND, I32_POPCNT, I32_ADD, I32_STORE, 2, LF_AT,
  I32_CONST, 0, ...get(CRLFC), ...bitmaskLC, ...get(KEEP), I32_AND, I32_POPCNT, I32_ADD, I32_STORE, 2, CRLF_AT,
  ...get(A), ...get(DET), ...I8X16_BITMASK, I32_CTZ, I32_ADD, I32_CONST, 2, I32_ADD, RETURN,
  END,
  ...get(LFC), ...get(L), ...I8X16_BITMASK, I32_POPCNT, I32_ADD, LOCAL_SET, LFC,
  ...get(CRLFC), ...bitmaskLC, I32_POPCNT, I32_ADD, LOCAL_SET, CRLFC,
  END,
  ...get(A), I32_CONST, 16, I32_ADD, LOCAL_SET, A,
  BR, 0,
  END, END,
  I32_CONST, 0, ...get(LFC), I32_STORE, 2, LF_AT, I32_CONST, 0, ...get(CRLFC), I32_STORE, 2, CRLF_AT,
  I32_CONST, 0, ...get(A), I32_CONST, 1, I32_ADD, I32_SUB,
  END,
];

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, content: number[]): number[] => [id, ...uleb(content.length), ...content];
const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'latin1')];

/** The module's binary. */
export const KERNEL_WASM = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  ...section(1, vec([[0x60, 2, I32, I32, 1, I32]])), // type 0: (i32, i32) -> i32
  ...section(2, vec([[...name('e'), ...name('m'), 0x02, 0x00, 0x00]])), // import memory e.m, min 0
  ...section(3, vec([[0]])), // function 0 has type 0
  ...section(7, vec([[...name('scan'), 0x00, 0]])), // export function 0 as scan
  ...section(10, vec([[...uleb(BODY.length), ...BODY]])),
]);

/** One instance over its own memory: `bytes` is a view of all of it. */
export interface BodyKernel {
  /** The memory's ArrayBuffer (stable: the memory never grows). */
  readonly buffer: ArrayBuffer;
  readonly bytes: Uint8Array;
  /** See the contract above; the counts are then in lf() and crlf(). */
  scan(s: number, n: number): number;
  lf(): number;
  crlf(): number;
}

let compiled: object | null | undefined;

/** A kernel instance with `pages` pages of fresh memory, or null when wasm SIMD is unavailable. */
export function createBodyKernel(pages: number): BodyKernel | null {
  if (compiled === undefined) {
    try {
      compiled = WA !== undefined && WA.validate(KERNEL_WASM) ? new WA.Module(KERNEL_WASM) : null;
    } catch {
      compiled = null;
    }
  }
  if (compiled === null || WA === undefined) return null;
  const memory = new WA.Memory({ initial: pages, maximum: pages });
  const ex = new WA.Instance(compiled, { e: { m: memory } }).exports;
  const buffer = memory.buffer;
  const counts = new Int32Array(buffer, 0, 2);
  return {
    buffer,
    bytes: new Uint8Array(buffer),
    scan: ex['scan'] as (s: number, n: number) => number,
    lf: () => counts[0]!,
    crlf: () => counts[1]!,
  };
}

/** The kernel's contract in plain JS, byte by byte (oracle for tests). */
export function scanBodyRef(mem: Uint8Array, s: number, n: number): { ret: number; lf: number; crlf: number } {
  let lf = 0;
  let crlf = 0;
  // The wasm version judges whole 16-byte blocks: positions [q, q + 16) while q + 18 <= n.
  let q = s;
  for (; q + 18 <= n; q += 16) {
    for (let p = q; p < q + 16; p++) {
      if (mem[p] !== 0x0a) continue;
      lf++;
      if (mem[p - 1] === 0x0d) crlf++;
      if (mem[p + 1] === 0x0a || (mem[p + 1] === 0x0d && mem[p + 2] === 0x0a)) return { ret: p + 1, lf, crlf };
    }
  }
  return { ret: -q, lf, crlf };
}

/** Idle kernels kept for reuse: a scan borrows one (its memory holds the scan's read buffers)
 *  and returns it when done, so a busy server does not create a wasm memory per session. */
const POOL_MAX = 4;
const pool: BodyKernel[] = [];

/** Borrow a kernel with `pages` pages of memory (null: no wasm SIMD here). */
export function acquireKernel(pages: number): BodyKernel | null {
  for (let k = pool.length - 1; k >= 0; k--) {
    const kern = pool[k]!;
    if (kern.bytes.length === pages * WASM_PAGE) {
      pool.splice(k, 1);
      return kern;
    }
  }
  return createBodyKernel(pages);
}

/** Give a kernel back; only when nothing (such as an fs.read in flight) still uses its memory. */
export function releaseKernel(kern: BodyKernel): void {
  if (pool.length < POOL_MAX) pool.push(kern);
}

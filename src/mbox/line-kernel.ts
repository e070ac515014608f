/**
 * The scanner's wasm SIMD module, hand-assembled: `scan`, the body kernel below, and `sum`, the
 * stripe loop of the message checksum (SUM_BODY; msum.ts drives it). Both work on the one
 * memory the instance imports, so the scanner sums the chunks it read there in place.
 *
 * The body kernel, from a line start, finds the next empty line and counts the LFs and CRLFs
 * before it. `scanBodyRef` is the same contract in plain JS: the tests' oracle and the fallback.
 *
 * Contract of scan(s, n) over bytes mem[0, n):
 *   precondition: 1 <= s, mem[s - 1] is an LF (s is a line start), s + 18 <= n or it returns at once.
 *   It looks at LFs at positions p >= s and asks: does an empty line (LF, or CR LF) start at
 *   p + 1 that may end a message? Only positions whose answer lies wholly inside [0, n) are
 *   judged (p + 3 <= n). An empty line may end a message unless the line after it starts
 *   inside [0, n) with a byte other than 'F', LF and CR (then it cannot be a From_ line, nor
 *   another empty line): those are counted and passed over (WRAP_BODY, below).
 *   - Found: returns e = p + 1 (> s), the start of the first such empty line; the i32s at
 *     addresses 0 (lf) and 4 (crlf) = number of LFs in [s, e) and how many of them follow a CR.
 *   - Not found: returns -q, s <= q, q + 18 > n: no empty line starts at p + 1 for an LF at p in
 *     [s, q); lf/crlf count the LFs in [s, q). The caller carries on from q.
 * (Whether the line at s itself is empty is the caller's business: p = s - 1 is not judged.)
 *
 * Three loops. The first, CR-free one serves LF-only text (most spools hold no CR at all): 64
 * bytes a turn, an empty line there is just an LF after an LF and there is no CRLF to count, so
 * it leaves at the first empty line or CR (or when fewer than 67 bytes are left) to the second,
 * which would otherwise do that turn in about twice the instructions. On the 865 MB bench spool
 * (scan-bench, alternating, 11 runs): 448 → 411 ms median, process CPU 821 → 737 ms.
 * The second takes 64 bytes a turn, branch-free but for one test: it counts LFs
 * and CRLFs in byte lanes (flushed into the i32 totals every 63 turns, before a lane can pass
 * 255) and leaves as soon as an empty line starts anywhere in its 64 bytes, or when fewer than
 * 67 bytes are left. The exact loop then takes 16 bytes a turn from the same block, so it finds
 * that empty line (or the end) with the counts to the byte, and its blocks stay aligned on s.
 * Measured over the 865 MB bench spool from page cache: 220 → 130 ms (the exact loop alone
 * paid a mispredicted branch on most blocks that hold an LF).
 *
 * The WAT it corresponds to (locals: 0 a, 1 n, 2 lf, 3 crlf, 4 keep, 5 turns; v128: 6 LFs, 7 CRs,
 * 8 l, 9 c, 10 det, 11 v, 12-15 l0-l3, 16 accL, 17 accC):
 *   (module (import "e" "m" (memory 0))
 *     (func (export "scan") (param $a i32) (param $n i32) (result i32) (local ...)
 *       (local.set $a (i32.sub (local.get $a) (i32.const 1)))            ;; a = s - 1: block at q = a + 1
 *       (local.set $LFs (i8x16.splat (i32.const 10)))  (local.set $CRs (i8x16.splat (i32.const 13)))
 *       (block $crs (br_if $crs (i32.eq (i32.load8_u offset=1 (local.get $a)) (i32.const 13)))  ;; s is a CR
 *         (loop $lfonly
 *           (br_if $crs (i32.gt_u (i32.add (local.get $a) (i32.const 67)) (local.get $n)))
 *           l0-l3 as below
 *           ;; block(k) = (lk & LF at 2+16k) | CR at 2+16k  (crFreeBlock)
 *           (br_if $crs (v128.any_true (v128.or (v128.or (v128.or block(0) block(1)) block(2)) block(3))))
 *           (local.set $accL (i8x16.sub ... (local.get $l3)))  a += 64; flush(accL, lf) every 63 turns
 *           (br $lfonly)))
 *       (block $slow (loop $fast
 *         (br_if $slow (i32.gt_u (i32.add (local.get $a) (i32.const 67)) (local.get $n)))
 *         (local.set $l0 (i8x16.eq (v128.load offset=1 (local.get $a)) (local.get $LFs)))  ;; l1, l2, l3 at 17, 33, 49
 *         ;; empty(k) = lk & (LF at 2+16k | (CR at 2+16k & LF at 3+16k))
 *         (br_if $slow (v128.any_true (v128.or (v128.or (v128.or empty(0) empty(1)) empty(2)) empty(3))))
 *         (local.set $accL (i8x16.sub ... (i8x16.sub (local.get $accL) (local.get $l0)) ... (local.get $l3)))
 *         (local.set $accC (i8x16.sub ... (v128.and (local.get $lk) (i8x16.eq (v128.load offset=16k (local.get $a)) (local.get $CRs)))))
 *         (local.set $a (i32.add (local.get $a) (i32.const 64)))
 *         (br_if $fast (i32.ne (local.tee $turns (i32.add (local.get $turns) (i32.const 1))) (i32.const 63)))
 *         flush(accL, lf) flush(accC, crlf) (local.set $turns (i32.const 0))
 *         (br $fast)))
 *       flush(accL, lf) flush(accC, crlf)
 *       ;; flush(acc, t): t += sum of the four lanes of
 *       ;;   (local.tee $v (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u acc))); acc = 0
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
import { I32_CONST, i32const, MODULE_HEADER, name, section, uleb, vec, WA } from '../wasm/asm.js';


/** Wasm memory page size. */
export const WASM_PAGE = 65536;

// Opcodes used below (core and the 0xFD SIMD prefix).
const LOCAL_GET = 0x20, LOCAL_SET = 0x21, LOCAL_TEE = 0x22, I32_STORE = 0x36;
const I32_ADD = 0x6a, I32_SUB = 0x6b, I32_AND = 0x71, I32_SHL = 0x74, I32_CTZ = 0x68, I32_POPCNT = 0x69, I32_GT_U = 0x4b;
const BLOCK = 0x02, LOOP = 0x03, IF = 0x04, END = 0x0b, BR = 0x0c, BR_IF = 0x0d, RETURN = 0x0f, VOID = 0x40;
const V128_LOAD = [0xfd, 0x00], I8X16_SPLAT = [0xfd, 0x0f], I8X16_EQ = [0xfd, 0x23], V128_AND = [0xfd, 0x4e];
const V128_OR = [0xfd, 0x50], V128_ANY_TRUE = [0xfd, 0x53], I8X16_BITMASK = [0xfd, 0x64];
const I32 = 0x7f, V128 = 0x7b;
/** Where scan() leaves its counts (i32 at addresses 0 and 4: callers keep data at 8 and above). */
const LF_AT = 0, CRLF_AT = 4;
// More opcodes for the 64-byte fast path.
const I32_NE = 0x47, I32_EQ = 0x46, I32_LOAD8_U = 0x2d, I8X16_SUB = [0xfd, 0x71], I32X4_EXTRACT_LANE = [0xfd, 0x1b];
const I16X8_EXTADD_PAIRWISE_I8X16_U = [0xfd, 0x7d], I32X4_EXTADD_PAIRWISE_I16X8_U = [0xfd, 0x7f];
const V128_ZERO = [0xfd, 0x0c, ...new Array<number>(16).fill(0)];
// Locals: params a, n; i32 lf, crlf, keep, turns; v128 LFs, CRs, l, c, det, v, l0..l3, accL, accC.
const A = 0, N = 1, LFC = 2, CRLFC = 3, KEEP = 4, TURNS = 5;
const LFS = 6, CRS = 7, L = 8, C = 9, DET = 10, V = 11, L0 = 12, ACCL = 16, ACCC = 17;
/** Fast-path turns between flushes of the byte counters: a lane gains at most 4 per turn. */
const FLUSH_TURNS = 63;

const load = (offset: number): number[] => [LOCAL_GET, A, ...V128_LOAD, 0, offset];
const get = (k: number): number[] => [LOCAL_GET, k];
const eqAt = (offset: number, splat: number): number[] => [...load(offset), ...get(splat), ...I8X16_EQ];
const bitmaskLC = [...get(L), ...get(C), ...V128_AND, ...I8X16_BITMASK];
/** Does an empty line start after an LF of block k (16 bytes at a + 1 + 16k)? A mask per position. */
const emptyAfter = (k: number): number[] => [
  ...get(L0 + k),
  ...eqAt(2 + 16 * k, LFS), ...eqAt(2 + 16 * k, CRS), ...eqAt(3 + 16 * k, LFS), ...V128_AND, ...V128_OR,
  ...V128_AND,
];
/** Add the byte counters' lanes to an i32 local and zero them. */
const flush = (acc: number, into: number): number[] => [
  ...get(acc), ...I16X8_EXTADD_PAIRWISE_I8X16_U, ...I32X4_EXTADD_PAIRWISE_I16X8_U, LOCAL_TEE, V,
  ...I32X4_EXTRACT_LANE, 0, ...get(V), ...I32X4_EXTRACT_LANE, 1, I32_ADD,
  ...get(V), ...I32X4_EXTRACT_LANE, 2, I32_ADD, ...get(V), ...I32X4_EXTRACT_LANE, 3, I32_ADD,
  ...get(into), I32_ADD, LOCAL_SET, into,
  ...V128_ZERO, LOCAL_SET, acc,
];

/** Block k of the CR-free path: a mask of "an LF followed by an LF" or "a CR" at 2 + 16k. */
const crFreeBlock = (k: number): number[] => [
  ...load(2 + 16 * k), LOCAL_TEE, V, ...get(LFS), ...I8X16_EQ, ...get(L0 + k), ...V128_AND,
  ...get(V), ...get(CRS), ...I8X16_EQ, ...V128_OR,
];

const BODY: number[] = [
  2, 4, I32, 12, V128, // locals: 2 groups, 4 i32 then 12 v128
  ...get(A), I32_CONST, 1, I32_SUB, LOCAL_SET, A,
  I32_CONST, 10, ...I8X16_SPLAT, LOCAL_SET, LFS,
  I32_CONST, 13, ...I8X16_SPLAT, LOCAL_SET, CRS,
  // The CR-free path: while no CR is in sight (LF-only spools hold none), an empty line is
  // just an LF after an LF and there are no CRLFs to count: 64 bytes a turn in about half the
  // instructions of the path below, which takes over at the first CR or empty line. Bytes
  // [a, a + 66) are seen CR-free: 2 + 16k covers [a + 2, a + 66) each turn, the turn before
  // covered a and a + 1, and on entry a = s - 1 is an LF and s is checked here.
  BLOCK, VOID,
  ...get(A), I32_LOAD8_U, 0, 1, I32_CONST, 13, I32_EQ, BR_IF, 0,
  LOOP, VOID,
  ...get(A), ...i32const(67), I32_ADD, ...get(N), I32_GT_U, BR_IF, 1,
  ...eqAt(1, LFS), LOCAL_SET, L0, ...eqAt(17, LFS), LOCAL_SET, L0 + 1,
  ...eqAt(33, LFS), LOCAL_SET, L0 + 2, ...eqAt(49, LFS), LOCAL_SET, L0 + 3,
  ...crFreeBlock(0), ...crFreeBlock(1), ...V128_OR, ...crFreeBlock(2), ...V128_OR, ...crFreeBlock(3), ...V128_OR,
  ...V128_ANY_TRUE, BR_IF, 1, // a CR or an empty line: the path below
  ...get(ACCL), ...get(L0), ...I8X16_SUB, ...get(L0 + 1), ...I8X16_SUB, ...get(L0 + 2), ...I8X16_SUB, ...get(L0 + 3), ...I8X16_SUB, LOCAL_SET, ACCL,
  ...get(A), ...i32const(64), I32_ADD, LOCAL_SET, A,
  ...get(TURNS), I32_CONST, 1, I32_ADD, LOCAL_TEE, TURNS, ...i32const(FLUSH_TURNS), I32_NE, BR_IF, 0,
  ...flush(ACCL, LFC), I32_CONST, 0, LOCAL_SET, TURNS,
  BR, 0,
  END, END,
  // The fast path: 64 bytes a turn while no empty line starts in them; LFs and CRLFs are
  // counted in byte lanes (an i8x16.eq mask is -1 per match: subtracting it adds one).
  BLOCK, VOID, LOOP, VOID,
  ...get(A), ...i32const(67), I32_ADD, ...get(N), I32_GT_U, BR_IF, 1,
  ...eqAt(1, LFS), LOCAL_SET, L0, ...eqAt(17, LFS), LOCAL_SET, L0 + 1,
  ...eqAt(33, LFS), LOCAL_SET, L0 + 2, ...eqAt(49, LFS), LOCAL_SET, L0 + 3,
  ...emptyAfter(0), ...emptyAfter(1), ...V128_OR, ...emptyAfter(2), ...V128_OR, ...emptyAfter(3), ...V128_OR,
  ...V128_ANY_TRUE, BR_IF, 1, // the exact path below finds it
  ...get(ACCL), ...get(L0), ...I8X16_SUB, ...get(L0 + 1), ...I8X16_SUB, ...get(L0 + 2), ...I8X16_SUB, ...get(L0 + 3), ...I8X16_SUB, LOCAL_SET, ACCL,
  ...get(ACCC),
  ...[0, 1, 2, 3].flatMap((k) => [...get(L0 + k), ...eqAt(16 * k, CRS), ...V128_AND, ...I8X16_SUB]),
  LOCAL_SET, ACCC,
  ...get(A), ...i32const(64), I32_ADD, LOCAL_SET, A,
  ...get(TURNS), I32_CONST, 1, I32_ADD, LOCAL_TEE, TURNS, ...i32const(FLUSH_TURNS), I32_NE, BR_IF, 0,
  ...flush(ACCL, LFC), ...flush(ACCC, CRLFC), I32_CONST, 0, LOCAL_SET, TURNS,
  BR, 0,
  END, END,
  ...flush(ACCL, LFC), ...flush(ACCC, CRLFC),
  // The exact path: 16 bytes a turn.
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

/**
 * The message checksum's stripe function (msum.ts says what it is for and how it is finished):
 * sum(st, p, k) runs k stripes of 128 bytes at p through the 32 u32 lanes at st, as
 *   for each stripe, for each of 8 vectors a_j (16 bytes at st + 16j), with w = the 16 bytes at p + 16j:
 *     a_j = i32x4.mul(a_j ^ w, SUM_MUL);  a_j = a_j ^ i32x4.shr_u(a_j, 15)
 * Each step is a bijection of a lane for a given word and of the word for a given lane, so a
 * change confined to one lane's words always shows in that lane. Eight independent vectors keep
 * the multiplier busy: ~16 GB/s from cache here, against ~2.3 GB/s for zlib's crc32.
 */
export const SUM_MUL = 0x9e3779b1;
const I32_EQZ = 0x45, V128_STORE = [0xfd, 0x0b], I32X4_SPLAT = [0xfd, 0x11], V128_XOR = [0xfd, 0x51];
const I32X4_SHR_U = [0xfd, 0xad, 0x01], I32X4_MUL = [0xfd, 0xb5, 0x01];
// Locals: params st, p, k; v128 a0..a7, mul.
const ST = 0, P = 1, K = 2, A0 = 3, MUL = 11;
const SUM_BODY: number[] = [
  1, 9, V128, // locals: 1 group, 9 v128
  ...i32const(SUM_MUL | 0), ...I32X4_SPLAT, LOCAL_SET, MUL,
  ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((j) => [LOCAL_GET, ST, ...V128_LOAD, 0, 16 * j, LOCAL_SET, A0 + j]),
  BLOCK, VOID, LOOP, VOID,
  ...get(K), I32_EQZ, BR_IF, 1,
  ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((j) => [
    ...get(A0 + j), LOCAL_GET, P, ...V128_LOAD, 0, 16 * j, ...V128_XOR, ...get(MUL), ...I32X4_MUL, LOCAL_TEE, A0 + j,
    ...get(A0 + j), I32_CONST, 15, ...I32X4_SHR_U, ...V128_XOR, LOCAL_SET, A0 + j,
  ]),
  ...get(P), ...i32const(128), I32_ADD, LOCAL_SET, P,
  ...get(K), I32_CONST, 1, I32_SUB, LOCAL_SET, K,
  BR, 0,
  END, END,
  ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((j) => [LOCAL_GET, ST, ...get(A0 + j), ...V128_STORE, 0, 16 * j]),
  END,
];

/**
 * The exported `scan`: BODY (function 0) again and again across the empty lines that cannot
 * end a message, so the scanner's JavaScript sees only the ones that may (see the contract at
 * the top). In the bench's 50k spool, 590,000 of 670,000 empty lines are followed by text that
 * does not start with 'F': each was a return to JavaScript and a new call.
 *   (func (export "scan") (param $s i32) (param $n i32) (result i32) (local $lf $crlf $r $next $b $c i32)
 *     (loop $again
 *       (local.set $r (call 0 (local.get $s) (local.get $n)))
 *       lf += i32.load(0); crlf += i32.load(4)
 *       (if (i32.gt_s (local.get $r) (i32.const 0)) (then                  ;; an empty line at r
 *         (local.set $c (i32.eq (i32.load8_u (local.get $r)) (i32.const 13)))  ;; CR LF, else LF
 *         (if (i32.lt_u (local.tee $next (r + 1 + c)) (local.get $n)) (then
 *           (local.set $b (i32.load8_u (local.get $next)))
 *           (if (b != 'F' & b != LF & b != CR) (then                         ;; plain content
 *             lf += 1; crlf += c; (local.set $s (local.get $next)) (br $again)))))))
 *     i32.store(0, lf); i32.store(4, crlf); (local.get $r))
 */
const CALL = 0x10, I32_LOAD = 0x28, I32_LT_U = 0x49, I32_GT_S = 0x4a;
// Locals: params s, n; i32 lf, crlf, r, next, b, c.
const WS = 0, WN = 1, WLF = 2, WCRLF = 3, WR = 4, WNEXT = 5, WB = 6, WC = 7;
const WRAP_BODY: number[] = [
  1, 6, I32,
  LOOP, VOID,
  ...get(WS), ...get(WN), CALL, 0, LOCAL_SET, WR,
  ...get(WLF), I32_CONST, 0, I32_LOAD, 2, LF_AT, I32_ADD, LOCAL_SET, WLF,
  ...get(WCRLF), I32_CONST, 0, I32_LOAD, 2, CRLF_AT, I32_ADD, LOCAL_SET, WCRLF,
  ...get(WR), I32_CONST, 0, I32_GT_S, IF, VOID,
  ...get(WR), I32_LOAD8_U, 0, 0, I32_CONST, 13, I32_EQ, LOCAL_SET, WC,
  ...get(WR), I32_CONST, 1, I32_ADD, ...get(WC), I32_ADD, LOCAL_TEE, WNEXT, ...get(WN), I32_LT_U, IF, VOID,
  ...get(WNEXT), I32_LOAD8_U, 0, 0, LOCAL_TEE, WB, ...i32const(0x46), I32_NE,
  ...get(WB), I32_CONST, 10, I32_NE, I32_AND,
  ...get(WB), I32_CONST, 13, I32_NE, I32_AND,
  IF, VOID,
  ...get(WLF), I32_CONST, 1, I32_ADD, LOCAL_SET, WLF,
  ...get(WCRLF), ...get(WC), I32_ADD, LOCAL_SET, WCRLF,
  ...get(WNEXT), LOCAL_SET, WS,
  BR, 3, // to $again (out of three ifs)
  END, END, END,
  END,
  I32_CONST, 0, ...get(WLF), I32_STORE, 2, LF_AT, I32_CONST, 0, ...get(WCRLF), I32_STORE, 2, CRLF_AT,
  ...get(WR),
  END,
];

/** The module's binary. */
export const KERNEL_WASM = new Uint8Array([
  ...MODULE_HEADER,
  ...section(1, vec([[0x60, 2, I32, I32, 1, I32], [0x60, 3, I32, I32, I32, 0]])), // type 0: (i32, i32) -> i32; type 1: (i32, i32, i32) -> ()
  ...section(2, vec([[...name('e'), ...name('m'), 0x02, 0x00, 0x00]])), // import memory e.m, min 0
  ...section(3, vec([[0], [1], [0]])), // functions 0 (BODY) and 2 (WRAP_BODY) have type 0, function 1 type 1
  ...section(7, vec([[...name('scan'), 0x00, 2], [...name('sum'), 0x00, 1]])), // export 2 as scan and 1 as sum
  ...section(10, vec([[...uleb(BODY.length), ...BODY], [...uleb(SUM_BODY.length), ...SUM_BODY], [...uleb(WRAP_BODY.length), ...WRAP_BODY]])),
]);

/** One instance over its own memory: `bytes` is a view of all of it. */
export interface BodyKernel {
  /** The memory's ArrayBuffer (stable: the memory never grows). */
  readonly buffer: ArrayBuffer;
  readonly bytes: Uint8Array;
  /** See the contract above; the counts are then in lf() and crlf(). */
  scan(s: number, n: number): number;
  /** The checksum's stripe function (SUM_BODY above). */
  sum(st: number, p: number, k: number): void;
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
    sum: ex['sum'] as (st: number, p: number, k: number) => void,
    lf: () => counts[0]!,
    crlf: () => counts[1]!,
  };
}

/** The kernel's contract in plain JS, byte by byte (oracle for tests). */
export function scanBodyRef(mem: Uint8Array, s: number, n: number): { ret: number; lf: number; crlf: number } {
  let lf = 0;
  let crlf = 0;
  for (;;) {
    const once = scanOnceRef(mem, s, n);
    lf += once.lf;
    crlf += once.crlf;
    const e = once.ret;
    if (e <= 0) return { ret: e, lf, crlf };
    const c = mem[e] === 0x0d ? 1 : 0;
    const next = e + 1 + c;
    const b = next < n ? mem[next] : 0x0a;
    if (b === 0x46 || b === 0x0a || b === 0x0d) return { ret: e, lf, crlf };
    lf += 1;
    crlf += c;
    s = next;
  }
}

/** One run of BODY: up to the first empty line, whatever follows it. */
function scanOnceRef(mem: Uint8Array, s: number, n: number): { ret: number; lf: number; crlf: number } {
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

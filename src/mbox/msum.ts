/**
 * The message checksum ("msum"): 32 bits that say a message's bytes are still the ones the scan
 * saw. The scan records one per message; RETR checks it before sending bytes it read, and an
 * update checks every message it keeps before rewriting the spool (DESIGN.md §4: "re-verify
 * each kept message against the scan"). It replaced zlib's crc32 there, which ran at ~2.3 GB/s
 * on the bench machine and was a quarter of a cold scan's CPU; msum runs at ~16 GB/s from cache.
 * (zlib's crc32 still guards our own files: the cache file, the journal and the journal's image.)
 *
 * What it is. 32 lanes of u32, seeded; each 128-byte stripe of input is read as 32
 * little-endian words, and word i goes through lane i: lane = (lane ^ word) * SUM_MUL, then
 * lane ^= lane >>> 15. The last partial stripe is padded with zero bytes. The result mixes the
 * lanes, each through its own bijection, into one sum, and that with the byte length:
 *   fmix32((Σ fmix32(lane_i + (i + 1) · 0x9e3779b9)) ^ len_lo · 0xcc9e2d51 ^ len_hi · 0x1b873593)
 * (fmix32: MurmurHash3's finalizer). Every step is a bijection of the lane for a given word and
 * of the word for a given lane, and each lane enters the sum through a bijection, so any change
 * confined to one lane's words (say one edited byte, or one 4-byte-aligned word) always changes
 * the sum; other changes escape with a chance near 2^-32, like any 32-bit check. It is not a
 * cryptographic hash and need not be: it detects accidents and uncooperative programs, not an
 * adversary (whoever can write the spool can delete the mail outright).
 *
 * How it runs. The stripe loop is the `sum` function of the scanner's wasm module
 * (line-kernel.ts), over lanes and input in the module's memory; a MessageSum keeps its lanes
 * and an unfinished stripe (tail) in that memory, hashes input that already lies there in place
 * (the scanner reads spool chunks straight into it) and copies other input through a scratch
 * area. Without wasm SIMD the same arithmetic runs in JavaScript (sumStripesRef, also the
 * tests' oracle). The result does not depend on how the input is cut into update() calls.
 */
import { createBodyKernel, type BodyKernel, SUM_MUL, WASM_PAGE } from './line-kernel.js';

/** Bytes per stripe: 8 vectors of 16. */
export const STRIPE = 128;
/** A MessageSum's state in memory: 128 bytes of lanes, then a 128-byte tail. */
export const SUM_STATE_BYTES = 2 * STRIPE;

const LANES = STRIPE / 4;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The lanes' starting values. */
const SEEDS = Uint32Array.from({ length: LANES }, (_, i) => fmix32(0x1939 + i));

/** The stripe loop in JavaScript (fallback and oracle): k stripes from `data` at byte p into `lanes`. */
export function sumStripesRef(lanes: Uint32Array, data: Uint8Array, p: number, k: number): void {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (; k > 0; k--, p += STRIPE) {
    for (let i = 0; i < LANES; i++) {
      const a = Math.imul(lanes[i]! ^ dv.getUint32(p + 4 * i, true), SUM_MUL);
      lanes[i] = a ^ (a >>> 15);
    }
  }
}

export class MessageSum {
  /** The lanes (a view of the state's first 128 bytes) and the tail's bytes. */
  private readonly lanes: Uint32Array;
  private readonly tail: Uint8Array;
  private tailLen = 0;
  private total = 0;

  /**
   * A checksum whose state is at `at` in `kern`'s memory (SUM_STATE_BYTES), copying input from
   * elsewhere through [scratchAt, scratchAt + scratchBytes) (a multiple of STRIPE), or with a
   * JS-only state when `kern` is null.
   */
  constructor(private readonly kern: BodyKernel | null, private readonly at = 0, private readonly scratchAt = 0, private readonly scratchBytes = 0) {
    if (kern !== null) {
      this.lanes = new Uint32Array(kern.buffer, at, LANES);
      this.tail = new Uint8Array(kern.buffer, at + STRIPE, STRIPE);
    } else {
      this.lanes = new Uint32Array(LANES);
      this.tail = new Uint8Array(STRIPE);
    }
    this.reset();
  }

  reset(): void {
    this.lanes.set(SEEDS);
    this.tailLen = 0;
    this.total = 0;
  }

  /** Adds buf[from, to). */
  update(buf: Uint8Array, from = 0, to = buf.length): void {
    if (to <= from) return;
    this.total += to - from;
    if (this.tailLen > 0) {
      const take = Math.min(STRIPE - this.tailLen, to - from);
      this.toTail(buf, from, from + take, this.tailLen);
      this.tailLen += take;
      from += take;
      if (this.tailLen < STRIPE) return;
      this.stripes(this.tail, 0, 1);
      this.tailLen = 0;
    }
    const whole = (to - from) - ((to - from) % STRIPE);
    if (whole > 0) {
      this.stripes(buf, from, whole / STRIPE);
      from += whole;
    }
    if (from < to) {
      this.toTail(buf, from, to, 0);
      this.tailLen = to - from;
    }
  }

  /** tail[at, at + to - from) = buf[from, to) (under a stripe), with no view object: a scan
   *  updates a sum several times a message, and a subarray per update was ~100 bytes of
   *  garbage a message. */
  private toTail(buf: Uint8Array, from: number, to: number, at: number): void {
    const kern = this.kern;
    if (kern !== null && buf.buffer === kern.buffer) {
      kern.bytes.copyWithin(this.at + STRIPE + at, buf.byteOffset + from, buf.byteOffset + to);
    } else {
      const tail = this.tail;
      for (let i = from; i < to; i++) tail[at + i - from] = buf[i]!;
    }
  }

  /** The sum of everything added since reset(); the state is reset for the next message. */
  digest(): number {
    if (this.tailLen > 0) {
      this.tail.fill(0, this.tailLen);
      this.stripes(this.tail, 0, 1);
    }
    let x = 0;
    for (let i = 0; i < LANES; i++) x = (x + fmix32((this.lanes[i]! + Math.imul(i + 1, 0x9e3779b9)) >>> 0)) >>> 0;
    const lo = this.total >>> 0;
    const hi = Math.floor(this.total / 0x100000000) >>> 0;
    const out = fmix32((x ^ Math.imul(lo, 0xcc9e2d51) ^ Math.imul(hi, 0x1b873593)) >>> 0);
    this.reset();
    return out;
  }

  /** k stripes of buf from index p: in place when buf lies in the kernel's memory, else copied. */
  private stripes(buf: Uint8Array, p: number, k: number): void {
    const kern = this.kern;
    if (kern === null) {
      sumStripesRef(this.lanes, buf, p, k);
    } else if (buf.buffer === kern.buffer) {
      kern.sum(this.at, buf.byteOffset + p, k);
    } else {
      const per = this.scratchBytes / STRIPE;
      while (k > 0) {
        const n = Math.min(k, per);
        kern.bytes.set(buf.subarray(p, p + n * STRIPE), this.scratchAt);
        kern.sum(this.at, this.scratchAt, n);
        p += n * STRIPE;
        k -= n;
      }
    }
  }
}

/** Where a standalone MessageSum keeps its state in its own kernel memory (the kernel's counts
 *  take addresses 0-7), and its scratch: input is copied 64 KiB at a time. */
const OWN_AT = 64;
const OWN_SCRATCH = 64 * 1024;

/** A MessageSum with its own (small) kernel memory, or JS-only without wasm SIMD. */
export function createMessageSum(): MessageSum {
  const kern = createBodyKernel(Math.ceil((OWN_AT + SUM_STATE_BYTES + OWN_SCRATCH) / WASM_PAGE));
  return new MessageSum(kern, OWN_AT, OWN_AT + SUM_STATE_BYTES, OWN_SCRATCH);
}

let oneShot: MessageSum | undefined;

/** msum of one buffer (one shared state: msum() is synchronous, so calls never interleave). */
export function msum(buf: Uint8Array): number {
  oneShot ??= createMessageSum();
  oneShot.update(buf);
  return oneShot.digest();
}

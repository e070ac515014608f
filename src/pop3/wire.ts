/**
 * Message bytes → POP3 wire format (RFC 1939 §3): CRLF line endings, byte-stuffing of lines
 * that start with ".", a final CRLF when the message lacks one. The session writes the ".CRLF".
 *
 * Line rules (must agree with the scanner's size rule, DESIGN.md §2):
 *   - LF and CRLF each end a line and become CRLF (a stored CRLF is one ending, never CR CR LF);
 *   - a CR not followed by LF is an ordinary byte (also at the very end of the message);
 *   - a last line without newline gets a CRLF.
 * So the octets before stuffing are Σ over lines (bytes without terminator + 2).
 *
 * Streaming: state is carried across chunks (a CR at the end of one chunk waits for the next
 * to decide whether it is half of a CRLF), output per chunk is at most 2×input+3 octets, so a
 * 1 GB message with lines of any length goes through in bounded memory.
 *
 * TOP (RFC 1939 §7, `bodyLines`): the headers up to and including the first empty line, then at
 * most n body lines; then `done` is set and the rest of the input is ignored, so the caller can
 * destroy its source.
 *
 * RETR (no TOP limit) goes through the WebAssembly SIMD kernel of wire-simd.ts when the runtime
 * has it: same output, byte for byte (the property tests compare both paths), several times
 * faster on messages of many short lines. This JavaScript path does TOP, and RETR without SIMD.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { frameFits, simdAvailable, simdEncode, simdFrame, type SimdState } from './wire-simd.js';

/** Hand an output buffer of WireEncoder.push back for reuse once nothing reads it (wire-simd.ts). */
export { releaseWire } from './wire-simd.js';

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const EMPTY = Buffer.alloc(0);

export interface WireOptions {
  /** TOP: number of body lines to send after the headers. Undefined = the whole message. */
  readonly bodyLines?: number;
  /** Use the JavaScript path even where the SIMD kernel is available (tests compare the two). */
  readonly portable?: boolean;
}

/** The pure, synchronous encoder. push() each chunk, then end(). */
export class WireEncoder {
  /** TOP limit reached: further input is ignored. */
  done = false;
  /** Wire octets emitted so far, not counting stuffing dots (== the RFC 1939 size when complete). */
  octets = 0;
  /** Stuffing dots added. */
  stuffed = 0;

  private atLineStart = true;
  private pendingCR = false;
  private inHeaders: boolean;
  private bodyLeft: number;
  private ended = false;
  /** Kernel state when RETR goes through the SIMD kernel; null on the JavaScript path. */
  private readonly simd: SimdState | null;

  constructor(opts: WireOptions = {}) {
    const n = opts.bodyLines;
    this.inHeaders = n !== undefined;
    this.bodyLeft = n === undefined ? Infinity : Math.max(0, n);
    this.simd = n === undefined && !opts.portable && simdAvailable ? { atLineStart: true, lastCR: false } : null;
  }

  /** True when the message went through in full (RETR, or a TOP whose limit was not reached). */
  get complete(): boolean {
    return this.ended && !this.done;
  }

  /**
   * A whole reply in one buffer for a message given whole: `head` (the status line and its
   * CRLF), the encoded message with the final CRLF it may lack, then `tail` (the ".CRLF"). As
   * push(chunk) then end(), and the encoder is ended after it. The buffer is a reused frame: hand
   * it to releaseWire once written. Null when this encoder cannot (TOP, no SIMD, input already
   * pushed, or a message too large for a frame): use push() and end() instead.
   */
  frame(head: string, chunk: Buffer, tail: Buffer): Buffer | null {
    if (this.simd === null || this.ended || this.octets !== 0 || !this.simd.atLineStart) return null;
    const headLen = Buffer.byteLength(head);
    if (!frameFits(headLen, chunk.length, tail.length)) return null;
    const { out, stuffed, octets } = simdFrame(head, headLen, chunk, this.simd, tail);
    this.stuffed += stuffed;
    this.octets += octets;
    this.ended = true;
    return out;
  }

  push(chunk: Buffer): Buffer {
    if (this.done || chunk.length === 0) return EMPTY;
    if (this.simd) {
      const { out, stuffed } = simdEncode(chunk, this.simd);
      this.stuffed += stuffed;
      this.octets += out.length - stuffed;
      return out;
    }
    const out = Buffer.allocUnsafe(chunk.length * 2 + 3);
    let o = 0;
    let i = 0;
    const len = chunk.length;

    const content = (a: number, b: number): void => {
      if (b <= a) return;
      if (this.atLineStart && chunk[a] === DOT) {
        out[o++] = DOT;
        this.stuffed++;
      }
      o += chunk.copy(out, o, a, b);
      this.octets += b - a;
      this.atLineStart = false;
    };
    const endLine = (): void => {
      out[o++] = CR;
      out[o++] = LF;
      this.octets += 2;
      this.lineEnded();
    };

    if (this.pendingCR) {
      this.pendingCR = false;
      if (chunk[0] === LF) {
        endLine();
        i = 1;
      } else {
        // An ordinary CR: it cannot be a dot, so no stuffing question arises.
        out[o++] = CR;
        this.octets += 1;
        this.atLineStart = false;
      }
    }
    while (i < len && !this.done) {
      const nl = chunk.indexOf(LF, i);
      if (nl < 0) {
        let segEnd = len;
        if (chunk[len - 1] === CR) {
          segEnd--;
          this.pendingCR = true;
        }
        content(i, segEnd);
        break;
      }
      const segEnd = nl > i && chunk[nl - 1] === CR ? nl - 1 : nl;
      content(i, segEnd);
      endLine();
      i = nl + 1;
    }
    return out.subarray(0, o);
  }

  end(): Buffer {
    if (this.ended) return EMPTY;
    this.ended = true;
    if (this.done) return EMPTY;
    if (this.simd) {
      // The kernel already sent a trailing CR as an ordinary byte; only the final CRLF is left.
      if (this.simd.atLineStart) return EMPTY;
      this.simd.atLineStart = true;
      this.octets += 2;
      return Buffer.from('\r\n');
    }
    const parts: number[] = [];
    if (this.pendingCR) {
      this.pendingCR = false;
      parts.push(CR);
      this.octets += 1;
      this.atLineStart = false;
    }
    if (!this.atLineStart) {
      parts.push(CR, LF);
      this.octets += 2;
      this.lineEnded();
    }
    return parts.length ? Buffer.from(parts) : EMPTY;
  }

  private lineEnded(): void {
    const wasEmpty = this.atLineStart;
    this.atLineStart = true;
    if (this.bodyLeft === Infinity && !this.inHeaders) return;
    if (this.inHeaders) {
      if (wasEmpty) {
        this.inHeaders = false;
        if (this.bodyLeft === 0) this.done = true;
      }
    } else if (--this.bodyLeft <= 0) {
      this.done = true;
    }
  }
}

/**
 * Stream form of WireEncoder. When a TOP limit is reached it ends its readable side and emits
 * 'truncated': the source can be destroyed (nothing more of it is needed).
 */
export class WireTransform extends Transform {
  readonly encoder: WireEncoder;
  private finished = false;

  constructor(opts: WireOptions = {}) {
    super();
    this.encoder = new WireEncoder(opts);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.finished) return cb();
    const out = this.encoder.push(chunk);
    if (out.length) this.push(out);
    if (this.encoder.done) {
      this.finished = true;
      this.push(null);
      this.emit('truncated');
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.finished) return cb();
    const out = this.encoder.end();
    if (out.length) this.push(out);
    cb();
  }
}

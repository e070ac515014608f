/**
 * Command-line splitter for the POP3 session: turns the client's byte stream into lines
 * (CRLF or bare LF), with a hard length cap and bounded memory.
 *
 * Pull-based: the session push()es socket chunks and takes one line at a time with next(),
 * so it can stop in the middle of a pipelined batch (while a RETR streams, or after STLS,
 * where the rest of the buffered plaintext must be thrown away with clear()).
 * An over-long line is consumed up to its newline without being stored and reported once,
 * as { kind: 'too-long' }, when its newline arrives: the reply then comes in order.
 */

/** RFC 2449 §4: "command lines ... may not exceed 255 octets, including the terminating CRLF". */
export const MAX_COMMAND_LINE = 255;

export type LineEvent =
  /** A complete line, without its CRLF/LF. Bytes are kept as received (decode as you need). */
  | { readonly kind: 'line'; readonly bytes: Buffer }
  /** A line longer than the limit: its bytes were discarded. */
  | { readonly kind: 'too-long' };

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);

export class LineReader {
  /** Max octets of a line including a 2-octet terminator; settable (e.g. for SASL responses). */
  maxLine: number;
  private buf: Buffer = EMPTY;
  /** True while skipping the rest of an over-long line (its bytes are never stored). */
  private discarding = false;

  constructor(maxLine = MAX_COMMAND_LINE) {
    this.maxLine = maxLine;
  }

  /** Bytes held (unconsumed input). Bounded by one pushed chunk plus maxLine. */
  get buffered(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.discarding && this.buf.length === 0) {
      // Drop everything up to the newline right away: nothing of a long line is kept.
      const nl = chunk.indexOf(LF);
      if (nl >= 0) this.buf = chunk.subarray(nl); // starts with the LF that ends the long line
      return;
    }
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /** The next event, or undefined when more input is needed. */
  next(): LineEvent | undefined {
    if (this.discarding) {
      if (this.buf.length === 0) return undefined;
      // push() left the buffer starting at the LF that ends the long line.
      this.buf = this.buf.subarray(1);
      this.discarding = false;
      return { kind: 'too-long' };
    }
    // Content may be at most maxLine - 2 octets; a CR before the LF is the terminator's.
    const maxContent = this.maxLine - 2;
    const nl = this.buf.indexOf(LF);
    if (nl < 0) {
      // No newline yet. Keep up to maxContent + 1 octets (content plus a possible CR).
      if (this.buf.length > maxContent + 1) {
        this.buf = EMPTY;
        this.discarding = true;
      }
      return undefined;
    }
    let end = nl;
    if (end > 0 && this.buf[end - 1] === CR) end--;
    const line = this.buf.subarray(0, end);
    this.buf = nl + 1 === this.buf.length ? EMPTY : this.buf.subarray(nl + 1);
    if (end > maxContent) return { kind: 'too-long' };
    return { kind: 'line', bytes: Buffer.from(line) };
  }

  /** Forget all buffered input (RFC 2595 §4: discard plaintext pipelined after STLS). */
  clear(): void {
    this.buf = EMPTY;
    this.discarding = false;
  }
}

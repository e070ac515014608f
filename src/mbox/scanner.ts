/**
 * The mbox scanner: one pass over a spool (fed in arbitrary chunks) that frames messages and
 * learns, per message, its offsets, RFC 1939 size, body line count, Status header, UIDL base
 * and checksum (msum.ts).
 *
 * How it works. The input is a sequence of lines; only a few kinds need their bytes looked at:
 * header lines (until the empty line that ends the header block) and *candidate* lines (the
 * first line of the input, and any line right after an empty line), which may be From_ lines.
 * Every other line is body text, and of body text only the empty lines matter for framing (a
 * From_ line can only follow one): between two empty lines the scanner needs just the number
 * of LFs and CRLFs. A hand-assembled wasm SIMD kernel (line-kernel.ts) finds the next empty
 * line and counts those 16 bytes at a time; scanFd reads straight into the kernel's memory,
 * pushed chunks are copied into a window of it. Lines at a chunk's edges (and every line when
 * wasm is unavailable) cost one native `Buffer.indexOf(0x0a)` each. Header lines are walked
 * one by one; only the kept fields (uidl.ts) become strings.
 *
 * Sizes come from counting, not from walking lines: the scanner keeps running totals of LFs
 * and CRLFs over the whole input, snapshots them where a message's content starts and ends,
 * and a message's size is `bytes + LFs − CRLFs` (+2 if its last line has no newline).
 *
 * An empty line is ambiguous until the next line is seen: before a From_ line (or at EOF) it
 * is the mbox separator, otherwise content. It is kept *pending* (offset and counter
 * snapshots) until the candidate line after it is decided. The sum of a message is computed
 * lazily up to the first byte whose ownership is still undecided (a pending empty line, an
 * undecided candidate line, a line that so far is a lone CR); the few bytes that straddle a
 * chunk boundary are held in a small buffer (at most 2 + FROM_LINE_MAX + 2 bytes), so memory
 * stays bounded whatever the line lengths, and results are identical however the input is
 * split. Chunk buffers may be reused by the caller after push() returns: nothing keeps a view.
 * For very large spools scanFd runs two scanners, one per core, on the halves of a spool cut
 * at a From_ line (split.ts); one that cannot be cut has its sums computed by the worker thread
 * (scan-worker.ts) instead (the scanner's `sum: false`). The sums are computed by the kernel
 * module's stripe function in its memory: in place for chunks scanFd read there.
 */
import { MboxFormatError } from '../errors.js';
import { FROM_LINE_MAX, isFromLineAt } from './from-line.js';
import { acquireKernel, type BodyKernel, releaseKernel, WASM_PAGE } from './line-kernel.js';
import { MessageSum, STRIPE, SUM_STATE_BYTES } from './msum.js';
import { Scanned, type ScannedMessage, type ScanOptions, type ScanResult } from './types.js';
import { type Building, endHeaders, headerLine, newBuilding, resetBuilding } from './header-fields.js';
import { H_STATUS, uidlFromValues } from './uidl.js';

export { HEADER_KEEP_MAX } from './header-fields.js';

/**
 * scanFd's read size: large enough that syscall, thread-pool and per-chunk overhead vanish.
 * scan-bench on the 865 MB 50k spool (split over two threads, page cache), alternating runs:
 * 1 MiB → 4 MiB 533 → 488 ms median (CPU 920 → 859 ms); 256 KiB was slower (634 vs 523 ms)
 * and 8 MiB no better than 4. A scanning session's kernel memory is two of these (pages are
 * touched only as far as a scan reads).
 */
export const SCAN_CHUNK = 4 << 20;

/** A body stretch shorter than this (from a line start to the chunk's end) is walked line by
 *  line: the kernel needs 19 bytes to judge one 16-byte block, and a call has a fixed cost. */
const KERNEL_MIN = 64;
/** Kernel memory layout: the kernel's counts at 0-7; the message sum's state at SUM_AT and its
 *  scratch (for input not already in this memory, such as held bytes) after it; bytes of a
 *  pushed chunk are copied into a window of WINDOW bytes at WINDOW_AT; scanFd reads straight
 *  into two SCAN_CHUNK buffers at IO_AT (no copy at all). */
const SUM_AT = 64;
const SUM_SCRATCH_AT = SUM_AT + SUM_STATE_BYTES;
const SUM_SCRATCH = 32 * STRIPE;
const WINDOW_AT = SUM_SCRATCH_AT + SUM_SCRATCH;
const WINDOW = 256 * 1024;
const IO_AT = WINDOW_AT + WINDOW;
const KERNEL_PAGES = Math.ceil((IO_AT + 2 * SCAN_CHUNK) / WASM_PAGE);

const LF = 0x0a;
const CR = 0x0d;

const enum Kind {
  /** Body text: only its length and LF/CR matter. */
  Body,
  /** A line in the header block of the current message. */
  Header,
  /** First line of input or line after an empty line: maybe a From_ line. */
  Cand,
  /** Rest of a From_ line already recognised (when it was longer than FROM_LINE_MAX). */
  FromTail,
}

export class MboxScanner {
  private readonly strict: boolean;
  private readonly baseOffset: number;
  private readonly messages: ScannedMessage[] = [];
  private finished = false;

  /** Absolute offset of the next byte to be pushed. */
  private pos: number;
  /** Running totals of LFs and CRLFs over everything pushed. */
  private lf = 0;
  private crlf = 0;
  /** Last byte of the previous chunk (-1 at start): a CR there may pair with an LF here. */
  private prevByte = -1;

  // The current (incomplete) line.
  private lineStart: number;
  private kind: Kind = Kind.Cand;
  private headParts: Buffer[] = [];
  private headLen = 0;
  private headNeed = FROM_LINE_MAX + 2;
  /** The head takeHead() took: headBuf[headAt, headAt + headSize) (a range, not a view: a view
   *  per From_ line was ~300 bytes of garbage a message). headBuf may be the chunk being
   *  pushed; it is let go at the chunk's end. */
  private headBuf: Buffer = EMPTY;
  private headAt = 0;
  private headSize = 0;

  // The pending empty line (-1: none).
  private pendOff = -1;
  private pendLen = 0;
  private pendLf = 0;
  private pendCrlf = 0;

  private msg: Building | null = null;
  /** What msg points to while a message is open: one record, reset per message (openMessage). */
  private readonly building: Building = newBuilding();

  // sum of msg over [msg.fromOffset, sumPos); bytes [holdStart, chunkBase) not yet summed are in hold.
  private summer: MessageSum | undefined;
  private sumPos: number;
  private hold: Buffer = Buffer.alloc(0);
  private holdStart: number;
  private chunk: Buffer = Buffer.alloc(0);
  private chunkBase: number;

  /** The body kernel (undefined: not borrowed yet; null: unavailable) and its copy window:
   *  chunk bytes [winLo, winHi) of the current chunk are at memory address index + winDelta. */
  private kern: BodyKernel | null | undefined;
  private winLo = 0;
  private winHi = -1;
  private winDelta = 0;

  /** False: leave every sum 0 (scanFd has them computed in the scan worker instead). */
  private readonly withSum: boolean;

  constructor(opts: ScanOptions & { baseOffset?: number; sum?: boolean }) {
    this.strict = opts.strictFrom;
    this.baseOffset = opts.baseOffset ?? 0;
    this.withSum = opts.sum ?? true;
    this.pos = this.lineStart = this.sumPos = this.holdStart = this.chunkBase = this.baseOffset;
  }

  /** Feed the next bytes. The scanner copies what it keeps; `chunk` may be reused afterwards. */
  push(chunk: Buffer): void {
    if (this.finished) throw new Error('MboxScanner: push() after finish()');
    const n = chunk.length;
    if (n === 0) return;
    const base = this.pos;
    this.chunk = chunk;
    this.chunkBase = base;
    this.winHi = -1;
    let i = 0;
    while (i < n) {
      if (this.kind === Kind.Body) {
        i = this.bodyLoop(chunk, base, i);
        continue;
      }
      if (this.kind === Kind.Header && this.lineStart === base + i) {
        const j = this.headerLoop(chunk, base, i);
        if (j !== i) {
          i = j;
          continue;
        }
      }
      const nl = chunk.indexOf(LF, i);
      if (nl === -1) {
        this.keepHead(chunk, base, i, n);
        // Past FROM_LINE_MAX + 1 bytes (the 1 being a CR) the text is surely too long: decide now.
        if (this.kind === Kind.Cand && this.headLen > FROM_LINE_MAX + 1) {
          this.takeHead(chunk, base, n);
          this.decideCandidate(-1, false);
        }
        break;
      }
      const isCR = nl > 0 ? chunk[nl - 1] === CR : this.prevByte === CR;
      this.lf++;
      if (isCR) this.crlf++;
      const ls = this.lineStart - base;
      if (ls >= 0 && this.kind === Kind.Cand && this.msg !== null && nl > ls && chunk[ls] !== 0x46) {
        // Common case: the line after an empty body line is text not starting with 'F'.
        this.notFrom();
        if (nl - ls === 1 && isCR) this.setPending(2, true);
        this.startLine(base + nl + 1);
      } else {
        if (this.kind === Kind.FromTail) this.noHead();
        else this.takeHead(chunk, base, nl);
        this.endLine(base + nl, isCR, true);
      }
      i = nl + 1;
    }
    this.prevByte = chunk[n - 1]!;
    this.pos = base + n;
    this.endChunk(chunk, base, n);
  }

  /** The messages framed so far (the array finish() will return, growing). */
  framed(): readonly ScannedMessage[] {
    return this.messages;
  }

  /** End of input: frame the last message and return everything learned. */
  finish(): ScanResult {
    if (!this.finished) {
      this.finished = true;
      this.chunk = EMPTY;
      this.chunkBase = this.pos;
      const eof = this.pos;
      if (this.lineStart < eof) {
        // A last line without a newline.
        if (this.kind === Kind.FromTail || this.kind === Kind.Body) this.noHead();
        else this.takeHead(EMPTY, eof, 0);
        this.endLine(eof, false, false);
      }
      if (this.msg !== null) {
        if (this.pendOff >= 0) this.closeMessage(this.pendOff, this.pendLf, this.pendCrlf, false);
        else this.closeMessage(eof, this.lf, this.crlf, this.lastLineOpen);
      }
      if (this.kern) releaseKernel(this.kern);
      this.kern = null;
    }
    return { messages: this.messages, scanEnd: this.pos, bytesRead: this.pos - this.baseOffset };
  }

  /** True when the input ended inside a content line (it gets a CRLF on the wire). */
  private lastLineOpen = false;

  /**
   * Read buffers inside the kernel's memory, so chunks read into them need no copy: `count`
   * buffers of `size` bytes (at most 2 × SCAN_CHUNK in all), or null when unavailable (wasm
   * missing, or already pushed). The memory goes back to the pool at finish(): the caller
   * must not touch the buffers after that, nor call finish() while a read into them is in flight.
   */
  ioBuffersFromKernel(count: number, size: number): Buffer[] | null {
    if (this.kern !== undefined || count * size > 2 * SCAN_CHUNK) return null;
    const k = this.kernel();
    if (k === null) return null;
    return Array.from({ length: count }, (_, j) => Buffer.from(k.buffer, IO_AT + j * size, size));
  }

  private kernel(): BodyKernel | null {
    if (this.kern === undefined) this.kern = acquireKernel(KERNEL_PAGES);
    return this.kern;
  }

  /**
   * The fast path: body lines, from index i (the current line started at this.lineStart);
   * returns where the next non-body line starts. From a line start well inside the chunk, the
   * wasm kernel finds the next empty line (the only kind of body line that matters for
   * framing) and counts the LFs and CRLFs before it; lines near the chunk's edges, and every
   * line when wasm is unavailable, cost one native indexOf each.
   */
  private bodyLoop(chunk: Buffer, base: number, i: number): number {
    const n = chunk.length;
    let lineStart = this.lineStart;
    for (;;) {
      const ls = lineStart - base;
      // ls >= 1 and lineStart > its LF: chunk[ls - 1] is that LF. An empty first line is left to the slow path.
      if (ls >= 1 && n - ls >= KERNEL_MIN && chunk[ls] !== LF && chunk[ls] !== CR && this.kernel() !== null) {
        const k = this.kern!;
        const d = this.mirror(chunk, ls);
        const r = k.scan(ls + d, Math.min(n, this.winHi) + d);
        this.lf += k.lf();
        this.crlf += k.crlf();
        if (r > 0) {
          // An empty line starts at e: LF, or CR LF (the kernel saw both bytes).
          const e = r - d;
          const isCR = chunk[e] === CR;
          this.lf++;
          if (isCR) this.crlf++;
          const next = e + (isCR ? 2 : 1);
          const b = next < n ? chunk[next]! : LF;
          if (b !== 0x46 && b !== LF && b !== CR) {
            // In a body, an empty line followed by a line that cannot be a From_ line (it does
            // not start with 'F') nor be empty is plain content: it changes nothing but the
            // counts, so the kernel goes on from that line instead of the candidate path. (The
            // kernel passes over such lines itself; this catches one whose next line starts
            // past the end of its copy window, inside the chunk.)
            lineStart = base + next;
            i = next;
            continue;
          }
          this.lineStart = base + e;
          this.setPending(isCR ? 2 : 1, isCR);
          this.startLine(this.lineStart + (isCR ? 2 : 1));
          return e + (isCR ? 2 : 1);
        }
        // No empty line before q: carry on line by line from the line containing q.
        i = -r - d;
        lineStart = base + chunk.lastIndexOf(LF, i - 1) + 1;
      }
      const nl = chunk.indexOf(LF, i);
      if (nl === -1) {
        this.lineStart = lineStart;
        return n;
      }
      const isCR = nl > 0 ? chunk[nl - 1] === CR : this.prevByte === CR;
      this.lf++;
      if (isCR) this.crlf++;
      const len = base + nl - lineStart;
      if (len === 0 || (len === 1 && isCR)) {
        this.lineStart = lineStart;
        this.setPending(len + 1, isCR);
        this.startLine(base + nl + 1);
        return nl + 1;
      }
      lineStart = base + nl + 1;
      i = nl + 1;
    }
  }

  /** Make chunk bytes from ls - 1 on visible to the kernel; returns address − chunk index. */
  private mirror(chunk: Buffer, ls: number): number {
    const k = this.kern!;
    if (chunk.buffer === k.buffer) {
      this.winHi = chunk.length;
      return chunk.byteOffset;
    }
    const n = chunk.length;
    if (this.winHi < 0 || ls - 1 < this.winLo || (this.winHi - ls < KERNEL_MIN && this.winHi < n)) {
      this.winLo = ls - 1;
      this.winHi = Math.min(n, this.winLo + WINDOW);
      chunk.copy(k.bytes, WINDOW_AT, this.winLo, this.winHi);
      this.winDelta = WINDOW_AT - this.winLo;
    }
    return this.winDelta;
  }

  /**
   * Header lines that start at index i (a line start) and end in this chunk, until the empty
   * line that ends the block; returns where the first line it did not finish starts.
   */
  private headerLoop(chunk: Buffer, base: number, i: number): number {
    const m = this.msg!;
    let ls = i;
    for (;;) {
      const nl = chunk.indexOf(LF, ls);
      if (nl === -1) break;
      // The byte before a line start is an LF, so a CR at nl - 1 belongs to this line.
      const isCR = nl > ls && chunk[nl - 1] === CR;
      this.lf++;
      if (isCR) this.crlf++;
      const len = nl - ls;
      if (len === 0 || (len === 1 && isCR)) {
        this.lineStart = base + ls;
        this.setPending(len + 1, isCR);
        this.startLine(base + nl + 1);
        return nl + 1;
      }
      headerLine(m, chunk, ls, Math.min(isCR ? nl - 1 : nl, ls + m.headerBudget), base + ls, len + 1);
      ls = nl + 1;
    }
    if (ls !== i) this.startLine(base + ls);
    return ls;
  }

  /** Copy the head bytes of a line that continues past this chunk (up to headNeed). */
  private keepHead(chunk: Buffer, base: number, i: number, n: number): void {
    const from = Math.max(this.lineStart - base, i);
    const take = Math.min(this.headNeed - this.headLen, n - from);
    if (take > 0) {
      this.headParts.push(Buffer.from(chunk.subarray(from, from + take)));
      this.headLen += take;
    }
  }

  /** The kept head of the current line, whose text ends at chunk index `textEnd`, into headBuf. */
  private takeHead(chunk: Buffer, base: number, textEnd: number): void {
    const from = Math.max(this.lineStart - base, 0);
    const take = Math.max(0, Math.min(this.headNeed - this.headLen, textEnd - from));
    if (this.headParts.length === 0) {
      this.headBuf = chunk;
      this.headAt = from;
      this.headSize = take;
      return;
    }
    this.headBuf = Buffer.concat([...this.headParts, chunk.subarray(from, from + take)]);
    this.headAt = 0;
    this.headSize = this.headBuf.length;
  }

  /** A line whose head is not needed (its kind keeps none). */
  private noHead(): void {
    this.headBuf = EMPTY;
    this.headAt = 0;
    this.headSize = 0;
  }

  private startLine(abs: number): void {
    this.lineStart = abs;
    if (this.headParts.length > 0) this.headParts = [];
    this.headLen = 0;
    if (this.pendOff >= 0 || this.msg === null) {
      this.kind = Kind.Cand;
      this.headNeed = FROM_LINE_MAX + 2;
    } else if (this.msg.inHeaders) {
      this.kind = Kind.Header;
      this.headNeed = this.msg.headerBudget;
    } else {
      this.kind = Kind.Body;
      this.headNeed = 0;
    }
  }

  /** The current line is empty: hold it as a possible separator. Called after counting its LF. */
  private setPending(len: number, isCR: boolean): void {
    this.pendOff = this.lineStart;
    this.pendLen = len;
    this.pendLf = this.lf - 1;
    this.pendCrlf = this.crlf - (isCR ? 1 : 0);
  }

  /** The pending empty line turned out to be content. */
  private commitPending(): void {
    const m = this.msg!;
    if (m.inHeaders) {
      endHeaders(m);
      m.bodyStart = this.pendOff + this.pendLen;
      m.bodyLf = this.pendLf + 1;
    }
    this.pendOff = -1;
  }

  /**
   * A line ends at absolute offset `absEnd` (its LF, or EOF when !hasLF). The head (headBuf)
   * holds its first bytes (as many as its kind needs), including a CR before the LF if kept.
   */
  private endLine(absEnd: number, isCR: boolean, hasLF: boolean): void {
    const len = absEnd - this.lineStart;
    const empty = hasLF && (len === 0 || (len === 1 && isCR));
    switch (this.kind) {
      case Kind.Cand:
        this.decideCandidate(len, hasLF);
        break;
      case Kind.FromTail:
        this.fromLineEnded(absEnd, hasLF);
        break;
      case Kind.Header:
        if (empty) this.setPending(len + 1, isCR);
        else {
          const hs = this.headSize;
          const textLen = !hasLF || len > hs || !isCR ? hs : hs - 1;
          headerLine(this.msg!, this.headBuf, this.headAt, this.headAt + textLen, this.lineStart, len + (hasLF ? 1 : 0));
          if (!hasLF) this.lastLineOpen = true;
        }
        break;
      case Kind.Body:
        if (empty) this.setPending(len + 1, isCR);
        else if (!hasLF) {
          this.lastLineOpen = true;
        }
        break;
    }
    if (hasLF) this.startLine(absEnd + 1);
  }

  /**
   * Decide a candidate line: `len` is its full length when it ended (-1 when called early
   * because it is longer than FROM_LINE_MAX and continues past the chunk).
   */
  private decideCandidate(len: number, hasLF: boolean): void {
    const hb = this.headBuf;
    const ho = this.headAt;
    const hs = this.headSize;
    // Judge the text without its CR: the same line must get the same verdict however split.
    const textLen = len < 0 ? -1 : hasLF && len >= 1 && hs >= len && hb[ho + len - 1] === CR ? len - 1 : len;
    const truncated = textLen < 0 || textLen > FROM_LINE_MAX;
    const fromLen = Math.min(hs, truncated ? FROM_LINE_MAX : textLen);
    const isFrom = truncated ? !this.strict && isFromLineAt(hb, ho, fromLen, false) : isFromLineAt(hb, ho, fromLen, this.strict);
    if (isFrom) {
      if (this.msg !== null) {
        if (this.pendOff >= 0) this.closeMessage(this.pendOff, this.pendLf, this.pendCrlf, false);
        else this.closeMessage(this.lineStart, this.lf, this.crlf, false); // unreachable: From_ needs a pending line
      }
      this.pendOff = -1;
      this.openMessage(hb, ho, fromLen);
      if (len < 0) {
        this.kind = Kind.FromTail;
        this.headParts = [];
        this.headLen = 0;
        this.headNeed = 0;
      } else {
        this.fromLineEnded(this.lineStart + len, hasLF);
      }
      return;
    }
    this.notFrom(true);
    if (len < 0) {
      this.headParts = [];
      this.headLen = 0;
      return;
    }
    const isCR = hasLF && len >= 1 && hs === len && hb[ho + len - 1] === CR;
    if (hasLF && (len === 0 || (len === 1 && isCR))) this.setPending(len + 1, isCR);
    else if (!hasLF) this.lastLineOpen = true;
  }

  /** The candidate line is not a From_ line: it is content (or, first in input, an error: the
   *  head shows what the line starts with, when `withHead`). */
  private notFrom(withHead = false): void {
    if (this.msg === null) {
      const shown = withHead ? this.headBuf.toString('latin1', this.headAt, this.headAt + Math.min(40, this.headSize)) : '';
      throw new MboxFormatError(`not an mbox: no From_ line at offset ${this.lineStart} (line starts ${JSON.stringify(shown)})`);
    }
    if (this.pendOff >= 0) this.commitPending();
    // Now an ordinary body line (the header block ended with the pending empty line).
    this.kind = Kind.Body;
    this.headNeed = 0;
  }

  private openMessage(buf: Buffer, at: number, n: number): void {
    const fromLine = buf.toString('latin1', at, at + (n > 0 && buf[at + n - 1] === CR ? n - 1 : n));
    this.msg = resetBuilding(this.building, this.lineStart, fromLine);
    if (this.withSum) this.sum().reset();
    this.sumPos = this.lineStart;
    this.lastLineOpen = false;
  }

  private fromLineEnded(absEnd: number, hasLF: boolean): void {
    const m = this.msg!;
    m.start = hasLF ? absEnd + 1 : absEnd;
    m.lfStart = this.lf;
    m.crlfStart = this.crlf;
    this.lastLineOpen = false;
  }

  private closeMessage(end: number, endLf: number, endCrlf: number, open: boolean): void {
    const m = this.msg!;
    if (m.inHeaders) endHeaders(m);
    if (m.start < 0) m.start = end; // From_ line without a newline at EOF
    const lastOpen = open && end > m.start;
    const size = end - m.start + (endLf - m.lfStart) - (endCrlf - m.crlfStart) + (lastOpen ? 2 : 0);
    const hasBody = m.bodyStart >= 0;
    const bodyStart = hasBody ? m.bodyStart : end;
    const bodyLines = hasBody ? endLf - m.bodyLf + (lastOpen && end > bodyStart ? 1 : 0) : 0;
    this.sumTo(end);
    const uidlBase = uidlFromValues(m.fromLine, m.values);
    const status = (m.values[H_STATUS] ?? '').trim();
    const statusLength = m.statusOffset >= 0 ? m.statusLength : -1;
    const sum = this.withSum ? this.sum().digest() : 0;
    this.messages.push(new Scanned(m.fromOffset, m.start, bodyStart, end, size, bodyLines, uidlBase, status, m.statusOffset, statusLength, sum));
    this.msg = null;
  }

  /** The message sum: its state lives in the kernel's memory (JS-only without wasm). */
  private sum(): MessageSum {
    return (this.summer ??= new MessageSum(this.kernel(), SUM_AT, SUM_SCRATCH_AT, SUM_SCRATCH));
  }

  /** Extend the sum of the current message over [sumPos, to). */
  private sumTo(to: number): void {
    if (to <= this.sumPos || !this.withSum) return;
    const base = this.chunkBase;
    const sum = this.sum();
    if (this.sumPos < base) {
      const hEnd = Math.min(to, base);
      sum.update(this.hold, this.sumPos - this.holdStart, hEnd - this.holdStart);
      this.sumPos = hEnd;
    }
    if (to > this.sumPos) {
      sum.update(this.chunk, this.sumPos - base, to - base);
      this.sumPos = to;
    }
  }

  /** At a chunk's end: sum what is decided, hold the few undecided bytes. */
  private endChunk(chunk: Buffer, base: number, n: number): void {
    const end = base + n;
    let safe = end;
    if (this.msg === null) safe = this.lineStart;
    if (this.pendOff >= 0) safe = Math.min(safe, this.pendOff);
    if (this.kind === Kind.Cand) safe = Math.min(safe, this.lineStart);
    // A line that so far is a lone CR may still become an empty CRLF line (a separator).
    if (end - this.lineStart === 1 && this.prevByte === CR && this.kind !== Kind.FromTail) {
      safe = Math.min(safe, this.lineStart);
    }
    if (this.msg !== null) this.sumTo(Math.max(safe, this.sumPos));
    const keepFrom = this.msg !== null ? this.sumPos : safe;
    if (keepFrom >= end || !this.withSum) {
      this.hold = EMPTY;
    } else if (keepFrom >= base) {
      this.hold = Buffer.from(chunk.subarray(keepFrom - base));
    } else {
      this.hold = Buffer.concat([this.hold.subarray(keepFrom - this.holdStart), chunk]);
    }
    this.holdStart = keepFrom;
    this.headBuf = EMPTY;
    this.chunk = EMPTY;
    this.chunkBase = end;
  }
}

const EMPTY = Buffer.alloc(0);

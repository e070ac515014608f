/**
 * The mbox scanner: one pass over a spool (fed in arbitrary chunks) that frames messages and
 * learns, per message, its offsets, RFC 1939 size, body line count, Status header, UIDL base
 * and crc32.
 *
 * How it works. The input is a sequence of lines; only a few kinds need their bytes looked at:
 * header lines (until the empty line that ends the header block) and *candidate* lines (the
 * first line of the input, and any line right after an empty line), which may be From_ lines.
 * Every other line is body text and costs one native `Buffer.indexOf(0x0a)`: the body loop
 * never touches its bytes, except the one before the LF (is it CRLF?).
 *
 * Sizes come from counting, not from walking lines: the scanner keeps running totals of LFs
 * and CRLFs over the whole input, snapshots them where a message's content starts and ends,
 * and a message's size is `bytes + LFs − CRLFs` (+2 if its last line has no newline).
 *
 * An empty line is ambiguous until the next line is seen: before a From_ line (or at EOF) it
 * is the mbox separator, otherwise content. It is kept *pending* (offset and counter
 * snapshots) until the candidate line after it is decided. The crc of a message is computed
 * lazily up to the first byte whose ownership is still undecided (a pending empty line, an
 * undecided candidate line, a line that so far is a lone CR); the few bytes that straddle a
 * chunk boundary are held in a small buffer (at most 2 + FROM_LINE_MAX + 2 bytes), so memory
 * stays bounded whatever the line lengths, and results are identical however the input is
 * split. Chunk buffers may be reused by the caller after push() returns: nothing keeps a view.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { MboxFormatError, PopspoolError } from '../errors.js';
import { FROM_LINE_MAX, isFromLine } from './from-line.js';
import type { ScannedMessage, ScanOptions, ScanResult } from './types.js';
import { KEPT_HEADERS, type KeptHeaders, uidlBase } from './uidl.js';

/** Header bytes kept per message for UIDL/Status purposes; longer header blocks are cut
 *  (deterministically) so one hostile message cannot make a scan use unbounded memory. */
export const HEADER_KEEP_MAX = 64 * 1024;

/** scanFd's read size: large enough that syscall and thread-pool overhead vanish. */
export const SCAN_CHUNK = 1 << 20;

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

interface Building {
  fromOffset: number;
  fromLine: string;
  start: number; // -1 until the From_ line's LF is seen
  lfStart: number;
  crlfStart: number;
  bodyStart: number; // -1 while in the header block (or until its end is committed)
  bodyLf: number;
  inHeaders: boolean;
  headerBudget: number;
  headers: KeptHeaders;
  statusOffset: number;
  statusLength: number;
  // The header field being read (may continue on folded lines); null when not a kept one.
  curName: string | null;
  curValue: string;
  curOffset: number;
  curLength: number;
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

  // The pending empty line (-1: none).
  private pendOff = -1;
  private pendLen = 0;
  private pendLf = 0;
  private pendCrlf = 0;

  private msg: Building | null = null;

  // crc of msg over [msg.fromOffset, crcPos); bytes [holdStart, chunkBase) not yet crc'd are in hold.
  private crc = 0;
  private crcPos: number;
  private hold: Buffer = Buffer.alloc(0);
  private holdStart: number;
  private chunk: Buffer = Buffer.alloc(0);
  private chunkBase: number;

  constructor(opts: ScanOptions & { baseOffset?: number }) {
    this.strict = opts.strictFrom;
    this.baseOffset = opts.baseOffset ?? 0;
    this.pos = this.lineStart = this.crcPos = this.holdStart = this.chunkBase = this.baseOffset;
  }

  /** Feed the next bytes. The scanner copies what it keeps; `chunk` may be reused afterwards. */
  push(chunk: Buffer): void {
    if (this.finished) throw new Error('MboxScanner: push() after finish()');
    const n = chunk.length;
    if (n === 0) return;
    const base = this.pos;
    this.chunk = chunk;
    this.chunkBase = base;
    let i = 0;
    while (i < n) {
      if (this.kind === Kind.Body) {
        i = this.bodyLoop(chunk, base, i);
        continue;
      }
      const nl = chunk.indexOf(LF, i);
      if (nl === -1) {
        this.keepHead(chunk, base, i, n);
        // Past FROM_LINE_MAX + 1 bytes (the 1 being a CR) the text is surely too long: decide now.
        if (this.kind === Kind.Cand && this.headLen > FROM_LINE_MAX + 1) {
          this.decideCandidate(this.takeHead(chunk, base, n), -1, false);
        }
        break;
      }
      const isCR = nl > 0 ? chunk[nl - 1] === CR : this.prevByte === CR;
      this.lf++;
      if (isCR) this.crlf++;
      const ls = this.lineStart - base;
      if (ls >= 0 && this.kind === Kind.Header) {
        this.headerLineInChunk(chunk, ls, nl, isCR);
      } else if (ls >= 0 && this.kind === Kind.Cand && this.msg !== null && nl > ls && chunk[ls] !== 0x46) {
        // Common case: the line after an empty body line is text not starting with 'F'.
        this.notFrom();
        if (nl - ls === 1 && isCR) this.setPending(2, true);
        this.startLine(base + nl + 1);
      } else {
        const head = this.kind === Kind.FromTail ? EMPTY : this.takeHead(chunk, base, nl);
        this.endLine(head, base + nl, isCR, true);
      }
      i = nl + 1;
    }
    this.prevByte = chunk[n - 1]!;
    this.pos = base + n;
    this.endChunk(chunk, base, n);
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
        const head = this.kind === Kind.FromTail || this.kind === Kind.Body ? EMPTY : this.takeHead(EMPTY, eof, 0);
        this.endLine(head, eof, false, false);
      }
      if (this.msg !== null) {
        if (this.pendOff >= 0) this.closeMessage(this.pendOff, this.pendLf, this.pendCrlf, false);
        else this.closeMessage(eof, this.lf, this.crlf, this.lastLineOpen);
      }
    }
    return { messages: this.messages, scanEnd: this.pos, bytesRead: this.pos - this.baseOffset };
  }

  /** True when the input ended inside a content line (it gets a CRLF on the wire). */
  private lastLineOpen = false;

  /** The fast path: body lines, from index i; returns where the next non-body line starts. */
  private bodyLoop(chunk: Buffer, base: number, i: number): number {
    let lineStart = this.lineStart;
    for (;;) {
      const nl = chunk.indexOf(LF, i);
      if (nl === -1) {
        this.lineStart = lineStart;
        return chunk.length;
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

  /** A header-block line lying wholly in this chunk, [ls, nl) with its LF at nl. */
  private headerLineInChunk(chunk: Buffer, ls: number, nl: number, isCR: boolean): void {
    const len = nl - ls;
    if (len === 0 || (len === 1 && isCR)) {
      this.setPending(len + 1, isCR);
    } else {
      const m = this.msg!;
      const textEnd = isCR ? nl - 1 : nl;
      this.headerLine(m, chunk, ls, Math.min(textEnd, ls + m.headerBudget), this.lineStart, len + 1);
    }
    this.startLine(this.lineStart + len + 1);
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

  /** The kept head of the current line, whose text ends at chunk index `textEnd`. */
  private takeHead(chunk: Buffer, base: number, textEnd: number): Buffer {
    const from = Math.max(this.lineStart - base, 0);
    const take = Math.max(0, Math.min(this.headNeed - this.headLen, textEnd - from));
    const tail = chunk.subarray(from, from + take);
    if (this.headParts.length === 0) return tail;
    return Buffer.concat([...this.headParts, tail]);
  }

  private startLine(abs: number): void {
    this.lineStart = abs;
    this.headParts = [];
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
      this.endHeaders(m);
      m.bodyStart = this.pendOff + this.pendLen;
      m.bodyLf = this.pendLf + 1;
    }
    this.pendOff = -1;
  }

  /**
   * A line ends at absolute offset `absEnd` (its LF, or EOF when !hasLF). `head` holds its
   * first bytes (as many as its kind needs), including a CR before the LF if kept.
   */
  private endLine(head: Buffer, absEnd: number, isCR: boolean, hasLF: boolean): void {
    const len = absEnd - this.lineStart;
    const empty = hasLF && (len === 0 || (len === 1 && isCR));
    switch (this.kind) {
      case Kind.Cand:
        this.decideCandidate(head, len, hasLF);
        break;
      case Kind.FromTail:
        this.fromLineEnded(absEnd, hasLF);
        break;
      case Kind.Header:
        if (empty) this.setPending(len + 1, isCR);
        else {
          const textLen = !hasLF || len > head.length || !isCR ? head.length : head.length - 1;
          this.headerLine(this.msg!, head, 0, textLen, this.lineStart, len + (hasLF ? 1 : 0));
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
  private decideCandidate(head: Buffer, len: number, hasLF: boolean): void {
    // Judge the text without its CR: the same line must get the same verdict however split.
    const textLen = len < 0 ? -1 : hasLF && len >= 1 && head.length >= len && head[len - 1] === CR ? len - 1 : len;
    const truncated = textLen < 0 || textLen > FROM_LINE_MAX;
    const fromText = truncated ? head.subarray(0, FROM_LINE_MAX) : head.subarray(0, textLen);
    const isFrom = truncated ? !this.strict && isFromLine(fromText, false) : isFromLine(fromText, this.strict);
    if (isFrom) {
      if (this.msg !== null) {
        if (this.pendOff >= 0) this.closeMessage(this.pendOff, this.pendLf, this.pendCrlf, false);
        else this.closeMessage(this.lineStart, this.lf, this.crlf, false); // unreachable: From_ needs a pending line
      }
      this.pendOff = -1;
      this.openMessage(fromText);
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
    this.notFrom(head);
    if (len < 0) {
      this.headParts = [];
      this.headLen = 0;
      return;
    }
    const isCR = hasLF && len >= 1 && head.length === len && head[len - 1] === CR;
    if (hasLF && (len === 0 || (len === 1 && isCR))) this.setPending(len + 1, isCR);
    else if (!hasLF) this.lastLineOpen = true;
  }

  /** The candidate line is not a From_ line: it is content (or, first in input, an error). */
  private notFrom(head?: Buffer): void {
    if (this.msg === null) {
      throw new MboxFormatError(
        `not an mbox: no From_ line at offset ${this.lineStart} (line starts ${JSON.stringify(
          (head ?? EMPTY).subarray(0, 40).toString('latin1'),
        )})`,
      );
    }
    if (this.pendOff >= 0) this.commitPending();
    // Now an ordinary body line (the header block ended with the pending empty line).
    this.kind = Kind.Body;
    this.headNeed = 0;
  }

  private openMessage(fromText: Buffer): void {
    let t = fromText.toString('latin1');
    if (t.endsWith('\r')) t = t.slice(0, -1);
    this.msg = {
      fromOffset: this.lineStart,
      fromLine: t,
      start: -1,
      lfStart: 0,
      crlfStart: 0,
      bodyStart: -1,
      bodyLf: 0,
      inHeaders: true,
      headerBudget: HEADER_KEEP_MAX,
      headers: {},
      statusOffset: -1,
      statusLength: 0,
      curName: null,
      curValue: '',
      curOffset: 0,
      curLength: 0,
    };
    this.crc = 0;
    this.crcPos = this.lineStart;
    this.lastLineOpen = false;
  }

  private fromLineEnded(absEnd: number, hasLF: boolean): void {
    const m = this.msg!;
    m.start = hasLF ? absEnd + 1 : absEnd;
    m.lfStart = this.lf;
    m.crlfStart = this.crlf;
    this.lastLineOpen = false;
  }

  /** One header line: its text (no terminator, maybe cut to the header budget) is buf[from, to). */
  private headerLine(m: Building, buf: Buffer, from: number, to: number, offset: number, lengthWithNl: number): void {
    m.headerBudget -= to - from;
    const c = to > from ? buf[from]! : 0;
    if (c === 0x20 || c === 0x09) {
      // Folded continuation of the previous field.
      if (m.curName !== null) {
        m.curValue += '\n' + buf.toString('latin1', from, to);
        m.curLength += lengthWithNl;
      }
      return;
    }
    this.endField(m);
    const name = keptHeaderName(buf, from, to);
    if (name === null || m.headers[name] !== undefined) return;
    m.curName = name;
    m.curValue = buf.toString('latin1', from + name.length + nameGap(buf, from + name.length, to) + 1, to);
    m.curOffset = offset;
    m.curLength = lengthWithNl;
  }

  private endField(m: Building): void {
    if (m.curName === null) return;
    m.headers[m.curName] = m.curValue;
    if (m.curName === 'status') {
      m.statusOffset = m.curOffset;
      m.statusLength = m.curLength;
    }
    m.curName = null;
  }

  private endHeaders(m: Building): void {
    this.endField(m);
    m.inHeaders = false;
  }

  private closeMessage(end: number, endLf: number, endCrlf: number, open: boolean): void {
    const m = this.msg!;
    if (m.inHeaders) this.endHeaders(m);
    if (m.start < 0) m.start = end; // From_ line without a newline at EOF
    const lastOpen = open && end > m.start;
    const size = end - m.start + (endLf - m.lfStart) - (endCrlf - m.crlfStart) + (lastOpen ? 2 : 0);
    const hasBody = m.bodyStart >= 0;
    const bodyStart = hasBody ? m.bodyStart : end;
    const bodyLines = hasBody ? endLf - m.bodyLf + (lastOpen && end > bodyStart ? 1 : 0) : 0;
    this.crcTo(end);
    this.messages.push({
      fromOffset: m.fromOffset,
      start: m.start,
      bodyStart,
      end,
      size,
      bodyLines,
      uidlBase: uidlBase(m.fromLine, m.headers),
      status: (m.headers['status'] ?? '').trim(),
      statusOffset: m.statusOffset,
      statusLength: m.statusOffset >= 0 ? m.statusLength : -1,
      crc: this.crc >>> 0,
    });
    this.msg = null;
  }

  /** Extend the crc of the current message over [crcPos, to). */
  private crcTo(to: number): void {
    if (to <= this.crcPos) return;
    const base = this.chunkBase;
    if (this.crcPos < base) {
      const hEnd = Math.min(to, base);
      this.crc = zlib.crc32(this.hold.subarray(this.crcPos - this.holdStart, hEnd - this.holdStart), this.crc);
      this.crcPos = hEnd;
    }
    if (to > this.crcPos) {
      this.crc = zlib.crc32(this.chunk.subarray(this.crcPos - base, to - base), this.crc);
      this.crcPos = to;
    }
  }

  /** At a chunk's end: crc what is decided, hold the few undecided bytes. */
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
    if (this.msg !== null) this.crcTo(Math.max(safe, this.crcPos));
    const keepFrom = this.msg !== null ? this.crcPos : safe;
    if (keepFrom >= end) {
      this.hold = EMPTY;
    } else if (keepFrom >= base) {
      this.hold = Buffer.from(chunk.subarray(keepFrom - base));
    } else {
      this.hold = Buffer.concat([this.hold.subarray(keepFrom - this.holdStart), chunk]);
    }
    this.holdStart = keepFrom;
    this.chunk = EMPTY;
    this.chunkBase = end;
  }
}

const EMPTY = Buffer.alloc(0);

/** KEPT_HEADERS as bytes, for matching names without making strings. */
const KEPT_BYTES: ReadonlyArray<readonly [string, Buffer]> = [...KEPT_HEADERS].map((n) => [n, Buffer.from(n, 'latin1')] as const);
/** Longest kept header name: a colon further away than this (plus blanks) cannot start one. */
const NAME_SCAN_MAX = 20;

/** Count of SP/HTAB bytes from `at` up to a colon (RFC 5322 obsolete syntax allows them); -1 if no colon follows. */
function nameGap(buf: Buffer, at: number, to: number): number {
  let k = at;
  while (k < to && (buf[k] === 0x20 || buf[k] === 0x09)) k++;
  return k < to && buf[k] === 0x3a ? k - at : -1;
}

/** If buf[from, to) starts with `Name:` for a kept header (any case), its lower-case name. */
function keptHeaderName(buf: Buffer, from: number, to: number): string | null {
  const lc = buf[from]! | 0x20;
  // Cheap filter: kept names start with d, m, r, s or x.
  if (lc !== 0x64 && lc !== 0x6d && lc !== 0x72 && lc !== 0x73 && lc !== 0x78) return null;
  outer: for (const [name, bytes] of KEPT_BYTES) {
    const n = bytes.length;
    if (to - from <= n) continue;
    for (let k = 0; k < n; k++) {
      const want = bytes[k]!;
      const got = buf[from + k]!;
      if (want === 0x2d ? got !== 0x2d : (got | 0x20) !== want) continue outer;
    }
    if (nameGap(buf, from + n, Math.min(to, from + NAME_SCAN_MAX + 1)) >= 0) return name;
  }
  return null;
}

function readAt(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, 0, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
  });
}

/**
 * Scan [start, end) of an open spool with positional reads (two reused buffers, so the next
 * read overlaps the scan of the current chunk). Never opens by path, never closes `fd`.
 * `start` must be 0 or the offset of a From_ line; scanEnd is `end`.
 */
export async function scanFd(fd: number, start: number, end: number, opts: ScanOptions): Promise<ScanResult> {
  const scanner = new MboxScanner({ ...opts, baseOffset: start });
  const bufs = [Buffer.allocUnsafe(SCAN_CHUNK), Buffer.allocUnsafe(SCAN_CHUNK)];
  let pos = start;
  let which = 0;
  let pending: Promise<number> | null = pos < end ? readAt(fd, bufs[0]!, Math.min(SCAN_CHUNK, end - pos), pos) : null;
  while (pending !== null) {
    const got = await pending;
    if (got === 0) {
      throw new PopspoolError('SYS_TEMP', `spool shrank during scan: expected ${end} bytes, got ${pos}`);
    }
    const cur = bufs[which]!;
    pos += got;
    which ^= 1;
    pending = pos < end ? readAt(fd, bufs[which]!, Math.min(SCAN_CHUNK, end - pos), pos) : null;
    scanner.push(cur.subarray(0, got));
  }
  const r = scanner.finish();
  return { messages: r.messages, scanEnd: end, bytesRead: r.bytesRead };
}

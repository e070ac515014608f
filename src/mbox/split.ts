/**
 * Where a spool may be cut so that two scanners (one per core) can frame its halves: a From_
 * line that a sequential scan would also take as a message boundary.
 *
 * Why a cut there is exact. A sequential scan treats a line as a possible From_ line only at
 * offset 0 or right after an empty line (LF, or CR LF) — whatever came before: headers, body,
 * or even the From_ line of an empty message. So "\n\nFrom " or "\n\r\nFrom " at p, with the
 * line at p passing the same From_ verdict the scanner gives (decideCandidate: text judged
 * without its CR), is a boundary: the message before it ends at the empty line (the
 * separator), which a scan of [start, p) also closes as the separator at its end of input,
 * with the same offsets, counts and crc; and a scan from p starts with that From_ line, as a
 * tail scan does (scanFd's `start` contract). Only lines that end within FROM_LINE_MAX + 1
 * bytes are used, so the verdict never depends on the truncation rule for very long lines.
 */
import * as fs from 'node:fs';
import { FROM_LINE_MAX, isFromLine } from './from-line.js';

/** How far past the target the search goes before giving up (then the scan is not split):
 *  a message larger than this around the middle (a huge attachment) is not worth the hunt. */
export const SPLIT_SEARCH_MAX = 16 * 1024 * 1024;
/** Read size of the search. */
const SEARCH_CHUNK = 256 * 1024;

const FROM_ = Buffer.from('From ');
const LF = 0x0a;
const CR = 0x0d;

/**
 * The first boundary p with lo <= p - 3 (so the bytes that make the empty line before it are
 * in `buf`) found in buf[lo, buf.length), or -1; buf indexes are offsets. `atEof` tells whether
 * buf ends at the end of input (a From_ line cut off by buf's end is otherwise not judged).
 */
export function findBoundaryIn(buf: Uint8Array, lo: number, strict: boolean, atEof: boolean): number {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  let i = lo + 2;
  for (;;) {
    const p = b.indexOf(FROM_, i);
    if (p < 0) return -1;
    i = p + 1;
    if (p < lo + 2 || b[p - 1] !== LF) continue;
    const afterEmpty = b[p - 2] === LF || (b[p - 2] === CR && p - 3 >= lo && b[p - 3] === LF);
    if (!afterEmpty) continue;
    // The line must end (LF) within FROM_LINE_MAX + 1 bytes: then the scanner judges its text
    // without the CR before the LF, never truncated.
    const nl = b.indexOf(LF, p);
    const len = nl - p;
    if (nl < 0) {
      if (!atEof && b.length - p <= FROM_LINE_MAX + 1) return -1; // cut off: let the caller read on
      continue;
    }
    if (len > FROM_LINE_MAX + 1) continue;
    const textLen = len >= 1 && b[nl - 1] === CR ? len - 1 : len;
    if (textLen > FROM_LINE_MAX) continue;
    if (isFromLine(b.subarray(p, p + textLen), strict)) return p;
  }
}

/**
 * A boundary at or after `target` in an open spool, in (start, end), searched up to
 * SPLIT_SEARCH_MAX bytes past target; -1 when there is none.
 */
export async function findSplit(fd: number, start: number, target: number, end: number, strict: boolean): Promise<number> {
  const buf = Buffer.allocUnsafe(SEARCH_CHUNK + FROM_LINE_MAX + 8);
  let from = Math.max(start + 1, target - 3);
  const limit = Math.min(end, target + SPLIT_SEARCH_MAX);
  while (from < limit) {
    const want = Math.min(buf.length, end - from);
    const got = await new Promise<number>((resolve, reject) =>
      fs.read(fd, buf, 0, want, from, (err, n) => (err ? reject(err) : resolve(n))),
    );
    if (got < 4) return -1;
    const atEof = from + got >= end;
    const k = findBoundaryIn(buf.subarray(0, got), 0, strict, atEof);
    if (k >= 0) {
      const p = from + k;
      return p > start && p < end ? p : -1;
    }
    if (atEof) return -1;
    // Overlap so a boundary straddling the two reads is seen whole in the next one.
    from += Math.max(1, got - (FROM_LINE_MAX + 8));
  }
  return -1;
}

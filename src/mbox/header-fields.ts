/**
 * The scanner's header-block work: the message being built, and per header line whether it
 * is one of the kept fields (uidl.ts), matched on bytes; only kept fields become strings.
 */
import { H_DATE, H_DELIVERED_TO, H_MESSAGE_ID, H_RECEIVED, H_STATUS, H_XDELIVERY_ID, H_XUIDL, KEPT_NAMES, type KeptValues } from './uidl.js';

/** Header bytes kept per message for UIDL/Status purposes; longer header blocks are cut
 *  (deterministically) so one hostile message cannot make a scan use unbounded memory. */
export const HEADER_KEEP_MAX = 64 * 1024;

/** A message whose end is not known yet. */
export interface Building {
  fromOffset: number;
  fromLine: string;
  start: number; // -1 until the From_ line's LF is seen
  lfStart: number;
  crlfStart: number;
  bodyStart: number; // -1 while in the header block (or until its end is committed)
  bodyLf: number;
  inHeaders: boolean;
  headerBudget: number;
  /** Kept header values by id (KEPT_NAMES), and a bit per id already seen. */
  values: KeptValues;
  seen: number;
  statusOffset: number;
  statusLength: number;
  // The header field being read (may continue on folded lines); -1 when not a kept one.
  curId: number;
  curValue: string;
  curOffset: number;
  curLength: number;
}

/**
 * `m` made ready for a new message whose From_ line (text without CR) starts at `fromOffset`.
 * One record serves a whole scan, reset in place: a new object per message was garbage the
 * scanner made 50,000 times a 50k spool.
 */
export function resetBuilding(m: Building, fromOffset: number, fromLine: string): Building {
  m.fromOffset = fromOffset;
  m.fromLine = fromLine;
  m.start = -1;
  m.lfStart = 0;
  m.crlfStart = 0;
  m.bodyStart = -1;
  m.bodyLf = 0;
  m.inHeaders = true;
  m.headerBudget = HEADER_KEEP_MAX;
  m.values.fill(undefined);
  m.seen = 0;
  m.statusOffset = -1;
  m.statusLength = 0;
  m.curId = -1;
  m.curValue = '';
  m.curOffset = 0;
  m.curLength = 0;
  return m;
}

/** A record for resetBuilding. */
export function newBuilding(): Building {
  return resetBuilding({ values: new Array<string | undefined>(KEPT_NAMES.length) } as Building, 0, '');
}

/** One header line: its text (no terminator, maybe cut to the header budget) is buf[from, to). */
export function headerLine(m: Building, buf: Buffer, from: number, to: number, offset: number, lengthWithNl: number): void {
  m.headerBudget -= to - from;
  const c = to > from ? buf[from]! : 0;
  if (c === 0x20 || c === 0x09) {
    // Folded continuation of the previous field.
    if (m.curId >= 0) {
      m.curValue += '\n' + buf.toString('latin1', from, to);
      m.curLength += lengthWithNl;
    }
    return;
  }
  if (m.curId >= 0) endField(m);
  // Once a Received is kept, Date and Message-ID can no longer matter to the UIDL: skip them.
  const id = keptHeaderId(buf, from, to, (m.seen & RECEIVED_BIT) === 0 ? m.seen : m.seen | DATE_MSGID_BITS);
  if (id < 0) return;
  const nameLen = KEPT_NAMES[id]!.length;
  m.curId = id;
  m.curValue = buf.toString('latin1', from + nameLen + nameGap(buf, from + nameLen, to) + 1, to);
  m.curOffset = offset;
  m.curLength = lengthWithNl;
}

function endField(m: Building): void {
  if (m.curId < 0) return;
  m.values[m.curId] = m.curValue;
  m.seen |= 1 << m.curId;
  if (m.curId === H_STATUS) {
    m.statusOffset = m.curOffset;
    m.statusLength = m.curLength;
  }
  m.curId = -1;
}

export function endHeaders(m: Building): void {
  endField(m);
  m.inHeaders = false;
}

/** KEPT_NAMES as bytes, for matching names without making strings. */
const KEPT_BYTES: readonly Buffer[] = KEPT_NAMES.map((n) => Buffer.from(n, 'latin1'));
/** Longest kept header name: a colon further away than this (plus blanks) cannot start one. */
const NAME_SCAN_MAX = 20;
const RECEIVED_BIT = 1 << H_RECEIVED;
const DATE_MSGID_BITS = (1 << H_DATE) | (1 << H_MESSAGE_ID);

/** Count of SP/HTAB bytes from `at` up to a colon (RFC 5322 obsolete syntax allows them); -1 if no colon follows. */
function nameGap(buf: Buffer, at: number, to: number): number {
  let k = at;
  while (k < to && (buf[k] === 0x20 || buf[k] === 0x09)) k++;
  return k < to && buf[k] === 0x3a ? k - at : -1;
}

/**
 * If buf[from, to) starts with `Name:` for a kept header (any case) not yet in `seen` (a bit
 * per id), its id, else -1. Dispatches on the first letter: at most two names to compare.
 */
function keptHeaderId(buf: Buffer, from: number, to: number, seen: number): number {
  let a = -1;
  let b = -1;
  switch (buf[from]! | 0x20) {
    case 0x64: // d
      a = H_DATE;
      b = H_DELIVERED_TO;
      break;
    case 0x6d: // m
      a = H_MESSAGE_ID;
      break;
    case 0x72: // r
      a = H_RECEIVED;
      break;
    case 0x73: // s
      a = H_STATUS;
      break;
    case 0x78: // x
      a = H_XUIDL;
      b = H_XDELIVERY_ID;
      break;
    default:
      return -1;
  }
  if ((seen & (1 << a)) === 0 && nameMatches(buf, from, to, KEPT_BYTES[a]!)) return a;
  if (b >= 0 && (seen & (1 << b)) === 0 && nameMatches(buf, from, to, KEPT_BYTES[b]!)) return b;
  return -1;
}

/** Does buf[from, to) start with `name` (any case), optional blanks, then a colon? */
function nameMatches(buf: Buffer, from: number, to: number, name: Buffer): boolean {
  const n = name.length;
  if (to - from <= n) return false;
  for (let k = 1; k < n; k++) {
    const want = name[k]!;
    const got = buf[from + k]!;
    if (want === 0x2d ? got !== 0x2d : (got | 0x20) !== want) return false;
  }
  return nameGap(buf, from + n, Math.min(to, from + NAME_SCAN_MAX + 1)) >= 0;
}

/**
 * What a scan of an mbox spool learns about each message. Offsets are absolute byte offsets
 * into the spool file. The content served by POP3 is the byte range [start, end): the
 * message's header and body, without its From_ line and without the mbox separator (the one
 * empty line before the next From_ line or before end of file).
 */
export interface ScannedMessage {
  /** Offset of the From_ line. */
  readonly fromOffset: number;
  /** First header byte (just after the From_ line's LF). */
  readonly start: number;
  /** First body byte (just after the empty line that ends the headers); == end if none. */
  readonly bodyStart: number;
  /** End of the content, exclusive; the separator (if any) starts here. */
  readonly end: number;
  /** RFC 1939 octet size as sent: every line ending counted as CRLF, before dot-stuffing,
   *  without the terminating ".", plus 2 when the last line lacks a newline. */
  readonly size: number;
  /** Number of body lines (what TOP counts). */
  readonly bodyLines: number;
  /** UIDL before duplicate disambiguation (X-UIDL when valid, else a header hash). */
  readonly uidlBase: string;
  /** Value of the Status header ('' when absent), e.g. 'RO'. */
  readonly status: string;
  /** Offset and length of the Status header line (including its newline), or -1 when absent:
   *  what a flags-only update rewrites. */
  readonly statusOffset: number;
  readonly statusLength: number;
  /** msum (msum.ts) of the bytes [fromOffset, end): checked before RETR sends them and before
   *  an update keeps the message. */
  readonly sum: number;
}

/**
 * Every ScannedMessage is one of these (the scanner's, the scan worker's, the cache's, an
 * update's rebased ones), so all of them share one hidden class whatever made them. Made as
 * object literals in four places, the main thread's scanner built objects whose offsets V8 held
 * as small integers and the worker's messages floats; each scan's second kind deprecated the
 * first kind's map, and the next access to each of the first kind's 25,000 messages migrated it
 * (--trace-migration): 18–65 ms of a cold 50k login, in the first loop over its messages.
 */
export class Scanned implements ScannedMessage {
  constructor(
    readonly fromOffset: number,
    readonly start: number,
    readonly bodyStart: number,
    readonly end: number,
    readonly size: number,
    readonly bodyLines: number,
    readonly uidlBase: string,
    readonly status: string,
    readonly statusOffset: number,
    readonly statusLength: number,
    readonly sum: number,
  ) {}
}

/** `m` moved by `d` bytes (an update's rebased survivor). */
export function shifted(m: ScannedMessage, d: number): ScannedMessage {
  const statusOffset = m.statusOffset < 0 ? -1 : m.statusOffset + d;
  return new Scanned(m.fromOffset + d, m.start + d, m.bodyStart + d, m.end + d, m.size, m.bodyLines, m.uidlBase, m.status, statusOffset, m.statusLength, m.sum);
}

export interface ScanOptions {
  /** Require From_ lines to look like `From sender date` (real-world variants accepted). */
  readonly strictFrom: boolean;
}

export interface ScanResult {
  readonly messages: ScannedMessage[];
  /** End of the last scanned message = spool size at scan time (includes the trailing separator). */
  readonly scanEnd: number;
  /** Bytes of the spool that were read to produce this result (0 for an exact cache hit). */
  readonly bytesRead: number;
}

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

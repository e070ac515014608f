/**
 * Outcomes and replies: command handlers return an Outcome; this module is the ONE place that
 * turns outcomes and errors into wire replies, and maps PopspoolError codes to RFC 2449 /
 * RFC 3206 response codes.
 */
import type { Readable } from 'node:stream';
import { PopspoolError, type ErrorCode } from '../errors.js';

/** RFC 2449 §8 / RFC 3206 extended response codes. */
export type RespCode = 'IN-USE' | 'SYS/TEMP' | 'SYS/PERM' | 'AUTH' | 'LOGIN-DELAY';

/** What a multi-line body streams from: a message source plus TOP's body-line limit. */
export interface MessageBody {
  /** Opens the raw message (headers + body as stored): a stream, or one buffer when small;
   *  at once, without a promise, when the bytes are already in memory. */
  readonly open: () => Readable | Buffer | Promise<Readable | Buffer>;
  /** TOP n: body lines to send; undefined for RETR. */
  readonly bodyLines?: number;
  /** Called after the body went out: wire octets (without stuffing) and whether it was whole. */
  readonly onSent?: (octets: number, complete: boolean) => void;
}

export type Outcome =
  | { readonly kind: 'ok'; readonly text: string }
  | { readonly kind: 'err'; readonly code?: RespCode; readonly text: string }
  /** `+OK text`, then lines (byte-stuffed here), then ".". */
  | { readonly kind: 'multiline'; readonly text: string; readonly lines: readonly string[] }
  /** `+OK text`, then a message streamed through the wire encoder, then ".". */
  | { readonly kind: 'stream'; readonly text: string; readonly body: MessageBody }
  /** RFC 5034 continuation: `+ text`; the next client line goes to `next`, not the dispatcher. */
  | { readonly kind: 'continue'; readonly text: string; readonly next: (line: string) => Promise<Outcome> }
  /** Send `reply`, then end the session. */
  | { readonly kind: 'quit'; readonly reply: Outcome };

export const ok = (text: string): Outcome => ({ kind: 'ok', text });
export const err = (text: string, code?: RespCode): Outcome => (code ? { kind: 'err', code, text } : { kind: 'err', text });
export const multiline = (text: string, lines: readonly string[]): Outcome => ({ kind: 'multiline', text, lines });
export const quit = (reply: Outcome): Outcome => ({ kind: 'quit', reply });

const CODE_MAP: Readonly<Record<ErrorCode, RespCode>> = {
  IN_USE: 'IN-USE',
  SYS_TEMP: 'SYS/TEMP',
  SYS_PERM: 'SYS/PERM',
  AUTH: 'AUTH',
  LOGIN_DELAY: 'LOGIN-DELAY',
  CONFIG: 'SYS/PERM', // a configuration problem needs an operator, like any permanent error
};

/** RESP-CODE for an error code. */
export function respCodeFor(code: ErrorCode): RespCode {
  return CODE_MAP[code];
}

/**
 * An error thrown by a handler or a drop, as an outcome. Known PopspoolErrors keep their
 * message (they are written for the client); anything else is an internal error whose
 * details go to the log, never to the client.
 */
export function errorOutcome(e: unknown): Outcome {
  if (e instanceof PopspoolError) return err(oneLine(e.message), respCodeFor(e.code));
  return err('internal error', 'SYS/TEMP');
}

/** A reply text can never carry a line break (it would forge a second reply). */
export function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

/** The status line of an outcome (without CRLF). */
export function statusLine(o: Outcome): string {
  switch (o.kind) {
    case 'ok':
    case 'multiline':
    case 'stream':
      return o.text ? `+OK ${oneLine(o.text)}` : '+OK';
    case 'err':
      return `-ERR ${o.code ? `[${o.code}] ` : ''}${oneLine(o.text)}`;
    case 'continue':
      return `+ ${oneLine(o.text)}`;
    case 'quit':
      return statusLine(o.reply);
  }
}

/** A complete multi-line reply (status, stuffed lines, terminator) as one string. */
export function formatMultiline(text: string, lines: readonly string[]): string {
  let s = statusLine(multiline(text, lines)) + '\r\n';
  for (const l of lines) s += (l.startsWith('.') ? '.' : '') + l + '\r\n';
  return s + '.\r\n';
}

/** The terminating line of a multi-line reply. */
export const TERMINATOR = '.\r\n';

/**
 * TRANSACTION-state view of an open Drop: message numbering (1-based, RFC 1939 §5), the
 * deleted and seen marks, and the per-session counters for the summary log line.
 * It knows nothing of sockets; the Drop knows nothing of numbering.
 */
import type { Drop, UpdateOutcome } from '../spool/drop.js';
import { err, type Outcome } from './responses.js';

/** Longest message-number argument we parse: more digits than any maildrop can have messages. */
const MAX_NUMBER_DIGITS = 15;

/**
 * Strict message number: ASCII digits only (no sign, no spaces, no hex), no overflow.
 * Returns the number, 'invalid' (not a number) or 'range' (0, or too large to exist).
 */
export function parseMessageNumber(arg: string, count: number): number | 'invalid' | 'range' {
  if (!/^[0-9]+$/.test(arg)) return 'invalid';
  const digits = arg.replace(/^0+(?=.)/, '');
  if (digits.length > MAX_NUMBER_DIGITS) return 'range';
  const n = Number(digits);
  if (n < 1 || n > count) return 'range';
  return n;
}

/** Non-negative line count for TOP; absurdly large values are clamped (means "everything"). */
export function parseLineCount(arg: string): number | undefined {
  if (!/^[0-9]+$/.test(arg)) return undefined;
  const digits = arg.replace(/^0+(?=.)/, '');
  return digits.length > MAX_NUMBER_DIGITS ? Number.MAX_SAFE_INTEGER : Number(digits);
}

export interface SessionCounters {
  retr: number;
  retrBytes: number;
  top: number;
  topBytes: number;
  dele: number;
}

export class Maildrop {
  readonly deleted = new Set<number>();
  readonly seen = new Set<number>();
  readonly counters: SessionCounters = { retr: 0, retrBytes: 0, top: 0, topBytes: 0, dele: 0 };

  constructor(readonly drop: Drop) {}

  get total(): number {
    return this.drop.messages.length;
  }

  /** Messages not marked deleted. */
  get count(): number {
    return this.total - this.deleted.size;
  }

  /** Octets of the messages not marked deleted. */
  get octets(): number {
    let n = this.drop.messages.octets;
    for (const i of this.deleted) n -= this.drop.messages.size(i);
    return n;
  }

  /** Resolve a message-number argument to a 0-based index, or the error reply. */
  lookup(arg: string, allowDeleted = false): number | Outcome {
    const n = parseMessageNumber(arg, this.total);
    if (n === 'invalid') return err('invalid message number');
    if (n === 'range') return err('no such message');
    if (!allowDeleted && this.deleted.has(n - 1)) return err(`message ${n} already deleted`);
    return n - 1;
  }

  /** The UPDATE phase; `onCommitted` as in UpdateRequest (the session answers QUIT there). */
  update(onCommitted?: () => void): Promise<UpdateOutcome> {
    return this.drop.update({ deleted: new Set(this.deleted), seen: new Set(this.seen), ...(onCommitted ? { onCommitted } : {}) });
  }
}

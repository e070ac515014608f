/**
 * Failed-login throttling, per client address and per user name (Dovecot's auth penalty plus a
 * temporary block, in one in-memory table; no I/O, injectable clock, so it is tested as a table).
 *
 * Every failure from an address and for a name is counted; counts fade out `windowMs` after the
 * last failure. A failed login is answered after a growing delay — base, 2×base, 4×base …
 * up to `maxDelayMs` — taken from the larger of the two counts, so a guesser on one connection
 * or across many slows down. Past `blockIpAfter` failures the address, and past `blockUserAfter`
 * the name, is refused outright with [LOGIN-DELAY] until the window passes: no password is
 * checked then (a right one would be refused too, or the block would tell a guesser when it hit).
 * Names are counted whether or not they exist, so the throttle reveals nothing about which do.
 * A successful login clears the name's count (not the address's: one good account must not let
 * a guesser reset its address). A per-user block lets anyone lock a user out for one window:
 * that is why its threshold is higher and 0 disables it.
 */

export interface ThrottleOptions {
  /** Delay before the first failure's reply (Dovecot auth_failure_delay: 2 s). 0 disables delays. */
  readonly baseDelayMs: number;
  /** Ceiling of the doubling delay (Dovecot AUTH_PENALTY_MAX_SECS: 15). */
  readonly maxDelayMs: number;
  /** Failures from one address before it is refused for the window; 0 = never. */
  readonly blockIpAfter: number;
  /** Failures for one name (from anywhere) before it is refused for the window; 0 = never. */
  readonly blockUserAfter: number;
  /** A count is forgotten this long after its last failure (and a block lifts). */
  readonly windowMs: number;
  /** Clock (tests inject one). */
  readonly now?: () => number;
}

export const DEFAULT_THROTTLE: Readonly<ThrottleOptions> = Object.freeze({
  baseDelayMs: 2000,
  maxDelayMs: 15_000,
  blockIpAfter: 10,
  blockUserAfter: 20,
  windowMs: 15 * 60_000,
});

/**
 * Entries kept per table. A botnet spraying names or addresses must not grow memory without
 * bound; past this, the entry least recently failed is evicted (Map keeps insertion order and a
 * failure re-inserts its key), which only forgives the stalest offender.
 */
export const MAX_THROTTLE_ENTRIES = 100_000;

interface Penalty {
  count: number;
  last: number;
}

export type ThrottleVerdict =
  | { readonly blocked: false }
  | { readonly blocked: true; readonly by: 'ip' | 'user'; readonly retryAfterMs: number };

export class LoginThrottle {
  private readonly ips = new Map<string, Penalty>();
  private readonly users = new Map<string, Penalty>();
  private readonly now: () => number;

  constructor(readonly opts: ThrottleOptions = DEFAULT_THROTTLE) {
    this.now = opts.now ?? Date.now;
  }

  /** Before checking a password: may this address try this name at all? */
  check(ip: string, user: string): ThrottleVerdict {
    const t = this.now();
    const ipCount = this.count(this.ips, ip, t);
    if (this.opts.blockIpAfter > 0 && ipCount >= this.opts.blockIpAfter) {
      return { blocked: true, by: 'ip', retryAfterMs: this.retryAfter(this.ips, ip, t) };
    }
    const userCount = this.count(this.users, user, t);
    if (this.opts.blockUserAfter > 0 && userCount >= this.opts.blockUserAfter) {
      return { blocked: true, by: 'user', retryAfterMs: this.retryAfter(this.users, user, t) };
    }
    return { blocked: false };
  }

  /** Record a failure; returns how long to wait before answering it. */
  fail(ip: string, user: string): number {
    const t = this.now();
    const n = Math.max(this.bump(this.ips, ip, t), this.bump(this.users, user, t));
    return this.delayFor(n);
  }

  /** A successful login clears the name's count. */
  succeed(_ip: string, user: string): void {
    this.users.delete(user);
  }

  /** The delay after the n-th failure in a row (n ≥ 1): base × 2^(n-1), capped. */
  delayFor(n: number): number {
    if (this.opts.baseDelayMs <= 0 || n <= 0) return 0;
    return Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** Math.min(n - 1, 30));
  }

  /** Entries held (for tests and metrics). */
  get size(): { ips: number; users: number } {
    return { ips: this.ips.size, users: this.users.size };
  }

  private count(table: Map<string, Penalty>, key: string, t: number): number {
    const p = table.get(key);
    if (!p) return 0;
    if (t - p.last >= this.opts.windowMs) {
      table.delete(key);
      return 0;
    }
    return p.count;
  }

  private retryAfter(table: Map<string, Penalty>, key: string, t: number): number {
    const p = table.get(key);
    return p ? Math.max(0, p.last + this.opts.windowMs - t) : 0;
  }

  private bump(table: Map<string, Penalty>, key: string, t: number): number {
    const n = this.count(table, key, t) + 1;
    table.delete(key); // re-insert: the Map's order is then "least recently failed first"
    table.set(key, { count: n, last: t });
    while (table.size > MAX_THROTTLE_ENTRIES) table.delete(table.keys().next().value as string);
    return n;
  }
}

/**
 * RFC 2449 §6.7 EXPIRE and §6.8 LOGIN-DELAY: the retention and polling policy a server
 * advertises in CAPA, and the minimum time between one user's logins, which it enforces with
 * `-ERR [LOGIN-DELAY]` (clients such as fetchmail then wait instead of reporting a bad password).
 */

/** Users remembered for LOGIN-DELAY; past this, entries whose delay has passed are dropped. */
const MAX_TRACKED_USERS = 100_000;

export class LoginPolicy {
  private readonly last = new Map<string, number>();

  /**
   * @param loginDelaySec minimum seconds between two logins of one user; 0 = no LOGIN-DELAY
   * @param expire 'NEVER', a number of days, or '' to advertise no EXPIRE
   */
  constructor(readonly loginDelaySec: number, readonly expire: string) {}

  /** The CAPA lines this policy adds (in both states: RFC 2449 allows per-user values after login). */
  capabilities(): string[] {
    const caps: string[] = [];
    if (this.expire) caps.push(`EXPIRE ${this.expire}`);
    if (this.loginDelaySec > 0) caps.push(`LOGIN-DELAY ${this.loginDelaySec}`);
    return caps;
  }

  /** Seconds `user` must still wait before logging in again (0 = may log in now). */
  waitFor(user: string, now = Date.now()): number {
    const at = this.last.get(user);
    if (this.loginDelaySec <= 0 || at === undefined) return 0;
    return Math.max(0, Math.ceil((at + this.loginDelaySec * 1000 - now) / 1000));
  }

  /** Record a successful login. */
  loggedIn(user: string, now = Date.now()): void {
    if (this.loginDelaySec <= 0) return;
    this.last.delete(user);
    this.last.set(user, now);
    if (this.last.size > MAX_TRACKED_USERS) {
      for (const [u, at] of this.last) {
        if (at + this.loginDelaySec * 1000 > now) break; // insertion order: the rest are newer
        this.last.delete(u);
      }
    }
  }
}

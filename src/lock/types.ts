/**
 * The mailbox lock: what excludes MDAs, shell MUAs and other servers from the spool while we
 * read or rewrite it (DESIGN.md §3).
 */
export type LockMethod = 'fcntl' | 'dotlock' | 'flock';

export const ALL_LOCK_METHODS: readonly LockMethod[] = ['fcntl', 'dotlock', 'flock'] as const;

export interface MailboxLockOptions {
  /** The locks to take, in order. Default fcntl, dotlock, flock. */
  readonly methods: readonly LockMethod[];
  /** Give up (LockBusyError) after this long. */
  readonly timeoutMs: number;
  /** A foreign dotlock unchanged for this long (and with the fcntl lock free) is stale. */
  readonly dotlockStaleMs: number;
  /** While we hold a dotlock, touch it this often so others don't break it. */
  readonly dotlockTouchMs: number;
}

/** A held mailbox lock. release() is idempotent and never throws. */
export interface HeldLock {
  /** How long acquiring it waited, in ms. */
  readonly waitedMs: number;
  release(): Promise<void>;
}

/**
 * The lock module's public API: the composite mailbox lock, the one-session-per-maildrop lock,
 * and the single-method building blocks for callers (and tests) that need one alone.
 */
export { ALL_LOCK_METHODS, type HeldLock, type LockMethod, type MailboxLockOptions } from './types.js';
export { acquireMailboxLock, DEFAULT_LOCK_OPTIONS, validateLockMethods } from './mailbox-lock.js';
export { acquireSessionLock, sessionLockPath, type SessionLock } from './session-lock.js';
export { dotlockPath, parseDotlockContent, tryDotlock, type DotlockAttempt, type DotlockOptions, type HeldDotlock } from './dotlock.js';
export { fcntlUnlock, isFcntlWriteLocked, tryFcntlLock } from './fcntl.js';
export { flockUnlock, tryFlock } from './flock.js';

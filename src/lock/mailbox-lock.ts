/**
 * The composite mailbox lock: fcntl (OFD) + dotlock + flock, in the configured order, each
 * non-blocking, with Debian Policy's deadlock-free retry (DESIGN.md §3).
 *
 * MDAs take dotlock then fcntl (procmail, Postfix, Exim); Debian Policy and Dovecot take fcntl
 * then dotlock. Two programs taking the same locks in opposite orders only avoid a deadlock if
 * neither ever waits while holding one, so every attempt here is non-blocking: if any lock is
 * busy we release all taken so far, sleep a random 0.1–1 s and start again, until the timeout.
 * A blocking call is never made — it would hold one of libuv's four pool threads and stall every
 * other file operation of the process.
 *
 * In front of the OS locks sits an in-process table keyed by the spool's path and `dev:ino`:
 * two sessions in one process then exclude each other whatever the kernel's lock semantics
 * (classic fcntl locks never conflict within a process; a missing spool has no inode to lock).
 *
 * The caller owns `fd` (opened read-write: an fcntl write lock needs it) and must call
 * release() before closing it.
 */
import { fstat } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, LockBusyError, PopspoolError } from '../errors.js';
import { log } from '../obs/log.js';
import { tryDotlock } from './dotlock.js';
import { fcntlUnlock, tryFcntlLock } from './fcntl.js';
import { flockUnlock, tryFlock } from './flock.js';
import { ALL_LOCK_METHODS, type HeldLock, type LockMethod, type MailboxLockOptions } from './types.js';

export const DEFAULT_LOCK_OPTIONS: MailboxLockOptions = {
  // Debian Policy's fcntl-then-dotlock, plus flock for Qpopper and BSD-style tools.
  methods: ['fcntl', 'dotlock', 'flock'],
  // Qpopper and Dovecot give up after a similar time; a POP client retries on [IN-USE].
  timeoutMs: 10_000,
  // liblockfile's 5 minutes; Postfix uses 500 s, procmail 1024 s.
  dotlockStaleMs: 300_000,
  // liblockfile asks holders to touch "every minute or so"; Dovecot breaks after 2 min unchanged.
  dotlockTouchMs: 60_000,
};

/** Backoff between rounds (Debian Policy: "sleep a random time"); randomness breaks lockstep. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 1_000;

/**
 * Check a configured lock-method list: an array (or comma-separated string) of known methods,
 * no duplicates, not empty.
 */
export function validateLockMethods(list: unknown): LockMethod[] {
  const items = typeof list === 'string' ? list.split(',').map((s) => s.trim()).filter((s) => s !== '') : list;
  if (!Array.isArray(items)) throw new ConfigError(`locks: expected a list of lock methods (${ALL_LOCK_METHODS.join(', ')})`);
  if (items.length === 0) throw new ConfigError(`locks: the list is empty; give at least one of ${ALL_LOCK_METHODS.join(', ')}`);
  const seen = new Set<LockMethod>();
  for (const item of items) {
    if (typeof item !== 'string' || !(ALL_LOCK_METHODS as readonly string[]).includes(item)) {
      throw new ConfigError(`locks: unknown lock method ${JSON.stringify(item)}; known: ${ALL_LOCK_METHODS.join(', ')}`);
    }
    const method = item as LockMethod;
    if (seen.has(method)) throw new ConfigError(`locks: lock method "${method}" is listed twice`);
    seen.add(method);
  }
  return [...seen];
}

/**
 * Keys of spools locked (or being locked) by some session of this process, each with a promise
 * that settles when that holder lets go: a waiter in this process wakes then, not after a
 * random sleep (a login right after a QUIT waits for that update's last write, not for 0.1–1 s).
 */
const processTable = new Map<string, Promise<void>>();

function fstatAsync(fd: number): Promise<{ dev: number; ino: number }> {
  return new Promise((res, rej) => fstat(fd, (err, st) => (err ? rej(err) : res({ dev: st.dev, ino: st.ino }))));
}

/** Undo one lock taken in a round; run in reverse order of taking. */
type Undo = () => Promise<void>;

type Round = { readonly undo: Undo[]; readonly busy?: undefined } | { readonly undo?: undefined; readonly busy: string };

/**
 * Release locks taken by fcntl/flock on `fd` only if `fd` still refers to the spool: if the
 * caller closed it early the number may already name another file, whose locks are not ours.
 */
function guardedFdUndo(fd: number, id: { dev: number; ino: number }, undo: () => Promise<void> | void): Undo {
  return async () => {
    const now = await fstatAsync(fd).catch(() => null);
    if (!now || now.dev !== id.dev || now.ino !== id.ino) return; // closed: the kernel dropped it
    await undo();
  };
}

async function undoAll(undo: readonly Undo[], spoolPath: string): Promise<void> {
  for (const u of [...undo].reverse()) {
    try {
      await u();
    } catch (err) {
      log.warn('cannot release a mailbox lock', { component: 'lock', spool: spoolPath, error: String(err) });
    }
  }
}

function wrap(method: LockMethod, spoolPath: string, err: unknown): Error {
  if (err instanceof PopspoolError) return err;
  const code = (err as NodeJS.ErrnoException).code ?? String(err);
  return new PopspoolError('SYS_TEMP', `cannot take the ${method} lock on ${spoolPath}: ${code}`, { cause: err });
}

/** One non-blocking round over all methods. Everything taken is undone if any is busy or fails. */
async function round(
  spoolPath: string,
  fd: number | null,
  id: { dev: number; ino: number } | null,
  opts: MailboxLockOptions,
): Promise<Round> {
  const undo: Undo[] = [];
  let fcntlHeld = false;
  try {
    for (const method of opts.methods) {
      if (fd === null || id === null) {
        if (method !== 'dotlock') continue; // no file: nothing to lock but its name
      }
      try {
        if (method === 'fcntl') {
          if (!tryFcntlLock(fd!)) return busy(`the fcntl lock on ${spoolPath} is held by another program`);
          undo.push(guardedFdUndo(fd!, id!, () => fcntlUnlock(fd!)));
          fcntlHeld = true;
        } else if (method === 'flock') {
          if (!(await tryFlock(fd!))) return busy(`the flock lock on ${spoolPath} is held by another program`);
          undo.push(guardedFdUndo(fd!, id!, () => flockUnlock(fd!)));
        } else {
          const r = await tryDotlock(spoolPath, {
            staleMs: opts.dotlockStaleMs,
            touchMs: opts.dotlockTouchMs,
            fcntlHeldByUs: fcntlHeld,
          });
          if (r.busy !== undefined) return busy(r.busy);
          undo.push(() => r.held.release());
        }
      } catch (err) {
        throw wrap(method, spoolPath, err);
      }
    }
    return { undo };
  } catch (err) {
    await undoAll(undo, spoolPath);
    throw err;
  }

  async function busy(why: string): Promise<Round> {
    await undoAll(undo, spoolPath);
    return { busy: why };
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Take the mailbox lock on `spoolPath`. `fd` is the caller's descriptor of the spool, open
 * read-write, or null when the spool does not exist (then only the dotlock is taken). Retries
 * until `opts.timeoutMs`, then throws LockBusyError naming the lock that was busy. Other
 * failures (e.g. no write access to the spool directory) throw PopspoolError SYS_TEMP at once.
 */
export async function acquireMailboxLock(spoolPath: string, fd: number | null, opts: MailboxLockOptions): Promise<HeldLock> {
  const started = Date.now();
  const deadline = started + Math.max(0, opts.timeoutMs);
  const id = fd === null ? null : await fstatAsync(fd);
  const keys = [`path:${resolve(spoolPath)}`];
  if (id) keys.push(`ino:${id.dev}:${id.ino}`);
  let lastBusy = '';
  for (let rounds = 1; ; rounds++) {
    const holder = keys.map((k) => processTable.get(k)).find((p) => p !== undefined);
    if (holder) {
      lastBusy = `${spoolPath} is locked by another session of this process`;
    } else {
      let letGo!: () => void;
      const gone = new Promise<void>((r) => (letGo = r));
      const free = (): void => {
        for (const k of keys) processTable.delete(k);
        letGo();
      };
      for (const k of keys) processTable.set(k, gone);
      let r: Round;
      try {
        r = await round(spoolPath, fd, id, opts);
      } catch (err) {
        free();
        throw err;
      }
      if (r.undo) return held(r.undo, free, spoolPath, Date.now() - started);
      free();
      lastBusy = r.busy;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new LockBusyError(`mailbox is locked: ${lastBusy} (gave up after ${Date.now() - started} ms, ${rounds} attempts)`);
    }
    log.debug('mailbox lock busy, retrying', { component: 'lock', spool: spoolPath, why: lastBusy });
    if (holder) await settledOrAfter(holder, left);
    else await sleep(Math.min(left, RETRY_MIN_MS + Math.random() * (RETRY_MAX_MS - RETRY_MIN_MS)));
  }
}

/** Waits until `p` settles or `ms` pass, whichever comes first (the timer does not outlive it). */
async function settledOrAfter(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function held(undo: Undo[], free: () => void, spoolPath: string, waitedMs: number): HeldLock {
  let releasing: Promise<void> | null = null;
  return {
    waitedMs,
    release(): Promise<void> {
      releasing ??= undoAll(undo, spoolPath).finally(free);
      return releasing;
    },
  };
}

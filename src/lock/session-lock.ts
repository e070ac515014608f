/**
 * One POP3 session per maildrop (RFC 1939 §8: the server should lock the maildrop for the
 * session): a lock separate from the spool lock, held for the whole session, that a second
 * login hits at once — from this process, another worker or another node (DESIGN.md §3).
 *
 * Two layers: an in-process set (sessions in one process), then a non-blocking OFD fcntl lock
 * on a private file `<dir>/<user>.session`, kept open while the session lives. Never the spool
 * itself: the spool's locks are for the short critical sections shared with MDAs. OFD locks
 * belong to the descriptor, so the kernel drops the lock when the process dies; over NFS they
 * are ordinary fcntl locks and exclude other nodes too. The file holds `pid:host` for the
 * operator's benefit; it is never removed (removing a lock file races with a new locker).
 */
import { constants as fsc } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { LockBusyError, PopspoolError } from '../errors.js';
import { log } from '../obs/log.js';
import { fcntlUnlock, tryFcntlLock } from './fcntl.js';

export interface SessionLock {
  /** Release the session lock. Idempotent, never throws. */
  release(): Promise<void>;
}

/** Session files of this process's live sessions. */
const liveSessions = new Set<string>();

/** The session file for `user`: the name encoded so that no user name can leave `dir`. */
export function sessionLockPath(dir: string, user: string): string {
  if (user === '') throw new PopspoolError('SYS_PERM', 'session lock: empty user name');
  return join(resolve(dir), `${encodeURIComponent(user)}.session`);
}

/**
 * Take the session lock for `user`, creating `dir` (0700) if missing. Throws LockBusyError at
 * once if another session — in this process or any other — holds it.
 */
export async function acquireSessionLock(dir: string, user: string): Promise<SessionLock> {
  const path = sessionLockPath(dir, user);
  if (liveSessions.has(path)) throw busyError(user);
  liveSessions.add(path); // synchronously, before any await: the in-process check is atomic
  let fh: FileHandle | null = null;
  try {
    const openFile = (): Promise<FileHandle> => open(path, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
    // The directory is made when the first open finds it missing, not checked at every login.
    fh = await openFile().catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      await mkdir(resolve(dir), { recursive: true, mode: 0o700 });
      return openFile();
    });
    if (!tryFcntlLock(fh.fd)) throw busyError(user);
    const locked = fh;
    await locked.truncate(0);
    await locked.write(`${process.pid}:${hostname()}\n`, 0);
    return makeLock(path, locked);
  } catch (err) {
    liveSessions.delete(path);
    await fh?.close().catch(() => undefined);
    if (err instanceof PopspoolError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new PopspoolError('SYS_TEMP', `cannot take the session lock ${path}: ${code}`, { cause: err });
  }
}

function busyError(user: string): LockBusyError {
  return new LockBusyError(`maildrop of ${user} already in use by another session`);
}

function makeLock(path: string, fh: FileHandle): SessionLock {
  let released: Promise<void> | null = null;
  const doRelease = async (): Promise<void> => {
    try {
      fcntlUnlock(fh.fd);
      await fh.close(); // the last close would drop the OFD lock anyway
    } catch (err) {
      log.warn('cannot release the session lock', { component: 'lock', file: path, error: String(err) });
    } finally {
      liveSessions.delete(path);
    }
  };
  return {
    release(): Promise<void> {
      released ??= doRelease();
      return released;
    },
  };
}

/**
 * The dotlock `SPOOL.lock`, compatible with liblockfile, procmail, Postfix, Exim and Dovecot:
 * created NFS-safely, holding `pid:hostname`, touched while held, broken only when stale.
 *
 * Creation (liblockfile's and Dovecot's NFS-safe method): write a uniquely named temp file in
 * the spool's directory, link() it to SPOOL.lock, and trust the link only if the temp file's
 * link count is then 2 — on NFS a link() whose reply was lost can report failure although it
 * succeeded, or (retransmitted) EEXIST although it was ours. Then unlink the temp file.
 *
 * Content `pid:hostname\n`. liblockfile (`dotlockfile -p`, maillock) reads the pid with atoi()
 * and stops at the colon; procmail and Postfix only look at the age. Verified against
 * dotlockfile in test/lock-interop.test.ts.
 *
 * Staleness of a foreign dotlock (DESIGN.md §3): stale if its pid is dead on this host
 * (kill(pid, 0) → ESRCH; EPERM means alive), or if it is unchanged for `staleMs` AND nobody
 * holds an fcntl write lock on the spool (Dovecot's check: a live MDA holds both). Other
 * programs break locks by age (liblockfile 5 min, Postfix 500 s, procmail 1024 s, Dovecot
 * 2 min), so a lock we hold is touched every `touchMs`.
 *
 * A lock carrying our own pid that this process is not holding or creating is an orphan from
 * an earlier process that had the same pid (container restarts reuse pids): stale.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { link, lstat, open, stat, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PopspoolError } from '../errors.js';
import { log } from '../obs/log.js';
import { isFcntlWriteLocked } from './fcntl.js';

export interface DotlockOptions {
  /** A foreign dotlock unchanged this long (and the spool's fcntl lock free) is stale. */
  readonly staleMs: number;
  /** Touch a held dotlock this often; 0 = never. */
  readonly touchMs: number;
  /**
   * The caller already holds an fcntl write lock on the spool: the "fcntl free" half of the
   * age rule is then known to hold (nobody else can have it), and probing it through a second
   * descriptor would only find our own lock.
   */
  readonly fcntlHeldByUs?: boolean;
}

export interface HeldDotlock {
  /** The lock file's path. */
  readonly path: string;
  /** Unlink the lock if it is still ours; stop touching it. Idempotent, never throws. */
  release(): Promise<void>;
}

export type DotlockAttempt =
  | { readonly held: HeldDotlock; readonly busy?: undefined }
  | { readonly held?: undefined; readonly busy: string };

/** At most this many bytes of a lock file are read: it holds a pid and a host name. */
const MAX_LOCK_CONTENT = 256;
/** Rounds of create → found stale → removed → create before reporting busy (a racing breaker). */
const MAX_CREATE_ROUNDS = 3;
/** Linux pid_max can be at most 2^22; anything larger in a lock file is not a pid. */
const MAX_PID = 4_194_304;

const HOST = hostname();
/** The host name as it may appear in a file name. */
const SAFE_HOST = HOST.replace(/[^A-Za-z0-9.-]/g, '_').slice(0, 64);

/**
 * Lock paths this process is creating or holding. Makes two attempts in one process exclude
 * each other without touching the file system, and tells a live lock of ours from an orphan
 * left by an earlier process with our pid.
 */
const ownLocks = new Set<string>();

export function dotlockPath(spoolPath: string): string {
  return resolve(spoolPath) + '.lock';
}

/** What a lock file says about its holder: `pid`, `pid:host`, `pid\n`, or nothing usable. */
export function parseDotlockContent(text: string): { pid: number | null; host: string | null } {
  const m = /^\s*(\d{1,10})(?::([^\s:]*))?/.exec(text);
  if (!m) return { pid: null, host: null };
  const pid = Number(m[1]);
  const host = m[2] !== undefined && m[2] !== '' ? m[2] : null;
  return { pid: pid > 0 && pid <= MAX_PID ? pid : null, host };
}

interface LockInfo {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly content: string;
  /** Anything else (a directory, a symlink) is never judged stale nor removed. */
  readonly isFile: boolean;
}

/** lstat + bounded read that never follows a symlink nor blocks on a FIFO. null if absent. */
async function inspect(lockPath: string): Promise<LockInfo | null> {
  let fh;
  try {
    fh = await open(lockPath, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    // A symlink (ELOOP) or something unreadable: judge it by lstat alone, never remove by pid.
    const st = await lstat(lockPath).catch(() => null);
    if (!st) return null;
    return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, content: '', isFile: false };
  }
  try {
    const st = await fh.stat();
    const buf = Buffer.alloc(MAX_LOCK_CONTENT);
    const { bytesRead } = st.isFile() ? await fh.read(buf, 0, MAX_LOCK_CONTENT, 0) : { bytesRead: 0 };
    return {
      dev: st.dev,
      ino: st.ino,
      size: st.size,
      mtimeMs: st.mtimeMs,
      content: buf.subarray(0, bytesRead).toString('latin1'),
      isFile: st.isFile(),
    };
  } finally {
    await fh.close();
  }
}

/** Is the process `pid` alive on this host? EPERM = alive but not ours to signal. */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Why a foreign lock is stale, or null if it must be respected. */
async function staleReason(info: LockInfo, spoolPath: string, opts: DotlockOptions): Promise<string | null> {
  const { pid, host } = parseDotlockContent(info.content);
  if (pid !== null && (host === null || host === HOST)) {
    // Our pid but not in ownLocks (checked by the caller): left by an earlier process.
    if (pid === process.pid) return `orphan with our own pid ${pid}`;
    if (!pidAlive(pid)) return `pid ${pid} is not running`;
  }
  const ageMs = Date.now() - info.mtimeMs;
  if (ageMs < opts.staleMs) return null;
  const age = `unchanged for ${Math.round(ageMs / 1000)} s`;
  if (opts.fcntlHeldByUs) return `${age} and we hold the spool's fcntl lock`;
  if (await isFcntlWriteLocked(spoolPath)) return null;
  return `${age} and the spool's fcntl lock is free`;
}

/** Unlink the lock only if it is still the file we judged (same inode, size, mtime). */
async function removeIfUnchanged(lockPath: string, judged: LockInfo): Promise<void> {
  const st = await lstat(lockPath).catch(() => null);
  if (!st) return;
  if (st.dev !== judged.dev || st.ino !== judged.ino || st.size !== judged.size || st.mtimeMs !== judged.mtimeMs) return;
  await unlink(lockPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

function describe(lockPath: string, info: LockInfo): string {
  const { pid, host } = parseDotlockContent(info.content);
  const who = pid !== null ? ` by pid ${pid}${host !== null ? ` on ${host}` : ''}` : '';
  return `dotlock ${lockPath} is held${who}`;
}

function dirError(err: unknown, dir: string): Error {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  return new PopspoolError(
    'SYS_TEMP',
    `cannot create a dotlock in ${dir}: ${code} (popspool needs write access to the spool directory; on Debian run it with group mail)`,
    { cause: err },
  );
}

/**
 * Link a fresh temp file to `lockPath`. Returns the lock's dev/ino when it is ours, null when
 * another file is there.
 */
async function createOnce(lockPath: string, content: string): Promise<{ dev: number; ino: number } | null> {
  const dir = dirname(lockPath);
  const tmp = join(dir, `.lk${SAFE_HOST}.${process.pid}.${randomBytes(6).toString('hex')}`);
  try {
    const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644);
    try {
      await fh.writeFile(content);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw dirError(err, dir);
  }
  try {
    let linkErr: NodeJS.ErrnoException | null = null;
    try {
      await link(tmp, lockPath);
    } catch (err) {
      linkErr = err as NodeJS.ErrnoException;
    }
    // The link count decides, not link()'s answer (NFS may lose the reply).
    const st = await stat(tmp);
    if (st.nlink === 2) return { dev: st.dev, ino: st.ino };
    if (linkErr === null) throw new Error(`link(${tmp}, ${lockPath}) succeeded but the link count is ${st.nlink}`);
    if (linkErr.code === 'EEXIST') return null;
    throw dirError(linkErr, dir);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Try once (non-blocking) to take the dotlock of `spoolPath`. Breaks a stale foreign lock and
 * retries at once; a live one is reported as `busy` with a description of its holder.
 */
export async function tryDotlock(spoolPath: string, opts: DotlockOptions): Promise<DotlockAttempt> {
  const lockPath = dotlockPath(spoolPath);
  if (ownLocks.has(lockPath)) return { busy: `dotlock ${lockPath} is held by another session of this process` };
  ownLocks.add(lockPath);
  try {
    const content = `${process.pid}:${HOST}\n`;
    for (let round = 0; round < MAX_CREATE_ROUNDS; round++) {
      const id = await createOnce(lockPath, content);
      if (id) return { held: holdDotlock(lockPath, id, content, opts.touchMs) };
      const info = await inspect(lockPath);
      if (!info) continue; // released meanwhile: try again
      const reason = info.isFile ? await staleReason(info, spoolPath, opts) : null;
      if (reason === null) {
        ownLocks.delete(lockPath);
        return { busy: describe(lockPath, info) };
      }
      log.warn('breaking stale dotlock', { component: 'lock', lock: lockPath, reason, content: info.content.trim() });
      await removeIfUnchanged(lockPath, info);
    }
    ownLocks.delete(lockPath);
    return { busy: `dotlock ${lockPath} keeps reappearing` };
  } catch (err) {
    ownLocks.delete(lockPath);
    throw err;
  }
}

/** The held lock: touch timer plus a release that removes only our own file. */
function holdDotlock(lockPath: string, id: { dev: number; ino: number }, content: string, touchMs: number): HeldDotlock {
  let released = false;
  let lost = false;
  const stored = Buffer.from(content).toString('latin1'); // as inspect() decodes it
  const isOurs = async (): Promise<boolean> => {
    const info = await inspect(lockPath).catch(() => null);
    return info !== null && info.dev === id.dev && info.ino === id.ino && info.content === stored;
  };
  const touch = async (): Promise<void> => {
    if (released || lost) return;
    if (!(await isOurs())) {
      if (released) return;
      lost = true;
      log.warn('our dotlock was removed by someone else', { component: 'lock', lock: lockPath });
      return;
    }
    const now = new Date();
    await utimes(lockPath, now, now).catch((err: NodeJS.ErrnoException) =>
      log.debug('cannot touch dotlock', { component: 'lock', lock: lockPath, error: err.code }),
    );
  };
  const timer = touchMs > 0 ? setInterval(() => void touch(), touchMs) : null;
  timer?.unref();
  return {
    path: lockPath,
    async release(): Promise<void> {
      if (released) return;
      released = true;
      if (timer) clearInterval(timer);
      try {
        if (await isOurs()) await unlink(lockPath);
      } catch (err) {
        log.warn('cannot remove our dotlock', { component: 'lock', lock: lockPath, error: String(err) });
      } finally {
        ownLocks.delete(lockPath);
      }
    },
  };
}

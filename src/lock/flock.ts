/**
 * The BSD flock mailbox lock (what Qpopper and BSD-style tools use), through fs-ext's async
 * flock with LOCK_NB. Never the blocking form: it would hold one of libuv's four pool threads.
 */
import fsExt from 'fs-ext';

/** Errno codes meaning "held by someone else" for LOCK_NB. */
const BUSY_CODES: ReadonlySet<string> = new Set(['EAGAIN', 'EWOULDBLOCK']);

function flockAsync(fd: number, flags: 'exnb' | 'shnb' | 'un'): Promise<void> {
  return new Promise((resolve, reject) => {
    fsExt.flock(fd, flags, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Try LOCK_EX|LOCK_NB (or LOCK_SH|LOCK_NB) on `fd`. Returns false when busy. flock locks
 * belong to the open file description, so another descriptor in this process conflicts too.
 */
export async function tryFlock(fd: number, shared = false): Promise<boolean> {
  try {
    await flockAsync(fd, shared ? 'shnb' : 'exnb');
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== undefined && BUSY_CODES.has(code)) return false;
    throw err;
  }
}

/** LOCK_UN on `fd`. */
export async function flockUnlock(fd: number): Promise<void> {
  await flockAsync(fd, 'un');
}

/**
 * The fcntl mailbox lock, taken as an open-file-description lock (F_OFD_SETLK on Linux) through
 * fs-native-extensions: it conflicts with the MDAs' classic fcntl locks but belongs to our
 * descriptor, so closing another descriptor of the spool cannot drop it (DESIGN.md §3).
 */
import { constants as fsc } from 'node:fs';
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';

/** The part of fs-native-extensions we use (the package ships no type declarations). */
interface NativeLocks {
  tryLock(fd: number, offset: number, length: number, opts?: { shared?: boolean }): boolean;
  unlock(fd: number, offset?: number, length?: number): void;
}

// fs-native-extensions is CommonJS without types; load it once, typed by the interface above.
// Only the non-blocking calls are exposed: waitForLock would occupy a libuv pool thread.
const native = createRequire(import.meta.url)('fs-native-extensions') as NativeLocks;

/** Errno codes meaning "someone else holds a conflicting lock" for a non-blocking attempt. */
const BUSY_CODES: ReadonlySet<string> = new Set(['EAGAIN', 'EACCES', 'EWOULDBLOCK']);

/**
 * Try to lock the whole file open on `fd` (offset 0, length 0 = to EOF and beyond).
 * Exclusive by default; `fd` must then be open for writing (else EBADF). Returns false when a
 * conflicting lock is held — by another process or by another open file description in this
 * one. Never blocks.
 */
export function tryFcntlLock(fd: number, shared = false): boolean {
  try {
    return native.tryLock(fd, 0, 0, { shared });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== undefined && BUSY_CODES.has(code)) return false;
    if (code === 'EBADF' && !shared) {
      throw Object.assign(
        new Error(`fcntl write lock needs a descriptor open for writing (fd ${fd}): EBADF`, { cause: err }),
        { code },
      );
    }
    throw err;
  }
}

/** Drop the lock taken by tryFcntlLock on this descriptor. */
export function fcntlUnlock(fd: number): void {
  native.unlock(fd, 0, 0);
}

/**
 * Is any write lock held on the file at `path` right now? Opens a separate read-only
 * descriptor, tries a shared lock, undoes it and closes. Safe only because our own locks are
 * OFD locks: with classic fcntl locks, this close would drop the process's locks on the file.
 * A missing file has no lock.
 */
export async function isFcntlWriteLocked(path: string): Promise<boolean> {
  let fh;
  try {
    // O_NONBLOCK: a FIFO planted at the spool path must not hang us.
    fh = await open(path, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  try {
    if (!tryFcntlLock(fh.fd, true)) return true;
    fcntlUnlock(fh.fd);
    return false;
  } finally {
    await fh.close();
  }
}

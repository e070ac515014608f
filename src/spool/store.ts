/**
 * The spool store: the DropOpener the POP3 layer logs users into. It takes the
 * one-session-per-maildrop lock, opens and locks the spool, completes any interrupted update
 * first (journal, copy-mode temp drop), and hands back a server-mode or copy-mode Drop.
 * recoverAll() runs every pending recovery when the server starts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { validateUsername } from '../auth/username.js';
import { PopspoolError } from '../errors.js';
import { acquireMailboxLock, acquireSessionLock } from '../lock/index.js';
import type { HeldLock, MailboxLockOptions } from '../lock/types.js';
import type { ScanOptions } from '../mbox/types.js';
import { log } from '../obs/log.js';
import { gate } from './background.js';
import { ScanCache } from './cache.js';
import { CopyDrop, recoverTempDrop, removeOrphanMetas, tempDropPath } from './copy-drop.js';
import type { Drop, DropOpener } from './drop.js';
import { EMPTY } from './message-list.js';
import { fclose, fopen } from './io.js';
import { journalPathFor, recoverJournal, removeOrphanImages } from './journal.js';
import { ServerDrop, scanLocked } from './server-drop.js';
import type { UpdateTarget } from './update.js';

export interface SpoolSettings {
  /** Path template with %u, e.g. /var/mail/%u. */
  readonly spool: string;
  readonly mode: 'server' | 'copy';
  readonly holdLock: boolean;
  readonly statusUpdate: boolean;
  readonly scanOptions: ScanOptions;
  readonly lock: MailboxLockOptions;
  /** Private state: cache/, sessions/, journal/, drops/. */
  readonly stateDir: string;
}


/** What the drops share: settings, directories, the cache, and how to lock a spool. */
export class SpoolContext {
  readonly cache: ScanCache;
  readonly dirs: { readonly sessions: string; readonly journal: string; readonly drops: string; readonly cache: string };

  constructor(readonly settings: SpoolSettings) {
    const d = settings.stateDir;
    this.dirs = { sessions: path.join(d, 'sessions'), journal: path.join(d, 'journal'), drops: path.join(d, 'drops'), cache: path.join(d, 'cache') };
    // The tag names what produced a cached scan: another scanner version or From_ rule is a miss.
    this.cache = new ScanCache(this.dirs.cache, { tag: `scanner=2;strictFrom=${settings.scanOptions.strictFrom ? 1 : 0}` });
  }

  get holdLock(): boolean { return this.settings.holdLock; }
  get statusUpdate(): boolean { return this.settings.statusUpdate; }
  get scanOptions(): ScanOptions { return this.settings.scanOptions; }

  spoolPath(user: string): string {
    if (!validateUsername(user)) throw new PopspoolError('AUTH', 'invalid user name');
    return this.settings.spool.replaceAll('%u', user);
  }

  async lockSpool(fd: number | null, spoolPath: string): Promise<HeldLock> {
    try {
      return await acquireMailboxLock(spoolPath, fd, this.settings.lock);
    } catch (err) {
      if (err instanceof PopspoolError) throw err;
      throw new PopspoolError('SYS_TEMP', `cannot lock ${spoolPath}: ${(err as Error).message}`, { cause: err });
    }
  }

  updateTarget(user: string, fd: number): UpdateTarget {
    return { user, spoolFd: fd, journalDir: this.dirs.journal, scanOptions: this.settings.scanOptions };
  }

  /** Opens the spool read-write; null when it does not exist (an empty maildrop). */
  async openSpool(spoolPath: string, create = false): Promise<number | null> {
    const flags = fs.constants.O_RDWR | (create ? fs.constants.O_CREAT : 0);
    try {
      return await fopen(spoolPath, flags, 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      throw new PopspoolError('SYS_TEMP', `cannot open ${spoolPath}: ${code ?? (err as Error).message}`);
    }
  }

  /** Completes an interrupted update and merges back a leftover copy-mode drop (lock held). */
  async recoverLocked(user: string, fd: number | null, spoolPath: string): Promise<void> {
    const result = await recoverJournal(journalPathFor(this.dirs.journal, user), fd);
    if (result !== 'none') log.warn('interrupted update completed', { user, spool: spoolPath, result });
    if (fd !== null && (await recoverTempDrop(this, user, fd))) {
      log.warn('copy-mode temp drop from an earlier session merged back', { user, spool: spoolPath });
    }
  }
}

/** An empty maildrop: the spool file does not exist. */
class EmptyDrop implements Drop {
  readonly messages = EMPTY;
  readonly info: Drop['info'];
  private done = false;
  constructor(mode: 'server' | 'copy', private readonly releaseSession: () => Promise<void>) {
    this.info = { mode, lockWaitMs: 0, cache: 'none' };
  }
  async read(): Promise<never> { throw new PopspoolError('SYS_TEMP', 'no such message'); }
  async update(): Promise<{ case: 'untouched'; deleted: 0; kept: 0; bytesRewritten: 0; lockWaitMs: 0; durationMs: 0 }> {
    await this.close();
    return { case: 'untouched', deleted: 0, kept: 0, bytesRewritten: 0, lockWaitMs: 0, durationMs: 0 };
  }
  async close(): Promise<void> {
    if (!this.done) { this.done = true; await this.releaseSession(); }
  }
}

/**
 * A login that scanned has its cache file written this long after its reply. Serializing and
 * validating the file takes ~20 ms of this thread for 50,000 messages. Done before the reply
 * (as it was), it delayed the login; right after it, the check-mail client's STAT and QUIT; at
 * the session's end, the client's next session, which often comes at once (a second look).
 * Meanwhile a lookup for the user is answered from the scan in memory (ScanCache.lookup), and
 * one that finds the spool changed again drops the write instead of waiting for it.
 */
export const CACHE_WRITE_DELAY_MS = 200;

export class SpoolStore implements DropOpener {
  readonly ctx: SpoolContext;

  constructor(settings: SpoolSettings) {
    this.ctx = new SpoolContext(settings);
  }

  async open(user: string): Promise<Drop> {
    const ctx = this.ctx;
    const spoolPath = ctx.spoolPath(user);
    const session = await acquireSessionLock(ctx.dirs.sessions, user);
    const releaseSession = () => session.release();
    let fd: number | null = null;
    let lock: HeldLock | null = null;
    // A scan's cache file is written CACHE_WRITE_DELAY_MS after the login reply (see there).
    const cacheWrite = gate();
    try {
      // A missing spool is created when an interrupted update or copy-mode drop must go back
      // into it; asked only then (two thread-pool round trips saved on every other login).
      fd = await ctx.openSpool(spoolPath);
      if (fd === null && (await this.hasPending(user))) fd = await ctx.openSpool(spoolPath, true);
      if (fd === null) return new EmptyDrop(ctx.settings.mode, releaseSession);
      lock = await ctx.lockSpool(fd, spoolPath);
      await ctx.recoverLocked(user, fd, spoolPath);
      if (ctx.settings.mode === 'copy') {
        const drop = await CopyDrop.open(ctx, user, fd, spoolPath, lock, releaseSession);
        return drop;
      }
      const { state, cache } = await scanLocked(ctx, user, fd, cacheWrite.opened);
      const drop = new ServerDrop(ctx, user, spoolPath, fd, state, lock, releaseSession, cache);
      if (!ctx.holdLock) await lock.release();
      if (cache !== 'hit') setTimeout(cacheWrite.open, CACHE_WRITE_DELAY_MS);
      return drop;
    } catch (err) {
      cacheWrite.open();
      await lock?.release();
      if (fd !== null) await fclose(fd).catch(() => {});
      await releaseSession();
      if (err instanceof PopspoolError && err.code === 'SYS_PERM') {
        log.error('spool refused', { user, spool: spoolPath, error: err.message });
      }
      throw err instanceof PopspoolError ? err : new PopspoolError('SYS_TEMP', `cannot open maildrop: ${(err as Error).message}`, { cause: err });
    }
  }

  private async hasPending(user: string): Promise<boolean> {
    const exists = (p: string) => fs.promises.access(p).then(() => true, () => false);
    return (await exists(journalPathFor(this.ctx.dirs.journal, user))) || (await exists(tempDropPath(this.ctx, user)));
  }

  /**
   * Server start: complete every interrupted update and merge back every leftover copy-mode
   * drop, so the window in which an MDA can append to a half-rewritten spool stays short.
   */
  async recoverAll(): Promise<number> {
    const ctx = this.ctx;
    const users = new Set<string>();
    for (const [dir, suffix] of [[ctx.dirs.journal, '.journal'], [ctx.dirs.drops, '.pop']] as const) {
      const names = await fs.promises.readdir(dir).catch(() => [] as string[]);
      for (const n of names) if (n.endsWith(suffix)) users.add(n.slice(0, -suffix.length));
    }
    let done = 0;
    for (const user of users) {
      try {
        const drop = await this.open(user); // open() recovers first
        await drop.close();
        done++;
      } catch (err) {
        log.error('recovery at start-up failed; will retry at login', { user, error: (err as Error).message });
      }
    }
    await removeOrphanImages(ctx.dirs.journal);
    await removeOrphanMetas(ctx.dirs.drops);
    return done;
  }
}

/**
 * Server mode (Qpopper's): lock the spool, scan it (or take the scan from the cache), then
 * either release the lock or hold it for the whole session, and serve RETR/TOP straight from
 * the spool at the recorded offsets. QUIT runs the update (update.ts) under the lock.
 */
import { Readable } from 'node:stream';
import { PopspoolError } from '../errors.js';
import { msum, scanFd } from '../mbox/index.js';
import type { ScannedMessage, ScanResult } from '../mbox/types.js';
import { log } from '../obs/log.js';
import type { HeldLock } from '../lock/types.js';
import { stampOf } from './cache.js';
import { type Drop, type MessageList, type UpdateOutcome, type UpdateRequest } from './drop.js';
import { scanList } from './message-list.js';
import { fclose, fstat, preadExact, rangeStream, SmallReads } from './io.js';
import { fingerprintOf, needsStatusEdit, runServerUpdate, sameStamp, stampFromStats, type ScanState } from './update.js';
import type { SpoolContext } from './store.js';
import { journalPathFor, recoverJournal } from './journal.js';

const FROM = Buffer.from('From ');

/** Read-ahead per RETR stream: large enough for throughput, bounded per session. */
const READ_HIGH_WATER = 256 * 1024;

/** Scans the locked spool, consulting and refreshing the cache (written once `cacheWriteAfter`
 *  resolves, if given: see ScanCache.storeInBackground). */
export async function scanLocked(ctx: SpoolContext, user: string, fd: number, cacheWriteAfter?: Promise<void>): Promise<{ state: ScanState; cache: 'hit' | 'tail' | 'miss' }> {
  const st = await fstat(fd);
  const stamp = stampOf(st);
  const size = Number(st.size);
  const found = await ctx.cache.lookup(user, fd, stamp);
  let scan: ScanResult;
  if (found.kind === 'hit') {
    scan = found.scan;
  } else if (found.kind === 'tail') {
    // With strict-from the line at the old end may not pass as a From_ line: then scan it all.
    const tail = await scanFd(fd, found.prefix.scanEnd, size, ctx.scanOptions).catch(() => null);
    scan = tail
      ? { messages: found.prefix.messages.concat(tail.messages), scanEnd: size, bytesRead: tail.bytesRead }
      : await scanFd(fd, 0, size, ctx.scanOptions);
  } else {
    scan = await scanFd(fd, 0, size, ctx.scanOptions); // the lookup logged why (ScanCache.lookup)
  }
  if (found.kind !== 'hit') {
    // The session need not wait for our own file: only what needs the lock happens before the reply.
    await ctx.cache.storeInBackground(user, fd, stamp, scan, undefined, cacheWriteAfter).catch((err: Error) => log.warn('cache not written', { user, error: err.message }));
  }
  return { state: { scan, stamp, fingerprint: await fingerprintOf(fd, size) }, cache: found.kind };
}

export class ServerDrop implements Drop {
  readonly messages: MessageList;
  readonly info: Drop['info'];
  private lock: HeldLock | null;
  private closed = false;
  /** Set when the spool changed under us in a way other than an append: no more reads, no update. */
  private poisoned: string | null = null;
  private readonly reads: SmallReads;

  constructor(
    private readonly ctx: SpoolContext,
    private readonly user: string,
    private readonly spoolPath: string,
    private readonly fd: number,
    private readonly state: ScanState,
    lock: HeldLock,
    private readonly releaseSession: () => Promise<void>,
    cache: 'hit' | 'tail' | 'miss',
  ) {
    this.messages = scanList(state.scan.messages);
    this.reads = new SmallReads(fd, state.scan.messages, (m) => m.fromOffset, (m, buf) => this.checked(m, buf));
    this.info = { mode: 'server', lockWaitMs: lock.waitedMs, cache, bytesScanned: state.scan.bytesRead };
    this.lock = ctx.holdLock ? lock : null;
  }

  /** Drop.readHeld. */
  readHeld(index: number): Buffer | null {
    this.usable();
    return this.reads.held(index);
  }

  /** Drop.readSmall: messages of up to ONE_READ_MAX, checked like read() below. */
  async readSmall(index: number): Promise<Buffer | null> {
    this.usable();
    // One positional read from the From_ line to the message's end (or the read-ahead window
    // that already holds it) does the whole check and fetches the data: one thread-pool hop at
    // most, instead of fstat + pread + stream reads. The fstat of the long path only adds "a
    // spool that was not merely appended to still reaches m.end": a full-length read proved
    // that when it was made (a short read means the file ends before m.end), and the From_
    // line comes from the same read.
    // (dev/ino of our own descriptor cannot change: a spool replaced by rename is another
    // inode, which this descriptor never sees; update.ts deals with that under the lock.)
    return this.reads.read(index);
  }

  private usable(): void {
    if (this.poisoned) throw new PopspoolError('SYS_TEMP', this.poisoned);
  }

  /** `buf`, read from message `m`'s From_ line to its end, checked against the scan; the message's bytes. */
  private checked(m: ScannedMessage, buf: Buffer): Buffer {
    const whole = m.end - m.fromOffset;
    if (buf.length < whole || !buf.subarray(0, FROM.length).equals(FROM)) {
      throw this.poison(buf.length < whole ? 'rewritten' : 'From_ line missing', m.fromOffset);
    }
    // With the whole message in hand, its sum (~2 µs for 20 KB) also catches a rewrite by a
    // mail client that happened to leave a From_ line at the same offset. It also makes the
    // read-ahead safe: bytes read a few RETRs ago are sent only if they are still exactly the
    // scanned message (a change since then is caught by the next read, or by the update).
    if (msum(buf) !== m.sum) throw this.poison('message bytes changed', m.fromOffset);
    return buf.subarray(m.start - m.fromOffset);
  }

  /**
   * Trust nothing about the spool between two looks (popa3d): growth is an MDA's append and
   * fine; anything else must still have this message's From_ line where the scan saw it, and
   * the file must still reach the message's end.
   */
  async read(index: number): Promise<Readable> {
    const small = await this.readSmall(index);
    if (small) return Readable.from([small], { objectMode: false });
    const m = this.state.scan.messages[index]!;
    const now = await fstat(this.fd);
    const grewOnly = now.dev === this.state.stamp.dev && now.ino === this.state.stamp.ino && Number(now.size) > this.state.scan.scanEnd;
    const still = sameStamp(stampFromStats(now), this.state.stamp) || grewOnly;
    // The From_ check is one small read; it also guards against a damaged cache file.
    if (!(await preadExact(this.fd, m.fromOffset, FROM.length)).equals(FROM) || (!still && Number(now.size) < m.end)) {
      throw this.poison(still ? 'From_ line missing' : 'rewritten', m.fromOffset);
    }
    return rangeStream(this.fd, m.start, m.end, READ_HIGH_WATER);
  }

  /** Marks the session as unable to read or update any more; returns the error to throw. */
  private poison(reason: string, offset: number): PopspoolError {
    this.poisoned = 'the spool was changed by another program during this session; ending it';
    log.warn('spool changed during session', { user: this.user, reason, offset });
    return new PopspoolError('SYS_TEMP', this.poisoned);
  }

  async update(req: UpdateRequest): Promise<UpdateOutcome> {
    const t0 = performance.now();
    await this.reads.clear();
    if (this.poisoned) {
      await this.close();
      throw new PopspoolError('SYS_TEMP', 'some deleted messages not removed (the spool was changed by another program)');
    }
    const flagged = this.ctx.statusUpdate
      ? new Set([...req.seen].filter((i) => !req.deleted.has(i) && this.state.scan.messages[i] && needsStatusEdit(this.state.scan.messages[i]!)))
      : new Set<number>();
    let lockWaitMs = 0;
    let committed = false;
    let answeredMs: number | undefined;
    const onCommitted = req.onCommitted && (async (): Promise<void> => {
      committed = true;
      answeredMs = Math.round(performance.now() - t0);
      // The POP session is over once its outcome is durable: a new login may start (and wait
      // for the mailbox lock, which this drop keeps until the spool is written).
      await this.releaseSession();
      req.onCommitted!();
    });
    try {
      if (req.deleted.size === 0 && flagged.size === 0) {
        return this.outcome('untouched', req, 0, 0, t0);
      }
      if (!this.lock) {
        this.lock = await this.ctx.lockSpool(this.fd, this.spoolPath);
        lockWaitMs = this.lock.waitedMs;
      }
      const result = await runServerUpdate(this.ctx.updateTarget(this.user, this.fd), this.state, { deleted: req.deleted, flagged }, onCommitted);
      if (result.after) {
        // The file itself is written after the +OK: only the stamp's settling needs the lock.
        await this.ctx.cache.storeInBackground(this.user, this.fd, result.after.stamp, result.after.scan, result.after.cacheFingerprint)
          .catch((err: Error) => log.warn('cache not written', { user: this.user, error: err.message }));
      }
      return this.outcome(result.case, req, result.bytesRewritten, lockWaitMs, t0, answeredMs);
    } catch (err) {
      // Past the journal's commit point the rewrite must finish: try once more, still locked,
      // rather than leave a half-rewritten spool until the next login or restart.
      const finished = this.lock
        ? await recoverJournal(journalPathFor(this.ctx.dirs.journal, this.user), this.fd).catch(() => 'failed' as const)
        : 'none';
      if (finished === 'recovered') {
        log.warn('update failed once and was completed from its journal', { user: this.user, error: (err as Error).message });
        return this.outcome('general', req, 0, lockWaitMs, t0, answeredMs);
      }
      log.error('update failed', { user: this.user, mode: 'server', error: (err as Error).message, journal: finished });
      if (committed) {
        // The client has its +OK: the journal is durable and finishes the rewrite at the next
        // lock (a login, or start-up); the deletions are not lost, only late.
        return this.outcome('general', req, 0, lockWaitMs, t0, answeredMs);
      }
      throw new PopspoolError('SYS_TEMP', 'some deleted messages not removed', { cause: err });
    } finally {
      await this.close();
    }
  }

  private outcome(kind: UpdateOutcome['case'], req: UpdateRequest, bytes: number, lockWaitMs: number, t0: number, answeredMs?: number): UpdateOutcome {
    const outcome: UpdateOutcome = {
      case: kind, deleted: req.deleted.size, kept: this.messages.length - req.deleted.size,
      bytesRewritten: bytes, lockWaitMs, durationMs: Math.round(performance.now() - t0),
      ...(answeredMs === undefined ? {} : { answeredMs }),
    };
    log.info('update', { user: this.user, mode: 'server', ...outcome });
    return outcome;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.reads.clear();
    const lock = this.lock;
    this.lock = null;
    await lock?.release();
    await fclose(this.fd).catch(() => {});
    await this.releaseSession();
  }
}

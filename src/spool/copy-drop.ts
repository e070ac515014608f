/**
 * Copy mode (classic Qpopper): lock; scan; copy the spool into a private temp drop and fsync
 * it; truncate the spool; unlock; serve the session from the temp drop. At QUIT (or any other
 * end of the session) lock again and write back the survivors followed by whatever the MDA
 * appended meanwhile — journaled, so a crash at any instant loses and duplicates nothing.
 *
 * A temp drop found at login or start-up holds the user's only copy of that mail unless the
 * spool was never truncated; its meta file (written before the drop is renamed into place)
 * records the copied length and checksum, which tells the two apart.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { PopspoolError } from '../errors.js';
import { createMessageSum, scanFd } from '../mbox/index.js';
import type { ScanResult } from '../mbox/types.js';
import type { HeldLock } from '../lock/types.js';
import { log } from '../obs/log.js';
import { type Drop, type MessageList, type UpdateOutcome, type UpdateRequest } from './drop.js';
import { scanList } from './message-list.js';
import { copyRange, crcRange, faultPoint, fclose, fopen, fstat, fsync, fsyncDir, ftruncate, pwriteAll, rangeStream, SmallReads, WindowReader } from './io.js';
import { commitImage, journalPathFor } from './journal.js';
import { ImageBuilder } from './image.js';
import type { SpoolContext } from './store.js';
import { copyVerified, restoreAtime, statusEdit } from './update.js';
import { Readable } from 'node:stream';

interface DropMeta {
  readonly version: 1;
  readonly dev: string;
  readonly ino: string;
  /** Bytes copied from the spool (its size when the session began). */
  readonly size: number;
  readonly crc: number;
}

export function tempDropPath(ctx: SpoolContext, user: string): string {
  return path.join(ctx.dirs.drops, `${user}.pop`);
}
const metaPathOf = (drop: string) => `${drop}.meta`;

async function readMeta(file: string): Promise<DropMeta | null> {
  try {
    const meta = JSON.parse(await fs.promises.readFile(file, 'utf8')) as DropMeta;
    return meta.version === 1 && Number.isSafeInteger(meta.size) ? meta : null;
  } catch {
    return null;
  }
}

async function writeFileDurably(file: string, data: Buffer): Promise<void> {
  const fd = await fopen(file, 'w', 0o600);
  try {
    await pwriteAll(fd, data, 0);
    await fsync(fd);
  } finally {
    await fclose(fd);
  }
}

/**
 * Builds [drop survivors (Status edits applied)] ++ [spool 0..F) as a journaled rewrite of the
 * whole spool, removing the temp drop in the same journal. Mailbox lock held.
 */
async function writeBack(
  ctx: SpoolContext, user: string, spoolFd: number, dropFile: string,
  drop: { fd: number; scan: ScanResult } | null, keep: (i: number) => boolean, flagged: ReadonlySet<number>,
): Promise<number> {
  const before = await fstat(spoolFd);
  const F = Number(before.size);
  const image = await ImageBuilder.build(ctx.dirs.journal, user, async (img) => {
    if (drop) {
      const { messages, scanEnd } = drop.scan;
      const reader = new WindowReader(drop.fd, scanEnd);
      const sum = createMessageSum();
      try {
        for (let i = 0; i < messages.length; i++) {
          if (!keep(i)) continue;
          const m = messages[i]!;
          const next = i + 1 < messages.length ? messages[i + 1]!.fromOffset : scanEnd;
          const edit = flagged.has(i) ? statusEdit(await reader.copy(m.start, Math.min(m.bodyStart - m.start, 4096)), m) : null;
          await copyVerified(reader, m, next, img, edit, sum);
        }
      } finally {
        await reader.close();
      }
    } else {
      // No scan (recovery): the whole temp drop goes back verbatim.
      const dfd = await fopen(dropFile, fs.constants.O_RDONLY);
      try {
        await img.appendRange(dfd, 0, Number((await fstat(dfd)).size));
      } finally {
        await fclose(dfd);
      }
    }
    await img.appendRange(spoolFd, 0, F);
  });
  await faultPoint('copy-image-built');
  await commitImage(journalPathFor(ctx.dirs.journal, user), spoolFd, {
    dev: String(before.dev), ino: String(before.ino), writeOffset: 0, oldSize: F, ...image,
    alsoRemove: [dropFile, metaPathOf(dropFile)],
  });
  await restoreAtime(spoolFd, before);
  return image.newLength;
}

/** Removes the .meta files in `dir` whose drop is gone (start-up, after recovery). */
export async function removeOrphanMetas(dir: string): Promise<void> {
  const names = await fs.promises.readdir(dir).catch(() => [] as string[]);
  const drops = new Set(names);
  for (const n of names) {
    if (n.endsWith('.meta') && !drops.has(n.slice(0, -'.meta'.length))) await fs.promises.unlink(path.join(dir, n)).catch(() => {});
  }
}

/** Merges a leftover temp drop back into the spool (lock held). True when there was one. */
export async function recoverTempDrop(ctx: SpoolContext, user: string, spoolFd: number): Promise<boolean> {
  const dropFile = tempDropPath(ctx, user);
  // No drop: done. (A .meta left without its drop, by a crash between the two, is harmless,
  // since a new drop writes its own first; removeOrphanMetas clears them at start-up.)
  if (!(await fs.promises.access(dropFile).then(() => true, () => false))) return false;
  const meta = await readMeta(metaPathOf(dropFile));
  const st = await fstat(spoolFd);
  if (meta && String(st.dev) === meta.dev && String(st.ino) === meta.ino && Number(st.size) >= meta.size
      && (await crcRange(spoolFd, 0, meta.size)) === meta.crc) {
    // The spool was never truncated: it still holds everything the drop does.
    await fs.promises.unlink(dropFile);
    await fs.promises.unlink(metaPathOf(dropFile)).catch(() => {});
    await fsyncDir(ctx.dirs.drops);
    return true;
  }
  await writeBack(ctx, user, spoolFd, dropFile, null, () => true, new Set());
  return true;
}

export class CopyDrop implements Drop {
  readonly messages: MessageList;
  readonly info: Drop['info'];
  private closed = false;
  private readonly reads: SmallReads;

  private constructor(
    private readonly ctx: SpoolContext,
    private readonly user: string,
    private readonly spoolPath: string,
    private readonly spoolFd: number,
    private readonly dropFile: string,
    private readonly dropFd: number,
    private readonly scan: ScanResult,
    lockWaitMs: number,
    private readonly releaseSession: () => Promise<void>,
  ) {
    this.messages = scanList(scan.messages);
    this.info = { mode: 'copy', lockWaitMs, cache: 'none' };
    // Our own temp drop (nobody else writes it): a short read is all there is to check.
    this.reads = new SmallReads(dropFd, scan.messages, (m) => m.start, (m, buf) => {
      if (buf.length < m.end - m.start) throw new PopspoolError('SYS_TEMP', `temp drop ${dropFile} is shorter than its scan`);
      return buf;
    });
  }

  /** Lock held on entry; released before returning (copy mode never holds it). */
  static async open(ctx: SpoolContext, user: string, spoolFd: number, spoolPath: string, lock: HeldLock, releaseSession: () => Promise<void>): Promise<CopyDrop> {
    const st = await fstat(spoolFd);
    const S = Number(st.size);
    const scan = await scanFd(spoolFd, 0, S, ctx.scanOptions); // refuse a malformed spool before touching it
    const dropFile = tempDropPath(ctx, user);
    await fs.promises.mkdir(ctx.dirs.drops, { recursive: true, mode: 0o700 });
    const tmp = `${dropFile}.tmp`;
    const out = await fopen(tmp, 'w', 0o600);
    let crc = 0;
    try {
      await copyRange(spoolFd, 0, S, out, 0, (c) => (crc = zlib.crc32(c, crc)));
      await fsync(out);
    } finally {
      await fclose(out);
    }
    const meta: DropMeta = { version: 1, dev: String(st.dev), ino: String(st.ino), size: S, crc };
    await writeFileDurably(metaPathOf(dropFile), Buffer.from(JSON.stringify(meta)));
    await fs.promises.rename(tmp, dropFile);
    await fsyncDir(ctx.dirs.drops);
    await faultPoint('drop-copied');
    await ftruncate(spoolFd, 0);
    await fsync(spoolFd);
    await restoreAtime(spoolFd, st);
    await faultPoint('spool-emptied');
    await lock.release();
    const dropFd = await fopen(dropFile, fs.constants.O_RDONLY);
    return new CopyDrop(ctx, user, spoolPath, spoolFd, dropFile, dropFd, scan, lock.waitedMs, releaseSession);
  }

  async read(index: number): Promise<Readable> {
    const m = this.scan.messages[index];
    if (!m) throw new PopspoolError('SYS_TEMP', `no message ${index + 1}`);
    return rangeStream(this.dropFd, m.start, m.end, 256 * 1024);
  }

  /** Drop.readHeld. */
  readHeld(index: number): Buffer | null {
    return this.reads.held(index);
  }

  /** Drop.readSmall: from our own temp drop, read ahead like server mode. */
  readSmall(index: number): Promise<Buffer | null> {
    return this.reads.read(index);
  }

  async update(req: UpdateRequest): Promise<UpdateOutcome> {
    const flagged = this.ctx.statusUpdate ? new Set([...req.seen].filter((i) => !req.deleted.has(i))) : new Set<number>();
    return this.finish(req.deleted, flagged);
  }

  /** Session ended without QUIT: everything goes back. A failure leaves the drop for recovery. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.finish(new Set(), new Set()).catch((err: Error) => {
      log.error('copy-mode write-back failed; temp drop kept for recovery at next login', { user: this.user, error: err.message });
    });
  }

  private async finish(deleted: ReadonlySet<number>, flagged: ReadonlySet<number>): Promise<UpdateOutcome> {
    if (this.closed) throw new PopspoolError('SYS_TEMP', 'session already closed');
    this.closed = true;
    await this.reads.clear();
    const t0 = performance.now();
    let lock: HeldLock | null = null;
    try {
      lock = await this.ctx.lockSpool(this.spoolFd, this.spoolPath);
      const bytes = await writeBack(this.ctx, this.user, this.spoolFd, this.dropFile, { fd: this.dropFd, scan: this.scan }, (i) => !deleted.has(i), flagged);
      const outcome: UpdateOutcome = {
        case: 'copy-back', deleted: deleted.size, kept: this.messages.length - deleted.size,
        bytesRewritten: bytes, lockWaitMs: lock.waitedMs, durationMs: Math.round(performance.now() - t0),
      };
      log.info('update', { user: this.user, mode: 'copy', ...outcome });
      return outcome;
    } catch (err) {
      log.error('copy-mode update failed; temp drop kept for recovery', { user: this.user, error: (err as Error).message });
      throw new PopspoolError('SYS_TEMP', 'some deleted messages not removed', { cause: err });
    } finally {
      await lock?.release();
      await fclose(this.dropFd).catch(() => {});
      await fclose(this.spoolFd).catch(() => {});
      await this.releaseSession();
    }
  }
}

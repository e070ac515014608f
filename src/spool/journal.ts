/**
 * The write-ahead journal that makes every spool rewrite crash-safe (DESIGN.md §4).
 *
 * Essay. A rewrite replaces the spool's bytes from offset W (the first changed message) to its
 * old end S with a new image I of length L, built beforehand in a temp file and fsynced. The
 * spool keeps its inode; only two kinds of change ever happen to it: our writes inside
 * [W, max(S, W+L)) and one size change (S → W+L), plus whatever an MDA appends at EOF. An MDA
 * may append at any moment after a crash, because our kernel locks die with us and
 * liblockfile breaks a dotlock whose pid is dead. So recovery must know where EOF was at the
 * instant of the crash (call it E): everything in [E, size) is new mail and goes behind I.
 *
 * The journal records a state, rewritten atomically (temp + rename + fsync) before each step:
 *
 *   prepared  nothing written to the spool yet.             E = S, unless the image grows the
 *             Then, if W+L > S: ftruncate(W+L) (extends      file and the extension happened:
 *             with zero bytes), fsync.                       byte S is then NUL — an MDA's
 *                                                            append starts with "From ", never NUL.
 *   sized     size is max(S, W+L). Copy I to W, fsync.       E = max(S, W+L)
 *   written   I is in place. If S > W+L: write one NUL at    E = S (no truncate yet)
 *             W+L, fsync.
 *   zeroed    ftruncate(W+L), fsync.                         E = S if byte W+L is still NUL and the
 *                                                            file extends past it, else W+L.
 *   (done)    remove the files listed in alsoRemove (a copy-mode temp drop), then the journal,
 *             then the image.
 *
 * (The table lists every state recovery understands; advance() journals a state only when it
 * tells recovery something the previous one does not, so a delete writes `prepared` and
 * `zeroed` only — see its comment and docs/spool.md.)
 *
 * Recovery (under the mailbox lock, at login and at server start): validate the journal and
 * the image's checksum, check the spool is the same inode, derive E as above, and if bytes were
 * appended after E, fold them into a new image I' = I ++ [E, size) with S' = size and restart
 * from "prepared" (the new journal replaces the old by rename, so a crash during recovery is
 * itself recoverable). With nothing appended, it resumes from the recorded state. Every step is
 * idempotent: copying I again writes the same bytes; truncating to the same length is a no-op.
 * Nothing in [0, W) is ever written, and no state discards a byte that is not in I or after E.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { PopspoolError } from '../errors.js';
import { log } from '../obs/log.js';
import { afterReply } from './background.js';
import { copyRange, crcRange, faultPoint, fclose, fdatasync, fopen, fstat, fsyncDir, ftruncate, preadExact, pwriteAll, sumRange } from './io.js';
import { ImageBuilder } from './image.js';

export type JournalState = 'prepared' | 'sized' | 'written' | 'zeroed';

export interface JournalRecord {
  /** 2 since the image's check is msum; a journal of version 1 (crc32) is still recovered. */
  readonly version: 1 | 2;
  readonly dev: string;
  readonly ino: string;
  /** W: where the image goes. */
  readonly writeOffset: number;
  /** S: the spool's size when the rewrite was planned. */
  readonly oldSize: number;
  /** L: the image's length. */
  readonly newLength: number;
  readonly imagePath: string;
  /** msum of the image (version 2). */
  readonly imageSum?: number;
  /** zlib crc32 of the image (version 1 only). */
  readonly imageCrc?: number;
  /** Files to delete once the image is in place (a copy-mode temp drop merged back). */
  readonly alsoRemove: readonly string[];
  readonly state: JournalState;
}

const JOURNAL_MAGIC = 'popspool-journal';

export function journalPathFor(dir: string, user: string): string {
  return path.join(dir, `${user}.journal`);
}

async function writeJournal(file: string, rec: JournalRecord): Promise<void> {
  const body = JSON.stringify(rec);
  const text = `${JOURNAL_MAGIC} ${zlib.crc32(body)} ${body}\n`;
  const tmp = `${file}.tmp`;
  const fd = await fopen(tmp, 'w', 0o600);
  try {
    await pwriteAll(fd, Buffer.from(text), 0);
    await fdatasync(fd);
  } finally {
    await fclose(fd);
  }
  await fs.promises.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/** Reads a journal; null when there is none; throws a description when it is not valid. */
export async function readJournal(file: string): Promise<JournalRecord | null> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const m = /^popspool-journal (\d+) (\{.*\})\n$/s.exec(text);
  if (!m || zlib.crc32(m[2]!) !== Number(m[1])) throw new Error(`journal ${file} is corrupt (bad header or checksum)`);
  const rec = JSON.parse(m[2]!) as JournalRecord;
  if (rec.version !== 1 && rec.version !== 2) throw new Error(`journal ${file} has unknown version ${String(rec.version)}`);
  if (typeof (rec.version === 1 ? rec.imageCrc : rec.imageSum) !== 'number') throw new Error(`journal ${file} has no image checksum`);
  return rec;
}

async function removeQuietly(file: string): Promise<void> {
  await fs.promises.unlink(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/**
 * Starts a journaled rewrite: the image file is complete and fsynced. Runs it to the end.
 * The caller holds the mailbox lock and passes the spool's read-write descriptor.
 *
 * `committed` runs once the journal is durable, before the spool is touched: the rewrite is
 * then decided (a crash from here on is completed by recovery, never undone), so a caller may
 * answer its client there while the copy into the spool goes on under the same lock.
 */
export async function commitImage(
  journalFile: string, spoolFd: number, rec: Omit<JournalRecord, 'version' | 'state'>,
  committed?: () => Promise<void> | void,
): Promise<void> {
  const full: JournalRecord = { version: 2, ...rec, state: 'prepared' };
  await writeJournal(journalFile, full);
  await faultPoint('journal-prepared');
  await committed?.();
  await advance(journalFile, spoolFd, full);
}

/**
 * Runs the remaining steps from `rec.state`. Each step is idempotent. A state is journaled only
 * when it tells recovery something the previous one does not (each costs a temp file, two
 * fsyncs and a rename):
 * - `sized` only when the spool was extended (W+L > S); otherwise `prepared` already means
 *   E = S and the same next step.
 * - The end marker (one NUL at W+L when S > W+L) is written with the image and covered by the
 *   same fsync: in `sized` it is inside [W, S), which recovery overwrites or cuts off anyway, so
 *   `written` need not be journaled before it.
 * - `zeroed` only when a truncation follows (S > W+L); otherwise the file already has its final
 *   size once the image is in place, and `sized`/`prepared` recovery (copy again) is complete.
 */
async function advance(journalFile: string, spoolFd: number, rec: JournalRecord): Promise<void> {
  const { writeOffset: W, oldSize: S, newLength: L } = rec;
  let state = rec.state;
  const setState = async (next: JournalState): Promise<void> => {
    state = next;
    await writeJournal(journalFile, { ...rec, state });
  };
  if (state === 'prepared') {
    if (W + L > S) {
      await ftruncate(spoolFd, W + L);
      await fdatasync(spoolFd);
      await faultPoint('spool-extended');
      await setState('sized');
    } else {
      state = 'sized';
    }
  }
  if (state === 'sized') {
    const img = await fopen(rec.imagePath, fs.constants.O_RDONLY);
    try {
      await copyRange(img, 0, L, spoolFd, W);
    } finally {
      await fclose(img);
    }
    await faultPoint('image-copied');
    state = 'written';
  }
  if (state === 'written') {
    if (S > W + L) {
      await pwriteAll(spoolFd, Buffer.alloc(1), W + L);
      await faultPoint('end-marked');
    }
    // Timestamps of the spool are not part of the crash argument: data and size only.
    await fdatasync(spoolFd);
    if (S > W + L) await setState('zeroed');
    else state = 'zeroed';
  }
  // state === 'zeroed'
  if (S > W + L) {
    await ftruncate(spoolFd, W + L);
    await fdatasync(spoolFd);
  }
  await faultPoint('spool-truncated');
  for (const extra of rec.alsoRemove) {
    await removeQuietly(extra);
    await fsyncDir(path.dirname(extra));
  }
  await removeQuietly(journalFile);
  await fsyncDir(path.dirname(journalFile));
  await faultPoint('journal-removed');
  // The rewrite is complete. Unlinking the image (milliseconds for a large one on a filesystem
  // mounted with discard) need not delay the reply: once no journal names it, it is an orphan
  // that removeOrphanImages deletes at start-up should we crash first.
  afterReply(removeQuietly(rec.imagePath).catch((err: Error) => void log.warn('update image not removed', { image: rec.imagePath, error: err.message })));
}

export type RecoveryResult = 'none' | 'discarded' | 'recovered';

/**
 * Completes an interrupted rewrite of the spool open on `spoolFd` (mailbox lock held).
 * Returns what it did; throws PopspoolError(SYS_TEMP) when it must not touch the spool.
 */
export async function recoverJournal(journalFile: string, spoolFd: number | null): Promise<RecoveryResult> {
  let rec: JournalRecord | null;
  try {
    rec = await readJournal(journalFile);
  } catch (err) {
    // Journals are replaced by rename, so a torn one cannot be ours in flight: set it aside.
    await fs.promises.rename(journalFile, `${journalFile}.bad`).catch(() => {});
    throw new PopspoolError('SYS_TEMP', `unreadable update journal set aside as ${journalFile}.bad: ${(err as Error).message}`);
  }
  if (!rec) return 'none';
  const st = spoolFd === null ? null : await fstat(spoolFd);
  if (!st || String(st.dev) !== rec.dev || String(st.ino) !== rec.ino) {
    // The spool was replaced or removed since: the journal describes a file that is gone.
    await removeQuietly(journalFile);
    await removeQuietly(rec.imagePath);
    return 'discarded';
  }
  const { writeOffset: W, oldSize: S, newLength: L } = rec;
  const img = await fopen(rec.imagePath, fs.constants.O_RDONLY).catch(() => null);
  if (img === null) throw new PopspoolError('SYS_TEMP', `update journal ${journalFile} names a missing image ${rec.imagePath}; spool left untouched`);
  try {
    const imgSize = Number((await fstat(img)).size);
    const intact = imgSize === L
      && (rec.version === 1 ? (await crcRange(img, 0, L)) === rec.imageCrc : (await sumRange(img, 0, L)) === rec.imageSum);
    if (!intact) {
      throw new PopspoolError('SYS_TEMP', `update image ${rec.imagePath} does not match its journal; spool left untouched`);
    }
    const F = Number(st.size);
    const byteAt = async (pos: number): Promise<number> => (await preadExact(spoolFd!, pos, 1))[0] ?? -1;
    let E: number;
    let resume: JournalState = rec.state;
    switch (rec.state) {
      case 'prepared':
        E = W + L > S && F > S && (await byteAt(S)) === 0 ? W + L : S;
        if (E !== S) resume = 'sized';
        break;
      case 'sized':
      case 'written':
        E = Math.max(S, W + L);
        break;
      case 'zeroed':
        E = F > W + L && (await byteAt(W + L)) === 0 ? S : W + L;
        break;
    }
    if (F < E) {
      throw new PopspoolError('SYS_TEMP', `spool shrank to ${F} below ${E} during an interrupted update; left untouched for an administrator`);
    }
    if (F === E) {
      await advance(journalFile, spoolFd!, { ...rec, state: resume });
      return 'recovered';
    }
    // Mail arrived after the crash at [E, F): the new image is I followed by it.
    const user = path.basename(journalFile, '.journal');
    const image = await ImageBuilder.build(path.dirname(journalFile), user, async (out) => {
      await out.appendRange(img, 0, L);
      await out.appendRange(spoolFd!, E, F - E);
    });
    const { imageCrc: _v1, ...kept } = rec;
    const next: JournalRecord = { ...kept, version: 2, oldSize: F, ...image, state: 'prepared' };
    await writeJournal(journalFile, next);
    await removeQuietly(rec.imagePath);
    await advance(journalFile, spoolFd!, next);
    return 'recovered';
  } finally {
    await fclose(img);
  }
}

/**
 * Image files in `dir` that no journal names and whose writer process is gone (a crash before
 * the journal was written). An image of a live process may be about to be journaled: kept.
 */
export async function removeOrphanImages(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return;
  }
  const named = new Set<string>();
  for (const n of names.filter((x) => x.endsWith('.journal'))) {
    const rec = await readJournal(path.join(dir, n)).catch(() => null);
    if (rec) named.add(path.resolve(rec.imagePath));
  }
  for (const n of names.filter((x) => x.endsWith('.image'))) {
    const full = path.resolve(dir, n);
    const pid = Number(/\.(\d+)\.[0-9a-f]+\.image$/.exec(n)?.[1] ?? NaN);
    if (!named.has(full) && !processAlive(pid)) await removeQuietly(full);
  }
}

function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The UPDATE phase of server mode (QUIT in TRANSACTION): plan the cheapest correct rewrite
 * and carry it out through the journal. The caller holds the mailbox lock.
 *
 * Flow:
 *   1. Nothing deleted and no flag to record  → "untouched": the spool is not written at all.
 *   2. Check that [0, scanEnd) is still what was scanned (same inode, size ≥ scanEnd; when the
 *      stamp moved, a fingerprint of the bytes before scanEnd and the From_ line of every
 *      message). Otherwise change nothing: -ERR [SYS/TEMP] some deleted messages not removed.
 *   3. Everything deleted and nothing appended → "delete-all": one ftruncate(0).
 *   4. Otherwise W = offset of the first changed message (deleted, or read and flagged); build
 *      the image of [W, EOF) in a temp file: every survivor's bytes (re-verified against the
 *      scan's sum as they are copied), `Status: RO` edits, then the appended tail [scanEnd, EOF)
 *      verbatim; fsync; journaled copy into place (journal.ts); restore atime.
 *   5. Derive the scan of the spool as now written (offsets shifted, flagged messages and the
 *      tail rescanned) so the caller can store the cache.
 */
import fs from 'node:fs';
import { PopspoolError } from '../errors.js';
import { createMessageSum, type MessageSum, scanFd } from '../mbox/index.js';
import { shifted, type ScanOptions, type ScannedMessage, type ScanResult } from '../mbox/types.js';
import { cacheFingerprint, type SpoolStamp } from './cache.js';
import type { UpdateCase } from './drop.js';
import { commitImage, journalPathFor } from './journal.js';
import { ImageBuilder } from './image.js';
import { crcRange, faultPoint, fstat, fsync, ftruncate, futimes, preadExact, WindowReader } from './io.js';

/** How many bytes before scanEnd the prefix fingerprint covers. */
export const FINGERPRINT_BYTES = 4096;

export interface ScanState {
  readonly scan: ScanResult;
  /** The spool's stamp when it was scanned (or when the cache was validated). */
  readonly stamp: SpoolStamp;
  /** crc32 of [scanEnd - FINGERPRINT_BYTES, scanEnd). */
  readonly fingerprint: number;
  /** The cache file's prefix fingerprint, computed before the atime was restored. */
  readonly cacheFingerprint?: Buffer;
}

export interface UpdateTarget {
  readonly user: string;
  readonly spoolFd: number;
  readonly journalDir: string;
  readonly scanOptions: ScanOptions;
}

export interface ServerUpdatePlan {
  readonly deleted: ReadonlySet<number>;
  /** Messages to record as read (already filtered by the statusUpdate setting). */
  readonly flagged: ReadonlySet<number>;
}

export interface ServerUpdateResult {
  readonly case: UpdateCase;
  readonly bytesRewritten: number;
  /** The spool as now written, for the cache; null when untouched. */
  readonly after: ScanState | null;
}

export async function fingerprintOf(fd: number, scanEnd: number): Promise<number> {
  const from = Math.max(0, scanEnd - FINGERPRINT_BYTES);
  return crcRange(fd, from, scanEnd - from);
}

export function sameStamp(a: SpoolStamp, b: SpoolStamp): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

export function stampFromStats(st: fs.BigIntStats): SpoolStamp {
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
}

const FROM = Buffer.from('From ');

/** Step 2: is [0, scanEnd) still what was scanned? Returns the reason when it is not. */
export async function prefixProblem(fd: number, state: ScanState, now: fs.BigIntStats): Promise<string | null> {
  const { scan, stamp } = state;
  if (now.dev !== stamp.dev || now.ino !== stamp.ino) return 'the spool was replaced by another file';
  if (Number(now.size) < scan.scanEnd) return `the spool shrank from ${scan.scanEnd} to ${now.size} bytes`;
  if (sameStamp(stampFromStats(now), stamp)) return null;
  if ((await fingerprintOf(fd, scan.scanEnd)) !== state.fingerprint) return 'the bytes before the scanned end changed';
  for (const m of scan.messages) {
    if (!(await preadExact(fd, m.fromOffset, FROM.length)).equals(FROM)) return `no From_ line at offset ${m.fromOffset} any more`;
  }
  return null;
}

/** Does recording `m` as read change its Status header? */
export function needsStatusEdit(m: ScannedMessage): boolean {
  return !(m.status.includes('R') && m.status.includes('O'));
}

/** The bytes of `m` with its Status header set to include R and O; null when already so. */
export function statusEdit(head: Buffer, m: ScannedMessage): { at: number; remove: number; insert: Buffer } | null {
  const letters = new Set(m.status.replace(/[^A-Za-z]/g, ''));
  if (letters.has('R') && letters.has('O')) return null;
  const value = 'RO' + [...letters].filter((c) => c !== 'R' && c !== 'O').join('');
  const crlf = head.includes('\r\n');
  const line = Buffer.from(`Status: ${value}${crlf ? '\r\n' : '\n'}`);
  if (m.statusOffset >= 0) return { at: m.statusOffset, remove: m.statusLength, insert: line };
  return { at: m.start, remove: 0, insert: line };
}

/**
 * Runs steps 2–5. Throws PopspoolError(SYS_TEMP) — after changing nothing — when the spool is
 * not what was scanned or a kept message no longer matches its checksum. `committed` runs
 * when a journaled rewrite has become durable (see commitImage); cheaper cases never call it.
 */
export async function runServerUpdate(
  target: UpdateTarget, state: ScanState, wanted: ServerUpdatePlan, committed?: () => Promise<void> | void,
): Promise<ServerUpdateResult> {
  const { messages, scanEnd } = state.scan;
  // A message already marked read needs no edit: it must not widen (or cause) a rewrite.
  const plan: ServerUpdatePlan = { deleted: wanted.deleted, flagged: new Set([...wanted.flagged].filter((i) => messages[i] && needsStatusEdit(messages[i]!))) };
  if (plan.deleted.size === 0 && plan.flagged.size === 0) return { case: 'untouched', bytesRewritten: 0, after: null };
  const fd = target.spoolFd;
  const before = await fstat(fd);
  const problem = await prefixProblem(fd, state, before);
  if (problem) throw new PopspoolError('SYS_TEMP', `spool changed under us: ${problem}`);
  const size = Number(before.size);

  if (plan.deleted.size === messages.length && size === scanEnd) {
    await faultPoint('before-truncate');
    await ftruncate(fd, 0);
    await fsync(fd);
    await restoreAtime(fd, before);
    const after = await fstat(fd);
    return { case: 'delete-all', bytesRewritten: 0, after: { scan: { messages: [], scanEnd: 0, bytesRead: 0 }, stamp: stampFromStats(after), fingerprint: 0 } };
  }

  const changed = messages.findIndex((_, i) => plan.deleted.has(i) || plan.flagged.has(i));
  const W = changed < 0 ? scanEnd : messages[changed]!.fromOffset;
  /** Survivor layout for the cache: new offset and the flagged messages to rescan. */
  const layout: { m: ScannedMessage; at: number; edited: boolean; span: number }[] = [];
  // One sequential pass over [W, scanEnd): every survivor is verified as it is copied.
  const reader = new WindowReader(fd, scanEnd);
  const sum = createMessageSum();
  const image = await ImageBuilder.build(target.journalDir, target.user, async (img) => {
    try {
      for (let i = Math.max(changed, 0); i < messages.length; i++) {
        if (plan.deleted.has(i)) continue;
        const m = messages[i]!;
        const next = i + 1 < messages.length ? messages[i + 1]!.fromOffset : scanEnd;
        const at = W + img.size;
        const edit = plan.flagged.has(i) ? statusEdit(await reader.copy(m.start, Math.min(m.bodyStart - m.start, 4096)), m) : null;
        await copyVerified(reader, m, next, img, edit, sum);
        layout.push({ m, at, edited: edit !== null, span: W + img.size - at });
      }
    } finally {
      await reader.close();
    }
    await img.appendRange(fd, scanEnd, size - scanEnd);
  });
  await faultPoint('image-built');
  await commitImage(journalPathFor(target.journalDir, target.user), fd, {
    dev: String(before.dev), ino: String(before.ino), writeOffset: W, oldSize: size, ...image, alsoRemove: [],
  }, committed);
  const after = await rescanAfter(target, state, W, layout, changed, before);
  return { case: plan.deleted.size === messages.length ? 'delete-all' : plan.deleted.size > 0 ? 'general' : 'flags', bytesRewritten: image.newLength, after };
}

/**
 * Copies message m's span [fromOffset, next) into the image, applying a Status edit, while
 * checking the original bytes [fromOffset, end) against the scan's sum (msum). `src` is read
 * sequentially: callers walk messages in file order. `sum` is the caller's, one per update
 * (reset here), so no allocation per message.
 */
export async function copyVerified(
  src: WindowReader, m: ScannedMessage, next: number, img: ImageBuilder,
  edit: { at: number; remove: number; insert: Buffer } | null, sum: MessageSum,
): Promise<void> {
  sum.reset();
  const emit = (b: Buffer): Promise<void> => img.append(b);
  try {
    if (edit) {
      await copySegment(src, m.fromOffset, edit.at, m.end, sum, emit);
      await emit(edit.insert);
      await copySegment(src, edit.at, edit.at + edit.remove, m.end, sum, null);
      await copySegment(src, edit.at + edit.remove, next, m.end, sum, emit);
    } else {
      await copySegment(src, m.fromOffset, next, m.end, sum, emit);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESHORT') throw new PopspoolError('SYS_TEMP', `spool ended early: ${(err as Error).message}`);
    throw err;
  }
  if (sum.digest() !== m.sum) throw new PopspoolError('SYS_TEMP', `message at offset ${m.fromOffset} changed since the scan`);
}

/** Reads [from, to), feeding the part before sumEnd to the sum and everything to emit (if any). */
async function copySegment(
  src: WindowReader, from: number, to: number, sumEnd: number, sum: MessageSum, emit: ((b: Buffer) => Promise<void>) | null,
): Promise<void> {
  for (let pos = from; pos < to; ) {
    const chunk = await src.at(pos, to - pos);
    const n = chunk.length;
    sum.update(chunk, 0, Math.max(0, Math.min(n, sumEnd - pos)));
    if (emit) await emit(chunk);
    pos += n;
  }
}

/** Keep the spool's atime, so shell users' "new mail" notices keep working (mtime is now). */
export async function restoreAtime(fd: number, before: fs.BigIntStats): Promise<void> {
  await futimes(fd, Number(before.atimeNs / 1000n) / 1e6, Date.now() / 1000).catch(() => {});
}

/** Step 5: the scan of the spool as now written. */
async function rescanAfter(
  target: UpdateTarget, state: ScanState, W: number,
  layout: readonly { m: ScannedMessage; at: number; edited: boolean; span: number }[], changed: number,
  before: fs.BigIntStats,
): Promise<ScanState> {
  const fd = target.spoolFd;
  const kept: ScannedMessage[] = state.scan.messages.slice(0, Math.max(changed, 0));
  for (const { m, at, edited, span } of layout) {
    if (edited) {
      const one = await scanFd(fd, at, at + span, target.scanOptions);
      kept.push(...one.messages);
    } else {
      const d = at - m.fromOffset;
      kept.push(shifted(m, d));
    }
  }
  const st = await fstat(fd);
  const size = Number(st.size);
  const survivorsEnd = layout.length ? layout[layout.length - 1]!.at + layout[layout.length - 1]!.span : W;
  const tail = size > survivorsEnd ? await scanFd(fd, survivorsEnd, size, target.scanOptions) : null;
  const scan: ScanResult = { messages: tail ? kept.concat(tail.messages) : kept, scanEnd: size, bytesRead: 0 };
  // Every read of the spool happens before the atime is restored: a read after it would set it
  // again (relatime), and the cache must key on the stamp after futimes.
  const fingerprint = await fingerprintOf(fd, size);
  const forCache = await cacheFingerprint(fd, size);
  await restoreAtime(fd, before);
  return { scan, stamp: stampFromStats(await fstat(fd)), fingerprint, cacheFingerprint: forCache };
}

/**
 * The scan cache: one private file per user remembering what a scan of the spool learned, so
 * the next session's "scan" is a stat plus one read of this file (DESIGN.md §5).
 *
 * Why it can be trusted. The cache is keyed by the spool's dev, ino, size, mtime and ctime in
 * nanoseconds. ctime cannot be set from user space, so "every key field equal" means the inode
 * was not written since we stored the cache: that is a `hit`, served without reading the spool.
 * When the same inode merely grew (an MDA appended), we check that the bytes we scanned are still
 * there — a fingerprint of the first and the last FINGERPRINT_WINDOW bytes before `scanEnd`, an
 * empty line just before `scanEnd` and `From ` at `scanEnd` — and hand back the table as a
 * `tail` prefix: the caller scans only the appended bytes (Qpopper discards its cache here).
 * Everything else is a `miss`. The spool is only ever read through the caller's descriptor with
 * positional reads, never opened by path: closing another descriptor of the spool could drop
 * the caller's locks.
 *
 * Racy stamps. File timestamps come from the kernel's coarse clock (one tick, 1-10 ms), so a
 * same-size rewrite in the very tick in which the spool last changed would leave mtime and ctime
 * as stored (git's "racy clean" problem). store() is called while the caller still holds the
 * spool lock; it waits until the kernel clock has moved past the spool's ctime — probed with the
 * ctime of its own temp file, at most a tick, or RACY_MS by the wall clock when the probe cannot
 * be trusted (see settleStamp) — so a writer that takes the lock after us gets a later ctime.
 * If it still cannot (a ctime in the future: clock skew, NFS), the file is flagged racy and an
 * exact match is not trusted. An empty spool is not cached at all (its scan costs nothing).
 *
 * Speed. Numbers sit in typed-array columns read in place, strings in two decoded-once
 * sections; a lookup is one read, one crc32 and one validating pass. What remains is building
 * the ScannedMessage objects (~10 ms for 50,000 on a slow VM), so a ScanCache also keeps recent
 * parses in memory, reused only while the cache file has the same dev/ino/size/mtime/ctime.
 *
 * A corrupt or hostile file must never make us serve or delete wrong data, so the whole file is
 * covered by a crc32 and every record is validated (ordering, bounds, sizes, UIDL charset)
 * before a single entry is returned; any doubt is a miss, which only costs a full scan.
 *
 * File format, version 2 (version 1 held a crc32 per message where version 2 holds its msum;
 * a version-1 file is a miss like any other, and the next store replaces it). Header fields little-endian; records in the host's byte order (the
 * header says which, and a mismatch is a miss: the file never leaves the host).
 *
 *   off  size  field
 *     0   14   magic "POPSPOOL-CACHE"
 *    14    1   0x0A
 *    15    1   byte order of the records: 1 = little-endian, 2 = big-endian
 *    16    4   u32 format version (FORMAT_VERSION)
 *    20    4   u32 header size (HEADER_SIZE = 128)
 *    24    8   u64 spool st_dev
 *    32    8   u64 spool st_ino
 *    40    8   u64 spool st_size when stored
 *    48    8   i64 spool mtime, ns
 *    56    8   i64 spool ctime, ns
 *    64    8   u64 scanEnd (<= st_size; <= 2^53)
 *    72    4   u32 message count
 *    76    4   u32 bytes of the UIDL section
 *    80    4   u32 UTF-16 code units of the Status section
 *    84    4   u32 UTF-16 code units of the tag (scanner settings/version the caller keys on)
 *    88   20   sha1 fingerprint: bytes [0, min(W, scanEnd)) then [max(0, scanEnd - W), scanEnd)
 *   108    1   flags: 1 = racy (the spool changed within RACY_MS of the store; see below)
 *   109   15   reserved, zero
 *   124    4   u32 crc32 (zlib) of bytes [0, 124) followed by [128, EOF)
 *   128        n rows of 3 float64 (exact integers < 2^53): fromOffset, end, size
 *     ...      n rows of 6 u32: start - fromOffset, bodyStart - start, bodyLines,
 *              statusOffset - start (0xFFFFFFFF: no Status header), statusLength
 *              (0xFFFFFFFF for -1), sum (msum, mbox/msum.ts)
 *     ...      n u16: status length (UTF-16 units);  n u8: uidlBase length (bytes)
 *     ...      UIDL section: every uidlBase concatenated, latin1 (validated 0x21-0x7E)
 *     ...      Status section: every status concatenated, UTF-16LE (lossless for any JS string)
 *     ...      tag, UTF-16LE; then EOF exactly
 * 51 bytes of numbers per message, plus its UIDL: 50,000 messages make about 4 MB. A scan with a
 * value that does not fit (a From_ line or header block over 4 GiB) is simply not cached.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import lockfile from 'proper-lockfile';
import { Scanned, type ScannedMessage, type ScanResult } from '../mbox/types.js';
import { log as rootLog } from '../obs/log.js';
import { afterReply, gate } from './background.js';

const log = rootLog.child({ component: 'cache' });

export interface SpoolStamp {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

/** A background store (storeInBackground): `started` once its write began; `supersede()` when
 *  a later store for the user comes first: then it never will, and it settles at once. */
interface Writing {
  readonly stamp: SpoolStamp;
  readonly scan: ScanResult;
  readonly racy: boolean;
  readonly fingerprint: Buffer;
  started: boolean;
  readonly supersede: () => void;
  done: Promise<void>;
}

export function stampOf(st: fs.BigIntStats): SpoolStamp {
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
}

export type CacheLookup =
  | { kind: 'hit'; scan: ScanResult } // exact match: use as is (bytesRead = 0)
  | { kind: 'tail'; prefix: ScanResult } // spool grew, prefix unchanged: caller scans [prefix.scanEnd, size) and appends
  | { kind: 'miss'; reason: string }; // caller does a full scan; reason is logged at debug level

export interface ScanCacheOptions {
  /** Identifies what produced the scans (scanner version, strictFrom...). A cache written
   *  under another tag is a miss, so a changed UIDL rule or setting never serves old data. */
  readonly tag?: string;
}

const MAGIC = 'POPSPOOL-CACHE\n';
const FORMAT_VERSION = 2;
const HEADER_SIZE = 128;
const CRC_OFFSET = 124;
const F64_FIELDS = 3;
const U32_FIELDS = 6;
/** u32 sentinel: no Status header (in the statusOffset column) or -1 (in statusLength). */
const NONE = 0xffffffff;
const HOST_ORDER = os.endianness() === 'LE' ? 1 : 2;
/** Bytes fingerprinted at each end of the scanned prefix: one page, two positional reads. */
const FINGERPRINT_WINDOW = 4096;
/** More messages than this in one spool is not a real maildrop (and u32 counts must fit). */
const MAX_MESSAGES = 50_000_000;
/** A cache file larger than this is refused unread (50M messages would not fit anyway). */
const MAX_CACHE_BYTES = 2 ** 31;
/** RFC 1939 §7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E. */
const UIDL_MAX = 70;
const UIDL_SECTION_RE = /^[\x21-\x7e]*$/;
/** Writers of one user's cache exclude each other; a loser retries briefly, then skips (it is
 *  only a cache). Stale after 10 s: a store takes milliseconds, a crashed writer is gone. */
/** Well past the coarsest kernel timestamp tick (10 ms at HZ=100). */
const RACY_MS = 20;
const FLAG_RACY = 1;
/** Parsed cache files kept in memory (per ScanCache, least recently used first out), bounded by
 *  total messages: ~150 bytes each, so at most ~40 MB. Materializing 50,000 message objects
 *  costs ~10 ms of allocation and GC; a user who polls every few minutes then costs a stat. */
const MEMO_MAX_MESSAGES = 250_000;
const LOCK_OPTIONS = { realpath: false, stale: 10_000, retries: { retries: 3, minTimeout: 20, maxTimeout: 100 } };

type Raw = {
  stamp: SpoolStamp;
  racy: boolean;
  scanEnd: number;
  fingerprint: Buffer;
  scan: ScanResult;
};

/** Thrown inside parsing; turned into a miss reason. */
class Invalid extends Error {}

export class ScanCache {
  private readonly dir: string;
  private readonly tag: string;
  /** user → the background store in flight (storeInBackground). */
  private readonly writing = new Map<string, Writing>();
  /** user → parsed file, valid while the cache file keeps the same dev/ino/size/mtime/ctime. */
  private readonly memo = new Map<string, { fileKey: string; raw: Raw }>();
  private memoMessages = 0;

  constructor(dir: string, options: ScanCacheOptions = {}) {
    this.dir = dir;
    this.tag = options.tag ?? '';
  }

  /** `${dir}/${user}.cache`. Throws on a user name that could escape the directory. */
  path(user: string): string {
    if (user === '' || user.startsWith('.') || /[/\0\n]/.test(user)) throw new Error('user name not usable as a cache file name');
    return `${this.dir}/${user}.cache`;
  }

  async lookup(user: string, fd: number, stamp: SpoolStamp): Promise<CacheLookup> {
    const w = this.writing.get(user);
    if (w) {
      // The file being written would say "hit" (same stamp, settled): answer from memory
      // instead of waiting for it. A write not begun yet is judged in memory, as its file
      // would be; if the spool no longer fits it, it is dropped (the caller scans and stores).
      // One under way is waited for, and its file read.
      if (!w.racy && isExactHit(w.stamp, w.scan.scanEnd, stamp)) return { kind: 'hit', scan: { ...w.scan, messages: w.scan.messages.slice(), bytesRead: 0 } };
      if (!w.started) {
        const pending: Raw = { stamp: w.stamp, racy: w.racy, scanEnd: w.scan.scanEnd, fingerprint: w.fingerprint, scan: w.scan };
        const result = await this.logged(user, () => this.judge(pending, fd, stamp));
        if (result.kind === 'miss' && this.writing.get(user) === w && !w.started) w.supersede();
        return result;
      }
      await w.done;
    }
    return this.logged(user, () => this.lookupInner(user, fd, stamp));
  }

  /** A lookup's answer, with a miss logged and a failure turned into a miss. */
  private async logged(user: string, answer: () => Promise<CacheLookup>): Promise<CacheLookup> {
    let result: CacheLookup;
    try {
      result = await answer();
    } catch (err) {
      result = { kind: 'miss', reason: `cache unusable: ${(err as Error).message}` };
    }
    if (result.kind === 'miss') log.debug('cache miss', { user, reason: result.reason });
    return result;
  }

  private async lookupInner(user: string, fd: number, stamp: SpoolStamp): Promise<CacheLookup> {
    let raw: Raw;
    try {
      raw = await this.load(user);
    } catch (err) {
      if (err instanceof Invalid) return { kind: 'miss', reason: err.message };
      const code = (err as NodeJS.ErrnoException).code;
      return { kind: 'miss', reason: code === 'ENOENT' ? 'no cache file' : `cache unreadable: ${code ?? (err as Error).message}` };
    }
    return this.judge(raw, fd, stamp);
  }

  /** What a cache (a file's parse, or a store not written yet) says about the spool as it is now. */
  private async judge(raw: Raw, fd: number, stamp: SpoolStamp): Promise<CacheLookup> {
    const c = raw.stamp;
    if (c.dev !== stamp.dev || c.ino !== stamp.ino) return { kind: 'miss', reason: 'spool is another file (dev/ino changed)' };
    if (stamp.size < c.size) return { kind: 'miss', reason: 'spool shrank' };
    const sameTimes = c.mtimeNs === stamp.mtimeNs && c.ctimeNs === stamp.ctimeNs;
    if (stamp.size === c.size && !sameTimes) return { kind: 'miss', reason: 'spool rewritten (same size, new mtime/ctime)' };
    if (isExactHit(c, raw.scanEnd, stamp)) {
      if (raw.racy) return { kind: 'miss', reason: 'racy cache: spool changed within the timestamp resolution of the store' };
      return { kind: 'hit', scan: { ...raw.scan, messages: raw.scan.messages.slice() } };
    }
    // The spool holds bytes past scanEnd: check the scanned prefix is untouched.
    const check = await verifyPrefix(fd, raw.scanEnd);
    if (!check.fingerprint.equals(raw.fingerprint)) return { kind: 'miss', reason: 'bytes before scanEnd changed' };
    if (!check.fromAtEnd) return { kind: 'miss', reason: 'no From_ line after an empty line at scanEnd' };
    return { kind: 'tail', prefix: { ...raw.scan, messages: raw.scan.messages.slice(), bytesRead: check.bytesRead } };
  }

  /**
   * Call while still holding the spool lock (see "Racy stamps" above). Pass `fingerprint`
   * (from cacheFingerprint) when the spool must not be read now — after a rewrite whose atime
   * was just restored, a read would set it again.
   */
  async store(user: string, fd: number, stamp: SpoolStamp, scan: ScanResult, fingerprint?: Buffer): Promise<void> {
    await this.replacePending(user);
    await this.write(user, fd, stamp, scan, fingerprint, null);
  }

  /** Before a new store for `user`: drop a background store not begun yet, or wait for one under way. */
  private async replacePending(user: string): Promise<void> {
    const before = this.writing.get(user);
    if (before && !before.started) before.supersede();
    else await before?.done;
  }

  /**
   * store() for a login that must not wait for our own file. What needs the spool lock happens
   * now, before this resolves: reading the fingerprint and settling the stamp (with a probe file
   * of its own, created and removed here: after the unlock a probe would prove nothing).
   * Serializing, validating, writing, syncing and renaming the file (tens of ms for
   * 50,000 messages) happen afterwards, while the session goes on; the spool is not read again.
   * Until it is written, a lookup for this user in this process with the same stamp is
   * answered from memory (what the file will say), any other lookup or store waits for it; a
   * failed write is logged, like a failed store(). `fingerprint` as for store(). The write is
   * tracked by afterReply (background.ts), so a draining server waits for it.
   * `startAfter`: the write (whose serializing and validating alone take ~20 ms of CPU for 50,000
   * messages, on the thread that answers) starts only once it resolves (a login passes its
   * reply going out: store.ts); a later store for the same user before then replaces it.
   */
  async storeInBackground(user: string, fd: number, stamp: SpoolStamp, scan: ScanResult, fingerprint?: Buffer, startAfter?: Promise<void>): Promise<void> {
    await this.replacePending(user);
    fingerprint ??= (await fingerprintOf(fd, scan.scanEnd)).fingerprint;
    const racy = stamp.size === 0n && scan.scanEnd === 0 ? false : await this.settleWithProbe(stamp);
    const fp = fingerprint;
    const dropped = gate();
    let superseded = false;
    const supersede = (): void => {
      superseded = true;
      dropped.open();
    };
    const entry: Writing = { stamp, scan, racy, fingerprint: fp, started: startAfter === undefined, supersede, done: Promise.resolve() };
    const run = (): Promise<void> => {
      if (superseded) return Promise.resolve();
      entry.started = true;
      return this.write(user, -1, stamp, scan, fp, racy);
    };
    // A superseded store ends at once (a draining server waits for every job), not at its gate.
    const job: Promise<void> = afterReply((startAfter ? Promise.race([startAfter, dropped.opened]).then(run) : run())
      .catch((err: Error) => void log.warn('cache not written', { user, error: err.message }))
      .finally(() => {
        if (this.writing.get(user)?.done === job) this.writing.delete(user);
      }));
    entry.done = job;
    this.writing.set(user, entry);
  }

  /** settleStamp with a fresh probe file in the cache directory (none needed when the spool
   *  last changed RACY_MS ago or more: the wall-clock rule settles that at once). */
  private async settleWithProbe(stamp: SpoolStamp): Promise<boolean> {
    if (Number(stamp.ctimeNs / 1_000_000n) + RACY_MS < Date.now()) return false;
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const { path: probePath, handle: probe } = await createTemp(this.dir, 'probe');
    try {
      return await settleStamp(probe, stamp.ctimeNs);
    } finally {
      await probe.close();
      await fsp.unlink(probePath).catch(() => undefined);
    }
  }

  /** store()'s work; `settled` is the racy verdict when the caller already settled the stamp
   *  under the spool lock (null: settle here, while the caller still holds it). */
  private async write(user: string, fd: number, stamp: SpoolStamp, scan: ScanResult, fingerprint: Buffer | undefined, settled: boolean | null): Promise<void> {
    const settle = async (probe: fsp.FileHandle | null): Promise<boolean> => settled ?? (await settleStamp(probe, stamp.ctimeNs));
    const file = this.path(user);
    if (!Number.isSafeInteger(scan.scanEnd) || scan.scanEnd < 0 || BigInt(scan.scanEnd) > stamp.size) {
      throw new Error('scanEnd not within the spool size');
    }
    if (stamp.size === 0n && scan.scanEnd === 0) {
      // An empty spool: a scan of it costs nothing, so there is nothing worth keeping — and no
      // racy window to wait out (the usual case right after a delete-all truncated the spool).
      await this.remove(user);
      return;
    }
    fingerprint ??= (await fingerprintOf(fd, scan.scanEnd)).fingerprint;
    // Never write what we would refuse to read: an inconsistent scan is not cached.
    let buf: Buffer;
    let raw: Raw;
    try {
      buf = serialize(stamp, scan, fingerprint, this.tag, false);
      raw = parse(buf, this.tag, false); // what a lookup would refuse, unbuilt: the memo keeps scan.messages
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      log.warn('scan not cached: inconsistent', { user, reason: err.message });
      await this.remove(user);
      await settle(null); // the caller's stamp must still settle (see "Racy stamps")
      return;
    }
    this.forget(user);
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(file, {
        ...LOCK_OPTIONS,
        onCompromised: (err: Error) => log.warn('cache lock compromised', { user, error: err.message }),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOCKED') {
        log.debug('cache store skipped: another writer holds the lock', { user });
        await settle(null); // the caller's stamp must still settle (see "Racy stamps")
        return;
      }
      throw err;
    }
    try {
      await writeAtomically(this.dir, file, async (tmp) => {
        // The temp file's own timestamps are the clock probe (see "Racy stamps").
        if (await settle(tmp)) {
          markRacy(buf);
          raw = { ...raw, racy: true };
        }
        return buf;
      });
      // The next session in this process (the "second look" of a check-mail client) needs no
      // re-read of what we just wrote. Safe even if another writer replaced the file meanwhile:
      // a parse is only ever used for the spool stamp it records, which lookup() compares.
      const st = await fsp.stat(file, { bigint: true });
      // Keep the caller's message objects (equal to the parse, which validated them): sessions
      // that memoize per-scan work by object identity then find it already done.
      const kept: Raw = { ...raw, scan: { ...raw.scan, messages: scan.messages.slice() } };
      this.remember(user, { fileKey: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`, raw: kept });
    } finally {
      await release().catch((err: Error) => log.warn('cache unlock failed', { user, error: err.message }));
    }
  }

  /** Reads and validates the user's cache file, or reuses the parse of that very file. Reads
   *  our own file by path, refusing symlinks, non-files and absurd sizes. */
  private async load(user: string): Promise<Raw> {
    const h = await fsp.open(this.path(user), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const st = await h.stat({ bigint: true });
      if (!st.isFile()) throw new Invalid('cache is not a regular file');
      if (st.size > BigInt(MAX_CACHE_BYTES)) throw new Invalid('cache file too large');
      const fileKey = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
      const memo = this.memo.get(user);
      this.forget(user);
      if (memo && memo.fileKey === fileKey) {
        this.remember(user, memo);
        return memo.raw;
      }
      const size = Number(st.size);
      const buf = Buffer.allocUnsafeSlow(size); // own ArrayBuffer at offset 0 (aligned), no zero-fill
      let got = 0;
      while (got < size) {
        const { bytesRead } = await h.read(buf, got, size - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const raw = parse(buf.subarray(0, got), this.tag);
      // A file changed within a timestamp tick could change again unseen: don't memoize it.
      if (BigInt(Date.now() - RACY_MS) * 1_000_000n > st.ctimeNs) this.remember(user, { fileKey, raw });
      return raw;
    } finally {
      await h.close();
    }
  }

  private remember(user: string, entry: { fileKey: string; raw: Raw }): void {
    const n = entry.raw.scan.messages.length;
    if (n > MEMO_MAX_MESSAGES) return;
    for (const [u, e] of this.memo) {
      if (this.memoMessages + n <= MEMO_MAX_MESSAGES) break;
      this.memo.delete(u);
      this.memoMessages -= e.raw.scan.messages.length;
    }
    this.memo.set(user, entry);
    this.memoMessages += n;
  }

  private forget(user: string): void {
    const e = this.memo.get(user);
    if (!e) return;
    this.memo.delete(user);
    this.memoMessages -= e.raw.scan.messages.length;
  }

  async remove(user: string): Promise<void> {
    this.forget(user);
    try {
      await fsp.unlink(this.path(user));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

/** Does a table stored for `stored` (scanned to scanEnd) describe the spool at `now` exactly? */
function isExactHit(stored: SpoolStamp, scanEnd: number, now: SpoolStamp): boolean {
  return stored.dev === now.dev && stored.ino === now.ino && stored.size === now.size
    && stored.mtimeNs === now.mtimeNs && stored.ctimeNs === now.ctimeNs && BigInt(scanEnd) === now.size;
}

/**
 * Waits until a change to the spool made from now on would get a later ctime than `ctimeNs`
 * (the caller holds the spool lock, so no such change can happen before). Returns true when
 * that could not be established: the cache is then flagged racy.
 *
 * The probe is our own temp file `probe`: kernel timestamps of every file come from one clock
 * (the coarse tick, or the multigrain floor of Linux ≥ 6.13, which never goes below a fine
 * stamp once handed out), so once the probe's ctime is past the spool's, any later write to the
 * spool is stamped later too. That takes one tick at most (≤ 10 ms), usually nothing, where a
 * fixed wait of RACY_MS would always cost ~20 ms right after a rewrite. A spool whose ctime is a
 * whole millisecond may live on a file system with coarse timestamps, where the probe proves
 * nothing: then the old rule, wait until RACY_MS have passed since its ctime, applies alone —
 * as it does with no probe (a store that writes no file) or a probe stamped by another clock.
 */
async function settleStamp(probe: fsp.FileHandle | null, ctimeNs: bigint): Promise<boolean> {
  let trustProbe = probe !== null && ctimeNs % 1_000_000n !== 0n;
  const deadlineMs = Number(ctimeNs / 1_000_000n) + RACY_MS;
  for (let first = true; ; first = false) {
    if (trustProbe) {
      if (!first) await probe!.utimes(new Date(), new Date());
      const probeNs = (await probe!.stat({ bigint: true })).ctimeNs;
      // The kernel's file clock lags the wall clock, never leads it: a probe stamped ahead of
      // it comes from another clock (a state directory on NFS) and proves nothing here.
      if (probeNs > BigInt(Date.now() + 1) * 1_000_000n) trustProbe = false;
      else if (probeNs > ctimeNs) return false;
    }
    const aheadMs = deadlineMs - Date.now();
    if (aheadMs <= 0) return false;
    if (aheadMs > RACY_MS) return true; // a ctime in the future: clock skew, NFS
    await new Promise((resolve) => setTimeout(resolve, trustProbe ? 1 : aheadMs + 1));
  }
}

/** Sets the racy flag of a serialized cache and its checksum. */
function markRacy(buf: Buffer): void {
  buf[108] = FLAG_RACY;
  buf.writeUInt32LE(checksum(buf), CRC_OFFSET);
}

/** A new private file `.NAME.PID.RANDOM.tmp` in `dir` (never an existing file or a symlink). */
async function createTemp(dir: string, name: string): Promise<{ path: string; handle: fsp.FileHandle }> {
  const file = path.join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fsp.open(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  return { path: file, handle };
}

/** temp file in the same directory + write + fsync + rename + fsync of the directory. `content`
 *  runs once the temp file exists and returns what to write. */
async function writeAtomically(dir: string, file: string, content: (tmp: fsp.FileHandle) => Promise<Buffer>): Promise<void> {
  const { path: tmp, handle: h } = await createTemp(dir, path.basename(file));
  try {
    try {
      await h.writeFile(await content(h));
      await h.sync();
    } finally {
      await h.close();
    }
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.unlink(tmp).catch(() => undefined);
    throw err;
  }
  const d = await fsp.open(dir, fs.constants.O_RDONLY);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Positional read of [pos, pos + len) through the caller's descriptor; short at EOF. */
function pread(fd: number, pos: number, len: number): Promise<Buffer> {
  const buf = Buffer.alloc(len);
  return new Promise((resolve, reject) => {
    let got = 0;
    const step = (): void => {
      fs.read(fd, buf, got, len - got, pos + got, (err, n) => {
        if (err) return reject(err);
        got += n;
        if (n === 0 || got === len) return resolve(buf.subarray(0, got));
        step();
      });
    };
    if (len === 0) resolve(buf);
    else step();
  });
}

function fingerprintFrom(head: Buffer, tail: Buffer): Buffer {
  return createHash('sha1').update(head).update(tail).digest();
}

/** The prefix fingerprint store() records, computed ahead of time. */
export async function cacheFingerprint(fd: number, scanEnd: number): Promise<Buffer> {
  return (await fingerprintOf(fd, scanEnd)).fingerprint;
}

async function fingerprintOf(fd: number, scanEnd: number): Promise<{ fingerprint: Buffer; bytesRead: number }> {
  const w = Math.min(FINGERPRINT_WINDOW, scanEnd);
  const head = await pread(fd, 0, w);
  const tail = scanEnd <= FINGERPRINT_WINDOW ? head : await pread(fd, scanEnd - w, w);
  return { fingerprint: fingerprintFrom(head, tail), bytesRead: head.length + (tail === head ? 0 : tail.length) };
}

/** Fingerprint of the prefix, plus: does a From_ line start at scanEnd, after an empty line? */
async function verifyPrefix(fd: number, scanEnd: number): Promise<{ fingerprint: Buffer; fromAtEnd: boolean; bytesRead: number }> {
  const w = Math.min(FINGERPRINT_WINDOW, scanEnd);
  const around = await pread(fd, scanEnd - w, w + 5);
  const tail = around.subarray(0, Math.min(w, around.length));
  const head = scanEnd <= FINGERPRINT_WINDOW ? tail : await pread(fd, 0, w);
  const next = around.subarray(w);
  const before = tail.toString('latin1', Math.max(0, tail.length - 3));
  // Offset 0, or an empty line ("\n\n", or "\n\r\n" in a CRLF spool) ends the prefix.
  const emptyLineBefore = scanEnd === 0 || before.endsWith('\n\n') || before === '\n\r\n';
  return {
    fingerprint: fingerprintFrom(head, tail),
    fromAtEnd: tail.length === w && emptyLineBefore && next.toString('latin1') === 'From ',
    bytesRead: around.length + (head === tail ? 0 : head.length),
  };
}

/** Offsets of the sections of a file holding n messages. */
function layout(n: number): { f64: number; u32: number; u16: number; u8: number; strings: number } {
  const f64 = HEADER_SIZE;
  const u32 = f64 + n * F64_FIELDS * 8;
  const u16 = u32 + n * U32_FIELDS * 4;
  const u8 = u16 + n * 2;
  return { f64, u32, u16, u8, strings: u8 + n };
}

/** A value for a u32 column; anything that does not fit makes the scan uncacheable. */
function u32(x: number, i: number): number {
  if (!(isCount(x) && x < NONE)) throw invalidRecord(i, 'value does not fit the cache format');
  return x;
}

function serialize(stamp: SpoolStamp, scan: ScanResult, fingerprint: Buffer, tag: string, racy: boolean): Buffer {
  const msgs = scan.messages;
  const n = msgs.length;
  if (n > MAX_MESSAGES) throw new Invalid('too many messages');
  const uidls = msgs.map((m) => m.uidlBase).join('');
  const statuses = msgs.map((m) => m.status).join('');
  const at = layout(n);
  const total = at.strings + uidls.length + 2 * statuses.length + 2 * tag.length;
  const buf = Buffer.alloc(total); // zeroed; >= 128 bytes, so never from the shared pool...
  const aligned = buf.byteOffset % 8 === 0 ? buf : Buffer.from(new ArrayBuffer(total)); // ...but be sure
  aligned.write(MAGIC, 0, 'latin1');
  aligned[15] = HOST_ORDER;
  aligned.writeUInt32LE(FORMAT_VERSION, 16);
  aligned.writeUInt32LE(HEADER_SIZE, 20);
  aligned.writeBigUInt64LE(stamp.dev, 24);
  aligned.writeBigUInt64LE(stamp.ino, 32);
  aligned.writeBigUInt64LE(stamp.size, 40);
  aligned.writeBigInt64LE(stamp.mtimeNs, 48);
  aligned.writeBigInt64LE(stamp.ctimeNs, 56);
  aligned.writeBigUInt64LE(BigInt(scan.scanEnd), 64);
  aligned.writeUInt32LE(n, 72);
  aligned.writeUInt32LE(uidls.length, 76);
  aligned.writeUInt32LE(statuses.length, 80);
  aligned.writeUInt32LE(tag.length, 84);
  fingerprint.copy(aligned, 88);
  aligned[108] = racy ? FLAG_RACY : 0;
  const f = new Float64Array(aligned.buffer, aligned.byteOffset + at.f64, n * F64_FIELDS);
  const w = new Uint32Array(aligned.buffer, aligned.byteOffset + at.u32, n * U32_FIELDS);
  const sl = new Uint16Array(aligned.buffer, aligned.byteOffset + at.u16, n);
  const ul = new Uint8Array(aligned.buffer, aligned.byteOffset + at.u8, n);
  for (let i = 0; i < n; i++) {
    const m = msgs[i]!;
    f[i * 3] = m.fromOffset;
    f[i * 3 + 1] = m.end;
    f[i * 3 + 2] = m.size;
    const k = i * U32_FIELDS;
    w[k] = u32(m.start - m.fromOffset, i);
    w[k + 1] = u32(m.bodyStart - m.start, i);
    w[k + 2] = u32(m.bodyLines, i);
    w[k + 3] = m.statusOffset === -1 ? NONE : u32(m.statusOffset - m.start, i);
    w[k + 4] = m.statusLength === -1 ? NONE : u32(m.statusLength, i);
    w[k + 5] = u32(m.sum, i);
    if (m.status.length > 0xffff || m.uidlBase.length > UIDL_MAX) throw invalidRecord(i, 'string too long for the cache format');
    sl[i] = m.status.length;
    ul[i] = m.uidlBase.length;
  }
  let off = at.strings;
  off += aligned.write(uidls, off, 'latin1');
  off += aligned.write(statuses, off, 'utf16le');
  aligned.write(tag, off, 'utf16le');
  aligned.writeUInt32LE(checksum(aligned), CRC_OFFSET);
  return aligned;
}

function checksum(buf: Buffer): number {
  return crc32(buf.subarray(HEADER_SIZE), crc32(buf.subarray(0, CRC_OFFSET)));
}

/** A non-negative integer below 2^53 (also false for NaN and infinities). */
function isCount(x: number): boolean {
  return x >= 0 && x <= Number.MAX_SAFE_INTEGER && Math.floor(x) === x;
}

function invalidRecord(i: number, what: string): Invalid {
  return new Invalid(`message ${i + 1}: ${what}`);
}

interface Columns {
  readonly f: Float64Array;
  readonly w: Uint32Array;
  readonly sl: Uint16Array;
  readonly ul: Uint8Array;
}

/** Validates every record against its neighbours and builds the messages (the hot loop of a hit;
 *  `build` false: validate only, as a store does before writing what it already holds).
 *  u32/u16/u8 columns are integers by construction; the float64 ones are checked. */
function decodeRecords(c: Columns, n: number, scanEnd: number, uidls: string, statuses: string, build = true): ScannedMessage[] {
  const { f, w, sl, ul } = c;
  const messages: ScannedMessage[] = [];
  let prevEnd = 0;
  let u = 0;
  let s = 0;
  for (let i = 0; i < n; i++) {
    const fromOffset = f[i * 3]!;
    const end = f[i * 3 + 1]!;
    const size = f[i * 3 + 2]!;
    const k = i * U32_FIELDS;
    const start = fromOffset + w[k]!;
    const bodyStart = start + w[k + 1]!;
    const bodyLines = w[k + 2]!;
    const statusRel = w[k + 3]!;
    const statusLen32 = w[k + 4]!;
    const sum = w[k + 5]!;
    const statusLen = sl[i]!;
    const uidlLen = ul[i]!;
    if (!(isCount(fromOffset) && isCount(end) && isCount(size))) throw invalidRecord(i, 'offset not an integer');
    if (!(fromOffset >= prevEnd && fromOffset < start && start <= bodyStart && bodyStart <= end && end <= scanEnd)) {
      throw invalidRecord(i, 'offsets out of order');
    }
    const len = end - start;
    if (!(size >= len && size <= 2 * len + 2)) throw invalidRecord(i, 'bad size');
    if (bodyLines > end - bodyStart + 1) throw invalidRecord(i, 'bad line count');
    if (!(uidlLen >= 1 && uidlLen <= UIDL_MAX && u + uidlLen <= uidls.length)) throw invalidRecord(i, 'bad UIDL length');
    if (s + statusLen > statuses.length) throw invalidRecord(i, 'bad status length');
    let statusOffset = -1;
    let statusLength = statusLen32 === NONE ? -1 : statusLen32;
    if (statusRel === NONE) {
      if (statusLength > 0 || statusLen !== 0) throw invalidRecord(i, 'status without a Status header');
    } else {
      statusOffset = start + statusRel;
      if (!(statusLength > 0 && statusOffset + statusLength <= bodyStart && statusLen <= statusLength)) {
        throw invalidRecord(i, 'Status header out of range');
      }
    }
    if (build) {
      const uidlBase = uidls.slice(u, u + uidlLen);
      const status = statusLen === 0 ? '' : statuses.slice(s, s + statusLen);
      messages.push(new Scanned(fromOffset, start, bodyStart, end, size, bodyLines, uidlBase, status, statusOffset, statusLength, sum));
    }
    u += uidlLen;
    s += statusLen;
    prevEnd = end;
  }
  if (u !== uidls.length || s !== statuses.length) throw new Invalid('string table length mismatch');
  return messages;
}

/** Decodes and validates a cache file; throws Invalid with the reason on any doubt. `build`
 *  false leaves the scan's messages empty (validation only). */
function parse(buf: Buffer, tag: string, build = true): Raw {
  if (buf.length < HEADER_SIZE) throw new Invalid('cache file truncated');
  if (buf.toString('latin1', 0, MAGIC.length) !== MAGIC) throw new Invalid('bad magic');
  if (buf.readUInt32LE(16) !== FORMAT_VERSION) throw new Invalid(`cache format version ${buf.readUInt32LE(16)}, want ${FORMAT_VERSION}`);
  if (buf[15] !== HOST_ORDER) throw new Invalid('cache written with another byte order');
  if (buf.readUInt32LE(20) !== HEADER_SIZE) throw new Invalid('bad header size');
  const n = buf.readUInt32LE(72);
  const uidlBytes = buf.readUInt32LE(76);
  const statusUnits = buf.readUInt32LE(80);
  const tagUnits = buf.readUInt32LE(84);
  if (n > MAX_MESSAGES) throw new Invalid('absurd message count');
  const at = layout(n);
  const expected = at.strings + uidlBytes + 2 * statusUnits + 2 * tagUnits;
  if (buf.length !== expected) throw new Invalid(`cache file length ${buf.length}, header says ${expected}`);
  if (checksum(buf) !== buf.readUInt32LE(CRC_OFFSET)) throw new Invalid('bad checksum');

  const stamp: SpoolStamp = {
    dev: buf.readBigUInt64LE(24),
    ino: buf.readBigUInt64LE(32),
    size: buf.readBigUInt64LE(40),
    mtimeNs: buf.readBigInt64LE(48),
    ctimeNs: buf.readBigInt64LE(56),
  };
  const flags = buf[108]!;
  if ((flags & ~FLAG_RACY) !== 0) throw new Invalid('unknown flags');
  const scanEnd64 = buf.readBigUInt64LE(64);
  if (scanEnd64 > stamp.size || scanEnd64 > BigInt(Number.MAX_SAFE_INTEGER)) throw new Invalid('scanEnd out of range');
  const scanEnd = Number(scanEnd64);
  let off = at.strings;
  const uidls = buf.toString('latin1', off, off + uidlBytes);
  off += uidlBytes;
  if (!UIDL_SECTION_RE.test(uidls)) throw new Invalid('UIDL outside 0x21-0x7E');
  const statuses = buf.toString('utf16le', off, off + 2 * statusUnits);
  off += 2 * statusUnits;
  if (buf.toString('utf16le', off, off + 2 * tagUnits) !== tag) throw new Invalid('cache written with other scanner settings');

  // Typed-array views need aligned offsets; load() and serialize allocate aligned.
  const a = buf.byteOffset % 8 === 0 ? buf : Buffer.from(new Uint8Array(buf).buffer);
  const columns: Columns = {
    f: new Float64Array(a.buffer, a.byteOffset + at.f64, n * F64_FIELDS),
    w: new Uint32Array(a.buffer, a.byteOffset + at.u32, n * U32_FIELDS),
    sl: new Uint16Array(a.buffer, a.byteOffset + at.u16, n),
    ul: new Uint8Array(a.buffer, a.byteOffset + at.u8, n),
  };
  const messages = decodeRecords(columns, n, scanEnd, uidls, statuses, build);
  return { stamp, racy: flags === FLAG_RACY, scanEnd, fingerprint: Buffer.from(buf.subarray(88, 108)), scan: { messages, scanEnd, bytesRead: 0 } };
}

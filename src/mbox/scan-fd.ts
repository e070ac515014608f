/**
 * scanFd: the scanner driven by positional reads of an open spool, read-ahead overlapping the
 * scan, reading straight into the body kernel's memory. Large spools are cut at a From_ line
 * near the middle (split.ts) and the far part is scanned by the worker thread meanwhile; one
 * that cannot be cut has its message sums computed by the worker instead.
 */
import * as fs from 'node:fs';
import { PopspoolError } from '../errors.js';
import { scanInWorker, SumJob } from './scan-worker.js';
import { MboxScanner, SCAN_CHUNK } from './scanner.js';
import { findSplit } from './split.js';
import type { ScannedMessage, ScanOptions, ScanResult } from './types.js';

function readAt(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
  });
}

const PAGE = 4096;

/**
 * Where in a read buffer of `size` bytes the read at file offset `pos` goes, and how much it
 * reads: at `pos` mod 4096, so the bytes keep their place within a page, and no further than the
 * buffer's end (so the next read starts on a page boundary). The kernel copies a page-cache page
 * into the buffer with `rep movsb`, which on this machine's AMD EPYC (FSRM) runs ~6x slower
 * when the destination lies a few bytes past the source modulo 4096 (1, 8 and 16 measured;
 * 32 and more at full speed: the 865 MB spool read in 80 ms against 470 ms, docs/performance.md).
 * With every read at the same offset within a page as the file, that distance is the buffer's
 * own (IO_AT's 320 in the kernel memory), never a split point's or a tail's accident. `size`
 * must be a multiple of 4096, or the whole range (then one read from 0).
 */
export function readSlot(pos: number, end: number, size: number): [at: number, len: number] {
  const at = size % PAGE === 0 ? pos % PAGE : 0;
  return [at, Math.min(end - pos, size - at)];
}

/**
 * Scans of at least this many bytes use the worker thread (scan-worker.ts): split in two, or
 * failing that with the message sums offloaded; below it, the worker's round trip costs more than it
 * saves. Measured on 2 cores from page cache (scan-bench --offload-compare): 18 MB / 1k
 * messages 26 → 17 ms, 8 MB about even, 4 MB and less slower; 865 MB / 50k messages 1045 ms all
 * inline, 786 ms with only the checksums (then crc32) offloaded, less split (docs/benchmarks.md). The worker reads the same
 * descriptor, which is sound because every scan of a spool runs under its lock.
 */
export const CRC_OFFLOAD_MIN = 16 * 1024 * 1024;

/** Where the cut is aimed, as a share of the range scanned here. Half: this thread unpacks the
 *  worker's messages after its part, and the worker packs them, which about cancels out (the
 *  cache file is written after the reply now). Interleaved on the 865 MB spool, 9 runs each:
 *  0.45 → 493 ms, 0.5 → 473 ms, 0.55 → 478 ms median. */
const NEAR_SHARE = 0.5;

/** Ranges posted to the sum job at a time: one message per chunk would cost a postMessage
 *  (tens of µs or more on a busy machine) per megabyte. */
const CRC_POST_BATCH = 512;

/**
 * Scan [start, end) of an open spool with positional reads (two reused buffers, so the next
 * read overlaps the scan of the current chunk). Never opens by path, never closes `fd`.
 * `start` must be 0 or the offset of a From_ line; scanEnd is `end`. `offloadMin` (tests,
 * benchmarks) overrides CRC_OFFLOAD_MIN; Infinity keeps the whole scan on this thread. Split or
 * not, the result is identical (split.ts says why; the tests compare). `syncReads` (the scan
 * worker, never the main thread) reads with blocking calls, SYNC_CHUNK at a time.
 */
export async function scanFd(fd: number, start: number, end: number, opts: ScanOptions, offloadMin = CRC_OFFLOAD_MIN, syncReads = false): Promise<ScanResult> {
  if (end - start < offloadMin) return scanRange(fd, start, end, opts, false, syncReads);
  const split = await findSplit(fd, start, start + Math.floor((end - start) * NEAR_SHARE), end, opts.strictFrom);
  if (split < 0) return scanRange(fd, start, end, opts, true, false);
  const far: ScannedMessage[] = [];
  // Settled at once (never an unhandled rejection while this thread scans its part): a worker
  // that fails or dies is answered below by scanning its part here.
  const farScan = scanInWorker(fd, split, end, opts, far).then((n) => n, () => null);
  let near: ScanResult;
  try {
    near = await scanRange(fd, start, split, opts, false, false);
  } catch (e) {
    await farScan; // nothing may still read the caller's descriptor once we return
    throw e;
  }
  let farRead = await farScan;
  if (farRead === null) {
    // The worker failed (or died): scan that part here; a real problem with the spool shows again.
    const r = await scanRange(fd, split, end, opts, false, false);
    far.length = 0;
    for (const m of r.messages) far.push(m);
    farRead = r.bytesRead;
  }
  const messages = near.messages;
  for (const m of far) messages.push(m);
  return { messages, scanEnd: end, bytesRead: near.bytesRead + farRead };
}

/**
 * Read size of a scan with synchronous reads (the scan worker's). Small enough that the bytes a
 * read copies are still in this core's cache when the kernel and the sums go over them, as they
 * are not when another thread (the thread pool) made the copy. scan-bench on the 865 MB spool,
 * alternating with 4 MiB reads through the thread pool in the worker, 15 runs each: process CPU
 * 427 → 399 and 428 → 406 ms median; 1 MiB reads 382 → 417 and 467 → 452 ms.
 */
export const SYNC_CHUNK = 256 * 1024;

/** One scanner over [start, end), message sums inline or (offload) in the worker. */
async function scanRange(fd: number, start: number, end: number, opts: ScanOptions, offloadSums: boolean, syncReads: boolean): Promise<ScanResult> {
  return syncReads && !offloadSums ? scanRangeSync(fd, start, end, opts) : scanRangeAsync(fd, start, end, opts, offloadSums);
}

/**
 * scanRange with blocking reads, for a thread that has nothing else to do meanwhile (the scan
 * worker): no thread-pool hop per read, and the bytes are scanned where they were copied.
 * Never on the main thread, whose event loop a slow disk would stall. (The worker's other jobs,
 * another session's sums, wait for the scan as they waited for its CPU before.) `framed`, if
 * given, sees the messages framed so far after each read (the array finish() will return).
 */
export function scanRangeSync(fd: number, start: number, end: number, opts: ScanOptions, framed?: (messages: readonly ScannedMessage[]) => void): ScanResult {
  const scanner = new MboxScanner({ ...opts, baseOffset: start });
  const size = Math.min(SYNC_CHUNK, end - start);
  const buf = (size >= 4096 ? scanner.ioBuffersFromKernel(1, size)?.[0] : undefined) ?? Buffer.allocUnsafe(size);
  let pos = start;
  while (pos < end) {
    const [at, len] = readSlot(pos, end, size);
    const got = fs.readSync(fd, buf, at, len, pos);
    if (got === 0) throw new PopspoolError('SYS_TEMP', `spool shrank during scan: expected ${end} bytes, got ${pos}`);
    pos += got;
    scanner.push(buf.subarray(at, at + got));
    framed?.(scanner.framed());
  }
  const r = scanner.finish();
  return { messages: r.messages, scanEnd: end, bytesRead: r.bytesRead };
}

async function scanRangeAsync(fd: number, start: number, end: number, opts: ScanOptions, offloadSums: boolean): Promise<ScanResult> {
  const offload = offloadSums ? new SumJob(fd) : null;
  const scanner = new MboxScanner({ ...opts, baseOffset: start, sum: offload === null });
  const size = Math.min(SCAN_CHUNK, end - start);
  const bufs = (size >= 4096 ? scanner.ioBuffersFromKernel(2, size) : null) ?? [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
  let posted = 0;
  const postFramed = (all: boolean): void => {
    const ms = scanner.framed();
    if (offload === null || ms.length === posted || (!all && ms.length - posted < CRC_POST_BATCH)) return;
    const ranges = new Float64Array(2 * (ms.length - posted));
    for (let k = posted; k < ms.length; k++) {
      ranges[2 * (k - posted)] = ms[k]!.fromOffset;
      ranges[2 * (k - posted) + 1] = ms[k]!.end;
    }
    offload.post(ranges);
    posted = ms.length;
  };
  let pos = start;
  let which = 0;
  let [at, len] = readSlot(pos, end, size);
  let pending: Promise<number> | null = pos < end ? readAt(fd, bufs[0]!, at, len, pos) : null;
  try {
    while (pending !== null) {
      const got = await pending;
      if (got === 0) {
        pending = null;
        throw new PopspoolError('SYS_TEMP', `spool shrank during scan: expected ${end} bytes, got ${pos}`);
      }
      const chunk = bufs[which]!.subarray(at, at + got);
      pos += got;
      which ^= 1;
      [at, len] = readSlot(pos, end, size);
      pending = pos < end ? readAt(fd, bufs[which]!, at, len, pos) : null;
      scanner.push(chunk);
      postFramed(false);
    }
    const r = scanner.finish();
    postFramed(true);
    if (offload !== null) {
      let sums: Uint32Array;
      try {
        sums = await offload.finish();
      } catch (e) {
        throw new PopspoolError('SYS_TEMP', `checksums of the scanned spool failed: ${e instanceof Error ? e.message : String(e)}`);
      }
      const ms = r.messages;
      if (sums.length !== ms.length) throw new PopspoolError('SYS_TEMP', 'scan worker lost messages');
      for (let k = 0; k < ms.length; k++) (ms[k] as { sum: number }).sum = sums[k]!;
    }
    return { messages: r.messages, scanEnd: end, bytesRead: r.bytesRead };
  } catch (e) {
    // Nothing may still read the caller's descriptor once we return.
    await Promise.all([offload?.cancel(), pending?.catch(() => 0)]);
    throw e;
  }
}

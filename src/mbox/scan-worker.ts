/**
 * The scan worker: one shared worker thread for large scans. Two kinds of job: (1) scan a far
 * part of a spool (from a From_ line found by split.ts to the end) with its own scanner while
 * the main thread scans the near part — both cores frame and checksum; (2) when a spool cannot be
 * split (one huge message), checksum (msum) the message ranges the main thread frames, reading the same
 * bytes from the same descriptor (page cache). The worker side and the client side live in
 * this one file (the worker runs it with isMainThread false).
 */
import * as fs from 'node:fs';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { createMessageSum, type MessageSum } from './msum.js';
import { SCAN_CHUNK } from './scanner.js';
import { Scanned, type ScannedMessage, type ScanOptions } from './types.js';

/** Worker read size: as the scanner's. */
const READ_CHUNK = SCAN_CHUNK;

type ToWorker =
  | { type: 'start'; job: number; fd: number }
  | { type: 'ranges'; job: number; ranges: Float64Array } // [from, end) pairs, ascending
  | { type: 'end'; job: number }
  | { type: 'cancel'; job: number }
  | { type: 'warm'; job: number }
  | { type: 'scan'; job: number; fd: number; start: number; end: number; opts: ScanOptions };
/** A scan's messages packed for the trip: NUMS numbers per message, and the two strings. */
interface PackedScan {
  nums: Float64Array;
  uidls: string[];
  statuses: string[];
  bytesRead: number;
}
/** A job's one reply; a scan job may send `part`s (messages framed so far, in order) before it. */
type FromWorker = { job: number; sums?: Uint32Array; scan?: PackedScan; part?: PackedScan; error?: string };

const NUMS = 9;

/**
 * Messages a scan job sends as a `part` once it has framed this many more: the main thread
 * unpacks them while it still scans its own part, where it unpacked them all after it (5–28 ms
 * of a cold 50k login, timed inside the server, when the worker's part came last).
 */
const PART_MESSAGES = 2048;

/** Messages [from, ms.length) packed for the trip. */
function pack(ms: readonly ScannedMessage[], from: number, bytesRead: number): PackedScan {
  const n = ms.length - from;
  const nums = new Float64Array(NUMS * n);
  const uidls: string[] = new Array<string>(n);
  const statuses: string[] = new Array<string>(n);
  for (let k = 0; k < n; k++) {
    const m = ms[from + k]!;
    const o = NUMS * k;
    nums[o] = m.fromOffset;
    nums[o + 1] = m.start;
    nums[o + 2] = m.bodyStart;
    nums[o + 3] = m.end;
    nums[o + 4] = m.size;
    nums[o + 5] = m.bodyLines;
    nums[o + 6] = m.statusOffset;
    nums[o + 7] = m.statusLength;
    nums[o + 8] = m.sum;
    uidls[k] = m.uidlBase;
    statuses[k] = m.status;
  }
  return { nums, uidls, statuses, bytesRead };
}

/** Unpack onto `out`. */
function unpack(p: PackedScan, out: ScannedMessage[]): void {
  const { nums, uidls, statuses } = p;
  for (let k = 0; k < uidls.length; k++) {
    const o = NUMS * k;
    out.push(new Scanned(nums[o]!, nums[o + 1]!, nums[o + 2]!, nums[o + 3]!, nums[o + 4]!, nums[o + 5]!, uidls[k]!, statuses[k]!, nums[o + 6]!, nums[o + 7]!, nums[o + 8]!));
  }
}

// ------------------------------------------------------------------------------------------
// Worker side.
// ------------------------------------------------------------------------------------------
interface WorkerJob {
  fd: number;
  buf: Buffer;
  bufStart: number; // file offset of buf[0]
  bufEnd: number; // file offset after the valid bytes
  sums: number[];
  error: string | null;
}

function runWorker(port: NonNullable<typeof parentPort>): void {
  const jobs = new Map<number, WorkerJob>();
  let summer: MessageSum | undefined;
  const sumRange = (j: WorkerJob, from: number, end: number): number => {
    const sum = (summer ??= createMessageSum());
    sum.reset();
    let p = from;
    while (p < end) {
      if (p < j.bufStart || p >= j.bufEnd) {
        const got = fs.readSync(j.fd, j.buf, 0, j.buf.length, p);
        if (got === 0) throw new Error(`spool shrank during scan: no bytes at ${p}`);
        j.bufStart = p;
        j.bufEnd = p + got;
      }
      const to = Math.min(end, j.bufEnd);
      sum.update(j.buf, p - j.bufStart, to - j.bufStart);
      p = to;
    }
    return sum.digest();
  };
  port.on('message', (m: ToWorker) => {
    if (m.type === 'warm') {
      // Load the scanner and run it over a synthetic spool (warmup.ts) before a real scan comes.
      void import('./scan-fd.js')
        .then(({ SYNC_CHUNK }) => import('./warmup.js').then((w) => w.warmScanner(SYNC_CHUNK, false)))
        .catch(() => undefined); // a failed warm-up costs the first scan its speed, nothing else
      return;
    }
    if (m.type === 'scan') {
      let sent = 0;
      const send = (ms: readonly ScannedMessage[], last: boolean, bytesRead = 0): void => {
        const packed = pack(ms, sent, bytesRead);
        sent = ms.length;
        port.postMessage({ job: m.job, ...(last ? { scan: packed } : { part: packed }) } satisfies FromWorker, [packed.nums.buffer as ArrayBuffer]);
      };
      void import('./scan-fd.js') // here, not at the top: scan-fd.js imports this module (the client side)
        .then(({ scanRangeSync }) => scanRangeSync(m.fd, m.start, m.end, m.opts, (ms) => {
          if (ms.length - sent >= PART_MESSAGES) send(ms, false);
        }))
        .then(
          (r) => send(r.messages, true, r.bytesRead),
          (e: unknown) => port.postMessage({ job: m.job, error: e instanceof Error ? e.message : String(e) } satisfies FromWorker),
        );
      return;
    }
    if (m.type === 'start') {
      jobs.set(m.job, { fd: m.fd, buf: Buffer.allocUnsafe(READ_CHUNK), bufStart: 0, bufEnd: 0, sums: [], error: null });
      return;
    }
    const j = jobs.get(m.job);
    if (j === undefined) return;
    if (m.type === 'ranges') {
      if (j.error !== null) return;
      try {
        for (let k = 0; k < m.ranges.length; k += 2) j.sums.push(sumRange(j, m.ranges[k]!, m.ranges[k + 1]!));
      } catch (e) {
        j.error = e instanceof Error ? e.message : String(e);
      }
      return;
    }
    jobs.delete(m.job);
    const reply: FromWorker = m.type === 'end' && j.error === null ? { job: m.job, sums: Uint32Array.from(j.sums) } : { job: m.job, error: j.error ?? 'cancelled' };
    port.postMessage(reply);
  });
}

if (!isMainThread && parentPort !== null) runWorker(parentPort);

// ------------------------------------------------------------------------------------------
// Client side.
// ------------------------------------------------------------------------------------------
let worker: Worker | null = null;
let nextJob = 1;
/** Jobs waiting for a reply, per worker: a dying worker fails its own jobs, never its successor's. */
const jobsOf = new WeakMap<Worker, Map<number, (r: FromWorker) => void>>();

function getWorker(): Worker {
  if (worker === null) {
    const w = new Worker(new URL(import.meta.url));
    const jobs = new Map<number, (r: FromWorker) => void>();
    jobsOf.set(w, jobs);
    w.on('message', (r: FromWorker) => {
      const done = jobs.get(r.job);
      if (r.part === undefined) jobs.delete(r.job); // a scan job's parts come before its reply
      done?.(r);
    });
    // 'error' (an uncaught exception: the thread runs no more code) and then 'exit' both come;
    // only the first does anything, and only to this worker's jobs.
    const fail = (err: unknown): void => {
      if (worker === w) worker = null;
      for (const [job, done] of jobs) done({ job, error: `scan worker died: ${String(err)}` });
      jobs.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(`exit ${code}`));
    w.unref(); // never keeps the process alive (after the listeners: adding one refs the port again)
    worker = w;
  }
  return worker;
}

/** Registers a reply for `job` on `w` and keeps the process alive until it comes; `onPart`
 *  gets the parts that come before it. */
function expectReply(w: Worker, job: number, onPart?: (part: PackedScan) => void): Promise<FromWorker> {
  const jobs = jobsOf.get(w)!;
  const reply = new Promise<FromWorker>((resolve) =>
    jobs.set(job, (r) => {
      if (r.part === undefined) resolve(r);
      else onPart?.(r.part);
    }),
  );
  w.ref();
  return reply.finally(() => {
    if (jobs.size === 0) w.unref();
  });
}

/**
 * Stops the worker thread, if one runs; its jobs fail (their callers fall back to scanning on
 * this thread) and the next scan starts a new one. For tests, and for an orderly shutdown.
 */
export async function stopScanWorker(): Promise<void> {
  const w = worker;
  if (w !== null) await w.terminate();
}

/**
 * Start the worker thread and load its scanner now (a server calls this at startup), so the
 * first large scan does not also pay the thread's start-up (tens of ms). It never keeps the
 * process alive.
 */
export function prewarmScanWorker(): void {
  getWorker().postMessage({ type: 'warm', job: 0 } satisfies ToWorker);
}

/**
 * Scan [start, end) of `fd` in the worker (message sums inline there): `start` must be a From_ line's
 * offset. Appends the messages to `out`; rejects with the worker's error, and in every case
 * settles only once the worker no longer reads the descriptor.
 */
export async function scanInWorker(fd: number, start: number, end: number, opts: ScanOptions, out: ScannedMessage[]): Promise<number> {
  const job = nextJob++;
  const w = getWorker();
  const reply = expectReply(w, job, (part) => unpack(part, out));
  w.postMessage({ type: 'scan', job, fd, start, end, opts: { strictFrom: opts.strictFrom } } satisfies ToWorker);
  const r = await reply;
  if (r.scan === undefined) throw new Error(r.error ?? 'scan worker failed');
  unpack(r.scan, out);
  return r.scan.bytesRead;
}

/** One scan's sum job: post message ranges as they are framed, then collect their sums in order. */
export class SumJob {
  private readonly job = nextJob++;
  private readonly w = getWorker();
  private readonly reply: Promise<FromWorker>;

  constructor(fd: number) {
    this.reply = expectReply(this.w, this.job); // busy: keeps the thread alive until the reply
    this.w.postMessage({ type: 'start', job: this.job, fd } satisfies ToWorker);
  }

  /** Queue [from, end) pairs (ascending offsets, after any posted before). */
  post(ranges: Float64Array): void {
    if (ranges.length > 0) this.w.postMessage({ type: 'ranges', job: this.job, ranges } satisfies ToWorker, [ranges.buffer as ArrayBuffer]);
  }

  /** The sums of every posted range, in order; rejects with the worker's error. */
  async finish(): Promise<Uint32Array> {
    this.w.postMessage({ type: 'end', job: this.job } satisfies ToWorker);
    return this.settle();
  }

  /** Drop the job; resolves once the worker no longer reads the descriptor. */
  async cancel(): Promise<void> {
    this.w.postMessage({ type: 'cancel', job: this.job } satisfies ToWorker);
    await this.settle().catch(() => undefined);
  }

  private async settle(): Promise<Uint32Array> {
    const r = await this.reply;
    if (r.sums === undefined) throw new Error(r.error ?? 'scan worker failed');
    return r.sums;
  }
}

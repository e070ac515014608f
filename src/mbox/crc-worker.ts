/**
 * crc32 off the event loop for large scans: one shared worker thread that, while the main
 * thread frames a spool, reads the same byte ranges from the same descriptor (page cache) and
 * crc32s each message's [fromOffset, end). crc32 is about as costly as all the framing, so on
 * two cores this nearly halves a big scan's latency. The worker side and the client side live
 * in this one file (the worker runs it with isMainThread false).
 */
import * as fs from 'node:fs';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import * as zlib from 'node:zlib';

/** Worker read size: as the scanner's. */
const READ_CHUNK = 1 << 20;

type ToWorker =
  | { type: 'start'; job: number; fd: number }
  | { type: 'ranges'; job: number; ranges: Float64Array } // [from, end) pairs, ascending
  | { type: 'end'; job: number }
  | { type: 'cancel'; job: number };
type FromWorker = { job: number; crcs?: Uint32Array; error?: string };

// ------------------------------------------------------------------------------------------
// Worker side.
// ------------------------------------------------------------------------------------------
interface WorkerJob {
  fd: number;
  buf: Buffer;
  bufStart: number; // file offset of buf[0]
  bufEnd: number; // file offset after the valid bytes
  crcs: number[];
  error: string | null;
}

function runWorker(port: NonNullable<typeof parentPort>): void {
  const jobs = new Map<number, WorkerJob>();
  const crcRange = (j: WorkerJob, from: number, end: number): number => {
    let crc = 0;
    let p = from;
    while (p < end) {
      if (p < j.bufStart || p >= j.bufEnd) {
        const got = fs.readSync(j.fd, j.buf, 0, j.buf.length, p);
        if (got === 0) throw new Error(`spool shrank during scan: no bytes at ${p}`);
        j.bufStart = p;
        j.bufEnd = p + got;
      }
      const to = Math.min(end, j.bufEnd);
      crc = zlib.crc32(j.buf.subarray(p - j.bufStart, to - j.bufStart), crc);
      p = to;
    }
    return crc >>> 0;
  };
  port.on('message', (m: ToWorker) => {
    if (m.type === 'start') {
      jobs.set(m.job, { fd: m.fd, buf: Buffer.allocUnsafe(READ_CHUNK), bufStart: 0, bufEnd: 0, crcs: [], error: null });
      return;
    }
    const j = jobs.get(m.job);
    if (j === undefined) return;
    if (m.type === 'ranges') {
      if (j.error !== null) return;
      try {
        for (let k = 0; k < m.ranges.length; k += 2) j.crcs.push(crcRange(j, m.ranges[k]!, m.ranges[k + 1]!));
      } catch (e) {
        j.error = e instanceof Error ? e.message : String(e);
      }
      return;
    }
    jobs.delete(m.job);
    const reply: FromWorker = m.type === 'end' && j.error === null ? { job: m.job, crcs: Uint32Array.from(j.crcs) } : { job: m.job, error: j.error ?? 'cancelled' };
    port.postMessage(reply);
  });
}

if (!isMainThread && parentPort !== null) runWorker(parentPort);

// ------------------------------------------------------------------------------------------
// Client side.
// ------------------------------------------------------------------------------------------
let worker: Worker | null = null;
let nextJob = 1;
const waiting = new Map<number, (r: FromWorker) => void>();

function getWorker(): Worker {
  if (worker === null) {
    const w = new Worker(new URL(import.meta.url));
    w.unref(); // never keeps the process alive
    w.on('message', (r: FromWorker) => {
      const done = waiting.get(r.job);
      waiting.delete(r.job);
      done?.(r);
    });
    const fail = (err: unknown): void => {
      worker = null;
      for (const [job, done] of waiting) done({ job, error: `crc worker died: ${String(err)}` });
      waiting.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(`exit ${code}`));
    worker = w;
  }
  return worker;
}

/** One scan's crc job: post message ranges as they are framed, then collect the crcs in order. */
export class CrcJob {
  private readonly job = nextJob++;
  private readonly w = getWorker();
  private readonly reply: Promise<FromWorker>;

  constructor(fd: number) {
    this.reply = new Promise((resolve) => waiting.set(this.job, resolve));
    this.w.ref(); // busy: keep the thread alive until the reply
    this.w.postMessage({ type: 'start', job: this.job, fd } satisfies ToWorker);
  }

  /** Queue [from, end) pairs (ascending offsets, after any posted before). */
  post(ranges: Float64Array): void {
    if (ranges.length > 0) this.w.postMessage({ type: 'ranges', job: this.job, ranges } satisfies ToWorker, [ranges.buffer as ArrayBuffer]);
  }

  /** The crcs of every posted range, in order; rejects with the worker's error. */
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
    if (waiting.size === 0) this.w.unref();
    if (r.crcs === undefined) throw new Error(r.error ?? 'crc worker failed');
    return r.crcs;
  }
}

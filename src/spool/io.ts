/**
 * Descriptor-level file I/O for the spool layer: positional reads and writes, ranged copies,
 * checksums, fsync — always through a descriptor we hold (closing another descriptor of a
 * locked spool could drop locks), plus the test-only fault-injection hook.
 */
import fs from 'node:fs';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { Readable } from 'node:stream';
import { PopspoolError } from '../errors.js';
import { createMessageSum } from '../mbox/msum.js';
import type { ScannedMessage } from '../mbox/types.js';
import { ONE_READ_MAX, RECYCLE_CHUNK, type RecyclingReadable } from './drop.js';

export function fsRead(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}
function fsWrite(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}
export const fsync = promisify(fs.fsync);
/** Data (and the size) only: for files whose timestamps do not matter after a crash. */
export const fdatasync = promisify(fs.fdatasync);
export const ftruncate = promisify(fs.ftruncate);
export const fclose = promisify(fs.close);
export const fopen = promisify(fs.open) as (path: string, flags: number | string, mode?: number) => Promise<number>;
export const futimes = promisify(fs.futimes);
export function fstat(fd: number): Promise<fs.BigIntStats> {
  return new Promise((resolve, reject) => fs.fstat(fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st))));
}

/** Chunk size for copies and checksums: large enough for throughput, small enough to bound memory. */
export const IO_CHUNK = 1 << 20;

/** Reads exactly [pos, pos+len) (fewer bytes only at end of file). */
export async function preadExact(fd: number, pos: number, len: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(len);
  let got = 0;
  while (got < len) {
    const n = await fsRead(fd, buf, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got === len ? buf : buf.subarray(0, got);
}

/**
 * One recent read of a file, for runs of small reads that follow each other through it: a
 * download-all's RETR 1, 2, 3… of adjacent messages costs one pread (one thread-pool hop) per
 * window instead of one per message. The caller says how far ahead a read may reach. The bytes
 * it hands back may be up to one window old; callers that need "as the file is now" must check
 * what they get (the drops compare every message with its scan sum).
 */
export class ReadAhead {
  /** How far past a small read the window may reach: a few typical messages, bounded per session. */
  static readonly MAX = 64 * 1024;

  private base = 0;
  private buf: Buffer | null = null;
  /**
   * The window after this one, being read while the client takes its answer and sends its next
   * command (prefetch): a lockstep client's next RETR then finds its bytes already read instead
   * of waiting for a thread-pool round trip. At most one, so a session holds two windows.
   */
  private next: { base: number; len: number; got: Promise<Buffer | null>; done?: Buffer | null } | null = null;
  /** Prefetches still reading, wanted or not: clear() waits for them before the fd is closed. */
  private readonly inFlight = new Set<Promise<Buffer | null>>();

  constructor(private readonly fd: number) {}

  /**
   * How far a read of message `index` (starting at `from`) may reach: the end of the furthest
   * following message that still fits in MAX bytes from `from`, or the message's own end.
   */
  static reach(messages: readonly { readonly end: number }[], index: number, from: number): number {
    let k = index;
    while (k + 1 < messages.length && messages[k + 1]!.end <= from + ReadAhead.MAX) k++;
    return messages[k]!.end;
  }

  /**
   * Bytes [from, to) when they are already in memory (the window, or a prefetch that has
   * finished: it becomes the window), without waiting; null otherwise (ask read()).
   */
  held(from: number, to: number): Buffer | null {
    const b = this.buf;
    if (b && from >= this.base && to <= this.base + b.length) return b.subarray(from - this.base, to - this.base);
    const n = this.next;
    if (!n?.done || from < n.base || to > n.base + n.done.length) return null;
    this.next = null;
    this.base = n.base;
    this.buf = n.done;
    return n.done.subarray(from - n.base, to - n.base);
  }

  /** Bytes [from, to) (fewer at end of file), reading [from, max(to, upTo)) unless already held. */
  async read(from: number, to: number, upTo: number): Promise<Buffer> {
    const held = this.held(from, to);
    if (held) return held;
    this.buf = null;
    const n = this.next;
    this.next = null;
    if (n && from >= n.base && to <= n.base + n.len) {
      const ahead = await n.got;
      // Short (the file shrank, or the read failed): read again below, which reports it.
      if (ahead && to <= n.base + ahead.length) {
        this.base = n.base;
        this.buf = ahead;
        return ahead.subarray(from - n.base, to - n.base);
      }
    }
    const got = await preadExact(this.fd, from, Math.max(to, upTo) - from);
    if (upTo > to) {
      this.base = from;
      this.buf = got;
    }
    return got.subarray(0, Math.min(got.length, to - from));
  }

  /**
   * Starts reading [from, max(to, upTo)) in the background unless the window already holds
   * [from, to) or a prefetch is running: where read() will most likely be asked next.
   */
  prefetch(from: number, to: number, upTo: number): void {
    const b = this.buf;
    if (this.next || (b && from >= this.base && to <= this.base + b.length)) return;
    const len = Math.max(to, upTo) - from;
    const got = preadExact(this.fd, from, len).catch(() => null);
    const next: NonNullable<ReadAhead['next']> = { base: from, len, got };
    this.inFlight.add(got);
    void got.then((b) => {
      this.inFlight.delete(got);
      next.done = b;
    });
    this.next = next;
  }

  /** Forget the windows (before the file is written, and to free them); resolves when no read
   *  of the descriptor is still running (before it is closed). */
  async clear(): Promise<void> {
    this.buf = null;
    this.next = null;
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }
}

/**
 * A drop's small messages (at most ONE_READ_MAX bytes from where the drop reads them), read whole
 * through one ReadAhead in the order clients fetch them: a read reaches over the following
 * messages that fit its window, and each message handed out starts the read of the next one.
 * Both drops serve Drop.readHeld and Drop.readSmall with it; what differs between them is where
 * a message's read starts (`startOf`: server mode reads from the From_ line, to check it) and what
 * they check before the bytes go out (`accept`, which returns the bytes to send or throws).
 */
export class SmallReads {
  private readonly ahead: ReadAhead;

  constructor(
    fd: number,
    private readonly messages: readonly ScannedMessage[],
    private readonly startOf: (m: ScannedMessage) => number,
    private readonly accept: (m: ScannedMessage, buf: Buffer) => Buffer,
  ) {
    this.ahead = new ReadAhead(fd);
  }

  /** Drop.readHeld: message `index` when the read-ahead already holds it; null otherwise (also when it is not small). */
  held(index: number): Buffer | null {
    const m = this.small(index);
    const buf = m && this.ahead.held(this.startOf(m), m.end);
    return buf ? this.deliver(index, m!, buf) : null;
  }

  /** Drop.readSmall: message `index` read whole, or null when it is not small (stream it instead). */
  async read(index: number): Promise<Buffer | null> {
    const m = this.small(index);
    if (!m) return null;
    const from = this.startOf(m);
    return this.deliver(index, m, await this.ahead.read(from, m.end, ReadAhead.reach(this.messages, index, from)));
  }

  /** ReadAhead.clear: before the file is written or closed. */
  clear(): Promise<void> {
    return this.ahead.clear();
  }

  private small(index: number): ScannedMessage | null {
    const m = this.messages[index];
    if (!m) throw new PopspoolError('SYS_TEMP', `no message ${index + 1}`);
    return m.end - this.startOf(m) > ONE_READ_MAX ? null : m;
  }

  /** The checked bytes of `m`; clients fetch in order, so the next message is read meanwhile. */
  private deliver(index: number, m: ScannedMessage, buf: Buffer): Buffer {
    const out = this.accept(m, buf);
    const next = this.messages[index + 1];
    if (next) {
      const from = this.startOf(next);
      if (next.end - from <= ONE_READ_MAX) this.ahead.prefetch(from, next.end, ReadAhead.reach(this.messages, index + 1, from));
    }
    return out;
  }
}

export async function pwriteAll(fd: number, buf: Buffer, pos: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    await faultPoint('pwrite');
    done += await fsWrite(fd, buf, done, buf.length - done, pos + done);
  }
}

/**
 * Copies [srcPos, srcPos+len) of `src` to `dst` at `dstPos`, in bounded chunks. `onChunk` sees
 * every chunk (for checksums or verification) before it is written; it may throw to abort.
 * Two buffers: the read of one chunk runs while the previous chunk is being written.
 */
export async function copyRange(
  src: number, srcPos: number, len: number, dst: number, dstPos: number,
  onChunk?: (chunk: Buffer) => void,
): Promise<void> {
  const size = Math.min(IO_CHUNK, Math.max(len, 1));
  // The second buffer only when a second read comes (a copy that fits one chunk takes one
  // read, unless the file ended early: that read then reports it).
  const bufs: (Buffer | undefined)[] = [Buffer.allocUnsafe(size), undefined];
  const writer = new Overlapped();
  let done = 0;
  try {
    for (let k = 0; done < len; k++) {
      const buf = (bufs[k & 1] ??= Buffer.allocUnsafe(size));
      const n = await fsRead(src, buf, 0, Math.min(buf.length, len - done), srcPos + done);
      if (n === 0) throw Object.assign(new Error(`short read at ${srcPos + done}: file shrank during copy`), { code: 'ESHORT' });
      const chunk = buf.subarray(0, n);
      onChunk?.(chunk);
      await writer.settled(); // the previous write (from the other buffer) is done
      writer.start(pwriteAll(dst, chunk, dstPos + done));
      done += n;
    }
    await writer.settled();
  } catch (err) {
    await writer.quiet();
    throw err;
  }
}

/**
 * At most one write in flight while the caller prepares the next buffer. Its failure is
 * reported by the next settled(); quiet() waits for it and ignores it (before giving up, so no
 * write is still running on a descriptor about to be closed).
 */
export class Overlapped {
  private inFlight: Promise<void> | null = null;

  start(write: Promise<void>): void {
    write.catch(() => {}); // handled by settled() or quiet(); never an unhandled rejection
    this.inFlight = write;
  }

  async settled(): Promise<void> {
    const w = this.inFlight;
    this.inFlight = null;
    if (w) await w;
  }

  async quiet(): Promise<void> {
    await this.settled().catch(() => {});
  }
}

/**
 * Sequential reads of one file through a window of IO_CHUNK bytes: callers walk many small
 * ranges (messages) in increasing order and cost one read per window, not one per range. The
 * next window is read ahead (into a second buffer) while the caller works on the current one.
 */
export class WindowReader {
  private buf: Buffer;
  private spare: Buffer | null;
  private start = 0;
  private length = 0;
  /** The read of the window after this one, into `spare`: its position and byte count. */
  private ahead: { pos: number; got: Promise<number> } | null = null;

  /** Reads never go past `limit` (the end of what the caller will ask for). */
  constructor(readonly fd: number, private readonly limit: number) {
    const size = Math.min(IO_CHUNK, Math.max(limit, 1));
    this.buf = Buffer.allocUnsafe(size);
    this.spare = limit > size ? Buffer.allocUnsafe(size) : null;
  }

  /**
   * Bytes from `pos`: at most `max`, at least one. The slice is only valid until the next call
   * (the window is reused). Throws ESHORT when the file ends before `pos`.
   */
  async at(pos: number, max: number): Promise<Buffer> {
    if (pos < this.start || pos >= this.start + this.length) {
      const ahead = this.ahead;
      this.ahead = null;
      const got = ahead ? await ahead.got.catch(() => -1) : -1;
      if (ahead && got > 0 && pos >= ahead.pos && pos < ahead.pos + got) {
        [this.buf, this.spare] = [this.spare!, this.buf];
        this.start = ahead.pos;
        this.length = got;
      } else {
        await this.fill(pos);
      }
      this.readAhead();
    }
    const off = pos - this.start;
    return this.buf.subarray(off, off + Math.min(max, this.length - off));
  }

  /** Reads the window at `pos` into `buf`, waiting for it. */
  private async fill(pos: number): Promise<void> {
    const want = Math.max(1, Math.min(this.buf.length, this.limit - pos));
    let got = 0;
    while (got < want) {
      const n = await fsRead(this.fd, this.buf, got, want - got, pos + got);
      if (n === 0) break;
      got += n;
    }
    if (got === 0) throw Object.assign(new Error(`short read at ${pos}: file ended early`), { code: 'ESHORT' });
    this.start = pos;
    this.length = got;
  }

  /** Starts reading the window after the current one into the spare buffer (a short or failed
   *  read is simply not used: at() then reads the window itself and reports the problem). */
  private readAhead(): void {
    const pos = this.start + this.length;
    if (!this.spare || pos >= this.limit) return;
    const got = fsRead(this.fd, this.spare, 0, Math.min(this.spare.length, this.limit - pos), pos);
    got.catch(() => {});
    this.ahead = { pos, got };
  }

  /** A private copy of exactly [pos, pos+len) (fewer bytes only at end of file). */
  async copy(pos: number, len: number): Promise<Buffer> {
    if (pos >= this.start && pos + len <= this.start + this.length) return Buffer.from(this.buf.subarray(pos - this.start, pos - this.start + len));
    return preadExact(this.fd, pos, len);
  }

  /** Waits for a read still running (before the descriptor is closed or the reader dropped). */
  async close(): Promise<void> {
    const ahead = this.ahead;
    this.ahead = null;
    if (ahead) await ahead.got.catch(() => 0);
  }
}

/** Reads [pos, pos+len) in chunks, handing each to `feed` (ESHORT if the file ends first). */
async function feedRange(fd: number, pos: number, len: number, feed: (chunk: Buffer) => void): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(IO_CHUNK, Math.max(len, 1)));
  for (let done = 0; done < len; ) {
    const n = await fsRead(fd, buf, 0, Math.min(buf.length, len - done), pos + done);
    if (n === 0) throw Object.assign(new Error(`short read at ${pos + done}`), { code: 'ESHORT' });
    feed(buf.subarray(0, n));
    done += n;
  }
}

/** crc32 of [pos, pos+len). */
export async function crcRange(fd: number, pos: number, len: number, seed = 0): Promise<number> {
  let crc = seed;
  await feedRange(fd, pos, len, (chunk) => (crc = zlib.crc32(chunk, crc)));
  return crc;
}

/** msum (mbox/msum.ts) of [pos, pos+len): the check of a journal's image. */
export async function sumRange(fd: number, pos: number, len: number): Promise<number> {
  const sum = createMessageSum();
  await feedRange(fd, pos, len, (chunk) => sum.update(chunk));
  return sum.digest();
}

/** fsync a directory, so a rename or unlink in it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await fopen(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await fsync(fd);
  } finally {
    await fclose(fd);
  }
}

/**
 * Fault injection, for tests only: POPSPOOL_FAULT="crash:STEP" makes the process SIGKILL itself
 * the Nth time (POPSPOOL_FAULT_COUNT, default 1) it reaches STEP; "enospc:STEP" and "eio:STEP"
 * make that step fail with the errno instead. Unset in production: one env read at start-up.
 */
const FAULT = /^(crash|enospc|eio):([\w-]+)$/.exec(process.env.POPSPOOL_FAULT ?? '');
let faultCountdown = Number(process.env.POPSPOOL_FAULT_COUNT ?? '1');

export async function faultPoint(step: string): Promise<void> {
  if (!FAULT || FAULT[2] !== step || --faultCountdown > 0) return;
  if (FAULT[1] === 'crash') {
    process.kill(process.pid, 'SIGKILL');
    await new Promise(() => {}); // never resumes
  }
  const code = FAULT[1] === 'enospc' ? 'ENOSPC' : 'EIO';
  throw Object.assign(new Error(`${code}: injected fault at ${step}`), { code });
}

/** Handed-back chunks kept for reuse, per chunk size, all streams together (bounded). */
const FREE_CHUNKS_MAX = 16;
const freeChunks = new Map<number, Buffer[]>();
/** Chunks a stream pushed whole and nobody handed back yet (by their memory). */
const lentChunks = new WeakSet<ArrayBufferLike>();

function takeChunk(size: number): Buffer {
  return freeChunks.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
}

function recycleChunk(chunk: Buffer): void {
  const ab = chunk.buffer;
  if (!lentChunks.has(ab) || chunk.byteOffset !== 0 || chunk.length !== ab.byteLength) return;
  lentChunks.delete(ab);
  let list = freeChunks.get(chunk.length);
  if (list === undefined) freeChunks.set(chunk.length, (list = []));
  if (list.length < FREE_CHUNKS_MAX) list.push(chunk);
}

/**
 * A readable stream of [start, end) of `fd`, by positional reads. The descriptor stays open when
 * the consumer destroys the stream (closing a descriptor of a locked spool could drop locks).
 * A file that ends before `end` is an error, never a short end: the consumer has already sent
 * part of the message and must not follow it with a terminator (fs.ReadStream would just end).
 * Full-size chunks are unpooled buffers of their own that the consumer may hand back through
 * RECYCLE_CHUNK (drop.ts).
 */
export function rangeStream(fd: number, start: number, end: number, highWaterMark: number): RecyclingReadable {
  let pos = start;
  const stream = new Readable({
    highWaterMark,
    read(): void {
      const len = Math.min(highWaterMark, end - pos);
      if (len <= 0) {
        this.push(null);
        return;
      }
      const buf = len === highWaterMark ? takeChunk(len) : Buffer.allocUnsafe(len);
      fs.read(fd, buf, 0, len, pos, (err, n) => {
        if (err) return this.destroy(err);
        if (n === 0) return this.destroy(new Error(`file ends at offset ${pos}, before ${end}: changed by another program`));
        pos += n;
        if (n === len && len === highWaterMark) lentChunks.add(buf.buffer);
        this.push(n < len ? buf.subarray(0, n) : buf);
        if (pos >= end) this.push(null);
      });
    },
  });
  return Object.assign(stream, { [RECYCLE_CHUNK]: recycleChunk });
}

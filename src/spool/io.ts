/**
 * Descriptor-level file I/O for the spool layer: positional reads and writes, ranged copies,
 * checksums, fsync — always through a descriptor we hold (closing another descriptor of a
 * locked spool could drop locks), plus the test-only fault-injection hook.
 */
import fs from 'node:fs';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { Readable } from 'node:stream';

export function fsRead(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}
function fsWrite(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}
export const fsync = promisify(fs.fsync);
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
 */
export async function copyRange(
  src: number, srcPos: number, len: number, dst: number, dstPos: number,
  onChunk?: (chunk: Buffer) => void,
): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(IO_CHUNK, Math.max(len, 1)));
  let done = 0;
  while (done < len) {
    const want = Math.min(buf.length, len - done);
    const n = await fsRead(src, buf, 0, want, srcPos + done);
    if (n === 0) throw Object.assign(new Error(`short read at ${srcPos + done}: file shrank during copy`), { code: 'ESHORT' });
    const chunk = buf.subarray(0, n);
    onChunk?.(chunk);
    await pwriteAll(dst, chunk, dstPos + done);
    done += n;
  }
}

/** crc32 of [pos, pos+len). */
export async function crcRange(fd: number, pos: number, len: number, seed = 0): Promise<number> {
  const buf = Buffer.allocUnsafe(Math.min(IO_CHUNK, Math.max(len, 1)));
  let crc = seed;
  let done = 0;
  while (done < len) {
    const n = await fsRead(fd, buf, 0, Math.min(buf.length, len - done), pos + done);
    if (n === 0) throw Object.assign(new Error(`short read at ${pos + done}`), { code: 'ESHORT' });
    crc = zlib.crc32(buf.subarray(0, n), crc);
    done += n;
  }
  return crc;
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

/** fs overrides for streams over a descriptor we own: destroy() must never close it. */
const KEEP_FD_OPEN = { open: fs.open, read: fs.read, close: (_fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => cb(null) };

/**
 * A readable stream of [start, end) of `fd` (positional reads; the descriptor stays open even
 * when the consumer destroys the stream — fs.ReadStream closes it on destroy() otherwise, and
 * closing a descriptor of a locked spool could drop locks).
 */
export function rangeStream(fd: number, start: number, end: number, highWaterMark: number): Readable {
  if (end <= start) return Readable.from([]);
  return fs.createReadStream('', { fd, start, end: end - 1, autoClose: false, emitClose: true, highWaterMark, fs: KEEP_FD_OPEN });
}

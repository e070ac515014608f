/**
 * The new image of a rewrite (DESIGN.md §4): built in a private temp file beside the journal,
 * every byte checksummed (msum, mbox/msum.ts) as it is appended, fsynced before the journal
 * names it. A failure while building discards it; the spool has not been touched yet. Appends
 * are gathered into IO_CHUNK writes: a rewrite of 1,000 messages is a few dozen syscalls, not
 * two per message, and each write runs while the next chunk is gathered.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createMessageSum } from '../mbox/msum.js';
import { copyRange, faultPoint, fclose, fdatasync, fopen, fsyncDir, IO_CHUNK, Overlapped, pwriteAll } from './io.js';

/** What the journal records of a sealed image. */
export interface SealedImage {
  readonly imagePath: string;
  readonly newLength: number;
  /** msum of the image's bytes. (It was zlib's crc32 until journal version 2: crc32 ran at
   *  ~2 GB/s here, a quarter of the time to commit a 16 MB rewrite; msum runs at ~16 GB/s.) */
  readonly imageSum: number;
}

/** A fresh, unique image path; the pid in the name lets start-up cleanup spot orphans. */
export function imagePathFor(dir: string, user: string): string {
  return path.join(dir, `${user}.${process.pid}.${randomBytes(6).toString('hex')}.image`);
}

/**
 * Every EARLY_SYNC_BYTES written, an fdatasync starts while the rest is still gathered (one at a
 * time): most of the image then reaches the disk during the build, and the final fdatasync, the
 * one the commit waits for, has only the last few MiB left. A 16 MB rewrite, in one process,
 * alternating: 23–29 → 18–22 ms to the commit point.
 * Only the final one is relied on; an early one that fails fails the build (Linux reports a
 * writeback error to one fdatasync only, so none may be ignored).
 */
const EARLY_SYNC_BYTES = 4 << 20;

export class ImageBuilder {
  private length = 0;
  private readonly sum = createMessageSum();
  /** Appended bytes not yet written: [length - pendingLength, length) of the image. */
  private pending: Buffer = Buffer.allocUnsafe(IO_CHUNK);
  private pendingLength = 0;
  /** The other gathering buffer, free once `writer` has settled; made at the first flush that
   *  must go on gathering (a small image never needs it). */
  private spare: Buffer | null = null;
  /** The write of the previous gathered chunk, running while the next one is gathered. */
  private readonly writer = new Overlapped();
  /** Bytes written since the last early fdatasync started; the one running; the first failure. */
  private unsynced = 0;
  private early: Promise<void> | null = null;
  private earlyError: Error | null = null;

  private constructor(readonly imagePath: string, private readonly fd: number) {}

  /** Creates the image, runs `fill`, and seals it; on any error the image is removed. */
  static async build(dir: string, user: string, fill: (image: ImageBuilder) => Promise<void>): Promise<SealedImage> {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    const imagePath = imagePathFor(dir, user);
    const image = new ImageBuilder(imagePath, await fopen(imagePath, 'wx', 0o600));
    try {
      await fill(image);
      await image.flush();
      await image.writer.settled();
      await image.earlySynced();
      // Data and size are what recovery reads; the name is made durable by fsyncDir below.
      await fdatasync(image.fd);
    } catch (err) {
      await image.writer.quiet(); // no write or sync may still run on the descriptor being closed
      await image.earlySynced().catch(() => {});
      await fclose(image.fd).catch(() => {});
      await fs.promises.unlink(imagePath).catch(() => {});
      throw err;
    }
    await fclose(image.fd);
    await fsyncDir(dir);
    return { imagePath, newLength: image.length, imageSum: image.sum.digest() };
  }

  /** Bytes appended so far. */
  get size(): number {
    return this.length;
  }

  /** Appends a copy of `buf` (the caller may reuse it once this resolves). */
  async append(buf: Buffer): Promise<void> {
    if (this.pendingLength + buf.length > this.pending.length) await this.flush();
    if (buf.length >= this.pending.length) {
      await this.writer.settled();
      this.sum.update(buf);
      await pwriteAll(this.fd, buf, this.length);
      this.wrote(buf.length, Promise.resolve());
    } else {
      buf.copy(this.pending, this.pendingLength);
      this.pendingLength += buf.length;
    }
    this.length += buf.length;
  }

  /** Appends [pos, pos+len) of `src` verbatim. */
  async appendRange(src: number, pos: number, len: number): Promise<void> {
    await this.flush();
    await this.writer.settled();
    await copyRange(src, pos, len, this.fd, this.length, (c) => this.sum.update(c));
    this.length += len;
  }

  /** Counts `n` bytes written by `write`, and starts an early fdatasync after it when due. */
  private wrote(n: number, write: Promise<void>): void {
    this.unsynced += n;
    if (this.early !== null || this.unsynced < EARLY_SYNC_BYTES) return;
    this.unsynced = 0;
    const run = write.then(async () => {
      await faultPoint('early-sync');
      await fdatasync(this.fd);
    }).catch((err: Error) => {
      this.earlyError ??= err;
    });
    this.early = run.finally(() => {
      this.early = null;
    });
  }

  /** Waits for the early fdatasync still running; throws the first one's failure. */
  private async earlySynced(): Promise<void> {
    while (this.early) await this.early;
    if (this.earlyError) throw this.earlyError;
  }

  /**
   * Checksums the gathered appends and starts writing them at their place in the file; gathering
   * goes on in the other buffer meanwhile (one checksum call per chunk, not per message).
   */
  private async flush(): Promise<void> {
    if (this.pendingLength === 0) return;
    const chunk = this.pending.subarray(0, this.pendingLength);
    this.sum.update(chunk);
    await this.writer.settled(); // the spare buffer's write is done: it may be refilled
    const write = pwriteAll(this.fd, chunk, this.length - chunk.length);
    this.writer.start(write);
    this.wrote(chunk.length, write);
    [this.pending, this.spare] = [this.spare ?? Buffer.allocUnsafe(IO_CHUNK), this.pending];
    this.pendingLength = 0;
  }
}

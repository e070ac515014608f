/**
 * The new image of a rewrite (DESIGN.md §4): built in a private temp file beside the journal,
 * every byte checksummed as it is appended, fsynced before the journal names it. A failure while
 * building discards it; the spool has not been touched yet. Appends are gathered into IO_CHUNK
 * writes: a rewrite of 1,000 messages is a few dozen syscalls, not two per message.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { copyRange, fclose, fdatasync, fopen, fsyncDir, IO_CHUNK, pwriteAll } from './io.js';

/** What the journal records of a sealed image. */
export interface SealedImage {
  readonly imagePath: string;
  readonly newLength: number;
  readonly imageCrc: number;
}

/** A fresh, unique image path; the pid in the name lets start-up cleanup spot orphans. */
export function imagePathFor(dir: string, user: string): string {
  return path.join(dir, `${user}.${process.pid}.${randomBytes(6).toString('hex')}.image`);
}

export class ImageBuilder {
  private length = 0;
  private crc = 0;
  /** Appended bytes not yet written: [flushed, length) of the image. */
  private readonly pending = Buffer.allocUnsafe(IO_CHUNK);
  private pendingLength = 0;

  private constructor(readonly imagePath: string, private readonly fd: number) {}

  /** Creates the image, runs `fill`, and seals it; on any error the image is removed. */
  static async build(dir: string, user: string, fill: (image: ImageBuilder) => Promise<void>): Promise<SealedImage> {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    const imagePath = imagePathFor(dir, user);
    const image = new ImageBuilder(imagePath, await fopen(imagePath, 'wx', 0o600));
    try {
      await fill(image);
      await image.flush();
      // Data and size are what recovery reads; the name is made durable by fsyncDir below.
      await fdatasync(image.fd);
    } catch (err) {
      await fclose(image.fd).catch(() => {});
      await fs.promises.unlink(imagePath).catch(() => {});
      throw err;
    }
    await fclose(image.fd);
    await fsyncDir(dir);
    return { imagePath, newLength: image.length, imageCrc: image.crc };
  }

  /** Bytes appended so far. */
  get size(): number {
    return this.length;
  }

  /** Appends a copy of `buf` (the caller may reuse it once this resolves). */
  async append(buf: Buffer): Promise<void> {
    this.crc = zlib.crc32(buf, this.crc);
    if (this.pendingLength + buf.length > this.pending.length) await this.flush();
    if (buf.length >= this.pending.length) {
      await pwriteAll(this.fd, buf, this.length);
    } else {
      buf.copy(this.pending, this.pendingLength);
      this.pendingLength += buf.length;
    }
    this.length += buf.length;
  }

  /** Appends [pos, pos+len) of `src` verbatim. */
  async appendRange(src: number, pos: number, len: number): Promise<void> {
    await this.flush();
    await copyRange(src, pos, len, this.fd, this.length, (c) => (this.crc = zlib.crc32(c, this.crc)));
    this.length += len;
  }

  /** Writes the gathered appends at their place in the file. */
  private async flush(): Promise<void> {
    if (this.pendingLength === 0) return;
    const n = this.pendingLength;
    this.pendingLength = 0;
    await pwriteAll(this.fd, this.pending.subarray(0, n), this.length - n);
  }
}

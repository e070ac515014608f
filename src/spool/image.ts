/**
 * The new image of a rewrite (DESIGN.md §4): built in a private temp file beside the journal,
 * every byte checksummed as it is appended, fsynced before the journal names it. A failure while
 * building discards it; the spool has not been touched yet.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { copyRange, fclose, fopen, fsync, fsyncDir, pwriteAll } from './io.js';

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

  private constructor(readonly imagePath: string, private readonly fd: number) {}

  /** Creates the image, runs `fill`, and seals it; on any error the image is removed. */
  static async build(dir: string, user: string, fill: (image: ImageBuilder) => Promise<void>): Promise<SealedImage> {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    const imagePath = imagePathFor(dir, user);
    const image = new ImageBuilder(imagePath, await fopen(imagePath, 'wx', 0o600));
    try {
      await fill(image);
      await fsync(image.fd);
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

  async append(buf: Buffer): Promise<void> {
    this.crc = zlib.crc32(buf, this.crc);
    await pwriteAll(this.fd, buf, this.length);
    this.length += buf.length;
  }

  /** Appends [pos, pos+len) of `src` verbatim. */
  async appendRange(src: number, pos: number, len: number): Promise<void> {
    await copyRange(src, pos, len, this.fd, this.length, (c) => (this.crc = zlib.crc32(c, this.crc)));
    this.length += len;
  }
}

// Unit tests for io.ts helpers: WindowReader, ReadAhead, rangeStream, copyRange; and ImageBuilder.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { expect } from 'chai';
import type { Readable } from 'node:stream';
import { RECYCLE_CHUNK, type RecyclingReadable } from './drop.js';
import { msum } from '../mbox/msum.js';
import { ImageBuilder } from './image.js';
import { copyRange, rangeStream, ReadAhead, WindowReader } from './io.js';

/** Runs `fn` on a descriptor of a temp file holding `data`, then closes and removes it. */
async function withTempFile(data: Buffer, flags: 'r' | 'r+', fn: (fd: number) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-io-'));
  try {
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, data);
    const fd = fs.openSync(file, flags);
    try {
      await fn(fd);
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('spool io', () => {
  it('WindowReader returns the file bytes for increasing ranges, with gaps and across windows', async () => {
    const data = randomBytes(3 * (1 << 20) + 123);
    await withTempFile(data, 'r', async (fd) => {
      const r = new WindowReader(fd, data.length);
      for (const [from, to] of [[0, 10], [10, 5000], [900_000, 1_200_000], [2_500_000, data.length]] as const) {
        const parts: Buffer[] = [];
        for (let pos = from; pos < to;) {
          const c = await r.at(pos, to - pos);
          expect(c.length).to.be.greaterThan(0);
          parts.push(Buffer.from(c));
          pos += c.length;
        }
        expect(Buffer.concat(parts).equals(data.subarray(from, to)), `${from}-${to}`).to.equal(true);
      }
      expect((await r.copy(100, 50)).equals(data.subarray(100, 150))).to.equal(true);
      let err: unknown;
      await new WindowReader(fd, data.length + 10).at(data.length, 5).catch((e: unknown) => { err = e; });
      expect((err as NodeJS.ErrnoException).code).to.equal('ESHORT');
    });
  });

  it('WindowReader with its read-ahead: random increasing walks (exact window ends, jumps, skipped windows) see the file bytes', async () => {
    const data = randomBytes(5 * (1 << 20) + 777);
    await withTempFile(data, 'r', async (fd) => {
      for (let trial = 0; trial < 20; trial++) {
        const r = new WindowReader(fd, data.length);
        let pos = Math.floor(Math.random() * 1000);
        while (pos < data.length) {
          const max = 1 + Math.floor(Math.random() * (trial % 2 ? 3 << 20 : 40_000));
          const c = await r.at(pos, max);
          expect(c.length).to.be.within(1, max);
          expect(c.equals(data.subarray(pos, pos + c.length)), `at ${pos}`).to.equal(true);
          const roll = Math.random();
          // Mostly the next byte (walking on), sometimes a skip past a window or two.
          pos += roll < 0.8 ? c.length : c.length + Math.floor(Math.random() * (roll < 0.95 ? 50_000 : 2.5 * (1 << 20)));
        }
        await r.close();
      }
    });
  });

  it('copyRange (overlapped) and ImageBuilder (gathered, overlapped writes) produce the exact bytes and checksum', async () => {
    const data = randomBytes(10 * (1 << 20) + 4321);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-io-'));
    try {
      const src = path.join(dir, 'src');
      fs.writeFileSync(src, data);
      const sfd = fs.openSync(src, 'r');
      const dst = path.join(dir, 'dst');
      const dfd = fs.openSync(dst, 'w+');
      let seen = 0;
      await copyRange(sfd, 100, data.length - 200, dfd, 7, (c) => { expect(c.equals(data.subarray(100 + seen, 100 + seen + c.length))).to.equal(true); seen += c.length; });
      expect(seen).to.equal(data.length - 200);
      // A source that ends early is ESHORT, whether the copy fits one chunk or not.
      for (const len of [data.length + 10, 1000]) {
        const tiny = path.join(dir, `tiny-${len}`);
        fs.writeFileSync(tiny, data.subarray(0, len === 1000 ? 600 : data.length));
        const tfd = fs.openSync(tiny, 'r');
        const sink = fs.openSync(path.join(dir, `sink-${len}`), 'w');
        const err = await copyRange(tfd, 0, len, sink, 0).then(() => null, (e: NodeJS.ErrnoException) => e);
        fs.closeSync(tfd);
        fs.closeSync(sink);
        expect(err?.code, `copy of ${len} bytes`).to.equal('ESHORT');
      }
      fs.closeSync(dfd);
      expect(fs.readFileSync(dst).subarray(7).equals(data.subarray(100, data.length - 100))).to.equal(true);
      // Appends of every size, small (gathered) and larger than a chunk (written directly), then a range.
      const pieces: Buffer[] = [];
      const image = await ImageBuilder.build(dir, 'u', async (img) => {
        // Past 9 MiB: early fdatasyncs (every 4 MiB) run beside the writes.
        for (let off = 0, k = 0; off < 9 << 20; k++) {
          const n = k % 17 === 16 ? (1 << 20) + 5 : 1 + Math.floor(Math.random() * 70_000);
          const piece = Buffer.from(data.subarray(off, off + n));
          pieces.push(Buffer.from(piece));
          await img.append(piece);
          piece.fill(0); // the caller may reuse its buffer once append resolves
          off += n;
        }
        await img.appendRange(sfd, 10, 300_000);
        pieces.push(data.subarray(10, 300_010));
      });
      fs.closeSync(sfd);
      const want = Buffer.concat(pieces);
      const got = fs.readFileSync(image.imagePath);
      expect(got.equals(want)).to.equal(true);
      expect(image.newLength).to.equal(want.length);
      expect(image.imageSum).to.equal(msum(want));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ImageBuilder: a failed early fdatasync fails the build and removes the image (EIO injected in a child process)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-io-'));
    try {
      const script = `
        const { ImageBuilder } = await import(${JSON.stringify(new URL('./image.js', import.meta.url).href)});
        const chunk = Buffer.alloc(64 * 1024, 120);
        const r = await ImageBuilder.build(process.argv[1], 'u', async (img) => {
          for (let i = 0; i < 160; i++) await img.append(chunk); // 10 MiB: past the first early sync
        }).then(() => 'built', (e) => 'failed ' + e.code);
        console.log(r);`;
      const run = (fault: string): string => execFileSync(process.execPath, ['--input-type=module', '-e', script, dir], {
        env: { ...process.env, POPSPOOL_FAULT: fault }, encoding: 'utf8',
      }).trim();
      expect(run('eio:early-sync')).to.equal('failed EIO');
      expect(fs.readdirSync(dir)).to.deep.equal([]);
      expect(run('eio:no-such-step')).to.equal('built');
      expect(fs.readdirSync(dir).filter((f) => f.endsWith('.image'))).to.have.length(1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ReadAhead.reach: the furthest following message within MAX bytes, at least the message itself', () => {
    const ends = (xs: number[]) => xs.map((end) => ({ end }));
    const M = ReadAhead.MAX;
    expect(ReadAhead.reach(ends([100, 200, 300]), 0, 0)).to.equal(300);
    expect(ReadAhead.reach(ends([100, M, M + 1]), 0, 0)).to.equal(M);
    expect(ReadAhead.reach(ends([100, M, M + 1]), 1, 100)).to.equal(M + 1);
    expect(ReadAhead.reach(ends([2 * M, 3 * M]), 0, 0)).to.equal(2 * M); // a big message reaches only its own end
    expect(ReadAhead.reach(ends([10, 20]), 1, 10)).to.equal(20); // the last message
  });

  it('ReadAhead: one read serves the ranges inside its window; outside it, after clear(), and at end of file it reads again', async () => {
    const data = randomBytes(10_000);
    await withTempFile(data, 'r+', async (fd) => {
      const r = new ReadAhead(fd);
      expect((await r.read(100, 200, 1000)).equals(data.subarray(100, 200))).to.equal(true);
      // Changed on disk: ranges inside the window still come from the earlier read (the
      // drops' crc checks are what make that safe), ranges outside it from the file.
      fs.writeSync(fd, Buffer.alloc(10_000, 0x41), 0, 10_000, 0);
      expect((await r.read(200, 1000, 1000)).equals(data.subarray(200, 1000))).to.equal(true);
      expect((await r.read(900, 1100, 1100)).equals(Buffer.alloc(200, 0x41))).to.equal(true);
      expect((await r.read(950, 960, 960)).equals(Buffer.alloc(10, 0x41))).to.equal(true);
      fs.writeSync(fd, data, 0, 10_000, 0);
      // upTo <= to keeps no window: the next read goes to the file.
      expect((await r.read(950, 960, 960)).equals(data.subarray(950, 960))).to.equal(true);
      await r.read(0, 10, 5000);
      fs.writeSync(fd, Buffer.alloc(100, 0x42), 0, 100, 0);
      await r.clear();
      expect((await r.read(0, 10, 10)).equals(Buffer.alloc(10, 0x42))).to.equal(true);
      // At end of file the result is short, inside a window or not.
      expect((await r.read(9990, 10_020, 20_000)).length).to.equal(10);
      expect((await r.read(9995, 10_010, 10_010)).length).to.equal(5);
    });
  });

  it('ReadAhead.prefetch: a read inside the prefetched window is served from it; others, and a short one, go to the file', async () => {
    const data = randomBytes(10_000);
    await withTempFile(data, 'r+', async (fd) => {
      const r = new ReadAhead(fd);
      expect((await r.read(0, 100, 1000)).equals(data.subarray(0, 100))).to.equal(true);
      r.prefetch(500, 600, 2000); // inside the window already: nothing to do
      r.prefetch(1000, 1100, 3000);
      expect((await r.read(1000, 1100, 3000)).equals(data.subarray(1000, 1100))).to.equal(true);
      // The prefetched bytes became the window: a change on disk is not seen inside it ...
      fs.writeSync(fd, Buffer.alloc(10_000, 0x41), 0, 10_000, 0);
      expect((await r.read(2000, 2100, 2100)).equals(data.subarray(2000, 2100))).to.equal(true);
      // ... and a prefetch that is not where the next read goes is dropped: that read goes to the file.
      r.prefetch(5000, 5100, 6000);
      expect((await r.read(8000, 8010, 8010)).equals(Buffer.alloc(10, 0x41))).to.equal(true);
      // A prefetch past the end of the file is short: the read is made again and reports it.
      fs.ftruncateSync(fd, 9000);
      r.prefetch(8500, 9500, 9500);
      expect((await r.read(8500, 9500, 9500)).length).to.equal(500);
      r.prefetch(0, 10, 10);
      await r.clear(); // waits for the read still running, so the descriptor may be closed
      expect((await r.read(0, 10, 10)).equals(Buffer.alloc(10, 0x41))).to.equal(true);
    });
  });

  it('ReadAhead.held: the window, or a prefetch once it has finished (then the window), without waiting; null otherwise', async () => {
    const data = randomBytes(10_000);
    await withTempFile(data, 'r+', async (fd) => {
      const r = new ReadAhead(fd);
      expect(r.held(0, 10)).to.equal(null); // nothing read yet
      await r.read(0, 100, 1000);
      expect(r.held(100, 1000)!.equals(data.subarray(100, 1000))).to.equal(true);
      expect(r.held(900, 1001)).to.equal(null); // past the window
      r.prefetch(1000, 1100, 3000);
      expect(r.held(1000, 1100)).to.equal(null); // still reading
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(r.held(1500, 2500)!.equals(data.subarray(1500, 2500))).to.equal(true);
      // The prefetched window replaced the old one.
      expect(r.held(0, 100)).to.equal(null);
      expect(r.held(2900, 3000)!.equals(data.subarray(2900, 3000))).to.equal(true);
      // A prefetch that came back short (past the end of the file) holds only what it got.
      r.prefetch(9500, 9900, 10_500);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(r.held(9500, 10_001)).to.equal(null);
      expect(r.held(9900, 10_000)!.equals(data.subarray(9900, 10_000))).to.equal(true);
      await r.clear();
      expect(r.held(9900, 10_000)).to.equal(null);
    });
  });

  it('rangeStream delivers exactly [start, end), and errors (not a short end) when the file was cut', async () => {
    const data = randomBytes(300_000);
    await withTempFile(data, 'r+', async (fd) => {
      const read = async (s: Readable): Promise<Buffer> => {
        const parts: Buffer[] = [];
        for await (const c of s) parts.push(c as Buffer);
        return Buffer.concat(parts);
      };
      expect((await read(rangeStream(fd, 1000, 250_000, 64 * 1024))).equals(data.subarray(1000, 250_000))).to.equal(true);
      expect((await read(rangeStream(fd, 5, 5, 1024))).length).to.equal(0);
      fs.ftruncateSync(fd, 100_000);
      let err: unknown;
      await read(rangeStream(fd, 1000, 250_000, 64 * 1024)).catch((e: unknown) => { err = e; });
      expect(String(err)).to.match(/file ends at offset 100000, before 250000/);
      fs.fstatSync(fd); // the descriptor is still open
    });
  });
  it('rangeStream: a consumer that hands chunks back gets them reused; one that keeps them never sees reuse', async () => {
    const data = randomBytes(2_000_000);
    await withTempFile(data, 'r', async (fd) => {
      const hwm = 64 * 1024;
      // Recycling consumer: copies each chunk, then hands it back.
      const s1 = rangeStream(fd, 3, 1_999_000, hwm);
      const recycle = (s1 as RecyclingReadable)[RECYCLE_CHUNK];
      expect(recycle).to.be.a('function');
      const copies: Buffer[] = [];
      const mems = new Set<ArrayBufferLike>();
      for await (const c of s1) {
        copies.push(Buffer.from(c as Buffer));
        mems.add((c as Buffer).buffer);
        recycle!(c as Buffer);
      }
      expect(Buffer.concat(copies).equals(data.subarray(3, 1_999_000))).to.equal(true);
      expect(copies.length).to.be.above(20);
      expect(mems.size).to.be.at.most(4); // a small ring, not one buffer per chunk
      // Keeping consumer: every chunk is its own memory, none is overwritten later.
      const kept: Buffer[] = [];
      for await (const c of rangeStream(fd, 0, data.length, hwm)) kept.push(c as Buffer);
      expect(new Set(kept.map((c) => c.buffer)).size).to.equal(kept.length);
      expect(Buffer.concat(kept).equals(data)).to.equal(true);
    });
  });
});

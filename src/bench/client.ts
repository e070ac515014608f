/**
 * The bench's own POP3 client: a plain Node socket with noDelay, one command at a time, that
 * streams multi-line replies through an un-stuffing sink that counts and checksums them, so a
 * 1 GB RETR is verified in bounded memory. Every retrieved message is compared with the
 * generator's digest: its SHA-256, or for (e)'s 1 GB message its CRC-32 (3 GB/s against
 * SHA-256's 1.1 GB/s on the bench machine, which would otherwise bound the measured MB/s).
 */
import crypto from 'node:crypto';
import net from 'node:net';
import zlib from 'node:zlib';
import type { MessageDigest } from './generator.js';

/** Which checksum a sink computes over the un-stuffed wire form. */
export type Check = 'sha256' | 'crc32';

/** What a client retrieved: its size and the one checksum it was asked for. */
export interface Retrieved {
  readonly octets: number;
  readonly sha256?: string;
  readonly crc32?: number;
}

/** A reply line longer than this is a broken server, not a slow one. */
const MAX_STATUS_LINE = 4096;
/** No single step of a bench session should take longer; a hung peer fails the run instead of the bench. */
export const CLIENT_TIMEOUT_MS = 300_000;

const LF_DOT = Buffer.from('\n.');

/**
 * Receives the bytes of a multi-line reply after its status line: removes the stuffed dot of
 * lines starting with "..", stops at the ".\r\n" line, and hashes and counts everything else.
 * Only "\n." sequences need a look, so it runs at memory speed with Buffer.indexOf.
 */
export class MultilineSink {
  private readonly hash: crypto.Hash | null;
  private crc = 0;
  octets = 0;
  private atLineStart = true;
  private pending: Buffer | null = null;

  constructor(check: Check = 'sha256') {
    this.hash = check === 'sha256' ? crypto.createHash('sha256') : null;
  }

  /** Feeds bytes; returns the bytes after the terminating line once it is seen, else null. */
  feed(chunk: Buffer): Buffer | null {
    let data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let pos = 0;
    for (;;) {
      if (this.atLineStart) {
        if (pos >= data.length) return null;
        if (data[pos] === 0x2e) {
          if (data.length - pos < 3) {
            this.pending = data.subarray(pos);
            return null;
          }
          if (data[pos + 1] === 0x0d && data[pos + 2] === 0x0a) return data.subarray(pos + 3);
          if (data[pos + 1] === 0x2e) pos++; // stuffed: drop one dot
        }
        this.atLineStart = false;
      }
      const idx = data.indexOf(LF_DOT, pos);
      const end = idx === -1 ? data.length : idx + 1;
      this.update(data.subarray(pos, end));
      if (idx === -1) {
        this.atLineStart = data[data.length - 1] === 0x0a;
        return null;
      }
      pos = end;
      this.atLineStart = true;
    }
  }

  private update(b: Buffer): void {
    if (b.length === 0) return;
    if (this.hash) this.hash.update(b);
    else this.crc = zlib.crc32(b, this.crc);
    this.octets += b.length;
  }

  digest(): Retrieved {
    return this.hash ? { octets: this.octets, sha256: this.hash.digest('hex') } : { octets: this.octets, crc32: this.crc };
  }
}

export class Pop3Error extends Error {}

/** One POP3 connection. Replies are awaited one at a time. */
export class Pop3Client {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private sink: { s: MultilineSink; done: (d: Retrieved) => void } | null = null;
  private closed = false;
  private error: Error | null = null;
  private readonly closing: Promise<void>;

  private constructor(private readonly sock: net.Socket) {
    sock.setNoDelay(true);
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (e) => { this.error = e; this.wake(); });
    this.closing = new Promise((resolve) => sock.once('close', () => resolve()));
    sock.on('close', () => { this.closed = true; this.wake(); });
    sock.setTimeout(CLIENT_TIMEOUT_MS, () => { this.error = new Pop3Error('client timeout'); sock.destroy(); this.wake(); });
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<Pop3Client> {
    const sock = net.connect({ port, host });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const c = new Pop3Client(sock);
    await c.status(); // greeting
    return c;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private onData(chunk: Buffer): void {
    if (this.sink) {
      const rest = this.sink.s.feed(chunk);
      if (rest === null) return;
      const s = this.sink;
      this.sink = null;
      s.done(s.s.digest());
      if (rest.length === 0) return;
      chunk = rest;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    this.wake();
  }

  /** Reads one status line; throws on -ERR unless `allowErr`. */
  async status(allowErr = false): Promise<string> {
    for (;;) {
      const nl = this.buf.indexOf(0x0a);
      if (nl !== -1) {
        const line = this.buf.subarray(0, nl).toString('latin1').replace(/\r$/, '');
        this.buf = this.buf.subarray(nl + 1);
        if (!line.startsWith('+OK') && !allowErr) throw new Pop3Error(`server said: ${line}`);
        return line;
      }
      if (this.buf.length > MAX_STATUS_LINE) throw new Pop3Error('status line too long');
      if (this.error) throw this.error;
      if (this.closed) throw new Pop3Error('connection closed');
      await new Promise<void>((r) => { this.waiter = r; });
    }
  }

  async cmd(line: string, allowErr = false): Promise<string> {
    if (this.closed) throw new Pop3Error('connection closed');
    this.sock.write(line + '\r\n');
    return this.status(allowErr);
  }

  /** Sends a command with a multi-line reply and returns the size and checksum of its un-stuffed body. */
  async multi(line: string, check: Check = 'sha256'): Promise<Retrieved> {
    await this.cmd(line);
    const sink = new MultilineSink(check);
    return new Promise<Retrieved>((resolve, reject) => {
      const rest = this.buf;
      this.buf = Buffer.alloc(0);
      const after = rest.length ? sink.feed(rest) : null;
      if (after !== null) {
        this.buf = after;
        resolve(sink.digest());
        return;
      }
      this.sink = { s: sink, done: resolve };
      const check = () => {
        if (!this.sink) return;
        if (this.error || this.closed) { this.sink = null; reject(this.error ?? new Pop3Error('connection closed mid-reply')); return; }
        this.waiter = check;
      };
      this.waiter = check;
    });
  }

  async login(user: string, pass: string): Promise<void> {
    await this.cmd(`USER ${user}`);
    await this.cmd(`PASS ${pass}`);
  }

  async stat(): Promise<{ count: number; octets: number }> {
    const line = await this.cmd('STAT');
    const [, n, o] = line.split(/\s+/);
    return { count: Number(n), octets: Number(o) };
  }

  /**
   * QUIT; resolves when the server has answered. popspool answers at its update's commit point
   * and closes the connection once the spool is written: whenClosed() resolves then. The client
   * does not close its side first (a server's socket ends when its peer's does, which would
   * hide when the server itself is done).
   */
  async quit(): Promise<string> {
    const line = await this.cmd('QUIT', true);
    if (!line.startsWith('+OK')) throw new Pop3Error(`QUIT failed: ${line}`);
    return line;
  }

  /** Resolves when the server has closed the connection (after quit()), or the socket failed. */
  whenClosed(): Promise<void> {
    return this.closing;
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** Compares a retrieved digest with the expected one; returns a description of the mismatch or null. */
export function mismatch(got: Retrieved, want: MessageDigest | undefined): string | null {
  if (!want) return `unexpected message (${got.octets} octets)`;
  if (got.octets !== want.octets) return `${got.octets} octets, expected ${want.octets}`;
  if (got.sha256 !== undefined) return got.sha256 === want.sha256 ? null : `content differs (sha256 ${got.sha256.slice(0, 12)}…)`;
  if (got.crc32 !== undefined) return got.crc32 === want.crc32 ? null : `content differs (crc32 ${got.crc32.toString(16)})`;
  return 'no checksum was computed';
}

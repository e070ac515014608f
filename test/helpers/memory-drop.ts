/**
 * In-memory Drop/DropOpener test double for protocol-level tests: messages are byte strings
 * (or generated streams), and every update()/close() call is recorded so tests can assert
 * what the session asked of storage.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { LockBusyError, PopspoolError } from '../../src/errors.js';
import type { Drop, DropOpener, MessageList, UpdateOutcome, UpdateRequest } from '../../src/spool/drop.js';
import { listOf } from '../../src/spool/message-list.js';

/** RFC 1939 size of raw message bytes: each line (without LF/CRLF) + 2; +2 for an unterminated last line. */
export function wireSize(raw: Buffer): number {
  let size = 0;
  let start = 0;
  for (;;) {
    const nl = raw.indexOf(0x0a, start);
    if (nl < 0) break;
    const end = nl > start && raw[nl - 1] === 0x0d ? nl - 1 : nl;
    size += end - start + 2;
    start = nl + 1;
  }
  if (start < raw.length) size += raw.length - start + 2;
  return size;
}

/** A message: raw bytes, or a generator of a (possibly huge) stream with a declared size. */
export type MemoryMessage = string | Buffer | { readonly size: number; readonly uidl?: string; readonly stream: () => Readable };

export interface MemoryDropOptions {
  /** Chunk size used when streaming stored bytes (small values exercise chunk boundaries). */
  readonly chunkSize?: number;
  /** Make update() reject with this error. */
  readonly updateError?: Error;
  /** Make read(i) reject with this error. */
  readonly readError?: Error;
  /** Answer readSmall() with a stored message's bytes in one buffer, as the spool drops do for small messages. */
  readonly whole?: boolean;
}

export class MemoryDrop implements Drop {
  readonly messages: MessageList;
  readonly info = { mode: 'server' as const, lockWaitMs: 0, cache: 'none' as const };
  readonly updates: UpdateRequest[] = [];
  closes = 0;
  reads = 0;
  /** Streams handed out by read(), to check they were destroyed. */
  readonly streams: Readable[] = [];

  constructor(
    private readonly content: readonly MemoryMessage[],
    private readonly opts: MemoryDropOptions = {},
  ) {
    this.messages = listOf(content.map((m, i) => {
      if (typeof m === 'object' && !Buffer.isBuffer(m)) return { size: m.size, uidl: m.uidl ?? `gen-${i}` };
      const raw = Buffer.from(m);
      return { size: wireSize(raw), uidl: createHash('sha256').update(raw).update(String(i)).digest('hex').slice(0, 32) };
    }));
  }

  async read(index: number): Promise<Readable> {
    if (this.opts.readError) throw this.opts.readError;
    this.reads++;
    const m = this.content[index];
    if (m === undefined) throw new PopspoolError('SYS_TEMP', `no message ${index}`);
    let s: Readable;
    if (typeof m === 'object' && !Buffer.isBuffer(m)) s = m.stream();
    else {
      const raw = Buffer.from(m);
      const size = this.opts.chunkSize ?? 65536;
      const chunks: Buffer[] = [];
      for (let i = 0; i < raw.length; i += size) chunks.push(raw.subarray(i, i + size));
      s = Readable.from(chunks, { objectMode: false });
    }
    this.streams.push(s);
    return s;
  }

  async readSmall(index: number): Promise<Buffer | null> {
    const m = this.content[index];
    if (!this.opts.whole || m === undefined || (typeof m === 'object' && !Buffer.isBuffer(m))) return null;
    if (this.opts.readError) throw this.opts.readError;
    this.reads++;
    return Buffer.from(m);
  }

  async update(req: UpdateRequest): Promise<UpdateOutcome> {
    this.updates.push(req);
    if (this.opts.updateError) throw this.opts.updateError;
    const c = req.deleted.size === 0 ? 'untouched' : req.deleted.size === this.messages.length ? 'delete-all' : 'general';
    return { case: c, deleted: req.deleted.size, kept: this.messages.length - req.deleted.size, bytesRewritten: 0, lockWaitMs: 0, durationMs: 0 };
  }

  async close(): Promise<void> {
    this.closes++;
  }
}

/** Opens MemoryDrops per user; enforces one session per maildrop like the real one (IN_USE). */
export class MemoryDropOpener implements DropOpener {
  readonly opened: MemoryDrop[] = [];
  private readonly active = new Set<string>();
  /** Make open() reject for a user. */
  readonly openErrors = new Map<string, Error>();

  constructor(
    private readonly boxes: Record<string, readonly MemoryMessage[]>,
    private readonly opts: MemoryDropOptions = {},
  ) {}

  async open(user: string): Promise<Drop> {
    const e = this.openErrors.get(user);
    if (e) throw e;
    if (this.active.has(user)) throw new LockBusyError('Maildrop lock busy! Is another session active?');
    this.active.add(user);
    const drop = new MemoryDrop(this.boxes[user] ?? [], this.opts);
    const release = (): void => void this.active.delete(user);
    const update = drop.update.bind(drop);
    const close = drop.close.bind(drop);
    drop.update = async (req) => {
      try {
        return await update(req);
      } finally {
        release();
      }
    };
    drop.close = async () => {
      release();
      return close();
    };
    this.opened.push(drop);
    return drop;
  }
}

/** A simple Authenticator over a fixed table (tests only). */
export class TableAuthenticator {
  constructor(private readonly users: Record<string, string>) {}
  async verify(user: string, password: string): Promise<boolean> {
    return Object.hasOwn(this.users, user) && this.users[user] === password;
  }
}

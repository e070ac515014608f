/**
 * The Drop (maildrop) interface: everything the POP3 layer knows of storage. The protocol
 * layer never sees files, offsets or locks; the spool layer never sees sockets.
 */
import type { Readable } from 'node:stream';

/**
 * Chunk recycling, offered by a stream read() returns: `stream[RECYCLE_CHUNK]?.(chunk)` hands
 * back a chunk its consumer has completely finished with (nothing will read it again), to be
 * read into next. Consumers that keep chunks never call it. Without it a 1 GB RETR allocates
 * its 1 GB afresh, and the garbage collector's pace, not the data, sets the peak RSS.
 */
export const RECYCLE_CHUNK = Symbol('popspool.recycleChunk');
export type RecyclingReadable = Readable & { readonly [RECYCLE_CHUNK]?: (chunk: Buffer) => void };

/** One message as the session sees it (numbered from 1 by the protocol layer). */
export interface DropMessage {
  /** Exact RFC 1939 octet size (what LIST/STAT report). */
  readonly size: number;
  /** Unique-id listing value (RFC 1939 §7: 1–70 chars 0x21–0x7E). */
  readonly uidl: string;
}

/**
 * A drop's messages, read by 0-based index (message-list.ts makes them): the DropMessage of
 * each without an object per message. An index out of range throws a RangeError.
 */
export interface MessageList {
  readonly length: number;
  size(index: number): number;
  uidl(index: number): string;
  /** Sum of every message's size. */
  readonly octets: number;
}

/** Which branch of the update phase ran (DESIGN.md §1). */
export type UpdateCase = 'untouched' | 'flags' | 'delete-all' | 'general' | 'copy-back';

export interface UpdateOutcome {
  readonly case: UpdateCase;
  readonly deleted: number;
  readonly kept: number;
  readonly bytesRewritten: number;
  readonly lockWaitMs: number;
  readonly durationMs: number;
  /** When the outcome was answered at the commit point (UpdateRequest.onCommitted): ms from
   *  the start of the update to that answer; durationMs runs to the spool being written. */
  readonly answeredMs?: number;
}

export interface UpdateRequest {
  /** 0-based indexes of messages marked deleted. */
  readonly deleted: ReadonlySet<number>;
  /** 0-based indexes of messages retrieved (RETR, or TOP of the whole body): candidates for
   *  `Status: RO` when statusUpdate is on. */
  readonly seen: ReadonlySet<number>;
  /**
   * Called at most once, when a rewrite is durable (its journal written) and before the spool
   * itself is written: the outcome is decided, so the caller may answer its client. update()
   * still resolves only when the rewrite is complete and the locks are released; the session
   * lock is released before this call, so the client can log in again at once (its login then
   * waits for the mailbox lock). After this call update() does not reject: a failure to
   * finish is logged, and the journal completes the rewrite at the next lock or start-up.
   */
  readonly onCommitted?: () => void;
}

/**
 * Messages up to this size (From_ line included) are read in one positional read and sent in one
 * write: ~98 % of real mail, and a bounded buffer per session (a pipelining client waits on
 * socket backpressure between messages, so at most one such buffer is alive per session).
 */
export const ONE_READ_MAX = 256 * 1024;

export interface Drop {
  readonly messages: MessageList;
  /** How the drop was opened, for the session summary. */
  readonly info: {
    readonly mode: 'server' | 'copy'; readonly lockWaitMs: number; readonly cache: 'hit' | 'tail' | 'miss' | 'none';
    /** Spool bytes the scanner read to open this drop (0 on an exact cache hit). For metrics and tests. */
    readonly bytesScanned?: number;
  };
  /**
   * The raw bytes of message `index` (0-based): its headers and body exactly as stored, without
   * the From_ line and mbox separator. The protocol layer converts line endings and dot-stuffs.
   * Rejects with a PopspoolError (SYS_TEMP) when the spool changed underneath in a way other
   * than an append; the session should then end. The stream may offer chunk recycling
   * (RECYCLE_CHUNK below).
   */
  read(index: number): Promise<Readable>;
  /**
   * The same bytes in one buffer, after the same checks, when the message is small enough to
   * read at once (most mail); null means "use read()". Saves a stream per RETR.
   */
  readSmall?(index: number): Promise<Buffer | null>;
  /**
   * readSmall's answer without waiting, when the bytes are already in memory (read ahead while
   * the previous message went out), after the same checks (it throws what readSmall would
   * reject with); null means "ask readSmall()". Saves a promise and a thread-pool hop per RETR.
   */
  readHeld?(index: number): Buffer | null;
  /** The UPDATE phase (QUIT in TRANSACTION). Rejects with a PopspoolError; never loses mail. */
  update(req: UpdateRequest): Promise<UpdateOutcome>;
  /** End the session without updating (no QUIT, dropped connection, shutdown). Idempotent. */
  close(): Promise<void>;
}

/** Opens a user's maildrop after authentication. Rejects with PopspoolError (IN_USE, SYS_TEMP, SYS_PERM). */
export interface DropOpener {
  open(user: string): Promise<Drop>;
}

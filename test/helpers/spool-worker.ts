/**
 * A POP3 session's storage side as a child process, for the spool tests: locks belong to
 * processes, and fault injection (POPSPOOL_FAULT=crash:STEP) SIGKILLs the whole process.
 *
 *   node dist/test/helpers/spool-worker.js '<json WorkerArgs>'
 *
 * Opens a SpoolStore with the given settings, opens the user's drop, reads some messages,
 * optionally appends mail itself (an MDA delivering mid-session) or waits for a line on stdin,
 * then ends with update(), close(), nothing, or runs recoverAll(). Prints one JSON line per
 * event on stdout: {"event":"opened",...}, then {"event":"done",...} or {"event":"error",...}.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import readline from 'node:readline';
import { PopspoolError } from '../../src/errors.js';
import { DEFAULT_LOCK_OPTIONS, type LockMethod } from '../../src/lock/index.js';
import type { Drop } from '../../src/spool/drop.js';
import { SpoolStore } from '../../src/spool/store.js';
import { entries } from '../../src/spool/message-list.js';

export interface WorkerArgs {
  /** Spool path template with %u. */
  readonly spool: string;
  readonly user: string;
  readonly mode: 'server' | 'copy';
  readonly holdLock?: boolean;
  readonly statusUpdate?: boolean;
  readonly stateDir: string;
  readonly locks?: readonly LockMethod[];
  readonly lockTimeoutMs?: number;
  /** 0-based indexes of messages to read in full (their sha256 and length are reported). */
  readonly read?: readonly number[];
  /** Bytes (utf8) to append to the spool after the drop is open, as an unlocked MDA would. */
  readonly appendAfterOpen?: string;
  /** Print "opened", then wait for one line on stdin before ending the session. */
  readonly waitStdin?: boolean;
  readonly action: 'update' | 'close' | 'none' | 'recoverAll';
  readonly deleted?: readonly number[];
  readonly seen?: readonly number[];
}

export interface WorkerMessage { readonly size: number; readonly uidl: string }

export type WorkerEvent =
  | { event: 'opened'; messages: WorkerMessage[]; info: Drop['info'] }
  | { event: 'read'; index: number; length: number; sha256: string; base64?: string }
  | { event: 'committed' }
  | { event: 'done'; outcome: unknown }
  | { event: 'error'; phase: string; code: string; message: string };

/** Messages up to this size are also reported verbatim (base64), so tests can compare bytes. */
const VERBATIM_MAX = 64 * 1024;

function emit(e: WorkerEvent): void {
  process.stdout.write(`${JSON.stringify(e)}\n`);
}

function fail(phase: string, err: unknown): never {
  const code = err instanceof PopspoolError ? err.code : ((err as NodeJS.ErrnoException).code ?? 'UNKNOWN');
  emit({ event: 'error', phase, code, message: (err as Error).message });
  process.exit(3);
}

async function readAll(drop: Drop, index: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await drop.read(index)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function waitLine(): Promise<void> {
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => {
    rl.once('line', () => resolve());
    rl.once('close', () => resolve());
  });
  rl.close();
}

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2] ?? '{}') as WorkerArgs;
  const store = new SpoolStore({
    spool: a.spool,
    mode: a.mode,
    holdLock: a.holdLock ?? false,
    statusUpdate: a.statusUpdate ?? false,
    scanOptions: { strictFrom: false },
    lock: { ...DEFAULT_LOCK_OPTIONS, methods: a.locks ?? DEFAULT_LOCK_OPTIONS.methods, timeoutMs: a.lockTimeoutMs ?? 5_000 },
    stateDir: a.stateDir,
  });
  if (a.action === 'recoverAll') {
    const n = await store.recoverAll().catch((err: unknown) => fail('recoverAll', err));
    emit({ event: 'done', outcome: { recovered: n } });
    return;
  }
  const drop = await store.open(a.user).catch((err: unknown) => fail('open', err));
  emit({ event: 'opened', messages: entries(drop.messages).map((m) => ({ size: m.size, uidl: m.uidl })), info: drop.info });
  for (const i of a.read ?? []) {
    const body = await readAll(drop, i).catch((err: unknown) => fail('read', err));
    emit({
      event: 'read', index: i, length: body.length, sha256: createHash('sha256').update(body).digest('hex'),
      ...(body.length <= VERBATIM_MAX ? { base64: body.toString('base64') } : {}),
    });
  }
  if (a.appendAfterOpen !== undefined) fs.appendFileSync(a.spool.replaceAll('%u', a.user), a.appendAfterOpen);
  if (a.waitStdin) await waitLine();
  if (a.action === 'update') {
    // As a session does: the QUIT's +OK goes out at the commit point (an event here).
    const outcome = await drop.update({
      deleted: new Set(a.deleted ?? []), seen: new Set(a.seen ?? []), onCommitted: () => emit({ event: 'committed' }),
    }).catch((err: unknown) => fail('update', err));
    emit({ event: 'done', outcome });
  } else if (a.action === 'close') {
    await drop.close().catch((err: unknown) => fail('close', err));
    emit({ event: 'done', outcome: 'closed' });
  } else {
    emit({ event: 'done', outcome: 'left open' });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => fail('main', err),
);

/**
 * Shared helpers of the spool-engine tests: a private sandbox per test (spool dir + state dir),
 * generated mbox messages, the spool-worker child process, real procmail deliveries, and
 * liblockfile's way of breaking a dead process's dotlock.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_LOCK_OPTIONS } from '../../src/lock/index.js';
import { log } from '../../src/obs/log.js';
import { backgroundSettled } from '../../src/spool/background.js';
import { SpoolStore, type SpoolSettings } from '../../src/spool/store.js';
import type { WorkerArgs, WorkerEvent } from './spool-worker.js';

export const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'spool-worker.js');

/** No child may outlive this, whatever a test does. */
const CHILD_HARD_LIMIT_MS = 30_000;

/** Silence the engine's log (recoveries and refusals are expected here); returns the restorer. */
export function quietLogs(): () => void {
  const old = log.silent;
  log.silent = true;
  return () => { log.silent = old; };
}

// ---------------------------------------------------------------------------------------------
// Messages

/** A deterministic pseudo-random generator (mulberry32), so failures can be replayed by seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One mbox message with its separator: From_ line, headers (unique Received/Message-ID), an
 * optional Status header, `bodyLines` body lines, then the empty separator line.
 */
export function message(id: string, opts: { bodyLines?: number; status?: string; crlf?: boolean } = {}): string {
  const lines = [
    `From sender-${id}@example.org Mon Jan  1 00:00:00 2024`,
    `Received: from host-${id}.example.org by mx.example.org; Mon, 1 Jan 2024 00:00:00 +0000`,
    `Message-ID: <${id}@example.org>`,
    `From: sender-${id}@example.org`,
    `Subject: message ${id}`,
  ];
  if (opts.status !== undefined) lines.push(`Status: ${opts.status}`);
  lines.push('');
  const n = opts.bodyLines ?? 3;
  for (let i = 0; i < n; i++) lines.push(`body ${id} line ${i} ${'x'.repeat((i * 7) % 50)}`);
  const eol = opts.crlf ? '\r\n' : '\n';
  return lines.join(eol) + eol + eol;
}

/** A message as procmail -m stores it: procmail adds the separating empty line itself. */
export function mdaMessage(id: string): { input: string; stored: string } {
  const stored = message(id, { bodyLines: 2 });
  return { input: stored.slice(0, -1), stored };
}

/** Splits a spool made of message() blobs at every From_ line that follows an empty line. */
export function splitMbox(buf: Buffer | string): string[] {
  const s = typeof buf === 'string' ? buf : buf.toString('latin1');
  if (s === '') return [];
  return s.split(/(?<=\n\n)(?=From )/);
}

// ---------------------------------------------------------------------------------------------
// Sandbox

export class Sandbox {
  readonly dir: string;
  readonly spoolDir: string;
  readonly stateDir: string;
  readonly user: string;
  readonly spool: string;
  readonly template: string;

  constructor(user = 'alice') {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-spool-'));
    this.spoolDir = path.join(this.dir, 'mail');
    this.stateDir = path.join(this.dir, 'state');
    fs.mkdirSync(this.spoolDir);
    this.user = user;
    this.template = path.join(this.spoolDir, '%u');
    this.spool = path.join(this.spoolDir, user);
  }

  write(content: string | Buffer, mode = 0o600): void {
    fs.writeFileSync(this.spool, content);
    fs.chmodSync(this.spool, mode);
  }

  read(): Buffer {
    return fs.readFileSync(this.spool);
  }

  settings(over: Partial<SpoolSettings> = {}): SpoolSettings {
    return {
      spool: this.template, mode: 'server', holdLock: false, statusUpdate: false,
      scanOptions: { strictFrom: false },
      lock: { ...DEFAULT_LOCK_OPTIONS, timeoutMs: 3_000 },
      stateDir: this.stateDir, ...over,
    };
  }

  store(over: Partial<SpoolSettings> = {}): SpoolStore {
    return new SpoolStore(this.settings(over));
  }

  workerArgs(over: Partial<WorkerArgs> & Pick<WorkerArgs, 'action'>): WorkerArgs {
    return { spool: this.template, user: this.user, mode: 'server', stateDir: this.stateDir, lockTimeoutMs: 3_000, ...over };
  }

  /** Files left in the state directory's journal/ and drops/ (recovery must leave none), once
   *  the work left running after replies (background.ts) is done. */
  async pendingFiles(): Promise<string[]> {
    await backgroundSettled();
    const out: string[] = [];
    for (const sub of ['journal', 'drops']) {
      const d = path.join(this.stateDir, sub);
      if (fs.existsSync(d)) out.push(...fs.readdirSync(d).map((n) => `${sub}/${n}`));
    }
    return out;
  }

  /** Removes the sandbox once the work left running after replies (a cache file written after
   *  a login's +OK, an image removed after an update) is done: removed before, the directory
   *  could be made again by it. */
  async cleanup(): Promise<void> {
    await backgroundSettled();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Child processes

export interface Proc {
  readonly proc: ChildProcess;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  events(): WorkerEvent[];
  /** Exit code and signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  send(line: string): void;
}

const live = new Set<Proc>();

export function start(cmd: string, args: readonly string[], opts: { input?: string | Buffer; env?: Record<string, string>; keepStdin?: boolean } = {}): Proc {
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  proc.stdin!.on('error', () => undefined);
  if (opts.input !== undefined || !opts.keepStdin) proc.stdin!.end(opts.input ?? '');
  const limit = setTimeout(() => proc.kill('SIGKILL'), CHILD_HARD_LIMIT_MS);
  limit.unref();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    proc.on('error', (e) => {
      err += String(e);
      res({ code: -1, signal: null });
    });
    proc.on('close', (code, signal) => res({ code, signal }));
  }).finally(() => {
    clearTimeout(limit);
    live.delete(p);
  });
  const p: Proc = {
    proc, pid: proc.pid ?? -1, stdout: () => out, stderr: () => err, exited,
    events: () => out.split('\n').filter((l) => l.startsWith('{"event"')).map((l) => JSON.parse(l) as WorkerEvent),
    send: (line: string) => { proc.stdin!.write(`${line}\n`); },
  };
  live.add(p);
  return p;
}

/** SIGKILL every child still running and wait for them (afterEach). */
export async function killAll(): Promise<void> {
  const all = [...live];
  for (const c of all) c.proc.kill('SIGKILL');
  await Promise.all(all.map((c) => c.exited));
}

export function startWorker(args: WorkerArgs, env: Record<string, string> = {}): Proc {
  return start(process.execPath, [WORKER, JSON.stringify(args)], { env, keepStdin: args.waitStdin === true });
}

export interface WorkerResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  events: WorkerEvent[];
  stderr: string;
  opened?: Extract<WorkerEvent, { event: 'opened' }>;
  done?: Extract<WorkerEvent, { event: 'done' }>;
  error?: Extract<WorkerEvent, { event: 'error' }>;
  reads: Extract<WorkerEvent, { event: 'read' }>[];
}

export async function finish(p: Proc): Promise<WorkerResult> {
  const { code, signal } = await p.exited;
  const events = p.events();
  return {
    code, signal, events, stderr: p.stderr(),
    opened: events.find((e) => e.event === 'opened') as WorkerResult['opened'],
    done: events.find((e) => e.event === 'done') as WorkerResult['done'],
    error: events.find((e) => e.event === 'error') as WorkerResult['error'],
    reads: events.filter((e) => e.event === 'read') as WorkerResult['reads'],
  };
}

export async function runWorker(args: WorkerArgs, env: Record<string, string> = {}): Promise<WorkerResult> {
  return finish(startWorker(args, env));
}

/** Poll until `check` holds; throws `what` after timeoutMs. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------------------------------------
// Real MDA

/** Starts `procmail -m RC` delivering `input` to `spool` (it waits for dotlock + fcntl locks). */
export function startProcmail(spool: string, input: string): Proc {
  const rc = `${spool}.procmailrc-${process.pid}-${Math.random().toString(36).slice(2)}`;
  // LOCKSLEEP=1: retry a busy lock every second (the default is 8). LOCKTIMEOUT stays at its
  // default (1024 s): procmail must never break our live dotlock in these tests.
  fs.writeFileSync(rc, `DEFAULT=${spool}\nLOCKSLEEP=1\nLOGFILE=${spool}.procmail.log\n`);
  const p = start('procmail', ['-m', rc], { input });
  void p.exited.then(() => fs.rmSync(rc, { force: true }));
  return p;
}

export async function procmailDeliver(spool: string, input: string): Promise<void> {
  const r = await startProcmail(spool, input).exited;
  if (r.code !== 0) throw new Error(`procmail failed: ${JSON.stringify(r)}`);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * After a SIGKILL our dotlock SPOOL.lock is left behind holding a dead pid. procmail would
 * wait LOCKTIMEOUT (1024 s) before breaking it; liblockfile (Postfix/Exim with it, mutt's
 * dotlock helper) breaks it at once because the pid is dead. Do what liblockfile does, with
 * liblockfile itself: `dotlockfile -l -p -r 0` takes the lock (breaking the stale one), `-u`
 * gives it back. A dotlock of a live process is left alone. Returns true if one was broken.
 */
export async function breakStaleDotlock(spool: string): Promise<boolean> {
  const lock = `${spool}.lock`;
  let content: string;
  try {
    content = fs.readFileSync(lock, 'latin1');
  } catch {
    return false;
  }
  const pid = Number.parseInt(content, 10);
  if (!(pid > 0) || pidAlive(pid)) return false;
  const took = await start('dotlockfile', ['-l', '-p', '-r', '0', lock]).exited;
  if (took.code !== 0) return false; // someone else (alive) got it first
  await start('dotlockfile', ['-u', lock]).exited;
  return true;
}

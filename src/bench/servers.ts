/**
 * Bench targets: a POP3 server under test, started as a child process on loopback with a
 * throwaway configuration. popspool runs in copy mode, server mode and server mode + holdLock;
 * its CPU seconds and peak RSS are read from /proc (VmHWM, reset per run through clear_refs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../cli/node-flags.js';

/** How long a server may take to start accepting connections. */
const START_TIMEOUT_MS = 20_000;
/** Linux USER_HZ: /proc/PID/stat counts CPU time in these ticks. */
const CLK_TCK = 100;

export const POPSPOOL_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/popspool');

/** The shared bench environment every target serves. */
export interface BenchEnv {
  /** Working directory of this run (removed at the end). */
  readonly root: string;
  /** Directory of working spools, one file per user: what every server serves. */
  readonly spoolDir: string;
  /** popspool/Dovecot passwd-file (`name:{PLAIN}password`). */
  readonly usersFile: string;
  readonly password: string;
  /** Owner of the working spools when system users exist (peers switch to it); else root. */
  readonly uid: number;
  readonly gid: number;
}

export interface ProcUsage {
  /** User + system CPU seconds so far. */
  readonly cpu: number;
  /** Of which system (kernel) CPU seconds. */
  readonly sys: number;
  /** Peak resident set since the last reset, bytes. */
  readonly peakRss: number;
}

export interface Target {
  /** Short id used in tables: copy, server, server+hold, dovecot, mailutils, popa3d. */
  readonly name: string;
  readonly isPeer: boolean;
  readonly port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Forgets what the server cached about `user`'s spool (the caller has already changed its mtime). */
  makeCold(user: string): void;
  /** Server processes sharing the listener (popspool `server×N`); absent means one. */
  readonly workers?: number;
  /** Measurable process (popspool only). */
  usage?(): ProcUsage | null;
  resetPeak?(): void;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once the port answers with a POP3 greeting. */
export async function waitForGreeting(port: number, child?: ChildProcess, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before listening`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      let got = '';
      s.setTimeout(2000, () => { s.destroy(); resolve(false); });
      s.on('data', (d) => {
        got += d;
        if (got.includes('\n')) { s.end('QUIT\r\n'); s.destroy(); resolve(got.startsWith('+OK')); }
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`no POP3 greeting on port ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `pid` and its descendants (node:cluster workers), from the ppid fields of /proc/N/stat. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch {
      // exited while we looked
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
}

/** CPU seconds and peak RSS summed over a process tree (the peak sum is an upper bound of the tree's peak). */
export function treeUsage(pid: number): ProcUsage | null {
  const parts = processTree(pid).map(procUsage).filter((u): u is ProcUsage => u !== null);
  if (!parts.length) return null;
  return { cpu: parts.reduce((a, u) => a + u.cpu, 0), sys: parts.reduce((a, u) => a + u.sys, 0), peakRss: parts.reduce((a, u) => a + u.peakRss, 0) };
}

export function procUsage(pid: number): ProcUsage | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const sys = Number(fields[12]) / CLK_TCK;
    const cpu = Number(fields[11]) / CLK_TCK + sys; // utime, stime (fields 14, 15)
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    return { cpu, sys, peakRss: hwm ? Number(hwm[1]) * 1024 : 0 };
  } catch {
    return null;
  }
}

/** Resets VmHWM to the current RSS (Linux ≥ 4.0, needs ptrace access to the process: ours). */
export function resetPeakRss(pid: number): void {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // older kernel or no permission: the peak then covers the process lifetime
  }
}

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

/** popspool configurations: `server×N` is server mode with `--workers N` (node:cluster). */
export type PopspoolVariant = 'copy' | 'server' | 'server+hold' | `server×${number}`;

/** The worker count of a `server×N` variant, 1 for the others. */
export function variantWorkers(v: PopspoolVariant): number {
  const m = /^server×(\d+)$/.exec(v);
  return m ? Number(m[1]) : 1;
}

/** popspool as a child process: `popspool serve` with a private state directory. */
export class PopspoolTarget implements Target {
  readonly isPeer = false;
  port = 0;
  private child: ChildProcess | null = null;
  private readonly stateDir: string;
  private stderr = '';
  /** node:cluster workers (`server×N`), 1 otherwise. */
  readonly workers: number;

  constructor(readonly name: PopspoolVariant, private readonly env: BenchEnv) {
    this.workers = variantWorkers(name);
    this.stateDir = path.join(env.root, `state-${name.replace(/[^a-z0-9]/g, '-')}`);
  }

  async start(): Promise<void> {
    fs.rmSync(this.stateDir, { recursive: true, force: true });
    fs.mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    this.port = await freePort();
    const args = [POPSPOOL_BIN, 'serve', '--listen', `127.0.0.1:${this.port}`, '--spool', path.join(this.env.spoolDir, '%u'),
      '--users', this.env.usersFile, '--state-dir', this.stateDir, '--mode', this.name === 'copy' ? 'copy' : 'server',
      '--max-connections', '20000', '--max-per-ip', '20000', '--lock-timeout', '60', '--log-level', 'warn'];
    if (this.name === 'server+hold') args.push('--hold-lock');
    if (this.workers > 1) args.push('--workers', String(this.workers));
    const child = spawn(process.execPath, [...NODE_FLAGS, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d) => { this.stderr = (this.stderr + d).slice(-4000); });
    this.child = child;
    try {
      await waitForGreeting(this.port, child);
    } catch (err) {
      throw new Error(`popspool ${this.name}: ${(err as Error).message}; stderr: ${this.stderr.trim()}`);
    }
  }

  /** Warnings popspool logged (the bench runs it at --log-level warn). */
  get log(): string {
    return this.stderr;
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child);
    this.child = null;
    fs.rmSync(this.stateDir, { recursive: true, force: true });
  }

  makeCold(user: string): void {
    // The spool's mtime already changed, so the cache key misses; removing the file also
    // rules out the "spool grew" tail reuse.
    fs.rmSync(path.join(this.stateDir, 'cache', `${user}.cache`), { force: true });
  }

  usage(): ProcUsage | null {
    if (!this.child?.pid) return null;
    return this.workers > 1 ? treeUsage(this.child.pid) : procUsage(this.child.pid);
  }

  resetPeak(): void {
    if (!this.child?.pid) return;
    for (const pid of this.workers > 1 ? processTree(this.child.pid) : [this.child.pid]) resetPeakRss(pid);
  }
}

/**
 * What the workloads share: the result store (samples per target × measurement, with server
 * CPU and peak RSS), the record of verification failures, working-spool management (restore
 * from the generated template, force a cold start) and the progress display on stderr.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Manifest, MessageDigest } from './generator.js';
import type { BenchOptions } from './options.js';
import type { BenchEnv, Target } from './servers.js';
import { fmt } from './svg.js';

export type Better = 'lower' | 'higher';

/** Pause before each measured repetition: popspool writes its cache file 200 ms after a login reply. */
export const SETTLE_MS = 300;

export interface Series {
  readonly target: string;
  /** Measurement key, e.g. "a.warm/50k", "b.mbps/10k". */
  readonly key: string;
  readonly unit: string;
  readonly better: Better;
  readonly values: number[];
  /** Server CPU seconds and peak RSS (bytes) per run, popspool only. */
  readonly cpu: number[];
  readonly rss: number[];
}

export interface Failure {
  readonly target: string;
  readonly what: string;
  readonly detail: string;
  /** Failures of peers are reported; only popspool's make the bench exit non-zero. */
  readonly fatal: boolean;
}

export class Results {
  readonly series = new Map<string, Series>();
  readonly failures: Failure[] = [];
  readonly notes: string[] = [];
  /** Extra per-target numbers for the report (messages lost, failures in f, …). */
  readonly counters = new Map<string, number>();
  /** While set (a warm-up repetition), add() and count() keep nothing; fail() still records. */
  muted = false;
  /** What add() kept since the last takeRecent(): the progress line of each repetition shows it. */
  private recent: string[] = [];

  add(target: string, key: string, value: number, unit: string, better: Better, usage?: { cpu: number; rss: number }): void {
    if (this.muted) return;
    const id = `${target}|${key}`;
    let s = this.series.get(id);
    if (!s) {
      s = { target, key, unit, better, values: [], cpu: [], rss: [] };
      this.series.set(id, s);
    }
    s.values.push(value);
    this.recent.push(`${key} ${fmt(value)}${unit === 's' ? ' s' : ` ${unit}`}`);
    if (usage) {
      s.cpu.push(usage.cpu);
      s.rss.push(usage.rss);
    }
  }

  /** The values kept since the last call, as "key value unit" (a repetition's own figures). */
  takeRecent(): string[] {
    const r = this.recent;
    this.recent = [];
    return r;
  }

  get(target: string, key: string): Series | undefined {
    return this.series.get(`${target}|${key}`);
  }

  count(target: string, key: string, n: number): void {
    if (this.muted) return;
    const id = `${target}|${key}`;
    this.counters.set(id, (this.counters.get(id) ?? 0) + n);
  }

  fail(target: Target, what: string, detail: string): void {
    this.failures.push({ target: target.name, what, detail, fatal: !target.isPeer });
  }
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** A generated mailbox: its user, template file and digests. */
export interface Mailbox {
  readonly user: string;
  readonly template: string;
  readonly manifest: Manifest;
  /** Label used in measurement keys: "1k", "50k", "1g". */
  readonly label: string;
}

export function totalOctets(msgs: readonly MessageDigest[]): number {
  return msgs.reduce((n, m) => n + m.octets, 0);
}

/** Progress lines on stderr: elapsed time, step counter, what runs now. */
export class Progress {
  private readonly t0 = Date.now();
  private n = 0;
  constructor(private readonly total: number) {}

  private stamp(): string {
    const s = Math.floor((Date.now() - this.t0) / 1000);
    return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  }

  step(label: string): void {
    this.n++;
    process.stderr.write(`[${this.stamp()}] (${this.n}/${this.total}) ${label}\n`);
  }

  /** Steps that will not run (a server skipped or unable to start), said once. */
  skip(steps: number, text: string): void {
    this.n += steps;
    process.stderr.write(`[${this.stamp()}] (${this.n}/${this.total}) ${text}\n`);
  }

  info(text: string): void {
    process.stderr.write(`[${this.stamp()}]   ${text}\n`);
  }
}

/** How many back-dated seconds the next restore uses; each restore gets a distinct mtime. */
let mtimeCounter = 0;

/**
 * Working spools. Each user's spool is copied from its template when it is not known to be
 * pristine (a workload changed it, or a peer rewrote headers), and is back-dated: popa3d sleeps
 * a second when a spool's mtime is in the current second, which would measure its politeness.
 */
export class Spools {
  private readonly pristine = new Map<string, string>();

  constructor(private readonly env: BenchEnv) {}

  file(user: string): string {
    return path.join(this.env.spoolDir, user);
  }

  private signature(user: string): string | null {
    try {
      const st = fs.statSync(this.file(user), { bigint: true });
      return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    } catch {
      return null;
    }
  }

  private backdate(user: string): void {
    const t = Date.now() / 1000 - 3600 + (mtimeCounter++ % 3000);
    fs.utimesSync(this.file(user), t, t);
  }

  restore(user: string, template: string): void {
    const file = this.file(user);
    fs.copyFileSync(template, file);
    fs.chownSync(file, this.env.uid, this.env.gid);
    fs.chmodSync(file, 0o600);
    this.backdate(user);
    // On disk before the measured session: a spool at rest, not writeback of the bench's own
    // copy. Otherwise the first fsync any server makes (popspool's update commits with one; on
    // ext4 a file's fdatasync can wait for other files' dirty data) pays for flushing this copy,
    // and a cold scan competes with its writeback.
    const fd = fs.openSync(file, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    this.pristine.set(user, `${template}|${this.signature(user)}`);
  }

  /** Restores the spool unless it is byte-for-byte the template already (same inode, size, times). */
  ensurePristine(user: string, template: string): void {
    if (this.pristine.get(user) !== `${template}|${this.signature(user)}`) this.restore(user, template);
  }

  /** Makes the next session a cold one: the spool "changed" (new mtime) and the server's cache is gone. */
  makeCold(user: string, template: string, target: Target): void {
    this.ensurePristine(user, template);
    this.backdate(user);
    this.pristine.set(user, `${template}|${this.signature(user)}`);
    target.makeCold(user);
  }

  forget(user: string): void {
    this.pristine.delete(user);
  }
}

/** Everything a workload needs. */
export interface Ctx {
  readonly opts: BenchOptions;
  readonly env: BenchEnv;
  readonly results: Results;
  readonly progress: Progress;
  readonly spools: Spools;
  /** python3 is there and not disabled: workloads b and c use its clients (pyclient.ts). */
  readonly python: boolean;
  /** Per server: whether the pipelining client found PIPELINING in its CAPA and used it. */
  readonly pipelined: Map<string, boolean>;
}

/** Runs `fn` and returns its wall seconds plus the server's CPU seconds and peak RSS during it. */
export async function measured<T>(target: Target, fn: () => Promise<T>): Promise<{ seconds: number; usage?: { cpu: number; rss: number }; value: T }> {
  target.resetPeak?.();
  const u0 = target.usage?.() ?? null;
  const t0 = process.hrtime.bigint();
  const value = await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const u1 = target.usage?.() ?? null;
  const usage = u0 && u1 ? { cpu: u1.cpu - u0.cpu, rss: u1.peakRss } : undefined;
  return usage ? { seconds, usage, value } : { seconds, value };
}

/**
 * `popspool bench --profile`: where popspool's time goes in the workloads whose targets it
 * misses. Each scenario runs a `popspool serve` child under `node --cpu-prof` (one profile per
 * thread: the main thread, the scan worker, the crypt pool), drives it with the bench client,
 * stops it with SIGTERM (the server drains and exits, which writes the profiles) and sums self
 * time per function over all threads. Writes OUT/bench/profiles.md; the report links to it.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pop3Client } from './client.js';
import { cachedMailbox, type Manifest } from './generator.js';
import type { BenchHash, BenchOptions, WorkloadId } from './options.js';
import { NODE_FLAGS } from '../cli/node-flags.js';
import { writeCredentials } from './credentials.js';
import { pythonSession } from './pyclient.js';
import { freePort, procUsage, waitForGreeting } from './servers.js';

const POPSPOOL_BIN = fileURLToPath(new URL('../../../bin/popspool', import.meta.url));
/** Rows per scenario in the report: the functions that matter, not the long tail. */
const TOP_FUNCTIONS = 14;
/** Sessions per scenario: enough samples for stable shares, short enough to run in minutes. */
const COLD_SESSIONS = 3;
const WARM_SESSIONS = 30;
const FIRST_LOGINS = 100;
const PASSWORD = 'bench-Pw-1939';

interface Scenario {
  readonly name: string;
  readonly what: string;
  readonly mailbox: { label: string; count: number };
  readonly scheme: BenchHash;
  /** Runs before the profiled window (a warm-up whose cost is another workload's business). */
  prepare?(c: ScenarioCtx): Promise<void>;
  /** The profiled window; a scenario that counts its commands returns them, with what its client spent. */
  run(c: ScenarioCtx): Promise<PerCommand | void>;
}

/** For a per-command account: the commands run, the client's CPU and its command loop's wall time (seconds). */
interface PerCommand {
  readonly command: string;
  readonly count: number;
  readonly clientCpu: number;
  readonly clientWall: number;
}

interface ScenarioCtx {
  readonly port: number;
  readonly spool: string;
  readonly template: string;
  readonly manifest: Manifest;
  readonly users: readonly string[];
}

async function session(port: number, user: string, body: (c: Pop3Client) => Promise<void>): Promise<void> {
  const c = await Pop3Client.connect(port);
  try {
    await c.login(user, PASSWORD);
    await body(c);
    await c.quit();
    // Until the server closes: an update answered at its commit point is still writing the
    // spool, which the next scenario step may restore (unlocked) from its template.
    await c.whenClosed();
  } finally {
    c.destroy();
  }
}

/** Download-all sessions of a python3 client, each verified; what they cost the client. */
async function downloads(c: ScenarioCtx, kind: 'quickack' | 'pipelined', sessions = COLD_SESSIONS): Promise<PerCommand> {
  let clientCpu = 0;
  let clientWall = 0;
  for (let i = 0; i < sessions; i++) {
    const r = await pythonSession(kind, c.port, c.users[0]!, PASSWORD, c.manifest.messages);
    if (r.badCount) throw new Error(`${r.badCount} messages failed to verify`);
    clientCpu += r.cpu;
    clientWall += r.retr;
  }
  return { command: 'RETR', count: sessions * c.manifest.count, clientCpu, clientWall };
}

const SCENARIOS: readonly Scenario[] = [
  {
    name: 'a-cold-50k', what: `(a) cold check-mail on 50k (${COLD_SESSIONS} sessions; the spool's mtime is moved and the cache removed before each)`,
    mailbox: { label: '50k', count: 50_000 }, scheme: 'plain',
    async run(c) {
      for (let i = 0; i < COLD_SESSIONS; i++) {
        const t = new Date(Date.now() + (i + 1) * 1000);
        fs.utimesSync(c.spool, t, t);
        await session(c.port, c.users[0]!, async (p) => { await p.stat(); });
      }
    },
  },
  {
    name: 'a-warm-50k', what: `(a) warm check-mail on 50k (${WARM_SESSIONS} sessions after one that scanned and wrote the cache file)`,
    mailbox: { label: '50k', count: 50_000 }, scheme: 'plain',
    async prepare(c) {
      await session(c.port, c.users[0]!, async (p) => { await p.stat(); });
    },
    async run(c) {
      for (let i = 0; i < WARM_SESSIONS; i++) await session(c.port, c.users[0]!, async (p) => { await p.stat(); });
    },
  },
  {
    name: 'b-download-1k', what: `(b) download all of 1k, keep (${COLD_SESSIONS} sessions of the pipelining python3 client after one unmeasured; RETR every message; the spool already scanned)`,
    mailbox: { label: '1k', count: 1000 }, scheme: 'plain',
    async prepare(c) {
      await session(c.port, c.users[0]!, async () => undefined); // the scan: workload a's business
      await downloads(c, 'pipelined', 1); // and the JIT's first compiles: as the bench's warm-up
    },
    run: (c) => downloads(c, 'pipelined'),
  },
  {
    name: 'b-lockstep-1k', what: `(b) download all of 1k, keep, lockstep (${COLD_SESSIONS} sessions of the python3 QUICKACK client after one unmeasured, one command at a time; the spool already scanned)`,
    mailbox: { label: '1k', count: 1000 }, scheme: 'plain',
    async prepare(c) {
      await session(c.port, c.users[0]!, async () => undefined);
      await downloads(c, 'quickack', 1);
    },
    run: (c) => downloads(c, 'quickack'),
  },
  {
    name: 'd-delete10-1k', what: `(d) delete 10% of 1k, QUIT (${COLD_SESSIONS} sessions, a pristine spool each)`,
    mailbox: { label: '1k', count: 1000 }, scheme: 'plain',
    async run(c) {
      for (let i = 0; i < COLD_SESSIONS; i++) {
        fs.copyFileSync(c.template, c.spool);
        await session(c.port, c.users[0]!, async (p) => {
          for (let k = 0; k < c.manifest.count; k++) if (k % 10 === 5) await p.cmd(`DELE ${k + 1}`);
        });
      }
    },
  },
  {
    name: 'f-first-logins', what: `(f) ${FIRST_LOGINS} first logins with SHA512-CRYPT (5000 rounds), 10 at once, small mailboxes`,
    mailbox: { label: '1k', count: 1000 }, scheme: 'sha512-crypt',
    async run(c) {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < c.users.length) {
          const u = c.users[next++]!;
          await session(c.port, u, async (p) => { await p.stat(); });
        }
      };
      await Promise.all(Array.from({ length: 10 }, worker));
    },
  },
];

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; samples: number[]; timeDeltas: number[] }

/** Seconds spread over `count` commands, in whole µs. */
const usEach = (seconds: number, count: number): string => ((seconds * 1e6) / count).toFixed(0);

/** Now on the clock V8 stamps profile samples with (CLOCK_MONOTONIC, µs). */
const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * Self time (ms) per function, summed over every profile in `dir`, counting only samples taken
 * within [fromUs, toUs] (the scenario, not the server's start-up); idle apart.
 */
function summarize(dir: string, fromUs: number, toUs: number): { rows: [string, number][]; busyMs: number; idleMs: number; threads: number } {
  const self = new Map<string, number>();
  let idle = 0;
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  for (const f of files) {
    const p = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as CpuProfile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    let at = p.startTime;
    for (let i = 0; i < p.samples.length; i++) {
      const us = p.timeDeltas[i] ?? 0;
      at += us;
      if (at < fromUs || at > toUs) continue;
      const n = byId.get(p.samples[i]!);
      if (!n) continue;
      const fn = n.callFrame.functionName || '(anonymous)';
      if (fn === '(idle)') { idle += us; continue; }
      const file = n.callFrame.url ? ` ${n.callFrame.url.split('/').slice(-2).join('/')}` : '';
      const key = `${fn}${file}`;
      self.set(key, (self.get(key) ?? 0) + us);
    }
  }
  const rows = [...self].map(([k, us]): [string, number] => [k, us / 1000]).sort((a, b) => b[1] - a[1]);
  return { rows, busyMs: rows.reduce((a, r) => a + r[1], 0), idleMs: idle / 1000, threads: files.length };
}

async function runScenario(s: Scenario, opts: BenchOptions, work: string): Promise<string[]> {
  const { template, manifest } = cachedMailbox(opts.cacheDir, `pb${s.mailbox.label}`, { kind: 'mix', count: s.mailbox.count }, opts.seed);
  const dir = fs.mkdtempSync(path.join(work, `${s.name}-`));
  const spoolDir = path.join(dir, 'spool');
  const profDir = path.join(dir, 'prof');
  fs.mkdirSync(spoolDir);
  fs.mkdirSync(profDir);
  const users = s.name === 'f-first-logins' ? Array.from({ length: FIRST_LOGINS }, (_, i) => `pp${i}`) : ['pp'];
  const small = 'From a@b Mon Jan  1 00:00:00 2024\nSubject: hi\n\nhello\n\n';
  for (const u of users) {
    if (s.name === 'f-first-logins') fs.writeFileSync(path.join(spoolDir, u), small);
    else fs.copyFileSync(template, path.join(spoolDir, u));
  }
  const usersFile = path.join(dir, 'users');
  writeCredentials({ names: users, password: PASSWORD, hash: s.scheme, cacheDir: opts.cacheDir, usersFile, systemUsers: false });
  const port = await freePort();
  const child = spawn(process.execPath, [...NODE_FLAGS, '--cpu-prof', `--cpu-prof-dir=${profDir}`, POPSPOOL_BIN, 'serve', '--listen', `127.0.0.1:${port}`,
    '--spool', path.join(spoolDir, '%u'), '--users', usersFile, '--state-dir', path.join(dir, 'state'), '--mode', 'server',
    '--max-per-ip', '10000', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr = (stderr + d).slice(-2000); });
  let fromUs = 0;
  let toUs = 0;
  let usage0: ReturnType<typeof procUsage> = null;
  let usage1: ReturnType<typeof procUsage> = null;
  let per: PerCommand | null = null;
  try {
    await waitForGreeting(port, child);
    await new Promise((r) => setTimeout(r, 300)); // the scan worker's start-up settles too
    const ctx = { port, spool: path.join(spoolDir, users[0]!), template, manifest, users };
    await s.prepare?.(ctx);
    usage0 = procUsage(child.pid!);
    fromUs = monoUs();
    per = (await s.run(ctx)) ?? null;
    toUs = monoUs();
    usage1 = procUsage(child.pid!);
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  const sum = summarize(profDir, fromUs, toUs);
  fs.rmSync(dir, { recursive: true, force: true });
  if (sum.threads === 0) throw new Error(`no profile written for ${s.name}: ${stderr.trim()}`);
  // The server's CPU during the scenario (seconds), from the kernel.
  const cpu = usage0 && usage1 ? { all: usage1.cpu - usage0.cpu, sys: usage1.sys - usage0.sys } : null;
  const ms = (seconds: number): string => (seconds * 1000).toFixed(0);
  const out = [`### ${s.what}`, '',
    `${sum.threads} thread profile(s); while the scenario ran (${((toUs - fromUs) / 1000).toFixed(0)} ms of wall time) the profiler saw them busy for ${sum.busyMs.toFixed(0)} ms and idle for ${sum.idleMs.toFixed(0)} ms (summed over threads; a thread waiting for a core counts as busy).`
    + (cpu ? ` The kernel's account of the server's CPU (all threads, the profiler's own included): ${ms(cpu.all - cpu.sys)} ms user, ${ms(cpu.sys)} ms system.` : '')
    + (per ? ` Per ${per.command}: ${usEach(per.clientWall, per.count)} µs in the client's loop, the client's own CPU ${usEach(per.clientCpu, per.count)} µs`
      + (cpu ? `, the server's ${usEach(cpu.all, per.count)} µs (${usEach(cpu.sys, per.count)} of it in the kernel)` : '') + '.' : ''), '',
    '| self ms | share of busy | function (file) |', '|---|---|---|'];
  for (const [k, ms] of sum.rows.slice(0, TOP_FUNCTIONS)) out.push(`| ${ms.toFixed(1)} | ${((100 * ms) / sum.busyMs).toFixed(1)} % | \`${k.replace(/\|/g, '\\|')}\` |`);
  out.push('');
  return out;
}

/** Runs every scenario and writes OUT/bench/profiles.md; returns the exit code. */
export async function runProfiles(opts: BenchOptions, outDir: string): Promise<number> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-profile-'));
  const lines = ['# Where popspool\'s time goes', '',
    `Generated by \`popspool bench --profile\` on ${new Date().toISOString()} (node ${process.version}, ${os.cpus().length} cores). `
    + 'Each scenario runs `popspool serve --mode server` under `node --cpu-prof` and sums self time per function over every thread '
    + '(main, scan worker, crypt pool); "(program)" and "(garbage collector)" are V8\'s own. docs/benchmarks.md says which targets these bound.', ''];
  try {
    for (const s of SCENARIOS.filter((x) => opts.workloads.has(x.name[0] as WorkloadId))) {
      process.stderr.write(`profiling ${s.name}…\n`);
      lines.push(...(await runScenario(s, opts, work)));
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const file = path.join(outDir, 'bench', 'profiles.md');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, lines.join('\n'));
  console.log(`profiles written to ${file}`);
  return 0;
}

/**
 * `popspool bench`: generates (or reuses) the deterministic mailboxes, starts each target —
 * popspool in copy, server and server+holdLock mode, then every installed peer — on loopback
 * over the same working spools, runs workloads a–f against it, and writes the markdown
 * report and SVG plots. Exits 1 when any byte popspool served failed to verify or any message
 * was lost; never asserts anything about time.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { workloadF } from './concurrency.js';
import { Progress, Results, SETTLE_MS, Spools, type Ctx, type Mailbox } from './context.js';
import { writeCredentials } from './credentials.js';
import { cachedMailbox } from './generator.js';
import { machine, peerVersion, probeFsync } from './machine.js';
import { USAGE, sizeLabel, type BenchOptions } from './options.js';
import { ensureSystemUsers, findPeer, makePeer, removeSystemUsers } from './peers.js';
import { runProfiles } from './profile.js';
import { writeReport } from './report.js';
import { PopspoolTarget, type BenchEnv, type Target } from './servers.js';
import { workloadA, workloadB, workloadC, workloadD, workloadE } from './workloads.js';

export { parseBenchArgs, type BenchOptions } from './options.js';

/** Password of every bench mailbox user (throwaway, loopback only). */
const BENCH_PASSWORD = 'bench-Pw-1939';
/** Messages per small mailbox in workload f. */
const SMALL_MAILBOX_MESSAGES = 4;

function bytesLabel(n: number): string {
  if (n >= 1 << 30 && n % (1 << 30) === 0) return `${n / (1 << 30)}g`;
  if (n >= 1 << 20) return `${Math.round(n / (1 << 20))}m`;
  return `${Math.round(n / 1024)}k`;
}

function prepareMailboxes(opts: BenchOptions, progress: Progress): { mix: Mailbox[]; big: Mailbox | null; small: Mailbox[] } {
  const gen = (user: string, label: string, spec: Parameters<typeof cachedMailbox>[2], dir = opts.cacheDir): Mailbox => {
    const t0 = Date.now();
    let last = 0;
    const r = cachedMailbox(dir, user, spec, opts.seed, (done) => {
      if (Date.now() - last > 5000) {
        last = Date.now();
        progress.info(`generating ${user}: ${spec.kind === 'mix' ? `${done} of ${spec.count} messages` : `${Math.round(done / 1e6)} MB`}`);
      }
    });
    if (Date.now() - t0 > 1000) progress.info(`generated ${user} (${(r.manifest.spoolBytes / 1e6).toFixed(1)} MB) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return { user, template: r.template, manifest: r.manifest, label };
  };
  const w = opts.workloads;
  const mixSizes = opts.sizes.filter((n) => w.has('a') || ((w.has('b') || w.has('c') || w.has('d')) && n <= opts.transferMax));
  const mix = mixSizes.map((n) => gen(`pb${sizeLabel(n)}`, sizeLabel(n), { kind: 'mix', count: n }));
  const big = w.has('e') ? gen(`pbbig${bytesLabel(opts.bigBytes)}`, bytesLabel(opts.bigBytes), { kind: 'single', bytes: opts.bigBytes }) : null;
  const smallDir = path.join(opts.cacheDir, `small-${opts.mailboxes}`);
  const small = w.has('f') ? Array.from({ length: opts.mailboxes }, (_, i) => {
    const user = `pbf${String(i).padStart(4, '0')}`;
    return gen(user, user, { kind: 'mix', count: SMALL_MAILBOX_MESSAGES }, smallDir);
  }) : [];
  return { mix, big, small };
}

export async function runBench(opts: BenchOptions): Promise<number> {
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  if (opts.error) {
    console.error(`popspool bench: ${opts.error}\n${USAGE}`);
    return 2;
  }
  if (opts.profile) return runProfiles(opts, opts.out);
  if (opts.removeUsers) {
    console.log(`removed ${removeSystemUsers()} throwaway bench user(s)`);
    return 0;
  }
  const started = new Date();
  const results = new Results();
  const info = machine();
  const boot = new Progress(0);
  boot.info(`popspool bench${opts.quick ? ' --quick' : ''}: sizes ${opts.sizes.map(sizeLabel).join(', ')}, ${opts.reps} rep(s) (b, c, d, f: ${opts.transferReps}), workloads ${[...opts.workloads].join('')}; cache ${opts.cacheDir}`);
  const { mix, big, small } = prepareMailboxes(opts, boot);

  // Peers: which are installed, and the Unix users some of them authenticate.
  const peers: { name: string; bin: string }[] = [];
  for (const p of opts.peers) {
    const found = findPeer(p, opts.peerRoot);
    if ('skip' in found) {
      results.notes.push(`${p} skipped: ${found.skip}`);
      boot.info(`${p} skipped: ${found.skip}`);
    } else {
      peers.push({ name: p, bin: found.bin });
      info.peerVersions[p] = peerVersion(p, found.bin);
    }
  }
  const users = [...mix, ...(big ? [big] : []), ...small].map((m) => m.user);
  const acct = peers.length ? ensureSystemUsers(users, BENCH_PASSWORD) : null;

  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-bench-'));
  fs.chmodSync(root, 0o755);
  const env: BenchEnv = {
    root, spoolDir: path.join(root, 'mail'), usersFile: path.join(root, 'users'), password: BENCH_PASSWORD,
    uid: acct?.uid ?? 0, gid: acct?.gid ?? 0,
  };
  fs.mkdirSync(env.spoolDir, { mode: 0o775 });
  fs.chmodSync(env.spoolDir, 0o775);
  fs.chownSync(env.spoolDir, env.uid, env.gid);
  const creds = writeCredentials({ names: users, password: BENCH_PASSWORD, hash: opts.hash, cacheDir: opts.cacheDir, usersFile: env.usersFile, systemUsers: acct !== null });
  if (creds.note) results.notes.push(creds.note);
  info.fsync = probeFsync(env.spoolDir);
  const python = !opts.noPython && spawnSync('python3', ['-c', 'import socket; socket.TCP_QUICKACK'], { stdio: 'ignore' }).status === 0;
  if (!python) results.notes.push(`python3 clients ${opts.noPython ? 'disabled (--no-python)' : 'unavailable (no python3 with socket.TCP_QUICKACK)'}: (b) and (c) use the Node client (noDelay, no TCP_QUICKACK)`);

  const targets: Target[] = [
    ...opts.variants.map((v) => new PopspoolTarget(v, env)),
    ...peers.map((p) => makePeer(p.name as 'dovecot', p.bin, env)),
  ];
  const w = opts.workloads;
  const transfer = mix.filter((m) => m.manifest.count <= opts.transferMax);
  /** A workload on one mailbox: its label, how many repetitions, and one repetition against one server. */
  // warmUp: one unmeasured repetition per server before the measured ones (see the loop below).
  const plan: { label: string; reps: number; warmUp?: boolean; run: (ctx: Ctx, t: Target) => Promise<void> }[] = [];
  for (const sk of opts.skip) results.notes.push(`skipped on request: ${sk}`);
  // (a) too opens with an unmeasured repetition: "cold" is the first session after the spool
  // changed, not the first after the server started (a just-started popspool also pays its JIT).
  if (w.has('a')) for (const m of mix) plan.push({ label: `a check-mail ${m.label}`, reps: opts.reps, warmUp: true, run: (c, t) => workloadA(c, t, m) });
  if (w.has('b')) for (const m of transfer) plan.push({ label: `b download-all ${m.label}`, reps: opts.transferReps, warmUp: true, run: (c, t) => workloadB(c, t, m) });
  if (w.has('c')) for (const m of transfer) plan.push({ label: `c download-delete-all ${m.label}`, reps: opts.transferReps, warmUp: true, run: (c, t) => workloadC(c, t, m) });
  if (w.has('d')) for (const m of transfer) plan.push({ label: `d delete-10% ${m.label}`, reps: opts.transferReps, warmUp: true, run: (c, t) => workloadD(c, t, m) });
  if (big) plan.push({ label: `e RETR ${big.label} message`, reps: opts.reps, run: (c, t) => workloadE(c, t, big) });
  // f repeats inside (per concurrency level, after a warm-up pass that must come first).
  if (small.length) plan.push({ label: `f ${small.length} sessions at ${opts.concurrency.join('/')} at once`, reps: 1, run: (c, t) => workloadF(c, t, small) });

  const progress = new Progress(plan.reduce((n, p) => n + p.reps, 0) * targets.length);
  const ctx: Ctx = { opts, env, results, progress, spools: new Spools(env), python, pipelined: new Map() };
  // Workload by workload, with every server started afresh for it (none inherits another's
  // memory, caches or writeback), and the servers interleaved repetition by repetition: the
  // first in the order given, the second in reverse, and so on (copy mode after them, as
  // schedule() says why). A shared machine's speed changes by 2× within minutes; run one
  // server's repetitions all at once and one side of a ratio can fall in a slow spell that the
  // other misses. Interleaved, each side's median draws from the same minutes. Servers idle while another is measured; a pause before each
  // repetition lets the last one's deferred work (popspool's cache write) finish first.
  const broken = new Set<Target>();
  try {
    for (const { label, reps, warmUp, run } of plan) {
      const running: Target[] = [];
      try {
        for (const target of targets) {
          const why = broken.has(target) ? 'it could not start'
            : opts.skip.has(`${target.name}:${label[0]}`) ? '--skip'
              : target instanceof PopspoolTarget && target.workers > 1 && label[0] !== 'f' ? `--workers ${target.workers} runs workload f only`
                : null;
          if (why !== null) {
            progress.skip(reps, `${target.name}: ${label}: skipped (${why})`);
            continue;
          }
          try {
            await target.start();
            running.push(target);
          } catch (err) {
            broken.add(target);
            results.fail(target, 'start', (err as Error).message);
            results.notes.push(`${target.name} could not start: ${(err as Error).message.slice(0, 300)}`);
            progress.skip(reps, `${target.name} could not start: ${(err as Error).message}`);
          }
        }
        // A server's first session of a workload also pays its start-up: popspool's JIT
        // compiles the RETR path during its first few thousand commands (2-3 s) and the
        // scanner's during its first scans, every server's files come into the page cache.
        // The workloads measure the steady state a running daemon serves in, so each server
        // first does one repetition that is not measured (its verification failures still
        // count), as workload f's warm-up pass; (a) then makes the spool cold again.
        // --quick proves that every workload runs and verifies, and its times mean nothing:
        // it skips these (with every peer installed, a quick run took 132 s with them, 83 s without).
        if (warmUp && !opts.quick) {
          for (const target of running) {
            progress.info(`${target.name}: ${label}: warm-up, not measured`);
            ctx.results.muted = true;
            try {
              await run(ctx, target);
            } finally {
              ctx.results.muted = false;
            }
          }
        }
        for (const { target, rep } of schedule(running, reps)) {
          progress.step(`${target.name}: ${label}${reps > 1 ? ` (${rep + 1} of ${reps})` : ''}`);
          spawnSync('sync', { stdio: 'ignore' });
          await new Promise((r) => setTimeout(r, SETTLE_MS));
          const t0 = Date.now();
          results.takeRecent();
          await run(ctx, target);
          const got = results.takeRecent();
          progress.info(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s${got.length ? `: ${got.slice(0, 6).join(', ')}${got.length > 6 ? ', …' : ''}` : ''}`);
        }
      } finally {
        for (const target of running) await target.stop();
      }
    }
  } finally {
    for (const target of targets) {
      (target as { cleanup?: () => void }).cleanup?.();
      if (target instanceof PopspoolTarget && target.log.trim()) results.notes.push(`popspool ${target.name} logged: ${target.log.trim().split('\n').slice(-3).join(' | ')}`);
    }
    fs.rmSync(root, { recursive: true, force: true });
  }

  const fatal = results.failures.filter((f) => f.fatal);
  const out = writeReport(opts, results, {
    started, finished: new Date(), machine: info, targets: targets.map((t) => t.name), mailboxes: [...mix, ...(big ? [big] : [])], smallMailboxes: small.length,
    schemes: creds.schemes, python, pipelined: ctx.pipelined,
  });
  progress.info(`report written to ${out}`);
  for (const f of results.failures) process.stderr.write(`${f.fatal ? 'FAIL' : 'peer'} ${f.target}: ${f.what}: ${f.detail}\n`);
  if (fatal.length) {
    process.stderr.write(`popspool bench: ${fatal.length} failure(s) in popspool (bytes that did not verify, messages lost, or errors)\n`);
    return 1;
  }
  return 0;
}

/**
 * The order of a workload's measured repetitions: the servers take turns repetition by
 * repetition, in the order given, then in reverse, and so on, so both sides of a ratio draw
 * their medians from the same minutes of a shared machine whose speed drifts.
 *
 * Copy mode's repetitions come after the others' rounds, not inside them: each of its sessions
 * copies the whole spool and writes it back, gigabytes of page cache freed and refilled on the
 * 50k spool, and on this VM the next session paid for it: popspool's cold 50k login right after
 * a copy-mode repetition took 0.390 s median against 0.299 s after popa3d's (7 each; popa3d's own
 * login did not slow down after copy mode, docs/performance.md). Copy mode's ratios are large
 * where its churn is large, and where they are close ((c) on 1k) the whole workload takes
 * seconds, so they lose nothing by the wait.
 */
export function schedule<T extends { readonly name: string }>(running: readonly T[], reps: number): { target: T; rep: number }[] {
  const rounds = running.filter((t) => t.name !== 'copy');
  const out: { target: T; rep: number }[] = [];
  for (let rep = 0; rep < reps; rep++) for (const target of rep % 2 === 0 ? rounds : [...rounds].reverse()) out.push({ target, rep });
  for (const target of running.filter((t) => t.name === 'copy')) for (let rep = 0; rep < reps; rep++) out.push({ target, rep });
  return out;
}

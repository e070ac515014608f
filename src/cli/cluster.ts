/**
 * `--workers N` (DESIGN.md §7): a node:cluster primary that forks N server processes sharing the
 * listeners, forwards signals to them and restarts any that die.
 *
 * The primary serves nobody. It validates the configuration the way a single server would (so a
 * bad users file or a missing PAM addon is still exit 2 at start-up), runs crash recovery once —
 * before any worker can open a spool — and forks. Each worker runs the ordinary server; its
 * listen() is handed to the primary, which binds each address once and, on Linux, deals
 * accepted connections round-robin to the workers (cluster.SCHED_RR). What must hold across
 * workers already holds across processes: spool locks are OS locks and "one session per
 * maildrop" is the session lock file (src/lock/session-lock.ts), so a second login of the same
 * user gets [IN-USE] whichever worker it lands on. What is per worker: the in-process session
 * table, max-connections and max-per-ip (each worker enforces them on its own connections), the
 * failed-login throttle, and session numbers in log lines. The admin listener runs in worker 0
 * only. The primary keeps the privileges it started with (as nginx's master does): it reads no
 * client byte, and a restarted worker may need it to bind again; workers drop them after
 * binding as a single server does.
 *
 * Signals: SIGTERM/SIGINT are passed on as SIGTERM (each worker drains as a single server
 * does) and the primary exits when the last worker has; SIGHUP is passed on (each worker reloads).
 * A worker that exits on its own is forked again after a delay that doubles with each death
 * in quick succession, so a worker that cannot start does not spin.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Config } from '../config/settings.js';
import { log } from '../obs/log.js';

/** Env var carrying a worker's slot number (0..N-1; a restarted worker keeps its slot). */
export const WORKER_INDEX_ENV = 'POPSPOOL_WORKER_INDEX';

/** First restart delay; doubled per death within RESTART_WINDOW_MS, capped at RESTART_MAX_MS. */
const RESTART_BASE_MS = 500;
/** Longest wait before restarting a worker that keeps dying. */
const RESTART_MAX_MS = 30_000;
/** Deaths further apart than this do not compound the back-off (a crash a day restarts at once). */
const RESTART_WINDOW_MS = 60_000;

/** This process's worker slot: 0 outside a cluster. */
export function workerIndex(): number {
  return cluster.isWorker ? Number(process.env[WORKER_INDEX_ENV] ?? 0) : 0;
}

/** True in the primary of a cluster run: the caller must not serve. */
export function clusterWanted(config: Config, stdio: boolean, activated: boolean): boolean {
  if (!cluster.isPrimary || config.workers <= 1) return false;
  if (stdio || activated) {
    log.warn('workers ignored: inetd mode and socket activation run one process', { workers: config.workers });
    return false;
  }
  return true;
}

interface Slot {
  worker: Worker | undefined;
  /** Some worker in this slot has listened: a later death is a crash, not a start-up failure. */
  started: boolean;
  deaths: number;
  lastDeath: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * The primary: `prepare` validates and recovers (it throws ConfigError for a bad setup); then
 * fork, supervise, and on SIGTERM wait for every worker to drain. Resolves never (exits).
 */
export async function runPrimary(config: Config, prepare: () => Promise<void>): Promise<void> {
  await prepare();
  let stopping = false;
  const slots: Slot[] = Array.from({ length: config.workers }, () => ({ worker: undefined, started: false, deaths: 0, lastDeath: 0, timer: undefined }));

  const fork = (i: number): void => {
    const slot = slots[i]!;
    slot.timer = undefined;
    const w = cluster.fork({ [WORKER_INDEX_ENV]: String(i) });
    slot.worker = w;
    log.info('worker started', { worker: i, pid: w.process.pid });
    w.once('listening', () => (slot.started = true));
    w.on('exit', (code, signal) => {
      slot.worker = undefined;
      if (stopping) {
        if (slots.every((s) => !s.worker)) {
          log.info('all workers stopped');
          process.exit();
        }
        return;
      }
      if (!slot.started) {
        // It never got as far as listening (cannot bind, bad TLS key…): restarting cannot help.
        log.error('worker failed to start; stopping', { worker: i, code: code ?? undefined, signal: signal ?? undefined });
        stop('worker start-up failure');
        process.exitCode = code || 1;
        return;
      }
      const now = Date.now();
      slot.deaths = now - slot.lastDeath < RESTART_WINDOW_MS ? slot.deaths + 1 : 1;
      slot.lastDeath = now;
      const delay = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** (slot.deaths - 1));
      log.error('worker died; restarting', { worker: i, pid: w.process.pid, code: code ?? undefined, signal: signal ?? undefined, restart_in_ms: delay });
      slot.timer = setTimeout(() => fork(i), delay);
    });
  };

  log.info('starting workers', { workers: config.workers, pid: process.pid });
  for (let i = 0; i < slots.length; i++) fork(i);

  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('stopping workers', { signal });
    for (const s of slots) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = undefined;
      s.worker?.process.kill('SIGTERM');
    }
    if (slots.every((s) => !s.worker)) process.exit();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    log.info('SIGHUP: passing on to workers');
    for (const s of slots) s.worker?.process.kill('SIGHUP');
  });
}

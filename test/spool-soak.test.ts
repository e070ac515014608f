/**
 * Randomized soak of the spool engine against a model: rounds of sessions in random modes with
 * random DELE sets, QUIT or a dropped connection, real procmail deliveries racing the session,
 * and SIGKILLs at random fault points or random instants. After every round (and recovery) the
 * spool must be exactly the model's survivors followed by every delivered message once.
 * Seeded: POPSPOOL_SOAK_SEED replays a run; POPSPOOL_SOAK_SECONDS sets its length.
 */
import { expect } from 'chai';
import { requireTool } from './helpers/tools.js';
import {
  breakStaleDotlock, finish, killAll, mdaMessage, message, quietLogs, rng, Sandbox, splitMbox, startProcmail,
  startWorker, waitFor, type Proc,
} from './helpers/spool-support.js';
import type { WorkerArgs } from './helpers/spool-worker.js';

/** Default length: keeps the whole suite of spool tests within about three minutes. */
const SECONDS = Number(process.env.POPSPOOL_SOAK_SECONDS ?? '30');
/** Independent sandboxes soaked side by side (each its own user, spool and model). */
const LANES = 2;
const STEPS = ['before-truncate', 'image-built', 'copy-image-built', 'drop-copied', 'spool-emptied', 'journal-prepared',
  'spool-extended', 'image-copied', 'end-marked', 'spool-truncated', 'journal-removed'];

interface RoundLog { round: number; args: Partial<WorkerArgs>; fault: string; kill: number | null; deliveries: number; outcome: string }

async function lane(seed: number, lane: number, deadline: number, history: RoundLog[]): Promise<number> {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const sb = new Sandbox(`soak${lane}`);
  let serial = 0;
  let model: string[] = Array.from({ length: 5 }, () => message(`s${seed}-l${lane}-${serial++}`, { bodyLines: Math.floor(rand() * 40) }));
  sb.write(model.join(''));
  let round = 0;
  try {
    while (Date.now() < deadline) {
      round++;
      const mode = rand() < 0.5 ? 'server' : 'copy';
      const deleted = model.map((_, i) => i).filter(() => rand() < (rand() < 0.2 ? 1 : 0.4));
      const action = rand() < 0.75 ? 'update' : 'close';
      const r = rand();
      const fault = r < 0.35 ? '' : r < 0.65 ? `crash:${pick(STEPS)}` : r < 0.85 ? 'crash:pwrite' : rand() < 0.5 ? 'enospc:pwrite' : 'eio:pwrite';
      const count = 1 + Math.floor(rand() * (fault.endsWith('pwrite') ? 14 : 1));
      const kill = fault === '' && rand() < 0.3 ? Math.floor(rand() * 400) : null;
      const args: WorkerArgs = sb.workerArgs({ mode, holdLock: rand() < 0.5, action, deleted, waitStdin: true, lockTimeoutMs: 10_000 });
      const log: RoundLog = { round, args: { mode, holdLock: args.holdLock, action, deleted }, fault: fault && `${fault}#${count}`, kill, deliveries: 0, outcome: '' };
      history.push(log);
      const w = startWorker(args, fault ? { POPSPOOL_FAULT: fault, POPSPOOL_FAULT_COUNT: String(count) } : {});
      const delivered: string[] = [];
      const mdas: Proc[] = [];
      const deliver = (): void => {
        const m = mdaMessage(`mda-s${seed}-l${lane}-${serial++}`);
        delivered.push(m.stored);
        mdas.push(startProcmail(sb.spool, m.input));
      };
      // Deliveries race the session: some before it opens, some during, some held by its lock.
      if (rand() < 0.3) deliver();
      await waitFor(() => w.events().length > 0 || w.proc.exitCode !== null || w.proc.signalCode !== null, 'worker opened', 15_000);
      const n = Math.floor(rand() * 3);
      for (let i = 0; i < n; i++) deliver();
      if (kill !== null) setTimeout(() => w.proc.kill('SIGKILL'), kill);
      await new Promise((res) => setTimeout(res, Math.floor(rand() * 300)));
      w.send('go');
      const res = await finish(w);
      log.deliveries = delivered.length;
      log.outcome = res.signal ?? (res.error ? `error ${res.error.phase} ${res.error.code}` : 'done');
      if (res.signal === 'SIGKILL') {
        // Deliveries blocked on our dead dotlock get through once liblockfile breaks it.
        await waitFor(async () => {
          await breakStaleDotlock(sb.spool);
          return mdas.every((p) => p.proc.exitCode !== null);
        }, 'procmail deliveries after the crash', 15_000);
      }
      for (const p of mdas) expect((await p.exited).code, `procmail: ${p.stderr()}`).to.equal(0);
      // Recovery, at login or at server start.
      const store = sb.store();
      if (rand() < 0.5) await store.recoverAll();
      const check = await store.open(sb.user);
      await check.close();

      const actual = splitMbox(sb.read());
      const opened = res.opened !== undefined;
      const survivors = model.filter((_, i) => !deleted.includes(i));
      const kept = actual.slice(0, actual.length - delivered.length);
      const completedQuit = action === 'update' && res.done !== undefined;
      // No QUIT (or never opened): everything stays. A completed QUIT deleted. Anything
      // interrupted: all deletions or none.
      const ok = action === 'close' || !opened ? [model] : completedQuit ? [survivors] : [model, survivors];
      if (!ok.some((k) => k.length === kept.length && k.every((m, i) => m === kept[i]))) {
        expect.fail(`round ${round}: kept messages are neither all nor the survivors (completed QUIT: ${completedQuit})\n` +
          `kept: ${JSON.stringify(kept.map((m) => m.split('\n')[0]))}\nmodel: ${JSON.stringify(model.map((m) => m.split('\n')[0]))}\n` +
          `deleted: ${JSON.stringify(deleted)}`);
      }
      const tail = actual.slice(kept.length);
      expect([...tail].sort(), `round ${round}: delivered mail, each exactly once`).to.deep.equal([...delivered].sort());
      expect(check.messages.length, `round ${round}: messages served`).to.equal(actual.length);
      model = actual;
      if (model.length > 30) model = await trim(sb, model);
    }
    return round;
  } finally {
    await sb.cleanup();
  }
}

/** Keeps the spool small: a plain delete-all of the oldest messages through the engine. */
async function trim(sb: Sandbox, model: string[]): Promise<string[]> {
  const drop = await sb.store().open(sb.user);
  const del = new Set(model.slice(0, model.length - 10).map((_, i) => i));
  await drop.update({ deleted: del, seen: new Set() });
  const now = splitMbox(sb.read());
  expect(now).to.deep.equal(model.slice(model.length - 10));
  return now;
}

describe('spool engine: randomized soak with procmail and random SIGKILLs', function () {
  this.timeout((SECONDS + 60) * 1000);
  let restoreLogs: () => void;
  before(function () {
    requireTool(this, 'procmail', 'procmail');
    requireTool(this, 'dotlockfile', 'liblockfile-bin');
    restoreLogs = quietLogs();
  });
  after(() => restoreLogs?.());
  afterEach(killAll);

  it(`${SECONDS} s of random sessions lose and duplicate nothing`, async () => {
    const seed = Number(process.env.POPSPOOL_SOAK_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const deadline = Date.now() + SECONDS * 1000;
    const histories: RoundLog[][] = Array.from({ length: LANES }, () => []);
    try {
      const rounds = await Promise.all(histories.map((h, i) => lane(seed + i, i, deadline, h)));
      console.log(`      soak seed ${seed}: ${rounds.join(' + ')} rounds`);
      expect(rounds.every((n) => n > 0)).to.equal(true);
    } catch (err) {
      const recent = histories.map((h, i) => `lane ${i}: ${JSON.stringify(h.slice(-3))}`).join('\n');
      (err as Error).message = `soak failed with POPSPOOL_SOAK_SEED=${seed}: ${(err as Error).message}\nlast rounds:\n${recent}`;
      throw err;
    }
  });
});

/**
 * Crash safety of the spool engine (DESIGN.md §4), by fault injection at every step: the
 * worker process is SIGKILLed at each named fault point and at every single pwrite of an
 * update, a real procmail then delivers while nothing is locked, and the next lock holder
 * (login or server start) must leave every surviving message exactly once, byte-identical, in
 * order, plus the new mail. Then injected ENOSPC/EIO at the same places, and a real ENOSPC on
 * a small tmpfs when this machine lets us mount one.
 *
 * Our dotlock outlives a SIGKILL. procmail only breaks a dotlock by age (LOCKTIMEOUT, 1024 s);
 * liblockfile breaks it at once because its pid is dead. Before each delivery the test lets
 * liblockfile's dotlockfile(1) do exactly that (spool-support.ts: breakStaleDotlock), which is
 * what an MDA linked with liblockfile does after our crash.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PopspoolError } from '../src/errors.js';
import { backgroundSettled } from '../src/spool/background.js';
import { requireTool } from './helpers/tools.js';
import {
  beforeOf, expectNoPending, expectOneOf, FAULT_CASES, referenceAfter, type FaultCase,
} from './helpers/spool-cases.js';
import {
  breakStaleDotlock, killAll, mdaMessage, message, procmailDeliver, quietLogs, runWorker, Sandbox, type WorkerResult,
} from './helpers/spool-support.js';

/** Independent crash runs in flight at once (each its own sandbox): trials mostly wait (procmail
 *  sleeps a second when the spool was just read, so that its mtime passes the atime). */
const PARALLEL = 5;
/** Safety bound on the pwrite sweep: far more pwrites than any case here performs. */
const MAX_PWRITES = 60;
/** Every pwrite of every case is swept with POPSPOOL_FAULT_MATRIX=full; by default these
 *  representative cases (one per code path) keep the suite within its time budget. */
const FULL = process.env.POPSPOOL_FAULT_MATRIX === 'full';
const PWRITE_SWEEP = ['server general', 'server flags', 'copy general'];
const NAMED_SKIP = ['server flags + delete'];
/** Delete-all with nothing appended is one ftruncate: it performs no pwrite to sweep. */
const NO_PWRITE = ['server delete-all'];
const ENOSPC_SWEEP = ['server flags', 'copy general'];
const EIO_STEPS = ['server general', 'copy no QUIT'];

let deliveries = 0;

interface Trial {
  readonly c: FaultCase;
  readonly fault: string;
  readonly count: number;
  readonly recoverVia: 'open' | 'recoverAll';
}

/** Outcome of one trial: whether the fault fired. */
type TrialResult = { fired: boolean; state: 'before' | 'after'; committed?: boolean };

async function crashTrial(t: Trial, after: string): Promise<TrialResult> {
  const what = `${t.c.name} / ${t.fault} #${t.count} / recovery by ${t.recoverVia}`;
  const sb = new Sandbox();
  try {
    sb.write(t.c.initial);
    const r = await runWorker(sb.workerArgs(t.c.args), { POPSPOOL_FAULT: t.fault, POPSPOOL_FAULT_COUNT: String(t.count) });
    if (r.signal !== 'SIGKILL') {
      expect(r.code, `${what}: worker ${JSON.stringify(r.events)} ${r.stderr}`).to.equal(0);
      expect(sb.read().toString('latin1'), `${what}: completed run`).to.equal(after);
      return { fired: false, state: 'after' };
    }
    const opened = r.opened !== undefined;
    // The crash left the spool unlocked but for a stale dotlock; an MDA delivers now.
    await breakStaleDotlock(sb.spool);
    const mail = mdaMessage(`mda-${process.pid}-${++deliveries}`);
    await procmailDeliver(sb.spool, mail.input);
    const store = sb.store({ mode: t.c.args.mode });
    if (t.recoverVia === 'recoverAll') {
      await store.recoverAll();
      await expectNoPending(sb, false, what);
    } else {
      const drop = await store.open(sb.user);
      await drop.close();
      await expectNoPending(sb, true, what);
    }
    const state = expectOneOf(sb.read(), beforeOf(t.c, opened), after, mail.stored, what);
    // A crash after the client was answered (the commit point) must not undo the answer.
    const committed = r.events.some((e) => e.event === 'committed');
    if (committed) expect(state, `${what}: committed, then undone`).to.equal('after');
    // And a new session sees exactly that, ending with the delivered message.
    const drop = await sb.store().open(sb.user);
    const last = drop.messages.length - 1;
    const chunks: Buffer[] = [];
    for await (const ch of await drop.read(last)) chunks.push(ch as Buffer);
    await drop.close();
    expect(Buffer.concat(chunks).toString('latin1'), what).to.equal(mail.stored.slice(mail.stored.indexOf('\n') + 1, -1));
    return { fired: true, state, committed };
  } finally {
    await sb.cleanup();
  }
}

/** Runs `tasks` with at most PARALLEL in flight. */
async function pool<T>(tasks: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(PARALLEL, tasks.length) }, async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]!();
    }
  }));
  return out;
}

/** Sweeps `fault` with counts 1, 2, ... until a run completes without the fault firing. */
async function sweep(c: FaultCase, fault: string, after: string, run: (t: Trial) => Promise<TrialResult>): Promise<TrialResult[]> {
  const results: TrialResult[] = [];
  for (let base = 1; base <= MAX_PWRITES; base += PARALLEL) {
    const batch = await pool(Array.from({ length: PARALLEL }, (_, k) => () =>
      run({ c, fault, count: base + k, recoverVia: (base + k) % 2 === 0 ? 'recoverAll' : 'open' })));
    results.push(...batch);
    if (batch.some((b) => !b.fired)) return results;
  }
  throw new Error(`${c.name}: ${fault} still firing after ${MAX_PWRITES} counts`);
}

describe('spool engine: crash safety by fault injection, with procmail delivering after the crash', function () {
  this.timeout(120_000);
  const afters = new Map<string, string>();
  let restoreLogs: () => void;
  before(async function () {
    requireTool(this, 'procmail', 'procmail');
    requireTool(this, 'dotlockfile', 'liblockfile-bin');
    restoreLogs = quietLogs();
    const refs = await pool(FAULT_CASES.map((c) => () => referenceAfter(c)));
    FAULT_CASES.forEach((c, i) => afters.set(c.name, refs[i]!));
  });
  after(() => restoreLogs?.());
  afterEach(killAll);

  it('the reference runs apply exactly the requested update', () => {
    const server = afters.get('server general')!;
    expect(server).to.not.include('message b-1').and.not.include('message d-3');
    expect(server).to.include('message a-0').and.include('message f-5');
    expect(afters.get('server delete-all')).to.equal('');
    expect(afters.get('copy no QUIT')).to.equal(FAULT_CASES.find((c) => c.name === 'copy no QUIT')!.initial + FAULT_CASES.find((c) => c.name === 'copy no QUIT')!.args.appendAfterOpen);
  });

  for (const c of FAULT_CASES) {
    if (FULL || !NAMED_SKIP.includes(c.name)) it(`${c.name}: SIGKILL at every named step (${c.steps.join(', ')})`, async () => {
      const after = afters.get(c.name)!;
      const results = await pool(c.steps.map((step, i) => () =>
        crashTrial({ c, fault: `crash:${step}`, count: 1, recoverVia: i % 2 ? 'recoverAll' : 'open' }, after)));
      results.forEach((r, i) => expect(r.fired, `step ${c.steps[i]} was never reached`).to.equal(true));
      // A crash before the journal exists keeps every message; after it, the QUIT completes.
      const states = results.map((r) => r.state);
      const before = beforeOf(c, true);
      if (c.name === 'server delete-all') {
        expect(states, 'a crash before the ftruncate keeps everything').to.deep.equal(['before']);
      } else if (after !== before) {
        expect(states, 'a crash after the journal was written completes the update').to.include('after');
        expect(states, 'a crash before the journal was written keeps every message').to.include('before');
      }
      // A server-mode update answers at the commit point: a crash while the image is copied in
      // comes after the answer (so the check above, "committed, then undone", was exercised).
      const copied = c.steps.indexOf('image-copied');
      if (c.args.mode === 'server' && c.args.action === 'update' && copied >= 0) {
        expect(results[copied]!.committed, 'answered before the image was copied in').to.equal(true);
      }
    });

    if ((FULL || PWRITE_SWEEP.includes(c.name)) && !NO_PWRITE.includes(c.name)) it(`${c.name}: SIGKILL at every pwrite`, async () => {
      const results = await sweep(c, 'crash:pwrite', afters.get(c.name)!, (t) => crashTrial(t, afters.get(c.name)!));
      expect(results.filter((r) => r.fired).length).to.be.greaterThan(0);
    });
  }

  describe('a second crash during recovery, with mail delivered after each crash', () => {
    async function doubleCrash(c: FaultCase, first: string, second: string): Promise<void> {
      const what = `${c.name} / crash:${first} then crash:${second} during recovery`;
      const after = afters.get(c.name)!;
      const sb = new Sandbox();
      try {
        sb.write(c.initial);
        const r1 = await runWorker(sb.workerArgs(c.args), { POPSPOOL_FAULT: `crash:${first}` });
        expect(r1.signal, what).to.equal('SIGKILL');
        const mails = [mdaMessage(`dbl-${process.pid}-${++deliveries}`), mdaMessage(`dbl-${process.pid}-${++deliveries}`)];
        await breakStaleDotlock(sb.spool);
        await procmailDeliver(sb.spool, mails[0]!.input);
        const r2 = await runWorker(sb.workerArgs({ mode: 'server', action: 'close' }), { POPSPOOL_FAULT: `crash:${second}` });
        expect(r2.signal, `${what}: recovery must pass through ${second}`).to.equal('SIGKILL');
        await breakStaleDotlock(sb.spool);
        await procmailDeliver(sb.spool, mails[1]!.input);
        await sb.store().recoverAll();
        await expectNoPending(sb, false, what);
        expect(expectOneOf(sb.read(), beforeOf(c, true), after, mails[0]!.stored + mails[1]!.stored, what)).to.equal('after');
      } finally {
        await sb.cleanup();
      }
    }
    const plan: [string, string[]][] = FULL
      ? [['server general', ['image-copied', 'spool-truncated']], ['server flags', ['image-copied', 'spool-truncated']], ['copy general', ['image-copied', 'spool-truncated']]]
      : [['server general', ['spool-truncated']], ['server flags', ['image-copied']]];
    for (const [name, seconds] of plan) {
      it(`${name}: every journaled step, then a crash in recovery at ${seconds.join(' / ')}`, async () => {
        const c = FAULT_CASES.find((x) => x.name === name)!;
        const firsts = c.steps.filter((s) => ['journal-prepared', 'spool-extended', 'image-copied', 'end-marked'].includes(s));
        await pool(firsts.flatMap((f) => seconds.map((s) => () => doubleCrash(c, f, s))));
      });
    }
  });

  describe('injected ENOSPC and EIO during the update', () => {
    async function errorTrial(t: Trial, after: string): Promise<TrialResult> {
      const what = `${t.c.name} / ${t.fault} #${t.count}`;
      const sb = new Sandbox();
      try {
        sb.write(t.c.initial);
        const r: WorkerResult = await runWorker(sb.workerArgs(t.c.args), { POPSPOOL_FAULT: t.fault, POPSPOOL_FAULT_COUNT: String(t.count) });
        expect(r.signal, what).to.equal(null);
        const before = beforeOf(t.c, r.opened !== undefined);
        const journal = path.join(sb.stateDir, 'journal', `${sb.user}.journal`);
        // close() swallows a failed write-back (it only logs it, to stderr): look there too.
        const fired = r.error !== undefined || r.stderr.includes('injected fault');
        if (!fired) {
          expect(r.code, what).to.equal(0);
          expect(sb.read().toString('latin1'), what).to.equal(after);
          return { fired: false, state: 'after' };
        }
        if (r.error) expect(r.error.code, `${what}: ${r.error.message}`).to.equal('SYS_TEMP');
        // Once the client has been answered (the commit point), the update must not report a
        // failure, and nothing but the answered outcome may come of it.
        const committed = r.events.some((e) => e.event === 'committed');
        if (committed) expect(r.error, `${what}: failed after the commit point`).to.equal(undefined);
        if (t.c.args.mode === 'server' && !fs.existsSync(journal)) {
          // No journal: the spool is exactly as it was — or, when the failure came after the
          // journal was already removed (the commit point), exactly as the QUIT left it.
          expectOneOf(sb.read(), before, after, '', `${what}: spool after a failed update`);
        }
        // The next login completes or discards whatever was interrupted.
        const drop = await sb.store({ mode: 'server' }).open(sb.user);
        await drop.close();
        await expectNoPending(sb, true, what);
        const state = expectOneOf(sb.read(), before, after, '', what);
        if (committed) expect(state, `${what}: committed, then not applied`).to.equal('after');
        return { fired: true, state };
      } finally {
        await sb.cleanup();
      }
    }

    for (const c of FAULT_CASES) {
      if ((FULL || ENOSPC_SWEEP.includes(c.name)) && !NO_PWRITE.includes(c.name)) it(`${c.name}: ENOSPC at every pwrite`, async () => {
        const results = await sweep(c, 'enospc:pwrite', afters.get(c.name)!, (t) => errorTrial(t, afters.get(c.name)!));
        expect(results.filter((r) => r.fired).length).to.be.greaterThan(1);
      });
      if (FULL || EIO_STEPS.includes(c.name)) it(`${c.name}: EIO at every named step`, async () => {
        const results = await pool(c.steps.map((step) => () =>
          errorTrial({ c, fault: `eio:${step}`, count: 1, recoverVia: 'open' }, afters.get(c.name)!)));
        results.forEach((r, i) => expect(r.fired, `step ${c.steps[i]}`).to.equal(true));
      });
    }
  });

  describe('real ENOSPC on a small tmpfs', () => {
    let mnt: string | null = null;
    let sb: Sandbox;
    beforeEach(function () {
      sb = new Sandbox();
      mnt = path.join(sb.dir, 'tmpfs');
      fs.mkdirSync(mnt);
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'popspool-test', mnt], { stdio: 'ignore' });
      } catch {
        mnt = null;
        console.warn('\n    SKIPPED: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)\n');
        this.skip();
      }
    });
    afterEach(async () => {
      await backgroundSettled(); // a cache file or image unlink finishing after the reply keeps the mount busy
      if (mnt) execFileSync('umount', [mnt], { stdio: 'ignore' });
      await sb.cleanup();
    });

    /** A spool of ~`kb` KB and a filler leaving about `freeKb` KB free, all on the tmpfs. */
    function fill(kb: number, freeKb: number): { store: ReturnType<Sandbox['store']>; spool: string; content: string } {
      const dir = path.join(mnt!, 'mail');
      fs.mkdirSync(dir);
      const msgs: string[] = [];
      for (let i = 0; msgs.join('').length < kb * 1024; i++) msgs.push(message(`big-${i}`, { bodyLines: 200 }));
      const content = msgs.join('');
      const spool = path.join(dir, sb.user);
      fs.writeFileSync(spool, content);
      const free = (): number => { const s = fs.statfsSync(mnt!); return s.bavail * s.bsize; };
      fs.writeFileSync(path.join(mnt!, 'filler'), Buffer.alloc(Math.max(0, free() - freeKb * 1024)));
      const store = sb.store({ spool: path.join(dir, '%u'), stateDir: path.join(mnt!, 'state') });
      return { store, spool, content };
    }

    it('server mode: an image that does not fit → SYS_TEMP, spool intact, nothing left behind', async () => {
      const { store, spool, content } = fill(400, 120);
      const drop = await store.open(sb.user);
      const err = await drop.update({ deleted: new Set([0]), seen: new Set() }).then(() => null, (e: PopspoolError) => e);
      expect(err).to.be.instanceOf(PopspoolError);
      expect(err!.code).to.equal('SYS_TEMP');
      expect(fs.readFileSync(spool, 'latin1')).to.equal(content);
      expect(fs.readdirSync(path.join(mnt!, 'state', 'journal'))).to.deep.equal([]);
      // With room again, the same QUIT works.
      fs.rmSync(path.join(mnt!, 'filler'));
      const again = await store.open(sb.user);
      await again.update({ deleted: new Set([0]), seen: new Set() });
      expect(fs.readFileSync(spool, 'latin1')).to.equal(content.slice(content.indexOf('\nFrom ', 1) + 1));
    });

    it('copy mode: no room for the temp drop → SYS_TEMP at login, spool intact', async () => {
      const { store, spool, content } = fill(400, 120);
      const err = await sb.store({ ...store.ctx.settings, mode: 'copy' }).open(sb.user).then(() => null, (e: PopspoolError) => e);
      expect(err).to.be.instanceOf(PopspoolError);
      expect(err!.code).to.equal('SYS_TEMP');
      expect(fs.readFileSync(spool, 'latin1')).to.equal(content);
      expect(fs.existsSync(path.join(mnt!, 'state', 'drops', `${sb.user}.pop`))).to.equal(false);
    });
  });
});

/**
 * Workload f: many sessions at once on many small mailboxes. Plain check-mail sessions give
 * sessions/s and latency percentiles; the racing variant runs download-and-delete-all sessions
 * while procmail (a real MDA, as a child process: locks belong to processes) delivers to 10 %
 * of the mailboxes at the same moment, then counts every mailbox: messages lost must be 0.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Pop3Client, mismatch } from './client.js';
import { measured, percentile, type Ctx, type Mailbox } from './context.js';
import { digestLines, type MessageDigest } from './generator.js';
import type { Target } from './servers.js';
import { checkMail } from './workloads.js';

/** A delivery that takes longer than this is stuck, not slow (procmail retries locks every second). */
const DELIVERY_TIMEOUT_MS = 120_000;
/** Sessions at once in the first (cache-cold) pass over the mailboxes. */
const WARMUP_CONCURRENCY = 50;
/** Unmeasured warm-up passes per extra worker (each user reaches a given worker with probability about 1/N per pass). */
const EXTRA_PASSES_PER_WORKER = 4;
/** One mailbox in this many gets a racing delivery. */
const RACE_EVERY = 10;

/** Runs `jobs` with at most `limit` in flight. */
async function pool<T>(n: number, limit: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  return out;
}

function raceMessage(user: string, rep: number): { mbox: string; digest: MessageDigest } {
  const lines = [
    `Received: from mda.example.net by mx.example.com; Mon, 1 Jul 2024 12:00:00 +0000 (race ${user} ${rep})`,
    'From: racer@example.org',
    `To: ${user}@example.com`,
    `Subject: racing delivery ${rep}`,
    `Message-ID: <race.${user}.${rep}@bench.example.org>`,
    '',
    'This message was delivered by procmail while a POP3 session was running.',
    '.a line that needs stuffing',
    '>From a quoted line',
    '-- end',
  ];
  return { mbox: `From racer@example.org Mon Jul  1 12:00:00 2024\n${lines.join('\n')}\n`, digest: digestLines(lines) };
}

function deliver(ctx: Ctx, user: string, mbox: string): Promise<boolean> {
  const rc = path.join(ctx.env.root, 'procmailrc');
  if (!fs.existsSync(rc)) fs.writeFileSync(rc, 'LOCKSLEEP=1\n');
  return new Promise((resolve) => {
    const child = spawn('procmail', ['-m', `DEFAULT=${ctx.spools.file(user)}`, rc], { stdio: ['pipe', 'ignore', 'ignore'] });
    const t = setTimeout(() => child.kill('SIGKILL'), DELIVERY_TIMEOUT_MS);
    child.on('error', () => { clearTimeout(t); resolve(false); });
    child.on('close', (code) => { clearTimeout(t); resolve(code === 0); });
    child.stdin.end(mbox);
  });
}

const DOVECOT_PSEUDO = "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA";

/** Messages in an mbox file: From_ lines at offset 0 or after an empty line. */
export function countMessages(file: string): number {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return 0;
  }
  let n = buf.subarray(0, 5).toString('latin1') === 'From ' ? 1 : 0;
  const sep = Buffer.from('\n\nFrom ');
  for (let p = buf.indexOf(sep); p !== -1; p = buf.indexOf(sep, p + 1)) n++;
  // Dovecot keeps a pseudo-message holding its UIDVALIDITY when it empties an mbox: not mail.
  if (buf.includes(DOVECOT_PSEUDO)) n--;
  return n;
}

/** Download-and-delete-all against a set of acceptable digests; returns how many it deleted (0 unless QUIT succeeded). */
async function drainSession(port: number, user: string, pass: string, want: Map<string, MessageDigest>): Promise<{ deleted: number; bad: string[] }> {
  const c = await Pop3Client.connect(port);
  try {
    await c.login(user, pass);
    const st = await c.stat();
    const bad: string[] = [];
    for (let i = 1; i <= st.count; i++) {
      const got = await c.multi(`RETR ${i}`);
      const m = mismatch(got, want.get(got.sha256 ?? ''));
      if (m) bad.push(`${user} message ${i}: ${m}`);
      await c.cmd(`DELE ${i}`);
    }
    await c.quit();
    // Until the server closes: popspool answers a journaled update (a delivery raced in) at its
    // commit point and writes the spool after; the count below reads the spools unlocked.
    await c.whenClosed();
    return { deleted: st.count, bad };
  } finally {
    c.destroy();
  }
}

export async function workloadF(ctx: Ctx, target: Target, boxes: readonly Mailbox[]): Promise<void> {
  const pass = ctx.env.password;
  const n = boxes.length;
  for (const box of boxes) ctx.spools.ensurePristine(box.user, box.template);
  // Warm-up pass: the first session on each mailbox since the server started (popspool's
  // credentials and scan caches are cold: every login pays its password hash). Reported on
  // its own; the measured passes below are the steady state.
  const warm = Math.min(WARMUP_CONCURRENCY, n);
  const first = await measured(target, () => pool(n, warm, (i) => checkMail(target.port, boxes[i]!.user, pass).catch(() => undefined)));
  ctx.results.add(target.name, `f.first.rate/c${warm}`, n / first.seconds, 'sessions/s', 'higher', first.usage);
  // With N workers each has its own credentials cache and the listener deals connections out
  // in turn: more unmeasured passes, so that every worker has seen (nearly) every user and
  // the measured passes compare steady states.
  for (let extra = 0; extra < EXTRA_PASSES_PER_WORKER * ((target.workers ?? 1) - 1); extra++) {
    await pool(n, warm, (i) => checkMail(target.port, boxes[(i + extra + 1) % n]!.user, pass).catch(() => undefined));
  }
  for (const level of ctx.opts.concurrency) {
    for (let rep = 0; rep < ctx.opts.transferReps; rep++) {
      for (const box of boxes) ctx.spools.ensurePristine(box.user, box.template);
      const lat: number[] = [];
      let failures = 0;
      const r = await measured(target, () => pool(n, level, async (i) => {
        const t0 = process.hrtime.bigint();
        try {
          await checkMail(target.port, boxes[i]!.user, pass, { count: boxes[i]!.manifest.count, octets: boxes[i]!.manifest.messages.reduce((s, m) => s + m.octets, 0) }, ctx, target);
          lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
        } catch (err) {
          failures++;
          if (failures <= 3) ctx.progress.info(`${target.name}: session failed: ${(err as Error).message}`);
        }
      }));
      ctx.results.add(target.name, `f.rate/c${level}`, n / r.seconds, 'sessions/s', 'higher', r.usage);
      ctx.results.add(target.name, `f.p50/c${level}`, percentile(lat, 50), 'ms', 'lower');
      ctx.results.add(target.name, `f.p99/c${level}`, percentile(lat, 99), 'ms', 'lower');
      ctx.results.add(target.name, `f.failures/c${level}`, failures, 'sessions', 'lower');
    }
    for (let rep = 0; rep < ctx.opts.transferReps; rep++) await racing(ctx, target, boxes, level, rep);
  }
}

async function racing(ctx: Ctx, target: Target, boxes: readonly Mailbox[], level: number, rep: number): Promise<void> {
  const n = boxes.length;
  for (const box of boxes) ctx.spools.restore(box.user, box.template);
  const race = boxes.map((b, i) => (i % RACE_EVERY === 0 ? raceMessage(b.user, rep) : null));
  const deliveries: Promise<boolean>[] = [];
  const outcome: { deleted: number; ok: boolean }[] = new Array(n);
  const lat: number[] = [];
  const bad: string[] = [];
  let failures = 0;
  const r = await measured(target, () => pool(n, level, async (i) => {
    const box = boxes[i]!;
    const want = new Map(box.manifest.messages.map((m) => [m.sha256, m]));
    const msg = race[i];
    if (msg) {
      want.set(msg.digest.sha256, msg.digest);
      deliveries[i] = deliver(ctx, box.user, msg.mbox);
    }
    const t0 = process.hrtime.bigint();
    try {
      const s = await drainSession(target.port, box.user, ctx.env.password, want);
      bad.push(...s.bad);
      outcome[i] = { deleted: s.deleted, ok: true };
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    } catch (err) {
      failures++;
      outcome[i] = { deleted: 0, ok: false };
      if (failures <= 3) ctx.progress.info(`${target.name}: racing session failed: ${(err as Error).message}`);
    }
  }));
  const delivered = await Promise.all(race.map((m, i) => (m ? deliveries[i]! : Promise.resolve(false))));
  let lost = 0;
  let duplicated = 0;
  for (let i = 0; i < n; i++) {
    const box = boxes[i]!;
    const expected = box.manifest.count + (delivered[i] ? 1 : 0) - outcome[i]!.deleted;
    const actual = countMessages(ctx.spools.file(box.user));
    if (actual < expected) {
      lost += expected - actual;
      if (lost <= 20) ctx.progress.info(`${target.name}: ${box.user}: ${actual} message(s) in the spool, expected ${expected} (delivered ${delivered[i]}, deleted ${outcome[i]!.deleted})`);
    }
    if (actual > expected) duplicated += actual - expected;
    ctx.spools.forget(box.user);
  }
  const key = `c${level}`;
  ctx.results.add(target.name, `f.race.rate/${key}`, n / r.seconds, 'sessions/s', 'higher', r.usage);
  ctx.results.add(target.name, `f.race.p99/${key}`, percentile(lat, 99), 'ms', 'lower');
  ctx.results.count(target.name, `f.race.lost/${key}`, lost);
  ctx.results.count(target.name, `f.race.duplicated/${key}`, duplicated);
  ctx.results.count(target.name, `f.race.failures/${key}`, failures);
  ctx.results.count(target.name, `f.race.undelivered/${key}`, race.filter((m, i) => m && !delivered[i]).length);
  if (bad.length) ctx.results.fail(target, `f racing ${key}`, `${bad.length} message(s) failed to verify: ${bad.slice(0, 3).join('; ')}`);
  if (lost || duplicated) ctx.results.fail(target, `f racing ${key}`, `${lost} message(s) lost, ${duplicated} duplicated`);
}

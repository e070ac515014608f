/**
 * Workloads a–e, one repetition each, run against one target at a time (index.ts interleaves
 * the targets repetition by repetition). Every session verifies what it gets: STAT
 * against the manifest, every RETR byte against the generator's digest, and after updates a
 * fresh session's STAT against the survivors. A failure is recorded (and, for popspool, makes
 * the bench exit non-zero) rather than aborting the run.
 */
import { Pop3Client, mismatch, type Check } from './client.js';
import { measured, totalOctets, type Ctx, type Mailbox } from './context.js';
import { floorPort, NODE_FLOOR, NOOP_PROBE } from './floor.js';
import { pythonSession, type PyResult } from './pyclient.js';
import type { Target } from './servers.js';

const MB = 1e6;

/** Peers whose STAT octets differed from the exact RFC 1939 sizes (reported once each, not fatal). */
const octetNotes = new Set<string>();

/**
 * One check-mail session; throws when STAT's message count disagrees with the manifest, or
 * its octets do (popspool only: a peer's different size arithmetic is recorded once, not fatal).
 */
export async function checkMail(port: number, user: string, pass: string, want?: { count: number; octets: number }, ctx?: Ctx, target?: Target): Promise<void> {
  const c = await Pop3Client.connect(port);
  try {
    await c.login(user, pass);
    const st = await c.stat();
    if (want && (st.count !== want.count || st.octets !== want.octets)) {
      const text = `STAT ${st.count} ${st.octets}, expected ${want.count} ${want.octets}`;
      if (st.count !== want.count || !target?.isPeer) throw new Error(text);
      if (ctx && !octetNotes.has(target.name)) {
        octetNotes.add(target.name);
        ctx.results.fail(target, 'STAT octets', `${text} (message count right; the peer's octet arithmetic differs from the exact wire size)`);
      }
    }
    await c.quit();
  } finally {
    c.destroy();
  }
}

interface DownloadResult {
  readonly retrSeconds: number;
  /** QUIT sent → its reply. */
  readonly quitSeconds: number;
  /** QUIT sent → the server closed the connection (its update complete). */
  readonly closeSeconds: number;
  readonly octets: number;
  readonly bad: string[];
}

/** RETR every message (and DELE it, or every `deleteEvery`-th only), then QUIT. */
async function session(port: number, mb: Mailbox, pass: string,
  opts: { retr: boolean; dele: (i: number) => boolean; check?: Check }): Promise<DownloadResult> {
  const c = await Pop3Client.connect(port);
  try {
    await c.login(mb.user, pass);
    const st = await c.stat();
    const n = mb.manifest.count;
    if (st.count !== n) throw new Error(`STAT says ${st.count} messages, expected ${n}`);
    const bad: string[] = [];
    let octets = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 1; i <= n; i++) {
      if (opts.retr) {
        const got = await c.multi(`RETR ${i}`, opts.check);
        octets += got.octets;
        const m = mismatch(got, mb.manifest.messages[i - 1]);
        if (m) bad.push(`message ${i}: ${m}`);
      }
      if (opts.dele(i)) await c.cmd(`DELE ${i}`);
    }
    const t1 = process.hrtime.bigint();
    await c.quit();
    const t2 = process.hrtime.bigint();
    await c.whenClosed();
    const t3 = process.hrtime.bigint();
    return { retrSeconds: Number(t1 - t0) / 1e9, quitSeconds: Number(t2 - t1) / 1e9, closeSeconds: Number(t3 - t1) / 1e9, octets, bad };
  } finally {
    c.destroy();
  }
}

/** After an update: a new session's STAT must show exactly the survivors. */
async function verifySurvivors(ctx: Ctx, target: Target, mb: Mailbox, kept: (i: number) => boolean, what: string): Promise<void> {
  const msgs = mb.manifest.messages.filter((_, i) => kept(i + 1));
  try {
    await checkMail(target.port, mb.user, ctx.env.password, { count: msgs.length, octets: totalOctets(msgs) }, ctx, target);
  } catch (err) {
    ctx.results.fail(target, what, `after the update: ${(err as Error).message}`);
  }
}

function report(ctx: Ctx, target: Target, what: string, bad: readonly string[]): void {
  if (bad.length === 0) return;
  ctx.results.fail(target, what, `${bad.length} message(s) failed to verify: ${bad.slice(0, 3).join('; ')}`);
}

/** (a) check-mail: cold (spool changed, caches dropped), then warm (the same spool again). */
export async function workloadA(ctx: Ctx, target: Target, mb: Mailbox): Promise<void> {
  const want = { count: mb.manifest.count, octets: totalOctets(mb.manifest.messages) };
  ctx.spools.makeCold(mb.user, mb.template, target);
  for (const phase of ['cold', 'warm'] as const) {
    try {
      const r = await measured(target, () => checkMail(target.port, mb.user, ctx.env.password, want, ctx, target));
      ctx.results.add(target.name, `a.${phase}/${mb.label}`, r.seconds, 's', 'lower', r.usage);
    } catch (err) {
      ctx.results.fail(target, `a check-mail ${phase} ${mb.label}`, (err as Error).message);
    }
  }
}

/** Records a python3 session's verification failures; true when it verified completely. */
function pyVerified(ctx: Ctx, target: Target, what: string, py: PyResult, n: number): boolean {
  if (py.badCount === 0 && py.count === n) return true;
  ctx.results.fail(target, what, `${py.badCount} of ${py.count} messages failed to verify (expected ${n}; first: ${py.bad.join(', ')})`);
  return false;
}

/**
 * (b) download all, keep. With python3: the QUICKACK client gives MB/s and ms per RETR (the
 * fair comparison), then poplib, without QUICKACK, gives the delayed-ACK ms per RETR. Without
 * python3 (--no-python): the Node client (noDelay, no QUICKACK) gives MB/s and ms per RETR.
 */
export async function workloadB(ctx: Ctx, target: Target, mb: Mailbox): Promise<void> {
  const bytes = totalOctets(mb.manifest.messages);
  const n = mb.manifest.count;
  const want = mb.manifest.messages;
  ctx.spools.ensurePristine(mb.user, mb.template);
  const what = `b download-all ${mb.label}`;
  try {
    await checkMail(target.port, mb.user, ctx.env.password); // warm-up: the scan is workload a's business
    if (ctx.python) {
      const r = await measured(target, () => pythonSession('quickack', target.port, mb.user, ctx.env.password, want));
      pyVerified(ctx, target, `${what} (QUICKACK client)`, r.value, n);
      ctx.results.add(target.name, `b.mbps/${mb.label}`, bytes / MB / r.value.total, 'MB/s', 'higher', r.usage);
      ctx.results.add(target.name, `b.msretr/${mb.label}`, (r.value.retr * 1000) / n, 'ms', 'lower');
      // What a lockstep round trip cannot go below, whatever the server: the client's own CPU.
      ctx.results.add(target.name, `b.clientms/${mb.label}`, (r.value.cpu * 1000) / n, 'ms', 'lower');
      // The per-command round trip, and beside it the floor a Node server cannot go below (floor.ts).
      const z = await pythonSession('quickack', target.port, mb.user, ctx.env.password, want, false, NOOP_PROBE);
      ctx.results.add(target.name, `b.noop/${mb.label}`, (z.retr * 1e6) / NOOP_PROBE, 'µs', 'lower');
      const f = await pythonSession('quickack', await floorPort(), mb.user, ctx.env.password, [], false, NOOP_PROBE);
      ctx.results.add(NODE_FLOOR, `b.noop/${mb.label}`, (f.retr * 1e6) / NOOP_PROBE, 'µs', 'lower');
      ctx.spools.ensurePristine(mb.user, mb.template);
      await checkMail(target.port, mb.user, ctx.env.password); // a server that changed the spool (Mailutils) rescans here
      const p = await measured(target, () => pythonSession('pipelined', target.port, mb.user, ctx.env.password, want));
      pyVerified(ctx, target, `${what} (pipelining client)`, p.value, n);
      ctx.results.add(target.name, `b.pipe.mbps/${mb.label}`, bytes / MB / p.value.total, 'MB/s', 'higher', p.usage);
      ctx.pipelined.set(target.name, p.value.pipelined);
    } else {
      const r = await measured(target, () => session(target.port, mb, ctx.env.password, { retr: true, dele: () => false }));
      report(ctx, target, what, r.value.bad);
      ctx.results.add(target.name, `b.mbps/${mb.label}`, bytes / MB / r.seconds, 'MB/s', 'higher', r.usage);
      ctx.results.add(target.name, `b.msretr/${mb.label}`, (r.value.retrSeconds * 1000) / n, 'ms', 'lower');
    }
  } catch (err) {
    ctx.results.fail(target, what, (err as Error).message);
  }
  if (!ctx.python) return;
  try {
    ctx.spools.ensurePristine(mb.user, mb.template);
    const py = await pythonSession('poplib', target.port, mb.user, ctx.env.password, want);
    pyVerified(ctx, target, `${what} (poplib)`, py, n);
    ctx.results.add(target.name, `b.py.msretr/${mb.label}`, (py.retr * 1000) / n, 'ms', 'lower');
    ctx.results.add(target.name, `b.py.mbps/${mb.label}`, bytes / MB / py.total, 'MB/s', 'higher');
    // poplib's own CPU per RETR (its line-by-line reads, the join, SHA-256): what no server takes off.
    ctx.results.add(target.name, `b.py.clientms/${mb.label}`, (py.cpu * 1000) / n, 'ms', 'lower');
  } catch (err) {
    ctx.results.fail(target, `${what} (poplib)`, (err as Error).message);
  }
}

/** (c) download and delete all, including the QUIT update (the QUICKACK client when python3 is there). */
export async function workloadC(ctx: Ctx, target: Target, mb: Mailbox): Promise<void> {
  const n = mb.manifest.count;
  ctx.spools.ensurePristine(mb.user, mb.template);
  const what = `c download-delete-all ${mb.label}`;
  try {
    await checkMail(target.port, mb.user, ctx.env.password);
    if (ctx.python) {
      const r = await measured(target, () => pythonSession('quickack', target.port, mb.user, ctx.env.password, mb.manifest.messages, true));
      pyVerified(ctx, target, `${what} (QUICKACK client)`, r.value, n);
      ctx.results.add(target.name, `c.total/${mb.label}`, r.value.total, 's', 'lower', r.usage);
      ctx.results.add(target.name, `c.quit/${mb.label}`, r.value.quit, 's', 'lower');
      // The client's own CPU in the session: what no server can take off the session's time.
      ctx.results.add(target.name, `c.client/${mb.label}`, r.value.cpu, 's', 'lower');
      await verifySurvivors(ctx, target, mb, () => false, what);
      ctx.spools.forget(mb.user);
      ctx.spools.ensurePristine(mb.user, mb.template);
      await checkMail(target.port, mb.user, ctx.env.password);
      const p = await measured(target, () => pythonSession('pipelined', target.port, mb.user, ctx.env.password, mb.manifest.messages, true));
      pyVerified(ctx, target, `${what} (pipelining client)`, p.value, n);
      ctx.results.add(target.name, `c.pipe.total/${mb.label}`, p.value.total, 's', 'lower', p.usage);
      ctx.results.add(target.name, `c.pipe.client/${mb.label}`, p.value.cpu, 's', 'lower');
      ctx.pipelined.set(target.name, p.value.pipelined);
    } else {
      const r = await measured(target, () => session(target.port, mb, ctx.env.password, { retr: true, dele: () => true }));
      report(ctx, target, what, r.value.bad);
      ctx.results.add(target.name, `c.total/${mb.label}`, r.seconds, 's', 'lower', r.usage);
      ctx.results.add(target.name, `c.quit/${mb.label}`, r.value.quitSeconds, 's', 'lower');
    }
    await verifySurvivors(ctx, target, mb, () => false, what);
  } catch (err) {
    ctx.results.fail(target, what, (err as Error).message);
  }
  ctx.spools.forget(mb.user);
}

/** Every tenth message, offset so the first and the last ones survive: deletions spread through the spool. */
export const deleted10 = (i: number): boolean => i % 10 === 5;

/** (d) delete 10 % spread through the spool, QUIT: the update time. */
export async function workloadD(ctx: Ctx, target: Target, mb: Mailbox): Promise<void> {
  ctx.spools.ensurePristine(mb.user, mb.template);
  const what = `d delete-10% ${mb.label}`;
  try {
    await checkMail(target.port, mb.user, ctx.env.password);
    const r = await measured(target, () => session(target.port, mb, ctx.env.password, { retr: false, dele: deleted10 }));
    ctx.results.add(target.name, `d.quit/${mb.label}`, r.value.quitSeconds, 's', 'lower', r.usage);
    ctx.results.add(target.name, `d.done/${mb.label}`, r.value.closeSeconds, 's', 'lower');
    ctx.results.add(target.name, `d.total/${mb.label}`, r.seconds, 's', 'lower');
    await verifySurvivors(ctx, target, mb, (i) => !deleted10(i), what);
  } catch (err) {
    ctx.results.fail(target, what, (err as Error).message);
  }
  ctx.spools.forget(mb.user);
}

/** (e) RETR of one huge message: MB/s and the server's peak RSS. */
export async function workloadE(ctx: Ctx, target: Target, mb: Mailbox): Promise<void> {
  const bytes = totalOctets(mb.manifest.messages);
  ctx.spools.ensurePristine(mb.user, mb.template);
  const what = `e RETR ${mb.label} message`;
  try {
    await checkMail(target.port, mb.user, ctx.env.password);
    // CRC-32 instead of SHA-256: the check must not be what bounds the MB/s (see client.ts).
    const r = await measured(target, () => session(target.port, mb, ctx.env.password, { retr: true, dele: () => false, check: 'crc32' }));
    report(ctx, target, what, r.value.bad);
    ctx.results.add(target.name, `e.mbps/${mb.label}`, bytes / MB / r.value.retrSeconds, 'MB/s', 'higher', r.usage);
  } catch (err) {
    ctx.results.fail(target, what, (err as Error).message);
  }
}

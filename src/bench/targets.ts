/**
 * The report's Targets table: every target of issue 5, each with what is wanted, what this run
 * measured and whether it is met. A target whose measurement is missing from the run (filtered
 * out, peer absent) says "not measured" instead of disappearing.
 */
import type { Results } from './context.js';
import { cell, columns } from './report.js';
import { fmt } from './svg.js';

interface Row {
  readonly what: string;
  readonly want: string;
  /** Display text, or null when not measured. */
  readonly measured: string | null;
  readonly ok: boolean | null;
  /** Why it is not measured, when it is not. */
  readonly why?: string;
}

/** Workers-scaling ratio wanted from `server×N` over `server` on this machine: the bench client shares the cores. */
const WORKERS_SCALING_WANTED = 1.5;

const MB = 1e6;

function ratioRow(what: string, want: string, r: number, ok: (r: number) => boolean, why?: string): Row {
  return Number.isFinite(r) ? { what, want, measured: `${fmt(r)}×`, ok: ok(r) } : { what, want, measured: null, ok: null, ...(why ? { why } : {}) };
}

function valueRow(what: string, want: string, v: number, unit: string, ok: (v: number) => boolean): Row {
  return Number.isFinite(v) ? { what, want, measured: `${fmt(v)} ${unit}`, ok: ok(v) } : { what, want, measured: null, ok: null };
}

export function targetsTable(results: Results, info: { targets: readonly string[]; mixLabels: readonly string[]; pipelined: ReadonlyMap<string, boolean> }): string[] {
  const med = (t: string, k: string) => cell(results.get(t, k))?.med ?? NaN;
  const has = (t: string) => info.targets.includes(t);
  const peers = info.targets.filter((t) => ['dovecot', 'mailutils', 'popa3d'].includes(t));
  const noPopa = has('popa3d') ? undefined : 'popa3d not in this run';
  const last = (prefix: string) => {
    const c = columns(results, prefix);
    return c[c.length - 1];
  };
  const rows: Row[] = [];
  const small = info.mixLabels[0];
  const large = info.mixLabels[info.mixLabels.length - 1];
  const L = large ?? '50k';
  const S = small ?? '1k';

  // (a) check-mail.
  rows.push(ratioRow(`(a) warm check-mail independent of spool size: server ${L} ÷ ${S}`, '≤ 2',
    small !== large ? med('server', `a.warm/${L}`) / med('server', `a.warm/${S}`) : NaN, (r) => r <= 2));
  const peerWarm = peers.map((p) => ({ p, v: med(p, `a.warm/${L}`) })).filter((x) => Number.isFinite(x.v)).sort((a, b) => a.v - b.v);
  rows.push(ratioRow(`(a) warm check-mail ${L}: fastest peer (${peerWarm[0]?.p ?? 'none'}) ÷ server`, '≥ 5', (peerWarm[0]?.v ?? NaN) / med('server', `a.warm/${L}`), (r) => r >= 5));
  rows.push(ratioRow(`(a) cold check-mail ${L}: popa3d ÷ server`, '≥ 1', med('popa3d', `a.cold/${L}`) / med('server', `a.cold/${L}`), (r) => r >= 1, noPopa));
  rows.push(ratioRow(`(a) check-mail ${L} (warm): copy ÷ server`, '≥ 100', med('copy', `a.warm/${L}`) / med('server', `a.warm/${L}`), (r) => r >= 100));

  // (b), (c), (d): on the largest mailbox those workloads ran on.
  // The pipelining client pipelines only where CAPA offers PIPELINING (popspool and Dovecot
  // do; popa3d does not, so it is measured lockstep there); the lockstep rows keep both sides
  // at one command per round trip.
  const offers = (t: string) => (info.pipelined.get(t) ? 'pipelined' : 'lockstep: no PIPELINING in CAPA');
  const piped = `client pipelining where offered (server ${offers('server')}; popa3d ${offers('popa3d')})`;
  const b = last('b.mbps') ?? S;
  rows.push(ratioRow(`(b) download-all ${last('b.pipe.mbps') ?? b}, QUICKACK ${piped}: server MB/s ÷ popa3d MB/s`, '≥ 2',
    med('server', `b.pipe.mbps/${last('b.pipe.mbps') ?? b}`) / med('popa3d', `b.pipe.mbps/${last('b.pipe.mbps') ?? b}`), (r) => r >= 2, noPopa));
  rows.push(ratioRow(`(b) download-all ${b}, QUICKACK client, lockstep on both sides: server MB/s ÷ popa3d MB/s`, '≥ 2', med('server', `b.mbps/${b}`) / med('popa3d', `b.mbps/${b}`), (r) => r >= 2, noPopa));
  const bp = last('b.py.msretr') ?? S;
  rows.push(valueRow(`(b) download-all ${bp}, python3 poplib without TCP_QUICKACK: server ms per RETR`, '≤ 0.5 ms', med('server', `b.py.msretr/${bp}`), 'ms', (v) => v <= 0.5));
  const c = last('c.total') ?? S;
  const cp = last('c.pipe.total') ?? c;
  rows.push(ratioRow(`(c) download-and-delete-all ${cp}, client pipelining (both modes offer it): copy ÷ server`, '≥ 2', med('copy', `c.pipe.total/${cp}`) / med('server', `c.pipe.total/${cp}`), (r) => r >= 2));
  rows.push(ratioRow(`(c) download-and-delete-all ${c}, lockstep: copy ÷ server`, '≥ 2', med('copy', `c.total/${c}`) / med('server', `c.total/${c}`), (r) => r >= 2));
  rows.push(ratioRow(`(c) download-and-delete-all ${cp}, whole session incl. QUIT, ${piped}: server ÷ popa3d`, '≤ 1', med('server', `c.pipe.total/${cp}`) / med('popa3d', `c.pipe.total/${cp}`), (r) => r <= 1, noPopa));
  rows.push(ratioRow(`(c) download-and-delete-all ${c}, whole session incl. QUIT, lockstep on both sides: server ÷ popa3d`, '≤ 1', med('server', `c.total/${c}`) / med('popa3d', `c.total/${c}`), (r) => r <= 1, noPopa));
  const d = last('d.quit') ?? S;
  rows.push(ratioRow(`(d) delete 10% of ${d}, QUIT update: server ÷ popa3d`, '≤ 1', med('server', `d.quit/${d}`) / med('popa3d', `d.quit/${d}`), (r) => r <= 1, noPopa));

  // (e) the huge message.
  const e = last('e.mbps') ?? '1g';
  rows.push(valueRow(`(e) RETR of the ${e} message: server MB/s`, '≥ 500 MB/s', med('server', `e.mbps/${e}`), 'MB/s', (v) => v >= 500));
  const rss = results.get('server', `e.mbps/${e}`)?.rss ?? [];
  rows.push(valueRow(`(e) RETR of the ${e} message: server peak RSS (VmHWM, max over runs; MB = 10⁶ bytes)`, '< 150 MB', rss.length ? Math.max(...rss) / MB : NaN, 'MB', (v) => v < 150));

  // (f) concurrency: the largest level for "1,000 at once", every level for the rates.
  const levels = columns(results, 'f.rate');
  const top = levels[levels.length - 1];
  if (top) {
    const sum = (k: string) => results.get('server', k)?.values.reduce((a, x) => a + x, 0) ?? NaN;
    const failures = sum(`f.failures/${top}`);
    const lost = results.counters.get(`server|f.race.lost/${top}`) ?? NaN;
    const raceFailures = results.counters.get(`server|f.race.failures/${top}`) ?? NaN;
    const measured = [failures, lost, raceFailures].every(Number.isFinite);
    rows.push({
      what: `(f) ${top.slice(1)} concurrent sessions in one process (server): failed check-mail sessions, failed racing sessions, messages lost`,
      want: '0, 0, 0',
      measured: measured ? `${failures}, ${raceFailures}, ${lost}` : null,
      ok: measured ? failures === 0 && lost === 0 && raceFailures === 0 : null,
    });
  } else {
    rows.push({ what: '(f) 1,000 concurrent sessions in one process: failures and messages lost', want: '0, 0, 0', measured: null, ok: null });
  }
  const cluster = info.targets.find((t) => /^server×\d+$/.test(t));
  for (const lv of levels.length ? levels : ['c100']) {
    rows.push(ratioRow(`(f) check-mail sessions/s, ${lv.slice(1)} at once: server ÷ popa3d`, '≥ 2', med('server', `f.rate/${lv}`) / med('popa3d', `f.rate/${lv}`), (r) => r >= 2, noPopa));
  }
  for (const lv of columns(results, 'f.first.rate')) {
    rows.push(ratioRow(`(f) --workers scaling, first session per mailbox (every login hashes), ${lv.slice(1)} at once: ${cluster ?? 'server×N'} ÷ server`, `≥ ${WORKERS_SCALING_WANTED}`,
      cluster ? med(cluster, `f.first.rate/${lv}`) / med('server', `f.first.rate/${lv}`) : NaN, (r) => r >= WORKERS_SCALING_WANTED, cluster ? undefined : 'no server×N variant in this run'));
  }
  for (const lv of levels.length ? levels : ['c100']) {
    rows.push(ratioRow(`(f) --workers scaling, check-mail sessions/s, ${lv.slice(1)} at once: ${cluster ?? 'server×N'} ÷ server`, `≥ ${WORKERS_SCALING_WANTED}`,
      cluster ? med(cluster, `f.rate/${lv}`) / med('server', `f.rate/${lv}`) : NaN, (r) => r >= WORKERS_SCALING_WANTED, cluster ? undefined : 'no server×N variant in this run'));
  }

  const out = ['| Target | Wanted | Measured | Met? |', '|---|---|---|---|'];
  for (const r of rows) {
    const m = r.measured ?? `not measured${r.why ? ` (${r.why})` : ''}`;
    out.push(`| ${r.what} | ${r.want} | ${m} | ${r.ok === null ? '–' : r.ok ? 'yes' : '**no**'} |`);
  }
  return out;
}

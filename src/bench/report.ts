/**
 * The bench report: OUT/benchmarks.md (machine, method, targets with their measured ratios,
 * one table per measurement with medians and min–max, popspool's CPU seconds and peak RSS,
 * speed-ups over copy mode and over each peer, failures) and OUT/bench/*.svg plots.
 */
import fs from 'node:fs';
import path from 'node:path';
import { median, type Mailbox, type Results, type Series } from './context.js';
import { WORKLOADS, type BenchOptions } from './options.js';
import { barChart, fmt, type Bar } from './svg.js';

export interface RunInfo {
  readonly started: Date;
  readonly finished: Date;
  readonly machine: { nproc: string; free: string; uname: string; node: string; cpu: string; peerVersions: Record<string, string> };
  readonly targets: readonly string[];
  readonly mailboxes: readonly Mailbox[];
  readonly smallMailboxes: number;
}

interface Metric {
  readonly prefix: string;
  readonly title: string;
  /** Plot file name, or null for table only. */
  readonly plot: string | null;
}

const METRICS: readonly Metric[] = [
  { prefix: 'a.cold', title: '(a) check-mail, cold: first session after the spool changed (seconds)', plot: 'a-cold.svg' },
  { prefix: 'a.warm', title: '(a) check-mail, warm: second session (seconds)', plot: 'a-warm.svg' },
  { prefix: 'b.mbps', title: '(b) download all, keep — Node client with noDelay (MB/s, whole session)', plot: 'b-mbps.svg' },
  { prefix: 'b.msretr', title: '(b) download all, keep — Node client: ms per RETR', plot: null },
  { prefix: 'b.py.msretr', title: '(b) download all, keep — python3 poplib, no TCP_QUICKACK: ms per RETR', plot: 'b-py-msretr.svg' },
  { prefix: 'b.py.mbps', title: '(b) download all, keep — python3 poplib (MB/s, whole session)', plot: null },
  { prefix: 'c.total', title: '(c) download and delete all, including QUIT (seconds)', plot: 'c-total.svg' },
  { prefix: 'c.quit', title: '(c) download and delete all: the QUIT update alone (seconds)', plot: null },
  { prefix: 'd.quit', title: '(d) delete 10% spread through the spool: QUIT update time (seconds)', plot: 'd-quit.svg' },
  { prefix: 'd.total', title: '(d) delete 10%: whole session (seconds)', plot: null },
  { prefix: 'e.mbps', title: '(e) RETR of one huge message (MB/s)', plot: 'e-mbps.svg' },
  { prefix: 'f.rate', title: '(f) check-mail sessions on small mailboxes: sessions/s, by sessions at once', plot: 'f-rate.svg' },
  { prefix: 'f.p50', title: '(f) check-mail session latency p50 (ms)', plot: null },
  { prefix: 'f.p99', title: '(f) check-mail session latency p99 (ms)', plot: null },
  { prefix: 'f.failures', title: '(f) failed sessions (count per run)', plot: null },
  { prefix: 'f.race.rate', title: '(f) download-and-delete sessions with 10% racing a procmail delivery: sessions/s', plot: 'f-race-rate.svg' },
  { prefix: 'f.race.p99', title: '(f) racing sessions: latency p99 (ms)', plot: null },
];

type Cell = { med: number; min: number; max: number; n: number } | null;

function cell(s: Series | undefined): Cell {
  const v = s?.values.filter((x) => Number.isFinite(x)) ?? [];
  if (!v.length) return null;
  return { med: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

function show(c: Cell): string {
  if (!c) return '–';
  return c.n > 1 && c.max > c.min ? `${fmt(c.med)} (${fmt(c.min)}–${fmt(c.max)})` : fmt(c.med);
}

function columns(results: Results, prefix: string): string[] {
  const cols: string[] = [];
  for (const s of results.series.values()) {
    const [p, col] = s.key.split('/');
    if (p === prefix && col && !cols.includes(col)) cols.push(col);
  }
  return cols;
}

/** >1 means `fast` wins: time ratio slow/fast for lower-is-better, rate ratio for higher-is-better. */
function speedup(results: Results, key: string, of: string, over: string): number {
  const a = cell(results.get(of, key));
  const b = cell(results.get(over, key));
  if (!a || !b) return NaN;
  const better = results.get(of, key)!.better;
  return better === 'lower' ? b.med / a.med : a.med / b.med;
}

function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(0)} MiB`;
}

function targetsTable(results: Results, info: RunInfo): string[] {
  const sizes = info.mailboxes.filter((m) => m.manifest.kind === 'mix').map((m) => m.label);
  const small = sizes[0];
  const large = sizes[sizes.length - 1];
  const peers = info.targets.filter((t) => ['dovecot', 'mailutils', 'popa3d'].includes(t));
  const med = (t: string, k: string) => cell(results.get(t, k))?.med ?? NaN;
  const rows: [string, string, number, (r: number) => boolean][] = [];
  if (small && large) {
    rows.push([`warm check-mail independent of spool size: server ${large} ÷ ${small}`, '≤ 2', med('server', `a.warm/${large}`) / med('server', `a.warm/${small}`), (r) => r <= 2]);
    const peerWarm = peers.map((p) => med(p, `a.warm/${large}`)).filter(Number.isFinite);
    const fastest = peerWarm.length ? Math.min(...peerWarm) : NaN;
    const fastestName = peers.find((p) => med(p, `a.warm/${large}`) === fastest) ?? 'no peer';
    rows.push([`warm check-mail ${large}: fastest peer (${fastestName}) ÷ server`, '≥ 5', fastest / med('server', `a.warm/${large}`), (r) => r >= 5]);
    rows.push([`cold check-mail ${large}: popa3d ÷ server`, '≥ 1', med('popa3d', `a.cold/${large}`) / med('server', `a.cold/${large}`), (r) => r >= 1]);
    rows.push([`check-mail ${large} (warm): copy ÷ server`, '≥ 100', med('copy', `a.warm/${large}`) / med('server', `a.warm/${large}`), (r) => r >= 100]);
  }
  const cCols = columns(results, 'c.total');
  const cLarge = cCols[cCols.length - 1];
  if (cLarge) rows.push([`download-and-delete-all ${cLarge}: copy ÷ server`, '≥ 2', speedup(results, `c.total/${cLarge}`, 'server', 'copy'), (r) => r >= 2]);
  const out = ['| Target | Wanted | Measured | Met? |', '|---|---|---|---|'];
  for (const [what, want, r, ok] of rows) out.push(`| ${what} | ${want} | ${Number.isFinite(r) ? `${fmt(r)}×` : 'not measured'} | ${Number.isFinite(r) ? (ok(r) ? 'yes' : '**no**') : '–'} |`);
  return out;
}

function chart(results: Results, m: Metric, targets: readonly string[]): string | null {
  const cols = columns(results, m.prefix);
  if (!cols.length) return null;
  const groups = cols.map((col) => ({
    label: col,
    bars: targets.flatMap((t): Bar[] => {
      const c = cell(results.get(t, `${m.prefix}/${col}`));
      return c ? [{ target: t, value: c.med, min: c.min, max: c.max }] : [];
    }),
  }));
  const any = [...results.series.values()].find((s) => s.key.startsWith(`${m.prefix}/`))!;
  return barChart({ title: m.title, unit: any.unit, better: any.better, groups });
}

export function writeReport(opts: BenchOptions, results: Results, info: RunInfo): string {
  const plotDir = path.join(opts.out, 'bench');
  fs.mkdirSync(plotDir, { recursive: true });
  const targets = info.targets;
  const L: string[] = [];
  const minutes = ((info.finished.getTime() - info.started.getTime()) / 60000).toFixed(1);
  L.push('# Benchmarks', '');
  L.push(`Generated by \`popspool bench${opts.quick ? ' --quick' : ''}\` on ${info.started.toISOString()} (${minutes} min). `
    + 'Re-run with `npm run bench`; `--help` lists the filters. Numbers are medians over '
    + `${opts.reps} repetition(s) (workloads b, c, d, f: ${opts.transferReps}), min–max in parentheses.`, '');
  L.push('## Machine', '', '```', `nproc: ${info.machine.nproc}`, `cpu: ${info.machine.cpu}`, info.machine.free, info.machine.uname, `node ${info.machine.node}`, '```', '');
  L.push('Servers: popspool `copy` mode, `server` mode and `server+hold` (server mode with holdLock)' + (Object.keys(info.machine.peerVersions).length
    ? `; peers: ${Object.entries(info.machine.peerVersions).map(([k, v]) => `${k} (${v})`).join(', ')}.` : '; no peers.'), '');
  for (const n of results.notes) L.push(`- ${n}`);
  if (results.notes.length) L.push('');
  L.push('Mailboxes (generated, seed ' + opts.seed + '): ' + info.mailboxes.map((m) => `${m.label} = ${m.manifest.count} message(s), ${(m.manifest.spoolBytes / 1e6).toFixed(1)} MB`).join('; ')
    + (info.smallMailboxes ? `; workload f: ${info.smallMailboxes} small mailboxes.` : '.'), '');
  L.push('## Targets', '', 'Ratios from this run (reported, never asserted; >1 means the first-named side is slower):', '', ...targetsTable(results, info), '');
  L.push('## Workloads', '');
  for (const [k, v] of Object.entries(WORKLOADS)) L.push(`- **${k}** ${v}`);
  L.push('');
  for (const m of METRICS) {
    const cols = columns(results, m.prefix);
    if (!cols.length) continue;
    L.push(`### ${m.title}`, '');
    L.push(`| Server | ${cols.join(' | ')} |`, `|---|${cols.map(() => '---').join('|')}|`);
    for (const t of targets) {
      const cells = cols.map((c) => show(cell(results.get(t, `${m.prefix}/${c}`))));
      if (cells.some((c) => c !== '–')) L.push(`| ${t} | ${cells.join(' | ')} |`);
    }
    L.push('');
    const svg = chart(results, m, targets);
    if (svg && m.plot) {
      fs.writeFileSync(path.join(plotDir, m.plot), svg);
      L.push(`![${m.title}](bench/${m.plot})`, '');
    }
  }
  L.push(...speedups(results, targets), ...usage(results, targets), ...counters(results, targets));
  L.push('## Verification', '');
  if (!results.failures.length) {
    L.push('Every retrieved byte verified against the generator, every update left exactly the expected survivors, no message was lost.', '');
  } else {
    L.push('| Server | What | Detail |', '|---|---|---|');
    for (const f of results.failures) L.push(`| ${f.target}${f.fatal ? ' (**fatal**)' : ''} | ${f.what} | ${f.detail.replace(/\|/g, '\\|').slice(0, 300)} |`);
    L.push('');
  }
  L.push(...method());
  const file = path.join(opts.out, 'benchmarks.md');
  fs.writeFileSync(file, L.join('\n'));
  return file;
}

function speedups(results: Results, targets: readonly string[]): string[] {
  const keys = [...new Set([...results.series.values()].filter((s) => !s.key.startsWith('f.failures')).map((s) => s.key))];
  const others = targets.filter((t) => t !== 'server');
  if (!targets.includes('server') || !others.length) return [];
  const out = ['## Speed-ups of popspool server mode', '', 'Server mode against each other server, same run: time ratio other ÷ server (or rate ratio server ÷ other). >1: server mode is faster.', '',
    `| Measurement | ${others.map((t) => `vs ${t}`).join(' | ')} |`, `|---|${others.map(() => '---').join('|')}|`];
  for (const k of keys) {
    const r = others.map((t) => speedup(results, k, 'server', t));
    if (r.some(Number.isFinite)) out.push(`| ${k} | ${r.map((x) => (Number.isFinite(x) ? `${fmt(x)}×` : '–')).join(' | ')} |`);
  }
  return [...out, ''];
}

function usage(results: Results, targets: readonly string[]): string[] {
  const rows = [...results.series.values()].filter((s) => s.cpu.length && targets.includes(s.target));
  if (!rows.length) return [];
  const out = ['## popspool CPU and memory', '', 'Server process CPU seconds (user+system, median per run) and peak RSS (VmHWM, reset before each run; max over runs).', '',
    '| Measurement | Server | CPU s | Peak RSS |', '|---|---|---|---|'];
  for (const s of [...rows].sort((a, b) => a.key.localeCompare(b.key) || a.target.localeCompare(b.target))) {
    out.push(`| ${s.key} | ${s.target} | ${fmt(median(s.cpu))} | ${mib(Math.max(...s.rss))} |`);
  }
  return [...out, ''];
}

function counters(results: Results, targets: readonly string[]): string[] {
  if (!results.counters.size) return [];
  const keys = [...new Set([...results.counters.keys()].map((k) => k.split('|')[1]!))];
  const out = ['## Racing deliveries (workload f)', '', 'Totals over all repetitions. "lost" counts messages missing from the spools after the run that no completed QUIT deleted; it must be 0.', '',
    `| Server | ${keys.join(' | ')} |`, `|---|${keys.map(() => '---').join('|')}|`];
  for (const t of targets) {
    const vals = keys.map((k) => results.counters.get(`${t}|${k}`));
    if (vals.some((v) => v !== undefined)) out.push(`| ${t} | ${vals.map((v) => v ?? '–').join(' | ')} |`);
  }
  return [...out, ''];
}

function method(): string[] {
  return ['## Method', '',
    '- Mailboxes are generated deterministically (seeded PRNG): 98.5 % text messages of 2–20 KB, 1.5 % with a base64 attachment of 100 KB–1 MB; '
    + 'bodies contain lines starting with `.` and `>From `; LF line endings. The generator records the SHA-256 of each message\'s wire form; '
    + 'the bench client un-stuffs every RETR reply and compares. Templates are cached under `$TMPDIR/popspool-bench-cache` and copied into a working spool before each run that needs a pristine one.',
    '- Every server runs on 127.0.0.1 as a child process with a throwaway configuration in a temp directory, over the same working spools; '
    + 'popspool with `popspool serve --mode copy|server [--hold-lock] --log-level warn`. The page cache is warm in all cases.',
    '- **cold** = first session after the spool changed (its mtime is moved, popspool\'s cache file and Dovecot\'s index are removed); **warm** = the next session.',
    '- (b) is measured twice: with the bench\'s Node client (noDelay) and with python3 `poplib`, which sends each command as its own write and never sets TCP_QUICKACK, so delayed-ACK stalls show in its ms per RETR.',
    '- (b), (c), (d) and (e) open with an unmeasured check-mail session, so they measure transfer and update, not the scan.',
    '- (f) runs one session per small mailbox, N at once; the racing variant runs download-and-delete-all sessions while procmail (`procmail -m`, dotlock + fcntl) delivers to every tenth mailbox, then counts the messages in every spool.',
    '- Peers: Dovecot runs with `dovecot -F -c OUR.conf` (passwd-file passdb, static userdb); GNU Mailutils pop3d with `--config-file`; '
    + 'popa3d (which hard-codes /var/mail) behind `socat` inside a private mount namespace (`unshare --mount`) with the bench spool directory bind-mounted over /var/mail. '
    + 'Mailutils and popa3d authenticate Unix users, so the bench creates throwaway users `pb*` sharing the uid of a `popbench` account (and a `popa3d` account); '
    + '`popspool bench --remove-users` deletes them. The system\'s mail configuration is never read or changed.',
    '- Peers may legitimately fail verification: GNU Mailutils adds headers (X-UIDL, Status, X-IMAPbase) to the messages it serves and computes STAT octets its own way; '
    + 'Dovecot leaves a "FOLDER INTERNAL DATA" pseudo-message in an mbox it emptied (not counted as mail). Only popspool failures make the bench exit non-zero.',
    '- Peer install (Debian 12): `apt-get install dovecot-pop3d mailutils-common libmailutils9 libmu-dbm9 libgsasl18 libkyotocabinet16v5`; '
    + 'popa3d and mailutils-pop3d conflict with dovecot-pop3d as packages, so `apt-get download popa3d mailutils-pop3d` and `dpkg -x` each into `/opt/popbench-peers/root` (or `--peer-root`).',
    ''];
}


/**
 * The bench report: OUT/benchmarks.md (machine, method, targets with their measured ratios,
 * one table per measurement with medians and min–max, popspool's CPU seconds and peak RSS,
 * speed-ups over copy mode and over each peer, failures) and OUT/bench/*.svg plots.
 */
import fs from 'node:fs';
import path from 'node:path';
import { median, SETTLE_MS, type Mailbox, type Results, type Series } from './context.js';
import type { SchemeInfo } from './credentials.js';
import type { MachineInfo } from './machine.js';
import { WORKLOADS, type BenchOptions } from './options.js';
import { targetsTable } from './targets.js';
import { PIPELINE_WINDOW } from './pyclient.js';
import { NOOP_PROBE } from './floor.js';
import { barChart, fmt, type Bar } from './svg.js';

export interface RunInfo {
  readonly started: Date;
  readonly finished: Date;
  readonly machine: MachineInfo;
  readonly targets: readonly string[];
  readonly mailboxes: readonly Mailbox[];
  readonly smallMailboxes: number;
  /** Password schemes each side checked. */
  readonly schemes: SchemeInfo;
  /** Whether (b) and (c) used the python3 clients (QUICKACK and poplib) or the Node client. */
  readonly python: boolean;
  /** Per server: whether the pipelining client found PIPELINING in CAPA and used it. */
  readonly pipelined: ReadonlyMap<string, boolean>;
}

interface Metric {
  readonly prefix: string;
  readonly title: string;
  /** Plot file name, or null for table only. */
  readonly plot: string | null;
}

function metrics(python: boolean): readonly Metric[] {
  const fair = python ? 'python3 client with TCP_QUICKACK' : 'Node client, noDelay, no TCP_QUICKACK';
  return [
    { prefix: 'a.cold', title: '(a) check-mail, cold: first session after the spool changed (seconds)', plot: 'a-cold.svg' },
    { prefix: 'a.warm', title: '(a) check-mail, warm: second session (seconds)', plot: 'a-warm.svg' },
    { prefix: 'b.mbps', title: `(b) download all, keep — ${fair} (MB/s, whole session)`, plot: 'b-mbps.svg' },
    { prefix: 'b.pipe.mbps', title: `(b) download all, keep — ${fair}, pipelining when the server advertises PIPELINING (MB/s, whole session)`, plot: 'b-pipe-mbps.svg' },
    { prefix: 'b.msretr', title: `(b) download all, keep — ${fair}: ms per RETR`, plot: null },
    { prefix: 'b.clientms', title: `(b) download all, keep — ${fair}: the client's own CPU per RETR (ms; a lockstep round trip is at least this plus the server's time and two wake-ups)`, plot: null },
    { prefix: 'b.noop', title: `(b) the per-command round trip — ${fair}: µs per NOOP, ${NOOP_PROBE} one at a time (a minimal Node server's, which answers each line with one write, is in the Targets table)`, plot: null },
    { prefix: 'b.py.msretr', title: '(b) download all, keep — python3 poplib, no TCP_QUICKACK: ms per RETR', plot: 'b-py-msretr.svg' },
    { prefix: 'b.py.mbps', title: '(b) download all, keep — python3 poplib, no TCP_QUICKACK (MB/s, whole session)', plot: null },
    { prefix: 'c.total', title: `(c) download and delete all, including QUIT — ${fair} (seconds)`, plot: 'c-total.svg' },
    { prefix: 'c.pipe.total', title: `(c) download and delete all, including QUIT — ${fair}, pipelining when the server advertises PIPELINING (seconds)`, plot: 'c-pipe-total.svg' },
    { prefix: 'c.quit', title: '(c) download and delete all: the QUIT update alone (seconds)', plot: null },
    { prefix: 'd.quit', title: '(d) delete 10% spread through the spool: QUIT update time, QUIT sent to its reply (seconds)', plot: 'd-quit.svg' },
    { prefix: 'd.done', title: '(d) delete 10%: QUIT sent to the server closing the connection (popspool answers at the update\'s commit point and closes once the spool is written) (seconds)', plot: null },
    { prefix: 'd.total', title: '(d) delete 10%: whole session (seconds)', plot: null },
    { prefix: 'e.mbps', title: '(e) RETR of one huge message (MB/s)', plot: 'e-mbps.svg' },
    { prefix: 'f.first.rate', title: '(f) first check-mail session per mailbox since the server started (popspool pays every password hash): sessions/s', plot: null },
    { prefix: 'f.rate', title: '(f) check-mail sessions on small mailboxes: sessions/s, by sessions at once', plot: 'f-rate.svg' },
    { prefix: 'f.p50', title: '(f) check-mail session latency p50 (ms)', plot: null },
    { prefix: 'f.p99', title: '(f) check-mail session latency p99 (ms)', plot: null },
    { prefix: 'f.failures', title: '(f) failed sessions (count per run)', plot: null },
    { prefix: 'f.race.rate', title: '(f) download-and-delete sessions with 10% racing a procmail delivery: sessions/s', plot: 'f-race-rate.svg' },
    { prefix: 'f.race.p99', title: '(f) racing sessions: latency p99 (ms)', plot: null },
  ];
}

export type Cell = { med: number; min: number; max: number; n: number } | null;

export function cell(s: Series | undefined): Cell {
  const v = s?.values.filter((x) => Number.isFinite(x)) ?? [];
  if (!v.length) return null;
  return { med: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

function show(c: Cell): string {
  if (!c) return '–';
  return c.n > 1 && c.max > c.min ? `${fmt(c.med)} (${fmt(c.min)}–${fmt(c.max)})` : fmt(c.med);
}

export function columns(results: Results, prefix: string): string[] {
  const cols: string[] = [];
  for (const s of results.series.values()) {
    const [p, col] = s.key.split('/');
    if (p === prefix && col && !cols.includes(col)) cols.push(col);
  }
  return cols;
}

/** >1 means `fast` wins: time ratio slow/fast for lower-is-better, rate ratio for higher-is-better. */
export function speedup(results: Results, key: string, of: string, over: string): number {
  const a = cell(results.get(of, key));
  const b = cell(results.get(over, key));
  if (!a || !b) return NaN;
  const better = results.get(of, key)!.better;
  return better === 'lower' ? b.med / a.med : a.med / b.med;
}

function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(0)} MiB`;
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
  const fsy = info.machine.fsync;
  if (fsy) {
    L.push(`Spool filesystem: ${fsy.fsType}; write 200 bytes + fsync: ${fmt(fsy.fileMs)} ms; a journal-style state change (temp file + fsync + rename + directory fsync): `
      + `${fmt(fsy.stateMs)} ms (medians of ${fsy.samples}); writing + fdatasync of 8 MB: ${fmt(fsy.bulkMsPerMb)} ms per MB.`, '');
  }
  const cluster = targets.filter((t) => /^server×\d+$/.test(t));
  L.push('Servers: popspool `copy` mode, `server` mode and `server+hold` (server mode with holdLock)'
    + (cluster.length ? `, ${cluster.map((c) => `\`${c}\` (server mode with \`--workers ${c.split('×')[1]}\`, node:cluster; workload f only)`).join(', ')}` : '')
    + (Object.keys(info.machine.peerVersions).length
    ? `; peers: ${Object.entries(info.machine.peerVersions).map(([k, v]) => `${k} (${v})`).join(', ')}.` : '; no peers.'), '');
  for (const n of results.notes) L.push(`- ${n}`);
  if (results.notes.length) L.push('');
  L.push('Mailboxes (generated, seed ' + opts.seed + '): ' + info.mailboxes.map((m) => `${m.label} = ${m.manifest.count} message(s), ${(m.manifest.spoolBytes / 1e6).toFixed(1)} MB`).join('; ')
    + (info.smallMailboxes ? `; workload f: ${info.smallMailboxes} small mailboxes.` : '.'), '');
  const mixLabels = info.mailboxes.filter((m) => m.manifest.kind === 'mix').map((m) => m.label);
  L.push('## Targets', '', 'Every target of issue 5, from this run (reported, never asserted). Ratios of times are slower ÷ faster as named; "not measured": the run did not include it.', '',
    ...targetsTable(results, { targets, mixLabels, pipelined: info.pipelined, machine: info.machine, mailboxes: info.mailboxes }), '',
    'What bounds the targets popspool misses, with the profiles that show it: [performance.md](performance.md)'
    + (fs.existsSync(path.join(plotDir, 'profiles.md')) ? ' and [bench/profiles.md](bench/profiles.md) (`popspool bench --profile`).' : '.'), '');
  L.push(...schemesSection(info), ...journalSection(results, info));
  L.push('## Workloads', '');
  for (const [k, v] of Object.entries(WORKLOADS)) L.push(`- **${k}** ${v}`);
  L.push('');
  for (const m of metrics(info.python)) {
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
  L.push(...method(info.python, opts.quick));
  const file = path.join(opts.out, 'benchmarks.md');
  fs.writeFileSync(file, L.join('\n'));
  return file;
}

/** Series that are not a server's speed: failure counts, and the bench client's own CPU (a
 *  bound the Targets table quotes; "server mode is faster" by it would mean nothing). */
const NOT_SPEEDS = ['f.failures', 'b.clientms/', 'c.client/', 'c.pipe.client/'];

export function speedups(results: Results, targets: readonly string[]): string[] {
  const keys = [...new Set([...results.series.values()].filter((s) => !NOT_SPEEDS.some((p) => s.key.startsWith(p))).map((s) => s.key))];
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

/** Which password scheme each side checked, and whether that is equal hash cost. */
function schemesSection(info: RunInfo): string[] {
  const t = info.targets;
  const popspool = t.filter((x) => !['dovecot', 'mailutils', 'popa3d'].includes(x));
  const rows: string[] = [];
  if (popspool.length) {
    rows.push(`| popspool (${popspool.join(', ')}) | users file (passwd-file) | ${info.schemes.usersFile} | SHA-512-crypt on a wasm SHA-512 (src/auth/sha-crypt.ts), in a worker-thread pool of one thread per core | verified-credentials cache, 5 min TTL: after the first login of a user, the next ones skip the hash |`);
  }
  if (t.includes('dovecot')) rows.push(`| dovecot | the same users file (passwd-file passdb) | ${info.schemes.usersFile} | libc crypt(3) in the auth process | none (auth_cache_size = 0, Dovecot's default) |`);
  for (const p of ['mailutils', 'popa3d'].filter((x) => t.includes(x))) rows.push(`| ${p} | /etc/shadow of the throwaway Unix users | ${info.schemes.shadow ?? 'unknown'} | libc crypt(3) | none |`);
  if (!rows.length) return [];
  const sha = info.schemes.usersFile.startsWith('SHA512-CRYPT');
  const shadowSame = info.schemes.shadow === null || info.schemes.shadow === info.schemes.usersFile;
  const equal = sha && shadowSame
    ? 'Equal hash cost: every side checks the same scheme and cost (SHA-512 crypt, 5000 rounds; the bench writes the same hashes to the users file and, with `chpasswd -e`, to /etc/shadow). '
      + 'Implementations differ: popspool computes the rounds on a wasm SHA-512 (about 2.5–3 ms of CPU here; unixcrypt in JavaScript took 16–22 ms), libc in C (about 2.7 ms here, measured with the crypt module of python3). Workload f\'s measured passes follow a first pass over every mailbox, so popspool answers them from its credentials cache; '
      + 'the "first session per mailbox" table is the pass where it pays every hash.'
    : `**Not equal hash cost**: the users file holds ${info.schemes.usersFile}${info.schemes.shadow ? `, /etc/shadow ${info.schemes.shadow}` : ''} (run with \`--hash sha512-crypt\` and openssl for equal cost).`;
  return ['## Password schemes (workload f is dominated by logins)', '', '| Server | Checks against | Scheme | Computed by | Cache |', '|---|---|---|---|---|', ...rows, '', equal, ''];
}

/** MB (2^20 bytes) of mailbox `label` that workload d's update rewrites: it deletes message 6
 *  first (deleted10), so the tail is nearly the whole spool. */
export function rewrittenTailMb(mailboxes: readonly Mailbox[] | undefined, label: string): number | undefined {
  const box = mailboxes?.find((m) => m.label === label);
  return box ? box.manifest.spoolBytes / 2 ** 20 : undefined;
}

/** What the crash-safety journal costs per update: the fsync probe against the (d) update times. */
function journalSection(results: Results, info: RunInfo): string[] {
  const fsy = info.machine.fsync;
  const dCols = columns(results, 'd.quit');
  if (!fsy || !dCols.length) return [];
  // journal.ts, for a delete (the spool shrinks). Before the QUIT's +OK: the image written and
  // data-synced, its directory synced, the `prepared` state (temp + fdatasync + rename + dir
  // fsync). After it, still under the lock: the image copied into the spool and synced, the
  // `zeroed` state, the truncation synced, the journal removed and its directory synced.
  const beforeMs = fsy.stateMs + 2 * fsy.fileMs;
  const afterMs = fsy.stateMs + 3 * fsy.fileMs;
  const out = ['## What the journal costs (DESIGN.md §4)', '',
    'A journaled rewrite — workload d — builds the new tail of the spool (from the first deleted message to the end) in an image file and copies it into place under a write-ahead journal. '
    + `popspool answers the QUIT once the image and the journal are durable (the commit point: a crash from there on is completed by recovery, never undone): before the +OK, the tail is written and synced once, as an in-place rewrite that syncs would, `
    + `plus one journal state (temp file + fdatasync + rename + directory fsync, ${fmt(fsy.stateMs)} ms here) and the image's syncs (${fmt(fsy.fileMs)} ms each): about ${fmt(beforeMs)} ms of fixed cost on this ${fsy.fsType} filesystem. `
    + `After the +OK, still under the mailbox lock and before the connection is closed, the image is copied into the spool and synced, a second journal state is written, the truncation synced and the journal removed: about ${fmt(afterMs)} ms of fixed cost, `
    + `plus a second synced copy of the tail at ${fmt(fsy.bulkMsPerMb)} ms per MB. popa3d rewrites in place without any sync. `
    + 'Deleting every message (workload c) truncates the spool and syncs it once: no journal.', ''];
  const share = dCols.map((c) => {
    const q = cell(results.get('server', `d.quit/${c}`));
    const done = cell(results.get('server', `d.done/${c}`));
    const mb = rewrittenTailMb(info.mailboxes, c);
    const copyMs = mb === undefined ? 0 : mb * fsy.bulkMsPerMb;
    if (!q) return null;
    const tail = mb === undefined ? '' : ` (a synced copy of ~${fmt(mb)} MB ≈ ${fmt(copyMs)} ms)`;
    return `${c}: the client waits ${fmt(q.med * 1000)} ms for the +OK, of which the journal's fixed cost is ≈ ${fmt(beforeMs)} ms and writing and syncing the image${tail} a part, the rest reading and verifying the kept messages; `
      + `the update completes ${done ? fmt((done.med - q.med) * 1000) : '?'} ms later (the second copy and ≈ ${fmt(afterMs)} ms of syncs)`;
  }).filter((x): x is string => x !== null);
  if (share.length) out.push(`Server mode, from this run: ${share.join('; ')}.`, '');
  return out;
}

export function method(python: boolean, quick: boolean): string[] {
  return ['## Method', '',
    '- Mailboxes are generated deterministically (seeded PRNG): 98.5 % text messages of 2–20 KB, 1.5 % with a base64 attachment of 100 KB–1 MB; '
    + 'bodies contain lines starting with `.` and `>From `; LF line endings. The generator records the SHA-256 and CRC-32 of each message\'s wire form; '
    + 'the bench client un-stuffs every RETR reply and compares its size and SHA-256, or in (e) its size and CRC-32: SHA-256 runs at about 1.1 GB/s on this kind of machine and would bound (e)\'s MB/s for every server, zlib\'s CRC-32 at about 3 GB/s. Templates are cached under `$TMPDIR/popspool-bench-cache` and copied into a working spool before each run that needs a pristine one.',
    '- Every server runs on 127.0.0.1 as a child process with a throwaway configuration in a temp directory, over the same working spools; '
    + 'popspool with `popspool serve --mode copy|server [--hold-lock] --log-level warn`. For each workload every server is started afresh, after `sync`, '
    + 'so none inherits another\'s memory, caches or disk writeback. The run goes workload by workload; within one, the servers take turns repetition by repetition (in the order of the tables, then in reverse, and so on), each repetition after `sync` and a ' + `${SETTLE_MS / 1000} s pause, so both sides of a ratio draw their medians from the same minutes of a shared machine whose speed drifts. Copy mode is the exception: its repetitions follow the others\' rounds, because each of its sessions copies the whole spool and writes it back, and the session right after that churn of page cache was measurably slower (popspool\'s cold 50k login: 0.390 s median against 0.299 s after popa3d\'s; docs/performance.md). ${quick
      ? 'This is a --quick run: it proves that every workload runs and verifies, and skips the unmeasured warm-up repetition a full run makes in workloads a, b, c and d, so its times include each server\'s start-up.'
      : 'In workloads a, b, c and d each server first does one repetition that is not measured (popspool\'s JIT compiles the RETR path in its first few thousand commands and the scanner\'s in its first scans; popspool warms its scanner up at start-up, which halves the gap but does not close it), so they measure a running server\'s steady state; in (a) the spool is made cold again before each measured repetition.'} The page cache is warm in all cases.`,
    '- **cold** = first session after the spool changed (its mtime is moved, popspool\'s cache file and Dovecot\'s index are removed); **warm** = the next session.',
    python
      ? '- (b) and (c) use a python3 raw-socket client that sets TCP_NODELAY and re-arms TCP_QUICKACK after every recv (the kernel clears it), as the issue\'s orientation figures were measured: '
        + 'servers that write a reply in several segments (popa3d, Mailutils) would otherwise stall about 40 ms per RETR on the client\'s delayed ACK, which measures the client, not the server. '
        + '(b) is measured a second time with python3 `poplib`, which sends each command as its own write and never sets TCP_QUICKACK, so delayed-ACK stalls show in its ms per RETR (the ≤ 0.5 ms target). '
        + `(b) and (c) are also measured with the same raw-socket client in its pipelining form: it sends CAPA first and, when the server lists PIPELINING (RFC 2449), keeps up to ${PIPELINE_WINDOW} commands in flight `
        + '(as mpop does); a server that does not offer it is driven one command at a time, so its figure equals its lockstep one. '
        + 'The python clients verify every message\'s size and SHA-256 (the raw-socket client hashes the un-stuffed body where it lies in its buffer); (b) MB/s is over the whole session (connect, login, RETRs, QUIT).'
      : '- (b) and (c) use the bench\'s Node client (noDelay, no TCP_QUICKACK): python3 was not used, so peers that write replies in several segments show delayed-ACK stalls.',
    '- (b), (c), (d) and (e) open with an unmeasured check-mail session, so they measure transfer and update, not the scan.',
    '- (f) runs one session per small mailbox, N at once, after a first pass over every mailbox (50 at once, reported on its own: for popspool the pass where every login pays its password hash); '
    + 'the racing variant runs download-and-delete-all sessions while procmail (`procmail -m`, dotlock + fcntl) delivers to every tenth mailbox, then counts the messages in every spool. '
    + '`server×N` is server mode with `--workers N` (node:cluster: N processes share the listener; CPU and peak RSS are summed over them) and runs workload f only. '
    + 'Passwords: see "Password schemes" (`--hash plain` turns hashing off on every side).',
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


/**
 * `popspool bench` options: defaults for the full run and for --quick (what CI runs), and the
 * argv parser. Kept free of yargs so the bench can be driven from a one-line script too.
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PEER_NAMES, type PeerName } from './peers.js';
import type { PopspoolVariant } from './servers.js';

export type WorkloadId = 'a' | 'b' | 'c' | 'd' | 'e' | 'f';
export type BenchHash = 'sha512-crypt' | 'plain';

/** Workers of the `server×N` variant (workload f only): one per core, at least 2, so scaling shows. */
export const CLUSTER_WORKERS = Math.max(2, os.availableParallelism());

/** Accepts `server×N` and the ASCII spelling `serverxN`. */
function parseVariant(x: string): PopspoolVariant {
  if (['copy', 'server', 'server+hold'].includes(x)) return x as PopspoolVariant;
  const m = /^server[x×](\d+)$/.exec(x);
  if (m && Number(m[1]) >= 1) return `server×${Number(m[1])}`;
  throw new Error(`unknown mode ${x} (copy, server, server+hold, server×N or serverxN)`);
}
export const WORKLOADS: Readonly<Record<WorkloadId, string>> = {
  a: 'check-mail (USER/PASS/STAT/QUIT), cold and warm',
  b: 'download all, keep (RETR every message, QUIT)',
  c: 'download and delete all (RETR+DELE every message, QUIT)',
  d: 'delete 10% spread through the spool, QUIT',
  e: 'RETR of one huge message',
  f: 'concurrent sessions on many small mailboxes (+ 10% racing a procmail delivery)',
};

export interface BenchOptions {
  readonly quick: boolean;
  /** Report directory: OUT/benchmarks.md and OUT/bench/*.svg. */
  readonly out: string;
  /** Message counts of the mixed mailboxes. */
  readonly sizes: readonly number[];
  /** Workloads b, c and d run only on mailboxes up to this many messages (they dominate the run time). */
  readonly transferMax: number;
  /** Bytes of the single-message spool of workload e. */
  readonly bigBytes: number;
  readonly workloads: ReadonlySet<WorkloadId>;
  readonly variants: readonly PopspoolVariant[];
  readonly peers: readonly PeerName[];
  readonly reps: number;
  /** Repetitions of the long workloads b, c, d and f (default: reps). */
  readonly transferReps: number;
  /** target:workload pairs to skip, e.g. "mailutils:f". */
  readonly skip: ReadonlySet<string>;
  readonly seed: number;
  /** Workload f: number of small mailboxes (= sessions per level) and the concurrency levels. */
  readonly mailboxes: number;
  readonly concurrency: readonly number[];
  /** Where generated template spools are cached across runs. */
  readonly cacheDir: string;
  /** Private root where popa3d / Mailutils pop3d were unpacked with dpkg -x. */
  readonly peerRoot: string;
  /** Skip the python3 clients (poplib and QUICKACK) in workloads b and c: the Node client does them. */
  readonly noPython: boolean;
  /** Password scheme of the bench users, the same for popspool, Dovecot and the Unix users the other peers check. */
  readonly hash: BenchHash;
  readonly removeUsers: boolean;
  /** Profile popspool in the scenarios that bound its unmet targets instead of benchmarking (profile.ts). */
  readonly profile: boolean;
  readonly help: boolean;
  /** Set when argv could not be parsed; runBench prints it with the usage and exits 2. */
  readonly error?: string;
}

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export const USAGE = `usage: popspool bench [options]
  --quick              small sizes, one repetition (< 2 min): proves every workload runs and verifies
  --out DIR            write DIR/benchmarks.md and DIR/bench/*.svg (default: the project's docs/)
  --sizes 1k,10k,50k   message counts of the generated mailboxes
  --transfer-max N     run workloads b, c, d only on mailboxes of at most N messages (default 10k)
  --big SIZE           size of the single-message spool for workload e (default 1g; k/m/g suffixes)
  --workloads a,b,...  subset of: ${Object.entries(WORKLOADS).map(([k]) => k).join(', ')}
  --modes LIST         popspool variants: copy,server,server+hold,server×N (serverxN: --workers N,
                       workload f only; default N = cores, at least 2)
  --hash SCHEME        users' password scheme, the same on every side: sha512-crypt (default) or plain
  --peers LIST         dovecot,mailutils,popa3d, or none
  --reps N             repetitions per measurement (default 5; medians and min-max are reported)
  --transfer-reps N    repetitions of the long workloads b, c, d, f (default: --reps)
  --skip T:W,...       skip workload W for server T, e.g. mailutils:f
  --mailboxes N        workload f: small mailboxes / sessions per level (default 1000)
  --concurrency LIST   workload f: sessions at once (default 100,1000)
  --seed N             generator seed (default 1939)
  --cache-dir DIR      generated spools cache (default $TMPDIR/popspool-bench-cache)
  --peer-root DIR      where popa3d and mailutils-pop3d were unpacked (default /opt/popbench-peers/root)
  --no-python          skip the python3 clients (b and c then use the Node client)
  --remove-users       delete the throwaway Unix users the bench created, and exit
  --profile            instead of benchmarking, CPU-profile popspool (node --cpu-prof) in the scenarios that
                       bound its unmet targets and write OUT/bench/profiles.md (a few minutes)
Workloads:
${Object.entries(WORKLOADS).map(([k, v]) => `  ${k}  ${v}`).join('\n')}`;

/** "1k" → 1000, "2.5m" → 2500000 (decimal, for message counts), with binary multiples for bytes. */
export function parseCount(s: string, binary = false): number {
  const m = /^(\d+(?:\.\d+)?)([kmg]?)$/i.exec(s.trim());
  if (!m) throw new Error(`not a size: ${JSON.stringify(s)}`);
  const unit = m[2]!.toLowerCase();
  const base = binary ? 1024 : 1000;
  const mult = unit === 'k' ? base : unit === 'm' ? base ** 2 : unit === 'g' ? base ** 3 : 1;
  return Math.round(Number(m[1]) * mult);
}

export function sizeLabel(n: number): string {
  return n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n);
}

export function parseBenchArgs(argv: string[]): BenchOptions {
  const quick = argv.includes('--quick');
  const o = {
    quick,
    out: path.join(PROJECT_ROOT, 'docs'),
    sizes: quick ? [200, 1000] : [1000, 10_000, 50_000],
    transferMax: quick ? 200 : 10_000,
    bigBytes: quick ? 16 << 20 : 1 << 30,
    workloads: new Set<WorkloadId>(['a', 'b', 'c', 'd', 'e', 'f']),
    variants: ['copy', 'server', 'server+hold', `server×${CLUSTER_WORKERS}`] as PopspoolVariant[],
    peers: [...PEER_NAMES] as PeerName[],
    reps: quick ? 1 : 5,
    transferReps: 0,
    skip: new Set<string>(),
    seed: 1939,
    mailboxes: quick ? 40 : 1000,
    concurrency: quick ? [10, 40] : [100, 1000],
    cacheDir: path.join(os.tmpdir(), 'popspool-bench-cache'),
    peerRoot: process.env.POPSPOOL_BENCH_PEERS ?? '/opt/popbench-peers/root',
    noPython: false,
    hash: 'sha512-crypt' as BenchHash,
    removeUsers: false,
    profile: false,
    help: false,
  };
  try {
    parseInto(o, argv);
  } catch (err) {
    return { ...o, transferReps: o.transferReps || o.reps, error: (err as Error).message };
  }
  return { ...o, transferReps: o.transferReps || o.reps };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function parseInto(o: Mutable<BenchOptions> & { workloads: Set<WorkloadId>; skip: Set<string> }, argv: string[]): void {
  const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--quick': break;
      case '--out': o.out = path.resolve(value()); break;
      case '--sizes': o.sizes = list(value()).map((s) => parseCount(s)); break;
      case '--transfer-max': o.transferMax = parseCount(value()); break;
      case '--big': o.bigBytes = parseCount(value(), true); break;
      case '--workloads': {
        const w = list(value());
        for (const x of w) if (!(x in WORKLOADS)) throw new Error(`unknown workload ${x} (one of ${Object.keys(WORKLOADS).join(', ')})`);
        o.workloads = new Set(w as WorkloadId[]);
        break;
      }
      case '--modes': {
        o.variants = list(value()).map(parseVariant);
        break;
      }
      case '--peers': {
        const v = value();
        const p = v === 'none' ? [] : list(v);
        for (const x of p) if (!PEER_NAMES.includes(x as PeerName)) throw new Error(`unknown peer ${x} (${PEER_NAMES.join(', ')} or none)`);
        o.peers = p as PeerName[];
        break;
      }
      case '--reps': o.reps = Math.max(1, parseCount(value())); break;
      case '--transfer-reps': o.transferReps = Math.max(1, parseCount(value())); break;
      case '--skip': for (const x of list(value())) o.skip.add(x); break;
      case '--mailboxes': o.mailboxes = Math.max(1, parseCount(value())); break;
      case '--concurrency': o.concurrency = list(value()).map((s) => Math.max(1, parseCount(s))); break;
      case '--seed': o.seed = parseCount(value()); break;
      case '--cache-dir': o.cacheDir = path.resolve(value()); break;
      case '--peer-root': o.peerRoot = path.resolve(value()); break;
      case '--no-python': o.noPython = true; break;
      case '--hash': {
        const h = value();
        if (h !== 'sha512-crypt' && h !== 'plain') throw new Error(`unknown hash ${h} (sha512-crypt or plain)`);
        o.hash = h;
        break;
      }
      case '--remove-users': o.removeUsers = true; break;
      case '--profile': o.profile = true; break;
      case '-h': case '--help': o.help = true; break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
}

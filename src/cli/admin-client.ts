/**
 * Clients of the admin listener: `popspool stats` (a readable table from GET /status) and
 * `popspool admin set NAME VALUE` (POST /limits). Exit 0 on success, 1 when the server
 * refuses or cannot be reached, 2 for a usage error.
 */
import { readConfigFile } from '../config/load.js';
import { readToken, RUNTIME_SETTINGS } from '../obs/admin.js';

/** The conventional admin address (docs/operations.md recommends admin-listen = 127.0.0.1:9110). */
export const DEFAULT_ADMIN = '127.0.0.1:9110';

export interface AdminClientOptions {
  readonly admin?: string | undefined;
  readonly tokenFile?: string | undefined;
  /** A popspool config file: its admin-listen and admin-token-file are used when not given. */
  readonly config?: string | undefined;
}

interface Endpoint {
  readonly base: string;
  readonly headers: Record<string, string>;
}

function endpoint(o: AdminClientOptions): Endpoint {
  const file = o.config ? readConfigFile(o.config) : {};
  let addr = o.admin ?? (file.adminListen as string | undefined) ?? DEFAULT_ADMIN;
  if (addr.startsWith(':')) addr = `127.0.0.1${addr}`;
  if (addr.startsWith('0.0.0.0:')) addr = `127.0.0.1${addr.slice(7)}`;
  const tokenFile = o.tokenFile ?? (file.adminTokenFile as string | undefined);
  const headers: Record<string, string> = {};
  if (tokenFile) headers.authorization = `Bearer ${readToken(tokenFile)}`;
  return { base: /^https?:\/\//.test(addr) ? addr.replace(/\/$/, '') : `http://${addr}`, headers };
}

async function call(e: Endpoint, path: string, init: { method?: string; body?: string } = {}): Promise<{ status: number; body: string }> {
  let res: Response;
  try {
    res = await fetch(e.base + path, { ...init, headers: { ...e.headers, ...(init.body ? { 'content-type': 'application/json' } : {}) } });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new Error(`cannot reach the admin listener at ${e.base} (${cause}); is the server running with --admin-listen?`);
  }
  return { status: res.status, body: await res.text() };
}

const num = (n: number): string => n.toLocaleString('en-US');
function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Two-column table; `rows` with an empty value are section headings. */
export function table(rows: readonly [string, string][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => (v === '' ? `\n${k}` : `  ${k.padEnd(w)}  ${v}`)).join('\n').replace(/^\n/, '') + '\n';
}

interface Status {
  pid: number; mode: string; startedAt: string; uptimeSeconds: number; draining: boolean;
  limits: Record<string, number>;
  connections: { live: number; total: number; refused: number };
  sessions: { total: number; updates: Record<string, number> };
  logins: { ok: number; failed: number };
  bytes: { in: number; out: number };
  commands: { retr: number; top: number; dele: number };
  online: { user: string; rip: string; tls: boolean; since: string }[];
}

export function formatStatus(s: Status): string {
  const rows: [string, string][] = [
    ['Server', ''],
    ['pid', String(s.pid)], ['mode', s.mode], ['started', `${s.startedAt} (up ${s.uptimeSeconds} s)`],
    ['state', s.draining ? 'draining' : 'serving'],
    ['Connections', ''],
    ['live now', num(s.connections.live)], ['total', num(s.connections.total)], ['refused', num(s.connections.refused)],
    ['Sessions', ''],
    ['ended', num(s.sessions.total)],
    ...Object.entries(s.sessions.updates).sort().map(([k, v]): [string, string] => [`update ${k}`, num(v)]),
    ['logins ok', num(s.logins.ok)], ['logins failed', num(s.logins.failed)],
    ['Traffic', ''],
    ['bytes in', bytes(s.bytes.in)], ['bytes out', bytes(s.bytes.out)],
    ['RETR / TOP / DELE', `${num(s.commands.retr)} / ${num(s.commands.top)} / ${num(s.commands.dele)}`],
    ['Limits', ''],
    ...Object.entries(s.limits).map(([k, v]): [string, string] => [k, String(v)]),
    [`Users online (${s.online.length})`, ''],
    ...s.online.map((o): [string, string] => [o.user, `${o.rip}${o.tls ? ' TLS' : ''} since ${o.since}`]),
  ];
  return table(rows);
}

export async function statsCommand(o: AdminClientOptions & { json?: boolean }): Promise<number> {
  const e = endpoint(o);
  const res = await call(e, '/status');
  if (res.status !== 200) {
    console.error(`popspool: admin listener answered ${res.status}: ${res.body.trim()}`);
    return 1;
  }
  process.stdout.write(o.json ? res.body : formatStatus(JSON.parse(res.body) as Status));
  return 0;
}

export async function adminSetCommand(o: AdminClientOptions, name: string, value: string): Promise<number> {
  if (!(RUNTIME_SETTINGS as readonly string[]).includes(name)) {
    console.error(`popspool: ${name} cannot be changed at run time; one of: ${RUNTIME_SETTINGS.join(', ')}`);
    return 2;
  }
  const res = await call(endpoint(o), '/limits', { method: 'POST', body: JSON.stringify({ [name]: value }) });
  const body = JSON.parse(res.body || '{}') as { error?: string; limits?: Record<string, number> };
  if (res.status !== 200) {
    console.error(`popspool: ${body.error ?? `admin listener answered ${res.status}`}`);
    return 1;
  }
  console.log(`${name} = ${body.limits?.[name]}`);
  return 0;
}

/**
 * Starts a real popspool server for integration tests: a temp spool directory, a users file
 * with {PLAIN} entries, the real SpoolStore and PasswdFile, listening on 127.0.0.1:0 — or, with
 * `child: true`, as a separate `bin/popspool serve` process (for tests that kill it or need
 * process-owned locks).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PasswdFile } from '../../src/auth/passwd-file.js';
import { buildConfig } from '../../src/config/load.js';
import { storeFor } from '../../src/cli/serve.js';
import { filterOpener } from '../../src/filter/filtered-drop.js';
import { Pop3Server, type ServerOptions } from '../../src/server/server.js';
import { backgroundSettled } from '../../src/spool/background.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const FIXTURES = path.join(ROOT, 'spool-fixtures');
export const BIN = path.join(ROOT, 'bin', 'popspool');

export interface TestServer {
  readonly port: number;
  /** The implicit-TLS port (when started with `tls: true`). */
  readonly tlsPort?: number;
  readonly dir: string;
  spoolPath(user: string): string;
  stop(): Promise<void>;
}

export interface TestServerOptions {
  /** user → spool contents (Buffer) or a fixture path under spool-fixtures/. */
  readonly spools: Record<string, Buffer | string>;
  /** user → password; defaults to "pw-USER". */
  readonly passwords?: Record<string, string>;
  /** Extra settings by name, e.g. { mode: 'copy', 'hold-lock': true }. */
  readonly settings?: Record<string, unknown>;
  /** Run as a child process. */
  readonly child?: boolean;
  readonly env?: Record<string, string>;
  /** Make a self-signed certificate with the openssl CLI: STLS on `port`, implicit TLS on `tlsPort`. */
  readonly tls?: boolean;
  /** In-process only: Pop3Server options that have no setting or must differ from the defaults. */
  readonly serverOptions?: Partial<ServerOptions>;
}

/** A self-signed localhost certificate made by the openssl CLI into `dir`. */
export function makeCertificate(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  return { cert, key };
}

export const passwordOf = (opts: TestServerOptions, user: string): string => opts.passwords?.[user] ?? `pw-${user}`;

export async function startServer(opts: TestServerOptions): Promise<TestServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-it-'));
  fs.mkdirSync(path.join(dir, 'mail'));
  const users: string[] = [];
  for (const [user, content] of Object.entries(opts.spools)) {
    const bytes = typeof content === 'string' ? fs.readFileSync(path.join(FIXTURES, content)) : content;
    fs.writeFileSync(path.join(dir, 'mail', user), bytes, { mode: 0o600 });
    users.push(`${user}:{PLAIN}${passwordOf(opts, user)}`);
  }
  fs.writeFileSync(path.join(dir, 'users'), users.join('\n') + '\n', { mode: 0o600 });
  const settings: Record<string, unknown> = {
    listen: ['127.0.0.1:0'], spool: path.join(dir, 'mail', '%u'), users: path.join(dir, 'users'),
    'state-dir': path.join(dir, 'state'), 'lock-timeout': '2', 'log-level': 'warn', ...opts.settings,
  };
  if (opts.tls) {
    const { cert, key } = makeCertificate(dir);
    Object.assign(settings, { 'tls-cert': cert, 'tls-key': key, 'listen-tls': ['127.0.0.1:0'] });
  }
  const spoolPath = (user: string) => path.join(dir, 'mail', user);
  if (opts.child) return startChild(dir, settings, spoolPath, opts.env ?? {});
  const config = buildConfig(undefined, settings);
  const auth = new PasswdFile(config.users);
  await auth.load();
  const server = new Pop3Server({
    listen: config.listen, listenTls: config.listenTls, dropOpener: filterOpener(storeFor(config), config), authenticator: auth,
    ...(config.tlsCert ? { tls: { cert: fs.readFileSync(config.tlsCert), key: fs.readFileSync(config.tlsKey) } } : {}),
    authFailureDelayMs: 0, idleTimeoutMs: config.idleTimeout * 1000, ...opts.serverOptions,
  });
  const [bound, tlsBound] = await server.listen();
  return {
    port: bound!.port, dir, spoolPath, ...(tlsBound ? { tlsPort: tlsBound.port } : {}),
    stop: async () => {
      await server.close();
      await backgroundSettled(); // cache files written after a login's +OK, as serve's shutdown waits for them
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function toArgs(settings: Record<string, unknown>): string[] {
  const args: string[] = [];
  for (const [k, v] of Object.entries(settings)) {
    if (typeof v === 'boolean') { if (v) args.push(`--${k}`); continue; }
    for (const item of Array.isArray(v) ? v : [v]) args.push(`--${k}`, String(item));
  }
  return args;
}

async function startChild(dir: string, settings: Record<string, unknown>, spoolPath: (u: string) => string, env: Record<string, string>): Promise<TestServer> {
  const child: ChildProcess = spawn(process.execPath, [BIN, 'serve', ...toArgs({ ...settings, 'log-level': 'info' })], {
    env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const wanted = (settings.listen as unknown[]).length + ((settings['listen-tls'] as unknown[] | undefined)?.length ?? 0);
  const [port, tlsPort] = await new Promise<number[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${log}`)), 15000);
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      const ports = [...log.matchAll(/listening address=\S+ port=(\d+)/g)].map((m) => Number(m[1]));
      if (ports.length >= wanted) { clearTimeout(timer); resolve(ports); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}: ${log}`)); });
  });
  return {
    port: port!, dir, spoolPath, ...(tlsPort ? { tlsPort } : {}),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * An independent oracle for the messages of a simple spool: split at From_ lines that follow an
 * empty line (loose rule), drop the From_ line and the one separator line; return each message's
 * content as POP3 sends it (CRLF endings, final CRLF), before dot-stuffing.
 */
export function expectedMessages(spool: Buffer): Buffer[] {
  const text = spool.toString('latin1');
  if (text === '') return [];
  const lines = text.split('\n');
  const hasFinalNewline = text.endsWith('\n');
  if (hasFinalNewline) lines.pop();
  const messages: string[][] = [];
  let prevEmpty = true;
  for (const line of lines) {
    if (line.startsWith('From ') && prevEmpty) messages.push([]);
    else messages[messages.length - 1]!.push(line);
    prevEmpty = line === '' || line === '\r';
  }
  return messages.map((m, i) => {
    const last = i === messages.length - 1;
    const body = [...m];
    if (body.length && (body[body.length - 1] === '' || body[body.length - 1] === '\r') && (!last || hasFinalNewline)) body.pop();
    return Buffer.from(body.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l) + '\r\n').join(''), 'latin1');
  });
}

/** `popspool ARGS…` as a child process → exit code and output (never throws on a non-zero exit). */
export async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [BIN, ...args], { encoding: 'utf8' });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/**
 * A `bin/popspool serve` child process for the operations tests: a temp spool directory with
 * {PLAIN} users, every stderr line captured (so tests can read real log output), helpers to
 * wait for a log line, send signals, and call the admin listener.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, FIXTURES } from './popspool-server.js';

export interface OpsChild {
  readonly dir: string;
  readonly port: number;
  readonly adminPort: number | undefined;
  readonly proc: ChildProcess;
  /** Everything the server wrote to stderr so far. */
  stderr(): string;
  /** Resolves with the match once stderr (from `from` on) matches `re`. */
  waitFor(re: RegExp, from?: number, timeoutMs?: number): Promise<RegExpExecArray>;
  admin(pathname: string, init?: { method?: string; body?: string; token?: string }): Promise<{ status: number; body: string }>;
  exited(): Promise<number | null>;
  stop(): Promise<void>;
}

export interface OpsChildOptions {
  /** user → fixture path under spool-fixtures/ or contents. */
  readonly spools: Record<string, string | Buffer>;
  /** Extra command-line arguments (after the defaults, so they win). */
  readonly args?: readonly string[];
  /** Written to DIR/popspool.toml and passed as --config. */
  readonly configToml?: string;
  readonly admin?: boolean;
  /** Where the server's log goes when not stderr (syslog tests): waitFor() searches it instead. */
  readonly logSource?: () => string;
}

export async function startOpsChild(o: OpsChildOptions): Promise<OpsChild> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-ops-'));
  fs.mkdirSync(path.join(dir, 'mail'));
  const users: string[] = [];
  for (const [user, content] of Object.entries(o.spools)) {
    fs.writeFileSync(path.join(dir, 'mail', user), typeof content === 'string' ? fs.readFileSync(path.join(FIXTURES, content)) : content, { mode: 0o600 });
    users.push(`${user}:{PLAIN}pw-${user}`);
  }
  fs.writeFileSync(path.join(dir, 'users'), users.join('\n') + '\n', { mode: 0o600 });
  const args = [
    BIN, 'serve', '--listen', '127.0.0.1:0', '--spool', path.join(dir, 'mail', '%u'), '--users', path.join(dir, 'users'),
    '--state-dir', path.join(dir, 'state'), '--lock-timeout', '2', '--log-level', 'info',
    ...(o.args?.includes('--log-format') ? [] : ['--log-format', 'text']),
    ...(o.admin ? ['--admin-listen', '127.0.0.1:0'] : []),
  ];
  if (o.configToml !== undefined) {
    fs.writeFileSync(path.join(dir, 'popspool.toml'), o.configToml);
    args.push('--config', path.join(dir, 'popspool.toml'));
  }
  args.push(...(o.args ?? []));
  const env = { ...process.env };
  delete env.JOURNAL_STREAM;
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const waiters = new Set<() => void>();
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of [...waiters]) w();
  });
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => { for (const w of [...waiters]) w(); r(code); }));
  const waitFor = (re: RegExp, from = 0, timeoutMs = 15000): Promise<RegExpExecArray> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec((o.logSource?.() ?? err).slice(from));
        if (m) { waiters.delete(check); clearTimeout(timer); clearInterval(poll); resolve(m); }
        else if (proc.exitCode !== null) { waiters.delete(check); clearTimeout(timer); clearInterval(poll); reject(new Error(`server exited before ${re}: ${err}`)); }
      };
      const poll = setInterval(check, o.logSource ? 50 : 1000);
      const timer = setTimeout(() => { waiters.delete(check); clearInterval(poll); reject(new Error(`timed out waiting for ${re}; stderr:\n${err}`)); }, timeoutMs);
      waiters.add(check);
      check();
    });
  const portOf = (m: RegExpExecArray) => Number(m[1] ?? m[2]);
  const port = portOf(await waitFor(/[ \]:] listening address=\S+ port=(\d+)|"message":"listening","port":(\d+)/));
  const adminPort = o.admin ? portOf(await waitFor(/admin listening address=\S+ port=(\d+)|"message":"admin listening","port":(\d+)/)) : undefined;
  return {
    dir, port, adminPort, proc,
    stderr: () => o.logSource?.() ?? err,
    waitFor,
    admin: async (pathname, init = {}) => {
      const res = await fetch(`http://127.0.0.1:${adminPort}${pathname}`, {
        method: init.method ?? 'GET', ...(init.body === undefined ? {} : { body: init.body }),
        headers: { ...(init.token ? { authorization: `Bearer ${init.token}` } : {}), ...(init.body ? { 'content-type': 'application/json' } : {}) },
      });
      return { status: res.status, body: await res.text() };
    },
    exited: () => exit,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exit;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

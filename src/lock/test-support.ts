/**
 * Test-only helpers for the lock tests: lock holders as bounded child processes (locks belong
 * to processes), temp spools, and polling. Not imported by production code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Absolute path of fs-native-extensions, for `node -e` children that take OFD locks. */
export const NATIVE_EXT_PATH = createRequire(import.meta.url).resolve('fs-native-extensions');

/** A child is killed after this long whatever happens: no test may leave a lock holder behind. */
const CHILD_HARD_LIMIT_MS = 20_000;

export interface Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Everything written to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

const live = new Set<Child>();

/** Start `cmd args` with a hard time limit; `input` is written to stdin, which is then closed. */
export function startChild(cmd: string, args: readonly string[], opts: { input?: string | Buffer; cwd?: string } = {}): Child {
  // Own process group, so a kill reaches grandchildren too (flock(1) forks its command, which
  // inherits the locked descriptor and would otherwise outlive it).
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: opts.cwd, detached: true });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  proc.stdin!.on('error', () => undefined);
  proc.stdin!.end(opts.input ?? '');
  const limit = setTimeout(() => killGroup(proc), CHILD_HARD_LIMIT_MS);
  limit.unref();
  const exited = new Promise<number | null>((res) => {
    proc.on('error', (e) => {
      err += String(e);
      res(-1);
    });
    proc.on('exit', (code) => res(code));
  }).finally(() => {
    clearTimeout(limit);
    live.delete(child);
  });
  const child: Child = { proc, pid: proc.pid ?? -1, stdout: () => out, stderr: () => err, exited };
  live.add(child);
  return child;
}

/** SIGKILL the child's whole process group. */
export function killGroup(proc: ChildProcess): void {
  if (proc.pid === undefined) return;
  try {
    process.kill(-proc.pid, 'SIGKILL');
  } catch {
    proc.kill('SIGKILL');
  }
}

/** Run to completion (bounded) and return the exit code and output. */
export async function runChild(
  cmd: string,
  args: readonly string[],
  opts: { input?: string | Buffer; cwd?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const c = startChild(cmd, args, opts);
  const code = await c.exited;
  return { code, stdout: c.stdout(), stderr: c.stderr() };
}

/** SIGKILL every child still running and wait for them (use in afterEach). */
export async function killAllChildren(): Promise<void> {
  const all = [...live];
  for (const c of all) killGroup(c.proc);
  await Promise.all(all.map((c) => c.exited));
}

/** Poll `check` every 20 ms until true; throw `what` after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Wait until the child prints `text` on stdout; fail early if it exits first. */
export async function waitForOutput(c: Child, text: string, timeoutMs = 5_000): Promise<void> {
  let exited = false;
  void c.exited.then(() => (exited = true));
  await waitFor(
    () => {
      if (c.stdout().includes(text)) return true;
      if (exited) throw new Error(`child exited before printing ${JSON.stringify(text)}: ${c.stderr()}`);
      return false;
    },
    `child output ${JSON.stringify(text)} (stderr: ${c.stderr()})`,
    timeoutMs,
  );
}

/** A node child that takes an OFD lock (write, or read when `shared`) on `path`, prints
 *  "locked" or "busy", and holds it until killed. */
export function startOfdHolder(path: string, shared = false): Child {
  const script = `
    const fs = require('fs'); const x = require(${JSON.stringify(NATIVE_EXT_PATH)});
    const fd = fs.openSync(${JSON.stringify(path)}, ${JSON.stringify(shared ? 'r' : 'r+')});
    const ok = x.tryLock(fd, 0, 0, { shared: ${shared} });
    process.stdout.write(ok ? 'locked\\n' : 'busy\\n');
    setTimeout(() => {}, 60000);`;
  return startChild(process.execPath, ['-e', script]);
}

export interface TempSpool {
  readonly dir: string;
  readonly spool: string;
  cleanup(): void;
}

/** A fresh directory holding a one-message spool named `user`. */
export function tempSpool(content = 'From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n'): TempSpool {
  const dir = mkdtempSync(join(tmpdir(), 'popspool-lock-'));
  const spool = join(dir, 'user');
  writeFileSync(spool, content);
  return { dir, spool, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A pid that certainly belongs to no running process: a child that has already exited. */
export async function deadPid(): Promise<number> {
  const c = startChild(process.execPath, ['-e', '0']);
  await c.exited;
  return c.pid;
}

/**
 * Real external tools (procmail, dotlockfile, flock, curl, python3, fetchmail, ...).
 * A test that needs one calls requireTool() in its before/it hook: when the tool is missing it
 * skips with a loud reason, unless CI is set, where a missing tool is a failure
 * (.ci/run installs them).
 */
import { execFileSync } from 'node:child_process';

export function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Skip the calling test/suite (`ctx` is mocha's `this`) when `name` is absent; fail under CI. */
export function requireTool(ctx: Mocha.Context, name: string, debianPackage: string): void {
  if (hasTool(name)) return;
  const reason = `${name} is not installed (Debian package ${debianPackage}); run: apt-get install -y ${debianPackage}`;
  if (process.env.CI) throw new Error(`CI requires ${reason}`);
  console.warn(`\n    SKIPPED: ${reason}\n`);
  ctx.skip();
}

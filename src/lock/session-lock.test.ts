/**
 * Unit tests for the one-session-per-maildrop lock: in this process, and across processes with
 * a second node process running the same module.
 */
import { expect } from 'chai';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { LockBusyError } from '../errors.js';
import { acquireSessionLock, sessionLockPath } from './session-lock.js';
import { killAllChildren, startChild, waitForOutput, type Child } from './test-support.js';

const MODULE_URL = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), 'session-lock.js')).href;

/** A second process that takes the session lock through this module and reports the outcome. */
function otherProcess(dir: string, user: string): Child {
  const script = `
    import { acquireSessionLock } from ${JSON.stringify(MODULE_URL)};
    try { await acquireSessionLock(${JSON.stringify(dir)}, ${JSON.stringify(user)}); console.log('held'); }
    catch (e) { console.log(e.name === 'LockBusyError' ? 'busy' : 'error ' + e.message); process.exit(0); }
    setTimeout(() => {}, 60000);`;
  return startChild(process.execPath, ['--input-type=module', '-e', script]);
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: Error) => e,
  );
}

describe('lock/session-lock', () => {
  let base: string;
  let dir: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'popspool-session-'));
    dir = join(base, 'sessions');
  });
  afterEach(async () => {
    await killAllChildren();
    rmSync(base, { recursive: true, force: true });
  });

  it('creates the directory 0700 and a session file naming the holder', async () => {
    const s = await acquireSessionLock(dir, 'alice');
    expect(statSync(dir).mode & 0o777).to.equal(0o700);
    expect(readFileSync(join(dir, 'alice.session'), 'utf8')).to.match(new RegExp(`^${process.pid}:`));
    await s.release();
  });

  it('a second session of the same user in this process fails at once; after release it works', async () => {
    const a = await acquireSessionLock(dir, 'alice');
    const err = await rejection(acquireSessionLock(dir, 'alice'));
    expect(err).to.be.instanceOf(LockBusyError);
    expect(err.message).to.match(/already in use by another session/);
    const bob = await acquireSessionLock(dir, 'bob'); // other users are independent
    await a.release();
    await a.release(); // idempotent
    const again = await acquireSessionLock(dir, 'alice');
    await again.release();
    await bob.release();
  });

  it('two concurrent attempts in this process: exactly one wins', async () => {
    const results = await Promise.allSettled([acquireSessionLock(dir, 'carol'), acquireSessionLock(dir, 'carol')]);
    expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1);
    for (const r of results) if (r.status === 'fulfilled') await r.value.release();
  });

  it('keeps user names inside the directory', () => {
    for (const user of ['../evil', 'a/b', '..', 'x\0y']) {
      const p = sessionLockPath(dir, user);
      expect(dirname(p)).to.equal(dir);
    }
    expect(() => sessionLockPath(dir, '')).to.throw(/empty user/);
  });

  it('excludes a session in another process, and is free once that process dies', async () => {
    const other = otherProcess(dir, 'dave');
    await waitForOutput(other, 'held');
    const err = await rejection(acquireSessionLock(dir, 'dave'));
    expect(err).to.be.instanceOf(LockBusyError);
    other.proc.kill('SIGKILL');
    await other.exited;
    const s = await acquireSessionLock(dir, 'dave'); // the kernel dropped the dead holder's lock
    await s.release();
  });

  it('another process is refused while this process holds it', async () => {
    const s = await acquireSessionLock(dir, 'erin');
    const other = otherProcess(dir, 'erin');
    await waitForOutput(other, 'busy');
    await s.release();
    const third = otherProcess(dir, 'erin');
    await waitForOutput(third, 'held');
  });
});

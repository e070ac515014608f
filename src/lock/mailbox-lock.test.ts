/**
 * Unit tests for the composite mailbox lock: every configured lock really taken and released,
 * all-or-nothing rounds, retry until the holder lets go, timeout, the in-process table, and
 * lock-method validation.
 */
import { expect } from 'chai';
import { closeSync, existsSync, openSync, writeFileSync } from 'node:fs';
import { ConfigError, LockBusyError, PopspoolError } from '../errors.js';
import { dotlockPath } from './dotlock.js';
import { fcntlUnlock, tryFcntlLock } from './fcntl.js';
import { flockUnlock, tryFlock } from './flock.js';
import { acquireMailboxLock, DEFAULT_LOCK_OPTIONS, validateLockMethods } from './mailbox-lock.js';
import { killAllChildren, startChild, startOfdHolder, tempSpool, waitForOutput, type TempSpool } from './test-support.js';
import type { MailboxLockOptions } from './types.js';

const FAST: MailboxLockOptions = { ...DEFAULT_LOCK_OPTIONS, timeoutMs: 400 };

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: Error) => e,
  );
}

describe('lock/mailbox-lock', () => {
  let t: TempSpool;
  const fds: number[] = [];
  /** Open a descriptor of the spool, closed after the test. */
  const openFd = (flags = 'r+'): number => {
    const fd = openSync(t.spool, flags);
    fds.push(fd);
    return fd;
  };
  beforeEach(() => {
    t = tempSpool();
  });
  afterEach(async () => {
    await killAllChildren();
    for (const fd of fds.splice(0)) closeSync(fd);
    t.cleanup();
  });

  it('takes fcntl, dotlock and flock, and releases all of them', async () => {
    const fd = openFd();
    const probe = openFd(); // another open file description, as a foreign holder would have
    const held = await acquireMailboxLock(t.spool, fd, FAST);
    expect(held.waitedMs).to.be.a('number');
    expect(tryFcntlLock(probe), 'fcntl').to.equal(false);
    expect(await tryFlock(probe), 'flock').to.equal(false);
    expect(existsSync(dotlockPath(t.spool)), 'dotlock').to.equal(true);
    await held.release();
    await held.release(); // idempotent
    expect(tryFcntlLock(probe), 'fcntl after release').to.equal(true);
    fcntlUnlock(probe);
    expect(await tryFlock(probe), 'flock after release').to.equal(true);
    await flockUnlock(probe);
    expect(existsSync(dotlockPath(t.spool))).to.equal(false);
  });

  it('excludes a process holding a classic/OFD fcntl lock (another process)', async () => {
    const holder = startOfdHolder(t.spool);
    await waitForOutput(holder, 'locked');
    const err = await rejection(acquireMailboxLock(t.spool, openFd(), FAST));
    expect(err).to.be.instanceOf(LockBusyError);
    expect((err as LockBusyError).code).to.equal('IN_USE');
    expect(err.message).to.match(/fcntl lock/);
  });

  it('is all-or-nothing: when flock is busy, the fcntl lock and the dotlock are given back', async () => {
    const other = openFd();
    expect(await tryFlock(other)).to.equal(true);
    const err = await rejection(acquireMailboxLock(t.spool, openFd(), FAST));
    expect(err.message).to.match(/flock lock/);
    expect(existsSync(dotlockPath(t.spool)), 'dotlock left behind').to.equal(false);
    const probe = openFd();
    expect(tryFcntlLock(probe), 'fcntl left behind').to.equal(true);
    fcntlUnlock(probe);
  });

  it('names a busy dotlock held by another live process, and gives the fcntl lock back', async () => {
    const holder = startChild('sleep', ['30']);
    writeFileSync(dotlockPath(t.spool), `${holder.pid}\n`);
    const err = await rejection(acquireMailboxLock(t.spool, openFd(), FAST));
    expect(err).to.be.instanceOf(LockBusyError);
    expect(err.message).to.include(`dotlock ${dotlockPath(t.spool)} is held by pid ${holder.pid}`);
    const probe = openFd();
    expect(tryFcntlLock(probe), 'fcntl left behind').to.equal(true);
    fcntlUnlock(probe);
  });

  it('a second session in this process waits, then gets the lock once the first releases', async () => {
    const a = await acquireMailboxLock(t.spool, openFd(), FAST);
    const err = await rejection(acquireMailboxLock(t.spool, openFd(), { ...FAST, timeoutMs: 300 }));
    expect(err).to.be.instanceOf(LockBusyError);
    expect(err.message).to.match(/another session of this process/);

    let bHeld = false;
    const b = acquireMailboxLock(t.spool, openFd(), { ...FAST, timeoutMs: 8_000 }).then((h) => {
      bHeld = true;
      return h;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(bHeld, 'acquired while the first session held the lock').to.equal(false);
    await a.release();
    const hb = await b;
    expect(hb.waitedMs).to.be.greaterThan(0);
    await hb.release();
  });

  it('with a missing spool (fd null) takes only the dotlock', async () => {
    const missing = t.spool + '-new';
    const held = await acquireMailboxLock(missing, null, FAST);
    expect(existsSync(dotlockPath(missing))).to.equal(true);
    const err = await rejection(acquireMailboxLock(missing, null, { ...FAST, timeoutMs: 0 }));
    expect(err).to.be.instanceOf(LockBusyError);
    await held.release();
    expect(existsSync(dotlockPath(missing))).to.equal(false);
  });

  it('honours the configured subset and order', async () => {
    const held = await acquireMailboxLock(t.spool, openFd(), { ...FAST, methods: ['flock'] });
    expect(existsSync(dotlockPath(t.spool))).to.equal(false);
    const probe = openFd();
    expect(tryFcntlLock(probe)).to.equal(true);
    fcntlUnlock(probe);
    expect(await tryFlock(probe)).to.equal(false);
    await held.release();
  });

  it('fails at once with SYS_TEMP (not busy) on a read-only descriptor, holding nothing', async () => {
    const err = await rejection(acquireMailboxLock(t.spool, openFd('r'), { ...FAST, methods: ['dotlock', 'fcntl'] }));
    expect(err).to.be.instanceOf(PopspoolError);
    expect(err).to.not.be.instanceOf(LockBusyError);
    expect((err as PopspoolError).code).to.equal('SYS_TEMP');
    expect(err.message).to.match(/fcntl.*EBADF/);
    expect(existsSync(dotlockPath(t.spool))).to.equal(false);
    const again = await acquireMailboxLock(t.spool, openFd(), FAST); // table entry was removed
    await again.release();
  });

  describe('validateLockMethods', () => {
    it('accepts known methods in the given order', () => {
      expect(validateLockMethods(['dotlock', 'fcntl'])).to.deep.equal(['dotlock', 'fcntl']);
      expect(validateLockMethods('fcntl, flock')).to.deep.equal(['fcntl', 'flock']);
      expect(validateLockMethods(DEFAULT_LOCK_OPTIONS.methods)).to.deep.equal(['fcntl', 'dotlock', 'flock']);
    });
    const bad: Array<[unknown, RegExp]> = [
      [[], /empty/],
      ['', /empty/],
      [['fcntl', 'lockf'], /unknown lock method "lockf"/],
      [['fcntl', 'fcntl'], /listed twice/],
      [42, /expected a list/],
      [[7], /unknown lock method 7/],
    ];
    for (const [input, re] of bad) {
      it(`rejects ${JSON.stringify(input)}`, () => {
        expect(() => validateLockMethods(input)).to.throw(ConfigError, re);
      });
    }
  });
});

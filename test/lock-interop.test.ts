/**
 * Interop of the mailbox lock with the real programs that share /var/mail: liblockfile's
 * dotlockfile, flock(1), a classic fcntl holder (python3 lockf) and procmail delivering. Every
 * foreign holder is a separate process with a hard time limit, killed after each test.
 */
import { expect } from 'chai';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { LockBusyError } from '../src/errors.js';
import { acquireMailboxLock, DEFAULT_LOCK_OPTIONS, dotlockPath, type MailboxLockOptions } from '../src/lock/index.js';
import { killAllChildren, runChild, startChild, tempSpool, waitFor, waitForOutput, type TempSpool } from '../src/lock/test-support.js';
import { requireTool } from './helpers/tools.js';

/** Short enough to keep the suite fast, long enough for several retry rounds. */
const BUSY_TIMEOUT_MS = 1_500;
const FAST: MailboxLockOptions = { ...DEFAULT_LOCK_OPTIONS, timeoutMs: BUSY_TIMEOUT_MS };
/** How long a waiting MDA gets to (wrongly) deliver while we hold the lock. procmail retries
 *  every LOCKSLEEP=1 s, so this spans at least one retry. */
const MDA_GRACE_MS = 1_500;

const DOTLOCK_MODULE = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'lock', 'dotlock.js')).href;
const MESSAGE = 'From mda@example.org Mon Jan  1 00:00:00 2024\nSubject: delivered by procmail\n\nhello from procmail\n';

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: Error) => e,
  );
}

describe('lock interop with real tools (dotlockfile, flock, fcntl, procmail)', function () {
  this.timeout(20_000);
  let t: TempSpool;
  let fd: number;
  beforeEach(() => {
    t = tempSpool();
    fd = openSync(t.spool, 'r+');
  });
  afterEach(async () => {
    await killAllChildren();
    closeSync(fd);
    t.cleanup();
  });

  describe('a foreign holder makes our acquire fail with LockBusyError', () => {
    it('dotlockfile -l -p holds SPOOL.lock', async function () {
      requireTool(this, 'dotlockfile', 'liblockfile-bin');
      // -p writes the *parent's* pid: run it under a shell that then becomes the holder (exec).
      const holder = startChild('sh', ['-c', `dotlockfile -l -r 0 -p "$1" && echo locked && exec sleep 15`, 'sh', dotlockPath(t.spool)]);
      await waitForOutput(holder, 'locked');
      expect(readFileSync(dotlockPath(t.spool), 'utf8').trim()).to.equal(String(holder.pid));
      const err = await rejection(acquireMailboxLock(t.spool, fd, FAST));
      expect(err).to.be.instanceOf(LockBusyError);
      expect(err.message).to.include(`dotlock ${dotlockPath(t.spool)} is held by pid ${holder.pid}`);
      expect(existsSync(dotlockPath(t.spool)), 'their dotlock must survive').to.equal(true);
    });

    it('flock(1) holds a BSD lock', async function () {
      requireTool(this, 'flock', 'util-linux');
      const holder = startChild('flock', [t.spool, 'sh', '-c', 'echo locked; exec sleep 15']);
      await waitForOutput(holder, 'locked');
      const err = await rejection(acquireMailboxLock(t.spool, fd, FAST));
      expect(err).to.be.instanceOf(LockBusyError);
      expect(err.message).to.match(/flock lock/);
      expect(existsSync(dotlockPath(t.spool)), 'our dotlock was given back').to.equal(false);
    });

    it('python3 fcntl.lockf holds a classic (per-process) fcntl lock', async function () {
      requireTool(this, 'python3', 'python3');
      const script =
        'import fcntl,sys,time\nf=open(sys.argv[1],"a")\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint("locked", flush=True)\ntime.sleep(15)\n';
      const holder = startChild('python3', ['-c', script, t.spool]);
      await waitForOutput(holder, 'locked');
      const err = await rejection(acquireMailboxLock(t.spool, fd, FAST));
      expect(err).to.be.instanceOf(LockBusyError);
      expect(err.message).to.match(/fcntl lock/);
      holder.proc.kill('SIGKILL');
      await holder.exited;
      const held = await acquireMailboxLock(t.spool, fd, FAST); // free once the holder is gone
      await held.release();
    });
  });

  describe('while we hold the lock, real tools are kept out', () => {
    it('flock -n fails, and succeeds after release', async function () {
      requireTool(this, 'flock', 'util-linux');
      const held = await acquireMailboxLock(t.spool, fd, FAST);
      expect((await runChild('flock', ['-n', t.spool, 'true'])).code).to.equal(1);
      await held.release();
      expect((await runChild('flock', ['-n', t.spool, 'true'])).code).to.equal(0);
    });

    it('python3 lockf(LOCK_NB) fails against our OFD lock, and succeeds after release', async function () {
      requireTool(this, 'python3', 'python3');
      const script =
        'import fcntl,sys\nf=open(sys.argv[1],"a")\ntry:\n  fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB)\nexcept OSError:\n  sys.exit(3)\n';
      const held = await acquireMailboxLock(t.spool, fd, FAST);
      expect((await runChild('python3', ['-c', script, t.spool])).code).to.equal(3);
      await held.release();
      expect((await runChild('python3', ['-c', script, t.spool])).code).to.equal(0);
    });

    it('dotlockfile -l -r 0 fails (with and without -p: it reads our pid:host), succeeds after release', async function () {
      requireTool(this, 'dotlockfile', 'liblockfile-bin');
      const lock = dotlockPath(t.spool);
      const held = await acquireMailboxLock(t.spool, fd, FAST);
      expect((await runChild('dotlockfile', ['-l', '-r', '0', lock])).code, 'age-only check').to.not.equal(0);
      // With -p liblockfile atoi()s the content and kill(pid, 0)s it: our live pid must count.
      expect((await runChild('dotlockfile', ['-l', '-r', '0', '-p', lock])).code, 'pid check').to.not.equal(0);
      expect(readFileSync(lock, 'utf8')).to.match(new RegExp(`^${process.pid}:`));
      await held.release();
      expect((await runChild('dotlockfile', ['-l', '-r', '0', lock])).code).to.equal(0);
      expect((await runChild('dotlockfile', ['-u', lock])).code).to.equal(0);
    });

    // procmail (Debian) waits for the dotlock and for an fcntl lock, and ignores flock.
    for (const methods of [DEFAULT_LOCK_OPTIONS.methods, ['fcntl'], ['dotlock']] as const) {
      it(`procmail waits for us (locks: ${methods.join(',')}) and delivers after release`, async function () {
        requireTool(this, 'procmail', 'procmail');
        const rc = join(t.dir, 'procmailrc');
        writeFileSync(rc, `DEFAULT=${t.spool}\nLOCKSLEEP=1\nLOGFILE=${join(t.dir, 'procmail.log')}\n`);
        const before = readFileSync(t.spool, 'utf8');
        const held = await acquireMailboxLock(t.spool, fd, { ...FAST, methods });
        const mda = startChild('procmail', ['-m', rc], { input: MESSAGE });
        let mdaDone = false;
        void mda.exited.then(() => (mdaDone = true));
        await new Promise((r) => setTimeout(r, MDA_GRACE_MS));
        expect(mdaDone, `procmail finished while we held the lock: ${mda.stderr()}`).to.equal(false);
        expect(readFileSync(t.spool, 'utf8'), 'delivered while we held the lock').to.equal(before);
        await held.release();
        expect(await mda.exited, mda.stderr()).to.equal(0);
        const after = readFileSync(t.spool, 'utf8');
        expect(after.startsWith(before)).to.equal(true);
        expect(after).to.include(MESSAGE);
        expect(existsSync(dotlockPath(t.spool)), 'procmail removed its dotlock').to.equal(false);
      });
    }
  });

  it('liblockfile breaks our dotlock at once when the holding process is dead (crash recovery window)', async function () {
    requireTool(this, 'dotlockfile', 'liblockfile-bin');
    // A second process of ours takes the dotlock, then dies without releasing it.
    const script = `
      import { tryDotlock } from ${JSON.stringify(DOTLOCK_MODULE)};
      const r = await tryDotlock(${JSON.stringify(t.spool)}, { staleMs: 300000, touchMs: 60000 });
      console.log(r.held ? 'locked' : 'busy');
      setTimeout(() => {}, 60000);`;
    const crashed = startChild(process.execPath, ['--input-type=module', '-e', script]);
    await waitForOutput(crashed, 'locked');
    const lock = dotlockPath(t.spool);
    expect((await runChild('dotlockfile', ['-l', '-r', '0', '-p', lock])).code, 'alive: respected').to.not.equal(0);
    crashed.proc.kill('SIGKILL');
    await crashed.exited;
    await waitFor(() => {
      try {
        process.kill(crashed.pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 'the crashed holder to be gone');
    // Documented behaviour (REAL-TOOLS.md): with -p, liblockfile removes a lock whose pid is dead,
    // at once. Without -p it would wait for the 5-minute age rule.
    expect((await runChild('dotlockfile', ['-l', '-r', '0', '-p', lock])).code, 'dead: broken').to.equal(0);
    expect(readFileSync(lock, 'utf8')).to.not.match(new RegExp(`^${crashed.pid}:`));
    await runChild('dotlockfile', ['-u', lock]);
  });
});

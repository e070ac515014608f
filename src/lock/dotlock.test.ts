/**
 * Unit tests for the dotlock: NFS-safe creation, contention, the two staleness rules, touching,
 * and releasing only our own file. Foreign holders are real processes (their pids) and real
 * OFD locks on separate descriptors.
 */
import { expect } from 'chai';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { PopspoolError } from '../errors.js';
import { dotlockPath, parseDotlockContent, tryDotlock, type DotlockOptions } from './dotlock.js';
import { fcntlUnlock, tryFcntlLock } from './fcntl.js';
import { deadPid, killAllChildren, startChild, tempSpool, waitFor, type TempSpool } from './test-support.js';

const OPTS: DotlockOptions = { staleMs: 300_000, touchMs: 60_000 };
const TEN_MIN_AGO = new Date(Date.now() - 600_000);

describe('lock/dotlock', () => {
  let t: TempSpool;
  let lockPath: string;
  beforeEach(() => {
    t = tempSpool();
    lockPath = dotlockPath(t.spool);
  });
  afterEach(async () => {
    await killAllChildren();
    t.cleanup();
  });

  /** A live process that is not us, to own "foreign" locks. */
  function livePid(): number {
    return startChild('sleep', ['30']).pid;
  }

  describe('parseDotlockContent', () => {
    const cases: Array<[string, number | null, string | null]> = [
      ['1234\n', 1234, null], // dotlockfile -p
      ['1234:mailhost\n', 1234, 'mailhost'], // ours, Dovecot's
      ['  77:h.example.org', 77, 'h.example.org'],
      ['0', null, null], // dotlockfile without -p writes 0
      ['', null, null],
      ['garbage', null, null],
      ['99999999999', null, null], // not a pid
      ['-5', null, null],
    ];
    for (const [text, pid, host] of cases) {
      it(`parses ${JSON.stringify(text)}`, () => {
        expect(parseDotlockContent(text)).to.deep.equal({ pid, host });
      });
    }
  });

  it('creates SPOOL.lock holding pid:host, leaves no temp file, and release removes it', async () => {
    const r = await tryDotlock(t.spool, OPTS);
    expect(r.busy).to.equal(undefined);
    expect(readFileSync(lockPath, 'utf8')).to.equal(`${process.pid}:${hostname()}\n`);
    expect(statSync(lockPath).nlink).to.equal(1);
    expect(readdirSync(t.dir).sort()).to.deep.equal(['user', 'user.lock']);
    await r.held!.release();
    expect(existsSync(lockPath)).to.equal(false);
    await r.held!.release(); // idempotent
  });

  it('a second attempt in this process is busy until the first is released', async () => {
    const a = await tryDotlock(t.spool, OPTS);
    const b = await tryDotlock(t.spool, OPTS);
    expect(b.busy).to.match(/another session of this process/);
    await a.held!.release();
    const c = await tryDotlock(t.spool, OPTS);
    expect(c.held).to.not.equal(undefined);
    await c.held!.release();
  });

  it('a foreign lock with a live pid is busy and left alone', async () => {
    const pid = livePid();
    writeFileSync(lockPath, `${pid}:${hostname()}\n`);
    const r = await tryDotlock(t.spool, OPTS);
    expect(r.busy).to.include(`pid ${pid}`);
    expect(readFileSync(lockPath, 'utf8')).to.equal(`${pid}:${hostname()}\n`);
  });

  it('breaks a lock whose pid is dead on this host', async () => {
    const pid = await deadPid();
    writeFileSync(lockPath, `${pid}\n`);
    const r = await tryDotlock(t.spool, OPTS);
    expect(r.held, r.busy).to.not.equal(undefined);
    expect(readFileSync(lockPath, 'utf8')).to.equal(`${process.pid}:${hostname()}\n`);
    await r.held!.release();
  });

  it('does not judge a pid from another host: a fresh lock there is busy', async () => {
    const pid = await deadPid();
    writeFileSync(lockPath, `${pid}:some-other-host\n`);
    expect((await tryDotlock(t.spool, OPTS)).busy).to.include('some-other-host');
  });

  it('breaks an orphan carrying our own pid (an earlier process with the same pid)', async () => {
    writeFileSync(lockPath, `${process.pid}:${hostname()}\n`);
    const r = await tryDotlock(t.spool, OPTS);
    expect(r.held, r.busy).to.not.equal(undefined);
    await r.held!.release();
  });

  describe('stale by age', () => {
    it('breaks an old lock (live pid) when nobody holds the spool fcntl lock', async () => {
      writeFileSync(lockPath, `${livePid()}:${hostname()}\n`);
      utimesSync(lockPath, TEN_MIN_AGO, TEN_MIN_AGO);
      const r = await tryDotlock(t.spool, OPTS);
      expect(r.held, r.busy).to.not.equal(undefined);
      await r.held!.release();
    });

    it('keeps an old lock while someone holds the spool fcntl lock', async () => {
      const fd = openSync(t.spool, 'r+'); // another open file description: a real OFD holder
      try {
        expect(tryFcntlLock(fd)).to.equal(true);
        writeFileSync(lockPath, 'garbage\n');
        utimesSync(lockPath, TEN_MIN_AGO, TEN_MIN_AGO);
        expect((await tryDotlock(t.spool, OPTS)).busy).to.match(/is held/);
        expect(readFileSync(lockPath, 'utf8')).to.equal('garbage\n');
        fcntlUnlock(fd);
        const r = await tryDotlock(t.spool, OPTS);
        expect(r.held, r.busy).to.not.equal(undefined);
        await r.held!.release();
      } finally {
        closeSync(fd);
      }
    });

    it('with fcntlHeldByUs the fcntl half is known free', async () => {
      const fd = openSync(t.spool, 'r+');
      try {
        expect(tryFcntlLock(fd)).to.equal(true);
        writeFileSync(lockPath, '0\n');
        utimesSync(lockPath, TEN_MIN_AGO, TEN_MIN_AGO);
        const r = await tryDotlock(t.spool, { ...OPTS, fcntlHeldByUs: true });
        expect(r.held, r.busy).to.not.equal(undefined);
        await r.held!.release();
      } finally {
        closeSync(fd);
      }
    });

    it('keeps a lock younger than staleMs', async () => {
      writeFileSync(lockPath, '0\n');
      utimesSync(lockPath, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
      expect((await tryDotlock(t.spool, OPTS)).busy).to.match(/is held/);
    });

    it('an old lock on a missing spool is stale', async () => {
      unlinkSync(t.spool);
      writeFileSync(lockPath, '0\n');
      utimesSync(lockPath, TEN_MIN_AGO, TEN_MIN_AGO);
      const r = await tryDotlock(t.spool, OPTS);
      expect(r.held, r.busy).to.not.equal(undefined);
      await r.held!.release();
    });
  });

  it('never removes a directory or symlink in place of the lock (proper-lockfile style)', async () => {
    mkdirSync(lockPath);
    utimesSync(lockPath, TEN_MIN_AGO, TEN_MIN_AGO);
    expect((await tryDotlock(t.spool, OPTS)).busy).to.match(/is held/);
    expect(statSync(lockPath).isDirectory()).to.equal(true);
  });

  it('touches a held lock so it never looks stale, and stops after release', async () => {
    const r = await tryDotlock(t.spool, { ...OPTS, touchMs: 40 });
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(lockPath, old, old);
    await waitFor(() => statSync(lockPath).mtimeMs > Date.now() - 60_000, 'the dotlock to be touched', 3_000);
    await r.held!.release();
    // After release the timer is gone: a new foreign file at the path stays as written.
    writeFileSync(lockPath, '0\n');
    utimesSync(lockPath, old, old);
    await new Promise((res) => setTimeout(res, 150));
    expect(statSync(lockPath).mtimeMs, 'touched after release').to.be.below(Date.now() - 3_000_000);
  });

  it('release leaves a lock that is no longer ours', async () => {
    const r = await tryDotlock(t.spool, { ...OPTS, touchMs: 40 });
    unlinkSync(lockPath); // someone broke ours and took it
    writeFileSync(lockPath, '4242:elsewhere\n');
    await new Promise((res) => setTimeout(res, 120)); // a touch round sees it is not ours
    await r.held!.release();
    expect(readFileSync(lockPath, 'utf8')).to.equal('4242:elsewhere\n');
  });

  it('reports a directory it cannot write in as SYS_TEMP', async () => {
    const err = await tryDotlock(join(t.dir, 'missing-dir', 'user'), OPTS).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(PopspoolError);
    expect((err as PopspoolError).code).to.equal('SYS_TEMP');
    expect((err as Error).message).to.match(/cannot create a dotlock .*ENOENT/);
  });
});

/**
 * The spool store among the real programs that share /var/mail: foreign lock holders
 * (flock(1), liblockfile's dotlockfile, a classic fcntl holder) make a login fail with IN_USE
 * and leave the spool alone; procmail waits for a session that holds the lock, and delivers
 * into one that does not without its mail being lost by the session's QUIT.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import { PopspoolError } from '../src/errors.js';
import { requireTool } from './helpers/tools.js';
import {
  finish, killAll, mdaMessage, message, quietLogs, Sandbox, start, startProcmail, startWorker, waitFor, type Proc,
} from './helpers/spool-support.js';

const MSGS = ['p', 'q', 'r'].map((id) => message(id, { bodyLines: 4 }));
const SPOOL = MSGS.join('');
/** Short, so the suite stays fast; long enough for several of the lock's retry rounds. */
const LOCK_TIMEOUT_MS = 1_000;
/** How long a waiting procmail gets to (wrongly) deliver: it retries every LOCKSLEEP=1 s. */
const MDA_GRACE_MS = 2_500;

async function waitOutput(p: Proc, text: string): Promise<void> {
  await waitFor(() => {
    if (p.stdout().includes(text)) return true;
    if (p.proc.exitCode !== null) throw new Error(`holder exited early: ${p.stderr()}`);
    return false;
  }, `holder printing ${text}`);
}

describe('spool store: interop with real lock holders and procmail', function () {
  this.timeout(30_000);
  let sb: Sandbox;
  let restoreLogs: () => void;
  before(() => { restoreLogs = quietLogs(); });
  after(() => restoreLogs());
  beforeEach(() => { sb = new Sandbox(); sb.write(SPOOL); });
  afterEach(async () => {
    await killAll();
    await sb.cleanup();
  });

  const holders: { name: string; tool: [string, string]; start: (spool: string) => Proc }[] = [
    { name: 'flock(1)', tool: ['flock', 'util-linux'], // The holder is one process (the shell exec's sleep keeping fd 9): killing it frees the lock.
      start: (s) => start('sh', ['-c', 'exec 9>>"$1" && flock -n 9 && echo locked && exec sleep 10', 'sh', s]) },
    { name: 'dotlockfile -l -p', tool: ['dotlockfile', 'liblockfile-bin'],
      start: (s) => start('sh', ['-c', 'dotlockfile -l -r 0 -p "$1" && echo locked && exec sleep 10', 'sh', `${s}.lock`]) },
    { name: 'python3 fcntl.lockf', tool: ['python3', 'python3'],
      start: (s) => start('python3', ['-c', 'import fcntl,sys,time\nf=open(sys.argv[1],"a")\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint("locked", flush=True)\ntime.sleep(10)\n', s]) },
  ];
  for (const h of holders) {
    for (const mode of ['server', 'copy'] as const) {
      it(`${h.name} holds the spool: ${mode}-mode login rejects IN_USE, spool unmodified`, async function () {
        requireTool(this, h.tool[0], h.tool[1]);
        fs.utimesSync(sb.spool, new Date('2023-01-01Z'), new Date('2023-01-01Z'));
        const st0 = fs.statSync(sb.spool);
        const holder = h.start(sb.spool);
        await waitOutput(holder, 'locked');
        const store = sb.store({ mode, lock: { ...sb.settings().lock, timeoutMs: LOCK_TIMEOUT_MS } });
        const err = await store.open(sb.user).then(() => null, (e: PopspoolError) => e);
        expect(err).to.be.instanceOf(PopspoolError);
        expect(err!.code).to.equal('IN_USE');
        expect(sb.read().toString()).to.equal(SPOOL);
        const st1 = fs.statSync(sb.spool);
        expect([st1.mtimeMs, st1.size, st1.ino]).to.deep.equal([st0.mtimeMs, st0.size, st0.ino]);
        // The session lock was given back: once the holder is gone, login works.
        holder.proc.kill('SIGKILL');
        await holder.exited;
        if (fs.existsSync(`${sb.spool}.lock`)) fs.unlinkSync(`${sb.spool}.lock`); // a killed dotlockfile leaves its lock
        const drop = await store.open(sb.user);
        expect(drop.messages).to.have.length(3);
        await drop.close();
        expect(sb.read().toString()).to.equal(SPOOL);
      });
    }
  }

  it('holdLock true: procmail waits for the session and delivers after its QUIT', async function () {
    requireTool(this, 'procmail', 'procmail');
    const w = startWorker(sb.workerArgs({ holdLock: true, action: 'update', deleted: [0, 1, 2], waitStdin: true }));
    await waitFor(() => w.events().some((e) => e.event === 'opened'), 'session open');
    const mail = mdaMessage('waited');
    const mda = startProcmail(sb.spool, mail.input);
    await new Promise((r) => setTimeout(r, MDA_GRACE_MS));
    expect(mda.proc.exitCode, 'procmail must still be waiting for the lock').to.equal(null);
    expect(sb.read().toString()).to.equal(SPOOL);
    w.send('go');
    const r = await finish(w);
    expect(r.done, JSON.stringify(r.events)).to.not.equal(undefined);
    expect((await mda.exited).code).to.equal(0);
    expect(sb.read().toString()).to.equal(mail.stored);
  });

  for (const deleted of [[0, 1, 2], [1]]) {
    it(`holdLock false: procmail delivers during the session; DELE ${deleted.join(',')} + QUIT keeps its mail`, async function () {
      requireTool(this, 'procmail', 'procmail');
      const w = startWorker(sb.workerArgs({ holdLock: false, action: 'update', deleted, waitStdin: true, read: [0, 1, 2] }));
      await waitFor(() => w.events().some((e) => e.event === 'read' && e.index === 2), 'session open and read');
      const mail = mdaMessage('during');
      const mda = startProcmail(sb.spool, mail.input);
      expect((await mda.exited).code, 'procmail delivers while the session is open').to.equal(0);
      expect(sb.read().toString()).to.equal(SPOOL + mail.stored);
      w.send('go');
      const r = await finish(w);
      expect(r.done, JSON.stringify(r.events)).to.not.equal(undefined);
      const survivors = MSGS.filter((_, i) => !deleted.includes(i)).join('');
      expect(sb.read().toString()).to.equal(survivors + mail.stored);
      const next = await sb.store().open(sb.user);
      expect(next.messages).to.have.length(3 - deleted.length + 1);
      const chunks: Buffer[] = [];
      for await (const c of await next.read(next.messages.length - 1)) chunks.push(c as Buffer);
      await next.close();
      expect(Buffer.concat(chunks).toString()).to.equal(mail.stored.slice(mail.stored.indexOf('\n') + 1, -1));
    });
  }
});

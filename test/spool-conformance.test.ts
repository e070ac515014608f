/**
 * One conformance suite, run against every drop (server mode, server mode holding the lock,
 * copy mode) and every lock strategy: what a session sees and what QUIT leaves must not depend
 * on either. The lock set also decides who is excluded: with a given set, exactly the real lock
 * holders that use one of its locks keep popspool out.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { PopspoolError } from '../src/errors.js';
import type { LockMethod } from '../src/lock/index.js';
import type { Drop } from '../src/spool/drop.js';
import type { SpoolSettings } from '../src/spool/store.js';
import { expectedMessages, FIXTURES } from './helpers/popspool-server.js';
import { killAll, Sandbox, start, waitFor, type Proc } from './helpers/spool-support.js';
import { requireTool } from './helpers/tools.js';
import { entries } from '../src/spool/message-list.js';

const DROPS: Record<string, Partial<SpoolSettings>> = {
  server: { mode: 'server' },
  'server+hold': { mode: 'server', holdLock: true },
  copy: { mode: 'copy' },
};
const STRATEGIES: LockMethod[][] = [['fcntl', 'dotlock', 'flock'], ['dotlock', 'fcntl'], ['fcntl'], ['dotlock'], ['flock']];

async function readAll(drop: Drop, i: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of await drop.read(i)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Raw content as served, line endings as POP3 sends them (the oracle speaks wire form). */
const toWire = (raw: Buffer): Buffer => {
  const text = raw.toString('latin1').replace(/\r\n/g, '\n');
  const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
  return Buffer.from(raw.length ? lines.map((l) => l + '\r\n').join('') : '', 'latin1');
};

describe('spool conformance: every drop × every lock strategy', function () {
  this.timeout(60_000);
  const alice = fs.readFileSync(path.join(FIXTURES, 'mail/alice'));
  const expected = expectedMessages(alice);
  let sb: Sandbox;
  beforeEach(() => { sb = new Sandbox(); });
  afterEach(async () => { await killAll(); await sb.cleanup(); });

  for (const [dropName, over] of Object.entries(DROPS)) {
    for (const methods of STRATEGIES) {
      const settings = (): Partial<SpoolSettings> => ({ ...over, lock: { ...sb.settings().lock, methods } });
      it(`${dropName}, locks=${methods.join(',')}: sizes, bytes, UIDLs, DELE+QUIT, next session`, async () => {
        sb.write(alice);
        const store = sb.store(settings());
        const drop = await store.open(sb.user);
        expect(entries(drop.messages).map((m) => m.size)).to.deep.equal(expected.map((m) => m.length));
        for (const i of [0, 7, expected.length - 1]) expect(toWire(await readAll(drop, i)).equals(expected[i]!), `message ${i + 1}`).to.equal(true);
        const uidls = entries(drop.messages).map((m) => m.uidl);
        // A second session of the same user is refused at once, whatever the lock set.
        const second = await store.open(sb.user).catch((e: unknown) => e);
        expect((second as PopspoolError).code).to.equal('IN_USE');
        const deleted = new Set([0, 3, 4, 20]);
        const outcome = await drop.update({ deleted, seen: new Set() });
        expect(outcome.deleted).to.equal(4);
        const next = await store.open(sb.user);
        expect(entries(next.messages).map((m) => m.uidl)).to.deep.equal(uidls.filter((_, i) => !deleted.has(i)));
        expect(entries(next.messages).map((m) => m.size)).to.deep.equal(expected.filter((_, i) => !deleted.has(i)).map((m) => m.length));
        await next.close();
        expect(await sb.pendingFiles()).to.deep.equal([]);
      });
    }
  }

  /** Real holders, each using exactly one kind of lock. */
  const HOLDERS: { method: LockMethod; tool: [string, string]; start: (spool: string) => Proc; held: (p: Proc, spool: string) => boolean }[] = [
    { method: 'flock', tool: ['flock', 'util-linux'], start: (s) => start('flock', [s, 'sleep', '20']), held: (_p, s) => fs.existsSync(s) },
    { method: 'dotlock', tool: ['dotlockfile', 'liblockfile-bin'], start: (s) => start('dotlockfile', ['-l', `${s}.lock`]), held: (_p, s) => fs.existsSync(`${s}.lock`) },
    {
      method: 'fcntl', tool: ['python3', 'python3'],
      start: (s) => start('python3', ['-c', `import fcntl,sys,time\nf=open(sys.argv[1],'a')\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(20)`, s]),
      held: (p) => p.stdout().includes('held'),
    },
  ];
  for (const holder of HOLDERS) {
    for (const methods of [['fcntl', 'dotlock', 'flock'], ['fcntl'], ['dotlock'], ['flock']] as LockMethod[][]) {
      const excluded = methods.includes(holder.method);
      it(`a ${holder.method} holder ${excluded ? 'keeps out' : 'does not affect'} locks=${methods.join(',')}`, async function () {
        requireTool(this, holder.tool[0], holder.tool[1]);
        sb.write(alice);
        const p = holder.start(sb.spool);
        // flock(1) needs a moment to take its lock after it starts: wait until it is running.
        await waitFor(() => holder.held(p, sb.spool), `${holder.method} holder to take its lock`);
        if (holder.method === 'flock') await new Promise((r) => setTimeout(r, 300));
        const store = sb.store({ lock: { ...sb.settings().lock, methods, timeoutMs: 800 } });
        const result = await store.open(sb.user).then((d) => d.close().then(() => 'opened'), (e: PopspoolError) => e.code);
        expect(result).to.equal(excluded ? 'IN_USE' : 'opened');
        expect(sb.read().equals(alice)).to.equal(true);
      });
    }
  }
});

/**
 * The spool engine's UPDATE phase, prefix verification, copy mode, the scan cache's savings and
 * one-session-per-maildrop — against real files, asserting exact bytes (DESIGN.md §1, §4, §5).
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PopspoolError } from '../src/errors.js';
import { backgroundSettled } from '../src/spool/background.js';
import { CACHE_WRITE_DELAY_MS } from '../src/spool/store.js';
import type { Drop } from '../src/spool/drop.js';
import {
  killAll, message, quietLogs, runWorker, Sandbox, startWorker, waitFor, type WorkerResult,
} from './helpers/spool-support.js';
import { entries } from '../src/spool/message-list.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'spool-fixtures');

async function readMsg(drop: Drop, i: number): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of await drop.read(i)) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('latin1');
}

async function rejectionOf(p: Promise<unknown>): Promise<PopspoolError> {
  return p.then(() => { throw new Error('expected a rejection'); }, (e: PopspoolError) => e);
}

/** The message content as served: without its From_ line and separator. */
function content(m: string): string {
  return m.slice(m.indexOf('\n') + 1, -1);
}

/** Sets atime/mtime to a fixed past time, so any write would be visible in mtime. */
function backdate(file: string): fs.Stats {
  fs.utimesSync(file, new Date('2023-06-01T00:00:00Z'), new Date('2023-06-01T00:00:00Z'));
  return fs.statSync(file);
}

/** A drop's message list as plain data (sizes and UIDLs; a server drop computes its UIDLs on demand). */
const listed = (d: Drop): Array<{ size: number; uidl: string }> => entries(d.messages).map((m) => ({ size: m.size, uidl: m.uidl }));

const MSGS = ['a', 'b', 'c', 'd', 'e'].map((id, i) => message(id, { bodyLines: 2 + i * 3, status: i === 3 ? 'O' : undefined }));
const SPOOL = MSGS.join('');
const APPENDED = message('late', { bodyLines: 4 });

describe('spool engine: update phase, prefix checks, copy mode, cache, sessions', function () {
  this.timeout(30_000);
  let sb: Sandbox;
  let restoreLogs: () => void;
  before(() => { restoreLogs = quietLogs(); });
  after(() => restoreLogs());
  beforeEach(() => { sb = new Sandbox(); });
  afterEach(async () => {
    await killAll();
    await sb.cleanup();
  });

  for (const holdLock of [false, true]) {
    describe(`server mode, holdLock ${holdLock}`, () => {
      it('untouched: no DELE leaves bytes and mtime unchanged and writes no journal', async () => {
        sb.write(SPOOL);
        const st0 = backdate(sb.spool);
        const drop = await sb.store({ holdLock, statusUpdate: true }).open(sb.user);
        expect(drop.messages).to.have.length(5);
        expect(await readMsg(drop, 1)).to.equal(content(MSGS[1]!));
        const out = await drop.update({ deleted: new Set(), seen: new Set() });
        expect(out.case).to.equal('untouched');
        expect(sb.read().toString()).to.equal(SPOOL);
        const st1 = fs.statSync(sb.spool);
        expect(st1.mtimeMs).to.equal(st0.mtimeMs);
        expect(st1.ino).to.equal(st0.ino);
        expect(await sb.pendingFiles()).to.deep.equal([]);
      });

      it('flags only with statusUpdate off (the default): read messages leave the spool untouched', async () => {
        sb.write(SPOOL);
        const st0 = backdate(sb.spool);
        const drop = await sb.store({ holdLock }).open(sb.user);
        await readMsg(drop, 2);
        const out = await drop.update({ deleted: new Set(), seen: new Set([2, 3]) });
        expect(out.case).to.equal('untouched');
        expect(sb.read().toString()).to.equal(SPOOL);
        expect(fs.statSync(sb.spool).mtimeMs).to.equal(st0.mtimeMs);
      });

      it('flags only with statusUpdate on: Status: RO written, nothing before the first read message touched', async () => {
        sb.write(SPOOL, 0o640);
        const st0 = fs.statSync(sb.spool);
        const drop = await sb.store({ holdLock, statusUpdate: true }).open(sb.user);
        const out = await drop.update({ deleted: new Set(), seen: new Set([2, 3]) });
        expect(out.case).to.equal('flags');
        // c had no Status header: one is inserted as its first header; d had "Status: O".
        const c = MSGS[2]!.replace('\n', '\nStatus: RO\n');
        const d = MSGS[3]!.replace('Status: O\n', 'Status: RO\n');
        const expected = MSGS[0]! + MSGS[1]! + c + d + MSGS[4]!;
        const now = sb.read();
        expect(now.toString()).to.equal(expected);
        expect(now.subarray(0, MSGS[0]!.length + MSGS[1]!.length).toString()).to.equal(MSGS[0]! + MSGS[1]!);
        const st1 = fs.statSync(sb.spool);
        expect([st1.ino, st1.mode, st1.uid, st1.gid]).to.deep.equal([st0.ino, st0.mode, st0.uid, st0.gid]);
        // Recorded flags survive a new session, and the UIDLs did not change with them.
        const again = await sb.store({ holdLock, statusUpdate: true }).open(sb.user);
        expect(entries(again.messages).map((m) => m.uidl)).to.deep.equal(entries(drop.messages).map((m) => m.uidl));
        expect(await (await again.update({ deleted: new Set(), seen: new Set([2, 3]) })).case).to.equal('untouched');
        expect(sb.read().toString()).to.equal(expected);
        expect(await sb.pendingFiles()).to.deep.equal([]);
      });

      it('delete-all with nothing appended: the spool becomes empty, same inode, owner and mode', async () => {
        sb.write(SPOOL, 0o640);
        const st0 = fs.statSync(sb.spool);
        const drop = await sb.store({ holdLock }).open(sb.user);
        const out = await drop.update({ deleted: new Set([0, 1, 2, 3, 4]), seen: new Set() });
        expect(out).to.include({ case: 'delete-all', deleted: 5, kept: 0 });
        const st1 = fs.statSync(sb.spool);
        expect(st1.size).to.equal(0);
        expect([st1.ino, st1.mode, st1.uid, st1.gid]).to.deep.equal([st0.ino, st0.mode, st0.uid, st0.gid]);
        expect(await sb.pendingFiles()).to.deep.equal([]);
        const next = await sb.store({ holdLock }).open(sb.user);
        expect(next.messages).to.have.length(0);
        await next.close();
      });

      it('delete-all with mail appended during the session: the spool is exactly the appended bytes', async () => {
        sb.write(SPOOL, 0o620);
        const st0 = fs.statSync(sb.spool);
        const drop = await sb.store({ holdLock }).open(sb.user);
        fs.appendFileSync(sb.spool, APPENDED);
        const out = await drop.update({ deleted: new Set([0, 1, 2, 3, 4]), seen: new Set() });
        expect(out.case).to.equal('delete-all');
        expect(sb.read().toString()).to.equal(APPENDED);
        const st1 = fs.statSync(sb.spool);
        expect([st1.ino, st1.mode, st1.uid, st1.gid]).to.deep.equal([st0.ino, st0.mode, st0.uid, st0.gid]);
        expect(await sb.pendingFiles()).to.deep.equal([]);
      });

      it('general: survivors in order, byte-identical, then the appended tail; UIDLs of survivors kept', async () => {
        sb.write(SPOOL, 0o600);
        const st0 = backdate(sb.spool);
        const drop = await sb.store({ holdLock }).open(sb.user);
        const uidls = entries(drop.messages).map((m) => m.uidl);
        for (let i = 0; i < 5; i++) expect(await readMsg(drop, i)).to.equal(content(MSGS[i]!));
        fs.appendFileSync(sb.spool, APPENDED);
        const out = await drop.update({ deleted: new Set([0, 2]), seen: new Set([0, 1, 2, 3, 4]) });
        expect(out).to.include({ case: 'general', deleted: 2, kept: 3 });
        expect(sb.read().toString()).to.equal(MSGS[1]! + MSGS[3]! + MSGS[4]! + APPENDED);
        const st1 = fs.statSync(sb.spool);
        expect([st1.ino, st1.mode, st1.uid, st1.gid]).to.deep.equal([st0.ino, st0.mode, st0.uid, st0.gid]);
        expect(st1.mtimeMs).to.be.greaterThan(st0.mtimeMs);
        expect(await sb.pendingFiles()).to.deep.equal([]);
        const next = await sb.store({ holdLock }).open(sb.user);
        expect(entries(next.messages).map((m) => m.uidl).slice(0, 3)).to.deep.equal([uidls[1], uidls[3], uidls[4]]);
        expect(next.messages).to.have.length(4);
        expect(await readMsg(next, 3)).to.equal(content(APPENDED));
        await next.close();
      });

      it('restores the atime after a rewrite (shell "new mail" notices)', async () => {
        // Every read of the spool (rescan, cache fingerprint) must come before the atime is
        // restored: under relatime a later read would set it to now again.
        sb.write(SPOOL);
        backdate(sb.spool);
        const drop = await sb.store({ holdLock }).open(sb.user);
        fs.appendFileSync(sb.spool, APPENDED);
        const atimeBefore = fs.statSync(sb.spool).atimeMs;
        await drop.update({ deleted: new Set([0]), seen: new Set() });
        const st = fs.statSync(sb.spool);
        expect(Math.floor(st.atimeMs)).to.equal(Math.floor(atimeBefore));
        expect(st.atimeMs).to.be.below(st.mtimeMs);
      });
    });
  }

  describe('UIDLs and sizes are identical in server and copy mode', () => {
    const files = [
      ...fs.readdirSync(path.join(FIXTURES, 'cases')).map((n) => path.join(FIXTURES, 'cases', n)),
      ...fs.readdirSync(path.join(FIXTURES, 'mail')).map((n) => path.join(FIXTURES, 'mail', n)),
    ];
    for (const file of files) {
      it(path.basename(file), async () => {
        const orig = fs.readFileSync(file);
        sb.write(orig);
        const server = await sb.store().open(sb.user).catch((e: PopspoolError) => e);
        const served: string[] = [];
        if (!(server instanceof Error)) {
          for (let i = 0; i < server.messages.length; i++) served.push(await readMsg(server, i));
          await server.close();
        }
        const copy = await sb.store({ mode: 'copy' }).open(sb.user).catch((e: PopspoolError) => e);
        if (server instanceof Error) {
          // A refused spool is refused in both modes and never rewritten.
          expect(copy).to.be.instanceOf(PopspoolError);
          expect((copy as PopspoolError).code).to.equal(server.code);
          expect(sb.read().equals(orig)).to.equal(true);
          return;
        }
        expect(copy).not.to.be.instanceOf(Error);
        const c = copy as Drop;
        if (orig.length > 0) expect(c.messages.length).to.be.greaterThan(0);
        expect(listed(c)).to.deep.equal(listed(server));
        const copied: string[] = [];
        for (let i = 0; i < c.messages.length; i++) copied.push(await readMsg(c, i));
        expect(copied).to.deep.equal(served);
        await c.close();
        expect(sb.read().equals(orig), 'copy mode put everything back').to.equal(true);
      });
    }
  });

  describe('prefix verification (holdLock false): a spool rewritten by someone else is never guessed at', () => {
    async function expectRejected(drop: Drop, deleted: number[], otherWriters: Buffer): Promise<void> {
      const err = await rejectionOf(drop.update({ deleted: new Set(deleted), seen: new Set() }));
      expect(err).to.be.instanceOf(PopspoolError);
      expect(err.code).to.equal('SYS_TEMP');
      expect(sb.read().equals(otherWriters), 'spool is exactly what the other writer left').to.equal(true);
      expect(await sb.pendingFiles()).to.deep.equal([]);
    }

    it('a kept message edited in place (same size) → SYS_TEMP, nothing changed', async () => {
      // A big last message puts b before the fingerprinted window: the per-message crc must catch it.
      const big = message('big', { bodyLines: 300 });
      sb.write(SPOOL + big);
      const drop = await sb.store().open(sb.user);
      const edited = Buffer.from((SPOOL + big).replace('body b line 1', 'BODY B LINE 1'));
      fs.writeFileSync(sb.spool, edited); // same inode (O_TRUNC), same size
      await expectRejected(drop, [0], edited);
    });

    it('a deleted message near the end edited in place → SYS_TEMP (fingerprint)', async () => {
      sb.write(SPOOL);
      const drop = await sb.store().open(sb.user);
      const edited = Buffer.from(SPOOL.replace('body e line 2', 'body E line 2'));
      fs.writeFileSync(sb.spool, edited);
      await expectRejected(drop, [4], edited);
    });

    it('the spool truncated → SYS_TEMP, the truncated spool left as it is', async () => {
      sb.write(SPOOL);
      const drop = await sb.store().open(sb.user);
      fs.truncateSync(sb.spool, MSGS[0]!.length + 10);
      await expectRejected(drop, [0, 1, 2, 3, 4], Buffer.from(SPOOL.slice(0, MSGS[0]!.length + 10)));
    });

    it('a message removed by a shell MUA (rewrite, then growth) → SYS_TEMP', async () => {
      sb.write(SPOOL);
      const drop = await sb.store().open(sb.user);
      const rewritten = Buffer.from(MSGS.slice(1).join('') + APPENDED + APPENDED);
      fs.writeFileSync(sb.spool, rewritten);
      await expectRejected(drop, [4], rewritten);
    });

    it('RETR after an append serves the right bytes; RETR after a rewrite rejects SYS_TEMP and poisons the update', async () => {
      sb.write(SPOOL);
      const drop = await sb.store().open(sb.user);
      fs.appendFileSync(sb.spool, APPENDED);
      expect(await readMsg(drop, 4)).to.equal(content(MSGS[4]!));
      const rewritten = Buffer.from(MSGS[0]! + MSGS[2]! + MSGS[3]! + MSGS[4]! + APPENDED);
      fs.writeFileSync(sb.spool, rewritten);
      const err = await rejectionOf(drop.read(2));
      expect(err.code).to.equal('SYS_TEMP');
      await expectRejected(drop, [0], rewritten);
    });

    it('RETR of a message edited in place (same size, From_ lines where they were) rejects SYS_TEMP', async () => {
      sb.write(SPOOL);
      const drop = await sb.store().open(sb.user);
      const edited = Buffer.from(SPOOL.replace('body e line 2', 'body E line 2'));
      expect(edited.length).to.equal(Buffer.byteLength(SPOOL));
      fs.writeFileSync(sb.spool, edited);
      expect(await readMsg(drop, 0)).to.equal(content(MSGS[0]!)); // untouched messages still served
      expect((await rejectionOf(drop.read(4))).code).to.equal('SYS_TEMP');
      await drop.close();
    });

    it('RETR from the read-ahead after an in-place edit sends the scanned bytes (crc-checked); the update then refuses', async () => {
      sb.write(SPOOL);
      const drop = await sb.store().open(sb.user);
      expect(await readMsg(drop, 0)).to.equal(content(MSGS[0]!)); // one read covers the small messages after it
      const edited = Buffer.from(SPOOL.replace('body b line 1', 'BODY B LINE 1'));
      expect(edited.length).to.equal(Buffer.byteLength(SPOOL));
      fs.writeFileSync(sb.spool, edited);
      expect(await readMsg(drop, 1)).to.equal(content(MSGS[1]!));
      await expectRejected(drop, [0], edited);
    });

    it('RETR after truncation rejects SYS_TEMP', async () => {
      sb.write(SPOOL);
      const drop = await sb.store().open(sb.user);
      fs.truncateSync(sb.spool, MSGS[0]!.length + MSGS[1]!.length);
      expect(await readMsg(drop, 1)).to.equal(content(MSGS[1]!));
      expect((await rejectionOf(drop.read(3))).code).to.equal('SYS_TEMP');
      await drop.close();
    });
  });

  describe('copy mode', () => {
    it('empties the spool during the session; QUIT writes back survivors, then mail appended meanwhile', async () => {
      sb.write(SPOOL, 0o640);
      const st0 = fs.statSync(sb.spool);
      const drop = await sb.store({ mode: 'copy' }).open(sb.user);
      expect(drop.info.mode).to.equal('copy');
      expect(fs.statSync(sb.spool).size, 'spool emptied').to.equal(0);
      expect(await sb.pendingFiles()).to.include('drops/alice.pop');
      expect(await readMsg(drop, 3)).to.equal(content(MSGS[3]!));
      fs.appendFileSync(sb.spool, APPENDED);
      const out = await drop.update({ deleted: new Set([1, 4]), seen: new Set() });
      expect(out).to.include({ case: 'copy-back', deleted: 2, kept: 3 });
      expect(sb.read().toString()).to.equal(MSGS[0]! + MSGS[2]! + MSGS[3]! + APPENDED);
      const st1 = fs.statSync(sb.spool);
      expect([st1.ino, st1.mode, st1.uid, st1.gid]).to.deep.equal([st0.ino, st0.mode, st0.uid, st0.gid]);
      expect(await sb.pendingFiles()).to.deep.equal([]);
    });

    it('a session ending without QUIT puts everything back (plus what arrived meanwhile)', async () => {
      sb.write(SPOOL);
      const drop = await sb.store({ mode: 'copy' }).open(sb.user);
      fs.appendFileSync(sb.spool, APPENDED);
      await drop.close();
      await drop.close(); // idempotent
      expect(sb.read().toString()).to.equal(SPOOL + APPENDED);
      expect(await sb.pendingFiles()).to.deep.equal([]);
    });

    it('delete-all in copy mode leaves only the mail that arrived meanwhile', async () => {
      sb.write(SPOOL);
      const drop = await sb.store({ mode: 'copy', statusUpdate: true }).open(sb.user);
      fs.appendFileSync(sb.spool, APPENDED);
      await drop.update({ deleted: new Set([0, 1, 2, 3, 4]), seen: new Set([0, 1]) });
      expect(sb.read().toString()).to.equal(APPENDED);
    });

    it('Status edits are the same bytes in copy and server mode, CRLF spools included', async () => {
      const crlf = [message('x', { crlf: true }), message('y', { crlf: true, status: 'O' })].join('');
      const expected = crlf.replace('\r\n', '\r\nStatus: RO\r\n').replace('Status: O\r\n', 'Status: RO\r\n');
      for (const mode of ['server', 'copy'] as const) {
        sb.write(crlf);
        const drop = await sb.store({ mode, statusUpdate: true }).open(sb.user);
        await drop.update({ deleted: new Set(), seen: new Set([0, 1]) });
        expect(sb.read().toString(), `${mode} mode`).to.equal(expected);
      }
    });

    for (const via of ['open', 'recoverAll'] as const) {
      it(`a leftover temp drop (crash after the spool was emptied) is merged back by ${via}`, async () => {
        sb.write(SPOOL);
        const crashed = await runWorker(sb.workerArgs({ mode: 'copy', action: 'close' }), { POPSPOOL_FAULT: 'crash:spool-emptied' });
        expect(crashed.signal).to.equal('SIGKILL');
        expect(fs.statSync(sb.spool).size).to.equal(0);
        expect(await sb.pendingFiles()).to.include('drops/alice.pop');
        fs.appendFileSync(sb.spool, APPENDED); // mail that arrived after the crash
        const store = sb.store({ mode: 'copy' });
        if (via === 'recoverAll') expect(await store.recoverAll()).to.equal(1);
        expect(sb.read().toString()).to.equal(via === 'recoverAll' ? SPOOL + APPENDED : APPENDED);
        const drop = await store.open(sb.user);
        expect(drop.messages).to.have.length(6);
        await drop.close();
        expect(sb.read().toString()).to.equal(SPOOL + APPENDED);
        expect(await sb.pendingFiles()).to.deep.equal([]);
      });
    }

    it('a drop\'s .meta left without its drop (a crash between the two) changes nothing at login and goes at start-up', async () => {
      sb.write(SPOOL);
      const drops = path.join(sb.stateDir, 'drops');
      fs.mkdirSync(drops, { recursive: true });
      fs.writeFileSync(path.join(drops, 'alice.pop.meta'), '{"version":1,"dev":"1","ino":"2","size":999,"crc":0}');
      for (const mode of ['server', 'copy'] as const) {
        const drop = await sb.store({ mode }).open(sb.user);
        expect(drop.messages, `${mode} mode`).to.have.length(5);
        await drop.close();
        expect(sb.read().toString(), `${mode} mode`).to.equal(SPOOL);
      }
      fs.writeFileSync(path.join(drops, 'alice.pop.meta'), '{}'); // the copy session removed its own
      expect(await sb.store().recoverAll()).to.equal(0);
      expect(await sb.pendingFiles()).to.deep.equal([]);
    });
  });

  describe('the scan cache', () => {
    /** Bytes this process has read (all files), from /proc/self/io. */
    function rchar(): number {
      return Number(/rchar: (\d+)/.exec(fs.readFileSync('/proc/self/io', 'utf8'))![1]);
    }
    const N = 5_000;

    it(`a warm check-mail session on ${N} messages reads none of them; an append costs only the tail; a rewrite a full scan`, async () => {
      sb.write(Array.from({ length: N }, (_, i) => message(`m${i}`, { bodyLines: 1 + (i % 7) })).join(''));
      const size = fs.statSync(sb.spool).size;
      const store = sb.store();
      const session = async (): Promise<{ drop: Drop; read: number }> => {
        const r0 = rchar();
        const drop = await store.open(sb.user);
        const read = rchar() - r0;
        await drop.update({ deleted: new Set(), seen: new Set() });
        return { drop, read };
      };
      const cold = await session();
      expect(cold.drop.info).to.include({ cache: 'miss', bytesScanned: size });
      expect(cold.read).to.be.at.least(size);
      expect(cold.drop.messages).to.have.length(N);

      const warm = await session();
      expect(warm.drop.info).to.include({ cache: 'hit', bytesScanned: 0 });
      expect(listed(warm.drop)).to.deep.equal(listed(cold.drop));
      // The cache file itself is ~50 bytes a message; the spool is ~8 times that. (It is written
      // in the background after the cold login's reply: the warm one was answered from memory.)
      await backgroundSettled();
      const cacheSize = fs.statSync(path.join(sb.stateDir, 'cache', `${sb.user}.cache`)).size;
      expect(warm.read, 'bytes read by a warm open').to.be.below(cacheSize + 64 * 1024);
      expect(cacheSize).to.be.below(size / 4);

      fs.appendFileSync(sb.spool, APPENDED);
      const tail = await session();
      expect(tail.drop.info).to.include({ cache: 'tail', bytesScanned: APPENDED.length });
      expect(tail.read).to.be.below(cacheSize + 64 * 1024);
      expect(listed(tail.drop).slice(0, N)).to.deep.equal(listed(cold.drop));
      expect(tail.drop.messages).to.have.length(N + 1);

      // Our own rewrite stores the cache for the spool as now written.
      const d = await store.open(sb.user);
      await d.update({ deleted: new Set([0, 1]), seen: new Set() });
      const afterOurs = await session();
      expect(afterOurs.drop.info).to.include({ cache: 'hit', bytesScanned: 0 });
      expect(listed(afterOurs.drop)).to.deep.equal(listed(tail.drop).slice(2));

      // Someone else's rewrite (same inode, same size): a full scan.
      const buf = sb.read();
      buf.write('X', buf.length - 3);
      fs.writeFileSync(sb.spool, buf);
      const full = await session();
      expect(full.drop.info).to.include({ cache: 'miss', bytesScanned: buf.length });
      expect(full.read).to.be.at.least(buf.length);
    });

    it(`a login that scanned writes the cache file ${CACHE_WRITE_DELAY_MS} ms after open() resolves (the session answers first)`, async () => {
      sb.write(SPOOL);
      const cacheFile = path.join(sb.stateDir, 'cache', `${sb.user}.cache`);
      const store = sb.store();
      const a = await store.open(sb.user);
      expect(a.info.cache).to.equal('miss');
      await new Promise((r) => setTimeout(r, CACHE_WRITE_DELAY_MS / 2));
      expect(fs.existsSync(cacheFile), 'written before the delay').to.equal(false);
      await backgroundSettled();
      expect(fs.existsSync(cacheFile), 'written after').to.equal(true);
      // The drop goes on unharmed; another process reads the file.
      expect(await readMsg(a, 1)).to.equal(content(MSGS[1]!));
      await a.close();
      const c = await sb.store().open(sb.user);
      expect(c.info).to.include({ cache: 'hit', bytesScanned: 0 });
      expect(c.messages).to.have.length(MSGS.length);
      await c.close();
    });

    it('an update\'s cache file and image unlink, done after the reply, are complete once background work settles', async () => {
      sb.write(SPOOL);
      const drop = await sb.store().open(sb.user);
      await drop.update({ deleted: new Set([1]), seen: new Set() });
      await backgroundSettled();
      expect(fs.readdirSync(path.join(sb.stateDir, 'journal'))).to.deep.equal([]);
      // A fresh store (as another process would) finds the file for the spool as now written.
      const next = await sb.store().open(sb.user);
      expect(next.info).to.include({ cache: 'hit', bytesScanned: 0 });
      expect(next.messages).to.have.length(4);
      expect(await readMsg(next, 1)).to.equal(content(MSGS[2]!));
      await next.close();
    });
  });

  describe('one session per maildrop', () => {
    it('a second open in the same process rejects IN_USE at once; the first session is unharmed', async () => {
      sb.write(SPOOL);
      // A spool-lock wait would take 20 s (longer than this test may run): the session lock answers first.
      const store = sb.store({ holdLock: true, lock: { ...sb.settings().lock, timeoutMs: 20_000 } });
      const first = await store.open(sb.user);
      const err = await rejectionOf(store.open(sb.user));
      expect(err.code).to.equal('IN_USE');
      const err2 = await rejectionOf(sb.store({ mode: 'copy' }).open(sb.user));
      expect(err2.code).to.equal('IN_USE');
      expect(await readMsg(first, 0)).to.equal(content(MSGS[0]!));
      await first.update({ deleted: new Set([0]), seen: new Set() });
      expect(sb.read().toString()).to.equal(MSGS.slice(1).join(''));
      const again = await store.open(sb.user);
      expect(again.messages).to.have.length(4);
      await again.close();
    }).timeout(10_000);

    for (const holdLock of [false, true]) {
      it(`holdLock ${holdLock}: at the commit point the spool is unwritten, the journal durable, and a new login waits for the rewrite, not IN_USE`, async () => {
        sb.write(SPOOL);
        const store = sb.store({ holdLock });
        const first = await store.open(sb.user);
        let next: Promise<Drop> | null = null;
        let calls = 0;
        let spoolAtCommit = '';
        let journalAtCommit: string[] = [];
        const done = first.update({
          deleted: new Set([1, 3]), seen: new Set(),
          onCommitted: () => {
            calls++;
            spoolAtCommit = sb.read().toString('latin1');
            journalAtCommit = fs.readdirSync(path.join(sb.stateDir, 'journal')).filter((f) => f.endsWith('.journal'));
            // The session lock is already free: this login must not fail IN_USE; it waits
            // for the mailbox lock, which the update holds until the spool is written.
            next = store.open(sb.user);
          },
        });
        const outcome = await done;
        expect(calls).to.equal(1);
        expect(outcome.answeredMs, 'the time to the answer is reported').to.be.a('number');
        expect(outcome.answeredMs!).to.be.at.most(outcome.durationMs);
        expect(spoolAtCommit).to.equal(SPOOL);
        expect(journalAtCommit).to.deep.equal([`${sb.user}.journal`]);
        const again = await next!;
        expect(again.messages).to.have.length(3);
        expect(await readMsg(again, 1)).to.equal(content(MSGS[2]!));
        await again.close();
        expect(sb.read().toString('latin1')).to.equal([MSGS[0], MSGS[2], MSGS[4]].join(''));
      });
    }

    it('updates that need no journal never call onCommitted (untouched, delete-all truncate)', async () => {
      sb.write(SPOOL);
      let calls = 0;
      const onCommitted = (): void => void calls++;
      const a = await sb.store().open(sb.user);
      const untouched = await a.update({ deleted: new Set(), seen: new Set([0]), onCommitted });
      const b = await sb.store().open(sb.user);
      const truncated = await b.update({ deleted: new Set([0, 1, 2, 3, 4]), seen: new Set(), onCommitted });
      expect(calls).to.equal(0);
      expect([untouched.case, truncated.case]).to.deep.equal(['untouched', 'delete-all']);
      expect([untouched.answeredMs, truncated.answeredMs]).to.deep.equal([undefined, undefined]);
      expect(sb.read().length).to.equal(0);
    });

    it('a second worker process rejects IN_USE while the first holds the session', async () => {
      sb.write(SPOOL);
      const first = startWorker(sb.workerArgs({ action: 'close', waitStdin: true, lockTimeoutMs: 20_000 }));
      await waitFor(() => first.events().some((e) => e.event === 'opened'), 'first worker opened');
      const second: WorkerResult = await runWorker(sb.workerArgs({ action: 'close', lockTimeoutMs: 20_000 }));
      expect(second.error).to.include({ phase: 'open', code: 'IN_USE' });
      const err = await rejectionOf(sb.store().open(sb.user));
      expect(err.code).to.equal('IN_USE');
      first.send('go');
      expect((await first.exited).code).to.equal(0);
      const third = await runWorker(sb.workerArgs({ action: 'close' }));
      expect(third.opened?.messages).to.have.length(5);
    }).timeout(10_000);
  });
});

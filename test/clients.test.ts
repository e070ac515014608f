/**
 * End-to-end with real POP3 clients (curl, Python poplib) against a real server on a real
 * socket, serving the fixture spools: the bytes each client retrieves are compared with an
 * independent split of the fixture, and LIST sizes with the octets RETR sends.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { requireTool } from './helpers/tools.js';
import { Pop3TestClient } from './helpers/pop3-client.js';
import { expectedMessages, FIXTURES, startServer, type TestServer } from './helpers/popspool-server.js';

const run = promisify(execFile);
const SPOOLS = { alice: 'mail/alice', carol: 'mail/carol', bob: 'mail/bob', mallory: 'mail/mallory', dup: 'cases/duplicates.mbox', nonl: 'cases/no-final-newline.mbox', nul: 'cases/nul-bytes.mbox', long: 'cases/long-line.mbox' };

for (const mode of ['server', 'copy'] as const) {
  describe(`real clients, ${mode} mode`, function () {
    this.timeout(60000);
    let srv: TestServer;
    before(async () => {
      srv = await startServer({ spools: SPOOLS, settings: { mode } });
    });
    after(async () => srv?.stop());

    it('curl lists and retrieves every alice message byte-identically', async function () {
      requireTool(this, 'curl', 'curl');
      const expected = expectedMessages(fs.readFileSync(path.join(FIXTURES, 'mail/alice')));
      const { stdout: list } = await run('curl', ['-s', `pop3://alice:pw-alice@127.0.0.1:${srv.port}/`]);
      const sizes = list.trim().split(/\r?\n/).map((l) => Number(l.split(' ')[1]));
      expect(sizes).to.deep.equal(expected.map((m) => m.length));
      for (const n of [1, 2, expected.length]) {
        const { stdout } = await run('curl', ['-s', `pop3://alice:pw-alice@127.0.0.1:${srv.port}/${n}`], { encoding: 'buffer', maxBuffer: 1 << 26 });
        expect(Buffer.compare(stdout, expected[n - 1]!), `message ${n}`).to.equal(0);
      }
    });

    it('Python poplib: STAT, LIST, UIDL, RETR of every message of every spool match the fixture', async function () {
      requireTool(this, 'python3', 'python3');
      const script = `
import poplib, sys, json, hashlib
port = int(sys.argv[1]); out = {}
for user in sys.argv[2:]:
    p = poplib.POP3('127.0.0.1', port)
    poplib._MAXLINE = 1 << 20  # the long-line fixture has a 200 KiB line
    p.user(user); p.pass_('pw-' + user)
    count, total = p.stat()
    sizes = [int(x.split()[1]) for x in p.list()[1]]
    uidls = [x.split()[1].decode() for x in p.uidl()[1]]
    msgs = [hashlib.sha256(b''.join(l + b'\\r\\n' for l in p.retr(i + 1)[1])).hexdigest() for i in range(count)]
    p.quit()
    out[user] = dict(count=count, total=total, sizes=sizes, uidls=uidls, msgs=msgs)
print(json.dumps(out))`;
      const users = ['alice', 'carol', 'bob', 'dup', 'nonl', 'nul', 'long'];
      const { stdout } = await run('python3', ['-c', script, String(srv.port), ...users], { maxBuffer: 1 << 26 });
      const got = JSON.parse(stdout) as Record<string, { count: number; total: number; sizes: number[]; uidls: string[]; msgs: string[] }>;
      const { createHash } = await import('node:crypto');
      for (const user of users) {
        const expected = expectedMessages(fs.readFileSync(path.join(FIXTURES, SPOOLS[user as keyof typeof SPOOLS])));
        const g = got[user]!;
        expect(g.count, user).to.equal(expected.length);
        expect(g.sizes, user).to.deep.equal(expected.map((m) => m.length));
        expect(g.total, user).to.equal(expected.reduce((a, m) => a + m.length, 0));
        expect(g.msgs, user).to.deep.equal(expected.map((m) => createHash('sha256').update(m).digest('hex')));
        expect(new Set(g.uidls).size, `${user} UIDLs unique`).to.equal(g.count);
        for (const u of g.uidls) expect(u).to.match(/^[\x21-\x7e]{1,70}$/);
      }
    });

    it('LIST size equals the octets RETR sends, for every message (raw client, un-stuffed)', async () => {
      for (const user of ['alice', 'carol', 'nonl', 'nul', 'long', 'dup']) {
        const c = await Pop3TestClient.connect(srv.port);
        await c.login(user, `pw-${user}`);
        const list = await c.multi('LIST');
        for (const line of list.lines) {
          const [n, size] = line.split(' ').map(Number);
          const r = await c.multi(`RETR ${n}`);
          expect(r.raw.length, `${user} message ${n}`).to.equal(size);
        }
        await c.command('QUIT');
      }
    });

    it('a malformed spool is refused with [SYS/PERM] and never rewritten', async () => {
      const before = fs.readFileSync(srv.spoolPath('mallory'));
      const c = await Pop3TestClient.connect(srv.port);
      await c.command('USER mallory');
      const reply = await c.command('PASS pw-mallory');
      expect(reply).to.match(/^-ERR \[SYS\/PERM\] /);
      await c.command('QUIT');
      expect(fs.readFileSync(srv.spoolPath('mallory')).equals(before)).to.equal(true);
    });

    it('an empty spool is an empty maildrop', async () => {
      const c = await Pop3TestClient.connect(srv.port);
      await c.login('bob', 'pw-bob');
      expect(await c.command('STAT')).to.equal('+OK 0 0');
      await c.command('QUIT');
    });

    it('DELE + QUIT removes exactly the deleted messages; the next session sees the rest with the same UIDLs', async () => {
      const c = await Pop3TestClient.connect(srv.port);
      await c.login('alice', 'pw-alice');
      const uidls = (await c.multi('UIDL')).lines.map((l) => l.split(' ')[1]!);
      const sizes = (await c.multi('LIST')).lines.map((l) => Number(l.split(' ')[1]));
      for (const n of [2, 5, 6]) expect(await c.command(`DELE ${n}`)).to.match(/^\+OK/);
      expect(await c.command('QUIT')).to.match(/^\+OK/);
      const d = await Pop3TestClient.connect(srv.port);
      await d.login('alice', 'pw-alice');
      const after = (await d.multi('UIDL')).lines.map((l) => l.split(' ')[1]!);
      const keep = (_: unknown, i: number) => ![1, 4, 5].includes(i);
      expect(after).to.deep.equal(uidls.filter(keep));
      expect((await d.multi('LIST')).lines.map((l) => Number(l.split(' ')[1]))).to.deep.equal(sizes.filter(keep));
      await d.command('QUIT');
    });
  });
}

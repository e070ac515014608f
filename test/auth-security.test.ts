/**
 * Authentication security end to end: password schemes from real tools (openssl passwd -5/-6,
 * bcryptjs), equal cost for unknown users and wrong passwords (hash invocations counted, never
 * timed), failed-login throttling over the wire, user names that try to escape the spool path,
 * APOP, and `popspool user add|passwd|del|list` as child processes against a running server.
 */
import { expect } from 'chai';
import bcrypt from 'bcryptjs';
import { createHash } from 'node:crypto';
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApopSecrets } from '../src/auth/apop.js';
import { hashPassword, PasswdFile, type HashScheme } from '../src/auth/passwd-file.js';
import { encodeSaslPlain } from '../src/auth/sasl-plain.js';
import { LoginThrottle } from '../src/auth/throttle.js';
import { Pop3Server, type ServerOptions } from '../src/server/server.js';
import { MemoryDropOpener } from './helpers/memory-drop.js';
import { Pop3TestClient } from './helpers/pop3-client.js';
import { BIN, startServer } from './helpers/popspool-server.js';
import { requireTool } from './helpers/tools.js';

const FAIL = '-ERR [AUTH] authentication failed';
const DELAY = '-ERR [LOGIN-DELAY] too many failed logins; try again later';

describe('authentication security', function () {
  this.timeout(60000);
  let dir: string;
  const servers: Pop3Server[] = [];
  const clients: Pop3TestClient[] = [];
  const opener = () => new MemoryDropOpener({ alice: ['Subject: a\n\nhi\n'], bob: [], sha512: [], sha256: [], blf: [], blfy: [], plain: [], bare: [], scrypt: [] });

  async function serve(over: Partial<ServerOptions> & Pick<ServerOptions, 'authenticator'>): Promise<{ port: number; opener: MemoryDropOpener }> {
    const o = opener();
    const s = new Pop3Server({ listen: ['127.0.0.1:0'], authFailureDelayMs: 0, dropOpener: o, ...over });
    servers.push(s);
    const [a] = await s.listen();
    return { port: a!.port, opener: o };
  }
  async function connect(port: number): Promise<Pop3TestClient> {
    const c = await Pop3TestClient.connect(port);
    clients.push(c);
    return c;
  }
  const delta = (pf: PasswdFile, before: Record<HashScheme, number>) =>
    Object.fromEntries(Object.entries(pf.hashChecks).filter(([k, v]) => v !== before[k as HashScheme]).map(([k, v]) => [k, v - before[k as HashScheme]]));

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-auth-'));
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of servers.splice(0)) await s.close();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('passwd-file schemes', () => {
    let pf: PasswdFile;
    before(async function () {
      requireTool(this, 'openssl', 'openssl');
      const sha512 = execFileSync('openssl', ['passwd', '-6', 'secret-512']).toString().trim();
      const sha256 = execFileSync('openssl', ['passwd', '-5', 'secret-256']).toString().trim();
      const bare = execFileSync('openssl', ['passwd', '-6', 'bare pw']).toString().trim();
      const blf = bcrypt.hashSync('secret-blf', 5);
      const lines = [
        `sha512:{SHA512-CRYPT}${sha512}:1000:1000::/home/sha512::`, // Dovecot's extra fields are ignored
        `sha256:{SHA256-CRYPT}${sha256}`,
        `blf:{BLF-CRYPT}${blf}`,
        `blfy:{BLF-CRYPT}${blf.replace(/^\$2b\$/, '$2y$')}`, // PHP/Dovecot's $2y$ spelling
        'plain:{PLAIN}plain pw',
        `bare:${bare}`, // default_pass_scheme = CRYPT
        `scrypt:${await hashPassword('secret-scrypt')}`,
      ];
      fs.writeFileSync(path.join(dir, 'schemes'), lines.join('\n') + '\n');
      pf = new PasswdFile(path.join(dir, 'schemes'));
      await pf.load();
    });

    const cases: [string, string, HashScheme][] = [
      ['sha512', 'secret-512', 'SHA512-CRYPT'],
      ['sha256', 'secret-256', 'SHA256-CRYPT'],
      ['blf', 'secret-blf', 'BLF-CRYPT'],
      ['blfy', 'secret-blf', 'BLF-CRYPT'],
      ['bare', 'bare pw', 'SHA512-CRYPT'],
      ['scrypt', 'secret-scrypt', 'SCRYPT'],
    ];
    for (const [user, pw, scheme] of cases) {
      it(`${user}: right password accepted, wrong refused, one ${scheme} computation each`, async () => {
        const ctx = { remoteAddress: '127.0.0.1', secure: true };
        let before = { ...pf.hashChecks };
        expect(await pf.verify(user, pw, ctx)).to.equal(true);
        expect(delta(pf, before)).to.deep.equal({ [scheme]: 1 });
        before = { ...pf.hashChecks };
        expect(await pf.verify(user, pw + 'x', ctx)).to.equal(false);
        expect(await pf.verify(user, pw.toUpperCase(), ctx)).to.equal(false);
        expect(delta(pf, before)).to.deep.equal({ [scheme]: 2 });
      });
    }

    it('{PLAIN} and unknown users cost one hash of the file\'s most common scheme', async () => {
      const ctx = { remoteAddress: '127.0.0.1', secure: true };
      const before = { ...pf.hashChecks };
      expect(await pf.verify('plain', 'plain pw', ctx)).to.equal(true);
      expect(await pf.verify('nobody-here', 'plain pw', ctx)).to.equal(false);
      expect(delta(pf, before)).to.deep.equal({ 'SHA512-CRYPT': 2 }); // sha512 + bare: the majority
    });

    it('logs in over POP3 with each scheme (USER/PASS and AUTH PLAIN)', async () => {
      const { port } = await serve({ authenticator: pf });
      for (const [user, pw] of cases) {
        const c = await connect(port);
        expect(await c.login(user, pw), user).to.match(/^\+OK /);
        c.close();
        const d = await connect(port);
        expect(await d.command(`AUTH PLAIN ${encodeSaslPlain(user, pw + '!')}`)).to.equal(FAIL);
        d.close();
      }
    });
  });

  describe('equal cost and one reply for unknown users and wrong passwords', () => {
    it('counts the same hash work and answers the same text, over the wire', async () => {
      const file = path.join(dir, 'users-equal');
      fs.writeFileSync(file, `alice:${await hashPassword('right')}\nbob:${await hashPassword('also right')}\n`);
      const pf = new PasswdFile(file);
      await pf.load();
      const { port, opener: o } = await serve({ authenticator: pf });
      const results: { reply: string; cost: Record<string, number> }[] = [];
      for (const [user, pw] of [['alice', 'wrong'], ['mallory', 'wrong'], ['mallory', 'right'], ['ALICE', 'right']]) {
        const before = { ...pf.hashChecks };
        const c = await connect(port);
        results.push({ reply: await c.login(user!, pw!), cost: delta(pf, before) });
      }
      for (const r of results) expect(r).to.deep.equal({ reply: FAIL, cost: { SCRYPT: 1 } });
      expect(o.opened).to.have.length(0);
    });

    it('no user name can reach the spool layer: traversal and odd names fail like wrong passwords', async () => {
      const pf = new PasswdFile(path.join(dir, 'users-trav'));
      fs.writeFileSync(pf.file, 'alice:{PLAIN}pw\n');
      await pf.load();
      const { port, opener: o } = await serve({ authenticator: pf, throttle: new LoginThrottle({ baseDelayMs: 0, maxDelayMs: 0, blockIpAfter: 0, blockUserAfter: 0, windowMs: 1 }) });
      const names = ['../alice', '../../etc/passwd', 'a/b', '.alice', 'alice/..', 'x..y', '%2e%2e', '-rf', 'alice\u00e9', 'a'.repeat(65)];
      for (const name of names) {
        const c = await connect(port);
        expect(await c.login(name, 'pw'), name).to.equal(FAIL);
        expect(await c.command(`AUTH PLAIN ${encodeSaslPlain(name, 'pw')}`), name).to.equal(FAIL);
        c.close();
      }
      expect(o.opened).to.have.length(0);
    });
  });

  describe('failed-login throttling', () => {
    it('per address: after N failures even the right password gets [LOGIN-DELAY], without a hash check', async () => {
      const file = path.join(dir, 'users-throttle');
      fs.writeFileSync(file, 'alice:{PLAIN}right\nbob:{PLAIN}bobpw\n');
      const pf = new PasswdFile(file);
      await pf.load();
      const throttle = new LoginThrottle({ baseDelayMs: 0, maxDelayMs: 0, blockIpAfter: 3, blockUserAfter: 0, windowMs: 60_000 });
      const { port } = await serve({ authenticator: pf, throttle });
      const c = await connect(port);
      expect(await c.login('alice', 'guess1')).to.equal(FAIL);
      expect(await c.login('nosuchuser', 'guess2')).to.equal(FAIL);
      expect(await c.login('bob', 'guess3')).to.equal(FAIL);
      await c.closed(); // maxAuthFailures: the connection is closed after the third
      const before = { ...pf.hashChecks };
      const d = await connect(port);
      expect(await d.login('alice', 'right')).to.equal(DELAY);
      expect(await d.command('AUTH PLAIN ' + encodeSaslPlain('bob', 'bobpw'))).to.equal(DELAY);
      expect(delta(pf, before)).to.deep.equal({});
    });

    it('per user: a name is refused after N failures from anywhere; unknown names alike; others unaffected', async () => {
      const file = path.join(dir, 'users-throttle2');
      fs.writeFileSync(file, 'alice:{PLAIN}right\nbob:{PLAIN}bobpw\n');
      const pf = new PasswdFile(file);
      await pf.load();
      const throttle = new LoginThrottle({ baseDelayMs: 0, maxDelayMs: 0, blockIpAfter: 0, blockUserAfter: 2, windowMs: 60_000 });
      const { port } = await serve({ authenticator: pf, throttle, maxAuthFailures: 10 });
      const c = await connect(port);
      for (const name of ['alice', 'ghost']) {
        expect(await c.login(name, 'x')).to.equal(FAIL);
        expect(await c.login(name, 'y')).to.equal(FAIL);
      }
      expect(await c.login('alice', 'right')).to.equal(DELAY);
      expect(await c.login('ghost', 'right')).to.equal(DELAY);
      expect(await c.login('bob', 'bobpw')).to.match(/^\+OK bob has 0 messages/);
    });
  });

  describe('APOP (RFC 1939 §7)', () => {
    let apop: ApopSecrets;
    let pf: PasswdFile;
    before(async () => {
      fs.writeFileSync(path.join(dir, 'apop'), '# user:secret\nalice:tanstaaf:with colon\n', { mode: 0o600 });
      apop = new ApopSecrets(path.join(dir, 'apop'));
      await apop.load();
      pf = new PasswdFile(path.join(dir, 'users-apop'));
      fs.writeFileSync(pf.file, 'alice:{PLAIN}pw\n');
      await pf.load();
    });
    const md5 = (s: string) => createHash('md5').update(s).digest('hex');

    it('greets with a fresh timestamp and accepts MD5(timestamp + secret); wrong digests and unknown users get one reply', async () => {
      const { port } = await serve({ authenticator: pf, apop, maxAuthFailures: 10 });
      const a = await connect(port);
      const b = await connect(port);
      const ts = /^\+OK popspool ready (<[^>]+>)$/.exec(a.greeting)?.[1];
      expect(ts, a.greeting).to.be.a('string');
      expect(b.greeting).to.not.equal(a.greeting);
      expect(await a.command(`APOP alice ${md5(ts + 'wrong')}`)).to.equal(FAIL);
      expect(await a.command(`APOP ghost ${md5(ts + 'tanstaaf:with colon')}`)).to.equal(FAIL);
      expect(await a.command('APOP alice nothex')).to.equal(FAIL);
      expect(await a.command('APOP alice')).to.equal('-ERR missing argument');
      expect(await a.command(`APOP alice ${md5(ts + 'tanstaaf:with colon').toUpperCase()}`)).to.match(/^\+OK alice has 1 messages/);
      expect(apop.digests).to.be.at.least(4);
    });

    it('Python poplib.apop() logs in', async function () {
      requireTool(this, 'python3', 'python3');
      const { port } = await serve({ authenticator: pf, apop });
      const script = 'import poplib,sys\np=poplib.POP3("127.0.0.1",int(sys.argv[1]),timeout=10)\nprint(p.apop("alice","tanstaaf:with colon").decode()); print(p.stat()); p.quit()';
      const out = await new Promise<string>((resolve, reject) => execFile('python3', ['-c', script, String(port)], (e, o, er) => (e ? reject(new Error(er)) : resolve(o))));
      expect(out).to.match(/^\+OK alice has 1 messages/);
    });

    it('off without a secrets file: no timestamp, APOP refused', async () => {
      const { port } = await serve({ authenticator: pf });
      const c = await connect(port);
      expect(c.greeting).to.equal('+OK popspool ready');
      expect(await c.command('APOP alice 0123456789abcdef0123456789abcdef')).to.equal('-ERR APOP not available');
    });
  });

  describe('popspool user add|passwd|del|list (child processes) against a running server', () => {
    const runUser = (args: string[], input?: string): Promise<{ code: number | null; out: string; err: string }> =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [BIN, 'user', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        child.stdin.end(input ?? '');
        child.once('exit', (code) => resolve({ code, out, err }));
      });

    it('the server picks up each change without a restart', async () => {
      const srv = await startServer({ spools: { alice: Buffer.from('From a@b Thu Jan  1 00:00:00 2026\nSubject: x\n\nhi\n') } });
      try {
        const users = path.join(srv.dir, 'users');
        const login = async (user: string, pw: string) => {
          const c = await connect(srv.port);
          const r = await c.login(user, pw);
          await c.command('QUIT');
          return r;
        };
        expect((await runUser(['add', 'dave', '--users', users], 'first pw\n')).code).to.equal(0);
        expect(await login('dave', 'first pw')).to.equal('+OK dave has 0 messages (0 octets)');
        expect(fs.readFileSync(users, 'utf8')).to.match(/^dave:\{SCRYPT\}N=/m);
        expect((fs.statSync(users).mode & 0o777).toString(8)).to.equal('600');
        const again = await runUser(['add', 'dave', '--users', users], 'x\n');
        expect(again.code).to.not.equal(0);
        expect(again.err).to.match(/already exists/);
        expect((await runUser(['passwd', 'dave', '--users', users], 'second pw\n')).code).to.equal(0);
        expect(await login('dave', 'first pw')).to.equal(FAIL);
        expect(await login('dave', 'second pw')).to.match(/^\+OK dave has 0 messages/);
        const list = await runUser(['list', '--users', users]);
        expect(list.out.trim().split('\n')).to.deep.equal(['alice', 'dave']);
        expect((await runUser(['add', '../evil', '--users', users], 'x\n')).code).to.equal(2);
        expect((await runUser(['del', 'dave', '--users', users])).code).to.equal(0);
        expect(await login('dave', 'second pw')).to.equal(FAIL);
        expect(await login('alice', 'pw-alice')).to.match(/^\+OK alice has 1 messages/);
      } finally {
        await srv.stop();
      }
    });

    it('throttle settings reach a child server: --auth-block-ip-after 2 refuses the third attempt', async () => {
      const srv = await startServer({ spools: { alice: Buffer.alloc(0) }, child: true, settings: { 'auth-block-ip-after': 2, 'auth-failure-delay': 0 } });
      try {
        const c = await connect(srv.port);
        expect(await c.login('alice', 'x')).to.equal(FAIL);
        expect(await c.login('alice', 'y')).to.equal(FAIL);
        expect(await c.login('alice', 'pw-alice')).to.equal(DELAY);
      } finally {
        await srv.stop();
      }
    });
  });
});

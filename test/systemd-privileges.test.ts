/**
 * Running as an operator would under systemd or as root: socket activation through systemd's own
 * systemd-socket-activate (Accept=no: listening fds 3… with LISTEN_FDNAMES; Accept=yes --inetd:
 * the connection on stdin/stdout), and dropping root to --user/--group after binding, checked in
 * /proc/PID/status of the child server.
 */
import { expect } from 'chai';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Pop3TestClient } from './helpers/pop3-client.js';
import { BIN, makeCertificate } from './helpers/popspool-server.js';
import { hasTool, requireTool } from './helpers/tools.js';

const SPOOL = 'From a@example.org Thu Jan  1 00:00:00 2026\nSubject: one\n\nhello\n\nFrom b@example.org Thu Jan  1 00:00:01 2026\nSubject: two\n\nworld\n';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function connectRetry(port: number, opts: { tls?: boolean } = {}): Promise<Pop3TestClient> {
  let last: unknown;
  for (let i = 0; i < 100; i++) {
    try {
      return await Pop3TestClient.connect(port, '127.0.0.1', opts);
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw last;
}

function collect(child: ChildProcess): { text: string } {
  const out = { text: '' };
  child.stderr?.on('data', (d) => (out.text += d));
  child.stdout?.on('data', (d) => (out.text += d));
  return out;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

describe('systemd socket activation and privilege drop', function () {
  this.timeout(60000);
  let dir: string;
  let common: string[];
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-sys-'));
    fs.mkdirSync(path.join(dir, 'mail'));
    fs.mkdirSync(path.join(dir, 'state'));
    fs.writeFileSync(path.join(dir, 'mail/alice'), SPOOL, { mode: 0o660 });
    fs.writeFileSync(path.join(dir, 'users'), 'alice:{PLAIN}pw-alice\n', { mode: 0o640 });
    common = ['--users', path.join(dir, 'users'), '--spool', path.join(dir, 'mail/%u'), '--state-dir', path.join(dir, 'state'), '--log-format', 'text', '--auth-failure-delay', '0', '--drain-timeout', '0'];
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('Accept=no: serves the inherited listening sockets (fd 3 plain, fd 4 named pop3s = implicit TLS)', async function () {
    requireTool(this, 'systemd-socket-activate', 'systemd');
    requireTool(this, 'openssl', 'openssl');
    const cert = makeCertificate(dir);
    const [p1, p2] = [await freePort(), await freePort()];
    const child = spawn('systemd-socket-activate', ['-l', `127.0.0.1:${p1}`, '-l', `127.0.0.1:${p2}`, '--fdname=pop3:pop3s',
      process.execPath, BIN, 'serve', ...common, '--tls-cert', cert.cert, '--tls-key', cert.key, '--listen', '127.0.0.1:1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = collect(child);
    try {
      // The first connection makes systemd-socket-activate exec popspool, which accepts it from the backlog.
      const c = await connectRetry(p1);
      expect(c.greeting).to.equal('+OK popspool ready');
      expect((await c.multi('CAPA')).lines).to.include('STLS'); // plain socket with TLS configured
      expect(await c.login('alice', 'pw-alice')).to.equal('+OK alice has 2 messages (46 octets)');
      await c.command('QUIT');
      const t = await connectRetry(p2, { tls: true });
      expect((await t.multi('CAPA')).lines).to.not.include('STLS'); // fd 4 is implicit TLS
      await t.command('QUIT');
      expect(log.text).to.match(/socket activation fds=3,4\(tls\)/);
      expect(log.text).to.not.match(/port=1\b/); // --listen was replaced by the inherited sockets
    } finally {
      await stop(child);
    }
  });

  it('Accept=yes --inetd: one process per connection on stdin/stdout, peer address from the socket', async function () {
    requireTool(this, 'systemd-socket-activate', 'systemd');
    const port = await freePort();
    const child = spawn('systemd-socket-activate', ['-l', `127.0.0.1:${port}`, '--accept', '--inetd', process.execPath, BIN, 'serve', '--stdio', ...common], { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = collect(child);
    try {
      const c = await connectRetry(port);
      expect(c.greeting).to.equal('+OK popspool ready');
      expect(await c.login('alice', 'pw-alice')).to.match(/^\+OK alice has 2 messages/);
      expect((await c.multi('RETR 2')).lines).to.deep.equal(['Subject: two', '', 'world']);
      expect(await c.command('QUIT')).to.match(/^\+OK popspool signing off/);
      for (let i = 0; i < 100 && !/session end/.test(log.text); i++) await new Promise((r) => setTimeout(r, 50));
      expect(log.text).to.match(/session end .*user=alice.*rip=127\.0\.0\.1/);
    } finally {
      await stop(child);
    }
  });

  it('--user nobody --group mail: the server runs as nobody:mail after binding, and still serves (as root only)', async function () {
    if (process.getuid?.() !== 0) {
      if (process.env.CI) throw new Error('CI runs as root; this test needs it');
      console.warn('\n    SKIPPED: privilege drop needs root\n');
      this.skip();
    }
    if (!hasTool('getent')) this.skip();
    // What an operator prepares: state-dir owned by the service user, the spool group-writable for mail.
    execFileSync('chown', ['-R', '65534:8', dir]); // the earlier tests ran as root in state-dir
    fs.chmodSync(path.join(dir, 'mail'), 0o2775);
    const child = spawn(process.execPath, [BIN, 'serve', ...common, '--listen', '127.0.0.1:0', '--user', 'nobody', '--group', 'mail'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const log = collect(child);
    try {
      for (let i = 0; i < 200 && !/listening .*port=\d+/.test(log.text); i++) await new Promise((r) => setTimeout(r, 50));
      const port = Number(/listening .*port=(\d+)/.exec(log.text)?.[1]);
      expect(port, log.text).to.be.above(0);
      expect(log.text.indexOf('dropped privileges')).to.be.within(0, log.text.indexOf('listening'));
      const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
      expect(/^Uid:\s+(.*)$/m.exec(status)![1]!.split(/\s+/)).to.deep.equal(['65534', '65534', '65534', '65534']);
      expect(/^Gid:\s+(.*)$/m.exec(status)![1]!.split(/\s+/)).to.deep.equal(['8', '8', '8', '8']);
      const groups = /^Groups:\s*(.*)$/m.exec(status)![1]!.trim().split(/\s+/);
      expect(groups).to.include('8').and.not.include('0');
      const c = await Pop3TestClient.connect(port);
      expect(await c.login('alice', 'pw-alice'), log.text).to.equal('+OK alice has 2 messages (46 octets)');
      expect(await c.command('DELE 1')).to.equal('+OK message 1 deleted');
      expect(await c.command('QUIT')).to.match(/^\+OK popspool signing off \(1 messages left\)/);
      await c.closed();
      expect(fs.readFileSync(path.join(dir, 'mail/alice'), 'utf8')).to.match(/^From b@example.org[^]*world\n$/);
    } finally {
      await stop(child);
    }
  });

  it('--user naming no such account is a start-up error (exit 2), before serving anyone', async function () {
    if (process.getuid?.() !== 0) this.skip();
    const child = spawn(process.execPath, [BIN, 'serve', ...common, '--listen', '127.0.0.1:0', '--user', 'no-such-user-popspool'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const log = collect(child);
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).to.equal(2);
    expect(log.text).to.match(/user\/group: cannot switch to no-such-user-popspool/);
  });
});

/**
 * inetd/stdio mode (`popspool serve --stdio`) as operators run it: on a pipe (local), with a TCP
 * socket as fd 0/1 the way inetd, xinetd and systemd Accept=yes hand it over (this test plays
 * inetd), and behind socat's TCP-LISTEN,fork EXEC (docs/operations.md), driven by Python poplib.
 * Checks that stdout carries only POP3 and every log line goes to stderr with the peer address.
 */
import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { requireTool } from './helpers/tools.js';
import { BIN, expectedMessages, FIXTURES } from './helpers/popspool-server.js';

const POPLIB = `
import poplib, sys, json
p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=20)
out = {'welcome': p.getwelcome().decode(), 'capa': sorted(p.capa().keys())}
if 'USER' in out['capa']:
    p.user('alice'); out['pass'] = p.pass_('pw-alice').decode()
    out['stat'] = list(p.stat())
    out['retr1'] = p.retr(1)[2]
out['quit'] = p.quit().decode()
print(json.dumps(out))
`;

function poplib(host: string, port: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) =>
    execFile('python3', ['-c', POPLIB, host, String(port)], { timeout: 30000 }, (e, out, errText) => (e ? reject(new Error(`${e.message}\n${errText}`)) : resolve(JSON.parse(out) as Record<string, unknown>))));
}

describe('stdio / inetd mode (serve --stdio)', function () {
  this.timeout(60000);
  let dir: string;
  let args: string[];
  const expected = expectedMessages(fs.readFileSync(path.join(FIXTURES, 'mail/alice')));
  const total = expected.reduce((a, m) => a + m.length, 0);

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-stdio-'));
    fs.mkdirSync(path.join(dir, 'mail'));
    fs.copyFileSync(path.join(FIXTURES, 'mail/alice'), path.join(dir, 'mail/alice'));
    fs.writeFileSync(path.join(dir, 'users'), 'alice:{PLAIN}pw-alice\n', { mode: 0o600 });
    args = [BIN, 'serve', '--stdio', '--users', path.join(dir, 'users'), '--spool', path.join(dir, 'mail/%u'), '--state-dir', path.join(dir, 'state'), '--log-format', 'text', '--auth-failure-delay', '0'];
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('on pipes: a local session; stdout is pure POP3, the summary line goes to stderr', async () => {
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.stdin.end('CAPA\r\nUSER alice\r\nPASS pw-alice\r\nSTAT\r\nLIST 2\r\nQUIT\r\n');
    const code = await new Promise((r) => child.once('exit', r));
    expect(code, err).to.equal(0);
    const lines = out.split('\r\n');
    expect(lines.pop()).to.equal(''); // every line CRLF-terminated, nothing after QUIT's reply
    const capaEnd = lines.indexOf('.');
    expect(lines[0]).to.match(/^\+OK popspool ready$/);
    expect(lines.slice(1, capaEnd)).to.include.members(['+OK Capability list follows', 'USER']); // a pipe is local: plaintext allowed
    expect(lines.slice(capaEnd + 1)).to.deep.equal([
      '+OK send PASS',
      `+OK alice has ${expected.length} messages (${total} octets)`,
      `+OK ${expected.length} ${total}`,
      `+OK 2 ${expected[1]!.length}`,
      `+OK popspool signing off (${expected.length} messages left)`,
    ]);
    expect(err).to.match(/session end .*user=alice/);
    expect(out).to.not.match(/session end|info:|warn:/);
  });

  it('on pipes, big messages (encoder slabs in play) read slowly: every byte as stored', async () => {
    // Several MB per message, dot lines on every few lines: the encoder's reusable output slabs
    // are in play, and a pipe (64 KiB) that the reader drains slowly keeps writes pending.
    const big = path.join(dir, 'mail/bigpipe');
    const msgs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const lines: string[] = [`Subject: big ${i}`, ''];
      for (let j = 0; j < 40000; j++) lines.push(j % 3 === 0 ? `.dot line ${i} ${j} ${'x'.repeat(j % 97)}` : `line ${i} ${j} ${'y'.repeat(j % 89)}`);
      msgs.push(`From sender@example.org Mon Jan  1 00:00:0${i} 2024\n${lines.join('\n')}\n\n`);
    }
    fs.writeFileSync(big, msgs.join(''));
    const want = expectedMessages(fs.readFileSync(big));
    fs.writeFileSync(path.join(dir, 'users'), 'alice:{PLAIN}pw-alice\nbigpipe:{PLAIN}pw-big\n', { mode: 0o600 });
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const parts: Buffer[] = [];
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d: Buffer) => {
      parts.push(d);
      child.stdout.pause();
      setTimeout(() => child.stdout.resume(), 1); // a slow reader: the pipe fills, writes stay pending
    });
    child.stdin.end('USER bigpipe\r\nPASS pw-big\r\nRETR 1\r\nRETR 2\r\nRETR 3\r\nQUIT\r\n');
    const code = await new Promise((r) => child.once('exit', r));
    expect(code, err).to.equal(0);
    const out = Buffer.concat(parts).toString('latin1');
    const replies = out.split(/\r\n\.\r\n/);
    expect(replies.length).to.equal(4);
    for (let i = 0; i < 3; i++) {
      const r = replies[i]!;
      const body = r.slice(r.indexOf(`+OK ${want[i]!.length} octets\r\n`) + `+OK ${want[i]!.length} octets\r\n`.length);
      const unstuffed = body.split('\r\n').map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n') + '\r\n';
      expect(unstuffed === want[i]!.toString('latin1'), `message ${i + 1} differs`).to.equal(true);
    }
  });

  it('with a TCP socket as fd 0/1 (this test plays inetd): the peer address is the client\'s', async function () {
    requireTool(this, 'python3', 'python3');
    const children: ChildProcess[] = [];
    let err = '';
    const inetd = net.createServer({ pauseOnConnect: true }, (sock) => {
      const child = spawn(process.execPath, args, { stdio: [sock, sock, 'pipe'] });
      child.stderr!.on('data', (d) => (err += d));
      children.push(child);
      sock.destroy(); // the child holds its own copy of the descriptor, as after inetd's fork
    });
    await new Promise<void>((r) => inetd.listen(0, '0.0.0.0', r));
    const port = (inetd.address() as net.AddressInfo).port;
    try {
      const local = await poplib('127.0.0.1', port);
      expect(local.pass).to.equal(`+OK alice has ${expected.length} messages (${total} octets)`);
      expect(local.retr1).to.equal(expected[0]!.length);
      await until(() => /session end .*rip=127\.0\.0\.1/.test(err));
      // From a non-loopback address the same program refuses cleartext logins: it sees the real peer.
      const ext = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
      if (ext) {
        const remote = await poplib(ext.address, port);
        expect(remote.capa).to.not.include('USER');
        await until(() => err.includes(`rip=${ext.address}`));
      }
    } finally {
      inetd.close();
      for (const c of children) if (c.exitCode === null) c.kill();
    }
  });

  it('behind socat TCP-LISTEN,fork EXEC (the inetd example in docs/operations.md), driven by poplib', async function () {
    requireTool(this, 'socat', 'socat');
    requireTool(this, 'python3', 'python3');
    const port = await freePort();
    const cmd = [process.execPath, ...args].map((a) => a.replace(/[' ]/g, '')).join(' ');
    const socat = spawn('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `EXEC:${cmd}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let stdout = '';
    socat.stderr.on('data', (d) => (err += d));
    socat.stdout.on('data', (d) => (stdout += d));
    try {
      await waitForPort(port);
      for (let i = 0; i < 2; i++) {
        const r = await poplib('127.0.0.1', port);
        expect(r.pass).to.equal(`+OK alice has ${expected.length} messages (${total} octets)`);
        expect(r.quit).to.match(/^\+OK popspool signing off/);
      }
      // socat hands each child a socketpair plus SOCAT_PEERADDR: the log still names the client
      await until(() => (err.match(/session end .*user=alice.*rip=127\.0\.0\.1/g) ?? []).length === 2);
      expect(stdout).to.equal('');
    } finally {
      socat.kill('SIGTERM');
      await new Promise((r) => socat.once('exit', r));
    }
  });
});

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
  expect(cond(), 'condition not reached').to.equal(true);
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        r(true);
      });
      c.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listening on ${port}`);
}

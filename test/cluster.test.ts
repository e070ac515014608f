/**
 * `serve --workers N` (node:cluster) as a child process: concurrent sessions spread over the
 * workers, one session per maildrop across workers ([IN-USE] from the session lock file, shown
 * to come from the *other* worker by finding which process holds each server-side socket in
 * /proc), SIGHUP passed on, a killed worker restarted, and SIGTERM stopping every process.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Pop3TestClient } from './helpers/pop3-client.js';
import { startOpsChild, type OpsChild } from './helpers/ops-child.js';
import { BIN } from './helpers/popspool-server.js';

const USERS = Array.from({ length: 20 }, (_, i) => `user${i}`);

/** Hex "ADDR:PORT" of /proc/net/tcp for 127.0.0.1:port. */
const procAddr = (port: number): string => `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;

/** Which of `pids` holds the server side of the connection from local port `clientPort` (Linux /proc). */
function ownerOf(serverPort: number, clientPort: number, pids: readonly number[]): number | undefined {
  const want = `${procAddr(serverPort)} ${procAddr(clientPort)}`;
  const row = fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').find((l) => l.trim().split(/\s+/).slice(1, 3).join(' ') === want);
  if (!row) return undefined;
  const inode = row.trim().split(/\s+/)[9];
  for (const pid of pids) {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) return pid;
      } catch {
        /* fd closed meanwhile */
      }
    }
  }
  return undefined;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('--workers (node:cluster)', function () {
  this.timeout(60000);

  it('start-up errors: bad config is exit 2 before any fork; a worker that cannot bind stops the cluster (exit 2, no restart loop)', async () => {
    const r1 = spawnSync(process.execPath, [BIN, 'serve', '--workers', '2', '--listen', '127.0.0.1:0', '--users', '/nonexistent/users'], { encoding: 'utf8', timeout: 20000 });
    expect(r1.status).to.equal(2);
    expect(r1.stderr).to.include('users file /nonexistent/users does not exist');
    expect(r1.stderr).not.to.include('worker started');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-cluster-'));
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    try {
      fs.writeFileSync(path.join(dir, 'users'), 'a:{PLAIN}x\n');
      const port = (blocker.address() as net.AddressInfo).port;
      const r2 = spawnSync(process.execPath, [BIN, 'serve', '--workers', '2', '--listen', `127.0.0.1:${port}`, '--users', path.join(dir, 'users'), '--state-dir', path.join(dir, 'state'), '--spool', path.join(dir, '%u'), '--log-format', 'text'], { encoding: 'utf8', timeout: 20000 });
      expect(r2.status).to.equal(2);
      expect(r2.stderr).to.match(/EADDRINUSE/);
      expect(r2.stderr).to.match(/worker failed to start; stopping/);
      expect(r2.stderr).not.to.match(/worker died; restarting/);
    } finally {
      blocker.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  let srv: OpsChild;
  let workers: number[];
  const clients: Pop3TestClient[] = [];

  before(async function () {
    if (!fs.existsSync('/proc/net/tcp')) return this.skip(); // Linux only: the socket owner check reads /proc
    srv = await startOpsChild({ spools: Object.fromEntries(USERS.map((u) => [u, 'mail/alice'])), args: ['--workers', '2'] });
    await srv.waitFor(/listening[^]*listening/); // both workers
    workers = [...srv.stderr().matchAll(/worker started worker=\d+ pid=(\d+)/g)].map((m) => Number(m[1]));
    expect(workers).to.have.length(2);
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });
  after(async () => {
    await srv?.stop();
  });

  async function connect(): Promise<Pop3TestClient> {
    const c = await Pop3TestClient.connect(srv.port);
    clients.push(c);
    return c;
  }

  it('serves 20 concurrent sessions, spread over both workers', async () => {
    const sessions = await Promise.all(USERS.map(async (u) => {
      const c = await connect();
      const reply = await c.login(u, `pw-${u}`);
      return { c, reply, stat: await c.command('STAT') };
    }));
    for (const s of sessions) {
      expect(s.reply).to.match(/^\+OK user\d+ has \d+ messages/);
      expect(s.stat).to.match(/^\+OK \d+ \d+$/);
    }
    // All 20 are open at once: see which worker holds each.
    const owners = sessions.map((s) => ownerOf(srv.port, s.c.socket.localPort!, workers));
    expect(owners.every((o) => o !== undefined), 'every connection held by a worker').to.equal(true);
    expect(new Set(owners).size, 'connections on both workers').to.equal(2);
    const quits = await Promise.all(sessions.map((s) => s.c.command('QUIT')));
    for (const q of quits) expect(q).to.match(/^\+OK/);
  });

  it('a second login of the same user gets [IN-USE], also on the other worker', async () => {
    const first = await connect();
    expect(await first.login('user0', 'pw-user0')).to.match(/^\+OK/);
    const holder = ownerOf(srv.port, first.socket.localPort!, workers);
    expect(holder).to.be.a('number');
    const seen = new Set<number>();
    // Round-robin: a few tries land on both workers; each must be refused the same way.
    for (let i = 0; i < 10 && seen.size < 2; i++) {
      const c = await connect();
      const owner = ownerOf(srv.port, c.socket.localPort!, workers);
      expect(await c.login('user0', 'pw-user0')).to.match(/^-ERR \[IN-USE\]/);
      if (owner !== undefined) seen.add(owner);
      c.close();
    }
    expect(seen.size, 'tries landed on both workers').to.equal(2);
    expect([...seen].some((p) => p !== holder)).to.equal(true);
    expect(await first.command('QUIT')).to.match(/^\+OK/);
    // Released: the next login succeeds wherever it lands.
    const again = await connect();
    expect(await again.login('user0', 'pw-user0')).to.match(/^\+OK/);
    expect(await again.command('QUIT')).to.match(/^\+OK/);
  });

  it('passes SIGHUP on to every worker', async () => {
    const from = srv.stderr().length;
    srv.proc.kill('SIGHUP');
    await srv.waitFor(/reload complete[^]*reload complete/, from);
  });

  it('restarts a worker that dies, and serves on', async () => {
    const from = srv.stderr().length;
    const victim = workers[1]!;
    process.kill(victim, 'SIGKILL');
    const m = await srv.waitFor(/worker started worker=1 pid=(\d+)/, from);
    expect(srv.stderr().slice(from)).to.match(/worker died; restarting worker=1 /);
    const replacement = Number(m[1]);
    expect(replacement).to.not.equal(victim);
    workers = [workers[0]!, replacement];
    await srv.waitFor(/listening/, from);
    for (let i = 0; i < 4; i++) {
      const c = await connect();
      expect(await c.login(`user${i}`, `pw-user${i}`)).to.match(/^\+OK/);
      expect(await c.command('QUIT')).to.match(/^\+OK/);
    }
  });

  it('SIGTERM stops the primary and every worker', async () => {
    srv.proc.kill('SIGTERM');
    expect(await srv.exited()).to.equal(0);
    expect(srv.stderr()).to.match(/all workers stopped/);
    for (const pid of workers) expect(alive(pid), `worker ${pid} still running`).to.equal(false);
  });
});

/**
 * Hostile clients against a real server over real spools: NUL and non-UTF-8 bytes, 1 MB lines,
 * commands in the wrong state, 10^5 pipelined commands, 10^5 pipelined RETRs never read, a
 * slowloris trickle, a client that vanishes mid-RETR. Each is answered or closed cleanly, a
 * witness session on another maildrop keeps working throughout, no spool byte changes, and the
 * server's memory stays under a generous bound measured here (never a timing assertion).
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { Pop3TestClient } from './helpers/pop3-client.js';
import { startServer, type TestServer } from './helpers/popspool-server.js';

const MB = 1024 * 1024;
/** A spool with one ~24 MB message: big enough that an unbounded server would show it in memory. */
function bigSpool(): Buffer {
  const line = 'x'.repeat(998) + '\n';
  return Buffer.concat([Buffer.from('From big@example.org Thu Jan  1 00:00:00 2026\nSubject: big\n\n'), Buffer.from(line.repeat(24 * 1024)), Buffer.from('\nFrom small@example.org Thu Jan  1 00:00:01 2026\nSubject: small\n\nhi\n')]);
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const mem = () => {
  global.gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Log in, waiting while the previous test's session on the same maildrop is still closing. */
async function loginWhenFree(port: number, user: string): Promise<Pop3TestClient> {
  for (let i = 0; ; i++) {
    const c = await Pop3TestClient.connect(port);
    const r = await c.login(user, `pw-${user}`);
    if (r.startsWith('+OK')) return c;
    c.close();
    if (!r.includes('[IN-USE]') || i > 50) throw new Error(`login ${user}: ${r}`);
    await sleep(100);
  }
}

describe('hostile input against a real server and real spools', function () {
  this.timeout(60000);
  let srv: TestServer;
  let witness: Pop3TestClient;
  const initial: Record<string, string> = {};
  const users = ['alice', 'carol', 'big'];

  before(async () => {
    srv = await startServer({
      spools: { alice: 'mail/alice', carol: 'mail/carol', big: bigSpool() },
      serverOptions: { preauthTimeoutMs: 1500, maxConnectionsPerIp: 50 },
    });
    for (const u of users) initial[u] = sha(fs.readFileSync(srv.spoolPath(u)));
    witness = await Pop3TestClient.connect(srv.port);
    expect(await witness.login('carol', 'pw-carol')).to.match(/^\+OK carol has/);
  });
  afterEach(async () => {
    // The other session is unaffected by whatever the test did.
    expect(await witness.command('NOOP')).to.equal('+OK');
    expect((await witness.multi('RETR 1')).status).to.match(/^\+OK \d+ octets/);
  });
  after(async () => {
    witness?.close();
    for (const u of users) expect(sha(fs.readFileSync(srv.spoolPath(u))), `${u} spool unchanged`).to.equal(initial[u]);
    await srv?.stop();
  });

  it('NUL bytes, non-UTF-8 bytes and wrong-state commands are each answered in order', async () => {
    const c = await Pop3TestClient.connect(srv.port);
    const lines = [
      Buffer.from('NOOP\0\r\n'), Buffer.from([0xff, 0xfe, 0x80, 0x0d, 0x0a]), Buffer.from('RETR 1\r\n'), Buffer.from('STAT\r\n'),
      Buffer.from('USER al\0ice\r\n'), Buffer.from('PASS pw-alice\r\n'), Buffer.from([0x55, 0x53, 0x45, 0x52, 0x20, 0xe9, 0x0d, 0x0a]), Buffer.from('PASS \xff\r\n', 'latin1'),
      Buffer.from('USER alice\r\n'), Buffer.from('PASS pw-alice\r\n'),
      Buffer.from('USER bob\r\n'), Buffer.from('STLS\r\n'), Buffer.from('RETR \x80\r\n', 'latin1'), Buffer.from('LIST 1\0\r\n'), Buffer.from('TOP 1 \xff\r\n', 'latin1'), Buffer.from('NOOP\r\n'),
    ];
    c.sendRaw(Buffer.concat(lines));
    const replies: string[] = [];
    for (let i = 0; i < lines.length; i++) replies.push(await c.readLine());
    expect(replies).to.deep.equal([
      '-ERR unknown command', '-ERR unknown command', '-ERR RETR not valid in this state', '-ERR STAT not valid in this state',
      '+OK send PASS', '-ERR [AUTH] authentication failed', '+OK send PASS', '-ERR [AUTH] authentication failed',
      '+OK send PASS', replies[9]!, // alice's greeting line, checked below
      '-ERR USER not valid in this state', '-ERR STLS not valid in this state', '-ERR invalid message number', '-ERR invalid message number', '-ERR invalid line count', '+OK',
    ]);
    expect(replies[9]).to.match(/^\+OK alice has \d+ messages/);
    c.close();
  });

  it('a 1 MB line gets "-ERR line too long" and the session goes on; 8 MB without a newline is bounded', async () => {
    const c = await Pop3TestClient.connect(srv.port);
    c.sendRaw('NOOP ' + 'A'.repeat(MB) + '\r\nUSER alice\r\n');
    expect(await c.readLine()).to.equal('-ERR line too long');
    expect(await c.readLine()).to.equal('+OK send PASS');
    const m0 = mem();
    const chunk = Buffer.alloc(64 * 1024, 0x42);
    for (let i = 0; i < 128; i++) if (!c.socket.write(chunk)) await new Promise((r) => c.socket.once('drain', r));
    await sleep(100);
    expect(mem() - m0).to.be.below(64 * MB); // nothing of the endless line is kept
    c.sendRaw('\r\nPASS pw-alice\r\n');
    expect(await c.readLine()).to.equal('-ERR line too long');
    expect(await c.readLine()).to.match(/^(\+OK alice has|-ERR \[IN-USE\])/); // answered either way
    c.close();
  });

  it('10^5 pipelined commands are all answered, in order', async () => {
    const c = await loginWhenFree(srv.port, 'alice');
    const batch = 'STAT\r\nLIST 1\r\nUIDL 1\r\nNOOP\r\n';
    const n = 25_000;
    c.sendRaw(batch.repeat(n));
    let stat = 0;
    let list = 0;
    let uidl = 0;
    let noop = 0;
    for (let i = 0; i < 4 * n; i++) {
      const l = await c.readLine();
      if (i % 4 === 0 && /^\+OK \d+ \d+$/.test(l)) stat++;
      else if (i % 4 === 1 && /^\+OK 1 \d+$/.test(l)) list++;
      else if (i % 4 === 2 && /^\+OK 1 \S+$/.test(l)) uidl++;
      else if (i % 4 === 3 && l === '+OK') noop++;
    }
    expect([stat, list, uidl, noop]).to.deep.equal([n, n, n, n]);
    c.transcript.length = 0;
    expect(await c.command('QUIT')).to.match(/^\+OK popspool signing off/); // untouched: the spool is not written
  });

  it('10^5 pipelined RETRs of a 24 MB message never read: memory stays bounded; closing mid-RETR releases the maildrop', async () => {
    const c = await loginWhenFree(srv.port, 'big');
    const m0 = mem();
    c.socket.pause(); // never read
    c.socket.write('RETR 1\r\n'.repeat(100_000));
    // Let the server run until its output is stuck on the full socket.
    let last = -1;
    for (let stable = 0; stable < 5; ) {
      await sleep(100);
      const now = process.memoryUsage().arrayBuffers;
      stable = Math.abs(now - last) < MB ? stable + 1 : 0;
      last = now;
    }
    const grown = mem() - m0;
    expect(grown).to.be.below(150 * MB); // unbounded: 10^5 × 24 MB
    c.close(); // mid-RETR
    const d = await loginWhenFree(srv.port, 'big'); // the session lock was released
    expect(await d.command('STAT')).to.match(/^\+OK 2 /);
    d.close();
  });

  it('a client that closes while its RETR streams leaves nothing held', async () => {
    const c = await loginWhenFree(srv.port, 'big');
    c.send('RETR 1');
    expect(await c.readLine()).to.match(/^\+OK \d+ octets$/);
    await c.readLineBytes(); // some of the body is on its way
    c.close();
    await sleep(50);
    const d = await loginWhenFree(srv.port, 'big');
    expect((await d.multi('RETR 2')).lines).to.deep.equal(['Subject: small', '', 'hi']);
    d.close();
  });

  it('a slowloris client trickling bytes before login is cut off at the pre-auth deadline', async () => {
    const sock = net.connect(srv.port, '127.0.0.1');
    let got = '';
    let closed = false;
    sock.on('data', (d) => (got += d));
    sock.on('close', () => (closed = true));
    sock.on('error', () => undefined);
    const text = 'USER ' + 'a'.repeat(200); // never a complete line
    // One byte every 100 ms: every byte would reset an idle timer; the deadline does not move.
    for (let i = 0; !closed && i < 100; i++) {
      sock.write(text[i % text.length]!);
      await sleep(100);
    }
    expect(closed, 'connection still open after 10 s').to.equal(true);
    expect(got).to.match(/^\+OK popspool ready\r\n/);
    expect(got).to.match(/-ERR autologout; idle for too long\r\n$/);
  });
});

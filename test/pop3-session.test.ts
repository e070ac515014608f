/**
 * POP3 sessions end to end at the protocol level: a real listener on 127.0.0.1:0, the raw test
 * client (and Python poplib), the in-memory Drop double. Real spools are covered elsewhere.
 */
import { expect } from 'chai';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Duplex, PassThrough, Readable } from 'node:stream';
import { encodeSaslPlain } from '../src/auth/sasl-plain.js';
import { PasswdFile } from '../src/auth/passwd-file.js';
import { PopspoolError } from '../src/errors.js';
import { serverEvents, type SessionEndEvent } from '../src/obs/events.js';
import { Pop3Server, type ServerOptions } from '../src/server/server.js';
import { MemoryDropOpener, TableAuthenticator, wireSize, type MemoryMessage } from './helpers/memory-drop.js';
import { Pop3TestClient } from './helpers/pop3-client.js';
import { hasTool, requireTool } from './helpers/tools.js';

const M1 = 'From: a@example.org\r\nSubject: one\r\n\r\nHello\r\n.dotline\r\n..two dots\r\n';
const M2 = 'Subject: two\n\nline1\nline2\nline3\n';
const M3 = 'Subject: three\n\nno final newline';
const USERS = { alice: 'wonderland', bob: 'builder', carol: 'crlf-rocks' };

interface Running {
  server: Pop3Server;
  port: number;
  opener: MemoryDropOpener;
}

async function start(boxes: Record<string, readonly MemoryMessage[]> = { alice: [M1, M2, M3], bob: [] }, over: Partial<ServerOptions> = {}): Promise<Running> {
  const opener = new MemoryDropOpener(boxes);
  const server = new Pop3Server({ listen: ['127.0.0.1:0'], authFailureDelayMs: 0, dropOpener: opener, authenticator: new TableAuthenticator(USERS), ...over });
  const [addr] = await server.listen();
  return { server, port: addr!.port, opener };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/**
 * The client pipelines 100,000 "RETR 1" and never reads its replies. Waits until the server is
 * blocked on the full socket (the drop's reads stop increasing); returns how much this
 * process's memory grew meanwhile.
 */
async function floodWithRetr(c: Pop3TestClient, drop: { readonly reads: number }): Promise<number> {
  const used = (): number => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  global.gc?.();
  const before = used();
  c.socket.pause();
  c.socket.write(Buffer.from('RETR 1\r\n'.repeat(100_000)));
  let last = -1;
  for (let stable = 0; stable < 5; ) {
    await new Promise((res) => setTimeout(res, 100));
    stable = drop.reads === last ? stable + 1 : 0;
    last = drop.reads;
  }
  return used() - before;
}

describe('POP3 session (memory drop)', function () {
  this.timeout(20000);
  let r: Running;
  let clients: Pop3TestClient[] = [];
  const connect = async (port = r.port, opts: { tls?: boolean } = {}): Promise<Pop3TestClient> => {
    const c = await Pop3TestClient.connect(port, '127.0.0.1', opts);
    clients.push(c);
    return c;
  };
  beforeEach(async () => {
    r = await start();
  });
  afterEach(async () => {
    for (const c of clients) c.close();
    clients = [];
    await r.server.close();
  });

  it('greets, lists capabilities, logs in and answers STAT/LIST/UIDL', async () => {
    const c = await connect();
    expect(c.greeting).to.match(/^\+OK popspool ready/);
    expect(c.greeting).to.not.match(/</); // no APOP timestamp: curl would switch to APOP
    const capa = await c.multi('CAPA');
    expect(capa.lines).to.include.members(['TOP', 'UIDL', 'USER', 'SASL PLAIN', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING', 'IMPLEMENTATION popspool']);
    expect(capa.lines).to.not.include('STLS');
    const sizes = [M1, M2, M3].map((m) => wireSize(Buffer.from(m)));
    const total = sizes.reduce((a, b) => a + b);
    expect(await c.login('alice', 'wonderland')).to.equal(`+OK alice has 3 messages (${total} octets)`);
    expect(await c.command('STAT')).to.equal(`+OK 3 ${total}`);
    const list = await c.multi('LIST');
    expect(list.status).to.equal(`+OK 3 messages (${total} octets)`);
    expect(list.lines).to.deep.equal(sizes.map((s, i) => `${i + 1} ${s}`));
    expect(await c.command('LIST 2')).to.equal(`+OK 2 ${sizes[1]}`);
    const uidl = await c.multi('UIDL');
    expect(uidl.lines).to.have.length(3);
    expect(await c.command('UIDL 3')).to.equal(`+OK ${uidl.lines[2]}`);
    const capa2 = await c.multi('CAPA');
    expect(capa2.lines).to.include.members(['TOP', 'UIDL']); // mutt re-checks after login
    expect(capa2.lines).to.not.include('USER');
    expect(await c.command('NOOP')).to.equal('+OK');
  });

  it('RETR sends CRLF, dot-stuffed, exactly the LIST size; TOP sends headers and n lines', async () => {
    const c = await connect();
    await c.login('alice', 'wonderland');
    for (const [i, m] of [M1, M2, M3].entries()) {
      const res = await c.multi(`RETR ${i + 1}`);
      const size = wireSize(Buffer.from(m));
      expect(res.status).to.equal(`+OK ${size} octets`);
      expect(res.raw.length).to.equal(size);
    }
    const m1 = await c.multi('RETR 1');
    expect(m1.lines).to.deep.equal(['From: a@example.org', 'Subject: one', '', 'Hello', '.dotline', '..two dots']);
    expect((await c.multi('RETR 3')).raw.toString()).to.equal('Subject: three\r\n\r\nno final newline\r\n');
    expect((await c.multi('TOP 2 1')).lines).to.deep.equal(['Subject: two', '', 'line1']);
    expect((await c.multi('TOP 2 0')).lines).to.deep.equal(['Subject: two', '']);
    expect((await c.multi('TOP 2 99999999999999999999')).lines).to.have.length(5);
    expect(await c.command('TOP 2')).to.equal('-ERR missing argument');
    expect(await c.command('TOP 2 x')).to.equal('-ERR invalid line count');
    expect(await c.command('QUIT')).to.equal('+OK popspool signing off (3 messages left)');
    await c.closed();
    const drop = r.opener.opened[0]!;
    expect([...drop.updates[0]!.seen].sort()).to.deep.equal([0, 1, 2]);
    expect(drop.updates[0]!.deleted.size).to.equal(0);
  });

  it('DELE, RSET and QUIT pass the right deleted set to update(); precise errors', async () => {
    const c = await connect();
    await c.login('alice', 'wonderland');
    expect(await c.command('DELE 1')).to.equal('+OK message 1 deleted');
    expect(await c.command('DELE 1')).to.equal('-ERR message 1 already deleted');
    expect(await c.command('RETR 1')).to.equal('-ERR message 1 already deleted');
    expect(await c.command('LIST 1')).to.equal('-ERR message 1 already deleted');
    expect(await c.command('RETR 0')).to.equal('-ERR no such message');
    expect(await c.command('RETR 4')).to.equal('-ERR no such message');
    expect(await c.command('RETR 99999999999999999999999')).to.equal('-ERR no such message');
    expect(await c.command('RETR x')).to.equal('-ERR invalid message number');
    expect(await c.command('RETR -1')).to.equal('-ERR invalid message number');
    expect(await c.command('RETR 1 2')).to.equal('-ERR noise after message number');
    expect(await c.command('DELE')).to.equal('-ERR missing argument');
    expect((await c.multi('LIST')).lines.map((l) => l.split(' ')[0])).to.deep.equal(['2', '3']);
    expect(await c.command('RSET')).to.match(/^\+OK maildrop has 3 messages/);
    expect(await c.command('DELE 2')).to.equal('+OK message 2 deleted');
    expect(await c.command('DELE 3')).to.equal('+OK message 3 deleted');
    expect(await c.command('STAT')).to.equal(`+OK 1 ${wireSize(Buffer.from(M1))}`);
    expect(await c.command('QUIT')).to.equal('+OK popspool signing off (1 messages left)');
    await c.closed();
    const drop = r.opener.opened[0]!;
    expect(drop.updates).to.have.length(1);
    expect([...drop.updates[0]!.deleted].sort()).to.deep.equal([1, 2]);
    expect(drop.closes).to.equal(0);
  });

  it('refuses commands in the wrong state and wrong credentials with one text', async () => {
    const c = await connect();
    expect(await c.command('STAT')).to.equal('-ERR STAT not valid in this state');
    expect(await c.command('RETR 1')).to.equal('-ERR RETR not valid in this state');
    expect(await c.command('PASS x')).to.equal('-ERR USER first');
    expect(await c.login('alice', 'wrong')).to.equal('-ERR [AUTH] authentication failed');
    expect(await c.login('nobody', 'wrong')).to.equal('-ERR [AUTH] authentication failed');
    expect(await c.login('alice', 'wonderland')).to.match(/^\+OK/);
    expect(await c.command('USER bob')).to.equal('-ERR USER not valid in this state');
    expect(await c.command('STLS')).to.equal('-ERR STLS not valid in this state');
  });

  it('hangs up after too many failed logins', async () => {
    const c = await connect();
    for (let i = 0; i < 2; i++) expect(await c.login('alice', 'x')).to.equal('-ERR [AUTH] authentication failed');
    expect(await c.login('alice', 'x')).to.equal('-ERR [AUTH] authentication failed');
    await c.closed();
  });

  it('a second session on the same maildrop gets [IN-USE] and stays in AUTHORIZATION', async () => {
    const a = await connect();
    await a.login('alice', 'wonderland');
    const b = await connect();
    expect(await b.login('alice', 'wonderland')).to.equal('-ERR [IN-USE] Maildrop lock busy! Is another session active?');
    expect(await b.login('bob', 'builder')).to.equal('+OK bob has 0 messages (0 octets)');
    expect(await b.command('STAT')).to.equal('+OK 0 0');
  });

  it('maps open errors to RESP-CODES and a throwing backend to [SYS/TEMP] internal error', async () => {
    r.opener.openErrors.set('carol', new PopspoolError('SYS_PERM', 'spool /var/mail/carol is not an mbox'));
    const c = await connect();
    expect(await c.login('carol', 'crlf-rocks')).to.equal('-ERR [SYS/PERM] spool /var/mail/carol is not an mbox');
    r.opener.openErrors.set('carol', new TypeError('oops'));
    expect(await c.login('carol', 'crlf-rocks')).to.equal('-ERR [SYS/TEMP] internal error');
    r.opener.openErrors.set('carol', new PopspoolError('SYS_TEMP', 'disk on fire'));
    expect(await c.login('carol', 'crlf-rocks')).to.equal('-ERR [SYS/TEMP] disk on fire');
    expect(await c.command('NOOP')).to.equal('-ERR NOOP not valid in this state');
  });

  it('answers an over-long line and survives; ten bad commands disconnect', async () => {
    const c = await connect();
    c.sendRaw('NOOP ' + 'x'.repeat(10000) + '\r\n');
    expect(await c.readLine()).to.equal('-ERR line too long');
    expect(await c.command('USER alice')).to.match(/^\+OK/);
    for (let i = 1; i < 10; i++) expect(await c.command('BOGUS')).to.equal('-ERR unknown command');
    expect(await c.command('BOGUS')).to.match(/^-ERR unknown command; too many bad commands/);
    await c.closed();
    expect(c.isEnded).to.equal(true);
  });

  it('answers pipelined commands in order', async () => {
    const c = await connect();
    c.sendRaw('USER alice\r\nPASS wonderland\r\nSTAT\r\nLIST\r\nRETR 2\r\nBOGUS\r\nDELE 1\r\nUIDL 1\r\nNOOP\r\nQUIT\r\n');
    expect(await c.readLine()).to.match(/^\+OK/);
    expect(await c.readLine()).to.match(/^\+OK alice has 3/);
    expect(await c.readLine()).to.match(/^\+OK 3 /);
    expect((await c.readMulti()).lines).to.have.length(3);
    expect((await c.readMulti()).lines).to.deep.equal(['Subject: two', '', 'line1', 'line2', 'line3']);
    expect(await c.readLine()).to.equal('-ERR unknown command');
    expect(await c.readLine()).to.equal('+OK message 1 deleted');
    expect(await c.readLine()).to.equal('-ERR message 1 already deleted');
    expect(await c.readLine()).to.equal('+OK');
    expect(await c.readLine()).to.equal('+OK popspool signing off (2 messages left)');
    await c.closed();
  });

  it('AUTH PLAIN with and without initial response, cancel, and malformed responses', async () => {
    const c = await connect();
    expect((await c.multi('AUTH')).lines).to.deep.equal(['PLAIN']);
    expect(await c.command('AUTH CRAM-MD5')).to.equal('-ERR unsupported authentication mechanism');
    expect(await c.command('AUTH PLAIN')).to.equal('+ ');
    expect(await c.command('*')).to.equal('-ERR authentication cancelled');
    expect(await c.command('AUTH PLAIN !!!')).to.equal('-ERR invalid SASL PLAIN response');
    expect(await c.command(`AUTH PLAIN ${encodeSaslPlain('alice', 'nope')}`)).to.equal('-ERR [AUTH] authentication failed');
    expect(await c.command(`AUTH PLAIN ${encodeSaslPlain('alice', 'wonderland', 'bob')}`)).to.equal('-ERR [AUTH] authentication failed');
    // The malformed response and the foreign authzid count as failed logins: the third ends the connection.
    await c.closed();
    const c2 = await connect();
    expect(await c2.command('AUTH PLAIN')).to.equal('+ ');
    expect(await c2.command(encodeSaslPlain('alice', 'wonderland'))).to.match(/^\+OK alice has 3 messages/);
    const d = await connect();
    expect(await d.command(`AUTH plain ${encodeSaslPlain('bob', 'builder', 'bob')}`)).to.equal('+OK bob has 0 messages (0 octets)');
  });

  it('a session ending without QUIT calls close(), never update()', async () => {
    const c = await connect();
    await c.login('alice', 'wonderland');
    await c.command('DELE 1');
    c.close();
    await until(() => r.opener.opened[0]!.closes === 1, 'drop.close');
    expect(r.opener.opened[0]!.updates).to.have.length(0);
  });

  it('a failed update answers [SYS/TEMP] some deleted messages not removed', async () => {
    await r.server.close();
    r = await start({ alice: [M1] });
    const c = await connect();
    await c.login('alice', 'wonderland');
    const drop = r.opener.opened[0]!;
    (drop as unknown as { opts: { updateError: Error } }).opts.updateError = new PopspoolError('SYS_TEMP', 'spool rewritten');
    await c.command('DELE 1');
    expect(await c.command('QUIT')).to.equal('-ERR [SYS/TEMP] some deleted messages not removed');
    await c.closed();
    expect(drop.updates).to.have.length(1);
  });

  it('a client pipelining many RETRs without reading cannot grow server memory; closing mid-RETR is survived', async () => {
    await r.server.close();
    const MB = 1024 * 1024;
    const big = { size: 8 * MB, stream: () => Readable.from((function* () { for (let i = 0; i < 128; i++) yield Buffer.alloc(64 * 1024, i % 2 ? 0x61 : 0x0a); })()) };
    r = await start({ alice: [big] });
    const c = await connect();
    await c.login('alice', 'wonderland');
    const drop = r.opener.opened[0]!;
    const grown = await floodWithRetr(c, drop);
    expect(drop.reads).to.be.at.most(10); // an unbounded server would have served hundreds of 8 MB messages
    expect(grown).to.be.below(200 * MB);
    c.close(); // mid-RETR
    await until(() => drop.closes === 1, 'drop.close after disconnect');
    const d = await connect();
    expect(await d.login('alice', 'wonderland')).to.match(/^\+OK alice has 1 messages/);
  });

  it('a client pipelining many RETRs of small messages without reading cannot grow server memory either', async () => {
    await r.server.close();
    const KB = 1024;
    const msg = `Subject: small\r\n\r\n${'y'.repeat(78)}\r\n`.repeat(250); // 20 KB, answered whole
    const opener = new MemoryDropOpener({ alice: [msg] }, { whole: true });
    r = await start({ alice: [msg] }, { dropOpener: opener });
    const c = await connect();
    await c.login('alice', 'wonderland');
    const drop = opener.opened[0]!;
    const grown = await floodWithRetr(c, drop); // 2 GB of replies if all were served
    // The socket buffers on both ends hold a few MB; then the server waits for 'drain'.
    expect(drop.reads).to.be.below(2000);
    expect(grown).to.be.below(64 * KB * KB);
    c.close();
    await until(() => drop.closes === 1, 'drop.close after disconnect');
  });

  it('pipelined RETRs of many different small messages, held back by a full socket, arrive byte for byte (a reply buffer is reused only once written)', async () => {
    await r.server.close();
    // 300 distinct messages of 1–20 KB, some lines dot-stuffed: each is answered whole, in one
    // reused frame (wire-simd.ts); frames waiting in the socket's buffer must not be reused.
    const msgs = Array.from({ length: 300 }, (_, i) =>
      `Subject: ${i}\r\n\r\n` +
      Array.from({ length: 20 + ((i * 37) % 200) }, (_, k) => `${k % 9 === 0 ? '.' : ''}line ${k} of message ${i} ${'abcdefghij'.repeat(k % 7)}`).join('\r\n') +
      '\r\n');
    const opener = new MemoryDropOpener({ alice: msgs }, { whole: true });
    r = await start({ alice: msgs }, { dropOpener: opener });
    const c = await connect();
    await c.login('alice', 'wonderland');
    const drop = opener.opened[0]!;
    c.socket.pause();
    c.sendRaw(msgs.map((_, i) => `RETR ${i + 1}\r\n`).join('').repeat(3));
    let last = -1;
    for (let stable = 0; stable < 3; ) {
      await new Promise((res) => setTimeout(res, 100));
      stable = drop.reads === last ? stable + 1 : 0;
      last = drop.reads;
    }
    expect(drop.reads, 'the server waited for the client').to.be.below(900);
    c.socket.resume();
    for (let j = 0; j < 900; j++) {
      const reply = await c.readMulti();
      expect(reply.status, `reply ${j + 1}`).to.equal(`+OK ${wireSize(Buffer.from(msgs[j % 300]!, "latin1"))} octets`);
      expect(reply.lines.join('\r\n') + '\r\n', `reply ${j + 1}`).to.equal(msgs[j % 300]);
    }
  });

  it('a client flooding commands without reading replies is paused: the rest of its input stays on its side', async () => {
    await r.server.close();
    const MB = 1024 * 1024;
    const msg = `Subject: small\r\n\r\n${'y'.repeat(78)}\r\n`.repeat(250); // 20 KB, answered whole
    const opener = new MemoryDropOpener({ alice: [msg] }, { whole: true });
    r = await start({ alice: [msg] }, { dropOpener: opener });
    const c = await connect();
    await c.login('alice', 'wonderland');
    let bytesIn = -1;
    const onEnd = (e: SessionEndEvent): void => {
      if (e.user === 'alice') bytesIn = e.bytesIn;
    };
    serverEvents.on('session-end', onEnd);
    try {
      c.socket.pause();
      c.socket.write(Buffer.from('RETR 1\r\n'.repeat(4 * MB))); // 32 MB of commands, 80 GB of replies
      await new Promise((res) => setTimeout(res, 1500));
      c.close();
      await until(() => bytesIn >= 0, 'the session to end');
    } finally {
      serverEvents.off('session-end', onEnd);
    }
    // Replies fill the socket buffers after a few hundred RETRs; the server then reads at most
    // INPUT_HIGH (64 KB) of commands beyond those and leaves the rest in the kernel's buffers
    // and the client's. A server that kept reading would have taken megabytes in that time.
    expect(opener.opened[0]!.reads).to.be.below(2000);
    expect(bytesIn).to.be.below(MB);
  });

  it('limits connections per IP with a [SYS/TEMP] greeting', async () => {
    await r.server.close();
    r = await start(undefined, { maxConnectionsPerIp: 2 });
    await connect();
    await connect();
    const third = await connect();
    expect(third.greeting).to.equal('-ERR [SYS/TEMP] too many connections');
    await third.closed();
    clients[0]!.close();
    await until(() => r.server.connectionCount === 1, 'a slot to free up');
    const fourth = await connect();
    expect(fourth.greeting).to.match(/^\+OK/);
  });

  it('close() waits for a session in UPDATE and ends idle sessions', async () => {
    const idle = await connect();
    const c = await connect();
    await c.login('alice', 'wonderland');
    const drop = r.opener.opened[0]!;
    let finishUpdate!: () => void;
    const gate = new Promise<void>((res) => (finishUpdate = res));
    const realUpdate = drop.update;
    drop.update = async (req) => {
      await gate;
      return realUpdate(req);
    };
    c.send('QUIT');
    await until(() => drop.updates.length === 0 && r.server.connectionCount === 2, 'QUIT sent');
    await new Promise((res) => setTimeout(res, 50));
    let closed = false;
    const closing = r.server.close().then(() => (closed = true));
    expect(await idle.readLine()).to.equal('-ERR [SYS/TEMP] server shutting down');
    await new Promise((res) => setTimeout(res, 100));
    expect(closed).to.equal(false);
    finishUpdate();
    expect(await c.readLine()).to.equal('+OK popspool signing off (3 messages left)');
    await closing;
    expect(drop.updates).to.have.length(1);
  });

  it('times out idle clients before login', async () => {
    await r.server.close();
    r = await start(undefined, { preauthTimeoutMs: 200 });
    const c = await connect();
    expect(await c.readLine()).to.equal('-ERR autologout; idle for too long');
    await c.closed();
  });

  it('a command that arrives while replies wait for drain is answered (no lost wake-up)', async () => {
    let tapOpen = true;
    const held: Array<() => void> = [];
    const out: Buffer[] = [];
    // A peer that takes bytes only while its tap is open; 16 bytes fill its buffer.
    const d = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk);
        if (tapOpen) setImmediate(cb);
        else held.push(cb);
      },
      writableHighWaterMark: 16,
    });
    const done = r.server.serveStream(d);
    const text = (): string => Buffer.concat(out).toString();
    d.push('USER alice\r\nPASS wonderland\r\n');
    await until(() => text().includes('alice has 3 messages'), 'the login');
    tapOpen = false;
    d.push('NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n'); // 20 bytes of replies in one write: it waits for 'drain'
    await new Promise((res) => setTimeout(res, 100));
    d.push('STAT\r\n'); // comes while the session waits
    await new Promise((res) => setTimeout(res, 100));
    tapOpen = true;
    for (const cb of held.splice(0)) cb();
    await until(() => /\+OK 3 \d+\r\n/.test(text()), 'the STAT reply');
    d.push('QUIT\r\n');
    d.push(null);
    await done;
    expect(text()).to.contain('signing off');
  });

  it('serveStream() serves a plain duplex (stdio/inetd mode)', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const done = r.server.serveStream(Duplex.from({ readable: input, writable: output }));
    const chunks: Buffer[] = [];
    output.on('data', (d: Buffer) => chunks.push(d));
    input.end('USER alice\r\nPASS wonderland\r\nSTAT\r\nQUIT\r\n');
    await done;
    const text = Buffer.concat(chunks).toString();
    expect(text.split('\r\n').slice(0, 4).map((l) => l.slice(0, 3))).to.deep.equal(['+OK', '+OK', '+OK', '+OK']);
    expect(text).to.contain('+OK alice has 3 messages');
    expect(text).to.contain('signing off');
  });

  it('logs in against the demo users file (real PasswdFile, scrypt)', async () => {
    await r.server.close();
    const pf = new PasswdFile('spool-fixtures/users');
    await pf.load();
    r = await start(undefined, { authenticator: pf });
    const c = await connect();
    expect(await c.login('alice', 'wonderland')).to.match(/^\+OK alice has 3/);
    const d = await connect();
    expect(await d.login('bob', 'wonderland')).to.equal('-ERR [AUTH] authentication failed');
  });

  it('refuses cleartext auth from a non-loopback address, offers nothing to misuse', async function () {
    const ext = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
    if (!ext) this.skip();
    await r.server.close();
    r = await start(undefined, { listen: [`${ext!.address}:0`] });
    const x = await Pop3TestClient.connect(r.port, ext!.address);
    clients.push(x);
    const capa = await x.multi('CAPA');
    expect(capa.lines).to.not.include('USER');
    expect(await x.command('USER alice')).to.equal('-ERR [AUTH] plaintext authentication disallowed on unencrypted connections');
    expect(await x.command(`AUTH PLAIN ${encodeSaslPlain('alice', 'wonderland')}`)).to.match(/^-ERR \[AUTH\] plaintext/);
  });

  it('Python poplib: user/pass/stat/list/retr/uidl/dele/quit', async function () {
    requireTool(this, 'python3', 'python3');
    const script = `
import poplib, sys, json
p = poplib.POP3('127.0.0.1', int(sys.argv[1]), timeout=10)
out = {'welcome': p.getwelcome().decode()}
out['capa'] = sorted(p.capa().keys())
p.user('alice'); p.pass_('wonderland')
out['stat'] = list(p.stat())
out['list'] = [l.decode() for l in p.list()[1]]
out['retr'] = [[l.decode() for l in p.retr(i)[1]] for i in (1, 2, 3)]
out['octets'] = [p.retr(i)[2] for i in (1, 2, 3)]
out['uidl'] = [l.decode() for l in p.uidl()[1]]
out['top'] = [l.decode() for l in p.top(2, 1)[1]]
p.dele(2)
out['quit'] = p.quit().decode()
print(json.dumps(out))
`;
    const res = await new Promise<string>((resolve, reject) => {
      const py = spawn('python3', ['-c', script, String(r.port)]);
      let out = '';
      let errText = '';
      py.stdout.on('data', (d) => (out += d));
      py.stderr.on('data', (d) => (errText += d));
      py.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`python3 exited ${code}: ${errText}`))));
    });
    const o = JSON.parse(res) as Record<string, unknown>;
    const sizes = [M1, M2, M3].map((m) => wireSize(Buffer.from(m)));
    expect(o.capa).to.include.members(['TOP', 'UIDL', 'USER']);
    expect(o.stat).to.deep.equal([3, sizes.reduce((a, b) => a + b)]);
    expect(o.list).to.deep.equal(sizes.map((s, i) => `${i + 1} ${s}`));
    expect((o.retr as string[][])[0]).to.deep.equal(['From: a@example.org', 'Subject: one', '', 'Hello', '.dotline', '..two dots']);
    expect((o.retr as string[][])[2]).to.deep.equal(['Subject: three', '', 'no final newline']);
    // poplib's octet count includes the un-stuffed lines + CRLF each: equals the LIST size
    expect(o.octets).to.deep.equal(sizes);
    expect(o.uidl).to.have.length(3);
    expect(o.top).to.deep.equal(['Subject: two', '', 'line1']);
    expect(o.quit).to.equal('+OK popspool signing off (2 messages left)');
    expect([...r.opener.opened[0]!.updates[0]!.deleted]).to.deep.equal([1]);
  });
});

describe('POP3 over TLS (STLS and implicit TLS)', function () {
  this.timeout(20000);
  let dir: string;
  let creds: { key: Buffer; cert: Buffer };
  let r: Running;
  const clients: Pop3TestClient[] = [];
  before(function () {
    requireTool(this, 'openssl', 'openssl');
    dir = mkdtempSync(join(tmpdir(), 'popspool-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    creds = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));
  beforeEach(async () => {
    r = await start(undefined, { tls: creds, listen: ['127.0.0.1:0'], listenTls: ['127.0.0.1:0'] });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await r.server.close();
  });

  it('STLS upgrades, discards pipelined plaintext, and CAPA then omits STLS', async () => {
    const c = await Pop3TestClient.connect(r.port);
    clients.push(c);
    expect((await c.multi('CAPA')).lines).to.include('STLS');
    c.sendRaw('STLS\r\nUSER injected\r\n');
    expect(await c.readLine()).to.equal('+OK Begin TLS negotiation');
    await c.startTls();
    expect((await c.multi('CAPA')).lines).to.not.include('STLS');
    expect(await c.command('PASS wonderland')).to.equal('-ERR USER first'); // "USER injected" was dropped
    expect(await c.command('STLS')).to.equal('-ERR TLS already active');
    expect(await c.login('alice', 'wonderland')).to.match(/^\+OK alice has 3/);
    expect((await c.multi('RETR 1')).lines).to.include('.dotline');
  });

  it('implicit TLS listener serves a session', async () => {
    const server2 = new Pop3Server({ listen: [], listenTls: ['127.0.0.1:0'], tls: creds, authFailureDelayMs: 0, dropOpener: r.opener, authenticator: new TableAuthenticator(USERS) });
    const [a] = await server2.listen();
    try {
      const c = await Pop3TestClient.connect(a!.port, '127.0.0.1', { tls: true });
      clients.push(c);
      expect((await c.multi('CAPA')).lines).to.not.include('STLS');
      expect(await c.login('bob', 'builder')).to.equal('+OK bob has 0 messages (0 octets)');
      server2.setSecureContext(creds); // reload keeps serving
      const d = await Pop3TestClient.connect(a!.port, '127.0.0.1', { tls: true });
      clients.push(d);
      expect(d.greeting).to.match(/^\+OK/);
    } finally {
      for (const c of clients.splice(0)) c.close();
      await server2.close();
    }
  });

  it('Python poplib stls() then login', async function () {
    if (!hasTool('python3')) this.skip();
    const script = `
import poplib, ssl, sys
p = poplib.POP3('127.0.0.1', int(sys.argv[1]), timeout=10)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
p.stls(context=ctx)
p.user('alice'); print(p.pass_('wonderland').decode()); print(p.stat()); p.quit()
`;
    // Async: the server runs in this process, a synchronous child would block it.
    const { stdout: out } = await promisify(execFile)('python3', ['-c', script, String(r.port)], { encoding: 'utf8' });
    expect(out).to.match(/^\+OK alice has 3 messages/);
  });
});

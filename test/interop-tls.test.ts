/**
 * Interoperability with real clients over plain, STLS and implicit-TLS connections: fetchmail in
 * UIDL keep mode across two runs (the second must fetch nothing), openssl s_client -starttls pop3,
 * curl pop3s:// and --ssl-reqd. The certificate is self-signed, made by the openssl CLI.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { requireTool } from './helpers/tools.js';
import { expectedMessages, FIXTURES, startServer, type TestServer } from './helpers/popspool-server.js';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a client asynchronously (the server lives in this process) and capture everything. */
function run(cmd: string, args: string[], opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 30000, maxBuffer: 1 << 26 }, (e, stdout, stderr) => {
      const code = e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

describe('real clients over TLS and STLS: fetchmail, openssl s_client, curl', function () {
  this.timeout(90000);
  let srv: TestServer;
  let spoolBefore: Buffer;
  const expected = expectedMessages(fs.readFileSync(path.join(FIXTURES, 'mail/alice')));

  before(async function () {
    requireTool(this, 'openssl', 'openssl');
    srv = await startServer({ spools: { alice: 'mail/alice' }, tls: true });
    spoolBefore = fs.readFileSync(srv.spoolPath('alice'));
  });
  after(async () => {
    if (!srv) return;
    // keep mode and read-only sessions: the spool is byte-identical afterwards
    expect(fs.readFileSync(srv.spoolPath('alice')).equals(spoolBefore)).to.equal(true);
    await srv.stop();
  });

  /** Two fetchmail runs in UIDL keep mode; returns both transcripts (-v) and exit codes. */
  async function fetchTwice(tag: string, tlsOptions: string): Promise<[Ran, Ran, string]> {
    const home = fs.mkdtempSync(path.join(srv.dir, `fetchmail-${tag}-`));
    const out = path.join(home, 'out');
    const rc = path.join(home, 'fetchmailrc');
    fs.writeFileSync(rc, `poll 127.0.0.1 service ${srv.port} protocol pop3 uidl user "alice" password "pw-alice" keep ${tlsOptions} mda "cat >> ${out}"\n`, { mode: 0o600 });
    const env = { HOME: home, FETCHMAILHOME: home };
    const args = ['-f', rc, '-i', path.join(home, 'ids'), '--nosyslog', '-v'];
    const first = await run('fetchmail', args, { env });
    const second = await run('fetchmail', args, { env });
    return [first, second, fs.existsSync(out) ? fs.readFileSync(out, 'latin1') : ''];
  }

  const fetchCommands = (log: string) => log.split('\n').filter((l) => /POP3> (RETR|TOP) \d+/.test(l)).length;

  it('fetchmail, plain, UIDL keep mode: the first run fetches every message, the second nothing', async function () {
    requireTool(this, 'fetchmail', 'fetchmail');
    // fetchmail 6.4 tries STLS by default; sslproto "" makes this run plain on purpose.
    const [first, second, out] = await fetchTwice('plain', 'sslproto ""');
    expect(first.code, first.stdout + first.stderr).to.equal(0);
    expect(fetchCommands(first.stdout + first.stderr)).to.equal(expected.length);
    for (const m of expected) expect(out).to.contain(/^Subject: .*$/m.exec(m.toString('latin1'))?.[0] ?? '');
    // fetchmail exit status 1: "There was no mail awaiting retrieval"
    expect(second.code, second.stdout + second.stderr).to.equal(1);
    expect(fetchCommands(second.stdout + second.stderr)).to.equal(0);
    expect(second.stdout + second.stderr).to.match(/POP3> UIDL/);
  });

  it('fetchmail with STLS (sslproto tls1.2+, no sslcertck): same, and the session really was upgraded', async function () {
    requireTool(this, 'fetchmail', 'fetchmail');
    const [first, second] = await fetchTwice('stls', 'sslproto "tls1.2+" no sslcertck');
    const log1 = first.stdout + first.stderr;
    expect(first.code, log1).to.equal(0);
    expect(log1).to.match(/POP3> STLS/);
    expect(log1).to.match(/POP3< \+OK Begin TLS negotiation/);
    // RFC 2595: fetchmail re-sends CAPA after TLS, and STLS is no longer offered then
    const afterTls = log1.slice(log1.indexOf('Begin TLS negotiation'));
    expect(afterTls).to.match(/POP3> CAPA/);
    expect(afterTls.slice(0, afterTls.indexOf('POP3> USER'))).to.not.match(/POP3< STLS/);
    expect(fetchCommands(log1)).to.equal(expected.length);
    expect(second.code, second.stdout + second.stderr).to.equal(1);
    expect(fetchCommands(second.stdout + second.stderr)).to.equal(0);
  });

  it('openssl s_client -starttls pop3 logs in and reads STAT', async function () {
    requireTool(this, 'openssl', 'openssl');
    const r = await run('openssl', ['s_client', '-quiet', '-crlf', '-ign_eof', '-starttls', 'pop3', '-connect', `127.0.0.1:${srv.port}`], {
      input: 'CAPA\nUSER alice\nPASS pw-alice\nSTAT\nQUIT\n',
    });
    const total = expected.reduce((a, m) => a + m.length, 0);
    expect(r.stdout).to.contain(`+OK alice has ${expected.length} messages (${total} octets)`);
    expect(r.stdout).to.contain(`+OK ${expected.length} ${total}`);
    expect(r.stdout).to.contain('+OK popspool signing off');
    expect(r.stdout).to.not.match(/^STLS\r?$/m); // CAPA after the upgrade
  });

  it('curl pop3s:// (implicit TLS, -k) lists and retrieves byte-identically', async function () {
    requireTool(this, 'curl', 'curl');
    const list = await run('curl', ['-sS', '-k', `pop3s://alice:pw-alice@127.0.0.1:${srv.tlsPort}/`]);
    expect(list.code, list.stderr).to.equal(0);
    expect(list.stdout.trim().split(/\r?\n/).map((l) => Number(l.split(' ')[1]))).to.deep.equal(expected.map((m) => m.length));
    const one = await new Promise<Buffer>((resolve, reject) =>
      execFile('curl', ['-sS', '-k', `pop3s://alice:pw-alice@127.0.0.1:${srv.tlsPort}/3`], { encoding: 'buffer', maxBuffer: 1 << 26 }, (e, out) => (e ? reject(e) : resolve(out))));
    expect(one.equals(expected[2]!)).to.equal(true);
  });

  it('curl --ssl-reqd upgrades with STLS; without TLS on the server it refuses to go on', async function () {
    requireTool(this, 'curl', 'curl');
    const ok = await run('curl', ['-sS', '-k', '--ssl-reqd', '-v', `pop3://alice:pw-alice@127.0.0.1:${srv.port}/`]);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stderr).to.match(/> STLS/);
    expect(ok.stderr).to.match(/SSL connection using|TLS/);
    const plain = await startServer({ spools: { alice: 'mail/alice' } });
    try {
      const refused = await run('curl', ['-sS', '-k', '--ssl-reqd', `pop3://alice:pw-alice@127.0.0.1:${plain.port}/`]);
      expect(refused.code).to.not.equal(0); // 64: "Requested SSL level failed"
    } finally {
      await plain.stop();
    }
  });
});

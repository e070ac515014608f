/**
 * The message filter (retr-filter) end to end, with real programs (sed, false, sleep, sh) on a
 * real server: LIST sizes equal the octets RETR sends, TOP works on the filtered message, every
 * kind of filter failure answers -ERR [SYS/TEMP], and the spool is byte-identical afterwards.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pop3TestClient } from './helpers/pop3-client.js';
import { FIXTURES, startServer, type TestServer } from './helpers/popspool-server.js';

const SED = ['sed', '-e', 's/^Subject:/Subject: [filtered]/'];
const ALICE = fs.readFileSync(path.join(FIXTURES, 'mail', 'alice'));
/** alice's spool plus one 4 KB message, bigger than the 1024-byte cap below. */
const BIG = Buffer.concat([ALICE, Buffer.from(`\nFrom big@example.org Mon Jan  1 00:00:00 2024\nSubject: big\n\n${'0123456789abcdef\n'.repeat(256)}`)]);

async function login(port: number, user = 'alice'): Promise<Pop3TestClient> {
  const c = await Pop3TestClient.connect(port);
  expect(await c.login(user, `pw-${user}`)).to.match(/^\+OK/);
  return c;
}

/** "n size" lines of LIST → sizes by message number. */
async function listSizes(c: Pop3TestClient): Promise<number[]> {
  const r = await c.multi('LIST');
  expect(r.status).to.match(/^\+OK/);
  return r.lines.map((l) => Number(l.split(' ')[1]));
}

describe('retr-filter (message filter)', function () {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('sed: LIST size == RETR octets for every message, TOP and STAT agree, cache reused, spool untouched', async () => {
    server = await startServer({ spools: { alice: ALICE }, settings: { 'retr-filter': SED } });
    const c = await login(server.port);
    const sizes = await listSizes(c);
    expect(sizes).to.have.length(21);
    const stat = await c.command('STAT');
    expect(stat).to.equal(`+OK 21 ${sizes.reduce((a, b) => a + b, 0)}`);
    let tagged = 0;
    for (let i = 1; i <= sizes.length; i++) {
      const r = await c.multi(`RETR ${i}`);
      expect(r.status).to.equal(`+OK ${sizes[i - 1]} octets`);
      expect(r.raw.length, `message ${i}`).to.equal(sizes[i - 1]);
      if (r.lines.some((l) => l.startsWith('Subject: [filtered]'))) tagged++;
      expect(r.lines.some((l) => /^Subject:(?! \[filtered\])/.test(l)), `message ${i} has an unfiltered Subject`).to.equal(false);
    }
    expect(tagged).to.be.greaterThan(15);
    const top = await c.multi('TOP 1 0');
    expect(top.status).to.match(/^\+OK/);
    expect(top.lines.filter((l) => l.startsWith('Subject: [filtered]'))).to.have.length(1);
    expect(top.lines[top.lines.length - 1]).to.equal(''); // headers, the empty line, no body
    expect(await c.command('QUIT')).to.match(/^\+OK/);
    expect(fs.readFileSync(server.spoolPath('alice')).equals(ALICE)).to.equal(true);

    // The sizes were cached on disk, keyed per message; the next session reports the same.
    const cacheFile = path.join(server.dir, 'state', 'filter-cache', 'alice');
    const doc = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { sizes: Record<string, number> };
    expect(Object.keys(doc.sizes)).to.have.length(21);
    const c2 = await login(server.port);
    expect(await listSizes(c2)).to.deep.equal(sizes);
    // DELE + QUIT goes through the wrapped drop's update.
    expect(await c2.command('DELE 1')).to.match(/^\+OK/);
    expect(await c2.command('QUIT')).to.match(/^\+OK/);
    const c3 = await login(server.port);
    expect(await listSizes(c3)).to.deep.equal(sizes.slice(1));
    await c3.command('QUIT');
  });

  it('given as one string on the command line of a real `popspool serve` (split at spaces)', async () => {
    server = await startServer({ spools: { alice: ALICE }, child: true, settings: { 'retr-filter': 'sed -e s/^Subject:/Subject:[x]/' } });
    const c = await login(server.port);
    const sizes = await listSizes(c);
    const r = await c.multi('RETR 2');
    expect(r.raw.length).to.equal(sizes[1]);
    expect(r.lines.some((l) => l.startsWith('Subject:[x]'))).to.equal(true);
    await c.command('QUIT');
  });

  const failing: [string, Record<string, unknown>][] = [
    ['a failing filter (false)', { 'retr-filter': ['false'] }],
    ['a slow filter (sleep 5, 1 s timeout)', { 'retr-filter': ['sleep', '5'], 'retr-filter-timeout': '1' }],
    ['an over-cap filter (output > retr-filter-max-bytes)', { 'retr-filter': ['cat'], 'retr-filter-max-bytes': '1024' }],
    ['a missing program', { 'retr-filter': ['/nonexistent/filter'] }],
  ];
  for (const [name, settings] of failing) {
    it(`${name}: login answers -ERR [SYS/TEMP] and nothing changes`, async () => {
      server = await startServer({ spools: { alice: BIG }, settings });
      const c = await Pop3TestClient.connect(server.port);
      expect(await c.login('alice', 'pw-alice')).to.match(/^-ERR \[SYS\/TEMP\] message filter/);
      expect(fs.readFileSync(server.spoolPath('alice')).equals(BIG)).to.equal(true);
      // The session lock was released: a fixed filter would let the user in (here: still failing).
      const again = await Pop3TestClient.connect(server.port);
      expect(await again.login('alice', 'pw-alice')).to.match(/^-ERR \[SYS\/TEMP\]/);
    });
  }

  it('a filter failing at RETR time: -ERR [SYS/TEMP], the session ends, the DELE is not applied', async () => {
    const flag = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-flag-')), 'fail-now');
    server = await startServer({
      spools: { alice: ALICE },
      settings: { 'retr-filter': ['/bin/sh', '-c', `test -e ${flag} && exit 3; exec sed -e 's/^Subject:/Subject: [f]/'`] },
    });
    const c = await login(server.port);
    expect(await c.command('DELE 2')).to.match(/^\+OK/);
    fs.writeFileSync(flag, '');
    expect(await c.command('RETR 1')).to.match(/^-ERR \[SYS\/TEMP\] message filter failed \(exit status 3\)/);
    await c.closed();
    expect(fs.readFileSync(server.spoolPath('alice')).equals(ALICE)).to.equal(true);
  });

  it('a filter whose output changed size since LIST: -ERR [SYS/TEMP], never a mismatched message', async () => {
    const flag = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-flag-')), 'longer');
    server = await startServer({
      spools: { alice: ALICE },
      settings: { 'retr-filter': ['/bin/sh', '-c', `cat; test -e ${flag} && echo extra line; exit 0`] },
    });
    const c = await login(server.port);
    const sizes = await listSizes(c);
    const first = await c.multi('RETR 1');
    expect(first.raw.length).to.equal(sizes[0]);
    fs.writeFileSync(flag, '');
    expect(await c.command('TOP 3 1')).to.match(/^-ERR \[SYS\/TEMP\] message filter output differs/);
    await c.closed();
    expect(fs.readFileSync(server.spoolPath('alice')).equals(ALICE)).to.equal(true);
  });
});

/**
 * `popspool check` and `popspool cache` as an operator runs them: exit statuses on the
 * malformed fixtures, every anomaly kind, a stale dotlock and leftover recovery files, a busy
 * spool (an fcntl write lock held by another process), and that nothing is ever modified.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { cli, FIXTURES } from './helpers/popspool-server.js';
import { requireTool } from './helpers/tools.js';



const fx = (p: string) => path.join(FIXTURES, p);

describe('popspool check / cache (integration)', function () {
  this.timeout(30000);
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-check-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const table: [string, number, RegExp][] = [
    ['mail/alice', 0, /21 messages, 14,409 bytes .* — clean/],
    ['mail/bob', 0, /0 messages, 0 bytes .* — clean/],
    ['mail/mallory', 1, /not servable\n {2}anomaly: garbage before the first From_ line/],
    ['mail/carol', 1, /anomaly: CRLF line endings \(all 34 lines\)/],
    ['cases/mixed-endings.mbox', 1, /anomaly: mixed line endings: 5 of 12 lines end in CRLF/],
    ['cases/no-final-newline.mbox', 1, /anomaly: the last line has no newline/],
    ['cases/from-in-body.mbox', 1, /anomaly: 1 "From " line\(s\) after an empty line that do not look like From_ lines[^]*line 7 \(offset 167\): "From here on/],
    ['cases/strict-vs-loose.mbox', 1, /7 messages[^]*line 6 \(offset 73\): "From here on, body text in strict mode\."/],
    ['cases/nul-bytes.mbox', 0, /clean\n {2}note: 4 NUL byte/],
    ['cases/duplicates.mbox', 0, /4 messages/],
  ];
  for (const [fixture, code, re] of table) {
    it(`${fixture}: exit ${code}`, async () => {
      const before = fs.readFileSync(fx(fixture));
      const mtime = fs.statSync(fx(fixture)).mtimeMs;
      const r = await cli('check', fx(fixture));
      expect(r.code, r.stdout + r.stderr).to.equal(code);
      expect(r.stdout).to.match(re);
      expect(fs.readFileSync(fx(fixture)).equals(before)).to.equal(true);
      expect(fs.statSync(fx(fixture)).mtimeMs).to.equal(mtime);
    });
  }

  it('counts with the strict rule when asked, and exits with the worst status of several spools', async () => {
    const strict = await cli('check', '--strict-from', fx('cases/strict-vs-loose.mbox'));
    expect(strict.stdout).to.match(/6 messages/);
    expect((await cli('check', fx('mail/alice'), fx('mail/carol'))).code).to.equal(1);
    const worst = await cli('check', fx('mail/alice'), path.join(dir, 'missing'), fx('mail/carol'));
    expect(worst.code).to.equal(2);
    expect(worst.stdout).to.match(/missing: UNREADABLE\n {2}anomaly: cannot open: ENOENT/);
    const json = JSON.parse((await cli('check', '--json', fx('mail/mallory'))).stdout) as { status: string; findings: { kind: string }[] }[];
    expect(json[0]!.status).to.equal('anomalies');
    expect(json[0]!.findings.map((f) => f.kind)).to.deep.equal(['garbage']);
  });

  it('reports a stale dotlock (dead pid) and leftover journal, image and temp drop in --state-dir', async () => {
    const spool = path.join(dir, 'alice');
    fs.copyFileSync(fx('mail/alice'), spool);
    const dead = spawn('true');
    await new Promise((r) => dead.once('exit', r));
    fs.writeFileSync(`${spool}.lock`, `${dead.pid}:${os.hostname()}\n`);
    const state = path.join(dir, 'state');
    fs.mkdirSync(path.join(state, 'journal'), { recursive: true });
    fs.mkdirSync(path.join(state, 'drops'));
    fs.writeFileSync(path.join(state, 'journal', 'alice.journal'), 'x');
    fs.writeFileSync(path.join(state, 'journal', 'alice.123.abc.image'), 'x');
    fs.writeFileSync(path.join(state, 'drops', 'alice.pop'), 'x');
    const r = await cli('check', '--state-dir', state, spool);
    expect(r.code).to.equal(1);
    expect(r.stdout).to.match(new RegExp(`anomaly: stale dotlock .*alice\\.lock: pid ${dead.pid} is not running`));
    expect(r.stdout).to.match(/anomaly: leftover journal .*alice\.journal/);
    expect(r.stdout).to.match(/anomaly: leftover copy-mode temp drop .*alice\.pop/);
    expect(r.stdout).to.match(/anomaly: leftover update image .*alice\.123\.abc\.image/);
    expect(fs.existsSync(`${spool}.lock`)).to.equal(true); // reported, never removed
    // A dotlock held by a live process is only a note.
    fs.writeFileSync(`${spool}.lock`, `${process.pid}:${os.hostname()}\n`);
    const live = await cli('check', spool);
    expect(live.code).to.equal(0);
    expect(live.stdout).to.match(new RegExp(`note: dotlock .* held by running pid ${process.pid}`));
  });

  it('waits for a writer: exit 2 when another process holds the fcntl write lock past --lock-timeout', async function () {
    requireTool(this, 'python3', 'python3');
    const spool = path.join(dir, 'alice');
    fs.copyFileSync(fx('mail/alice'), spool);
    const holder = spawn('python3', ['-c', 'import fcntl,sys,time\nf=open(sys.argv[1],"r+")\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint("locked",flush=True)\ntime.sleep(30)', spool], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise((r) => holder.stdout.once('data', r));
      const r = await cli('check', '--lock-timeout', '1', spool);
      expect(r.code).to.equal(2);
      expect(r.stdout).to.match(/UNREADABLE\n {2}anomaly: busy: a writer held the spool lock for 1 s/);
    } finally {
      holder.kill();
    }
    expect((await cli('check', spool)).code).to.equal(0);
  });

  it('cache show reports a miss, rebuild writes it, show then reports a hit', async () => {
    fs.mkdirSync(path.join(dir, 'mail'));
    fs.copyFileSync(fx('mail/alice'), path.join(dir, 'mail', 'alice'));
    const flags = ['--state-dir', path.join(dir, 'state'), '--spool', path.join(dir, 'mail', '%u')];
    const miss = await cli('cache', 'show', 'alice', ...flags);
    expect(miss.stdout).to.match(/cache file: .*alice\.cache \(absent\)[^]*lookup: miss — no cache file/);
    const rebuilt = await cli('cache', 'rebuild', 'alice', ...flags);
    expect(rebuilt.code, rebuilt.stderr).to.equal(0);
    expect(rebuilt.stdout).to.match(/rebuilt .*alice\.cache: 21 messages, 14409 bytes scanned/);
    const hit = await cli('cache', 'show', 'alice', ...flags);
    expect(hit.stdout).to.match(/lookup: hit — 21 messages, 13770 octets/);
    const delivery = 'From x@y Mon Jan  1 00:00:00 2024\nSubject: new\n\nhi\n\n'; // the fixture ends with its separator
    fs.appendFileSync(path.join(dir, 'mail', 'alice'), delivery);
    expect((await cli('cache', 'show', 'alice', ...flags)).stdout).to.match(new RegExp(`lookup: tail — 21 cached messages up to offset 14409; the next login scans only the ${delivery.length} appended bytes`));
  });
});

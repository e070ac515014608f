/**
 * Migrating from Qpopper: a spool Qpopper stamped with X-UIDL headers lists exactly those UIDLs
 * (in server and copy mode), so clients that "leave mail on server" download nothing again; and
 * a real `popspool serve --qpopper-config FILE` takes the mapped options and logs one warning
 * per ignored option.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pop3TestClient } from './helpers/pop3-client.js';
import { BIN, startServer, type TestServer } from './helpers/popspool-server.js';

/** What Qpopper 4 writes (base-80-style ids right after the From_ line) and a pre-3.0 hex id. */
const QPOPPER_UIDLS = ['3?~"!Pf9!!XqA"!k>R!!', 'ZV#"!;Gk!!(M`"!oZ^!!', 'a3f1c2e4b5d6978812340abcdef56789'];
const SPOOL = Buffer.from(
  [
    `From alice@example.org Tue Mar  5 10:00:00 2024\nX-UIDL: ${QPOPPER_UIDLS[0]}\nStatus: RO\nReceived: from mx by host; Tue, 5 Mar 2024 10:00:00 +0000\nSubject: first\n\nread already\n`,
    `From bob@example.org Tue Mar  5 11:00:00 2024\nX-UIDL: ${QPOPPER_UIDLS[1]}\nReceived: from mx by host; Tue, 5 Mar 2024 11:00:00 +0000\nSubject: second\n\n.a dot line\n`,
    `From carol@example.org Tue Mar  5 12:00:00 2024\nReceived: from mx by host; Tue, 5 Mar 2024 12:00:00 +0000\nX-UIDL: ${QPOPPER_UIDLS[2]}\nSubject: third (old-style uid)\n\nbody\n`,
    `From dave@example.org Tue Mar  5 13:00:00 2024\nReceived: from mx by host; Tue, 5 Mar 2024 13:00:00 +0000\nSubject: arrived after the migration\n\nno X-UIDL\n`,
  ].join('\n'),
);

async function uidls(port: number): Promise<string[]> {
  const c = await Pop3TestClient.connect(port);
  expect(await c.login('alice', 'pw-alice')).to.match(/^\+OK/);
  const r = await c.multi('UIDL');
  expect(r.status).to.match(/^\+OK/);
  expect(await c.command('QUIT')).to.match(/^\+OK/);
  return r.lines.map((l) => l.slice(l.indexOf(' ') + 1));
}

describe('migrating from Qpopper', function () {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  for (const mode of ['server', 'copy'] as const) {
    it(`${mode} mode: UIDL lists the X-UIDL values Qpopper wrote; the spool is left as it was`, async () => {
      server = await startServer({ spools: { alice: SPOOL }, settings: { mode } });
      const got = await uidls(server.port);
      expect(got.slice(0, 3)).to.deep.equal(QPOPPER_UIDLS);
      expect(got[3]).to.match(/^[\x21-\x7e]{1,70}$/);
      expect(QPOPPER_UIDLS).not.to.include(got[3]);
      expect(await uidls(server.port)).to.deep.equal(got); // stable across sessions
      expect(fs.readFileSync(server.spoolPath('alice')).equals(SPOOL)).to.equal(true);
    });
  }

  it('serve --qpopper-config: mapped options apply, each ignored option is one warning line', async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-qpopper-it-'));
    let child: ChildProcess | undefined;
    try {
      fs.mkdirSync(path.join(dir, 'mail'));
      fs.writeFileSync(path.join(dir, 'mail', 'alice'), SPOOL, { mode: 0o600 });
      fs.writeFileSync(path.join(dir, 'users'), 'alice:{PLAIN}pw-alice\n', { mode: 0o600 });
      const qconf = path.join(dir, 'qpopper.config');
      fs.writeFileSync(qconf, [
        '# /etc/qpopper.config as a Qpopper site had it',
        'set server-mode',
        'set timeout = 900',
        `set spool-dir = "${path.join(dir, 'mail')}"`,
        'set statistics',
        'set fast-update',
        'set bulldir = /var/spool/bulls',
        '',
      ].join('\n'));
      child = spawn(process.execPath, [BIN, 'serve', '--qpopper-config', qconf, '--listen', '127.0.0.1:0', '--users', path.join(dir, 'users'),
        '--state-dir', path.join(dir, 'state'), '--log-format', 'text', '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line: ${log}`)), 15000);
        child!.stderr!.on('data', (d: Buffer) => {
          log += d.toString();
          const m = /listening address=\S+ port=(\d+)/.exec(log);
          if (m) { clearTimeout(timer); resolve(Number(m[1])); }
        });
        child!.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${code}: ${log}`)); });
      });
      const warnings = log.split('\n').filter((l) => / warn: qpopper option ignored /.test(l));
      expect(warnings).to.have.length(2);
      expect(warnings[0]).to.match(/line=6 option=fast-update effect=/);
      expect(warnings[1]).to.match(/line=7 option=bulldir effect=/);
      expect(log).to.match(/info: qpopper option mapped .*line=3 option=timeout effect="idle-timeout = 900"/);
      // spool-dir was mapped: the server finds alice's spool in the temp directory.
      expect((await uidls(port)).slice(0, 3)).to.deep.equal(QPOPPER_UIDLS);
    } finally {
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child!.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

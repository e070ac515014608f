/**
 * Logging: no secret in any log line at any level, failed logins always carry the client IP,
 * the session summary line, and the shipped fail2ban filter run by the real fail2ban-regex
 * against lines a real server wrote in each output format (text, json, syslog).
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import winston from 'winston';
import { log } from '../src/obs/log.js';
import { Pop3TestClient } from './helpers/pop3-client.js';
import { startOpsChild, type OpsChild } from './helpers/ops-child.js';
import { ROOT, startServer, type TestServer } from './helpers/popspool-server.js';
import { hasTool, requireTool } from './helpers/tools.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

describe('logging (integration)', function () {
  describe('secrets and summary lines (in-process server, debug level)', () => {
    let server: TestServer;
    const lines: string[] = [];
    let saved: { level: string; silent: boolean | undefined; transports: winston.transport[] };

    before(async () => {
      saved = { level: log.level, silent: log.silent, transports: [...log.transports] };
      log.clear();
      log.add(new winston.transports.Stream({ stream: new Writable({ write(chunk, _e, cb) { lines.push(String(chunk)); cb(); } }) }));
      log.level = 'debug';
      log.silent = false;
      server = await startServer({ spools: { alice: 'mail/alice' }, passwords: { alice: 'Correct-Horse-9' } });
    });
    after(async () => {
      await server?.stop();
      log.clear();
      for (const t of saved.transports) log.add(t);
      log.level = saved.level;
      log.silent = saved.silent ?? false;
    });

    it('never logs a password or an AUTH PLAIN payload, and logs each failure with rip', async () => {
      const c = await Pop3TestClient.connect(server.port);
      expect(await c.login('alice', 'Wrong-Secret-1')).to.match(/^-ERR \[AUTH\]/);
      const initial = b64('\0alice\0Another-Secret-2');
      expect(await c.command(`AUTH PLAIN ${initial}`)).to.match(/^-ERR \[AUTH\]/);
      expect(await c.command('AUTH PLAIN')).to.match(/^\+ ?/);
      const good = b64('\0alice\0Correct-Horse-9');
      expect(await c.command(good)).to.match(/^\+OK/);
      expect(await c.multi('RETR 1')).to.have.property('status').that.match(/^\+OK/);
      expect(await c.command('DELE 2')).to.match(/^\+OK/);
      expect(await c.command('QUIT')).to.match(/^\+OK/);
      await c.closed();
      await new Promise((r) => setTimeout(r, 50));
      const all = lines.join('');
      expect(all).to.include('session end');
      for (const secret of ['Wrong-Secret-1', 'Another-Secret-2', 'Correct-Horse-9', initial, good]) {
        expect(all, `log output contains ${secret}`).not.to.include(secret);
      }
      const failed = lines.filter((l) => l.includes('authentication failed'));
      expect(failed).to.have.length(2);
      for (const l of failed) expect(l).to.match(/authentication failed rip=127\.0\.0\.1 user=alice /);
      const end = lines.find((l) => l.includes('session end'))!;
      for (const field of ['user=alice', 'rip=127.0.0.1', 'tls=false', 'retr=1', 'dele=1', 'update=general', 'mode=server', 'end=quit', 'rewritten=', 'lock_wait_ms=', 'update_answered_ms=', 'duration_ms=', 'dele_bytes=', 'in=', 'out=']) {
        expect(end).to.include(field);
      }
      expect(lines.some((l) => /^.*login user=alice rip=127\.0\.0\.1/.test(l))).to.equal(true);
    });

    it('logs a malformed AUTH PLAIN response and a foreign authzid as failed logins, with rip and no secret', async () => {
      const from = lines.length;
      const c = await Pop3TestClient.connect(server.port);
      // Not base64: the secret is in the raw response itself.
      const garbage = 'Garbage-Secret-3!!!';
      expect(await c.command(`AUTH PLAIN ${garbage}`)).to.equal('-ERR invalid SASL PLAIN response');
      const foreign = b64('bob\0alice\0Correct-Horse-9');
      expect(await c.command('AUTH PLAIN')).to.match(/^\+ ?/);
      expect(await c.command(foreign)).to.match(/^-ERR \[AUTH\] authentication failed/);
      c.close();
      await new Promise((r) => setTimeout(r, 50));
      const mine = lines.slice(from);
      const failed = mine.filter((l) => l.includes('authentication failed'));
      expect(failed).to.have.length(2);
      expect(failed[0]).to.match(/authentication failed rip=127\.0\.0\.1 user="" .*cause=invalid-sasl/);
      expect(failed[1]).to.match(/authentication failed rip=127\.0\.0\.1 user=alice .*cause=authzid/);
      const all = mine.join('');
      for (const secret of [garbage, 'Garbage-Secret-3', foreign, 'Correct-Horse-9']) expect(all, `log output contains ${secret}`).not.to.include(secret);
    });
  });

  describe('fail2ban filter against real server output', function () {
    this.timeout(60000);
    let confDir: string;
    before(function () {
      requireTool(this, 'fail2ban-regex', 'fail2ban');
      // fail2ban-regex resolves "before = common.conf" next to the filter: give it fail2ban's own.
      confDir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-f2b-'));
      fs.mkdirSync(path.join(confDir, 'filter.d'));
      fs.copyFileSync(path.join(ROOT, 'docs/examples/fail2ban/filter.d/popspool.conf'), path.join(confDir, 'filter.d/popspool.conf'));
      fs.copyFileSync('/etc/fail2ban/filter.d/common.conf', path.join(confDir, 'filter.d/common.conf'));
    });
    after(() => confDir && fs.rmSync(confDir, { recursive: true, force: true }));

    /** Two failed logins from 127.0.0.1, one with a user name forging another address. */
    async function failures(srv: OpsChild): Promise<void> {
      const clients = await Promise.all(['alice', 'x rip=10.9.9.9 '].map(async (u) => {
        const c = await Pop3TestClient.connect(srv.port);
        // AUTH PLAIN carries any user name, spaces and all: the filter must not take its address.
        c.send(`AUTH PLAIN ${b64(`\0${u}\0nope`)}`);
        return c;
      }));
      // The failure is logged before the throttle's delayed reply: no need to wait for the reply.
      await srv.waitFor(/authentication failed[^]*authentication failed/);
      for (const c of clients) c.close();
    }

    function runFilter(logLines: string): string[] {
      const file = path.join(confDir, 'sample.log');
      fs.writeFileSync(file, logLines);
      const out = execFileSync('fail2ban-regex', ['-o', 'ip', file, path.join(confDir, 'filter.d/popspool.conf')], { encoding: 'utf8' });
      return out.split('\n').filter((l) => /^\d/.test(l));
    }

    for (const format of ['text', 'json'] as const) {
      it(`matches every failed login in ${format} lines, with the real client address only`, async () => {
        const srv = await startOpsChild({ spools: { alice: 'mail/alice' }, args: ['--log-format', format] });
        try {
          await failures(srv);
          const logged = srv.stderr();
          expect(logged.split('\n').filter((l) => l.includes('authentication failed'))).to.have.length(2);
          expect(runFilter(logged)).to.deep.equal(['127.0.0.1', '127.0.0.1']);
        } finally {
          await srv.stop();
        }
      });
    }

    /** One AUTH PLAIN per connection (each waits for its reply, so the throttle sees them in order). */
    async function attempt(srv: OpsChild, line: string): Promise<string> {
      const c = await Pop3TestClient.connect(srv.port);
      try {
        return await c.command(line);
      } finally {
        c.close();
      }
    }

    for (const format of ['text', 'json'] as const) {
      it(`${format}: counts malformed SASL, foreign authzids and by=ip throttle refusals, not by=user ones`, async () => {
        const srv = await startOpsChild({
          spools: { alice: 'mail/alice' },
          args: ['--log-format', format, '--auth-failure-delay', '0', '--auth-block-ip-after', '5', '--auth-block-user-after', '2'],
        });
        try {
          expect(await attempt(srv, 'AUTH PLAIN not-base64!')).to.equal('-ERR invalid SASL PLAIN response'); // ip 1
          expect(await attempt(srv, `AUTH PLAIN ${b64('bob\0alice\0pw-alice')}`)).to.match(/^-ERR \[AUTH\]/); // ip 2, alice 1
          expect(await attempt(srv, `AUTH PLAIN ${b64('\0alice\0Secret-Guess-1')}`)).to.match(/^-ERR \[AUTH\]/); // ip 3, alice 2
          // The name is blocked now: even the right password is refused, and fail2ban must not count it.
          expect(await attempt(srv, `AUTH PLAIN ${b64('\0alice\0pw-alice')}`)).to.match(/^-ERR \[LOGIN-DELAY\]/);
          expect(await attempt(srv, `AUTH PLAIN ${b64('\0x rip=10.9.9.9 by=ip\0Secret-Guess-2')}`)).to.match(/^-ERR \[AUTH\]/); // ip 4
          expect(await attempt(srv, `AUTH PLAIN ${b64('\0carol\0Secret-Guess-3')}`)).to.match(/^-ERR \[AUTH\]/); // ip 5
          // The address is blocked now: this refusal counts.
          expect(await attempt(srv, `AUTH PLAIN ${b64('\0dave\0Secret-Guess-4')}`)).to.match(/^-ERR \[LOGIN-DELAY\]/);
          await srv.waitFor(/too many failures[^]*too many failures/);
          const logged = srv.stderr();
          const refused = logged.split('\n').filter((l) => l.includes('too many failures'));
          expect(refused).to.have.length(2);
          expect(refused.filter((l) => /by[=":]+user/.test(l))).to.have.length(1);
          expect(refused.filter((l) => /by[=":]+ip/.test(l))).to.have.length(1);
          if (format === 'text') {
            expect(refused[0]).to.match(/authentication refused: too many failures rip=127\.0\.0\.1 by=user user=alice /);
            expect(refused[1]).to.match(/authentication refused: too many failures rip=127\.0\.0\.1 by=ip user=dave /);
          }
          expect(logged.split('\n').filter((l) => l.includes('authentication failed'))).to.have.length(5);
          for (const secret of ['Secret-Guess', 'pw-alice', 'not-base64']) expect(logged).not.to.include(secret);
          // 5 failures + 1 by=ip refusal; the by=user refusal and the forged address are not extracted.
          expect(runFilter(logged)).to.deep.equal(Array(6).fill('127.0.0.1'));
        } finally {
          await srv.stop();
        }
      });
    }

    it('matches syslog lines (facility mail) received on a unix datagram socket', async function () {
      if (!hasTool('socat')) return this.skip();
      const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-syslog-'));
      const sock = path.join(sockDir, 'log');
      const recv = spawn('socat', ['-u', `UNIX-RECV:${sock}`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let got = '';
      recv.stdout.on('data', (d: Buffer) => (got += d.toString('latin1')));
      for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
      const srv = await startOpsChild({ spools: { alice: 'mail/alice' }, args: ['--log-format', 'syslog', '--syslog-path', sock], logSource: () => got });
      try {
        await failures(srv);
        // One datagram per line: "<20>Jan  2 03:04:05 popspool[123]: message" (RFC 3164, as glibc's syslog() sends);
        // the syslog daemon strips the priority and adds the host name, as below.
        const datagrams = got.split(/(?=<\d+>)/).filter(Boolean);
        expect(datagrams.find((d) => d.includes('authentication failed'))).to.match(/^<20>\w{3} [ \d]\d \d\d:\d\d:\d\d popspool\[\d+\]: authentication failed rip=127\.0\.0\.1 /);
        expect(datagrams.find((d) => d.includes('listening'))).to.match(/^<22>/); // mail.info
        const asWritten = datagrams.map((d) => d.replace(/^<\d+>(.{15}) /, '$1 myhost ').replace(/\n?$/, '\n')).join('');
        expect(runFilter(asWritten)).to.deep.equal(['127.0.0.1', '127.0.0.1']);
      } finally {
        await srv.stop();
        recv.kill();
        fs.rmSync(sockDir, { recursive: true, force: true });
      }
    });
  });
});

/**
 * The admin listener and live administration against a real `popspool serve` child: metric
 * names and values after a scripted session, /healthz and /status, `popspool stats`, a runtime
 * limit change through `popspool admin set` (with a bearer token), SIGHUP reloading the config
 * file, and SIGTERM draining without cutting a session short.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Pop3TestClient } from './helpers/pop3-client.js';
import { startOpsChild, type OpsChild } from './helpers/ops-child.js';
import { cli, FIXTURES } from './helpers/popspool-server.js';



/** Prometheus text → `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

async function metrics(srv: OpsChild): Promise<Map<string, number>> {
  const res = await srv.admin('/metrics');
  expect(res.status).to.equal(200);
  return parseMetrics(res.body);
}

describe('admin listener and live administration (integration)', function () {
  this.timeout(30000);
  let srv: OpsChild | undefined;
  afterEach(async () => {
    await srv?.stop();
    srv = undefined;
  });

  it('exports metrics with the right values after a scripted session; /healthz, /status and popspool stats', async () => {
    srv = await startOpsChild({ spools: { alice: 'mail/alice' }, admin: true });
    const alice = fs.readFileSync(path.join(FIXTURES, 'mail/alice'));
    const c = await Pop3TestClient.connect(srv.port);
    expect(await c.login('alice', 'pw-alice')).to.match(/^\+OK/);
    const list = await c.command('LIST 1');
    const size1 = Number(/^\+OK 1 (\d+)$/.exec(list)![1]);
    expect((await c.multi('RETR 1')).status).to.match(/^\+OK/);
    expect((await c.multi('TOP 2 0')).status).to.match(/^\+OK/);
    expect(await c.command('DELE 1')).to.match(/^\+OK/);

    // While alice is logged in: /status lists her, `popspool stats` prints a table.
    const status = JSON.parse((await srv.admin('/status')).body) as { online: { user: string }[]; limits: Record<string, number>; connections: { live: number } };
    expect(status.online.map((o) => o.user)).to.deep.equal(['alice']);
    expect(status.connections.live).to.equal(1);
    expect(status.limits['max-connections']).to.equal(1000);
    const stats = await cli('stats', '--admin', `127.0.0.1:${srv.adminPort}`);
    expect(stats.code).to.equal(0);
    expect(stats.stdout).to.match(/max-connections\s+1000/).and.match(/Users online \(1\)/).and.match(/alice\s+127\.0\.0\.1/);

    expect(await c.command('QUIT')).to.match(/^\+OK/);
    await c.closed();
    const bad = await Pop3TestClient.connect(srv.port);
    bad.send('USER alice');
    bad.send('PASS wrong');
    await srv.waitFor(/authentication failed/);
    // A second login: the update wrote the cache for the spool as it now is, so this is a hit.
    const again = await Pop3TestClient.connect(srv.port);
    expect(await again.login('alice', 'pw-alice')).to.match(/^\+OK alice has 20 messages/);
    expect(await again.command('QUIT')).to.match(/^\+OK/);
    await again.closed();
    bad.close();
    await srv.waitFor(/session end[^\n]*update=untouched/);

    const m = await metrics(srv);
    const want: Record<string, number> = {
      'popspool_logins_total{result="ok"}': 2,
      'popspool_logins_total{result="fail"}': 1,
      'popspool_commands_total{command="retr"}': 1,
      'popspool_commands_total{command="top"}': 1,
      'popspool_commands_total{command="dele"}': 1,
      'popspool_command_bytes_total{command="retr"}': size1,
      'popspool_command_bytes_total{command="dele"}': size1,
      'popspool_sessions_total{mode="server",update="general"}': 1,
      'popspool_sessions_total{mode="server",update="untouched"}': 1,
      'popspool_cache_lookups_total{result="miss"}': 1,
      'popspool_cache_lookups_total{result="hit"}': 1,
      'popspool_spool_bytes_scanned_total': alice.length,
      'popspool_update_duration_seconds_count{case="general"}': 1,
      'popspool_lock_wait_seconds_count{phase="open"}': 2,
      'popspool_connections_total{tls="false"}': 3,
    };
    for (const [k, v] of Object.entries(want)) {
      expect(m.get(k), k).to.equal(v);
    }
    expect(m.get('popspool_bytes_sent_total')).to.be.greaterThan(size1);
    expect(m.get('popspool_bytes_received_total')).to.be.greaterThan(0);
    expect(m.get('popspool_spool_bytes_rewritten_total')).to.be.greaterThan(0);
    expect(m.has('popspool_process_cpu_user_seconds_total')).to.equal(true);
    expect(await srv.admin('/healthz')).to.deep.equal({ status: 200, body: 'ok\n' });
    expect((await srv.admin('/nope')).status).to.equal(404);
  });

  it('changes max-connections at run time through `popspool admin set` with a bearer token, and logs it', async () => {
    const tokDir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-tok-'));
    const tokenFile = path.join(tokDir, 'token');
    fs.writeFileSync(tokenFile, 's3cret-token\n', { mode: 0o600 });
    try {
      srv = await startOpsChild({ spools: { alice: 'mail/alice' }, admin: true, args: ['--admin-token-file', tokenFile] });
      const admin = ['--admin', `127.0.0.1:${srv.adminPort}`, '--token-file', tokenFile];
      expect((await srv.admin('/metrics')).status).to.equal(401);
      expect((await srv.admin('/metrics', { token: 'wrong' })).status).to.equal(401);
      expect((await srv.admin('/healthz')).status).to.equal(200); // load balancers need no token
      expect((await cli('stats', '--admin', `127.0.0.1:${srv.adminPort}`)).code).to.equal(1);

      const set1 = await cli('admin', 'set', 'max-connections', '1', ...admin);
      expect(set1, set1.stderr).to.include({ code: 0 });
      expect(set1.stdout).to.equal('max-connections = 1\n');
      await srv.waitFor(/limit changed setting=max-connections old=1000 new=1 by="admin 127\.0\.0\.1"/);
      const c1 = await Pop3TestClient.connect(srv.port);
      expect(c1.greeting).to.match(/^\+OK/);
      const c2 = await Pop3TestClient.connect(srv.port);
      expect(c2.greeting).to.equal('-ERR [SYS/TEMP] too many connections');

      expect((await cli('admin', 'set', 'max-connections', '0', ...admin)).code).to.equal(1); // below the minimum
      expect((await cli('admin', 'set', 'mode', 'copy', ...admin)).code).to.equal(2); // not a runtime setting
      expect((await cli('admin', 'set', 'max-connections', '2', ...admin)).code).to.equal(0);
      const c3 = await Pop3TestClient.connect(srv.port);
      expect(c3.greeting).to.match(/^\+OK/);
      const limits = JSON.parse((await srv.admin('/status', { token: 's3cret-token' })).body).limits as Record<string, number>;
      expect(limits['max-connections']).to.equal(2);
      for (const c of [c1, c2, c3]) c.close();
    } finally {
      fs.rmSync(tokDir, { recursive: true, force: true });
    }
  });

  it('SIGHUP reloads the config file: a changed limit applies, a non-live setting says restart required, a broken file is kept out', async () => {
    srv = await startOpsChild({ spools: { alice: 'mail/alice' }, admin: true, configToml: 'max-per-ip = 5\n' });
    const toml = path.join(srv.dir, 'popspool.toml');
    const a = await Pop3TestClient.connect(srv.port);
    const b = await Pop3TestClient.connect(srv.port);
    expect(b.greeting).to.match(/^\+OK/);
    b.close();
    fs.writeFileSync(toml, 'max-per-ip = 1\nmode = "copy"\n');
    let from = srv.stderr().length;
    srv.proc.kill('SIGHUP');
    await srv.waitFor(/SIGHUP: reload complete changed=mode,max-per-ip/, from);
    const out = srv.stderr().slice(from);
    expect(out).to.match(/limit changed setting=max-per-ip old=5 new=1 by=SIGHUP/);
    expect(out).to.match(/restart required for it to take effect setting=mode/);
    expect(out).to.match(/SIGHUP: users file reloaded .*users=1/);
    const c = await Pop3TestClient.connect(srv.port);
    expect(c.greeting).to.equal('-ERR [SYS/TEMP] too many connections');
    c.close();

    fs.writeFileSync(toml, 'max-per-ip = "lots"\n');
    from = srv.stderr().length;
    srv.proc.kill('SIGHUP');
    await srv.waitFor(/SIGHUP: reload complete/, from);
    expect(srv.stderr().slice(from)).to.match(/config file invalid; keeping the running configuration/);
    expect(JSON.parse((await srv.admin('/status')).body).limits['max-per-ip']).to.equal(1);
    a.close();
  });

  it('SIGTERM drains: stops accepting, lets a logged-in session finish, then exits 0', async () => {
    srv = await startOpsChild({ spools: { alice: 'mail/alice' }, admin: true });
    const c = await Pop3TestClient.connect(srv.port);
    expect(await c.login('alice', 'pw-alice')).to.match(/^\+OK/);
    srv.proc.kill('SIGTERM');
    await srv.waitFor(/draining: no longer accepting connections/);
    // Give the listener a moment to close, then a new connection is refused by the kernel.
    await srv.waitFor(/draining/);
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(srv!.port, '127.0.0.1');
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.once('data', (d) => { resolve(d.toString()); s.destroy(); });
    });
    expect(refused).to.match(/ECONNREFUSED|ECONNRESET|shutting down/);
    expect((await srv.admin('/healthz').catch(() => ({ status: 503 }))).status).to.equal(503);
    // The running session is not cut: it downloads, deletes and QUITs normally.
    expect((await c.multi('RETR 1')).status).to.match(/^\+OK/);
    expect(await c.command('DELE 1')).to.match(/^\+OK/);
    expect(await c.command('QUIT')).to.match(/^\+OK/);
    expect(await srv.exited()).to.equal(0);
    expect(srv.stderr()).to.match(/session end user=alice .*update=general.*end=quit[^]*stopped/);
  });
});

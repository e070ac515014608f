/**
 * RFC 2449 EXPIRE and LOGIN-DELAY: advertised in CAPA before and after login when configured,
 * absent otherwise, and LOGIN-DELAY enforced with -ERR [LOGIN-DELAY] for the right password.
 */
import { expect } from 'chai';
import { ConfigError } from '../src/errors.js';
import { buildConfig } from '../src/config/load.js';
import { LoginPolicy } from '../src/pop3/login-policy.js';
import { Pop3TestClient } from './helpers/pop3-client.js';
import { startServer, type TestServer } from './helpers/popspool-server.js';

describe('EXPIRE and LOGIN-DELAY (RFC 2449)', function () {
  this.timeout(30_000);

  it('LoginPolicy counts the delay per user', () => {
    const p = new LoginPolicy(60, 'NEVER');
    expect(p.capabilities()).to.deep.equal(['EXPIRE NEVER', 'LOGIN-DELAY 60']);
    expect(p.waitFor('alice', 1_000)).to.equal(0);
    p.loggedIn('alice', 1_000);
    expect(p.waitFor('alice', 1_000)).to.equal(60);
    expect(p.waitFor('alice', 31_000)).to.equal(30);
    expect(p.waitFor('alice', 61_000)).to.equal(0);
    expect(p.waitFor('bob', 1_000)).to.equal(0);
    expect(new LoginPolicy(0, '').capabilities()).to.deep.equal([]);
  });

  it('the expire setting takes NEVER or days, nothing else', () => {
    expect(buildConfig(undefined, { expire: 'NEVER' }).expire).to.equal('NEVER');
    expect(buildConfig(undefined, { expire: '30' }).expire).to.equal('30');
    expect(() => buildConfig(undefined, { expire: 'soon' })).to.throw(ConfigError, /expire/);
  });

  describe('over the wire', () => {
    let srv: TestServer;
    before(async () => {
      srv = await startServer({
        spools: { alice: 'mail/alice', bob: 'mail/bob' },
        serverOptions: { policy: new LoginPolicy(600, '30') },
      });
    });
    after(async () => srv?.stop());

    it('advertises both before and after login, and refuses a second login too soon', async () => {
      const c = await Pop3TestClient.connect(srv.port);
      expect((await c.multi('CAPA')).lines).to.include.members(['EXPIRE 30', 'LOGIN-DELAY 600']);
      await c.login('alice', 'pw-alice');
      expect((await c.multi('CAPA')).lines).to.include.members(['EXPIRE 30', 'LOGIN-DELAY 600']);
      expect(await c.command('QUIT')).to.match(/^\+OK/);
      const d = await Pop3TestClient.connect(srv.port);
      await d.command('USER alice');
      expect(await d.command('PASS pw-alice')).to.match(/^-ERR \[LOGIN-DELAY\] /);
      await d.command('QUIT');
      const e = await Pop3TestClient.connect(srv.port);
      expect(await e.login('bob', 'pw-bob')).to.match(/^\+OK/);
      await e.command('QUIT');
    });
  });

  it('advertises neither by default', async () => {
    const srv = await startServer({ spools: { alice: 'mail/alice' } });
    try {
      const c = await Pop3TestClient.connect(srv.port);
      const caps = (await c.multi('CAPA')).lines;
      expect(caps.some((l) => /^(EXPIRE|LOGIN-DELAY)\b/.test(l))).to.equal(false);
      await c.command('QUIT');
    } finally {
      await srv.stop();
    }
  });
});

/**
 * auth = pam against the real Linux-PAM: a throwaway Unix user (useradd, chpasswd: a yescrypt
 * hash in /etc/shadow) and a service file using pam_unix, logged in over POP3 by Python's
 * poplib through a `popspool serve --auth pam` child. Needs root and the optional
 * authenticate-pam addon: skipped loudly without them, a failure under CI (.ci/run runs as root
 * and installs libpam0g-dev so `npm ci` builds the addon).
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { loadPam, PAM_MAX_FIELD_BYTES, PAM_PACKAGE, PamAuthenticator, pamServiceFile, type PamModule } from '../src/auth/pam.js';
import { ConfigError } from '../src/errors.js';
import { BIN, expectedMessages, startServer, type TestServer } from './helpers/popspool-server.js';
import { requireTool } from './helpers/tools.js';

const run = promisify(execFile);
const USER = 'popspooltest';
const SERVICE = 'popspool-test';
const SERVICE_FILE = `/etc/pam.d/${SERVICE}`;
/**
 * PAM_MAX_FIELD_BYTES exactly: accepted whole. One byte more would reach PAM cut to this (the
 * addon's buffer) or with heap garbage after it (no NUL): refused before PAM either way.
 */
const PASSWORD = 'Pam-Test-' + 'x'.repeat(PAM_MAX_FIELD_BYTES - 'Pam-Test-'.length - 1) + '9';
const FAIL = '-ERR [AUTH] authentication failed';

/** Skip loudly, or fail under CI. */
function need(ctx: Mocha.Context, ok: boolean, reason: string): void {
  if (ok) return;
  if (process.env.CI) throw new Error(`CI requires ${reason}`);
  console.warn(`\n    SKIPPED: ${reason}\n`);
  ctx.skip();
}

function loadable(): PamModule | undefined {
  try {
    return loadPam();
  } catch {
    return undefined;
  }
}

const POPLIB = `
import poplib, sys
port, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
p = poplib.POP3('127.0.0.1', port, timeout=20)
p.user(user)
try:
    print(p.pass_(pw).decode())
    print(p.stat())
    p.quit()
except poplib.error_proto as e:
    print(e.args[0].decode())
`;

describe('PAM backend (auth = pam)', function () {
  this.timeout(60000);

  describe('start-up errors', () => {
    it('a missing addon is a ConfigError naming the package and how to build it', () => {
      expect(() => loadPam('authenticate-pam-not-installed')).to.throw(ConfigError, /auth = pam needs the optional package authenticate-pam-not-installed, but it is not installed.*libpam0g-dev/);
      expect(PAM_PACKAGE).to.equal('authenticate-pam');
    });

    it('a missing service file is exit 2 naming pam-service (PAM would silently use "other")', () => {
      expect(() => pamServiceFile('popspool-no-such-service')).to.throw(ConfigError, /no PAM service file \/etc\/pam\.d\/popspool-no-such-service/);
      expect(() => pamServiceFile('../etc/passwd')).to.throw(ConfigError, /invalid service name/);
      const r = spawnSync(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--auth', 'pam', '--pam-service', 'popspool-no-such-service'], { encoding: 'utf8', timeout: 20000 });
      expect(r.status).to.equal(2);
      expect(r.stderr).to.include('pam-service');
    });
  });

  describe('a real PAM service and Unix user', () => {
    let server: TestServer | undefined;
    let pam: PamModule | undefined;

    before(async function () {
      need(this, process.getuid?.() === 0, 'root to create a test Unix user and /etc/pam.d file (run the suite as root, as CI does)');
      pam = loadable();
      need(this, pam !== undefined, `the ${PAM_PACKAGE} addon (apt-get install libpam0g-dev, then npm ci or npm rebuild ${PAM_PACKAGE})`);
      requireTool(this, 'python3', 'python3');
      requireTool(this, 'useradd', 'passwd');
      cleanup();
      execFileSync('useradd', ['-M', '-s', '/usr/sbin/nologin', USER]);
      execFileSync('chpasswd', { input: `${USER}:${PASSWORD}\n` });
      // nodelay: popspool delays failures itself, without holding a thread-pool thread.
      fs.writeFileSync(SERVICE_FILE, '# popspool test service (test/auth-pam.test.ts)\nauth required pam_unix.so nodelay\naccount required pam_unix.so\n');
      server = await startServer({
        child: true, spools: { [USER]: 'mail/alice' },
        settings: { auth: 'pam', 'pam-service': SERVICE, 'auth-failure-delay': '0' },
      });
    });

    function cleanup(): void {
      spawnSync('userdel', [USER], { stdio: 'ignore' });
      fs.rmSync(SERVICE_FILE, { force: true });
    }

    after(async () => {
      await server?.stop();
      if (process.getuid?.() === 0) cleanup();
    });

    async function poplib(user: string, pw: string): Promise<string> {
      const { stdout } = await run('python3', ['-c', POPLIB, String(server!.port), user, pw], { timeout: 30000 });
      return stdout.trim();
    }

    it('logs a system user in over POP3 (poplib); the spool path template maps %u to the login name', async () => {
      const out = await poplib(USER, PASSWORD);
      const messages = expectedMessages(fs.readFileSync(server!.spoolPath(USER))).length;
      expect(out.split('\n')[0]).to.match(new RegExp(`^\\+OK ${USER} has ${messages} messages`));
      expect(out.split('\n')[1]).to.match(new RegExp(`^\\(${messages}, \\d+\\)$`));
      expect(path.basename(server!.spoolPath(USER))).to.equal(USER);
    });

    it('a wrong password, an unknown user and a password one byte past the addon\'s buffer get one reply', async () => {
      expect(await poplib(USER, 'not-the-password')).to.equal(FAIL);
      expect(await poplib('popspool-nobody', PASSWORD)).to.equal(FAIL);
      // The addon would cut this to its first 127 bytes — the right password. It must not log in.
      expect(await poplib(USER, PASSWORD + 'y')).to.equal(FAIL);
      expect(await poplib(USER, PASSWORD)).to.match(/^\+OK/);
    });

    it('runs PAM off the event loop: the loop keeps turning while PAM hashes', async () => {
      const auth = new PamAuthenticator(pam!, { service: SERVICE });
      let turns = 0;
      let done = false;
      const spin = (): void => {
        if (done) return;
        turns++;
        setImmediate(spin);
      };
      setImmediate(spin);
      const [right, wrong] = await Promise.all([
        auth.verify(USER, PASSWORD, { remoteAddress: '127.0.0.1', secure: true }),
        auth.verify(USER, 'wrong', { remoteAddress: '127.0.0.1', secure: true }),
      ]);
      done = true;
      expect([right, wrong]).to.deep.equal([true, false]);
      expect(auth.calls).to.equal(2);
      expect(turns, 'event-loop turns while PAM worked').to.be.greaterThan(1);
      // Input the addon would truncate never reaches PAM.
      expect(await auth.verify(USER, PASSWORD + 'y', { remoteAddress: '', secure: true })).to.equal(false);
      expect(await auth.verify(USER, 'a\0b', { remoteAddress: '', secure: true })).to.equal(false);
      expect(auth.calls).to.equal(2);
    });
  });
});

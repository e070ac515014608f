/**
 * Peers for side-by-side runs: Dovecot, GNU Mailutils pop3d and popa3d, each started on
 * loopback with a throwaway configuration in the run's temp directory over the same working
 * spools. The system's own mail configuration is never read or written: Dovecot runs with
 * `-c OUR.conf`, Mailutils with `--config-file`, and popa3d (which hard-codes /var/mail and a
 * chroot in /var/lib/popa3d) inside a private mount namespace where our spool directory is
 * bind-mounted over /var/mail. Mailutils and popa3d authenticate Unix users, so the bench
 * creates throwaway users (see ensureSystemUsers) sharing one uid, the spools' owner.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, stopChild, waitForGreeting, type BenchEnv, type Target } from './servers.js';

export type PeerName = 'dovecot' | 'mailutils' | 'popa3d';
export const PEER_NAMES: readonly PeerName[] = ['dovecot', 'mailutils', 'popa3d'];

/** The account every bench mailbox user shares (uid/gid), and the marker in their GECOS field. */
export const BENCH_ACCOUNT = 'popbench';
export const BENCH_GECOS = 'popspool bench throwaway user';

function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function firstExisting(paths: string[]): string | null {
  return paths.find((p) => fs.existsSync(p)) ?? null;
}

/** Where each peer's executable is, or why it is skipped. */
export function findPeer(name: PeerName, peerRoot: string): { bin: string } | { skip: string } {
  switch (name) {
    case 'dovecot': {
      const bin = which('dovecot') ?? firstExisting(['/usr/sbin/dovecot']);
      if (!bin || !fs.existsSync('/usr/lib/dovecot/pop3')) return { skip: 'dovecot-pop3d is not installed (apt-get install dovecot-pop3d)' };
      return { bin };
    }
    case 'mailutils': {
      const bin = firstExisting([path.join(peerRoot, 'usr/sbin/pop3d'), '/usr/sbin/pop3d']);
      return bin ? { bin } : { skip: `GNU Mailutils pop3d not found in ${peerRoot} or /usr/sbin (see docs/benchmarks.md: apt-get download mailutils-pop3d; dpkg -x)` };
    }
    case 'popa3d': {
      const bin = firstExisting([path.join(peerRoot, 'usr/sbin/popa3d'), '/usr/sbin/popa3d']);
      if (!bin) return { skip: `popa3d not found in ${peerRoot} or /usr/sbin (apt-get download popa3d; dpkg -x)` };
      if (!which('socat') || !which('unshare')) return { skip: 'popa3d needs socat and unshare(1) to run on loopback' };
      if (process.getuid?.() !== 0) return { skip: 'popa3d needs root (private mount namespace, setuid to the user)' };
      return { bin };
    }
  }
}

function ids(name: string): { uid: number; gid: number } | null {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/**
 * Creates the Unix users the peers authenticate (root only): one account `popbench` and one
 * user per bench mailbox sharing its uid/gid (`newusers`, which also sets the password), no
 * home, no shell. Idempotent; they are marked by their GECOS field so they can be removed
 * (`popspool bench --remove-users`). Returns the shared uid/gid, or null when not root.
 */
export function ensureSystemUsers(names: readonly string[], password: string): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  if (!ids(BENCH_ACCOUNT)) {
    execFileSync('useradd', ['-r', '-M', '-U', '-s', '/usr/sbin/nologin', '-c', BENCH_GECOS, BENCH_ACCOUNT]);
  }
  const acct = ids(BENCH_ACCOUNT)!;
  const existing = new Set(fs.readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')[0]));
  const missing = names.filter((n) => !existing.has(n));
  if (missing.length) {
    const lines = missing.map((n) => `${n}:${password}:${acct.uid}:${acct.gid}:${BENCH_GECOS}:/nonexistent:/usr/sbin/nologin`).join('\n') + '\n';
    execFileSync('newusers', [], { input: lines });
  }
  if (!ids('popa3d')) execFileSync('useradd', ['-r', '-M', '-s', '/usr/sbin/nologin', '-c', 'popa3d privilege separation (bench)', 'popa3d']);
  return acct;
}

/** Removes every user ensureSystemUsers created. */
export function removeSystemUsers(): number {
  const users = fs.readFileSync('/etc/passwd', 'utf8').split('\n').filter((l) => l.split(':')[4] === BENCH_GECOS).map((l) => l.split(':')[0]!);
  for (const u of users.filter((u) => u !== BENCH_ACCOUNT)) spawnSync('userdel', [u]);
  if (users.includes(BENCH_ACCOUNT)) spawnSync('userdel', [BENCH_ACCOUNT]);
  return users.length;
}

abstract class PeerTarget implements Target {
  readonly isPeer = true;
  port = 0;
  protected child: ChildProcess | null = null;
  protected stderr = '';
  protected readonly dir: string;

  constructor(readonly name: PeerName, protected readonly bin: string, protected readonly env: BenchEnv) {
    this.dir = path.join(env.root, `peer-${name}`);
  }

  protected abstract command(): { cmd: string; args: string[] };

  async start(): Promise<void> {
    fs.rmSync(this.dir, { recursive: true, force: true });
    fs.mkdirSync(this.dir, { recursive: true });
    this.port = await freePort();
    const { cmd, args } = this.command();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d) => { this.stderr = (this.stderr + d).slice(-4000); });
    this.child = child;
    try {
      await waitForGreeting(this.port, child);
    } catch (err) {
      await this.stop();
      throw new Error(`${this.name}: ${(err as Error).message}; stderr: ${this.stderr.trim()} ${this.logTail()}`);
    }
  }

  protected logTail(): string {
    return '';
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child);
    this.child = null;
  }

  makeCold(_user: string): void {
    // no cache besides the page cache
  }

  cleanup(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export class DovecotTarget extends PeerTarget {
  protected command(): { cmd: string; args: string[] } {
    const d = this.dir;
    for (const sub of ['run', 'state', 'mail', 'index', 'home']) fs.mkdirSync(path.join(d, sub), { recursive: true });
    for (const sub of ['mail', 'index', 'home']) fs.chownSync(path.join(d, sub), this.env.uid, this.env.gid);
    const conf = path.join(d, 'dovecot.conf');
    fs.writeFileSync(conf, `# throwaway configuration written by popspool bench
base_dir = ${d}/run
state_dir = ${d}/state
log_path = ${d}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = mbox:${d}/mail/%u:INBOX=${this.env.spoolDir}/%u:INDEX=${d}/index/%u
mbox_write_locks = fcntl dotlock
first_valid_uid = ${Math.min(this.env.uid, 500)}
first_valid_gid = ${Math.min(this.env.gid, 100)}
pop3_uidl_format = %08Xu%08Xv
mail_max_userip_connections = 100000
default_process_limit = 3000
default_client_limit = 6000
default_vsz_limit = 2G
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${this.env.usersFile}
}
userdb {
  driver = static
  args = uid=${this.env.uid} gid=${this.env.gid} home=${d}/home/%u
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = ${this.port}
  }
}
service anvil {
  client_limit = 10000
}
service auth {
  client_limit = 10000
}
`);
    return { cmd: this.bin, args: ['-F', '-c', conf] };
  }

  protected override logTail(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'dovecot.log'), 'utf8').slice(-1500);
    } catch {
      return '';
    }
  }

  override makeCold(user: string): void {
    fs.rmSync(path.join(this.dir, 'index', user), { recursive: true, force: true });
  }
}

export class MailutilsTarget extends PeerTarget {
  // `backlog`: Mailutils listens with a queue of 4 pending connections by default. At 100 or
  // 1,000 sessions at once (workload f) the rest overflowed it: their clients saw the connection
  // established, the server never did, and each waited out the client's idle timeout for a
  // greeting that never came (the "hang" the full runs used to skip with --skip mailutils:f).
  // popa3d's socat and popspool listen with 4096 and 511; Dovecot's listeners take its default.
  protected command(): { cmd: string; args: string[] } {
    const conf = path.join(this.dir, 'pop3d.conf');
    fs.writeFileSync(conf, `# throwaway configuration written by popspool bench
logging { syslog false; };
mode daemon;
foreground yes;
tls-mode false;
max-children 5000;
auth {
  authorization system;
  authentication system;
};
mailbox {
  mailbox-pattern "${this.env.spoolDir}/\${user}";
  mailbox-type mbox;
};
server 127.0.0.1:${this.port} {
  tls-mode no;
  backlog 4096;
};
`);
    return { cmd: this.bin, args: [`--config-file=${conf}`, '--no-site-config'] };
  }
}

export class Popa3dTarget extends PeerTarget {
  protected command(): { cmd: string; args: string[] } {
    // Everything happens in a private mount namespace: our spools appear as /var/mail and an
    // empty tmpfs provides popa3d's chroot directory; the host's mounts are untouched.
    const script = [
      'set -e',
      `mount --bind ${this.env.spoolDir} /var/mail`,
      'mount -t tmpfs -o size=1m tmpfs /var/lib',
      'mkdir -p /var/lib/popa3d',
      `exec socat TCP-LISTEN:${this.port},bind=127.0.0.1,reuseaddr,fork,backlog=4096 EXEC:${this.bin},nofork`,
    ].join('\n');
    return { cmd: 'unshare', args: ['--mount', '--propagation', 'private', 'sh', '-c', script] };
  }
}

export function makePeer(name: PeerName, bin: string, env: BenchEnv): PeerTarget {
  switch (name) {
    case 'dovecot': return new DovecotTarget(name, bin, env);
    case 'mailutils': return new MailutilsTarget(name, bin, env);
    case 'popa3d': return new Popa3dTarget(name, bin, env);
  }
}

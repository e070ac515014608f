/**
 * `popspool serve`: wires the typed Config into the spool store, the authenticator and the
 * listeners and the admin listener; recovers interrupted updates before accepting anyone;
 * reloads on SIGHUP (src/cli/control.ts); drains on SIGTERM/SIGINT.
 */
import fs from 'node:fs';
import type { Config } from '../config/settings.js';
import { configureLogging, log } from '../obs/log.js';
import { AdminServer } from '../obs/admin.js';
import { Metrics } from '../obs/metrics.js';
import { ServerControl, logQpopperNotes, loggingOf, readTls, reload } from './control.js';
import { PasswdFile } from '../auth/passwd-file.js';
import { loadPam, PamAuthenticator, pamServiceFile } from '../auth/pam.js';
import type { Authenticator } from '../auth/types.js';
import cluster from 'node:cluster';
import { clusterWanted, runPrimary, workerIndex } from './cluster.js';
import { ApopSecrets } from '../auth/apop.js';
import { DEFAULT_THROTTLE, LoginThrottle } from '../auth/throttle.js';
import { LoginPolicy } from '../pop3/login-policy.js';
import { Pop3Server } from '../server/server.js';
import { dropPrivileges } from '../server/privileges.js';
import { listenFds } from '../server/systemd.js';
import type { PeerInfo } from '../pop3/peer.js';
import { SpoolStore } from '../spool/store.js';
import { backgroundSettled } from '../spool/background.js';
import { prewarmScanWorker, warmScanner } from '../mbox/index.js';
import { filterOpener } from '../filter/filtered-drop.js';
import { DEFAULT_LOCK_OPTIONS } from '../lock/index.js';
import { PopspoolError } from '../errors.js';

export interface ServeOptions {
  readonly stdio: boolean;
  /** Called with the bound addresses once listening (demo mode prints how to connect). */
  readonly onListening?: (addresses: readonly { address: string; port: number }[]) => void;
  /** Re-reads the config file with the original flags on top (SIGHUP); absent: nothing to re-read. */
  readonly reloadConfig?: () => Config;
}

export function storeFor(config: Config): SpoolStore {
  return new SpoolStore({
    spool: config.spool,
    mode: config.mode,
    holdLock: config.holdLock,
    statusUpdate: config.statusUpdate,
    scanOptions: { strictFrom: config.strictFrom },
    lock: { ...DEFAULT_LOCK_OPTIONS, methods: config.locks, timeoutMs: config.lockTimeout * 1000 },
    stateDir: config.stateDir,
  });
}

export async function serve(initial: Config, opts: ServeOptions): Promise<void> {
  let config = initial;
  configureLogging(loggingOf(config, opts.stdio));
  logQpopperNotes();
  const { authenticator, users } = await authenticatorFor(config);
  const apop = config.apopSecrets ? new ApopSecrets(config.apopSecrets) : undefined;
  await apop?.load();
  const store = storeFor(config);
  // systemd socket activation: the inherited sockets replace the configured listeners.
  const activated = opts.stdio ? [] : listenFds();
  // --workers N: this process becomes the cluster primary (src/cli/cluster.ts), serving nobody.
  if (clusterWanted(config, opts.stdio, activated.length > 0)) return runPrimary(config, () => recover(store));
  if (!cluster.isWorker) await recover(store); // a cluster's primary recovered before forking
  if (activated.length > 0) log.info('socket activation', { fds: activated.map((a) => `${a.fd}${a.tls ? '(tls)' : ''}`).join(',') });
  const server = new Pop3Server({
    listen: opts.stdio || activated.length > 0 ? [] : config.listen,
    listenTls: opts.stdio || activated.length > 0 ? [] : config.listenTls,
    activated,
    proxyTrusted: config.proxyTrusted,
    authFailureDelayMs: config.authFailureDelay * 1000,
    throttle: throttleFor(config),
    policy: new LoginPolicy(config.loginDelay, config.expire),
    ...(apop ? { apop } : {}),
    tls: readTls(config),
    maxConnections: config.maxConnections,
    maxConnectionsPerIp: config.maxPerIp,
    idleTimeoutMs: config.idleTimeout * 1000,
    preauthTimeoutMs: config.preauthTimeout * 1000,
    allowPlaintextAuth: config.allowPlaintextAuth,
    dropOpener: filterOpener(store, config),
    authenticator,
  });
  if (opts.stdio) {
    const conn = await stdioConnection();
    privileges(config);
    await server.serveStream(conn.stream, conn.peer);
    return;
  }
  let bound;
  try {
    bound = await server.listen();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new PopspoolError('CONFIG', `cannot listen: ${e.code ?? ''} ${e.message}`.trim());
  }
  // Bound (as root if need be); now, before the first accept callback runs, give root up.
  privileges(config);
  // The first big scan should pay neither the scan thread's start-up nor the JIT's (warmup.ts).
  prewarmScanWorker();
  void warmScanner().catch((e: unknown) => log.warn('scanner warm-up failed', { error: String(e) }));
  for (const b of bound) log.info('listening', { address: b.address, port: b.port });
  let draining = false;
  const control = new ServerControl(server, () => config, () => draining);
  const admin = config.adminListen && workerIndex() === 0 ? await startAdmin(config, control) : undefined;
  opts.onListening?.(bound);

  const stop = (signal: string): void => {
    if (draining) return;
    draining = true;
    void drain(server, config.drainTimeout * 1000, signal)
      .then(() => admin?.close())
      .then(() => backgroundSettled())
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    void reload(opts.reloadConfig, config, { server, users, admin, control, stdio: opts.stdio }).then((next) => (config = next));
  });
}

/** Crash recovery of interrupted updates: once, before anyone can open a spool. */
async function recover(store: SpoolStore): Promise<void> {
  const recovered = await store.recoverAll();
  if (recovered > 0) log.warn('recovered interrupted updates at start-up', { count: recovered });
}

/**
 * The auth backend: the users file (loaded now: a bad file is a start-up error, not a stream of
 * failed logins) or PAM (the addon loaded now: missing, it is exit 2 naming the package).
 */
export async function authenticatorFor(config: Config): Promise<{ authenticator: Authenticator; users?: PasswdFile }> {
  if (config.auth === 'pam') {
    const file = pamServiceFile(config.pamService);
    const pam = new PamAuthenticator(loadPam(), { service: config.pamService });
    log.info('authentication: PAM', { service: config.pamService, file });
    return { authenticator: pam };
  }
  if (!fs.existsSync(config.users)) throw new PopspoolError('CONFIG', `users file ${config.users} does not exist (create it with "popspool user add NAME --users ${config.users}")`);
  const users = new PasswdFile(config.users);
  await users.load();
  return { authenticator: users, users };
}

async function startAdmin(config: Config, control: ServerControl): Promise<AdminServer> {
  const metrics = new Metrics();
  metrics.attach(control);
  let admin: AdminServer;
  try {
    admin = new AdminServer(control, metrics, { listen: config.adminListen, tokenFile: config.adminTokenFile || undefined });
  } catch (err) {
    throw new PopspoolError('CONFIG', `admin-token-file: ${(err as Error).message}`);
  }
  try {
    const a = await admin.listen();
    log.info('admin listening', { address: a.address, port: a.port, token: Boolean(config.adminTokenFile) });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new PopspoolError('CONFIG', `cannot listen on admin-listen ${config.adminListen}: ${e.code ?? e.message}`);
  }
  return admin;
}

/**
 * SIGTERM: stop accepting at once, let sessions finish on their own for up to `timeoutMs`, then
 * end the rest at their next safe point (Pop3Server.close never interrupts an UPDATE).
 */
export async function drain(server: Pop3Server, timeoutMs: number, signal: string): Promise<void> {
  log.info('draining: no longer accepting connections', { signal, sessions: server.connectionCount, timeout_s: timeoutMs / 1000 });
  await server.stopListening();
  const deadline = Date.now() + timeoutMs;
  while (server.connectionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
  if (server.connectionCount > 0) log.info('drain timeout: ending remaining sessions (updates in progress complete first)', { sessions: server.connectionCount });
  await server.close();
  log.info('stopped');
}

/** How often a drain looks whether the last session has ended. */
const DRAIN_POLL_MS = 100;

export function throttleFor(config: Config): LoginThrottle {
  return new LoginThrottle({
    ...DEFAULT_THROTTLE,
    baseDelayMs: config.authFailureDelay * 1000,
    maxDelayMs: config.authFailureDelayMax * 1000,
    blockIpAfter: config.authBlockIpAfter,
    blockUserAfter: config.authBlockUserAfter,
    windowMs: config.authPenaltyWindow * 1000,
  });
}

/** --user/--group: switch identity (a ConfigError, exit 2, when it cannot be done). */
function privileges(config: Config): void {
  const ids = dropPrivileges({ user: config.user, group: config.group });
  if (!ids) return;
  log.info('dropped privileges', { user: config.user || undefined, group: config.group || undefined, uid: ids.uid, gid: ids.gid });
  // Sessions need state-dir (session locks, caches, journals): say so now, not at every login.
  try {
    fs.accessSync(config.stateDir, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    throw new PopspoolError('CONFIG', `state-dir ${config.stateDir} is not writable by uid ${ids.uid} gid ${ids.gid} after dropping privileges (chown it to the service user)`);
  }
}

/**
 * inetd/xinetd/systemd Accept=yes hand us the connection as fd 0. When it is a TCP socket, use
 * it as one, so the peer address (and with it the plaintext-auth policy and the logs) is the
 * real client's. Behind a launcher that hands us a socketpair or pipes instead (socat EXEC,
 * ucspi-tcp's tcpserver), the client's address comes from the launcher's environment
 * (SOCAT_PEERADDR, TCPREMOTEIP) and is then treated as remote; with neither, a pipe or Unix
 * socket (a local test, an ssh forced command) counts as local.
 */
async function stdioConnection(): Promise<{ stream: import('node:stream').Duplex; peer: PeerInfo }> {
  const st = fs.fstatSync(0);
  const net = await import('node:net');
  const launcherPeer = [process.env.SOCAT_PEERADDR, process.env.TCPREMOTEIP].find((a) => a && net.isIP(a) !== 0);
  let stream: import('node:stream').Duplex;
  let tcpPeer: string | undefined;
  // One socket on fd 0 and fd 1 (inetd dup()s it): use it both ways. Separate descriptors
  // (node's and many supervisors' stdio are two socketpairs) must stay separate.
  const st1 = fs.fstatSync(1);
  if (st.isSocket() && st1.isSocket() && st.ino === st1.ino && st.dev === st1.dev) {
    const sock = new net.Socket({ fd: 0, readable: true, writable: true });
    tcpPeer = sock.remoteAddress;
    if (tcpPeer) sock.setNoDelay(true); // as for our own listeners: no Nagle stall after each reply
    stream = sock;
  } else {
    const { Duplex } = await import('node:stream');
    stream = Duplex.from({ readable: process.stdin, writable: process.stdout });
  }
  const remoteAddress = tcpPeer ?? launcherPeer;
  return { stream, peer: remoteAddress ? { remoteAddress, tls: false } : { remoteAddress: '', tls: false, local: true } };
}

/**
 * `popspool serve`: wires the typed Config into the spool store, the authenticator and the
 * listeners; recovers interrupted updates before accepting anyone; drains on SIGTERM/SIGINT.
 */
import fs from 'node:fs';
import type { Config } from '../config/settings.js';
import { configureLogging, log } from '../obs/log.js';
import { PasswdFile } from '../auth/passwd-file.js';
import { Pop3Server, type TlsCredentials } from '../server/server.js';
import { SpoolStore } from '../spool/store.js';
import { DEFAULT_LOCK_OPTIONS } from '../lock/index.js';
import { PopspoolError } from '../errors.js';

export interface ServeOptions {
  readonly stdio: boolean;
  /** Called with the bound addresses once listening (demo mode prints how to connect). */
  readonly onListening?: (addresses: readonly { address: string; port: number }[]) => void;
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

function readTls(config: Config): TlsCredentials | undefined {
  if (!config.tlsCert) return undefined;
  try {
    return { cert: fs.readFileSync(config.tlsCert), key: fs.readFileSync(config.tlsKey) };
  } catch (err) {
    throw new PopspoolError('CONFIG', `cannot read TLS key/certificate: ${(err as Error).message}`);
  }
}

export async function serve(config: Config, opts: ServeOptions): Promise<void> {
  configureLogging({ level: config.logLevel, format: config.logFormat });
  if (!fs.existsSync(config.users)) throw new PopspoolError('CONFIG', `users file ${config.users} does not exist (create it with "popspool user add NAME --users ${config.users}")`);
  const users = new PasswdFile(config.users);
  await users.load(); // a bad users file is a start-up error, not a stream of failed logins
  const store = storeFor(config);
  const recovered = await store.recoverAll();
  if (recovered > 0) log.warn('recovered interrupted updates at start-up', { count: recovered });
  const server = new Pop3Server({
    listen: opts.stdio ? [] : config.listen,
    listenTls: opts.stdio ? [] : config.listenTls,
    tls: readTls(config),
    maxConnections: config.maxConnections,
    maxConnectionsPerIp: config.maxPerIp,
    idleTimeoutMs: config.idleTimeout * 1000,
    preauthTimeoutMs: config.preauthTimeout * 1000,
    allowPlaintextAuth: config.allowPlaintextAuth,
    dropOpener: store,
    authenticator: users,
  });
  if (opts.stdio) {
    await server.serveStream(await stdioConnection());
    return;
  }
  let bound;
  try {
    bound = await server.listen();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new PopspoolError('CONFIG', `cannot listen: ${e.code ?? ''} ${e.message}`.trim());
  }
  for (const b of bound) log.info('listening', { address: b.address, port: b.port });
  opts.onListening?.(bound);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down; waiting for updates in progress', { signal });
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    try {
      const creds = readTls(config);
      if (creds) server.setSecureContext(creds);
      log.info('SIGHUP: TLS credentials reloaded');
    } catch (err) {
      log.error('SIGHUP: reload failed', { error: (err as Error).message });
    }
  });
}

/**
 * inetd/xinetd/systemd Accept=yes hand us the connection as fd 0. When it is a socket, use it as
 * one, so the peer address (and with it the plaintext-auth policy and the logs) is the real
 * client's; a pipe (a local test, ssh forced command) counts as local.
 */
async function stdioConnection(): Promise<import('node:stream').Duplex> {
  const st = fs.fstatSync(0);
  if (st.isSocket()) {
    const net = await import('node:net');
    return new net.Socket({ fd: 0, readable: true, writable: true });
  }
  const { Duplex } = await import('node:stream');
  return Duplex.from({ readable: process.stdin, writable: process.stdout });
}

/**
 * Listeners and connection policy: plain (with STLS) and implicit-TLS TCP listeners, total and
 * per-IP connection limits, TLS context reload, graceful close, and serveStream() for the
 * inetd/stdio mode. Each accepted connection becomes a Pop3Session; this file knows nothing of
 * POP3 commands or spools.
 */
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Authenticator } from '../auth/types.js';
import { ConfigError } from '../errors.js';
import { log } from '../obs/log.js';
import type { PeerInfo } from '../pop3/peer.js';
import { Pop3Session, type SessionOptions } from '../pop3/session.js';
import type { DropOpener } from '../spool/drop.js';

/** PEM key and certificate (chain) for STLS and implicit TLS. */
export interface TlsCredentials {
  readonly key: string | Buffer;
  readonly cert: string | Buffer;
}

export interface ServerOptions {
  /** Plain listeners, "host:port" ("[::1]:110" for IPv6; "110" = all interfaces). STLS is offered when `tls` is set. */
  readonly listen?: readonly string[];
  /** Implicit-TLS listeners (RFC 8314, port 995); require `tls`. */
  readonly listenTls?: readonly string[];
  readonly tls?: TlsCredentials | undefined;
  /** All concurrent sessions (popa3d MAX_SESSIONS is 100; one Node process handles thousands). */
  readonly maxConnections?: number;
  /** Concurrent sessions from one address (popa3d MAX_SESSIONS_PER_SOURCE, Dovecot: 10). */
  readonly maxConnectionsPerIp?: number;
  /** RFC 1939 §3: the autologout timer "MUST be of at least 10 minutes' duration". */
  readonly idleTimeoutMs?: number;
  /** Idle limit before login: idle unauthenticated connections should not hold slots for 10 min. */
  readonly preauthTimeoutMs?: number;
  /** Allow cleartext USER/PASS/AUTH on unencrypted, non-loopback connections. */
  readonly allowPlaintextAuth?: boolean;
  /** IMPLEMENTATION capability; '' hides it. */
  readonly implementation?: string;
  /** Delay before a failed-login reply (Dovecot auth_failure_delay is 2 s). */
  readonly authFailureDelayMs?: number;
  /** Failed logins on one connection before hanging up. */
  readonly maxAuthFailures?: number;
  readonly dropOpener: DropOpener;
  readonly authenticator: Authenticator;
}

type Defaults = Required<Omit<ServerOptions, 'dropOpener' | 'authenticator' | 'tls'>>;

export const DEFAULT_SERVER_OPTIONS: Readonly<Defaults> = Object.freeze({
  listen: ['0.0.0.0:110'],
  listenTls: [],
  maxConnections: 1000,
  maxConnectionsPerIp: 10,
  idleTimeoutMs: 600_000,
  preauthTimeoutMs: 60_000,
  allowPlaintextAuth: false,
  implementation: 'popspool',
  authFailureDelayMs: 2000,
  maxAuthFailures: 3,
});

/** "host:port", "[v6]:port" or "port" → listen arguments. */
export function parseListenAddress(spec: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*)):(\d+)$/.exec(spec) ?? /^()()(\d+)$/.exec(spec);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new ConfigError(`invalid listen address "${spec}" (expected host:port or [ipv6]:port)`);
  const host = m[1] || m[2] || undefined;
  return { host, port };
}

/** Per-IP accounting key: IPv4-mapped IPv6 counts as the IPv4 address. */
function ipKey(address: string | undefined): string {
  const a = address ?? '';
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}

export class Pop3Server {
  private readonly opts: Defaults & ServerOptions;
  private readonly servers: net.Server[] = [];
  private readonly tlsServers: tls.Server[] = [];
  private readonly sessions = new Set<Pop3Session>();
  private readonly perIp = new Map<string, number>();
  private secureContext: tls.SecureContext | undefined;
  private closing = false;

  constructor(opts: ServerOptions) {
    this.opts = { ...DEFAULT_SERVER_OPTIONS, ...stripUndefined(opts) } as Defaults & ServerOptions;
    if (this.opts.listenTls.length > 0 && !opts.tls) throw new ConfigError('implicit-TLS listeners need a TLS key and certificate');
    if (opts.tls) this.secureContext = tls.createSecureContext(opts.tls);
  }

  /** Live sessions (for metrics and tests). */
  get connectionCount(): number {
    return this.sessions.size;
  }

  async listen(): Promise<AddressInfo[]> {
    const bound: AddressInfo[] = [];
    for (const spec of this.opts.listen) {
      const srv = net.createServer({ pauseOnConnect: true }, (sock) => this.accept(sock, false));
      this.servers.push(srv);
      bound.push(await listenOn(srv, spec));
    }
    for (const spec of this.opts.listenTls) {
      const srv = tls.createServer({ ...this.opts.tls! });
      srv.on('secureConnection', (sock: tls.TLSSocket) => this.accept(sock, true));
      srv.on('tlsClientError', (e, sock) => log.debug('TLS handshake failed', { rip: sock.remoteAddress, error: e.message }));
      this.tlsServers.push(srv);
      this.servers.push(srv);
      bound.push(await listenOn(srv, spec));
    }
    return bound;
  }

  /** Replace the TLS key/certificate (SIGHUP after a renewal): new handshakes use them at once. */
  setSecureContext(creds: TlsCredentials): void {
    this.secureContext = tls.createSecureContext(creds);
    for (const s of this.tlsServers) s.setSecureContext(creds);
  }

  /**
   * Serve one connection on an arbitrary duplex (inetd/stdio mode: stdout is the connection,
   * logs go to stderr). A net.Socket keeps its remote address; anything else counts as local.
   */
  serveStream(stream: Duplex, peer?: PeerInfo): Promise<void> {
    const p: PeerInfo = peer ?? (stream instanceof net.Socket && stream.remoteAddress ? { remoteAddress: stream.remoteAddress, tls: stream instanceof tls.TLSSocket } : { remoteAddress: '', tls: false, local: true });
    return this.startSession(stream, p);
  }

  /** Stop accepting; end idle sessions at once; wait for sessions in UPDATE to finish. */
  async close(): Promise<void> {
    this.closing = true;
    const stopped = this.servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    for (const s of this.sessions) s.shutdown();
    await Promise.all([...this.sessions].map((s) => s.done));
    await Promise.all(stopped);
  }

  private accept(sock: net.Socket, implicitTls: boolean): void {
    const key = ipKey(sock.remoteAddress);
    sock.on('error', (e) => log.debug('connection error', { rip: key, error: e.message }));
    const perIp = this.perIp.get(key) ?? 0;
    if (this.closing || this.sessions.size >= this.opts.maxConnections || perIp >= this.opts.maxConnectionsPerIp) {
      // Answer instead of a silent drop, so the client can tell "busy" from "down".
      log.warn('connection refused: too many connections', { rip: key, total: this.sessions.size, per_ip: perIp });
      sock.end(this.closing ? '-ERR [SYS/TEMP] server shutting down\r\n' : '-ERR [SYS/TEMP] too many connections\r\n');
      setTimeout(() => sock.destroy(), 2000).unref();
      return;
    }
    this.perIp.set(key, perIp + 1);
    void this.startSession(sock, { remoteAddress: sock.remoteAddress ?? '', tls: implicitTls }).finally(() => {
      const n = (this.perIp.get(key) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(key);
      else this.perIp.set(key, n);
    });
  }

  private startSession(stream: Duplex, peer: PeerInfo): Promise<void> {
    const o = this.opts;
    const sessionOpts: SessionOptions = {
      authenticator: o.authenticator,
      dropOpener: o.dropOpener,
      idleTimeoutMs: o.idleTimeoutMs,
      preauthTimeoutMs: o.preauthTimeoutMs,
      allowPlaintextAuth: o.allowPlaintextAuth,
      secureContext: () => this.secureContext,
      implementation: o.implementation,
      authFailureDelayMs: o.authFailureDelayMs,
      maxAuthFailures: o.maxAuthFailures,
    };
    const session = new Pop3Session(stream, peer, sessionOpts);
    this.sessions.add(session);
    session.start();
    return session.done.finally(() => this.sessions.delete(session));
  }
}

function listenOn(srv: net.Server, spec: string): Promise<AddressInfo> {
  const { host, port } = parseListenAddress(spec);
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host, port }, () => {
      srv.off('error', reject);
      srv.on('error', (e) => log.error('listener error', { listen: spec, error: e.message }));
      resolve(srv.address() as AddressInfo);
    });
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

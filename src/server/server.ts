/**
 * Listeners and connection policy: plain (with STLS) and implicit-TLS TCP listeners (bound here
 * or inherited from systemd), PROXY headers from trusted balancers, total and per-IP connection
 * limits, TLS context reload, graceful close, and serveStream() for the inetd/stdio mode. Each accepted connection becomes a Pop3Session; this file knows nothing of
 * POP3 commands or spools.
 */
import net, { type AddressInfo } from 'node:net';
import { Duplex as StreamDuplex, type Duplex } from 'node:stream';
import tls from 'node:tls';
import type { ApopSecrets } from '../auth/apop.js';
import { DEFAULT_THROTTLE, LoginThrottle } from '../auth/throttle.js';
import type { Authenticator } from '../auth/types.js';
import { ConfigError } from '../errors.js';
import { serverEvents } from '../obs/events.js';
import { log } from '../obs/log.js';
import type { PeerInfo } from '../pop3/peer.js';
import type { LoginPolicy } from '../pop3/login-policy.js';
import { Pop3Session, type SessionOptions } from '../pop3/session.js';
import type { DropOpener } from '../spool/drop.js';
import { PROXY_HEADER_TIMEOUT_MS, readProxyHeader } from './proxy.js';
import type { ActivatedSocket } from './systemd.js';

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
  /** EXPIRE / LOGIN-DELAY policy (RFC 2449 §6.7, §6.8). */
  readonly policy?: LoginPolicy;
  /** Delay before a failed-login reply (Dovecot auth_failure_delay is 2 s). */
  readonly authFailureDelayMs?: number;
  /** Failed logins on one connection before hanging up. */
  readonly maxAuthFailures?: number;
  /** Balancers (CIDRs or addresses) whose connections start with a PROXY v1/v2 header. */
  readonly proxyTrusted?: readonly string[];
  /** How long a trusted balancer may take to send its PROXY header. */
  readonly proxyHeaderTimeoutMs?: number;
  /** Failed-login throttle shared by all sessions (default: DEFAULT_THROTTLE with authFailureDelayMs as the base delay). */
  readonly throttle?: LoginThrottle;
  /** APOP secrets: when set, the greeting carries a timestamp and APOP is accepted. */
  readonly apop?: ApopSecrets;
  /** Listening sockets inherited from systemd (socket activation), served besides `listen`. */
  readonly activated?: readonly ActivatedSocket[];
  readonly dropOpener: DropOpener;
  readonly authenticator: Authenticator;
}

type Defaults = Required<Omit<ServerOptions, 'dropOpener' | 'authenticator' | 'tls' | 'throttle' | 'apop' | 'activated' | 'policy'>>;

/** Settings an operator may change while the server runs (`popspool admin set`, SIGHUP). */
export interface RuntimeLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  readonly idleTimeoutMs: number;
  readonly preauthTimeoutMs: number;
}

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
  proxyTrusted: [],
  proxyHeaderTimeoutMs: PROXY_HEADER_TIMEOUT_MS,
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
  /** Connections not yet sessions (PROXY header or TLS handshake pending): destroyed by close(). */
  private readonly pending = new Set<net.Socket>();
  private readonly trusted = new net.BlockList();
  private readonly throttle: LoginThrottle;
  private readonly sessions = new Set<Pop3Session>();
  private readonly perIp = new Map<string, number>();
  private secureContext: tls.SecureContext | undefined;
  private closing = false;

  constructor(opts: ServerOptions) {
    this.opts = { ...DEFAULT_SERVER_OPTIONS, ...stripUndefined(opts) } as Defaults & ServerOptions;
    if (this.opts.listenTls.length > 0 && !opts.tls) throw new ConfigError('implicit-TLS listeners need a TLS key and certificate');
    if (opts.tls) this.secureContext = tls.createSecureContext(opts.tls);
    for (const cidr of this.opts.proxyTrusted) addToBlockList(this.trusted, cidr);
    this.throttle = opts.throttle ?? new LoginThrottle({ ...DEFAULT_THROTTLE, baseDelayMs: this.opts.authFailureDelayMs });
  }

  /** Live sessions (for metrics and tests). */
  get connectionCount(): number {
    return this.sessions.size;
  }

  /** The limits that can change at run time (admin listener, SIGHUP). */
  get limits(): RuntimeLimits {
    const o = this.opts;
    return { maxConnections: o.maxConnections, maxConnectionsPerIp: o.maxConnectionsPerIp, idleTimeoutMs: o.idleTimeoutMs, preauthTimeoutMs: o.preauthTimeoutMs };
  }

  /**
   * Change limits without a restart. Connection limits apply to the next accept (sessions over a
   * lowered limit are not cut); timeouts apply to sessions that start afterwards.
   */
  setLimits(change: Partial<RuntimeLimits>): void {
    Object.assign(this.opts, stripUndefined(change));
  }

  /** Drain, step 1: stop accepting (listeners closed); sessions continue. */
  async stopListening(): Promise<void> {
    this.closing = true;
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  async listen(): Promise<AddressInfo[]> {
    const bound: AddressInfo[] = [];
    for (const spec of this.opts.listen) {
      const srv = net.createServer({ pauseOnConnect: true }, (sock) => this.accept(sock, false));
      this.servers.push(srv);
      bound.push(await listenOn(srv, spec));
    }
    // Implicit TLS is a plain listener whose sockets we wrap ourselves: a PROXY header comes
    // before the TLS handshake, and the context is the one holder SIGHUP replaces.
    for (const spec of this.opts.listenTls) {
      const srv = net.createServer({ pauseOnConnect: true }, (sock) => this.accept(sock, true));
      this.servers.push(srv);
      bound.push(await listenOn(srv, spec));
    }
    for (const a of this.opts.activated ?? []) {
      if (a.tls && !this.secureContext) throw new ConfigError(`systemd socket "${a.name}" (fd ${a.fd}) is for implicit TLS but no TLS key and certificate are set`);
      const srv = net.createServer({ pauseOnConnect: true }, (sock) => this.accept(sock, a.tls));
      this.servers.push(srv);
      bound.push(await listenOnFd(srv, a.fd));
    }
    return bound;
  }

  /** Replace the TLS key/certificate (SIGHUP after a renewal): new handshakes use them at once. */
  setSecureContext(creds: TlsCredentials): void {
    this.secureContext = tls.createSecureContext(creds);
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
    for (const p of this.pending) p.destroy();
    for (const s of this.sessions) s.shutdown();
    await Promise.all([...this.sessions].map((s) => s.done));
    await Promise.all(stopped);
  }

  private accept(sock: net.Socket, implicitTls: boolean): void {
    // POP3 is request/response: without TCP_NODELAY, Nagle holds a reply's last small segment
    // (the "." line after RETR) until the client's delayed ACK, ~40 ms per message.
    sock.setNoDelay(true);
    sock.on('error', (e) => log.debug('connection error', { rip: sock.remoteAddress, error: e.message }));
    this.pending.add(sock);
    void this.admit(sock, implicitTls)
      .catch((e) => {
        log.warn('connection dropped before the session', { rip: sock.remoteAddress, error: (e as Error).message });
        sock.destroy();
      })
      .finally(() => this.pending.delete(sock));
  }

  /** PROXY header (trusted peers only), TLS handshake (implicit TLS), limits, then the session. */
  private async admit(sock: net.Socket, implicitTls: boolean): Promise<void> {
    let rip = sock.remoteAddress ?? '';
    let proxiedTls = false;
    let rest: Buffer = Buffer.alloc(0);
    if (this.isTrustedProxy(rip)) {
      const h = await readProxyHeader(sock, this.opts.proxyHeaderTimeoutMs);
      if (h.peer.address) rip = h.peer.address;
      proxiedTls = h.peer.tls;
      rest = h.rest;
      log.debug('PROXY header', { proxy: sock.remoteAddress, rip, tls: h.peer.tls });
    }
    let stream: net.Socket = sock;
    if (implicitTls) stream = await this.handshake(sock, rest, rip);
    else if (rest.length) sock.unshift(rest);
    if (stream.destroyed) return;
    this.limitAndStart(stream, rip, implicitTls || proxiedTls);
  }

  private isTrustedProxy(address: string): boolean {
    if (this.opts.proxyTrusted.length === 0 || !address) return false;
    const a = ipKey(address);
    return this.trusted.check(a, net.isIPv4(a) ? 'ipv4' : 'ipv6');
  }

  /** Server side of an implicit-TLS handshake, bounded by the pre-auth timeout. */
  private handshake(sock: net.Socket, early: Buffer, rip: string): Promise<tls.TLSSocket> {
    const ctx = this.secureContext;
    if (!ctx) return Promise.reject(new Error('no TLS context'));
    // TLS reads the socket's handle, not its JS buffer: bytes that came with a PROXY header
    // (the ClientHello) go in front through a stream wrapper instead.
    const transport = early.length ? prepend(early, sock) : sock;
    const secure = new tls.TLSSocket(transport as net.Socket, { isServer: true, secureContext: ctx });
    secure.on('error', (e) => log.debug('TLS connection error', { rip, error: e.message }));
    return new Promise((resolve, reject) => {
      const fail = (e: Error): void => {
        clearTimeout(timer);
        secure.off('close', onClose);
        secure.destroy();
        sock.destroy();
        reject(new Error(`TLS handshake failed: ${e.message}`));
      };
      const onClose = (): void => fail(new Error('closed'));
      const timer = setTimeout(() => fail(new Error('timed out')), this.opts.preauthTimeoutMs);
      timer.unref();
      secure.once('secure', () => {
        clearTimeout(timer);
        secure.off('error', fail);
        secure.off('close', onClose);
        resolve(secure);
      });
      secure.once('error', fail);
      secure.once('close', onClose);
      sock.resume();
    });
  }

  private limitAndStart(sock: net.Socket, rip: string, tlsActive: boolean): void {
    const key = ipKey(rip);
    const perIp = this.perIp.get(key) ?? 0;
    if (this.closing || this.sessions.size >= this.opts.maxConnections || perIp >= this.opts.maxConnectionsPerIp) {
      // Answer instead of a silent drop, so the client can tell "busy" from "down".
      log.warn('connection refused: too many connections', { rip: key, total: this.sessions.size, per_ip: perIp });
      serverEvents.emit('refused', { rip: key, reason: this.closing ? 'shutdown' : this.sessions.size >= this.opts.maxConnections ? 'limit' : 'per-ip' });
      sock.end(this.closing ? '-ERR [SYS/TEMP] server shutting down\r\n' : '-ERR [SYS/TEMP] too many connections\r\n');
      setTimeout(() => sock.destroy(), 2000).unref();
      return;
    }
    this.perIp.set(key, perIp + 1);
    void this.startSession(sock, { remoteAddress: rip, tls: tlsActive }).finally(() => {
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
      throttle: this.throttle,
      ...(o.apop ? { apop: o.apop } : {}),
      ...(o.policy ? { policy: o.policy } : {}),
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

/** A duplex over `sock` that reads `head` first (socket data flows through it unpaced). */
function prepend(head: Buffer, sock: net.Socket): Duplex {
  const d = new PassThroughDuplex(sock);
  d.push(head);
  return d;
}

class PassThroughDuplex extends StreamDuplex {
  constructor(private readonly sock: net.Socket) {
    super();
    sock.on('data', (c: Buffer) => this.push(c));
    sock.on('end', () => this.push(null));
    sock.on('close', () => this.destroy());
  }
  override _read(): void {
    this.sock.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.sock.write(chunk, cb);
  }
  override _final(cb: (e?: Error | null) => void): void {
    this.sock.end(cb);
  }
  override _destroy(e: Error | null, cb: (e?: Error | null) => void): void {
    this.sock.destroy();
    cb(e);
  }
}

function listenOnFd(srv: net.Server, fd: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ fd }, () => {
      srv.off('error', reject);
      srv.on('error', (e) => log.error('listener error', { fd, error: e.message }));
      resolve(srv.address() as AddressInfo);
    });
  });
}

/** "10.0.0.0/8", "2001:db8::/32" or a single address → the block list (ConfigError otherwise). */
export function addToBlockList(list: net.BlockList, spec: string): void {
  const [addr, bits, extra] = spec.trim().split('/');
  const family = net.isIPv4(addr ?? '') ? 'ipv4' : net.isIPv6(addr ?? '') ? 'ipv6' : undefined;
  const prefix = bits === undefined ? (family === 'ipv4' ? 32 : 128) : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!family || extra !== undefined || !(prefix >= 0 && prefix <= (family === 'ipv4' ? 32 : 128))) {
    throw new ConfigError(`proxy-trusted: "${spec}" is not an address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)`);
  }
  list.addSubnet(addr!, prefix, family);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

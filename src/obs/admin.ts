/**
 * The admin listener (node:http, loopback by default): GET /metrics (Prometheus), GET /healthz
 * (load balancers), GET /status (JSON for `popspool stats`), POST /limits (runtime changes for
 * `popspool admin set`). With a token file, everything but /healthz needs
 * "Authorization: Bearer TOKEN". Every change is logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseHostPort } from '../config/load.js';
import { log } from './log.js';
import type { Metrics } from './metrics.js';

/** A POST body larger than this is not a limits change. */
const MAX_BODY_BYTES = 4096;
/** Slow or stuck admin clients are cut off: the listener is for quick scripted calls. */
const REQUEST_TIMEOUT_MS = 10_000;

/** The limits `popspool admin set` may change, by their setting names. */
export const RUNTIME_SETTINGS = ['max-connections', 'max-per-ip', 'idle-timeout', 'preauth-timeout'] as const;
export type RuntimeSetting = (typeof RUNTIME_SETTINGS)[number];

/** What the admin listener needs from the running server (serve.ts provides it). */
export interface AdminTarget {
  /** Current values by setting name (seconds for timeouts). */
  limits(): Record<RuntimeSetting, number>;
  /** Validate and apply; throws a ConfigError naming the bad setting. Returns the new limits. */
  setLimits(change: Record<string, unknown>, source: string): Record<RuntimeSetting, number>;
  readonly draining: boolean;
  readonly connectionCount: number;
  readonly startedAt: Date;
  readonly mode: string;
}

export interface AdminOptions {
  readonly listen: string;
  readonly tokenFile?: string;
}

/** Read the bearer token (first line, trimmed). An empty or unreadable file is a config error. */
export function readToken(file: string): string {
  const token = fs.readFileSync(file, 'utf8').split('\n')[0]!.trim();
  if (token === '') throw new Error(`admin token file ${file} is empty`);
  return token;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export class AdminServer {
  private readonly http: http.Server;
  private token: string | undefined;

  constructor(private readonly target: AdminTarget, private readonly metrics: Metrics, private readonly opts: AdminOptions) {
    this.reloadToken();
    this.http = http.createServer((req, res) => void this.handle(req, res));
    this.http.requestTimeout = REQUEST_TIMEOUT_MS;
  }

  /** (Re-)read the token file (start and SIGHUP). */
  reloadToken(): void {
    this.token = this.opts.tokenFile ? readToken(this.opts.tokenFile) : undefined;
  }

  /** A bare ":PORT" binds loopback only: the admin port is never public by accident. */
  async listen(): Promise<AddressInfo> {
    const { port } = parseHostPort(this.opts.listen);
    const host = /^:/.test(this.opts.listen) ? '127.0.0.1' : parseHostPort(this.opts.listen).host;
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen({ host, port }, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    return this.http.address() as AddressInfo;
  }

  close(): Promise<void> {
    this.http.closeAllConnections();
    return new Promise((r) => this.http.close(() => r()));
  }

  private authorized(req: http.IncomingMessage): boolean {
    if (this.token === undefined) return true;
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    return m !== null && timingSafeEqual(digest(m[1]!), digest(this.token));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const json = (status: number, body: unknown): void => send(status, JSON.stringify(body, null, 2) + '\n', 'application/json');
    try {
      if (url.pathname === '/healthz') {
        // 503 while draining, so a balancer stops sending new clients before the port closes.
        return this.target.draining ? send(503, 'draining\n') : send(200, 'ok\n');
      }
      if (!this.authorized(req)) {
        res.setHeader('www-authenticate', 'Bearer');
        return send(401, 'unauthorized\n');
      }
      if (req.method === 'GET' && url.pathname === '/metrics') {
        return send(200, await this.metrics.text(), this.metrics.registry.contentType);
      }
      if (req.method === 'GET' && url.pathname === '/status') return json(200, this.status());
      if (req.method === 'POST' && url.pathname === '/limits') {
        const body = await readBody(req);
        let change: unknown;
        try {
          change = JSON.parse(body);
        } catch {
          return json(400, { error: 'body must be a JSON object of setting names to values' });
        }
        if (typeof change !== 'object' || change === null || Array.isArray(change)) return json(400, { error: 'body must be a JSON object' });
        try {
          const limits = this.target.setLimits(change as Record<string, unknown>, `admin ${req.socket.remoteAddress ?? ''}`.trim());
          return json(200, { limits });
        } catch (e) {
          return json(400, { error: (e as Error).message });
        }
      }
      return send(404, 'not found: GET /metrics, /healthz, /status; POST /limits\n');
    } catch (e) {
      log.error('admin request failed', { path: url.pathname, error: (e as Error).message });
      if (!res.headersSent) send(500, 'internal error\n');
      else res.destroy();
    }
  }

  /** /status: what `popspool stats` shows. */
  status(): Record<string, unknown> {
    const t = this.target;
    const m = this.metrics;
    return {
      pid: process.pid,
      mode: t.mode,
      startedAt: t.startedAt.toISOString(),
      uptimeSeconds: Math.round((Date.now() - t.startedAt.getTime()) / 1000),
      draining: t.draining,
      limits: t.limits(),
      connections: { live: t.connectionCount, total: m.totals.connections, refused: m.totals.refused },
      sessions: { total: m.totals.sessions, updates: m.totals.updates },
      logins: { ok: m.totals.loginsOk, failed: m.totals.loginsFailed },
      bytes: { in: m.totals.bytesIn, out: m.totals.bytesOut },
      commands: { retr: m.totals.retr, top: m.totals.top, dele: m.totals.dele },
      online: [...m.online.values()].filter((s) => s.user !== undefined).map((s) => ({ user: s.user, rip: s.rip, tls: s.tls, since: s.since })),
    };
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (d: Buffer) => {
      n += d.length;
      if (n > MAX_BODY_BYTES) {
        reject(new Error('request body too large'));
        req.destroy();
      } else parts.push(d);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

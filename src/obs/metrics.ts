/**
 * Prometheus metrics (prom-client, on a Registry of our own) and the live status table behind
 * /status, both fed by the server events (src/obs/events.ts). User names never become labels
 * (cardinality and privacy); they appear only in /status, which lists who is online now.
 */
import client from 'prom-client';
import { serverEvents, type LoginEvent, type RefusedEvent, type ServerEvents, type SessionEndEvent, type SessionStartEvent } from './events.js';

/** Lock waits: an MDA holds the lock for milliseconds; the lock timeout is seconds. */
const LOCK_WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Updates: untouched costs nothing, a compaction of a large spool takes seconds. */
const UPDATE_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60];

/** What the metrics need from the listener layer (Pop3Server satisfies it). */
export interface LiveSource {
  readonly connectionCount: number;
}

export interface OnlineSession {
  readonly id: number;
  readonly rip: string;
  readonly tls: boolean;
  readonly since: string;
  user?: string;
}

/** Totals since start, for /status and `popspool stats` (the same numbers as the counters). */
export interface Totals {
  connections: number;
  refused: number;
  sessions: number;
  loginsOk: number;
  loginsFailed: number;
  bytesIn: number;
  bytesOut: number;
  retr: number;
  top: number;
  dele: number;
  updates: Record<string, number>;
}

export class Metrics {
  readonly registry = new client.Registry();
  readonly online = new Map<number, OnlineSession>();
  readonly totals: Totals = { connections: 0, refused: 0, sessions: 0, loginsOk: 0, loginsFailed: 0, bytesIn: 0, bytesOut: 0, retr: 0, top: 0, dele: 0, updates: {} };
  private readonly listeners: [string, (...a: never[]) => void][] = [];
  private source: LiveSource | undefined;

  private readonly c: ReturnType<Metrics['define']>;

  constructor(private readonly events: ServerEvents = serverEvents, opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) client.collectDefaultMetrics({ register: this.registry, prefix: 'popspool_' });
    this.c = this.define();
    this.on('session-start', (e: SessionStartEvent) => this.sessionStart(e));
    this.on('login', (e: LoginEvent) => this.login(e));
    this.on('session-end', (e: SessionEndEvent) => this.sessionEnd(e));
    this.on('refused', (e: RefusedEvent) => this.refused(e));
  }

  /** Connect the live gauges to a server (connections now). */
  attach(source: LiveSource): void {
    this.source = source;
  }

  /** Stop listening to events (tests, reload). */
  detach(): void {
    for (const [name, fn] of this.listeners) this.events.off(name as 'login', fn as never);
    this.listeners.length = 0;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  private on<E extends 'session-start' | 'login' | 'session-end' | 'refused'>(name: E, fn: (e: never) => void): void {
    this.events.on(name, fn as never);
    this.listeners.push([name, fn]);
  }

  private define() {
    const registers = [this.registry];
    const self = this;
    return {
      live: new client.Gauge({
        name: 'popspool_connections_active', help: 'Connections being served now', registers,
        collect() { this.set(self.source?.connectionCount ?? self.online.size); },
      }),
      online: new client.Gauge({
        name: 'popspool_users_online', help: 'Logged-in sessions now', registers,
        collect() { this.set([...self.online.values()].filter((s) => s.user !== undefined).length); },
      }),
      connections: new client.Counter({ name: 'popspool_connections_total', help: 'Connections accepted', labelNames: ['tls'], registers }),
      refused: new client.Counter({ name: 'popspool_connections_refused_total', help: 'Connections refused by a limit or shutdown', labelNames: ['reason'], registers }),
      sessions: new client.Counter({ name: 'popspool_sessions_total', help: 'Sessions ended, by drop mode and update case', labelNames: ['mode', 'update'], registers }),
      ends: new client.Counter({ name: 'popspool_session_ends_total', help: 'Sessions ended, by how they ended', labelNames: ['end'], registers }),
      logins: new client.Counter({ name: 'popspool_logins_total', help: 'Login attempts by result', labelNames: ['result'], registers }),
      bytesIn: new client.Counter({ name: 'popspool_bytes_received_total', help: 'Bytes received from clients', registers }),
      bytesOut: new client.Counter({ name: 'popspool_bytes_sent_total', help: 'Bytes sent to clients', registers }),
      commands: new client.Counter({ name: 'popspool_commands_total', help: 'RETR, TOP and DELE commands that succeeded', labelNames: ['command'], registers }),
      commandBytes: new client.Counter({ name: 'popspool_command_bytes_total', help: 'Message octets sent by RETR/TOP, marked deleted by DELE', labelNames: ['command'], registers }),
      lockWait: new client.Histogram({ name: 'popspool_lock_wait_seconds', help: 'Time spent waiting for the spool lock', labelNames: ['phase'], buckets: LOCK_WAIT_BUCKETS, registers }),
      update: new client.Histogram({ name: 'popspool_update_duration_seconds', help: 'UPDATE phase duration by case', labelNames: ['case'], buckets: UPDATE_BUCKETS, registers }),
      rewritten: new client.Counter({ name: 'popspool_spool_bytes_rewritten_total', help: 'Spool bytes rewritten by updates', registers }),
      cache: new client.Counter({ name: 'popspool_cache_lookups_total', help: 'Scan cache at drop open: hit, tail (rescan of appended mail), miss, none (empty or copy mode)', labelNames: ['result'], registers }),
      scanned: new client.Counter({ name: 'popspool_spool_bytes_scanned_total', help: 'Spool bytes the scanner read to open drops', registers }),
    };
  }

  private sessionStart(e: SessionStartEvent): void {
    this.totals.connections++;
    this.c.connections.inc({ tls: String(e.tls) });
    this.online.set(e.id, { id: e.id, rip: e.rip, tls: e.tls, since: new Date().toISOString() });
  }

  private login(e: LoginEvent): void {
    this.c.logins.inc({ result: e.result });
    if (e.result !== 'ok') {
      if (e.result === 'fail') this.totals.loginsFailed++;
      return;
    }
    this.totals.loginsOk++;
    const s = this.online.get(e.id);
    if (s && e.user !== undefined) s.user = e.user;
    this.c.cache.inc({ result: e.cache ?? 'none' });
    if (e.lockWaitMs !== undefined) this.c.lockWait.observe({ phase: 'open' }, e.lockWaitMs / 1000);
    if (e.bytesScanned) this.c.scanned.inc(e.bytesScanned);
  }

  private sessionEnd(e: SessionEndEvent): void {
    this.online.delete(e.id);
    const t = this.totals;
    t.sessions++;
    t.bytesIn += e.bytesIn;
    t.bytesOut += e.bytesOut;
    t.retr += e.retr;
    t.top += e.top;
    t.dele += e.dele;
    t.updates[e.update] = (t.updates[e.update] ?? 0) + 1;
    const c = this.c;
    c.sessions.inc({ mode: e.mode ?? 'none', update: e.update });
    c.ends.inc({ end: e.end });
    c.bytesIn.inc(e.bytesIn);
    c.bytesOut.inc(e.bytesOut);
    c.commands.inc({ command: 'retr' }, e.retr);
    c.commands.inc({ command: 'top' }, e.top);
    c.commands.inc({ command: 'dele' }, e.dele);
    c.commandBytes.inc({ command: 'retr' }, e.retrBytes);
    c.commandBytes.inc({ command: 'top' }, e.topBytes);
    c.commandBytes.inc({ command: 'dele' }, e.deleBytes);
    if (e.updateMs !== undefined) c.update.observe({ case: e.update }, e.updateMs / 1000);
    if (e.updateLockWaitMs !== undefined) c.lockWait.observe({ phase: 'update' }, e.updateLockWaitMs / 1000);
    if (e.bytesRewritten) c.rewritten.inc(e.bytesRewritten);
  }

  private refused(e: RefusedEvent): void {
    this.totals.refused++;
    this.c.refused.inc({ reason: e.reason });
  }
}

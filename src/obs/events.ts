/**
 * Server events: the one seam between the protocol/listener layers and observability. Sessions
 * and listeners emit small typed facts here; metrics (src/obs/metrics.ts) and the admin
 * listener's /status subscribe. Emitting costs nothing when nobody listens, and nothing here
 * knows of sockets, spools or Prometheus.
 */
import { EventEmitter } from 'node:events';

/** How a login attempt ended (the `result` label of pop3_logins_total). */
export type LoginResult = 'ok' | 'fail' | 'inuse' | 'error';

export interface SessionStartEvent {
  readonly id: number;
  readonly rip: string;
  readonly tls: boolean;
}

export interface LoginEvent {
  readonly id: number;
  readonly rip: string;
  readonly result: LoginResult;
  /** Only for result 'ok' (never a label: users stay out of metric labels). */
  readonly user?: string;
  /** How the drop was opened (result 'ok' only). */
  readonly mode?: 'server' | 'copy';
  readonly cache?: 'hit' | 'tail' | 'miss' | 'none';
  readonly lockWaitMs?: number;
  readonly bytesScanned?: number;
}

/** Everything the summary log line says, as numbers (see docs/logging.md "session end"). */
export interface SessionEndEvent {
  readonly id: number;
  readonly rip: string;
  readonly user?: string;
  readonly tls: boolean;
  readonly mode?: 'server' | 'copy';
  readonly retr: number;
  readonly retrBytes: number;
  readonly top: number;
  readonly topBytes: number;
  readonly dele: number;
  readonly deleBytes: number;
  /** Update case ('none' when there was no UPDATE phase, 'failed' when it failed). */
  readonly update: string;
  readonly updateMs?: number;
  readonly updateLockWaitMs?: number;
  readonly bytesRewritten?: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly durationMs: number;
  readonly end: string;
}

export interface RefusedEvent {
  readonly rip: string;
  readonly reason: 'limit' | 'per-ip' | 'shutdown';
}

interface EventMap {
  'session-start': [SessionStartEvent];
  login: [LoginEvent];
  'session-end': [SessionEndEvent];
  refused: [RefusedEvent];
}

export class ServerEvents extends EventEmitter<EventMap> {
  private nextId = 1;
  /** A process-unique session number (the `session=` field of log lines). */
  sessionId(): number {
    return this.nextId++;
  }
}

/**
 * The process-wide event bus. One process serves one configuration, so one bus suffices;
 * subscribers must not throw (EventEmitter would propagate it into the session).
 */
export const serverEvents = new ServerEvents();
serverEvents.setMaxListeners(50);

/**
 * Live administration of a running `popspool serve`: runtime limit changes (admin listener,
 * `popspool admin set`) and the SIGHUP reload of the config file, users file, TLS credentials
 * and admin token. Every change is logged with its old and new value and who made it;
 * settings that cannot change live are logged as "restart required".
 */
import fs from 'node:fs';
import cluster from 'node:cluster';
import { ConfigError, PopspoolError } from '../errors.js';
import type { PasswdFile } from '../auth/passwd-file.js';
import { coerce, takeQpopperNotes } from '../config/load.js';
import { SETTINGS, camel, type Config, type SettingSpec } from '../config/settings.js';
import type { AdminServer, AdminTarget, RuntimeSetting } from '../obs/admin.js';
import { RUNTIME_SETTINGS } from '../obs/admin.js';
import { configureLogging, log, type LogOptions } from '../obs/log.js';
import type { Pop3Server, TlsCredentials } from '../server/server.js';

export function loggingOf(config: Config, stdio: boolean): LogOptions {
  return { level: config.logLevel, format: config.logFormat, facility: config.logFacility, syslogPath: config.syslogPath, stdio };
}

export function readTls(config: Config): TlsCredentials | undefined {
  if (!config.tlsCert) return undefined;
  try {
    return { cert: fs.readFileSync(config.tlsCert), key: fs.readFileSync(config.tlsKey) };
  } catch (err) {
    throw new PopspoolError('CONFIG', `cannot read TLS key/certificate: ${(err as Error).message}`);
  }
}

/**
 * Logs what the last config build made of the Qpopper file: one line per option — info for a
 * mapped option or one whose behaviour popspool has anyway, warn for one that is ignored.
 */
export function logQpopperNotes(): void {
  const taken = takeQpopperNotes();
  // --workers: the primary logs them once; each worker re-reads the same file.
  if (!taken || cluster.isWorker) return;
  for (const n of taken.notes) {
    const meta = { file: taken.file, line: n.line, option: n.option, effect: n.text };
    if (n.kind === 'ignored') log.warn('qpopper option ignored', meta);
    else log.info(n.kind === 'mapped' ? 'qpopper option mapped' : 'qpopper option already the behaviour', meta);
  }
}

const SPEC = new Map((SETTINGS as readonly SettingSpec[]).map((s) => [s.name, s]));

/** The running server as the admin listener sees it. */
export class ServerControl implements AdminTarget {
  readonly startedAt = new Date();

  constructor(private readonly server: Pop3Server, private readonly config: () => Config, private readonly isDraining: () => boolean) {}

  get draining(): boolean {
    return this.isDraining();
  }
  get connectionCount(): number {
    return this.server.connectionCount;
  }
  get mode(): string {
    return this.config().mode;
  }

  limits(): Record<RuntimeSetting, number> {
    const l = this.server.limits;
    return {
      'max-connections': l.maxConnections,
      'max-per-ip': l.maxConnectionsPerIp,
      'idle-timeout': Math.round(l.idleTimeoutMs / 1000),
      'preauth-timeout': Math.round(l.preauthTimeoutMs / 1000),
    };
  }

  /** Validates every value against the settings table first: a bad request changes nothing. */
  setLimits(change: Record<string, unknown>, source: string): Record<RuntimeSetting, number> {
    const values = new Map<RuntimeSetting, number>();
    for (const [name, raw] of Object.entries(change)) {
      if (!(RUNTIME_SETTINGS as readonly string[]).includes(name)) {
        throw new ConfigError(`${name}: not changeable at run time (one of ${RUNTIME_SETTINGS.join(', ')})`);
      }
      values.set(name as RuntimeSetting, coerce(SPEC.get(name)!, typeof raw === 'number' ? raw : String(raw), source) as number);
    }
    const before = this.limits();
    const v = (n: RuntimeSetting) => values.get(n);
    const ms = (n: RuntimeSetting) => (v(n) === undefined ? undefined : v(n)! * 1000);
    this.server.setLimits({
      ...(v('max-connections') === undefined ? {} : { maxConnections: v('max-connections')! }),
      ...(v('max-per-ip') === undefined ? {} : { maxConnectionsPerIp: v('max-per-ip')! }),
      ...(ms('idle-timeout') === undefined ? {} : { idleTimeoutMs: ms('idle-timeout')! }),
      ...(ms('preauth-timeout') === undefined ? {} : { preauthTimeoutMs: ms('preauth-timeout')! }),
    });
    for (const [name, value] of values) {
      if (before[name] !== value) log.info('limit changed', { setting: name, old: before[name], new: value, by: source });
    }
    return this.limits();
  }
}

export interface Reloadable {
  readonly server: Pop3Server;
  /** Absent with auth = pam (nothing to re-read). */
  readonly users?: PasswdFile | undefined;
  readonly admin: AdminServer | undefined;
  readonly control: ServerControl;
  readonly stdio: boolean;
}

/** Settings reload() applies live; any other changed setting is logged as "restart required". */
const LIVE = new Set(['max-connections', 'max-per-ip', 'idle-timeout', 'preauth-timeout', 'log-level', 'log-format', 'log-facility', 'syslog-path', 'tls-cert', 'tls-key', 'admin-token-file', 'drain-timeout']);

/**
 * SIGHUP. A config file that no longer parses is reported and the running configuration kept:
 * a typo must not take the server down. Returns the configuration now in effect.
 */
export async function reload(reloadConfig: (() => Config) | undefined, current: Config, r: Reloadable): Promise<Config> {
  let next = current;
  if (reloadConfig) {
    try {
      next = reloadConfig();
      logQpopperNotes();
    } catch (err) {
      log.error('SIGHUP: config file invalid; keeping the running configuration', { error: (err as Error).message });
      next = current;
    }
  }
  const changed = (SETTINGS as readonly SettingSpec[]).filter((s) => JSON.stringify(current[camel(s.name) as keyof Config]) !== JSON.stringify(next[camel(s.name) as keyof Config])).map((s) => s.name);
  if (changed.some((n) => n.startsWith('log-') || n === 'syslog-path')) {
    configureLogging(loggingOf(next, r.stdio));
    log.info('SIGHUP: logging reconfigured', { level: next.logLevel, format: next.logFormat });
  }
  r.control.setLimits({ 'max-connections': next.maxConnections, 'max-per-ip': next.maxPerIp, 'idle-timeout': next.idleTimeout, 'preauth-timeout': next.preauthTimeout }, 'SIGHUP');
  try {
    const creds = readTls(next);
    if (creds) {
      r.server.setSecureContext(creds);
      log.info('SIGHUP: TLS credentials reloaded', { cert: next.tlsCert });
    }
  } catch (err) {
    log.error('SIGHUP: TLS reload failed; keeping the old certificate', { error: (err as Error).message });
  }
  if (r.users) {
    try {
      await r.users.load();
      log.info('SIGHUP: users file reloaded', { file: r.users.file, users: r.users.userNames.length });
    } catch (err) {
      log.error('SIGHUP: users file invalid; keeping the loaded users', { error: (err as Error).message });
    }
  }
  try {
    r.admin?.reloadToken();
  } catch (err) {
    log.error('SIGHUP: admin token not reloaded', { error: (err as Error).message });
  }
  for (const name of changed) if (!LIVE.has(name)) log.warn('SIGHUP: setting changed; restart required for it to take effect', { setting: name });
  log.info('SIGHUP: reload complete', { changed: changed.join(',') || 'none' });
  return next;
}

/**
 * Logging (winston). One process-wide logger; modules take a child with `component` set.
 * Outputs, chosen by the log-format setting (docs/logging.md has every line):
 *   text    — `ISO-time level: message key=value…` on stderr, for a terminal or a file;
 *   json    — one JSON object per line on stderr, for log shippers;
 *   journal — `<N>message key=value…` on stderr: journald reads the `<N>` as the priority
 *             (SyslogLevelPrefix=yes) and adds time, host and ident itself;
 *   syslog  — RFC 3164 datagrams to /dev/log (winston-syslog), facility mail, ident popspool;
 *   auto    — journal under systemd (JOURNAL_STREAM set), syslog in inetd mode when stderr is
 *             the client's socket, else text.
 * Never log a password or an AUTH payload, at any level.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import winston from 'winston';
import type Transport from 'winston-transport';

export type LogFormat = 'auto' | 'text' | 'json' | 'journal' | 'syslog';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface LogOptions {
  readonly level: LogLevel;
  readonly format: LogFormat;
  /** Syslog facility (Qpopper's log-facility); 'mail' is where mail admins look. */
  readonly facility?: string;
  /** Unix datagram socket of the syslog daemon. */
  readonly syslogPath?: string;
  /** Serving one connection on stdin/stdout (inetd): stderr may be the client's socket. */
  readonly stdio?: boolean;
}

/** syslog(3) severities for our levels: what journald's `<N>` prefix carries. */
const SEVERITY: Readonly<Record<string, number>> = { error: 3, warn: 4, info: 6, verbose: 7, debug: 7, silly: 7 };

/** The name in syslog lines and the fail2ban filter. */
export const LOG_IDENT = 'popspool';

/**
 * key=value rendering (Haraka-style). A value with anything but printable ASCII, `"` or `=` is
 * JSON-quoted, so a hostile user name can never forge a field or a line.
 */
export function kv(meta: Record<string, unknown>): string {
  return Object.entries(meta)
    .filter(([k, v]) => v !== undefined && k !== 'level' && k !== 'message' && k !== 'timestamp')
    .map(([k, v]) => {
      const s = typeof v === 'string' ? v : JSON.stringify(v);
      return `${k}=${s === '' || /[^\x21-\x7e]|["=]/.test(s) ? JSON.stringify(s) : s}`;
    })
    .join(' ');
}

function line(info: Record<string, unknown>): string {
  const { level: _l, message, timestamp: _t, ...meta } = info;
  const rest = kv(meta);
  return `${String(message)}${rest ? ' ' + rest : ''}`;
}

const textFormat = winston.format.printf((info) => `${info.timestamp as string} ${info.level}: ${line(info as Record<string, unknown>)}`);
const journalFormat = winston.format.printf((info) => `<${SEVERITY[info.level] ?? 6}>${line(info as Record<string, unknown>)}`);
const bareFormat = winston.format.printf((info) => line(info as Record<string, unknown>));

/** Everything goes to stderr: stdout may be the POP3 connection (stdio/inetd mode). */
const stderrTransport = (): Transport => new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'verbose', 'debug', 'silly'] });

export const log = winston.createLogger({
  level: process.env.POPSPOOL_LOG_LEVEL ?? 'info',
  format: winston.format.combine(winston.format.timestamp(), textFormat),
  transports: [stderrTransport()],
});

/** Resolve 'auto' to what the environment expects. */
export function resolveFormat(opts: Pick<LogOptions, 'format' | 'stdio'>, env = process.env, stderrFd = 2): Exclude<LogFormat, 'auto'> {
  if (opts.format !== 'auto') return opts.format;
  if (env.JOURNAL_STREAM) return 'journal'; // systemd connected stderr to the journal
  // inetd/xinetd hand the socket as fds 0, 1 *and* 2: writing logs there would talk to the client.
  if (opts.stdio && stderrIsSocket(stderrFd)) return 'syslog';
  return 'text';
}

function stderrIsSocket(fd = 2): boolean {
  try {
    return fs.fstatSync(fd).isSocket();
  } catch {
    return true; // closed or unusable: do not write there
  }
}

function syslogTransport(opts: LogOptions): Transport | null {
  const path = opts.syslogPath ?? '/dev/log';
  if (!fs.existsSync(path)) return null;
  try {
    const { Syslog } = createRequire(import.meta.url)('winston-syslog') as { Syslog: new (o: object) => Transport };
    const t = new Syslog({
      protocol: 'unix', path, facility: opts.facility ?? 'mail', app_name: LOG_IDENT, localhost: '', format: bareFormat,
    });
    let complained = false;
    t.on('error', (e: Error) => {
      if (!complained) process.stderr.write(`popspool: syslog ${path}: ${e.message}\n`);
      complained = true;
    });
    return t;
  } catch (e) {
    process.stderr.write(`popspool: syslog unavailable (${(e as Error).message}); logging to stderr\n`);
    return null;
  }
}

export function configureLogging(opts: LogOptions): Exclude<LogFormat, 'auto'> {
  let format = resolveFormat(opts);
  log.level = opts.level;
  let transport: Transport | null = null;
  log.silent = false;
  if (format === 'syslog') {
    transport = syslogTransport(opts);
    if (!transport) {
      // No syslog daemon: stderr is all there is, unless stderr is the client's socket (inetd).
      format = 'text';
      log.silent = Boolean(opts.stdio) && stderrIsSocket();
    }
  }
  log.clear();
  log.add(transport ?? stderrTransport());
  log.format =
    format === 'json' ? winston.format.combine(winston.format.timestamp(), winston.format.json())
      : format === 'journal' ? journalFormat
        : format === 'syslog' ? bareFormat
          : winston.format.combine(winston.format.timestamp(), textFormat);
  return format;
}

export type Logger = winston.Logger;

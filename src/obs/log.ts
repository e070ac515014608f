/**
 * Logging (winston). One process-wide logger; modules take a child with `component` set.
 * Never log a password or an AUTH payload, at any level.
 */
import winston from 'winston';

export type LogFormat = 'text' | 'json';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface LogOptions {
  readonly level: LogLevel;
  readonly format: LogFormat;
}

/** key=value rendering for the human-readable format (Haraka-style summary lines). */
function kv(meta: Record<string, unknown>): string {
  return Object.entries(meta)
    .filter(([k, v]) => v !== undefined && k !== 'level' && k !== 'message' && k !== 'timestamp')
    .map(([k, v]) => {
      const s = typeof v === 'string' ? v : JSON.stringify(v);
      return `${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
    })
    .join(' ');
}

const textFormat = winston.format.printf((info) => {
  const { level, message, timestamp, ...meta } = info as Record<string, unknown>;
  const rest = kv(meta);
  return `${timestamp as string} ${level}: ${message as string}${rest ? ' ' + rest : ''}`;
});

/** Everything goes to stderr: stdout may be the POP3 connection (stdio/inetd mode). */
export const log = winston.createLogger({
  level: process.env.POPSPOOL_LOG_LEVEL ?? 'info',
  format: winston.format.combine(winston.format.timestamp(), textFormat),
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'] })],
});

export function configureLogging(opts: LogOptions): void {
  log.level = opts.level;
  log.format =
    opts.format === 'json'
      ? winston.format.combine(winston.format.timestamp(), winston.format.json())
      : winston.format.combine(winston.format.timestamp(), textFormat);
}

export type Logger = winston.Logger;

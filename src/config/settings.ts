/**
 * The settings table: every knob popspool has, with its type, default, CLI flag and the reason
 * it exists. The yargs options, config-file validation and docs/configuration.md are all
 * generated from this one table (Dovecot's typed settings, popa3d's params.h with reasons).
 */

export type SettingKind = 'string' | 'path' | 'boolean' | 'integer' | 'seconds' | 'enum' | 'list' | 'enum-list';

export interface SettingSpec<T = unknown> {
  /** Config-file key and CLI flag (`--name`); kebab-case. */
  readonly name: string;
  readonly kind: SettingKind;
  readonly default: T;
  /** Allowed values for enum and enum-list kinds. */
  readonly choices?: readonly string[];
  /** Inclusive range for integer and seconds kinds. */
  readonly min?: number;
  readonly max?: number;
  /** One line for --help. */
  readonly summary: string;
  /** Why it exists and when to change it (docs/configuration.md). */
  readonly why: string;
}

function s<T>(spec: SettingSpec<T>): SettingSpec<T> {
  return spec;
}

export const SETTINGS = [
  s({
    name: 'listen', kind: 'list', default: ['0.0.0.0:110'] as string[],
    summary: 'plain POP3 listener HOST:PORT (repeatable; [::1]:110 for IPv6)',
    why: 'Port 110 on every interface is what POP3 clients expect. STLS is offered on these listeners when tls-cert and tls-key are set.',
  }),
  s({
    name: 'listen-tls', kind: 'list', default: [] as string[],
    summary: 'implicit-TLS listener HOST:PORT (repeatable, e.g. 0.0.0.0:995)',
    why: 'Clients configured for "POP3 over SSL" connect to 995 and start TLS at once. Needs tls-cert and tls-key.',
  }),
  s({
    name: 'tls-cert', kind: 'path', default: '',
    summary: 'PEM certificate chain for STLS and implicit TLS',
    why: 'Without a certificate the server offers no TLS, and plaintext logins are only accepted from loopback (see allow-plaintext-auth). Reloaded on SIGHUP.',
  }),
  s({
    name: 'tls-key', kind: 'path', default: '',
    summary: 'PEM private key for tls-cert',
    why: 'Read at start and on SIGHUP, before privileges are dropped is not required: keep it readable by the service user only.',
  }),
  s({
    name: 'spool', kind: 'string', default: '/var/mail/%u',
    summary: 'spool path template; %u is the user name',
    why: 'Debian and most Unix systems deliver to /var/mail/USER. The user name is validated before substitution, so no name can escape the directory.',
  }),
  s({
    name: 'users', kind: 'path', default: '/etc/popspool/users',
    summary: 'users file (Dovecot passwd-file format)',
    why: 'popspool authenticates against its own users file so POP users need no Unix accounts; `popspool user add` edits it and the server picks changes up without a restart.',
  }),
  s({
    name: 'mode', kind: 'enum', default: 'server', choices: ['server', 'copy'],
    summary: 'server: serve straight from the spool; copy: classic copy-to-temp-drop',
    why: 'Server mode (Qpopper\'s) makes check-mail and download-and-delete sessions nearly free. Copy mode exists to benchmark against and for sites that want the spool emptied during sessions.',
  }),
  s({
    name: 'hold-lock', kind: 'boolean', default: false,
    summary: 'hold the spool lock for the whole session (server mode)',
    why: 'Off: the lock is taken only to scan and to update, as Qpopper does; mail can be delivered during a session. On: what shell users who edit the spool with mutt need, since only appends are safe while unlocked.',
  }),
  s({
    name: 'status-update', kind: 'boolean', default: false,
    summary: 'mark retrieved messages read (Status: RO) at QUIT',
    why: 'Shell MUAs show read messages differently, but recording it costs a rewrite from the first changed message; a read-only session should not cost a rewrite, so it is off.',
  }),
  s({
    name: 'strict-from', kind: 'boolean', default: false,
    summary: 'require From_ lines to carry a sender and a date',
    why: 'Loose (the default) splits at every "From " line after an empty line, as Qpopper and popa3d do. Strict also requires a sender and a date (real-world variants accepted), protecting bodies whose MDA did not quote From.',
  }),
  s({
    name: 'locks', kind: 'enum-list', default: ['fcntl', 'dotlock', 'flock'] as string[], choices: ['fcntl', 'dotlock', 'flock'],
    summary: 'spool locks to take, in order (comma-separated)',
    why: 'Every program touching /var/mail must be excluded: Postfix, Exim, procmail and Dovecot use fcntl and the dotlock; Qpopper and BSD tools use flock. On NFS drop flock (it is emulated with fcntl there).',
  }),
  s({
    name: 'lock-timeout', kind: 'seconds', default: 10, min: 1, max: 600,
    summary: 'seconds to wait for the spool lock before [IN-USE]',
    why: 'Locks are tried non-blocking with a random 0.1–1 s back-off (Debian Policy); an MDA holds the lock for well under a second, so 10 s only expires when something is stuck.',
  }),
  s({
    name: 'state-dir', kind: 'path', default: '/var/lib/popspool',
    summary: 'private directory for caches, session locks, journals and copy-mode drops',
    why: 'Kept out of /var/mail so users cannot see or tamper with it. Must survive reboots: it holds the journals that crash recovery reads.',
  }),
  s({
    name: 'idle-timeout', kind: 'seconds', default: 600, min: 30, max: 86400,
    summary: 'seconds of client silence before the session is closed',
    why: 'RFC 1939 §3: the autologout timer must be at least 10 minutes.',
  }),
  s({
    name: 'preauth-timeout', kind: 'seconds', default: 60, min: 5, max: 3600,
    summary: 'seconds allowed before a successful login',
    why: 'Unauthenticated connections cost memory and a slot; real clients log in within a second.',
  }),
  s({
    name: 'max-connections', kind: 'integer', default: 1000, min: 1, max: 1_000_000,
    summary: 'maximum concurrent connections',
    why: 'A bound on memory and descriptors. Over the limit a client gets -ERR [SYS/TEMP] and is closed.',
  }),
  s({
    name: 'max-per-ip', kind: 'integer', default: 20, min: 1, max: 1_000_000,
    summary: 'maximum concurrent connections from one client address',
    why: 'Keeps one misbehaving client (or a NAT of many) from taking every slot.',
  }),
  s({
    name: 'allow-plaintext-auth', kind: 'boolean', default: false,
    summary: 'accept USER/PASS and AUTH PLAIN on unencrypted non-loopback connections',
    why: 'Passwords in clear text are readable on the wire; loopback and stdio pipes are always accepted.',
  }),
  s({
    name: 'log-level', kind: 'enum', default: 'info', choices: ['error', 'warn', 'info', 'debug'],
    summary: 'log verbosity',
    why: 'info logs one summary line per session and every failed login; debug adds cache and lock decisions.',
  }),
  s({
    name: 'log-format', kind: 'enum', default: 'text', choices: ['text', 'json'],
    summary: 'log line format on stderr',
    why: 'text is key=value lines for people and journald; json is one object per line for log shippers.',
  }),
] as const;

export type SettingName = (typeof SETTINGS)[number]['name'];

/** The typed configuration every module receives (camelCase of the setting names). */
export interface Config {
  readonly listen: readonly string[];
  readonly listenTls: readonly string[];
  readonly tlsCert: string;
  readonly tlsKey: string;
  readonly spool: string;
  readonly users: string;
  readonly mode: 'server' | 'copy';
  readonly holdLock: boolean;
  readonly statusUpdate: boolean;
  readonly strictFrom: boolean;
  readonly locks: readonly ('fcntl' | 'dotlock' | 'flock')[];
  readonly lockTimeout: number;
  readonly stateDir: string;
  readonly idleTimeout: number;
  readonly preauthTimeout: number;
  readonly maxConnections: number;
  readonly maxPerIp: number;
  readonly allowPlaintextAuth: boolean;
  readonly logLevel: 'error' | 'warn' | 'info' | 'debug';
  readonly logFormat: 'text' | 'json';
}

export function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * The settings table: every knob popspool has, with its type, default, CLI flag and the reason
 * it exists. The yargs options, config-file validation and docs/configuration.md are all
 * generated from this one table (Dovecot's typed settings, popa3d's params.h with reasons).
 */

/** `command`: an argv array in the config file, or one string split at spaces on the command line. */
export type SettingKind = 'string' | 'path' | 'boolean' | 'integer' | 'seconds' | 'enum' | 'list' | 'enum-list' | 'command';

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
    name: 'auth', kind: 'enum', default: 'passwd-file', choices: ['passwd-file', 'pam'],
    summary: 'authentication backend: passwd-file (the users file) or pam (system users)',
    why: 'passwd-file needs no Unix accounts and no native code. pam authenticates system users (yescrypt /etc/shadow hashes, LDAP, anything PAM does) through the optional authenticate-pam addon and the pam-service service file; the spool template\'s %u is then the login name. pam_unix must be able to read /etc/shadow: run as root or put the service user in group shadow. docs/security.md has the service file and its limits.',
  }),
  s({
    name: 'pam-service', kind: 'string', default: 'popspool',
    summary: 'PAM service name (/etc/pam.d/NAME) when auth = pam',
    why: 'A service file of its own lets the operator choose modules for POP logins alone (docs/examples/pam.d/popspool). The file must exist (start-up error otherwise): without it PAM would use /etc/pam.d/other, which on Debian is common-auth with nullok.',
  }),
  s({
    name: 'workers', kind: 'integer', default: 1, min: 1, max: 256,
    summary: 'server processes sharing the listeners (node:cluster); 1 = no cluster',
    why: 'One process serves thousands of sessions on its event loop, but parses, hashes and copies on one core. With N workers the kernel spreads connections over N processes; spool locks and the session lock file exclude across them, so one user still gets one session. Per-IP limits, the failed-login throttle and the admin listener are per worker (the admin listener runs in worker 1 only).',
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
    name: 'login-delay', kind: 'seconds', default: 0, min: 0, max: 86400,
    summary: 'minimum seconds between two logins of one user (RFC 2449 LOGIN-DELAY; 0 = none)',
    why: 'Advertised in CAPA and enforced with -ERR [LOGIN-DELAY]: an ISP can keep clients from polling every few seconds. fetchmail and others read the code and wait instead of reporting a bad password.',
  }),
  s({
    name: 'expire', kind: 'string', default: '',
    summary: 'RFC 2449 EXPIRE value to advertise: NEVER or a number of days ("" = none)',
    why: 'Tells clients the site\'s retention policy. popspool itself never deletes mail on its own, so any value is a true promise; 0 means "delete after retrieval" and asks clients to download and delete.',
  }),
  s({
    name: 'allow-plaintext-auth', kind: 'boolean', default: false,
    summary: 'accept USER/PASS and AUTH PLAIN on unencrypted non-loopback connections',
    why: 'Passwords in clear text are readable on the wire; loopback and stdio pipes are always accepted.',
  }),
  s({
    name: 'auth-failure-delay', kind: 'seconds', default: 2, min: 0, max: 60,
    summary: 'seconds before answering the first failed login; doubles with each further failure',
    why: 'Slows password guessing without slowing anyone who types the right password (Dovecot auth_failure_delay is 2 s). The delay doubles per failure from the same address or for the same name, up to auth-failure-delay-max. It never blocks other sessions.',
  }),
  s({
    name: 'auth-failure-delay-max', kind: 'seconds', default: 15, min: 0, max: 300,
    summary: 'ceiling of the doubling failed-login delay',
    why: 'Dovecot caps its auth penalty at 15 s: long enough to make guessing slow, short enough that a user with a typo is not punished for long.',
  }),
  s({
    name: 'auth-block-ip-after', kind: 'integer', default: 10, min: 0, max: 1_000_000,
    summary: 'failed logins from one address before it is refused with [LOGIN-DELAY] (0: never)',
    why: 'Delays alone do not stop a guesser that opens many connections in parallel. Past this many failures within auth-penalty-window, every login from the address is refused without checking the password, until the window passes. Behind a balancer, enable proxy-trusted so this counts real clients, not the balancer.',
  }),
  s({
    name: 'auth-block-user-after', kind: 'integer', default: 20, min: 0, max: 1_000_000,
    summary: 'failed logins for one user name (from anywhere) before it is refused with [LOGIN-DELAY] (0: never)',
    why: 'Stops a guesser spread over many addresses. It also lets anyone lock a user out for one auth-penalty-window by failing on purpose, so the threshold is higher than the per-address one; set 0 where that denial of service matters more. Unknown names are counted too, so the refusal reveals nothing.',
  }),
  s({
    name: 'auth-penalty-window', kind: 'seconds', default: 900, min: 1, max: 86400,
    summary: 'seconds after the last failure that failure counts (and blocks) are forgotten',
    why: 'Fifteen minutes lets a blocked user in again soon while keeping a guesser at a handful of attempts per quarter hour. A successful login clears the user name\'s count.',
  }),
  s({
    name: 'apop-secrets', kind: 'path', default: '',
    summary: 'APOP secrets file (user:secret lines); enables APOP and the greeting timestamp (empty: off)',
    why: 'APOP (RFC 1939 §7) avoids sending the password but needs a plaintext-equivalent secret on the server, so it lives in its own file (mode 0600), as Qpopper\'s popauth did. Off by default because a greeting timestamp makes curl try APOP first.',
  }),
  s({
    name: 'proxy-trusted', kind: 'list', default: [] as string[],
    summary: 'addresses/CIDRs of balancers whose connections start with a PROXY v1/v2 header (repeatable)',
    why: 'Behind HAProxy (send-proxy, send-proxy-v2) or nginx, every client would otherwise appear as the balancer: per-IP limits, throttling and logs need the real address. Only listed peers may send the header, and they must send it within 5 s; others are served as plain POP3 clients.',
  }),
  s({
    name: 'user', kind: 'string', default: '',
    summary: 'after binding the listeners, switch to this user (name or uid; needs root)',
    why: 'Start as root to bind 110/995, then serve as an unprivileged user, before any client input is read. Use a dedicated account (e.g. popspool) that owns state-dir.',
  }),
  s({
    name: 'group', kind: 'string', default: '',
    summary: 'group to switch to with user (e.g. mail; default: the user\'s primary group)',
    why: 'On Debian /var/mail is root:mail 2775 and spools are USER:mail 0660, so group mail can read and write spools and create USER.lock dotlocks.',
  }),
  s({
    name: 'log-level', kind: 'enum', default: 'info', choices: ['error', 'warn', 'info', 'debug'],
    summary: 'log verbosity',
    why: 'info logs one summary line per session and every failed login; debug adds cache and lock decisions.',
  }),
  s({
    name: 'log-format', kind: 'enum', default: 'auto', choices: ['auto', 'text', 'json', 'journal', 'syslog'],
    summary: 'where and how to log: auto, text, json, journal (stderr with <N> priorities) or syslog',
    why: 'auto picks what the environment expects: journal under systemd (JOURNAL_STREAM is set), syslog in inetd mode when stderr is the client socket, else text (ISO time, level, message, key=value) for a terminal. json is one object per line for log shippers; syslog sends to syslog-path with facility log-facility. docs/logging.md lists every line.',
  }),
  s({
    name: 'log-facility', kind: 'enum', default: 'mail', choices: ['mail', 'daemon', 'auth', 'authpriv', 'user', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'],
    summary: 'syslog facility when log-format is syslog',
    why: 'mail is where mail administrators look and what Qpopper\'s "set log-facility = mail" selects; popa3d\'s daemon default hides POP logins among unrelated services.',
  }),
  s({
    name: 'syslog-path', kind: 'path', default: '/dev/log',
    summary: 'unix datagram socket of the syslog daemon',
    why: 'The standard local syslog socket. If it does not exist, logging falls back to stderr (or to nothing in inetd mode, where stderr is the client).',
  }),
  s({
    name: 'admin-listen', kind: 'string', default: '',
    summary: 'admin HTTP listener HOST:PORT for /metrics, /healthz, /status and runtime changes (empty: off)',
    why: 'Off by default: an operator turns it on deliberately. A bare ":PORT" binds 127.0.0.1 only, since /status names users online and POST /limits changes the server; 127.0.0.1:9110 is the conventional choice. Prometheus scrapes /metrics, load balancers probe /healthz.',
  }),
  s({
    name: 'admin-token-file', kind: 'path', default: '',
    summary: 'file holding a bearer token the admin listener requires (empty: none)',
    why: 'On a shared host, loopback is not private: anyone with a shell could change limits. With a token file (mode 0600), requests need "Authorization: Bearer TOKEN"; /healthz stays open for load balancers. Re-read on SIGHUP.',
  }),
  s({
    name: 'drain-timeout', kind: 'seconds', default: 30, min: 0, max: 3600,
    summary: 'on SIGTERM, seconds to let sessions finish before ending them',
    why: 'SIGTERM stops accepting at once, then gives running sessions this long to QUIT on their own (a download in progress completes). Sessions still open are then ended at their next safe point: an UPDATE in progress is never interrupted.',
  }),
  s({
    name: 'qpopper-config', kind: 'path', default: '',
    summary: 'Qpopper configuration file (set/reset lines) to take equivalent settings from (empty: none)',
    why: 'Migrating from Qpopper: its server-mode, timeout, spool-dir, log and TLS options are mapped to popspool settings, and every option without an equivalent is named in one warning line at start-up. Precedence: defaults < this file < the TOML config < flags. docs/migrating-from-qpopper.md has the table.',
  }),
  s({
    name: 'retr-filter', kind: 'command', default: [] as string[],
    summary: 'program that RETR and TOP output passes through (raw message on stdin, message to send on stdout; empty: off)',
    why: 'Site policy such as tagging, disclaimers or stripping attachments, applied on the way out without touching the spool. In the config file an argv array (["/usr/bin/sed", "-e", "s/^Subject:/Subject: [ext]/"]); on the command line one string split at spaces; for shell syntax use ["/bin/sh", "-c", "..."]. LIST and STAT report the filtered size: the first session runs the filter over every message to learn it (cached under state-dir/filter-cache, keyed by UIDL, stored size and the filter itself), later sessions cost nothing. A filter that fails, times out or exceeds retr-filter-max-bytes answers -ERR [SYS/TEMP] and changes nothing.',
  }),
  s({
    name: 'retr-filter-timeout', kind: 'seconds', default: 10, min: 1, max: 600,
    summary: 'seconds one run of retr-filter may take before it is killed',
    why: 'A hung filter must not hold a session (and its maildrop) forever. The filter is killed with its whole process group and the command answers -ERR [SYS/TEMP].',
  }),
  s({
    name: 'retr-filter-max-bytes', kind: 'integer', default: 33554432, min: 1024, max: 1073741824,
    summary: 'largest filter output accepted, in bytes (32 MiB)',
    why: 'The output is held in memory until the filter has exited successfully, because +OK may only be sent once the message is known to be whole; this caps that memory per RETR. Larger output fails the command with -ERR [SYS/TEMP].',
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
  readonly auth: 'passwd-file' | 'pam';
  readonly pamService: string;
  readonly workers: number;
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
  readonly loginDelay: number;
  readonly expire: string;
  readonly allowPlaintextAuth: boolean;
  readonly authFailureDelay: number;
  readonly authFailureDelayMax: number;
  readonly authBlockIpAfter: number;
  readonly authBlockUserAfter: number;
  readonly authPenaltyWindow: number;
  readonly apopSecrets: string;
  readonly proxyTrusted: readonly string[];
  readonly user: string;
  readonly group: string;
  readonly logLevel: 'error' | 'warn' | 'info' | 'debug';
  readonly logFormat: 'auto' | 'text' | 'json' | 'journal' | 'syslog';
  readonly logFacility: string;
  readonly syslogPath: string;
  readonly adminListen: string;
  readonly adminTokenFile: string;
  readonly drainTimeout: number;
  readonly qpopperConfig: string;
  readonly retrFilter: readonly string[];
  readonly retrFilterTimeout: number;
  readonly retrFilterMaxBytes: number;
}

export function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Reads a Qpopper 4.x configuration file (`set name = value`, `set name`, `reset name`, `#`
 * comments) and maps each option with a popspool equivalent onto our settings; every option
 * without one is reported, one note per option, so an operator migrating sees exactly what
 * changed. The table below is the whole mapping (docs/migrating-from-qpopper.md mirrors it).
 *
 * Syntax: one statement per line; names are case-insensitive; a value is a bare word or a
 * "double-quoted string"; `set name` means on, `reset name` off. Anything else is a ConfigError
 * of one line naming FILE:LINE — a typo must stop the server, not be half-understood.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { SETTINGS } from './settings.js';

/** What became of one option. `mapped` and `same` are informational; `ignored` is a warning. */
export type NoteKind = 'mapped' | 'same' | 'ignored';

export interface QpopperNote {
  readonly line: number;
  readonly option: string;
  readonly kind: NoteKind;
  /** One sentence: the setting it became, or why it has no effect. */
  readonly text: string;
}

/** One popspool setting taken from the file (keyed by setting name, validated by load.ts). */
export interface QpopperSetting {
  readonly name: string;
  readonly value: unknown;
  readonly line: number;
}

export interface QpopperResult {
  readonly settings: readonly QpopperSetting[];
  readonly notes: readonly QpopperNote[];
}

type ValueType = 'bool' | 'int' | 'string';
type Value = boolean | number | string;

/** An option's effect: settings to set, and the note to log. */
interface Effect {
  readonly set?: Readonly<Record<string, unknown>>;
  readonly kind: NoteKind;
  readonly text: string;
}

interface Rule {
  readonly type: ValueType;
  readonly apply: (v: Value) => Effect;
}

const mapped = (set: Record<string, unknown>, text: string): Effect => ({ set, kind: 'mapped', text });
const same = (text: string): Effect => ({ kind: 'same', text });
const ignored = (text: string): Effect => ({ kind: 'ignored', text });
/** An option popspool has no equivalent for, whatever its value. */
const none = (type: ValueType, text: string): Rule => ({ type, apply: () => ignored(text) });

/** Allowed by our log-facility setting. */
const FACILITIES = (SETTINGS.find((s) => s.name === 'log-facility')!.choices ?? []) as readonly string[];
/** Our idle-timeout range (RFC 1939 §3 wants ≥ 600; Qpopper's compiled default is 120). */
const IDLE_MIN = 30;
const IDLE_MAX = 86400;

const BULLETINS = 'bulletins are not supported';
const KERBEROS = 'Kerberos is not supported; use the users file or PAM';

/** The mapping table, by lower-case Qpopper option name. */
export const QPOPPER_OPTIONS: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  ['server-mode', { type: 'bool', apply: (v) => mapped({ mode: v ? 'server' : 'copy' }, `mode = ${v ? 'server' : 'copy'}`) }],
  ['timeout', {
    type: 'int', apply: (v) => {
      const n = v as number;
      if (n >= IDLE_MIN && n <= IDLE_MAX) return mapped({ 'idle-timeout': n }, `idle-timeout = ${n}`);
      const c = Math.min(Math.max(n, IDLE_MIN), IDLE_MAX);
      return { set: { 'idle-timeout': c }, kind: 'ignored', text: `${n} s is outside ${IDLE_MIN}–${IDLE_MAX}; idle-timeout = ${c} (RFC 1939 asks for at least 600)` };
    },
  }],
  ['spool-dir', { type: 'string', apply: (v) => mapped({ spool: `${String(v).replace(/\/+$/, '')}/%u` }, `spool = ${String(v).replace(/\/+$/, '')}/%u`) }],
  ['log-facility', {
    type: 'string', apply: (v) => {
      const f = String(v).toLowerCase().replace(/^log_/, '');
      if (!FACILITIES.includes(f)) return ignored(`facility "${String(v)}" is not one of ${FACILITIES.join(', ')}; keeping the default`);
      return mapped({ 'log-facility': f }, `log-facility = ${f} (used when log-format is syslog)`);
    },
  }],
  ['statistics', { type: 'bool', apply: (v) => (v ? same('a summary line per session is always logged at info') : ignored('the per-session summary line cannot be turned off; log-level = warn hides it')) }],
  ['log-login', { type: 'bool', apply: (v) => (v ? same('logins are logged in the session summary, failures always') : ignored('logins are always logged')) }],
  ['debug', { type: 'bool', apply: (v) => (v ? mapped({ 'log-level': 'debug' }, 'log-level = debug') : same('log-level stays info')) }],
  ['tracing', none('bool', 'no trace files; use log-level = debug')],
  ['trace-name', none('string', 'no trace files; use log-level = debug')],
  ['update-status-headers', { type: 'bool', apply: (v) => mapped({ 'status-update': v }, `status-update = ${String(v)} (X-UIDL headers are never written: UIDLs are stable without them)`) }],
  ['tls-server-cert-file', { type: 'string', apply: (v) => mapped({ 'tls-cert': v }, `tls-cert = ${String(v)}`) }],
  ['tls-private-key-file', { type: 'string', apply: (v) => mapped({ 'tls-key': v }, `tls-key = ${String(v)}`) }],
  ['tls-support', {
    type: 'string', apply: (v) => {
      const t = String(v).toLowerCase();
      if (t === 'alternate-port') return mapped({ 'listen-tls': ['0.0.0.0:995'], listen: [] }, 'listen-tls = 0.0.0.0:995, listen = none (TLS from the first byte only)');
      if (t === 'stls' || t === 'default') return same('STLS is offered whenever tls-cert and tls-key are set');
      return ignored(`unknown tls-support value "${String(v)}"`);
    },
  }],
  ['clear-text-password', {
    type: 'string', apply: (v) => {
      const t = String(v).toLowerCase();
      if (t === 'always') return mapped({ 'allow-plaintext-auth': true }, 'allow-plaintext-auth = true');
      if (t === 'tls' || t === 'ssl') return mapped({ 'allow-plaintext-auth': false }, 'allow-plaintext-auth = false (plaintext only inside TLS)');
      if (t === 'local') return mapped({ 'allow-plaintext-auth': false }, 'allow-plaintext-auth = false (loopback is always allowed)');
      return ignored(`"${String(v)}" has no equivalent: plaintext passwords are accepted inside TLS and on loopback, elsewhere only with allow-plaintext-auth`);
    },
  }],
  ['reverse-lookup', { type: 'bool', apply: (v) => (v ? ignored('client addresses are never resolved to names') : same('client addresses are never resolved to names')) }],
  ['no-atomic-open', { type: 'bool', apply: () => same('dotlocks are always created NFS-safely with link()') }],
  ['mail-lock-check', { type: 'int', apply: () => same('a held dotlock is touched every 60 s on a timer') }],
  ['update-on-abort', { type: 'bool', apply: (v) => (v ? ignored('deletions are applied only at QUIT (RFC 1939); a dropped session changes nothing') : same('deletions are applied only at QUIT')) }],
  ['fast-update', none('bool', 'the spool is never replaced by rename: that changes its inode, and an MDA waiting for the lock would deliver into the unlinked file; updates rewrite in place from the first changed message')],
  ['auto-delete', none('bool', 'messages are deleted only by DELE')],
  ['old-style-uid', none('bool', 'existing X-UIDL headers are still reused; other UIDLs are hashes of the From_ line and headers')],
  ['uw-kluge', none('bool', 'the UW IMAP pseudo-message is served like any other message')],
  ['uw-kludge', none('bool', 'the UW IMAP pseudo-message is served like any other message')],
  ['temp-dir', none('string', 'copy-mode temp drops live in state-dir/drops')],
  ['temp-name', none('string', 'copy-mode temp drops live in state-dir/drops')],
  ['cache-dir', none('string', 'scan caches live in state-dir/cache')],
  ['cache-name', none('string', 'scan caches live in state-dir/cache')],
  ['hash-spool', none('int', 'hashed spool directories are not supported; spool is a template with %u')],
  ['home-dir-mail', none('string', 'spools in home directories are not supported; spool is a template with %u')],
  ['check-hash-dir', none('bool', 'hashed spool directories are not supported')],
  ['check-old-spool-loc', none('bool', 'only the spool template is looked at')],
  ['user-server-mode', none('bool', 'mode applies to every user')],
  ['group-server-mode', none('string', 'mode applies to every user')],
  ['downcase-user', none('bool', 'user names are matched exactly as given')],
  ['trim-domain', none('bool', 'user names are matched exactly as given')],
  ['shy', none('bool', 'no equivalent')],
  ['keep-temp-drop', none('bool', 'temp drops are removed once merged back')],
  ['config-file', none('string', 'nested configuration files are not read')],
  ['drac-host', none('string', 'DRAC (POP-before-SMTP) is not supported')],
  ['bulldir', none('string', BULLETINS)],
  ['bulldb', none('string', BULLETINS)],
  ['bulldb-nonfatal', none('bool', BULLETINS)],
  ['bulldb-max-tries', none('int', BULLETINS)],
  ['max-bulls', none('int', BULLETINS)],
  ['group-bulletins', none('string', BULLETINS)],
  ['kerberos', none('bool', KERBEROS)],
  ['kerberos-service', none('string', KERBEROS)],
  ['kerberos-name', none('string', KERBEROS)],
  ['login-delay', none('int', 'LOGIN-DELAY is not announced; failed-login throttling is auth-failure-delay')],
  ['announce-login-delay', none('int', 'LOGIN-DELAY is not announced')],
  ['expire', none('string', 'EXPIRE is not announced')],
  ['announce-expire', none('string', 'EXPIRE is not announced')],
  ['tls-cipher-list', none('string', 'Node.js\'s default TLS ciphers are used')],
  ['tls-version', none('string', 'Node.js negotiates TLS 1.2 or 1.3')],
  ['tls-workarounds', none('bool', 'no equivalent')],
  ['chunky-writes', none('string', 'output is always written in large chunks with backpressure')],
  ['mail-command', none('string', 'XTND XMIT is not supported')],
]);

/** Strips a `#` comment that is not inside a quoted value. */
function stripComment(line: string): string {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '"') quoted = !quoted;
    else if (line[i] === '#' && !quoted) return line.slice(0, i);
  }
  return line;
}

const STATEMENT = /^(set|reset)\s+([A-Za-z][A-Za-z0-9_-]*)\s*(?:=\s*(.*))?$/i;
const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);

/** Parses the text of a Qpopper config file; `file` names it in errors. */
export function parseQpopperConfig(text: string, file: string): QpopperResult {
  const settings: QpopperSetting[] = [];
  const notes: QpopperNote[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const fail = (what: string): never => {
      throw new ConfigError(`qpopper config ${file}:${lineNo}: ${what}`);
    };
    const stmt = stripComment(lines[i]!).trim();
    if (stmt === '') continue;
    const m = STATEMENT.exec(stmt) ?? fail(`expected "set NAME = VALUE", "set NAME" or "reset NAME", got ${JSON.stringify(stmt.slice(0, 60))}`);
    const verb = m[1]!.toLowerCase();
    const option = m[2]!.toLowerCase();
    const rawValue = m[3];
    if (rawValue !== undefined && rawValue.trim() === '') fail(`${option}: "=" without a value`);
    if (verb === 'reset' && rawValue !== undefined) fail(`${option}: reset takes no value`);
    let word: string | undefined;
    if (rawValue !== undefined) {
      const v = rawValue.trim();
      if (v.startsWith('"')) {
        if (v.length < 2 || !v.endsWith('"') || v.slice(1, -1).includes('"')) fail(`${option}: unterminated or malformed quoted value`);
        word = v.slice(1, -1);
      } else {
        if (/\s/.test(v)) fail(`${option}: a value with spaces must be "quoted"`);
        word = v;
      }
    }
    const rule = QPOPPER_OPTIONS.get(option);
    if (!rule) {
      notes.push({ line: lineNo, option, kind: 'ignored', text: 'not a Qpopper option popspool knows' });
      continue;
    }
    let value: Value;
    if (rule.type === 'bool') {
      if (word === undefined) value = verb === 'set';
      else if (TRUE.has(word.toLowerCase())) value = true;
      else if (FALSE.has(word.toLowerCase())) value = false;
      else value = fail(`${option}: expected true or false, got ${JSON.stringify(word)}`);
    } else {
      if (verb === 'reset') fail(`${option}: reset applies to on/off options only`);
      if (word === undefined) fail(`${option}: needs a value ("set ${option} = VALUE")`);
      if (rule.type === 'int') {
        if (!/^\d{1,9}$/.test(word!)) fail(`${option}: expected a whole number, got ${JSON.stringify(word)}`);
        value = Number(word);
      } else {
        value = word!;
      }
    }
    const effect = rule.apply(value);
    for (const [name, v] of Object.entries(effect.set ?? {})) settings.push({ name, value: v, line: lineNo });
    notes.push({ line: lineNo, option, kind: effect.kind, text: effect.text });
  }
  return { settings, notes };
}

/** Reads and parses a Qpopper config file. */
export function readQpopperConfig(file: string): QpopperResult {
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch (err) {
    throw new ConfigError(`qpopper-config ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseQpopperConfig(text, file);
}

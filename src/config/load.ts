/**
 * Builds the one typed Config from defaults, an optional TOML config file and CLI flags
 * (flags win), validating every value against the settings table. Every problem is a
 * ConfigError whose message is one line naming the setting and what is wrong.
 */
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { ConfigError } from '../errors.js';
import { SETTINGS, camel, type Config, type SettingSpec } from './settings.js';
import { readQpopperConfig, type QpopperNote } from './qpopper.js';

const BY_NAME: ReadonlyMap<string, SettingSpec> = new Map(SETTINGS.map((spec) => [spec.name, spec as SettingSpec]));

/** Validates and normalizes one value; `where` names its origin for the error message. */
export function coerce(spec: SettingSpec, raw: unknown, where: string): unknown {
  const bad = (what: string): never => {
    throw new ConfigError(`${where}: ${spec.name}: ${what}`);
  };
  switch (spec.kind) {
    case 'string':
    case 'path':
      if (typeof raw !== 'string') bad(`expected a string, got ${JSON.stringify(raw)}`);
      return raw;
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === 'yes' || raw === '1') return true;
      if (raw === 'false' || raw === 'no' || raw === '0') return false;
      return bad(`expected true or false, got ${JSON.stringify(raw)}`);
    case 'integer':
    case 'seconds': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n)) bad(`expected a whole number, got ${JSON.stringify(raw)}`);
      if (spec.min !== undefined && n < spec.min) bad(`${n} is below the minimum ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) bad(`${n} is above the maximum ${spec.max}`);
      return n;
    }
    case 'enum':
      if (typeof raw !== 'string' || !spec.choices!.includes(raw)) {
        bad(`${JSON.stringify(raw)} is not one of ${spec.choices!.join(', ')}`);
      }
      return raw;
    case 'list':
    case 'enum-list': {
      const items = listOf(raw) ?? bad(`expected a list of strings, got ${JSON.stringify(raw)}`);
      if (spec.kind === 'list') return items;
      if (items.length === 0) bad('must name at least one of ' + spec.choices!.join(', '));
      const seen = new Set<string>();
      for (const item of items) {
        if (!spec.choices!.includes(item)) bad(`${JSON.stringify(item)} is not one of ${spec.choices!.join(', ')}`);
        if (seen.has(item)) bad(`${JSON.stringify(item)} is listed twice`);
        seen.add(item);
      }
      return items;
    }
    case 'command': {
      // An argv array (config file, repeated flags) or one string split at spaces (a flag).
      const argv = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(/\s+/).filter((p) => p !== '') : null;
      if (!argv || !argv.every((p) => typeof p === 'string')) bad(`expected a command line (a string or an array of strings), got ${JSON.stringify(raw)}`);
      return argv;
    }
  }
}

/** Lists come as arrays (TOML, repeated flags) or comma-separated strings. */
function listOf(raw: unknown): string[] | null {
  const parts = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : null;
  if (!parts || !parts.every((p) => typeof p === 'string')) return null;
  return (parts as string[]).map((p) => p.trim()).filter((p) => p !== '');
}

export function defaults(): Record<string, unknown> {
  return Object.fromEntries(SETTINGS.map((spec) => [camel(spec.name), structuredClone(spec.default)]));
}

/** Reads a TOML config file whose keys are setting names. Unknown keys are errors. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    const first = String((err as Error).message).split('\n')[0];
    throw new ConfigError(`config file ${file}: not valid TOML: ${first}`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(doc)) {
    const spec = BY_NAME.get(key);
    if (!spec) throw new ConfigError(`config file ${file}: unknown setting "${key}"${suggest(key)}`);
    out[camel(key)] = coerce(spec, value, `config file ${file}`);
  }
  return out;
}

function suggest(key: string): string {
  const k = key.toLowerCase().replace(/_/g, '-');
  const hit = [...BY_NAME.keys()].find((name) => name === k || camel(name).toLowerCase() === k.replace(/-/g, ''));
  return hit ? ` (did you mean "${hit}"?)` : '';
}

/**
 * Notes from the last Qpopper config file read, waiting to be logged: buildConfig runs before
 * logging is configured (and in inetd mode stderr may be the client), so serve logs them later.
 */
let pendingQpopperNotes: { file: string; notes: readonly QpopperNote[] } | undefined;

/** Takes (and forgets) the notes of the Qpopper file read by the last buildConfig. */
export function takeQpopperNotes(): { file: string; notes: readonly QpopperNote[] } | undefined {
  const n = pendingQpopperNotes;
  pendingQpopperNotes = undefined;
  return n;
}

/** The options a Qpopper config file maps, keyed by camelCase setting name. */
function qpopperSettings(file: string): Record<string, unknown> {
  const result = readQpopperConfig(file);
  const out: Record<string, unknown> = {};
  for (const s of result.settings) out[camel(s.name)] = coerce(BY_NAME.get(s.name)!, s.value, `qpopper config ${file}:${s.line}`);
  pendingQpopperNotes = { file, notes: result.notes };
  return out;
}

/**
 * Defaults, then a Qpopper config file (qpopper-config), then the TOML config file, then flags.
 * `flags` holds only what was given on the command line, keyed by setting name.
 */
export function buildConfig(file: string | undefined, flags: Record<string, unknown>): Config {
  const fromFile = file ? readConfigFile(file) : {};
  const qpopperFlag = flags['qpopper-config'] === undefined ? undefined : coerce(BY_NAME.get('qpopper-config')!, flags['qpopper-config'], 'command line');
  const qpopperFile = (qpopperFlag ?? fromFile.qpopperConfig ?? '') as string;
  pendingQpopperNotes = undefined;
  const merged = { ...defaults(), ...(qpopperFile ? qpopperSettings(qpopperFile) : {}), ...fromFile };
  for (const [name, value] of Object.entries(flags)) {
    const spec = BY_NAME.get(name);
    if (!spec || value === undefined) continue;
    merged[camel(name)] = coerce(spec, value, 'command line');
  }
  const config = merged as unknown as Config;
  validateWhole(config);
  return config;
}

/** Rules that involve more than one setting. */
function validateWhole(c: Config): void {
  if (!/^(|NEVER|\d{1,5})$/.test(c.expire)) throw new ConfigError(`expire: "${c.expire}" is not NEVER or a number of days`);
  for (const addr of [...c.listen, ...c.listenTls]) parseHostPort(addr);
  if (c.adminListen) parseHostPort(c.adminListen);
  if (c.listenTls.length > 0 && (!c.tlsCert || !c.tlsKey)) {
    throw new ConfigError('listen-tls needs tls-cert and tls-key');
  }
  if (Boolean(c.tlsCert) !== Boolean(c.tlsKey)) throw new ConfigError('tls-cert and tls-key go together: set both or neither');
  if (!c.spool.includes('%u')) throw new ConfigError(`spool: the template "${c.spool}" must contain %u`);
}

/** "127.0.0.1:110", "[::1]:110", ":110" (all interfaces) → host and port. */
export function parseHostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`listen address "${addr}": expected HOST:PORT, e.g. 127.0.0.1:110 or [::1]:110`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

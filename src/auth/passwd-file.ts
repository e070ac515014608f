/**
 * passwd-file authentication (Dovecot's format) and the editing behind `popspool user`.
 *
 * Format: one user per line, `user:{SCHEME}hash[:more fields, ignored]`; `#` starts a comment
 * line; blank lines are ignored. Schemes: {SCRYPT} (see scrypt.ts for the encoding, what
 * `popspool user add` writes), {SHA512-CRYPT} and {SHA256-CRYPT} (`$6$`/`$5$`, as in
 * /etc/shadow), {BLF-CRYPT} (`$2y$`/`$2b$`), {CRYPT} or a bare `$…$` string (any of those, as
 * Dovecot's default_pass_scheme=CRYPT reads them), and {PLAIN} (tests and demos only). The
 * password field cannot contain ":" (as in Dovecot).
 *
 * Verification costs exactly one hash computation whatever the line says: a known user pays
 * their own scheme; unknown users and {PLAIN} entries pay one hash of the file's most common
 * scheme against a dummy, so timing does not reveal which names exist (hashChecks counts them). The file is re-read when
 * its inode, size or mtime change (one stat per login). Edits lock the file with proper-lockfile
 * (our own file) and replace it atomically: temp file (mode 0600) + fsync + rename + dir fsync.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import lockfile from 'proper-lockfile';
import { ConfigError } from '../errors.js';
import { ReloadingFile } from './reload.js';
import { dummyCrypt, parseCrypt, verifyCrypt, type CryptHash, type CryptScheme } from './crypt.js';
import { hashScrypt, parseScrypt, verifyScrypt, type ScryptHash } from './scrypt.js';
import type { AuthContext, Authenticator } from './types.js';
import { validateUsername } from './username.js';

export { validateUsername } from './username.js';

type Entry =
  | { readonly kind: 'scrypt'; readonly hash: ScryptHash }
  | { readonly kind: 'crypt'; readonly hash: CryptHash }
  | { readonly kind: 'plain'; readonly password: string };

/** The expensive schemes: what hashChecks counts, and what an unknown user's dummy check uses. */
export type HashScheme = 'SCRYPT' | CryptScheme;

function schemeOf(e: Entry): HashScheme | undefined {
  return e.kind === 'scrypt' ? 'SCRYPT' : e.kind === 'crypt' ? e.hash.scheme : undefined;
}

/** Parse a users file. Throws ConfigError naming the file and line for anything we cannot use. */
export function parsePasswdFile(text: string, file = 'users file'): Map<string, Entry> {
  const users = new Map<string, Entry>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    const where = `${file}:${i + 1}`;
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const fields = line.split(':');
    if (fields.length < 2) throw new ConfigError(`${where}: expected user:{SCHEME}hash`);
    const [user, pw] = fields as [string, string];
    if (!validateUsername(user)) throw new ConfigError(`${where}: invalid user name "${user}"`);
    if (users.has(user)) throw new ConfigError(`${where}: duplicate user "${user}"`);
    // A bare crypt string is read as {CRYPT} (Dovecot with default_pass_scheme = CRYPT).
    const m = /^\{([A-Za-z0-9._-]+)\}(.*)$/.exec(pw) ?? (pw.startsWith('$') ? [pw, 'CRYPT', pw] : null);
    if (!m) throw new ConfigError(`${where}: password has no {SCHEME} prefix`);
    const scheme = m[1]!.toUpperCase();
    if (scheme === 'CRYPT' || scheme === 'SHA512-CRYPT' || scheme === 'SHA256-CRYPT' || scheme === 'BLF-CRYPT') {
      const hash = parseCrypt(m[2]!);
      if (!hash) throw new ConfigError(`${where}: unsupported or malformed crypt hash for {${scheme}} (supported: $6$, $5$ with at most 100000 rounds, $2a$/$2b$/$2y$ with cost 4–14; yescrypt $y$ and MD5 $1$ are not)`);
      if (scheme !== 'CRYPT' && hash.scheme !== scheme) throw new ConfigError(`${where}: {${scheme}} holds a ${hash.scheme} hash`);
      users.set(user, { kind: 'crypt', hash });
    } else if (scheme === 'SCRYPT') {
      const hash = parseScrypt(m[2]!);
      if (!hash) throw new ConfigError(`${where}: malformed {SCRYPT} hash`);
      users.set(user, { kind: 'scrypt', hash });
    } else if (scheme === 'PLAIN') {
      users.set(user, { kind: 'plain', password: m[2]! });
    } else {
      throw new ConfigError(`${where}: unsupported scheme ${scheme}`);
    }
  });
  return users;
}

type HashedEntry = Exclude<Entry, { kind: 'plain' }>;
const dummies = new Map<HashScheme, Promise<HashedEntry>>();
/** A hash of a random password in `scheme`: what unknown users are checked against. */
function dummyEntry(scheme: HashScheme): Promise<HashedEntry> {
  let d = dummies.get(scheme);
  if (!d) {
    const secret = randomBytes(16).toString('hex');
    d = scheme === 'SCRYPT'
      ? hashScrypt(secret).then((s): HashedEntry => ({ kind: 'scrypt', hash: parseScrypt(s.slice('{SCRYPT}'.length))! }))
      : dummyCrypt(scheme, secret).then((hash): HashedEntry => ({ kind: 'crypt', hash }));
    dummies.set(scheme, d);
  }
  return d;
}

/**
 * The scheme most entries use: an unknown user costs one of these. A file with no hashed entries
 * has none: then every check is a {PLAIN} comparison and an unknown user costs one of those.
 */
function commonScheme(users: ReadonlyMap<string, Entry>): HashScheme | undefined {
  const n = new Map<HashScheme, number>();
  for (const e of users.values()) {
    const s = schemeOf(e);
    if (s) n.set(s, (n.get(s) ?? 0) + 1);
  }
  let best: HashScheme | undefined;
  for (const [s, c] of n) if (best === undefined || c > (n.get(best) ?? 0)) best = s;
  return best;
}

/** How long a successful login is remembered, and how many are (oldest dropped first). */
const AUTH_CACHE_TTL_MS = 5 * 60_000;
const AUTH_CACHE_MAX = 10_000;

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class PasswdFile implements Authenticator {
  private users = new Map<string, Entry>();
  private readonly source: ReloadingFile;
  private dummyScheme: HashScheme | undefined = 'SCRYPT';
  /**
   * Successful logins, remembered for AUTH_CACHE_TTL_MS (Dovecot's auth_cache): a client polling
   * every minute pays one slow hash per TTL, not per poll. Keyed by an HMAC of user and password
   * under a per-process random key, so the map holds no password; emptied when the file changes.
   * Only successes are cached, so unknown users and wrong passwords always cost one hash.
   */
  private verified = new Map<string, number>();
  private readonly cacheKey = randomBytes(32);
  /** Hash computations done by verify(), by scheme (tests count them: equal cost is checkable). */
  readonly hashChecks: Record<HashScheme, number> = { SCRYPT: 0, 'SHA256-CRYPT': 0, 'SHA512-CRYPT': 0, 'BLF-CRYPT': 0 };

  constructor(readonly file: string) {
    this.source = new ReloadingFile(file, 'users file', (text) => {
      this.users = parsePasswdFile(text, file);
      this.dummyScheme = commonScheme(this.users);
      this.verified.clear();
    });
  }

  /** Read the file now; throws ConfigError (missing file, bad line, unsupported scheme). */
  load(): Promise<void> {
    return this.source.load();
  }

  /** Names in the loaded file. */
  get userNames(): string[] {
    return [...this.users.keys()];
  }

  async verify(user: string, password: string, _ctx?: AuthContext): Promise<boolean> {
    await this.source.refresh();
    const entry = validateUsername(user) ? this.users.get(user) : undefined;
    const key = createHmac('sha256', this.cacheKey).update(user).update('\0').update(password).digest('base64');
    if ((this.verified.get(key) ?? 0) > Date.now()) return true;
    let ok: boolean;
    if (entry && entry.kind !== 'plain') {
      ok = await this.check(password, entry);
    } else {
      // Unknown users and {PLAIN} entries pay for one hash too (popa3d's AUTH_DUMMY_SALT idea).
      if (this.dummyScheme) await this.check(password, await dummyEntry(this.dummyScheme));
      ok = timingSafeEqual(sha256(password), sha256(entry?.kind === 'plain' ? entry.password : randomBytes(16).toString('hex'))) && entry !== undefined;
    }
    if (ok) this.remember(key);
    return ok;
  }

  private remember(key: string): void {
    this.verified.delete(key);
    this.verified.set(key, Date.now() + AUTH_CACHE_TTL_MS);
    if (this.verified.size > AUTH_CACHE_MAX) this.verified.delete(this.verified.keys().next().value!);
  }

  private async check(password: string, e: HashedEntry): Promise<boolean> {
    this.hashChecks[schemeOf(e)!]++;
    return e.kind === 'scrypt' ? verifyScrypt(password, e.hash) : verifyCrypt(password, e.hash);
  }


}

/** A {SCRYPT} hash for a users-file line. */
export function hashPassword(password: string): Promise<string> {
  return hashScrypt(password);
}

/** How long an editor waits for another editor's lock on the users file. */
const EDIT_LOCK_RETRIES = { retries: 50, minTimeout: 20, maxTimeout: 200, factor: 1.5 };
/** A lock older than this is from a crashed editor (edits take milliseconds). */
const EDIT_LOCK_STALE_MS = 10_000;

/** Run `edit` on the file's lines under the lock and replace the file atomically. */
async function editUsersFile(file: string, edit: (lines: string[]) => string[]): Promise<void> {
  const release = await lockfile.lock(file, { realpath: false, stale: EDIT_LOCK_STALE_MS, retries: EDIT_LOCK_RETRIES });
  try {
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
    const out = edit(lines);
    await writeAtomically(file, out.length ? out.join('\n') + '\n' : '');
  } finally {
    await release();
  }
}

async function writeAtomically(file: string, content: string): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  try {
    await fh.chmod(0o600); // independent of the umask
    await fh.writeFile(content, 'utf8');
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  await rename(tmp, file);
  const dir = await open(dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Index of the line for `user`, or -1. */
function findUser(lines: readonly string[], user: string): number {
  return lines.findIndex((l) => !l.trimStart().startsWith('#') && l.split(':')[0] === user);
}

function checkName(user: string): void {
  if (!validateUsername(user)) throw new ConfigError(`invalid user name "${user}" (letters, digits, then . _ + - ; at most 64)`);
}

function checkPassword(password: string): void {
  if (password === '') throw new ConfigError('empty password');
}

export async function addUser(file: string, user: string, password: string): Promise<void> {
  checkName(user);
  checkPassword(password);
  const line = `${user}:${await hashPassword(password)}`;
  await editUsersFile(file, (lines) => {
    if (findUser(lines, user) >= 0) throw new ConfigError(`user "${user}" already exists in ${file}`);
    return [...lines, line];
  });
}

export async function setPassword(file: string, user: string, password: string): Promise<void> {
  checkName(user);
  checkPassword(password);
  const hash = await hashPassword(password);
  await editUsersFile(file, (lines) => {
    const i = findUser(lines, user);
    if (i < 0) throw new ConfigError(`no user "${user}" in ${file}`);
    const rest = lines[i]!.split(':').slice(2); // keep any extra Dovecot fields
    const out = [...lines];
    out[i] = [user, hash, ...rest].join(':');
    return out;
  });
}

export async function deleteUser(file: string, user: string): Promise<void> {
  checkName(user);
  await editUsersFile(file, (lines) => {
    const i = findUser(lines, user);
    if (i < 0) throw new ConfigError(`no user "${user}" in ${file}`);
    return lines.filter((_, j) => j !== i);
  });
}

export async function listUsers(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return '';
    throw e;
  });
  return [...parsePasswdFile(text, file).keys()];
}

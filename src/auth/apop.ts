/**
 * APOP (RFC 1939 §7): the greeting's timestamp and the digest check against a separate secrets
 * file. APOP needs the plaintext-equivalent secret on the server, which is why it has its own
 * file (Qpopper's popauth database) and is off unless that file is configured.
 *
 * Secrets file: one `user:secret` per line, `#` comments, blank lines ignored; the secret is the
 * rest of the line (it may contain ":"). Re-read when it changes, like the users file. It
 * should be mode 0600: a warning is logged otherwise.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { hostname } from 'node:os';
import { ConfigError } from '../errors.js';
import { log } from '../obs/log.js';
import { ReloadingFile } from './reload.js';
import { validateUsername } from './username.js';

/** RFC 1939 §7: the digest is MD5 as 32 lowercase hex digits. */
const DIGEST = /^[0-9a-f]{32}$/;

/** `<pid.random@host>`: unique per connection (RFC 1939 §7 "MUST be different each time"). */
export function apopTimestamp(): string {
  return `<${process.pid}.${randomBytes(8).toString('hex')}@${hostname().replace(/[^A-Za-z0-9.-]/g, '') || 'localhost'}>`;
}

export function parseApopSecrets(text: string, file = 'APOP secrets file'): Map<string, string> {
  const out = new Map<string, string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = colon < 0 ? line : line.slice(0, colon);
    if (colon < 0 || !validateUsername(user) || colon === line.length - 1) throw new ConfigError(`${file}:${i + 1}: expected user:secret`);
    if (out.has(user)) throw new ConfigError(`${file}:${i + 1}: duplicate user "${user}"`);
    out.set(user, line.slice(colon + 1));
  });
  return out;
}

export class ApopSecrets {
  private secrets = new Map<string, string>();
  private readonly source: ReloadingFile;
  /** MD5 computations done (unknown users cost one too). */
  digests = 0;

  constructor(readonly file: string) {
    this.source = new ReloadingFile(file, 'APOP secrets file', (text, st) => {
      this.secrets = parseApopSecrets(text, file);
      if ((Number(st.mode) & 0o077) !== 0) log.warn('APOP secrets file is readable by others; chmod 600 it', { file });
    });
  }

  load(): Promise<void> {
    return this.source.load();
  }

  /** True when `digest` is MD5(timestamp + secret of user). Same work and answer for unknown users. */
  async verify(user: string, timestamp: string, digest: string): Promise<boolean> {
    await this.source.refresh();
    const secret = validateUsername(user) ? this.secrets.get(user) : undefined;
    this.digests++;
    const expected = createHash('md5').update(timestamp + (secret ?? randomBytes(16).toString('hex')), 'utf8').digest();
    const given = DIGEST.test(digest.toLowerCase()) ? Buffer.from(digest.toLowerCase(), 'hex') : Buffer.alloc(16);
    return timingSafeEqual(expected, given) && secret !== undefined && DIGEST.test(digest.toLowerCase());
  }
}

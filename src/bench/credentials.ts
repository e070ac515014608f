/**
 * The bench users' passwords, at equal hash cost on every side: one SHA512-CRYPT hash per user
 * (`$6$`, 5000 rounds, random salt), written to the passwd-file popspool and Dovecot read and,
 * when the peers run, into /etc/shadow for the throwaway Unix users popa3d and Mailutils check.
 * Hashes are made by `openssl passwd -6` (C, about 5 ms each) and cached next to the spools.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { BenchHash } from './options.js';

/** What each side checks a password against, for the report. */
export interface SchemeInfo {
  /** popspool's users file (also Dovecot's passdb). */
  readonly usersFile: string;
  /** The throwaway Unix users' /etc/shadow entries (popa3d, Mailutils), or null without them. */
  readonly shadow: string | null;
}

const CRYPT_NAMES: Record<string, string> = { y: 'yescrypt', '6': 'SHA512-CRYPT', '5': 'SHA256-CRYPT', '2b': 'bcrypt', '2y': 'bcrypt', '1': 'MD5-CRYPT', gy: 'gost-yescrypt' };

/** Names a crypt(3) string's scheme with its cost parameter: "SHA512-CRYPT (5000 rounds)". */
export function describeCrypt(hash: string): string {
  const m = /^\$([^$]+)\$([^$]*)\$/.exec(hash);
  if (!m) return hash.startsWith('!') || hash.startsWith('*') ? 'locked (no password)' : 'DES or unknown';
  const name = CRYPT_NAMES[m[1]!] ?? `$${m[1]}$`;
  if (m[1] === '6' || m[1] === '5') {
    const r = /^rounds=(\d+)$/.exec(m[2]!);
    return `${name} (${r ? r[1] : 5000} rounds)`;
  }
  if (m[1] === 'y') return `${name} (params ${m[2]})`;
  return name;
}

/** SHA512-crypt hashes of `password` for `names`, from the cache or `openssl passwd -6 -stdin`. */
function sha512Hashes(names: readonly string[], password: string, cacheDir: string): Map<string, string> {
  const file = path.join(cacheDir, `users-sha512-${crypto.createHash('sha256').update(password).digest('hex').slice(0, 12)}.txt`);
  const have = new Map<string, string>();
  try {
    for (const l of fs.readFileSync(file, 'utf8').split('\n')) {
      const i = l.indexOf(':');
      if (i > 0) have.set(l.slice(0, i), l.slice(i + 1));
    }
  } catch {
    // no cache yet
  }
  const missing = names.filter((n) => !have.has(n));
  if (missing.length) {
    const out = execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: missing.map(() => password).join('\n') + '\n', encoding: 'utf8', maxBuffer: 64 << 20 });
    const hashes = out.split('\n').filter((l) => l.startsWith('$6$'));
    if (hashes.length !== missing.length) throw new Error(`openssl passwd -6 returned ${hashes.length} hashes for ${missing.length} passwords`);
    missing.forEach((n, i) => have.set(n, hashes[i]!));
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.writeFileSync(`${file}.tmp`, [...have].map(([n, h]) => `${n}:${h}`).join('\n') + '\n', { mode: 0o600 });
    fs.renameSync(`${file}.tmp`, file);
  }
  return have;
}

/**
 * Writes the users file for `names` in `hash`'s scheme and, when `systemUsers`, gives the Unix
 * users the same hashes (chpasswd -e). Falls back to {PLAIN} when openssl is missing.
 */
export function writeCredentials(opts: { names: readonly string[]; password: string; hash: BenchHash; cacheDir: string; usersFile: string; systemUsers: boolean }): { schemes: SchemeInfo; note?: string } {
  let note: string | undefined;
  let hashes: Map<string, string> | null = null;
  if (opts.hash === 'sha512-crypt') {
    try {
      hashes = sha512Hashes(opts.names, opts.password, opts.cacheDir);
    } catch (err) {
      note = `SHA512-CRYPT hashes unavailable (${(err as Error).message.split('\n')[0]}): the users file is {PLAIN}`;
    }
  }
  const field = (n: string) => (hashes ? `{SHA512-CRYPT}${hashes.get(n)}` : `{PLAIN}${opts.password}`);
  fs.writeFileSync(opts.usersFile, opts.names.map((n) => `${n}:${field(n)}`).join('\n') + '\n', { mode: 0o644 });
  if (hashes && opts.systemUsers) {
    execFileSync('chpasswd', ['-e'], { input: opts.names.map((n) => `${n}:${hashes!.get(n)}`).join('\n') + '\n' });
  }
  const first = opts.names[0];
  return {
    schemes: {
      usersFile: hashes ? describeCrypt(hashes.get(first!)!) : '{PLAIN} (no hash)',
      shadow: opts.systemUsers && first ? shadowScheme(first) : null,
    },
    ...(note ? { note } : {}),
  };
}

/** The scheme of `user`'s /etc/shadow entry, as the system's crypt(3) will check it. */
function shadowScheme(user: string): string {
  try {
    const line = fs.readFileSync('/etc/shadow', 'utf8').split('\n').find((l) => l.startsWith(`${user}:`));
    return line ? describeCrypt(line.split(':')[1] ?? '') : 'unknown (no entry)';
  } catch {
    return 'unknown (/etc/shadow unreadable)';
  }
}

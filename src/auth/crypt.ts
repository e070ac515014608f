/**
 * crypt(3)-style hashes from /etc/shadow and Dovecot files: SHA-crypt `$6$` (sha-crypt.ts, on a
 * wasm SHA-512) and `$5$` (unixcrypt), and bcrypt `$2a$`/`$2b$`/`$2y$` (bcryptjs). Parse-time
 * checks bound the cost a users-file line can ask for; verification is constant-time (the
 * SHA-crypts compare with timingSafeEqual; bcryptjs compares every byte). All are synchronous,
 * so the work runs in a small piscina thread pool (crypt-worker.ts), one thread per core.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { CryptTask } from './crypt-worker.js';

export type CryptScheme = 'SHA256-CRYPT' | 'SHA512-CRYPT' | 'BLF-CRYPT';

export interface CryptHash {
  readonly scheme: CryptScheme;
  readonly hash: string;
}

/**
 * SHA-crypt rounds accepted. The default is 5000 (about 3 ms here for `$6$`, 20 ms for `$5$`);
 * the work is synchronous, so 999,999,999 rounds (the format's maximum) would hold a pool
 * thread for an hour or more.
 */
export const MAX_SHA_CRYPT_ROUNDS = 100_000;
/** bcrypt cost accepted: 2^14 iterations take about 1.5 s in bcryptjs; more is a mistake or an attack. */
export const MAX_BCRYPT_COST = 14;

const SHA = /^\$([56])\$(?:rounds=(\d{1,9})\$)?[^$:]{0,16}\$[./0-9A-Za-z]{43,86}$/;
const BLF = /^\$2[aby]\$(\d\d)\$[./0-9A-Za-z]{53}$/;

/** Which scheme a bare crypt string is, with its cost checked; undefined when unsupported or out of bounds. */
export function parseCrypt(hash: string): CryptHash | undefined {
  const sha = SHA.exec(hash);
  if (sha) {
    if (sha[2] !== undefined && Number(sha[2]) > MAX_SHA_CRYPT_ROUNDS) return undefined;
    const scheme = sha[1] === '5' ? 'SHA256-CRYPT' : 'SHA512-CRYPT';
    const len = hash.length - hash.lastIndexOf('$') - 1;
    if ((scheme === 'SHA256-CRYPT' && len !== 43) || (scheme === 'SHA512-CRYPT' && len !== 86)) return undefined;
    return { scheme, hash };
  }
  const blf = BLF.exec(hash);
  if (blf) {
    const cost = Number(blf[1]);
    if (cost < 4 || cost > MAX_BCRYPT_COST) return undefined;
    return { scheme: 'BLF-CRYPT', hash };
  }
  return undefined;
}

/**
 * Threads for hashing: one per core (more would only queue on the same cores), at most 4 so a
 * large machine running --workers N does not start N×cores threads. Idle threads exit after a
 * while, so a quiet server holds none.
 */
const MAX_CRYPT_THREADS = 4;
const CRYPT_IDLE_MS = 30_000;

let pool: Piscina<CryptTask, boolean | string> | undefined;

function crypt(task: CryptTask): Promise<boolean | string> {
  pool ??= new Piscina<CryptTask, boolean | string>({
    filename: new URL('./crypt-worker.js', import.meta.url).href,
    maxThreads: Math.max(1, Math.min(MAX_CRYPT_THREADS, availableParallelism())),
    minThreads: 0,
    idleTimeout: CRYPT_IDLE_MS,
  });
  return pool.run(task);
}

export async function verifyCrypt(password: string, h: CryptHash): Promise<boolean> {
  return (await crypt({ op: 'verify', password, hash: h.hash, blowfish: h.scheme === 'BLF-CRYPT' })) === true;
}

/** A hash of a random password in `scheme`, for unknown users of a file that uses it. */
export async function dummyCrypt(scheme: CryptScheme, secret: string): Promise<CryptHash> {
  const salt = randomBytes(12).toString('base64').replace(/[^./0-9A-Za-z]/g, '.');
  const prefix = scheme === 'SHA256-CRYPT' ? '$5$' : '$6$';
  const hash = await crypt({ op: 'encrypt', password: secret, salt: `${prefix}${salt}`, blowfish: scheme === 'BLF-CRYPT' });
  return { scheme, hash: String(hash) };
}

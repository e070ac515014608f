/**
 * crypt(3)-style hashes from /etc/shadow and Dovecot files: SHA-crypt `$5$`/`$6$` (unixcrypt)
 * and bcrypt `$2a$`/`$2b$`/`$2y$` (bcryptjs). Parse-time checks bound the cost a users-file line
 * can ask for; verification is constant-time in the libraries (unixcrypt compares with
 * timingSafeEqual; bcryptjs compares every byte).
 */
import bcrypt from 'bcryptjs';
import { randomBytes } from 'node:crypto';

export type CryptScheme = 'SHA256-CRYPT' | 'SHA512-CRYPT' | 'BLF-CRYPT';

export interface CryptHash {
  readonly scheme: CryptScheme;
  readonly hash: string;
}

/**
 * SHA-crypt rounds accepted. The default is 5000 (about 20 ms here); unixcrypt is synchronous
 * pure JS, so 999,999,999 rounds (the format's maximum) would freeze the event loop for hours.
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

let unixcrypt: Promise<typeof import('unixcrypt')> | undefined;

export async function verifyCrypt(password: string, h: CryptHash): Promise<boolean> {
  if (h.scheme === 'BLF-CRYPT') return bcrypt.compare(password, h.hash);
  unixcrypt ??= import('unixcrypt');
  return (await unixcrypt).verify(password, h.hash);
}

/** A hash of a random password in `scheme`, for unknown users of a file that uses it. */
export async function dummyCrypt(scheme: CryptScheme, secret: string): Promise<CryptHash> {
  if (scheme === 'BLF-CRYPT') return { scheme, hash: await bcrypt.hash(secret, 10) };
  unixcrypt ??= import('unixcrypt');
  const salt = randomBytes(12).toString('base64').replace(/[^./0-9A-Za-z]/g, '.');
  return { scheme, hash: (await unixcrypt).encrypt(secret, `${scheme === 'SHA256-CRYPT' ? '$5$' : '$6$'}${salt}`) };
}

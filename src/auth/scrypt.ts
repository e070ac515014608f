/**
 * The {SCRYPT} password scheme (node:crypto scrypt), our own encoding since Dovecot has none:
 *
 *     {SCRYPT}N=16384,r=8,p=1$<salt, base64>$<derived key, base64>
 *
 * N (CPU/memory cost, a power of two), r (block size) and p (parallelism) are scrypt's
 * parameters (RFC 7914); salt is 16 random bytes, the key 32 bytes. Verification recomputes
 * the key with the stored parameters and compares with timingSafeEqual.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/** RFC 7914 §2 "interactive logins" recommendation (N=2^14): ~16 MiB and tens of ms per check. */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = { N: 16384, r: 8, p: 1 };

/** Upper bounds accepted from a users file: a hostile line must not make one login eat GBs. */
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;
const MAX_MEM = 256 * 1024 * 1024;
const SALT_BYTES = 16;
const KEY_BYTES = 32;

export interface ScryptHash {
  readonly params: ScryptParams;
  readonly salt: Buffer;
  readonly key: Buffer;
}

function derive(password: string, salt: Buffer, len: number, params: ScryptParams): Promise<Buffer> {
  const opts: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: MAX_MEM };
  return new Promise((resolve, reject) => scryptCb(password, salt, len, opts, (e, key) => (e ? reject(e) : resolve(key))));
}

/** Parse the part after "{SCRYPT}"; undefined when malformed or out of bounds. */
export function parseScrypt(encoded: string): ScryptHash | undefined {
  const m = /^N=(\d{1,8}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/.exec(encoded);
  if (!m) return undefined;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (N < 2 || N > MAX_N || (N & (N - 1)) !== 0 || r < 1 || r > MAX_R || p < 1 || p > MAX_P) return undefined;
  if (128 * N * r * p > MAX_MEM) return undefined;
  const salt = Buffer.from(m[4]!, 'base64');
  const key = Buffer.from(m[5]!, 'base64');
  if (salt.length < 8 || key.length < 16 || key.length > 64) return undefined;
  return { params: { N, r, p }, salt, key };
}

/** A full "{SCRYPT}..." string for `password` with a fresh random salt. */
export async function hashScrypt(password: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, params);
  return `{SCRYPT}N=${params.N},r=${params.r},p=${params.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Constant-time check of `password` against a parsed hash. */
export async function verifyScrypt(password: string, h: ScryptHash): Promise<boolean> {
  const key = await derive(password, h.salt, h.key.length, h.params);
  return timingSafeEqual(key, h.key);
}

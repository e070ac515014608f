/**
 * SHA-512-crypt (`$6$`, U. Drepper, "Unix crypt using SHA-256 and SHA-512", as glibc and
 * libxcrypt implement it), with the rounds loop on the wasm SHA-512 of sha512-wasm.ts: each
 * round's input is assembled in that module's memory and hashed with one call, ~6× faster than
 * unixcrypt's Hash object per round. The few hashes before the loop use node:crypto.
 *
 * Glibc's behaviour where unixcrypt differs: a password whose length is a multiple of 64 bytes
 * (steps 10 and 16 take the whole last block; unixcrypt takes none of it), and salts of any
 * bytes but `$` (unixcrypt rejects all but [./0-9A-Za-z]).
 */
import crypto from 'node:crypto';
import { CRYPT_C_AT, CRYPT_P_AT, CRYPT_S_AT, SCHED_AT, sha512Wasm } from './sha512-wasm.js';

const ROUNDS_DEFAULT = 5000;
const ROUNDS_MIN = 1000;
const ROUNDS_MAX = 999_999_999;
const SALT_MAX = 16;
const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Where the rounds loop keeps its inputs in the module's memory (64 KiB): the running digest
 *  (64 bytes), the S sequence (≤ 16 bytes), the P sequence (as long as the password). */
const C_AT = CRYPT_C_AT;
const S_AT = CRYPT_S_AT;
const P_AT = CRYPT_P_AT;
/** Longest password the loop takes: a round's message (64 + 3 × P + S, padded) must fit after P. */
export const SHA_CRYPT_MAX_PASSWORD = 8192;

/** A parsed `$6$[rounds=N$]salt[$hash]` setting. */
export interface ShaCryptSetting {
  readonly rounds: number;
  /** rounds= was given (it is then part of the output). */
  readonly custom: boolean;
  readonly salt: Buffer;
}

/** Parses the setting part of a `$6$` string (anything after the salt is ignored); null when it is not one. */
export function parseSha512Setting(setting: string): ShaCryptSetting | null {
  if (!setting.startsWith('$6$')) return null;
  let rest = setting.slice(3);
  let rounds = ROUNDS_DEFAULT;
  let custom = false;
  const r = /^rounds=(\d+)\$/.exec(rest);
  if (r) {
    rounds = Math.min(ROUNDS_MAX, Math.max(ROUNDS_MIN, Number(r[1])));
    custom = true;
    rest = rest.slice(r[0].length);
  }
  const end = rest.indexOf('$');
  const salt = Buffer.from(end < 0 ? rest : rest.slice(0, end), 'utf8').subarray(0, SALT_MAX);
  return { rounds, custom, salt };
}

const sha512 = (...parts: Buffer[]): Buffer => {
  const h = crypto.createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** The 64-byte result of SHA-512-crypt; null when wasm is unavailable or the password too long. */
export function sha512CryptDigest(password: Buffer, salt: Buffer, rounds: number): Buffer | null {
  const w = sha512Wasm();
  if (w === null || password.length > SHA_CRYPT_MAX_PASSWORD) return null;
  const P = password;
  const S = salt;
  const p = P.length;
  const s = S.length;
  // Steps 1-12: digest A.
  const B = sha512(P, S, P);
  const ha = crypto.createHash('sha512').update(P).update(S);
  let cnt = p;
  for (; cnt > 64; cnt -= 64) ha.update(B);
  ha.update(B.subarray(0, cnt));
  for (cnt = p; cnt > 0; cnt >>= 1) ha.update((cnt & 1) !== 0 ? B : P);
  const A = ha.digest();
  // Steps 13-16: the P sequence, from DP = SHA-512(P repeated p times).
  const hdp = crypto.createHash('sha512');
  for (let i = 0; i < p; i++) hdp.update(P);
  const DP = hdp.digest();
  const mem = w.mem;
  for (let off = 0; off < p; off += 64) mem.set(DP.subarray(0, Math.min(64, p - off)), P_AT + off);
  // Steps 17-20: the S sequence, from DS = SHA-512(S repeated 16 + A[0] times).
  const hds = crypto.createHash('sha512');
  for (let i = 0; i < 16 + A[0]!; i++) hds.update(S);
  mem.set(hds.digest().subarray(0, s), S_AT);
  // Step 21: the rounds, each hashing C or P, [S], [P], P or C: one call.
  mem.set(A, C_AT);
  const msg = P_AT + p + (-(P_AT + p) & 15); // after the P sequence, 16-byte aligned
  w.crypt(rounds, p, s, msg);
  const C = Buffer.from(mem.subarray(C_AT, C_AT + 64));
  // No password-derived bytes left behind: the inputs, the last message and its schedule.
  mem.fill(0, 0, Math.min(SCHED_AT, msg + 2 * 128 + 3 * p + s + 64));
  mem.fill(0, SCHED_AT);
  return C;
}

/** Step 22: the digest in crypt's base-64, bytes taken in the SHA-512 order. */
function encode64(C: Buffer): string {
  let out = '';
  const put = (b2: number, b1: number, b0: number, n: number): void => {
    let v = (b2 << 16) | (b1 << 8) | b0;
    for (let k = 0; k < n; k++, v >>= 6) out += ITOA64[v & 0x3f];
  };
  for (let k = 0; k < 21; k++) {
    const t = [C[k]!, C[k + 21]!, C[k + 42]!];
    const r = k % 3; // the triple rotates left by one each time
    put(t[r]!, t[(r + 1) % 3]!, t[(r + 2) % 3]!, 4);
  }
  put(0, 0, C[63]!, 2);
  return out;
}

/** The full `$6$` string for `password` under `setting` (whose hash part, if any, is ignored); null as sha512CryptDigest. */
export function sha512Crypt(password: string, setting: string): string | null {
  const conf = parseSha512Setting(setting);
  if (conf === null) return null;
  const C = sha512CryptDigest(Buffer.from(password, 'utf8'), conf.salt, conf.rounds);
  if (C === null) return null;
  return `$6$${conf.custom ? `rounds=${conf.rounds}$` : ''}${conf.salt.toString('utf8')}$${encode64(C)}`;
}

/** Does `password` match the `$6$` hash? null when this implementation cannot tell (no wasm, huge password). */
export function verifySha512Crypt(password: string, hash: string): boolean | null {
  const computed = sha512Crypt(password, hash);
  if (computed === null) return null;
  const a = Buffer.from(computed, 'utf8');
  const b = Buffer.from(hash, 'utf8');
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

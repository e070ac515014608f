/**
 * The crypt(3) work itself, run in piscina's worker threads (crypt.ts): SHA-512-crypt on the
 * wasm SHA-512 (sha-crypt.ts, ~3-4 ms a login), SHA-256-crypt with unixcrypt and bcrypt with
 * bcryptjs (synchronous JavaScript, ~20 ms a login), which on the main thread would stall every
 * other session and leave the second core idle. unixcrypt also stands in for SHA-512-crypt
 * where wasm is unavailable.
 */
import bcrypt from 'bcryptjs';
import { encrypt, verify } from 'unixcrypt';
import { sha512Crypt, verifySha512Crypt } from './sha-crypt.js';

export type CryptTask =
  | { readonly op: 'verify'; readonly password: string; readonly hash: string; readonly blowfish: boolean }
  | { readonly op: 'encrypt'; readonly password: string; readonly salt: string; readonly blowfish: boolean };

export default function run(task: CryptTask): boolean | string {
  if (task.op === 'verify') {
    if (task.blowfish) return bcrypt.compareSync(task.password, task.hash);
    return (task.hash.startsWith('$6$') ? verifySha512Crypt(task.password, task.hash) : null) ?? verify(task.password, task.hash);
  }
  if (task.blowfish) return bcrypt.hashSync(task.password, 10);
  return (task.salt.startsWith('$6$') ? sha512Crypt(task.password, task.salt) : null) ?? encrypt(task.password, task.salt);
}

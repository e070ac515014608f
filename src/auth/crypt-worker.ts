/**
 * The crypt(3) work itself, run in piscina's worker threads (crypt.ts): unixcrypt's SHA-crypt
 * and bcryptjs are synchronous JavaScript, ~20 ms a login, which on the main thread would stall
 * every other session and leave the second core idle.
 */
import bcrypt from 'bcryptjs';
import { encrypt, verify } from 'unixcrypt';

export type CryptTask =
  | { readonly op: 'verify'; readonly password: string; readonly hash: string; readonly blowfish: boolean }
  | { readonly op: 'encrypt'; readonly password: string; readonly salt: string; readonly blowfish: boolean };

export default function run(task: CryptTask): boolean | string {
  if (task.op === 'verify') return task.blowfish ? bcrypt.compareSync(task.password, task.hash) : verify(task.password, task.hash);
  return task.blowfish ? bcrypt.hashSync(task.password, 10) : encrypt(task.password, task.salt);
}

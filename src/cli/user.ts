/**
 * `popspool user add|passwd|del|list`: edits the users file atomically (the server picks the
 * change up without a restart). Passwords come from stdin when it is not a terminal, else from
 * a prompt that does not echo.
 */
import readline from 'node:readline';
import { Writable } from 'node:stream';
import { addUser, deleteUser, listUsers, setPassword } from '../auth/passwd-file.js';
import { validateUsername } from '../auth/username.js';
import { ConfigError } from '../errors.js';

/** A password longer than this is a mistake (a file piped in by accident), not a password. */
const MAX_PASSWORD_BYTES = 1024;

async function readPassword(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of process.stdin) {
      chunks.push(chunk as Buffer);
      total += (chunk as Buffer).length;
      if (total > MAX_PASSWORD_BYTES + 2) throw new ConfigError(`password on stdin is longer than ${MAX_PASSWORD_BYTES} bytes`);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    return text.replace(/\r?\n$/, '');
  }
  let muted = false;
  const output = new Writable({ write: (chunk, _enc, cb) => { if (!muted) process.stderr.write(chunk); cb(); } });
  const rl = readline.createInterface({ input: process.stdin, output, terminal: true });
  const ask = (q: string) => new Promise<string>((resolve) => {
    process.stderr.write(q);
    muted = true;
    rl.question('', (a) => { muted = false; process.stderr.write('\n'); resolve(a); });
  });
  try {
    const first = await ask(prompt);
    const second = await ask('Again: ');
    if (first !== second) throw new ConfigError('the two passwords differ');
    return first;
  } finally {
    rl.close();
  }
}

export async function userCommand(action: 'add' | 'passwd' | 'del' | 'list', name: string | undefined, usersFile: string): Promise<void> {
  if (action === 'list') {
    for (const u of await listUsers(usersFile)) console.log(u);
    return;
  }
  if (!name) throw new ConfigError(`user ${action}: name a user`);
  if (!validateUsername(name)) throw new ConfigError(`user ${action}: "${name}" is not a valid user name (letters, digits, . _ + -; at most 64)`);
  if (action === 'del') {
    await deleteUser(usersFile, name);
    console.error(`popspool: deleted ${name} from ${usersFile}`);
    return;
  }
  const password = await readPassword(`Password for ${name}: `);
  if (password === '') throw new ConfigError('empty password refused');
  if (action === 'add') await addUser(usersFile, name, password);
  else await setPassword(usersFile, name, password);
  console.error(`popspool: ${action === 'add' ? 'added' : 'changed password of'} ${name} in ${usersFile}`);
}

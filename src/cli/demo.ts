/**
 * `popspool demo` (what `npm start` runs): copies the bundled demo spools into a working copy
 * under .demo/ in the project (fresh on every start; the fixtures in the repo are never
 * modified) and serves them on 127.0.0.1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildConfig } from '../config/load.js';
import { serve } from './serve.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export async function demo(opts: { port: number; mode: 'server' | 'copy' }): Promise<void> {
  const fixtures = path.join(ROOT, 'spool-fixtures');
  const work = path.join(ROOT, '.demo');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(path.join(work, 'state'), { recursive: true, mode: 0o700 });
  fs.cpSync(path.join(fixtures, 'mail'), path.join(work, 'mail'), { recursive: true });
  const config = buildConfig(undefined, {
    listen: [`127.0.0.1:${opts.port}`],
    spool: path.join(work, 'mail', '%u'),
    users: path.join(fixtures, 'users'),
    'state-dir': path.join(work, 'state'),
    mode: opts.mode,
  });
  await serve(config, {
    stdio: false,
    onListening: (bound) => {
      const port = bound[0]?.port ?? opts.port;
      console.log(`
popspool demo (${opts.mode} mode) is serving the demo spools on 127.0.0.1:${port}
  working copy: ${path.relative(process.cwd(), work) || work}/mail (reset from spool-fixtures/mail at every start)
  users:        alice / wonderland   (21 messages)     bob / builder        (empty spool)
                carol / crlf-rocks   (CRLF spool)      mallory / malformed  (refused: [SYS/PERM])
Try:
  curl pop3://alice:wonderland@127.0.0.1:${port}/        # list messages
  curl pop3://alice:wonderland@127.0.0.1:${port}/1       # print message 1
  python3 -c "import poplib; p=poplib.POP3('127.0.0.1', ${port}); p.user('alice'); p.pass_('wonderland'); print(p.stat()); p.quit()"
Press Ctrl-C to stop.
`);
    },
  });
}

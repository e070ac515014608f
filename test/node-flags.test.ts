/**
 * The V8 flags of src/cli/node-flags.ts reach every way popspool is started: bin/popspool's
 * shebang (what /usr/bin/popspool, the systemd units and inetd run), and the npm scripts that
 * start it. A server started through the shebang runs with them.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { NODE_FLAGS } from '../src/cli/node-flags.js';

const root = new URL('../../', import.meta.url);

describe('node flags', () => {
  it('bin/popspool runs node with NODE_FLAGS, through env -S', () => {
    const first = readFileSync(new URL('bin/popspool', root), 'utf8').split('\n')[0];
    expect(first).to.equal(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
  });

  it('npm start and npm run bench give node the same flags', () => {
    const scripts = (JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const name of ['start', 'bench']) expect(scripts[name]).to.include(`node ${NODE_FLAGS.join(' ')} bin/popspool `);
  });

  it('a server started as bin/popspool has them (serve --stdio, as inetd runs it)', async () => {
    const child = spawn(new URL('bin/popspool', root).pathname, ['serve', '--stdio', '--users', '/dev/null', '--spool', '/nonexistent/%u'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const greeting = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(d.toString()));
      child.once('error', reject);
    });
    expect(greeting).to.match(/^\+OK/);
    const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
    child.stdin.end('QUIT\r\n');
    await new Promise((resolve) => child.once('close', resolve));
    for (const f of NODE_FLAGS) expect(argv).to.include(f);
  });
});

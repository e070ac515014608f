/**
 * The command line's help: wrapped for the terminal when asked for, although every other
 * invocation leaves the text yargs renders for itself unwrapped (main.ts: inetd mode starts a
 * process per connection and should not pay for laying out help nobody reads).
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { BIN } from './helpers/popspool-server.js';

describe('popspool --help', () => {
  for (const args of [['serve', '--help'], ['serve', '-h'], ['--help']]) {
    it(`popspool ${args.join(' ')} is wrapped to at most 110 columns`, () => {
      const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20000 });
      expect(r.status, r.stderr).to.equal(0);
      const lines = r.stdout.split('\n');
      expect(lines.length).to.be.greaterThan(args[0] === 'serve' ? 60 : 10);
      const long = lines.filter((l) => l.length > 110);
      expect(long, long.join('\n')).to.deep.equal([]);
    });
  }

  it('a bad flag still gets one line naming it, exit 2', () => {
    const r = spawnSync(process.execPath, [BIN, 'serve', '--bogus-flag'], { encoding: 'utf8', timeout: 20000 });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.match(/^popspool: .*bogus-flag/m);
  });
});

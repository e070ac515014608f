/** The order of a workload's measured repetitions (index.ts schedule). */
import { expect } from 'chai';
import { schedule } from './index.js';

const t = (name: string): { name: string } => ({ name });

describe('bench schedule', () => {
  it('the servers take turns, forward then in reverse, and copy mode follows their rounds', () => {
    const running = ['copy', 'server', 'server+hold', 'popa3d'].map(t);
    const got = schedule(running, 3).map(({ target, rep }) => `${target.name}${rep + 1}`);
    expect(got).to.deep.equal([
      'server1', 'server+hold1', 'popa3d1',
      'popa3d2', 'server+hold2', 'server2',
      'server3', 'server+hold3', 'popa3d3',
      'copy1', 'copy2', 'copy3',
    ]);
  });

  it('no repetition of another server follows one of copy mode', () => {
    for (const names of [['copy', 'server'], ['server', 'copy', 'dovecot'], ['copy'], ['server', 'popa3d']]) {
      const order = schedule(names.map(t), 4).map(({ target }) => target.name);
      expect(order).to.have.length(4 * names.length);
      order.forEach((n, i) => {
        if (i > 0 && order[i - 1] === 'copy') expect(n).to.equal('copy');
      });
    }
  });
});

/** The report's Method section says what the run did: a quick run makes no warm-up repetition. */
import { expect } from 'chai';
import { Results } from './context.js';
import { method, speedups } from './report.js';

describe('bench report method', () => {
  it('a full run says each server first makes a repetition that is not measured', () => {
    const text = method(true, false).join('\n');
    expect(text).to.match(/first does one repetition that is not measured/);
    expect(text).not.to.match(/--quick run/);
  });

  it('a --quick run says it skips that warm-up, so its times include start-up', () => {
    const text = method(true, true).join('\n');
    expect(text).to.match(/This is a --quick run/).and.match(/skips the unmeasured warm-up/);
    expect(text).not.to.match(/first does one repetition that is not measured/);
  });

  it('the Speed-ups table compares the servers, not the bench client\'s own CPU', () => {
    const r = new Results();
    for (const [t, v] of [['server', 1], ['popa3d', 2]] as const) {
      r.add(t, 'c.total/1k', 0.3 * v, 's', 'lower');
      r.add(t, 'c.client/1k', 0.1 * v, 's', 'lower');
      r.add(t, 'b.clientms/1k', 0.08 * v, 'ms', 'lower');
    }
    const rows = speedups(r, ['server', 'popa3d']).filter((l) => l.startsWith('| '));
    expect(rows.some((l) => l.startsWith('| c.total/1k | 2'))).to.equal(true);
    expect(rows.filter((l) => /client/.test(l))).to.deep.equal([]);
  });
});

/** The report's Method section says what the run did: a quick run makes no warm-up repetition. */
import { expect } from 'chai';
import { method } from './report.js';

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
});

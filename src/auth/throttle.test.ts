/** The failed-login throttle as a table, on an injected clock: delays, blocks, windows, bounds. */
import { expect } from 'chai';
import { LoginThrottle, MAX_THROTTLE_ENTRIES, type ThrottleOptions } from './throttle.js';

function make(over: Partial<ThrottleOptions> = {}): { t: LoginThrottle; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const t = new LoginThrottle({ baseDelayMs: 2000, maxDelayMs: 15000, blockIpAfter: 4, blockUserAfter: 6, windowMs: 60_000, now: () => clock.now, ...over });
  return { t, clock };
}

describe('auth/throttle', () => {
  it('doubles the delay per failure up to the ceiling', () => {
    const { t } = make({ blockIpAfter: 0, blockUserAfter: 0 });
    const delays = Array.from({ length: 6 }, () => t.fail('192.0.2.1', 'alice'));
    expect(delays).to.deep.equal([2000, 4000, 8000, 15000, 15000, 15000]);
    expect(make({ baseDelayMs: 0 }).t.fail('a', 'b')).to.equal(0);
  });

  it('the delay follows the larger of the address and the name counts', () => {
    const { t } = make({ blockIpAfter: 0, blockUserAfter: 0 });
    t.fail('192.0.2.1', 'alice');
    t.fail('192.0.2.2', 'alice');
    // third failure for alice, first from .3
    expect(t.fail('192.0.2.3', 'alice')).to.equal(8000);
    expect(t.fail('192.0.2.3', 'bob')).to.equal(4000); // .3 has two now
  });

  it('blocks an address after blockIpAfter failures, for any name, until the window passes', () => {
    const { t, clock } = make();
    for (let i = 0; i < 4; i++) {
      expect(t.check('192.0.2.9', `u${i}`).blocked).to.equal(false);
      t.fail('192.0.2.9', `u${i}`);
    }
    const v = t.check('192.0.2.9', 'anyone');
    expect(v).to.deep.include({ blocked: true, by: 'ip', retryAfterMs: 60_000 });
    expect(t.check('192.0.2.10', 'anyone').blocked).to.equal(false);
    clock.now += 59_999;
    expect(t.check('192.0.2.9', 'anyone').blocked).to.equal(true);
    clock.now += 1;
    expect(t.check('192.0.2.9', 'anyone').blocked).to.equal(false);
  });

  it('blocks a name after blockUserAfter failures from anywhere; known and unknown names alike; success clears it', () => {
    const { t } = make({ blockIpAfter: 0 });
    for (const name of ['alice', 'no-such-user']) {
      for (let i = 0; i < 6; i++) t.fail(`198.51.100.${i}`, name);
      expect(t.check('203.0.113.1', name)).to.deep.include({ blocked: true, by: 'user' });
    }
    expect(t.check('203.0.113.1', 'bob').blocked).to.equal(false);
    t.succeed('203.0.113.1', 'alice');
    expect(t.check('203.0.113.1', 'alice').blocked).to.equal(false);
  });

  it('0 disables each block', () => {
    const { t } = make({ blockIpAfter: 0, blockUserAfter: 0 });
    for (let i = 0; i < 100; i++) t.fail('192.0.2.1', 'alice');
    expect(t.check('192.0.2.1', 'alice').blocked).to.equal(false);
  });

  it('keeps at most MAX_THROTTLE_ENTRIES per table, evicting the stalest', () => {
    const { t, clock } = make({ blockIpAfter: 1, blockUserAfter: 0, windowMs: 10 * MAX_THROTTLE_ENTRIES });
    t.fail('10.0.0.0', 'x');
    for (let i = 1; i <= MAX_THROTTLE_ENTRIES; i++) {
      clock.now++;
      t.fail(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 'x');
    }
    expect(t.size.ips).to.equal(MAX_THROTTLE_ENTRIES);
    expect(t.check('10.0.0.0', 'y').blocked).to.equal(false); // the oldest was evicted
    expect(t.check('10.0.0.1', 'y').blocked).to.equal(true);
  });
});

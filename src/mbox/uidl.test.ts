// UIDL tests: X-UIDL reuse rules, header-set hashing, stability under Status edits and
// deletions, and duplicate disambiguation.
import { expect } from 'chai';
import fc from 'fast-check';
import { hash } from 'node:crypto';
import { MboxScanner } from './scanner.js';
import { finalizeUidls, isValidUidl, UIDL_MAX_LENGTH, uidlBase } from './uidl.js';

const scan = (s: string) => {
  const sc = new MboxScanner({ strictFrom: false });
  sc.push(Buffer.from(s, 'latin1'));
  return sc.finish().messages;
};

const M1 =
  'From a@example.org Mon Jan  1 00:00:00 2024\n' +
  'Received: from mx by mail; Mon, 1 Jan 2024 00:00:00 +0000\n' +
  '\tby a continuation line\n' +
  'Subject: one\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <1@x>\n\nbody one\n\n';
const M2 =
  'From b@example.org Mon Jan  1 00:01:00 2024\n' +
  'Delivered-To: alice@example.org\nSubject: two\nDate: Mon, 1 Jan 2024 00:01:00 +0000\nMessage-ID: <2@x>\n\nbody two\n\n';
const M3 = 'From c@example.org Mon Jan  1 00:02:00 2024\nX-UIDL: qpop-abc123\nSubject: three\n\nbody three\n\n';

describe('mbox UIDL', () => {
  it('valid X-UIDL syntax: 1..70 chars in 0x21..0x7E', () => {
    const table: ReadonlyArray<readonly [string, boolean]> = [
      ['a', true],
      ['9d1c2f7a3b4e5d6c', true],
      ['x'.repeat(70), true],
      ['x'.repeat(71), false],
      ['', false],
      ['has space', false],
      ['tab\there', false],
      ['caf\u00e9', false],
      ['!~', true],
    ];
    for (const [v, ok] of table) expect(isValidUidl(v), JSON.stringify(v)).to.equal(ok);
  });

  it('reuses a valid X-UIDL, otherwise hashes to 32 hex chars', () => {
    expect(uidlBase('From x', { 'x-uidl': '  abc  ' })).to.equal('abc');
    expect(uidlBase('From x', { 'x-uidl': 'a b' })).to.match(/^[0-9a-f]{32}$/);
    const [m1, m2, m3] = scan(M1 + M2 + M3);
    expect(m1!.uidlBase).to.match(/^[0-9a-f]{32}$/);
    expect(m2!.uidlBase).to.match(/^[0-9a-f]{32}$/);
    expect(m3!.uidlBase).to.equal('qpop-abc123');
  });

  it('with Received: hashes the first Received (folded), not Date/Message-ID/Subject', () => {
    const base = scan(M1)[0]!.uidlBase;
    expect(scan(M1.replace('<1@x>', '<other@x>'))[0]!.uidlBase).to.equal(base);
    expect(scan(M1.replace('Subject: one', 'Subject: edited'))[0]!.uidlBase).to.equal(base);
    expect(scan(M1.replace('by a continuation', 'by another continuation'))[0]!.uidlBase).to.not.equal(base);
    expect(scan(M1.replace('Received: from mx', 'Received: from mx2'))[0]!.uidlBase).to.not.equal(base);
    expect(scan(M1.replace('From a@example.org', 'From z@example.org'))[0]!.uidlBase).to.not.equal(base);
    // A second Received header added later (e.g. by a relay re-delivery) does not count.
    const withSecond = M1.replace('Subject: one', 'Received: from elsewhere\nSubject: one');
    expect(scan(withSecond)[0]!.uidlBase).to.equal(base);
  });

  it('without Received: Date and Message-ID count', () => {
    const base = scan(M2)[0]!.uidlBase;
    expect(scan(M2.replace('<2@x>', '<3@x>'))[0]!.uidlBase).to.not.equal(base);
    expect(scan(M2.replace('00:01:00 +0000', '00:01:01 +0000'))[0]!.uidlBase).to.not.equal(base);
    expect(scan(M2.replace('Delivered-To: alice', 'Delivered-To: bob'))[0]!.uidlBase).to.not.equal(base);
    expect(scan(M2.replace('Subject: two', 'X-Delivery-ID: r4nd0m\nSubject: two'))[0]!.uidlBase).to.not.equal(base);
  });

  it('does not change when Status/X-Status headers change', () => {
    const plain = scan(M1 + M2 + M3).map((m) => m.uidlBase);
    const flagged = scan(
      M1.replace('Subject: one', 'Status: RO\nX-Status: A\nSubject: one') +
        M2.replace('Subject: two', 'Status: O\nSubject: two') +
        M3.replace('Subject: three', 'Status: RO\nSubject: three'),
    ).map((m) => m.uidlBase);
    expect(flagged).to.deep.equal(plain);
  });

  it('does not change when earlier messages are deleted', () => {
    const all = scan(M1 + M2 + M3).map((m) => m.uidlBase);
    expect(scan(M2 + M3).map((m) => m.uidlBase)).to.deep.equal(all.slice(1));
    expect(scan(M3).map((m) => m.uidlBase)).to.deep.equal(all.slice(2));
  });

  it('hashes exactly the From_ line and `name:value` lines it documents (node:crypto as the oracle)', () => {
    // The UIDL of a message already served must never change: the input is fixed byte for byte.
    const reference = (fromLine: string, h: Record<string, string | undefined>): string => {
      let input = fromLine.replace(/\r$/, '') + '\n';
      const names = h['received'] !== undefined ? ['received', 'delivered-to', 'x-delivery-id'] : ['delivered-to', 'x-delivery-id', 'date', 'message-id'];
      for (const n of names) if (h[n] !== undefined) input += `${n}:${h[n]}\n`;
      return hash('md5', Buffer.from(input, 'latin1'), 'hex');
    };
    const value = fc.option(fc.string({ maxLength: 300 }), { nil: undefined });
    fc.assert(fc.property(fc.string({ maxLength: 120 }), fc.boolean(), value, value, value, value, value, (from, cr, received, deliveredTo, date, messageId, deliveryId) => {
      const fromLine = 'From ' + from + (cr ? '\r' : '');
      const h = { received, 'delivered-to': deliveredTo, date, 'message-id': messageId, 'x-delivery-id': deliveryId };
      expect(uidlBase(fromLine, h)).to.equal(reference(fromLine, h));
    }), { numRuns: 300 });
    // A fixed case, so a change to the reference itself shows too.
    expect(uidlBase('From a@b Mon Jan  1 00:00:00 2024', { received: ' from x', date: ' d' })).to.equal(
      hash('md5', 'From a@b Mon Jan  1 00:00:00 2024\nreceived: from x\n', 'hex'),
    );
  });

  describe('finalizeUidls', () => {
    const table: ReadonlyArray<readonly [string[], string[]]> = [
      [[], []],
      [['a', 'b'], ['a', 'b']],
      [['a', 'a', 'a'], ['a', 'a-2', 'a-3']],
      [['a', 'b', 'a'], ['a', 'b', 'a-2']],
      // a suffixed value never collides with another message's base
      [['a', 'a', 'a-2'], ['a', 'a-3', 'a-2']],
      [['a-2', 'a', 'a'], ['a-2', 'a', 'a-3']],
      [['x', 'x', 'x-2', 'x-3'], ['x', 'x-4', 'x-2', 'x-3']],
    ];
    for (const [input, want] of table) {
      it(`${JSON.stringify(input)} -> ${JSON.stringify(want)}`, () => {
        expect(finalizeUidls(input)).to.deep.equal(want);
      });
    }

    it('keeps results within 70 characters', () => {
      const long = 'L'.repeat(UIDL_MAX_LENGTH);
      const out = finalizeUidls([long, long, long]);
      expect(out[0]).to.equal(long);
      expect(out[1]).to.equal('L'.repeat(68) + '-2');
      for (const u of out) expect(isValidUidl(u)).to.equal(true);
    });

    it('property: always unique, valid, first occurrence keeps its base', () => {
      const uidl = fc.stringMatching(/^[a-c0-9-]{1,4}$|^L{66,70}$/);
      fc.assert(
        fc.property(fc.array(uidl, { maxLength: 30 }), (bases) => {
          const out = finalizeUidls(bases);
          expect(out).to.have.length(bases.length);
          expect(new Set(out).size).to.equal(out.length);
          for (const u of out) expect(isValidUidl(u)).to.equal(true);
          bases.forEach((b, k) => {
            if (bases.indexOf(b) === k) expect(out[k]).to.equal(b);
          });
        }),
        { numRuns: 500 },
      );
    });
  });
});

import { expect } from 'chai';
import type { ScannedMessage } from '../mbox/types.js';
import { EMPTY, entries, listOf, scanList } from './message-list.js';

/** A scanned message with only what a list reads set to something meaningful. */
const scanned = (size: number, uidlBase: string): ScannedMessage => ({
  fromOffset: 0, start: 0, bodyStart: 0, end: 0, size, bodyLines: 0, uidlBase, status: '', statusOffset: -1, statusLength: -1, sum: 0,
});

describe('drop message lists', () => {
  it('a scan list reads sizes, the total and unique UIDLs by index', () => {
    const list = scanList([scanned(10, 'a'), scanned(20, 'b'), scanned(5, 'a')]);
    expect(list.length).to.equal(3);
    expect([0, 1, 2].map((i) => list.size(i))).to.deep.equal([10, 20, 5]);
    expect(list.octets).to.equal(35);
    // Duplicates are renamed as finalizeUidls does: the second 'a' becomes 'a-2'.
    expect(entries(list)).to.deep.equal([{ size: 10, uidl: 'a' }, { size: 20, uidl: 'b' }, { size: 5, uidl: 'a-2' }]);
  });

  it('an index out of range throws instead of answering undefined', () => {
    const list = scanList([scanned(1, 'x')]);
    for (const i of [-1, 1, 1.5]) {
      expect(() => list.size(i), `size(${i})`).to.throw(RangeError);
      expect(() => list.uidl(i), `uidl(${i})`).to.throw(RangeError);
    }
    expect(() => listOf([{ size: 1, uidl: 'x' }]).uidl(1)).to.throw(RangeError);
  });

  it('scans sharing their message objects (warm cache hits) share one list; another scan gets its own', () => {
    const ms = [scanned(1, 'a'), scanned(2, 'b')];
    const list = scanList(ms);
    expect(scanList(ms.slice())).to.equal(list);
    // A tail rescan keeps the prefix's objects but not the last one or the length.
    const grown = scanList([...ms, scanned(3, 'a')]);
    expect(grown).to.not.equal(list);
    expect(grown.uidl(2)).to.equal('a-2');
    // Same first and last objects, another length.
    expect(scanList([ms[0]!, scanned(9, 'z'), ms[1]!])).to.not.equal(list);
  });

  it('empty lists', () => {
    expect(scanList([])).to.equal(EMPTY);
    expect(EMPTY.length).to.equal(0);
    expect(EMPTY.octets).to.equal(0);
    expect(entries(EMPTY)).to.deep.equal([]);
  });

  it('listOf keeps the pairs it is given', () => {
    const pairs = [{ size: 3, uidl: 'u1' }, { size: 4, uidl: 'u2' }];
    const list = listOf(pairs);
    expect(list.octets).to.equal(7);
    expect(entries(list)).to.deep.equal(pairs);
  });
});

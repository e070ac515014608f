/** The report's number format: significant digits by magnitude, and plain zeros (counts, CPU). */
import { expect } from 'chai';
import { fmt } from './svg.js';

describe('bench number format', () => {
  it('writes zero as 0, not in exponent form', () => {
    expect(fmt(0)).to.equal('0');
    expect(fmt(-0)).to.equal('0');
  });

  it('keeps three or four significant digits by magnitude, and an exponent only for tiny values', () => {
    expect(fmt(1234.56)).to.equal('1235');
    expect(fmt(123.456)).to.equal('123.5');
    expect(fmt(12.3456)).to.equal('12.35');
    expect(fmt(1.23456)).to.equal('1.235');
    expect(fmt(0.0123456)).to.equal('0.0123');
    expect(fmt(0.0000123)).to.equal('1.23e-5');
    expect(fmt(NaN)).to.equal('–');
  });
});

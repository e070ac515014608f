// Table-driven From_ line recognition tests (in the spirit of Dovecot's test-mbox-from.c).
import { expect } from 'chai';
import { FROM_LINE_MAX, isFromLine } from './from-line.js';

/** [line, loose, strict] */
const TABLE: ReadonlyArray<readonly [string, boolean, boolean]> = [
  // Real-world From_ lines: both modes accept.
  ['From MAILER-DAEMON Fri Jul  8 12:08:34 2011', true, true],
  ['From alice@example.org Sat Jan  3 01:05:34 1996 +0200', true, true],
  ['From bob Mon Jan 1 00:00 2024', true, true],
  ['From - Fri Jul  8 12:08:34 2011', true, true],
  ['From postmaster@example.org  Mon Mar  4 09:12:01 2024', true, true], // Postfix: two spaces
  ['From user Thu Nov 29 22:33:52 EET 2001', true, true], // zone before the year
  ['From user Thu Nov 29 22:33:52 MET DST 2001', true, true],
  ['From user Thu Nov 29 22:33:52 2001 -0800', true, true],
  ['From user Thu Nov 29 22:33:52 2001 PST', true, true],
  ['From uucp!host!user Thu Nov 29 22:33:52 2001 remote from gateway', true, true],
  ['From user Thu Nov 29 22:33:52 01', true, true], // two-digit year
  ['From "john doe"@example.org Thu Nov 29 22:33:52 2001', true, true], // quoted sender
  ['From Thu Nov 29 22:33:52 2001', true, true], // no sender
  ['From user Thu, Nov 29 22:33:52 2001', true, true],
  ['From user Thu Nov 29 22:33:52 2001\r', true, true], // CRLF spool: the CR is not text
  ['From user Thu Nov 29 22:33:52 2001\n', true, true], // terminator passed along
  ['From user Thu Nov 29 22:33:52 2001   ', true, true], // trailing blanks
  // Body text after an empty line: loose accepts, strict refuses.
  ['From here on, everything is fine.', true, false],
  ['From the desk of Carol', true, false],
  ['From ', true, false],
  ['From user', true, false],
  ['From user Thu Nov 29', true, false],
  ['From user Thu Nov 29 22:33:52', true, false], // no year
  ['From user Thu Xyz 29 22:33:52 2001', true, false], // bad month
  ['From user Xyz Nov 29 22:33:52 2001', true, false], // bad weekday
  ['From user Thu Nov 32 22:33:52 2001', true, false], // day out of range
  ['From user Thu Nov 29 24:33:52 2001', true, false], // hour out of range
  ['From user Thu Nov 29 22:60:52 2001', true, false], // minute out of range
  ['From user Thu Nov 29 22:33:52 2001 and then some text', true, false],
  // Never From_ lines.
  ['From: alice@example.org', false, false],
  ['>From user Thu Nov 29 22:33:52 2001', false, false],
  ['from user Thu Nov 29 22:33:52 2001', false, false],
  [' From user Thu Nov 29 22:33:52 2001', false, false],
  ['From', false, false],
  ['', false, false],
];

describe('mbox From_ line recognition', () => {
  for (const [line, loose, strict] of TABLE) {
    it(`${JSON.stringify(line)}: loose ${loose}, strict ${strict}`, () => {
      expect(isFromLine(line, false), 'loose, string').to.equal(loose);
      expect(isFromLine(line, true), 'strict, string').to.equal(strict);
      const buf = Buffer.from(line, 'latin1');
      expect(isFromLine(buf, false), 'loose, Buffer').to.equal(loose);
      expect(isFromLine(buf, true), 'strict, Buffer').to.equal(strict);
    });
  }

  it(`strict refuses lines longer than FROM_LINE_MAX (${FROM_LINE_MAX}); loose does not care`, () => {
    const date = ' Thu Nov 29 22:33:52 2001';
    const fits = `From ${'u'.repeat(FROM_LINE_MAX - 5 - date.length)}${date}`;
    expect(fits.length).to.equal(FROM_LINE_MAX);
    expect(isFromLine(fits, true)).to.equal(true);
    expect(isFromLine(fits + '\r\n', true)).to.equal(true);
    const long = `From u${fits.slice(5)}`;
    expect(isFromLine(long, true)).to.equal(false);
    expect(isFromLine(long, false)).to.equal(true);
  });
});

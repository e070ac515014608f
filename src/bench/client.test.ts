import { expect } from 'chai';
import { MultilineSink, mismatch, type Check } from './client.js';
import { digestLines, Rng } from './generator.js';

/** The wire form of a multi-line reply body: CRLF lines, leading dots stuffed, the ".\r\n" end. */
function stuffed(lines: readonly string[]): Buffer {
  return Buffer.from(lines.map((l) => (l.startsWith('.') ? `.${l}` : l) + '\r\n').join('') + '.\r\n');
}

/** Feeds `wire` in pieces cut at the given offsets; returns the digest and what followed the end. */
function feedCut(wire: Buffer, cuts: number[], check: Check) {
  const sink = new MultilineSink(check);
  let prev = 0;
  for (const at of [...cuts, wire.length]) {
    const rest = sink.feed(wire.subarray(prev, at));
    prev = at;
    if (rest !== null) return { got: sink.digest(), rest: Buffer.concat([rest, wire.subarray(at)]) };
  }
  return { got: null, rest: null };
}

describe('bench client: MultilineSink', () => {
  const LINES = ['Subject: dots', '', '.leading dot', '..two dots', 'a line', '.', 'From me', '>From you', '. ', 'end'];
  const want = digestLines(LINES);

  for (const check of ['sha256', 'crc32'] as const) {
    it(`${check}: un-stuffs and matches the generator's digest however the reply is cut`, () => {
      const wire = Buffer.concat([stuffed(LINES), Buffer.from('+OK next\r\n')]);
      const rng = new Rng(7);
      for (let trial = 0; trial < 200; trial++) {
        const cuts = Array.from({ length: rng.int(0, 6) }, () => rng.int(0, wire.length)).sort((a, b) => a - b);
        const { got, rest } = feedCut(wire, cuts, check);
        expect(got, `cuts ${cuts.join(',')}`).to.not.equal(null);
        expect(mismatch(got!, want), `cuts ${cuts.join(',')}`).to.equal(null);
        expect(got!.octets).to.equal(want.octets);
        expect(rest!.toString()).to.equal('+OK next\r\n');
      }
    });

    it(`${check}: one changed byte, a lost stuffing dot or a lost line is a mismatch`, () => {
      const good = stuffed(LINES);
      const flipped = Buffer.from(good);
      flipped[good.indexOf('a line')] ^= 0x01;
      const unstuffedTwice = Buffer.from(good.toString().replace('...two', '..two'));
      const lostLine = stuffed(LINES.filter((l) => l !== 'a line'));
      for (const bad of [flipped, unstuffedTwice, lostLine]) {
        const { got } = feedCut(bad, [], check);
        expect(mismatch(got!, want)).to.be.a('string');
      }
    });
  }

  it('a digest with no checksum never verifies', () => {
    expect(mismatch({ octets: want.octets }, want)).to.equal('no checksum was computed');
  });
});

/** LineReader: the same input split at every offset must give the same events. */
import { expect } from 'chai';
import { LineReader, MAX_COMMAND_LINE, type LineEvent } from './line-reader.js';

function show(ev: LineEvent): string {
  return ev.kind === 'line' ? `L:${ev.bytes.toString('latin1')}` : 'TOO-LONG';
}

function run(chunks: Buffer[], max = MAX_COMMAND_LINE): string[] {
  const r = new LineReader(max);
  const out: string[] = [];
  for (const c of chunks) {
    r.push(c);
    for (let ev = r.next(); ev; ev = r.next()) out.push(show(ev));
  }
  return out;
}

describe('LineReader', () => {
  const long = 'X'.repeat(600);
  const input = Buffer.from(`USER alice\r\nPASS a b c\nSTAT\r\r\n\r\n${long}\r\nNOOP\r\n${'Y'.repeat(253)}\r\n${'Z'.repeat(254)}\r\nQUIT\r\npartial`);
  const expected = [
    'L:USER alice',
    'L:PASS a b c',
    'L:STAT\r', // CR CR LF: the first CR is a byte of the line
    'L:',
    'TOO-LONG',
    'L:NOOP',
    `L:${'Y'.repeat(253)}`, // 253 + CRLF = 255 octets: the longest legal line
    'TOO-LONG', // 254 + CRLF = 256
    'L:QUIT',
  ];

  it('splits CRLF and bare-LF lines and reports over-long lines', () => {
    expect(run([input])).to.deep.equal(expected);
  });

  it('gives identical events at every two-chunk split', () => {
    for (let i = 0; i <= input.length; i++) {
      expect(run([input.subarray(0, i), input.subarray(i)]), `split at ${i}`).to.deep.equal(expected);
    }
  });

  it('gives identical events at every three-chunk split around the long line', () => {
    const start = input.indexOf('XXX') - 3;
    for (let i = start; i < start + 620; i += 7) {
      for (let j = i; j < i + 300 && j <= input.length; j += 13) {
        expect(run([input.subarray(0, i), input.subarray(i, j), input.subarray(j)]), `split at ${i},${j}`).to.deep.equal(expected);
      }
    }
  });

  it('gives identical events fed one byte at a time', () => {
    const bytes = [...input].map((b) => Buffer.from([b]));
    expect(run(bytes)).to.deep.equal(expected);
  });

  it('never buffers more than the limit of a line without newline (bounded memory)', () => {
    const r = new LineReader();
    for (let i = 0; i < 1000; i++) {
      r.push(Buffer.alloc(4096, 0x41));
      expect(r.next()).to.equal(undefined);
      expect(r.buffered).to.be.at.most(MAX_COMMAND_LINE);
    }
    r.push(Buffer.from('\r\nNOOP\r\n'));
    expect(show(r.next()!)).to.equal('TOO-LONG');
    expect(show(r.next()!)).to.equal('L:NOOP');
    expect(r.next()).to.equal(undefined);
  });

  it('clear() discards pipelined input (STLS)', () => {
    const r = new LineReader();
    r.push(Buffer.from('STLS\r\nUSER evil\r\n'));
    expect(show(r.next()!)).to.equal('L:STLS');
    r.clear();
    expect(r.next()).to.equal(undefined);
  });
});

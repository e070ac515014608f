/**
 * Property-based fuzzing (fast-check) of the two parsers hostile bytes reach first: the line
 * reader (any split of any input gives the same events as a simple model; memory stays bounded)
 * and the command gatekeeper (any line in any state yields exactly one well-formed reply and
 * never throws; credentials never reach a handler on an insecure connection).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import type { CommandContext, SessionState } from './command-types.js';
import { Dispatcher, MAX_BAD_COMMANDS } from './commands.js';
import { LineReader, MAX_COMMAND_LINE, type LineEvent } from './line-reader.js';
import { statusLine, type Outcome } from './responses.js';
import { cutAt } from './test-support.js';

type Ev = { kind: 'line'; text: string } | { kind: 'too-long' };
const show = (e: LineEvent): Ev => (e.kind === 'line' ? { kind: 'line', text: e.bytes.toString('latin1') } : { kind: 'too-long' });

/** The specification, written the obvious way: split at LF, strip one CR, cap the length. */
function model(input: Buffer, maxLine: number): Ev[] {
  const out: Ev[] = [];
  let start = 0;
  for (;;) {
    const nl = input.indexOf(0x0a, start);
    if (nl < 0) break;
    let end = nl;
    if (end > start && input[end - 1] === 0x0d) end--;
    out.push(end - start > maxLine - 2 ? { kind: 'too-long' } : { kind: 'line', text: input.subarray(start, end).toString('latin1') });
    start = nl + 1;
  }
  return out;
}

function feed(chunks: Buffer[], maxLine: number): { events: Ev[]; maxBuffered: number } {
  const r = new LineReader(maxLine);
  const events: Ev[] = [];
  let maxBuffered = 0;
  for (const c of chunks) {
    r.push(c);
    maxBuffered = Math.max(maxBuffered, r.buffered);
    for (let e = r.next(); e; e = r.next()) events.push(show(e));
  }
  return { events, maxBuffered };
}

/** Bytes biased towards what breaks line parsers: CR, LF, NUL, 0xFF, dots, spaces. */
const hostileByte = fc.oneof(fc.constantFrom(0x0a, 0x0d, 0x00, 0xff, 0x2e, 0x20, 0x80), fc.integer({ min: 0, max: 255 }));
const hostileBytes = (max: number) => fc.array(hostileByte, { maxLength: max }).map((a) => Buffer.from(a));


describe('pop3 fuzzing (fast-check)', () => {
  it('line reader: any input, split anywhere, yields the model\'s events', () => {
    fc.assert(
      fc.property(hostileBytes(2000), fc.array(fc.nat(), { maxLength: 20 }), fc.integer({ min: 3, max: 300 }), (buf, cuts, maxLine) => {
        const { events } = feed(cutAt(buf, cuts, true), maxLine);
        expect(events).to.deep.equal(model(buf, maxLine));
      }),
      { numRuns: 400 },
    );
  });

  it('line reader: long lines and floods keep the buffer within one chunk plus a line', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 20000 }), fc.boolean()), { maxLength: 8 }), fc.integer({ min: 1, max: 4096 }), (lines, chunk) => {
        const buf = Buffer.concat(lines.map(([n, crlf]) => Buffer.concat([Buffer.alloc(n, 0x41), Buffer.from(crlf ? '\r\n' : '\n')])));
        const chunks: Buffer[] = [];
        for (let i = 0; i < buf.length; i += chunk) chunks.push(buf.subarray(i, i + chunk));
        const { events, maxBuffered } = feed(chunks, MAX_COMMAND_LINE);
        expect(events).to.deep.equal(model(buf, MAX_COMMAND_LINE));
        expect(maxBuffered).to.be.at.most(chunk + MAX_COMMAND_LINE);
      }),
      { numRuns: 200 },
    );
  });

  it('gatekeeper: any line in any state gives one reply line, never throws, and counts bad commands', async () => {
    const verbs = ['USER', 'PASS', 'APOP', 'AUTH', 'STLS', 'CAPA', 'QUIT', 'STAT', 'LIST', 'RETR', 'DELE', 'NOOP', 'RSET', 'TOP', 'UIDL', 'LAST', 'XTND', ''];
    const lineArb = fc.oneof(
      hostileBytes(300),
      fc.tuple(fc.constantFrom(...verbs), fc.constantFrom('', ' ', '  ', '\t'), fc.array(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('1', '0', '-1', '99999999999999999999', '2 3', '=', '*')), { maxLength: 4 }))
        .map(([v, sep, args]) => Buffer.from(v + sep + args.join(' '), 'utf8')),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom<SessionState>('AUTHORIZATION', 'TRANSACTION'), fc.boolean(), fc.array(lineArb, { minLength: 1, maxLength: 30 }), async (state, plaintextOk, lines) => {
        const d = new Dispatcher();
        const ctx = fakeContext(plaintextOk);
        for (const bytes of lines) {
          const ev: LineEvent = bytes.length > MAX_COMMAND_LINE - 2 ? { kind: 'too-long' } : { kind: 'line', bytes };
          const { outcome } = await d.dispatch(ev, state, ctx);
          const status = statusLine(outcome);
          expect(status).to.match(/^(\+OK|-ERR|\+ )/);
          expect(status).to.not.match(/[\r\n]/);
          expect(d.bad).to.be.at.most(MAX_BAD_COMMANDS);
          if (d.bad >= MAX_BAD_COMMANDS) expect(outcome.kind).to.equal('quit');
          if (outcome.kind === 'quit') break;
        }
        if (!plaintextOk) expect(ctx.logins.filter((l) => !l.startsWith('apop:'))).to.deep.equal([]); // no cleartext passwords (APOP sends none)
      }),
      { numRuns: 300 },
    );
  });
});

/** A context whose every action is harmless and recorded; the maildrop answers like an empty one. */
function fakeContext(plaintextAuthAllowed: boolean): CommandContext & { logins: string[] } {
  const logins: string[] = [];
  const no: Outcome = { kind: 'err', code: 'AUTH', text: 'authentication failed' };
  const maildrop = {
    count: 0, octets: 0, counters: { retr: 0, retrBytes: 0, top: 0, topBytes: 0, dele: 0 }, deleted: new Set<number>(),
  };
  return new Proxy({
    remoteAddress: '192.0.2.1', tlsActive: false, stlsAvailable: true, plaintextAuthAllowed, implementation: 'popspool', policyCapabilities: [], pendingUser: undefined,
    apopTimestamp: '<1.2@example.org>',
    async login(u: string) { logins.push(u); return no; },
    async apopLogin(u: string) { logins.push(`apop:${u}`); return no; },
    async loginFailed(u: string) { logins.push(`failed:${u}`); return no; },
    requestTls() {},
    async enterUpdate() { return { kind: 'ok', text: 'bye' } as const; },
    logins,
  } as unknown as CommandContext & { logins: string[] }, {
    get(target, prop, recv) {
      // TRANSACTION handlers reach the maildrop; a real empty one is out of reach here, so any
      // method on it throws, which the gatekeeper must turn into an -ERR.
      if (prop === 'maildrop') return new Proxy(maildrop, { get: (m, p) => (p in m ? (m as Record<string | symbol, unknown>)[p] : () => { throw new Error('maildrop method ' + String(p)); }) });
      return Reflect.get(target, prop, recv);
    },
  });
}

/** Command parsing, message numbers, the gatekeeper and the plaintext-auth policy (pure parts). */
import { expect } from 'chai';
import { decodeSaslPlain, encodeSaslPlain } from '../auth/sasl-plain.js';
import { LockBusyError, PopspoolError } from '../errors.js';
import type { CommandContext, SessionState } from './command-types.js';
import { COMMANDS, Dispatcher, MAX_BAD_COMMANDS, parseLine, splitArgs } from './commands.js';
import { parseLineCount, parseMessageNumber } from './maildrop.js';
import { isLoopbackAddress, plaintextAuthAllowed } from './peer.js';
import { errorOutcome, formatMultiline, statusLine } from './responses.js';

const line = (s: string) => ({ kind: 'line' as const, bytes: Buffer.from(s) });

function fakeContext(over: Partial<CommandContext> = {}): CommandContext & { logins: [string, string][] } {
  const logins: [string, string][] = [];
  return {
    remoteAddress: '127.0.0.1',
    tlsActive: false,
    stlsAvailable: false,
    plaintextAuthAllowed: true,
    implementation: 'popspool',
    policyCapabilities: [],
    pendingUser: undefined,
    async login(u: string, p: string) {
      logins.push([u, p]);
      return { kind: 'ok', text: 'in' } as const;
    },
    async loginFailed(u: string, reason: string) {
      logins.push([u, `FAILED ${reason}`]);
      return { kind: 'err', code: 'AUTH', text: 'authentication failed' } as const;
    },
    apopTimestamp: '',
    async apopLogin(u: string, d: string) {
      logins.push([u, `APOP ${d}`]);
      return { kind: 'ok', text: 'in' } as const;
    },
    requestTls() {},
    get maildrop(): never {
      throw new Error('no maildrop');
    },
    async enterUpdate() {
      return { kind: 'ok', text: 'bye' } as const;
    },
    logins,
    ...over,
  };
}

describe('command parsing', () => {
  it('splits verb (case-insensitive) and rest', () => {
    expect(parseLine('retr 1')).to.deep.equal({ verb: 'RETR', rest: '1' });
    expect(parseLine('STAT')).to.deep.equal({ verb: 'STAT', rest: '' });
    expect(parseLine('PASS  two  spaces ')).to.deep.equal({ verb: 'PASS', rest: ' two  spaces ' });
  });
  it('PASS takes the rest of the line; others split on spaces', () => {
    const pass = COMMANDS.find((c) => c.verb === 'PASS')!;
    const top = COMMANDS.find((c) => c.verb === 'TOP')!;
    expect(splitArgs(pass, 'a b  c')).to.deep.equal(['a b  c']);
    expect(splitArgs(top, '1  10 ')).to.deep.equal(['1', '10']);
  });
  it('every verb row has sane arity and states', () => {
    for (const c of COMMANDS) {
      expect(c.minArgs).to.be.at.most(c.maxArgs);
      expect(c.states.length).to.be.greaterThan(0);
    }
    // rows sharing a verb have disjoint states
    const seen = new Set<string>();
    for (const c of COMMANDS) for (const s of c.states) {
      expect(seen.has(`${c.verb}/${s}`), `${c.verb}/${s}`).to.equal(false);
      seen.add(`${c.verb}/${s}`);
    }
  });
});

describe('message numbers', () => {
  const rows: [string, number, number | 'invalid' | 'range'][] = [
    ['1', 3, 1],
    ['3', 3, 3],
    ['03', 3, 3],
    ['0', 3, 'range'],
    ['4', 3, 'range'],
    ['99999999999999999999999999', 3, 'range'],
    ['-1', 3, 'invalid'],
    ['+1', 3, 'invalid'],
    ['1x', 3, 'invalid'],
    ['0x1', 3, 'invalid'],
    ['1.0', 3, 'invalid'],
    ['', 3, 'invalid'],
    ['１', 3, 'invalid'], // fullwidth digit
  ];
  for (const [arg, count, want] of rows) {
    it(`${JSON.stringify(arg)} of ${count} → ${want}`, () => expect(parseMessageNumber(arg, count)).to.equal(want));
  }
  it('line counts: digits only, huge values clamp', () => {
    expect(parseLineCount('0')).to.equal(0);
    expect(parseLineCount('10')).to.equal(10);
    expect(parseLineCount('x')).to.equal(undefined);
    expect(parseLineCount('-1')).to.equal(undefined);
    expect(parseLineCount('999999999999999999999')).to.equal(Number.MAX_SAFE_INTEGER);
  });
});

describe('Dispatcher (gatekeeper)', () => {
  async function d(disp: Dispatcher, text: string, state: SessionState = 'AUTHORIZATION', ctx = fakeContext()) {
    return statusLine((await disp.dispatch(line(text), state, ctx)).outcome);
  }
  it('rejects unknown verbs, wrong states and wrong arity before the handler', async () => {
    const disp = new Dispatcher();
    expect(await d(disp, 'FOO')).to.equal('-ERR unknown command');
    expect(await d(disp, 'STAT')).to.equal('-ERR STAT not valid in this state');
    expect(await d(disp, 'USER')).to.equal('-ERR missing argument');
    expect(await d(disp, 'USER a b')).to.equal('-ERR too many arguments');
    expect(await d(disp, 'USER a b', 'TRANSACTION')).to.equal('-ERR USER not valid in this state');
    expect(await d(disp, 'RETR 1 2', 'TRANSACTION')).to.equal('-ERR noise after message number');
    expect(disp.bad).to.equal(6);
    expect(await d(disp, 'CAPA')).to.match(/^\+OK/);
    expect(disp.bad).to.equal(0);
  });
  it('over-long lines count as bad commands', async () => {
    const disp = new Dispatcher();
    const o = await disp.dispatch({ kind: 'too-long' }, 'AUTHORIZATION', fakeContext());
    expect(statusLine(o.outcome)).to.equal('-ERR line too long');
    expect(disp.bad).to.equal(1);
  });
  it(`the ${MAX_BAD_COMMANDS}th consecutive bad command ends the session`, async () => {
    const disp = new Dispatcher();
    for (let i = 1; i < MAX_BAD_COMMANDS; i++) expect((await disp.dispatch(line('XYZZY'), 'AUTHORIZATION', fakeContext())).outcome.kind).to.equal('err');
    expect((await disp.dispatch(line('XYZZY'), 'AUTHORIZATION', fakeContext())).outcome.kind).to.equal('quit');
  });
  it('refuses credentials when plaintext auth is not allowed; CAPA hides USER and SASL', async () => {
    const ctx = fakeContext({ plaintextAuthAllowed: false, stlsAvailable: true });
    const disp = new Dispatcher();
    expect(await d(disp, 'USER alice', 'AUTHORIZATION', ctx)).to.equal('-ERR [AUTH] plaintext authentication disallowed on unencrypted connections');
    expect(await d(disp, 'AUTH PLAIN', 'AUTHORIZATION', ctx)).to.match(/^-ERR \[AUTH\] plaintext/);
    const capa = (await disp.dispatch(line('CAPA'), 'AUTHORIZATION', ctx)).outcome;
    expect(capa.kind === 'multiline' && capa.lines).to.deep.equal(['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING', 'IMPLEMENTATION popspool', 'STLS']);
  });
  it('a throwing handler becomes -ERR [SYS/TEMP] internal error; PopspoolErrors keep their code', async () => {
    const disp = new Dispatcher();
    const boom = fakeContext({ login: async () => { throw new TypeError('boom'); } });
    boom.pendingUser = 'alice';
    expect(await d(disp, 'PASS x', 'AUTHORIZATION', boom)).to.equal('-ERR [SYS/TEMP] internal error');
    const busy = fakeContext({ login: async () => { throw new LockBusyError('Maildrop lock busy'); } });
    busy.pendingUser = 'alice';
    expect(await d(disp, 'PASS x', 'AUTHORIZATION', busy)).to.equal('-ERR [IN-USE] Maildrop lock busy');
  });
  it('PASS passes the whole rest of the line as the password', async () => {
    const ctx = fakeContext();
    const disp = new Dispatcher();
    await d(disp, 'USER bob', 'AUTHORIZATION', ctx);
    await d(disp, 'PASS  pass word ', 'AUTHORIZATION', ctx);
    expect(ctx.logins).to.deep.equal([['bob', ' pass word ']]);
    expect(await d(disp, 'PASS again', 'AUTHORIZATION', ctx)).to.equal('-ERR USER first');
  });
});

describe('responses', () => {
  it('maps every error code to one RESP-CODE', () => {
    expect(statusLine(errorOutcome(new PopspoolError('SYS_PERM', 'bad spool')))).to.equal('-ERR [SYS/PERM] bad spool');
    expect(statusLine(errorOutcome(new PopspoolError('LOGIN_DELAY', 'wait')))).to.equal('-ERR [LOGIN-DELAY] wait');
    expect(statusLine(errorOutcome(new PopspoolError('SYS_TEMP', 'a\r\nb')))).to.equal('-ERR [SYS/TEMP] a b');
    expect(statusLine(errorOutcome(new Error('secret detail')))).to.equal('-ERR [SYS/TEMP] internal error');
  });
  it('stuffs multi-line bodies', () => {
    expect(formatMultiline('x', ['.a', 'b'])).to.equal('+OK x\r\n..a\r\nb\r\n.\r\n');
  });
});

describe('plaintext auth policy', () => {
  const rows: [string, boolean][] = [
    ['127.0.0.1', true],
    ['127.255.0.9', true],
    ['::1', true],
    ['0:0:0:0:0:0:0:1', true],
    ['::ffff:127.0.0.1', true],
    ['::ffff:10.0.0.1', false],
    ['10.0.0.1', false],
    ['128.0.0.1', false],
    ['2001:db8::1', false],
    ['', false],
  ];
  for (const [addr, want] of rows) it(`loopback(${addr || "''"}) = ${want}`, () => expect(isLoopbackAddress(addr)).to.equal(want));
  it('TLS, loopback, a local pipe or the operator switch allow it', () => {
    expect(plaintextAuthAllowed({ remoteAddress: '10.0.0.1' }, false, false)).to.equal(false);
    expect(plaintextAuthAllowed({ remoteAddress: '10.0.0.1' }, true, false)).to.equal(true);
    expect(plaintextAuthAllowed({ remoteAddress: '10.0.0.1' }, false, true)).to.equal(true);
    expect(plaintextAuthAllowed({ remoteAddress: '', local: true }, false, false)).to.equal(true);
    expect(plaintextAuthAllowed({ remoteAddress: '127.0.0.1' }, false, false)).to.equal(true);
  });
});

describe('SASL PLAIN', () => {
  it('round-trips and rejects malformed responses', () => {
    expect(decodeSaslPlain(encodeSaslPlain('alice', 'pw d'))).to.deep.equal({ authzid: '', authcid: 'alice', password: 'pw d' });
    expect(decodeSaslPlain(encodeSaslPlain('alice', 'x', 'alice'))!.authzid).to.equal('alice');
    expect(decodeSaslPlain('')).to.equal(undefined);
    expect(decodeSaslPlain('not base64!')).to.equal(undefined);
    expect(decodeSaslPlain(Buffer.from('alice\0pw').toString('base64'))).to.equal(undefined);
    expect(decodeSaslPlain(Buffer.from('\0\0pw').toString('base64'))).to.equal(undefined);
  });
});

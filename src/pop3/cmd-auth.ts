/**
 * AUTHORIZATION state handling (RFC 1939 §4, §7; RFC 2449 CAPA; RFC 5034 AUTH; RFC 2595 STLS).
 * Handlers only collect credentials and hand them to ctx.login(); they never see the spool.
 */
import { decodeSaslPlain } from '../auth/sasl-plain.js';
import type { CommandContext, CommandSpec } from './command-types.js';
import { err, multiline, ok, quit, type Outcome } from './responses.js';

/** SASL mechanisms offered (RFC 5034 §2; PLAIN is RFC 4616). */
const MECHANISMS = ['PLAIN'] as const;

/** Capabilities valid in both states (RFC 2449 §6). mutt re-checks TOP and UIDL after login. */
function commonCapabilities(ctx: CommandContext): string[] {
  const caps = ['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING'];
  if (ctx.implementation) caps.push(`IMPLEMENTATION ${ctx.implementation}`);
  caps.push(...ctx.policyCapabilities);
  return caps;
}

/** https://www.rfc-editor.org/rfc/rfc2449#section-5 — CAPA before login. */
function capaAuthorization(ctx: CommandContext): Outcome {
  const caps = commonCapabilities(ctx);
  // Like Dovecot: do not advertise what would be refused (plaintext auth without TLS).
  if (ctx.plaintextAuthAllowed) caps.push('USER', `SASL ${MECHANISMS.join(' ')}`);
  if (ctx.stlsAvailable) caps.push('STLS');
  return multiline('Capability list follows', caps);
}

/** CAPA after login: the same protocol capabilities, no login mechanisms. */
function capaTransaction(ctx: CommandContext): Outcome {
  return multiline('Capability list follows', commonCapabilities(ctx));
}

/** https://www.rfc-editor.org/rfc/rfc1939#section-7 — USER name. Never reveals whether it exists. */
function user(ctx: CommandContext, args: readonly string[]): Outcome {
  ctx.pendingUser = args[0]!;
  return ok('send PASS');
}

/** https://www.rfc-editor.org/rfc/rfc1939#section-7 — PASS string (the rest of the line). */
async function pass(ctx: CommandContext, args: readonly string[]): Promise<Outcome> {
  const name = ctx.pendingUser;
  ctx.pendingUser = undefined;
  if (name === undefined) return err('USER first');
  return ctx.login(name, args[0]!);
}

/** RFC 5034 §4: a PLAIN response, initial or continued. */
function plainResponse(ctx: CommandContext, response: string): Promise<Outcome> | Outcome {
  if (response === '*') return err('authentication cancelled');
  const creds = decodeSaslPlain(response);
  // Both refusals below are failed logins like a wrong password: logged with rip (fail2ban),
  // counted by the throttle, delayed. A guesser must not get a cheaper path through them.
  if (!creds) return ctx.loginFailed('', 'invalid-sasl', err('invalid SASL PLAIN response'));
  // No proxy authorization: an authzid, when given, must name the authenticating user.
  if (creds.authzid !== '' && creds.authzid !== creds.authcid) return ctx.loginFailed(creds.authcid, 'authzid');
  return ctx.login(creds.authcid, creds.password);
}

/** https://www.rfc-editor.org/rfc/rfc5034#section-4 — AUTH [mechanism [initial-response]]. */
function auth(ctx: CommandContext, args: readonly string[]): Outcome | Promise<Outcome> {
  ctx.pendingUser = undefined;
  // A bare AUTH lists the mechanisms (not in RFC 5034, but mutt sends it when CAPA fails).
  if (args.length === 0) return multiline('Supported mechanisms follow', MECHANISMS);
  const mech = args[0]!.toUpperCase();
  if (!(MECHANISMS as readonly string[]).includes(mech)) return err('unsupported authentication mechanism');
  const initial = args[1];
  if (initial !== undefined) return plainResponse(ctx, initial === '=' ? '' : initial);
  return { kind: 'continue', text: '', next: async (line) => plainResponse(ctx, line) };
}

/**
 * https://www.rfc-editor.org/rfc/rfc1939#section-7 — APOP name digest. Only when a secrets file
 * is configured (the greeting then carries the timestamp). The password never crosses the
 * wire, so APOP is allowed where plaintext logins are not.
 */
function apop(ctx: CommandContext, args: readonly string[]): Outcome | Promise<Outcome> {
  ctx.pendingUser = undefined;
  if (!ctx.apopTimestamp) return err('APOP not available');
  return ctx.apopLogin(args[0]!, args[1]!);
}

/** https://www.rfc-editor.org/rfc/rfc2595#section-4 — STLS. */
function stls(ctx: CommandContext): Outcome {
  if (!ctx.stlsAvailable) return err(ctx.tlsActive ? 'TLS already active' : 'STLS not available');
  ctx.requestTls();
  return ok('Begin TLS negotiation');
}

/** https://www.rfc-editor.org/rfc/rfc1939#section-4 — QUIT before login: nothing to update. */
function quitAuthorization(): Outcome {
  return quit(ok('popspool signing off'));
}

export const AUTHORIZATION_COMMANDS: readonly CommandSpec[] = [
  { verb: 'CAPA', states: ['AUTHORIZATION'], minArgs: 0, maxArgs: 0, handler: capaAuthorization },
  { verb: 'CAPA', states: ['TRANSACTION'], minArgs: 0, maxArgs: 0, handler: capaTransaction },
  { verb: 'USER', states: ['AUTHORIZATION'], minArgs: 1, maxArgs: 1, credentials: true, handler: user },
  { verb: 'PASS', states: ['AUTHORIZATION'], minArgs: 1, maxArgs: 1, restOfLine: true, credentials: true, handler: pass },
  { verb: 'AUTH', states: ['AUTHORIZATION'], minArgs: 0, maxArgs: 2, credentials: true, handler: auth },
  { verb: 'APOP', states: ['AUTHORIZATION'], minArgs: 2, maxArgs: 2, handler: apop },
  { verb: 'STLS', states: ['AUTHORIZATION'], minArgs: 0, maxArgs: 0, handler: stls },
  { verb: 'QUIT', states: ['AUTHORIZATION'], minArgs: 0, maxArgs: 0, handler: quitAuthorization },
];

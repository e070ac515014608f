/**
 * The command table and its gatekeeper. Every verb is one row (states, arity, flags, handler);
 * dispatch() checks line length, verb, state, arity, the plaintext-auth policy and the
 * bad-command counter BEFORE any handler runs, so handlers never test the session state.
 * A throwing handler becomes `-ERR [SYS/TEMP] internal error`; it never wedges the session.
 */
import { PopspoolError } from '../errors.js';
import { log } from '../obs/log.js';
import { AUTHORIZATION_COMMANDS } from './cmd-auth.js';
import { TRANSACTION_COMMANDS } from './cmd-trans.js';
import type { CommandContext, CommandSpec, SessionState } from './command-types.js';
import type { LineEvent } from './line-reader.js';
import { err, errorOutcome, quit, type Outcome } from './responses.js';

/**
 * Consecutive bad commands (unknown verb, wrong state, wrong arity, over-long line) before we
 * hang up: a real client never sends ten in a row, a cross-protocol attack or a fuzzer does
 * (nodemailer smtp-server uses 10, Dovecot 20). Any successful command resets the count.
 */
export const MAX_BAD_COMMANDS = 10;

/** The one command table. */
export const COMMANDS: readonly CommandSpec[] = [...AUTHORIZATION_COMMANDS, ...TRANSACTION_COMMANDS];

const BY_VERB: ReadonlyMap<string, readonly CommandSpec[]> = (() => {
  const m = new Map<string, CommandSpec[]>();
  for (const c of COMMANDS) m.set(c.verb, [...(m.get(c.verb) ?? []), c]);
  return m;
})();

export interface ParsedLine {
  readonly verb: string;
  /** Text after the verb and its separating space ('' when none). */
  readonly rest: string;
}

/** Split a command line into an upper-cased verb and the rest (RFC 1939 §3: case-insensitive). */
export function parseLine(line: string): ParsedLine {
  const sp = line.indexOf(' ');
  if (sp < 0) return { verb: line.toUpperCase(), rest: '' };
  return { verb: line.slice(0, sp).toUpperCase(), rest: line.slice(sp + 1) };
}

/** Arguments of a row: space-separated words, or the whole rest for restOfLine rows (PASS). */
export function splitArgs(spec: CommandSpec, rest: string): string[] {
  if (spec.restOfLine) return rest === '' ? [] : [rest];
  return rest.split(' ').filter((a) => a !== '');
}

/** What the session learns from one dispatched line. */
export interface Dispatched {
  readonly outcome: Outcome;
  /** Verb for logs ('' for an unparsable line). Never the arguments: PASS carries a password. */
  readonly verb: string;
}

export class Dispatcher {
  /** Consecutive bad commands so far. */
  bad = 0;

  /** The outcome of one line: at once when its handler answers synchronously (most do). */
  dispatch(ev: LineEvent, state: SessionState, ctx: CommandContext): Dispatched | Promise<Dispatched> {
    if (ev.kind === 'too-long') return { verb: '', outcome: this.reject('line too long') };
    const { verb, rest } = parseLine(ev.bytes.toString('utf8'));
    const rows = BY_VERB.get(verb);
    if (!rows) return { verb: '', outcome: this.reject(verb === '' ? 'empty command' : 'unknown command') };
    const spec = rows.find((r) => r.states.includes(state));
    if (!spec) return { verb, outcome: this.reject(`${verb} not valid in this state`) };
    const args = splitArgs(spec, rest);
    if (args.length < spec.minArgs) return { verb, outcome: this.reject('missing argument') };
    if (args.length > spec.maxArgs) return { verb, outcome: this.reject(spec.tooManyText ?? 'too many arguments') };
    if (spec.credentials && !ctx.plaintextAuthAllowed) {
      // RFC 2595 §2.2 / Dovecot: no cleartext passwords on an unencrypted remote connection.
      return { verb, outcome: err('plaintext authentication disallowed on unencrypted connections', 'AUTH') };
    }
    const failed = (e: unknown): Dispatched => {
      if (!(e instanceof PopspoolError)) log.error('command handler failed', { verb, rip: ctx.remoteAddress, error: String(e) });
      return { verb, outcome: errorOutcome(e) };
    };
    let outcome: Outcome | Promise<Outcome>;
    try {
      outcome = spec.handler(ctx, args);
    } catch (e) {
      return failed(e);
    }
    if (outcome instanceof Promise) return outcome.then((o) => this.answered(verb, o), failed);
    return this.answered(verb, outcome);
  }

  private answered(verb: string, outcome: Outcome): Dispatched {
    if (outcome.kind !== 'err') this.bad = 0;
    return { verb, outcome };
  }

  /** A gatekeeper rejection: counts as a bad command; the last one allowed ends the session. */
  private reject(text: string): Outcome {
    this.bad++;
    if (this.bad >= MAX_BAD_COMMANDS) return quit(err(`${text}; too many bad commands, closing`));
    return err(text);
  }
}

/**
 * Types shared by the command table, its handlers and the session: the session states, one
 * table row per verb, and the narrow context a handler may use.
 */
import type { Maildrop } from './maildrop.js';
import type { Outcome } from './responses.js';

/** RFC 1939 §3 session states. */
export type SessionState = 'AUTHORIZATION' | 'TRANSACTION' | 'UPDATE';

/** What handlers may see and do. Implemented by the Session; handlers never read the state. */
export interface CommandContext {
  /** Client address, for logs. */
  readonly remoteAddress: string;
  /** TLS is active on this connection. */
  readonly tlsActive: boolean;
  /** STLS can be offered: a TLS context is configured and TLS is not active yet. */
  readonly stlsAvailable: boolean;
  /** USER/PASS and AUTH may be used here (secure connection, or allowPlaintextAuth). */
  readonly plaintextAuthAllowed: boolean;
  /** IMPLEMENTATION capability text, or '' to hide it. */
  readonly implementation: string;
  /** Policy capabilities (EXPIRE, LOGIN-DELAY) to list in CAPA. */
  readonly policyCapabilities: readonly string[];
  /** Name given by USER, awaiting PASS. */
  pendingUser: string | undefined;
  /** Verify credentials, open the maildrop and enter TRANSACTION; the reply for PASS/AUTH. */
  login(user: string, password: string): Promise<Outcome>;
  /**
   * A login refused before any password check (malformed SASL response, foreign authzid): goes
   * through the same throttle, failure log line and delay as a wrong password. `reply` replaces
   * the usual `-ERR [AUTH] authentication failed`.
   */
  loginFailed(user: string, reason: string, reply?: Outcome): Promise<Outcome>;
  /** The greeting's APOP timestamp, or '' when APOP is not configured. */
  readonly apopTimestamp: string;
  /** RFC 1939 §7: check an APOP digest, then as login(). */
  apopLogin(user: string, digest: string): Promise<Outcome>;
  /** Begin the TLS handshake after the reply to STLS has been written. */
  requestTls(): void;
  /** The open maildrop (TRANSACTION only; the gatekeeper guarantees it). */
  readonly maildrop: Maildrop;
  /** QUIT in TRANSACTION: enter UPDATE, apply, and the reply to send before closing. */
  enterUpdate(): Promise<Outcome>;
}

export type Handler = (ctx: CommandContext, args: readonly string[]) => Outcome | Promise<Outcome>;

/** One row of the command table. A verb may have several rows with disjoint states. */
export interface CommandSpec {
  readonly verb: string;
  readonly states: readonly SessionState[];
  readonly minArgs: number;
  readonly maxArgs: number;
  /** The single argument is the rest of the line, spaces included (PASS: passwords have spaces). */
  readonly restOfLine?: boolean;
  /** Carries credentials: refused on unencrypted remote connections unless allowed. */
  readonly credentials?: boolean;
  /** Reply text when there are more than maxArgs arguments. */
  readonly tooManyText?: string;
  readonly handler: Handler;
}

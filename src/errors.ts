/**
 * Errors that cross module boundaries. Each carries a stable `code`; the POP3 layer maps
 * codes to RFC 2449/3206 response codes in exactly one place (src/pop3/responses.ts).
 */

/** Stable error codes. The comment says which RESP-CODE the POP3 layer answers with. */
export type ErrorCode =
  | 'IN_USE' //        [IN-USE]      mailbox locked by another session or program
  | 'SYS_TEMP' //      [SYS/TEMP]    transient system problem; retrying later may work
  | 'SYS_PERM' //      [SYS/PERM]    permanent problem (e.g. a malformed spool) an admin must fix
  | 'AUTH' //          [AUTH]        authentication failure
  | 'LOGIN_DELAY' //   [LOGIN-DELAY] too many logins / failures; retry later
  | 'CONFIG'; //       (operator)    bad configuration value or flag

export class PopspoolError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'PopspoolError';
  }
}

/** The spool is not an mbox we may serve (e.g. garbage before the first From_ line). */
export class MboxFormatError extends PopspoolError {
  constructor(message: string) {
    super('SYS_PERM', message);
    this.name = 'MboxFormatError';
  }
}

/** The mailbox lock (or the one-session-per-maildrop lock) could not be taken. */
export class LockBusyError extends PopspoolError {
  constructor(message: string) {
    super('IN_USE', message);
    this.name = 'LockBusyError';
  }
}

/** A bad flag or configuration value: one line naming it; the CLI exits 2. */
export class ConfigError extends PopspoolError {
  constructor(message: string) {
    super('CONFIG', message);
    this.name = 'ConfigError';
  }
}

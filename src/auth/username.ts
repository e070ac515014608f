/**
 * The one rule for login names. Every backend and the session apply it, so no name that reaches
 * the spool layer can escape a path template like /var/mail/%u (no "/", no "..", no leading dot).
 */

/** Letters, digits, then up to 63 of [A-Za-z0-9._+-]; 64 octets at most (RFC 1939 caps arguments at 40, real systems at 32–64). */
const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

export function validateUsername(name: string): boolean {
  return USERNAME.test(name) && !name.includes('..');
}

/**
 * SASL PLAIN (RFC 4616) message decoding for POP3 AUTH (RFC 5034). Pure: no I/O, no logging
 * (the decoded password must never reach a log).
 */

export interface PlainCredentials {
  readonly authzid: string;
  readonly authcid: string;
  readonly password: string;
}

/** Strict base64 (RFC 4648 §4, with padding), as RFC 5034 §4 requires of client responses. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decode a base64 SASL PLAIN response: `[authzid] NUL authcid NUL passwd`.
 * Returns undefined for anything malformed (bad base64, wrong field count, empty authcid).
 * "=" (RFC 5034: an empty initial response) decodes to undefined too: PLAIN needs credentials.
 */
export function decodeSaslPlain(b64: string): PlainCredentials | undefined {
  if (b64.length === 0 || !BASE64.test(b64)) return undefined;
  const text = Buffer.from(b64, 'base64').toString('utf8');
  const parts = text.split('\0');
  if (parts.length !== 3) return undefined;
  const [authzid, authcid, password] = parts as [string, string, string];
  if (authcid.length === 0) return undefined;
  return { authzid, authcid, password };
}

/** Encode credentials (for clients and tests). */
export function encodeSaslPlain(authcid: string, password: string, authzid = ''): string {
  return Buffer.from(`${authzid}\0${authcid}\0${password}`, 'utf8').toString('base64');
}

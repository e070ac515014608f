/**
 * UIDL derivation: reuse a valid X-UIDL header (Qpopper/Mailutils migrations), otherwise hash
 * the From_ line and the popa3d/Dovecot ("apop3d") header set. None of the hashed headers is
 * rewritten by a flags update (Status/X-Status) and none depends on the message's position,
 * so the UIDL survives both. Duplicates are made unique by finalizeUidls.
 */
import { md5Parts } from './md5-wasm.js';

/** RFC 1939 §7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E. */
export const UIDL_MAX_LENGTH = 70;
const UIDL_RE = /^[\x21-\x7e]{1,70}$/;

/** The header fields (lower-case) the scanner keeps for UIDL and flags purposes; a field's
 *  index here is its id (H_*) in a KeptValues array. */
export const KEPT_NAMES: readonly string[] = ['x-uidl', 'status', 'received', 'delivered-to', 'x-delivery-id', 'date', 'message-id'];
export const H_XUIDL = 0, H_STATUS = 1, H_RECEIVED = 2, H_DELIVERED_TO = 3, H_XDELIVERY_ID = 4, H_DATE = 5, H_MESSAGE_ID = 6;
export const KEPT_HEADERS: ReadonlySet<string> = new Set(KEPT_NAMES);

/** First occurrence of each kept header by id (see KEPT_NAMES), undefined when absent. */
export type KeptValues = Array<string | undefined>;

/** First occurrence of each kept header: unfolded raw value (latin1), CRs stripped. */
export type KeptHeaders = Partial<Record<string, string>>;

/** Is `value` usable as a UIDL as it stands (RFC 1939 §7 syntax)? */
export function isValidUidl(value: string): boolean {
  return UIDL_RE.test(value);
}

/**
 * The UIDL of one message before duplicate disambiguation.
 * @param fromLine the From_ line without its terminator (latin1 text)
 * @param headers  the first occurrence of each KEPT_HEADERS field
 */
export function uidlBase(fromLine: string, headers: KeptHeaders): string {
  return uidlFromValues(fromLine, KEPT_NAMES.map((n) => headers[n]));
}

const WITH_RECEIVED = [H_RECEIVED, H_DELIVERED_TO, H_XDELIVERY_ID];
const NAME_COLON = KEPT_NAMES.map((n) => `${n}:`);
const WITHOUT_RECEIVED = [H_DELIVERED_TO, H_XDELIVERY_ID, H_DATE, H_MESSAGE_ID];

/** uidlBase with the headers by id (what the scanner keeps: no object keyed by name per message). */
export function uidlFromValues(fromLine: string, values: KeptValues): string {
  const xuidl = values[H_XUIDL]?.trim();
  if (xuidl !== undefined && isValidUidl(xuidl)) return xuidl;
  // The input: the From_ line, then `name:value` of each field present, each line ending in
  // LF. Hashed in wasm (md5-wasm.ts), written there part by part: no Buffer, Hash object or
  // joined string per message, and a scan computes tens of thousands.
  const md5 = md5Parts;
  md5.begin();
  md5.add(fromLine.endsWith('\r') ? fromLine.slice(0, -1) : fromLine);
  md5.add('\n');
  for (const id of values[H_RECEIVED] !== undefined ? WITH_RECEIVED : WITHOUT_RECEIVED) {
    const v = values[id];
    if (v === undefined) continue;
    md5.add(NAME_COLON[id]!);
    md5.add(v);
    md5.add('\n');
  }
  return md5.hex();
}

/**
 * Make UIDLs unique within a maildrop. The first message with a given base keeps it; later
 * ones get `-2`, `-3`, … (their occurrence number, like Dovecot's pop3_uidl_duplicates=rename),
 * skipping any candidate that is another message's base or already given out, and shortening
 * the base so the result stays within 70 characters.
 */
export function finalizeUidls(bases: readonly string[]): string[] {
  const taken = new Set(bases);
  if (taken.size === bases.length) return bases.slice(); // no duplicates: the common case
  const seen = new Map<string, number>();
  const out: string[] = [];
  for (const base of bases) {
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    if (n === 1) {
      out.push(base);
      continue;
    }
    let k = n;
    let candidate: string;
    for (;;) {
      const suffix = `-${k}`;
      candidate = base.slice(0, UIDL_MAX_LENGTH - suffix.length) + suffix;
      if (!taken.has(candidate)) break;
      k++;
    }
    taken.add(candidate);
    out.push(candidate);
  }
  return out;
}

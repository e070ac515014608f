/**
 * Who is on the other end, and whether a password may cross this connection in the clear.
 * Pure functions, so the policy is tested without a non-loopback network.
 */
import { isIP } from 'node:net';

export interface PeerInfo {
  /** Client address ('' when unknown, e.g. a pipe). */
  readonly remoteAddress: string;
  /** TLS active from the start (implicit-TLS listener). STLS upgrades are tracked by the session. */
  readonly tls: boolean;
  /** A local channel that cannot be sniffed on a network (stdio pipe from inetd on a socketpair). */
  readonly local?: boolean;
}

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.x.y.z). */
export function isLoopbackAddress(address: string): boolean {
  let a = address.toLowerCase();
  if (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4) a = a.slice(7);
  if (isIP(a) === 4) return a.split('.')[0] === '127';
  if (isIP(a) === 6) return /^(0{0,4}:){2,7}0{0,3}1$/.test(a) || a === '::1';
  return false;
}

/**
 * RFC 2595 §2.2 / RFC 8314: cleartext credentials only over TLS, loopback or a local pipe,
 * unless the operator allows it (allowPlaintextAuth, Dovecot's auth_allow_cleartext).
 */
export function plaintextAuthAllowed(peer: { readonly remoteAddress: string; readonly local?: boolean }, tlsActive: boolean, allowPlaintextAuth: boolean): boolean {
  return allowPlaintextAuth || tlsActive || peer.local === true || isLoopbackAddress(peer.remoteAddress);
}

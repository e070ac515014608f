/**
 * PROXY protocol v1/v2 (HAProxy's proxy-protocol.txt) on connections from trusted balancers:
 * read exactly one header before the greeting, with a byte cap and a deadline, and return the
 * real client address. The bytes are parsed by proxy-protocol-js; the framing is ours.
 * Bytes after the header (none, for POP3: the client waits for the greeting — but a TLS
 * ClientHello on an implicit-TLS port may share the header's packet) are returned as `rest`.
 */
import net from 'node:net';
import { V1ProxyProtocol, V2ProxyProtocol, Command, IPv4ProxyAddress, IPv6ProxyAddress } from 'proxy-protocol-js';

/** proxy-protocol.txt §2.1: "a receiver may reject an incomplete line which does not contain the CRLF sequence in the first 107 characters". */
export const MAX_V1_HEADER = 107;
/** A v2 header is 16 octets plus addresses and TLVs; HAProxy's TLVs (SSL, ALPN, unique id) fit in far less than this (smtp-server caps at 1024). */
export const MAX_V2_HEADER = 1024;
/** A balancer sends the header with the connection; seconds of silence mean it is not one. */
export const PROXY_HEADER_TIMEOUT_MS = 5000;

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
/** PP2_TYPE_SSL TLV and its PP2_CLIENT_SSL flag: the balancer terminated TLS for this client. */
const PP2_TYPE_SSL = 0x20;
const PP2_CLIENT_SSL = 0x01;

export interface ProxiedPeer {
  /** The real client (undefined for v1 UNKNOWN / v2 LOCAL: a health check; use the socket's address). */
  readonly address?: string;
  readonly port?: number;
  /** v2 PP2_TYPE_SSL says the client spoke TLS to the balancer. */
  readonly tls: boolean;
}

export class ProxyHeaderError extends Error {}

/** Read and parse one PROXY header from a paused socket (left paused). Rejects on garbage, oversize, timeout or close. */
export function readProxyHeader(sock: net.Socket, timeoutMs = PROXY_HEADER_TIMEOUT_MS): Promise<{ peer: ProxiedPeer; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (e: Error | undefined, peer?: ProxiedPeer, rest?: Buffer): void => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.pause();
      if (e) reject(e);
      else resolve({ peer: peer!, rest: rest ?? Buffer.alloc(0) });
    };
    const onClose = (): void => done(new ProxyHeaderError('connection closed before the PROXY header'));
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > MAX_V2_HEADER + 1) return done(new ProxyHeaderError('PROXY header too long'));
      try {
        const r = tryParse(buf);
        if (r) done(undefined, r.peer, buf.subarray(r.length));
      } catch (e) {
        done(e as Error);
      }
    };
    const timer = setTimeout(() => done(new ProxyHeaderError('no PROXY header in time')), timeoutMs);
    timer.unref();
    sock.on('data', onData);
    sock.once('close', onClose);
    sock.resume();
  });
}

/** A complete header at the start of `buf` → the peer and its length; undefined = need more; throws on garbage. */
export function tryParse(buf: Buffer): { peer: ProxiedPeer; length: number } | undefined {
  if (buf.length > 0 && buf[0] === 0x0d) {
    const n = Math.min(buf.length, V2_SIGNATURE.length);
    if (!buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) throw new ProxyHeaderError('bad PROXY v2 signature');
    if (buf.length < 16) return undefined;
    const total = 16 + buf.readUInt16BE(14);
    if (total > MAX_V2_HEADER) throw new ProxyHeaderError(`PROXY v2 header of ${total} octets is over the ${MAX_V2_HEADER} limit`);
    if (buf.length < total) return undefined;
    return { peer: parseV2(buf.subarray(0, total)), length: total };
  }
  const prefix = 'PROXY ';
  const head = buf.subarray(0, prefix.length).toString('latin1');
  if (!prefix.startsWith(head)) throw new ProxyHeaderError('expected a PROXY header');
  const crlf = buf.indexOf('\r\n');
  if (crlf < 0) {
    if (buf.length >= MAX_V1_HEADER) throw new ProxyHeaderError('PROXY v1 header too long');
    return undefined;
  }
  if (crlf + 2 > MAX_V1_HEADER) throw new ProxyHeaderError('PROXY v1 header too long');
  const line = buf.subarray(0, crlf + 2).toString('latin1');
  if (/^PROXY UNKNOWN[ \r]/.test(line)) return { peer: { tls: false }, length: crlf + 2 };
  let p: V1ProxyProtocol;
  try {
    p = V1ProxyProtocol.parse(line);
  } catch (e) {
    throw new ProxyHeaderError(`malformed PROXY v1 header: ${(e as Error).message}`);
  }
  const address = p.source.ipAddress;
  if (net.isIP(address) === 0) throw new ProxyHeaderError('PROXY v1 source is not an IP address');
  return { peer: { address, port: p.source.port, tls: false }, length: crlf + 2 };
}

function parseV2(header: Buffer): ProxiedPeer {
  let p: V2ProxyProtocol;
  try {
    p = V2ProxyProtocol.parse(new Uint8Array(header));
  } catch (e) {
    throw new ProxyHeaderError(`malformed PROXY v2 header: ${(e as Error).message}`);
  }
  const tls = hasSslTlv(p.data);
  if (p.command === Command.LOCAL) return { tls };
  const a = p.proxyAddress;
  if (a instanceof IPv4ProxyAddress) return { address: a.sourceAddress.address.join('.'), port: a.sourcePort, tls };
  if (a instanceof IPv6ProxyAddress) return { address: formatIPv6(a.sourceAddress.address), port: a.sourcePort, tls };
  return { tls }; // AF_UNIX / UNSPEC: no IP to report
}

function hasSslTlv(data: Uint8Array | undefined): boolean {
  if (!data) return false;
  const b = Buffer.from(data);
  for (let i = 0; i + 3 <= b.length; ) {
    const type = b[i]!;
    const len = b.readUInt16BE(i + 1);
    if (type === PP2_TYPE_SSL && len >= 1) return (b[i + 3]! & PP2_CLIENT_SSL) !== 0;
    i += 3 + len;
  }
  return false;
}

/** 16 octets → RFC 5952 text (lowercase, longest zero run as "::"; IPv4-mapped as ::ffff:a.b.c.d). */
export function formatIPv6(bytes: readonly number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${bytes.slice(12).join('.')}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

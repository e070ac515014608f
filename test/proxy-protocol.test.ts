/**
 * PROXY protocol v1/v2 from trusted balancers (headers built with proxy-protocol-js, as HAProxy
 * sends them): the real client address drives the plaintext policy, per-IP limits and events;
 * untrusted peers cannot spoof it; garbage, oversize and silence from a trusted peer are closed.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import {
  Command, INETProtocol, IPv4Address, IPv4ProxyAddress, IPv6Address, IPv6ProxyAddress, Peer, TransportProtocol, V1ProxyProtocol, V2ProxyProtocol,
} from 'proxy-protocol-js';
import { serverEvents, type SessionStartEvent } from '../src/obs/events.js';
import { Pop3Server, type ServerOptions } from '../src/server/server.js';
import { formatIPv6, tryParse } from '../src/server/proxy.js';
import { MemoryDropOpener, TableAuthenticator } from './helpers/memory-drop.js';
import { makeCertificate } from './helpers/popspool-server.js';
import { requireTool } from './helpers/tools.js';

const v1 = (src: string, proto = INETProtocol.TCP4) => new V1ProxyProtocol(proto, new Peer(src, 40000), new Peer('127.0.0.1', 110)).build();
function v2ipv4(src: number[], tlvs?: Uint8Array): Buffer {
  const b = Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, new IPv4ProxyAddress(IPv4Address.createFrom(src), 40000, IPv4Address.createFrom([127, 0, 0, 1]), 110), tlvs).build());
  // proxy-protocol-js 4.0.6 leaves the TLVs out of the length field; HAProxy counts them (spec §2.2).
  b.writeUInt16BE(b.length - 16, 14);
  return b;
}
/** PP2_TYPE_SSL (0x20), length 5: client flags PP2_CLIENT_SSL, verify = 0. */
const SSL_TLV = new Uint8Array([0x20, 0x00, 0x05, 0x01, 0, 0, 0, 0]);

/** A raw connection: send bytes first, then read lines. */
class Raw {
  buf = '';
  closed = false;
  private wake: (() => void) | undefined;
  constructor(readonly sock: net.Socket | tls.TLSSocket) {
    sock.on('data', (d) => {
      this.buf += d.toString('latin1');
      this.wake?.();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    sock.on('error', () => undefined);
  }
  static async open(port: number, first?: string | Buffer): Promise<Raw> {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    if (first !== undefined) sock.write(first);
    return new Raw(sock);
  }
  async line(): Promise<string> {
    for (;;) {
      const i = this.buf.indexOf('\r\n');
      if (i >= 0) {
        const l = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        return l;
      }
      if (this.closed) throw new Error('closed');
      await new Promise<void>((r) => (this.wake = r));
    }
  }
  async cmd(c: string): Promise<string> {
    this.sock.write(c + '\r\n');
    return this.line();
  }
  async capa(): Promise<string[]> {
    expect(await this.cmd('CAPA')).to.match(/^\+OK/);
    const out: string[] = [];
    for (let l = await this.line(); l !== '.'; l = await this.line()) out.push(l);
    return out;
  }
  async waitClosed(): Promise<void> {
    while (!this.closed) await new Promise<void>((r) => (this.wake = r));
  }
}

describe('PROXY protocol from trusted balancers', function () {
  this.timeout(20000);
  let server: Pop3Server;
  let port: number;
  let tlsPort = 0;
  const raws: Raw[] = [];
  const starts: SessionStartEvent[] = [];
  const onStart = (e: SessionStartEvent) => starts.push(e);
  let certDir: string;
  let creds: { key: Buffer; cert: Buffer } | undefined;

  async function start(over: Partial<ServerOptions> = {}): Promise<void> {
    server = new Pop3Server({
      listen: ['127.0.0.1:0'], listenTls: creds ? ['127.0.0.1:0'] : [], ...(creds ? { tls: creds } : {}),
      proxyTrusted: ['127.0.0.0/8'], proxyHeaderTimeoutMs: 300, authFailureDelayMs: 0,
      dropOpener: new MemoryDropOpener({ alice: [] }), authenticator: new TableAuthenticator({ alice: 'pw' }), ...over,
    });
    const [a, b] = await server.listen();
    port = a!.port;
    tlsPort = b?.port ?? 0;
  }
  const open = async (first?: string | Buffer) => {
    const r = await Raw.open(port, first);
    raws.push(r);
    return r;
  };

  before(function () {
    certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-proxy-'));
    serverEvents.on('session-start', onStart);
  });
  after(() => {
    serverEvents.off('session-start', onStart);
    fs.rmSync(certDir, { recursive: true, force: true });
  });
  beforeEach(async () => start());
  afterEach(async () => {
    for (const r of raws.splice(0)) r.sock.destroy();
    await server.close();
  });

  it('v1: the claimed client is the peer: a remote source may not log in in cleartext, a loopback one may', async () => {
    const remote = await open(v1('203.0.113.7'));
    expect(await remote.line()).to.equal('+OK popspool ready');
    expect(await remote.capa()).to.not.include('USER');
    expect(await remote.cmd('USER alice')).to.match(/^-ERR \[AUTH\] plaintext authentication disallowed/);
    expect(starts.at(-1)!.rip).to.equal('203.0.113.7');
    const local = await open(v1('127.0.0.9'));
    await local.line();
    expect(await local.cmd('USER alice')).to.equal('+OK send PASS');
    expect(await local.cmd('PASS pw')).to.match(/^\+OK alice has 0 messages/);
  });

  it('v2: IPv4 and IPv6 sources, the SSL TLV counts as TLS, LOCAL keeps the socket address', async () => {
    const r4 = await open(v2ipv4([198, 51, 100, 20]));
    await r4.line();
    expect(starts.at(-1)!.rip).to.equal('198.51.100.20');
    expect(await r4.capa()).to.not.include('USER');
    const v6 = new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, new IPv6ProxyAddress(
      IPv6Address.createFrom([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]), 40000, IPv6Address.createWithEmptyAddress(), 110)).build();
    const r6 = await open(Buffer.from(v6));
    await r6.line();
    expect(starts.at(-1)!.rip).to.equal('2001:db8::7');
    const ssl = await open(v2ipv4([198, 51, 100, 21], SSL_TLV));
    await ssl.line();
    expect(starts.at(-1)).to.deep.include({ rip: '198.51.100.21', tls: true });
    expect(await ssl.capa()).to.include('USER').and.not.include('STLS');
    const localCmd = Buffer.from(new V2ProxyProtocol(Command.LOCAL, TransportProtocol.UNSPEC, new IPv4ProxyAddress(IPv4Address.createWithEmptyAddress(), 0, IPv4Address.createWithEmptyAddress(), 0)).build());
    const health = await open(localCmd);
    await health.line();
    expect(starts.at(-1)!.rip).to.equal('127.0.0.1');
  });

  it('per-IP limits count the real clients, not the balancer', async () => {
    await server.close();
    await start({ maxConnectionsPerIp: 1 });
    const a = await open(v1('198.51.100.1'));
    expect(await a.line()).to.match(/^\+OK/);
    const b = await open(v1('198.51.100.1'));
    expect(await b.line()).to.equal('-ERR [SYS/TEMP] too many connections');
    const c = await open(v1('198.51.100.2'));
    expect(await c.line()).to.match(/^\+OK/);
  });

  it('an untrusted peer cannot claim an address: its PROXY line is just an unknown command', async () => {
    await server.close();
    await start({ proxyTrusted: ['10.0.0.0/8', '2001:db8::/32'] });
    const r = await open();
    expect(await r.line()).to.equal('+OK popspool ready');
    expect(await r.cmd(v1('203.0.113.7').trimEnd())).to.equal('-ERR unknown command');
    expect(starts.at(-1)!.rip).to.equal('127.0.0.1');
  });

  it('a trusted peer that sends garbage, too much, or nothing in time is closed without a greeting', async () => {
    for (const first of ['USER alice\r\n', 'PROXY ' + 'x'.repeat(200), '\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff', 'PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n', undefined]) {
      const r = await open(first);
      await r.waitClosed();
      expect(r.buf, JSON.stringify(first)).to.equal('');
    }
    expect(server.connectionCount).to.equal(0);
  });

  it('implicit TLS behind the balancer: header first, then the handshake', async function () {
    requireTool(this, 'openssl', 'openssl');
    await server.close();
    const c = makeCertificate(certDir);
    creds = { key: fs.readFileSync(c.key), cert: fs.readFileSync(c.cert) };
    await start();
    creds = undefined;
    const sock = net.connect(tlsPort, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(v1('192.0.2.44'));
    const secure = tls.connect({ socket: sock, rejectUnauthorized: false });
    await new Promise((r) => secure.once('secureConnect', r));
    const r = new Raw(secure);
    raws.push(r);
    expect(await r.line()).to.equal('+OK popspool ready');
    expect(starts.at(-1)).to.deep.include({ rip: '192.0.2.44', tls: true });
    expect(await r.cmd('USER alice')).to.equal('+OK send PASS');
    expect(await r.cmd('PASS pw')).to.match(/^\+OK alice has 0 messages/);
  });

  it('parser units: partial input waits, IPv6 text is canonical', () => {
    const h = Buffer.from(v1('192.0.2.1'));
    for (let i = 0; i < h.length; i++) expect(tryParse(h.subarray(0, i)), `prefix ${i}`).to.equal(undefined);
    expect(tryParse(Buffer.concat([h, Buffer.from('CAPA\r\n')]))).to.deep.equal({ peer: { address: '192.0.2.1', port: 40000, tls: false }, length: h.length });
    const h2 = v2ipv4([192, 0, 2, 2]);
    for (let i = 0; i < h2.length; i++) expect(tryParse(h2.subarray(0, i)), `v2 prefix ${i}`).to.equal(undefined);
    expect(formatIPv6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])).to.equal('::1');
    expect(formatIPv6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1])).to.equal('::ffff:192.0.2.1');
    expect(formatIPv6([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])).to.equal('2001:db8:1::1:0:0');
    expect(() => new Pop3Server({ proxyTrusted: ['10.0.0.0/33'], dropOpener: new MemoryDropOpener({}), authenticator: new TableAuthenticator({}) })).to.throw(/proxy-trusted/);
  });
});

/**
 * A small raw-socket POP3 client for tests: send exact lines, read single-line and multi-line
 * replies (un-stuffed), keep a transcript. Deliberately dumb: it never fixes up what the server
 * sends, so tests see the wire as it is.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface MultilineReply {
  /** The status line ("+OK ..."). */
  readonly status: string;
  /** Body lines, un-stuffed, decoded as UTF-8 (without CRLF). */
  readonly lines: string[];
  /** Body bytes exactly as sent before the "." line, un-stuffed (CRLFs included). */
  readonly raw: Buffer;
}

export class Pop3TestClient {
  readonly transcript: string[] = [];
  greeting = '';
  private buf: Buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private ended = false;
  private readonly closedPromise: Promise<void>;

  private constructor(public socket: net.Socket) {
    this.closedPromise = new Promise((resolve) => socket.once('close', () => resolve()));
    this.attach(socket);
  }

  /** Connect and read the greeting. */
  static async connect(port: number, host = '127.0.0.1', opts: { tls?: boolean } = {}): Promise<Pop3TestClient> {
    const socket = opts.tls ? tls.connect({ port, host, rejectUnauthorized: false }) : net.connect({ port, host });
    await new Promise<void>((resolve, reject) => {
      socket.once(opts.tls ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    const c = new Pop3TestClient(socket);
    c.greeting = await c.readLine();
    return c;
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** True once the server closed the connection. */
  get isEnded(): boolean {
    return this.ended;
  }

  /** Write one line (CRLF added). */
  send(line: string): void {
    this.transcript.push(`C: ${line}`);
    this.socket.write(line + '\r\n');
  }

  /** Write raw bytes (no CRLF added). */
  sendRaw(data: string | Buffer): void {
    this.transcript.push(`C(raw): ${JSON.stringify(data.toString())}`);
    this.socket.write(data);
  }

  /** Next line from the server, as raw bytes without CRLF. Rejects when the connection ends first. */
  async readLineBytes(): Promise<Buffer> {
    for (;;) {
      const nl = this.buf.indexOf(0x0a);
      if (nl >= 0) {
        const end = nl > 0 && this.buf[nl - 1] === 0x0d ? nl - 1 : nl;
        const line = this.buf.subarray(0, end);
        this.buf = this.buf.subarray(nl + 1);
        return line;
      }
      if (this.ended) throw new Error(`connection closed; transcript:\n${this.transcript.join('\n')}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  async readLine(): Promise<string> {
    const line = (await this.readLineBytes()).toString('utf8');
    this.transcript.push(`S: ${line}`);
    return line;
  }

  /** Read a multi-line body after its status line was read. */
  async readBody(): Promise<{ lines: string[]; raw: Buffer }> {
    const lines: string[] = [];
    const raw: Buffer[] = [];
    for (;;) {
      let b = await this.readLineBytes();
      if (b.length === 1 && b[0] === 0x2e) break;
      if (b[0] === 0x2e) b = b.subarray(1);
      lines.push(b.toString('utf8'));
      raw.push(b, Buffer.from('\r\n'));
    }
    this.transcript.push(`S: <${lines.length} lines>`);
    return { lines, raw: Buffer.concat(raw) };
  }

  /** Send a command and read a single-line reply. */
  async command(line: string): Promise<string> {
    this.send(line);
    return this.readLine();
  }

  /** Send a command; if the reply is +OK read the multi-line body. */
  async multi(line: string): Promise<MultilineReply> {
    this.send(line);
    return this.readMulti();
  }

  /** Read a status line and, when it is +OK, the multi-line body. */
  async readMulti(): Promise<MultilineReply> {
    const status = await this.readLine();
    if (!status.startsWith('+OK')) return { status, lines: [], raw: Buffer.alloc(0) };
    const { lines, raw } = await this.readBody();
    return { status, lines, raw };
  }

  /** USER/PASS login; returns the PASS reply. */
  async login(user: string, pass: string): Promise<string> {
    const u = await this.command(`USER ${user}`);
    if (!u.startsWith('+OK')) return u;
    return this.command(`PASS ${pass}`);
  }

  /** After "+OK" to STLS: wrap the socket in TLS (self-signed certificates accepted). */
  async startTls(): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
  }

  /** Resolves when the server has closed the connection. */
  closed(): Promise<void> {
    return this.closedPromise;
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * One POP3 session over a duplex stream (net.Socket, TLSSocket, or stdio): the state machine
 * AUTHORIZATION → TRANSACTION → UPDATE, the read/dispatch/reply loop, timeouts, STLS, and the
 * summary log line.
 *
 * Flow control: every 'data' chunk goes to the LineReader at once, and the stream is paused
 * only while the reader holds more than INPUT_HIGH bytes the loop has not taken yet (resumed
 * when the loop wants more): a lockstep client's next command costs no pause and resume.
 * Pipelined commands are answered one by one, in order, with small replies gathered into one
 * write (a manual cork). Whenever a write reports a full buffer the loop waits for 'drain'
 * before doing anything else, so a client that pipelines RETRs and never reads stalls us at one
 * socket buffer and INPUT_HIGH of its commands, not at memory.
 *
 * The loop awaits only what must wait (input, 'drain', a handler's I/O): a command whose
 * handler answers synchronously, and a RETR whose message is already read, go from the
 * client's line to the socket write without a promise in between.
 */
import type { Duplex, Readable } from 'node:stream';
import { Socket } from 'node:net';
import tls from 'node:tls';
import { apopTimestamp, type ApopSecrets } from '../auth/apop.js';
import type { LoginThrottle } from '../auth/throttle.js';
import type { LoginPolicy } from './login-policy.js';
import type { Authenticator } from '../auth/types.js';
import { validateUsername } from '../auth/username.js';
import { serverEvents } from '../obs/events.js';
import { log } from '../obs/log.js';
import { RECYCLE_CHUNK, type DropOpener, type RecyclingReadable, type UpdateOutcome } from '../spool/drop.js';
import type { CommandContext, SessionState } from './command-types.js';
import { Dispatcher } from './commands.js';
import { LineReader, type LineEvent } from './line-reader.js';
import { Maildrop } from './maildrop.js';
import { plaintextAuthAllowed, type PeerInfo } from './peer.js';
import { TERMINATOR, err, errorOutcome, formatMultiline, ok, quit, statusLine, type MessageBody, type Outcome } from './responses.js';
import { releaseWire, WireEncoder } from './wire.js';

export interface SessionOptions {
  readonly authenticator: Authenticator;
  readonly dropOpener: DropOpener;
  /** RFC 1939 §3: an autologout timer "MUST be of at least 10 minutes' duration". */
  readonly idleTimeoutMs: number;
  /** Idle limit before login: shorter, so idle pre-auth connections cannot hog slots. */
  readonly preauthTimeoutMs: number;
  /** Allow USER/PASS/AUTH on unencrypted non-loopback connections. */
  readonly allowPlaintextAuth: boolean;
  /** Current TLS context for STLS (read when an upgrade starts); undefined = STLS not offered. */
  readonly secureContext?: () => tls.SecureContext | undefined;
  /** IMPLEMENTATION capability text ('' hides it). */
  readonly implementation: string;
  /** Delay before answering a failed login (slows password guessing; Dovecot waits 2 s). */
  readonly authFailureDelayMs: number;
  /** Failed logins on one connection before we hang up. */
  readonly maxAuthFailures: number;
  /** Failed-login throttle shared by all sessions; when set, it decides the failure delay. */
  readonly throttle?: LoginThrottle;
  /** APOP secrets (RFC 1939 §7); when set the greeting carries a timestamp. */
  readonly apop?: ApopSecrets;
  /** EXPIRE / LOGIN-DELAY policy (RFC 2449), shared by all sessions. */
  readonly policy?: LoginPolicy;
}

const EMPTY = Buffer.alloc(0);
const TERMINATOR_BYTES = Buffer.from(TERMINATOR, 'latin1');

/** Flush gathered replies once they exceed this, even mid-batch (bounds the manual cork). */
const CORK_BYTES = 16 * 1024;
/** Unread client input beyond which the stream is paused (TCP then pushes back on the client). */
const INPUT_HIGH = 64 * 1024;
/** After a final reply, how long a peer that does not read may keep the socket open. */
const HANGUP_GRACE_MS = 2000;
/** A timeout that fires while a handler works (login, lock wait, UPDATE) looks again this much later. */
const BUSY_RECHECK_MS = 1000;

export type EndReason = 'quit' | 'disconnect' | 'timeout' | 'bad-commands' | 'auth-failures' | 'shutdown' | 'error';

export class Pop3Session implements CommandContext {
  state: SessionState = 'AUTHORIZATION';
  pendingUser: string | undefined;
  /** Resolves when the session is over: stream closed, drop closed or updated, summary logged. */
  readonly done: Promise<void>;

  private stream: Duplex;
  private readonly reader = new LineReader();
  private readonly dispatcher = new Dispatcher();
  private md: Maildrop | undefined;
  private user = '';
  private tls: boolean;
  private out: string[] = [];
  private outBytes = 0;
  private closed = false;
  private eof = false;
  private tlsRequested = false;
  private shuttingDown = false;
  /** What the loop (or a flush at UPDATE's commit point) waits for; woken by the stream's events. */
  private waiters: Array<{ readonly what: 'data' | 'drain'; readonly wake: () => void }> = [];
  private paused = false;
  private timer: NodeJS.Timeout | undefined;
  /** Last client activity (input, or output taken): the idle limit runs from here. */
  private lastActive = Date.now();
  private busy = false;
  private authFailures = 0;
  private endReason: EndReason = 'disconnect';
  private updateCase = '';
  private updateOutcome: UpdateOutcome | undefined;
  /** Session number in log lines and events (src/obs/events.ts). */
  readonly id = serverEvents.sessionId();
  private bytesIn = 0;
  private bytesOut = 0;
  private readonly started = Date.now();
  private resolveDone!: () => void;

  constructor(stream: Duplex, private readonly peer: PeerInfo, private readonly opts: SessionOptions) {
    this.stream = stream;
    this.tls = peer.tls;
    this.apopTimestamp = opts.apop ? apopTimestamp() : '';
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  // ---- CommandContext -------------------------------------------------------------------

  get remoteAddress(): string {
    return this.peer.remoteAddress;
  }
  get tlsActive(): boolean {
    return this.tls;
  }
  get stlsAvailable(): boolean {
    return !this.tls && this.opts.secureContext?.() !== undefined;
  }
  get plaintextAuthAllowed(): boolean {
    return plaintextAuthAllowed(this.peer, this.tls, this.opts.allowPlaintextAuth);
  }
  get policyCapabilities(): readonly string[] {
    return this.opts.policy?.capabilities() ?? [];
  }

  get implementation(): string {
    return this.opts.implementation;
  }
  get maildrop(): Maildrop {
    if (!this.md) throw new Error('no maildrop outside TRANSACTION');
    return this.md;
  }

  requestTls(): void {
    this.tlsRequested = true;
  }

  /** RFC 1939 §7 timestamp of this connection's greeting ('' when APOP is off). */
  readonly apopTimestamp: string;

  login(user: string, password: string): Promise<Outcome> {
    const secure = plaintextAuthAllowed(this.peer, this.tls, false);
    return this.authenticate(user, () => this.opts.authenticator.verify(user, password, { remoteAddress: this.peer.remoteAddress, secure }));
  }

  apopLogin(user: string, digest: string): Promise<Outcome> {
    const apop = this.opts.apop;
    if (!apop) return Promise.resolve(err('APOP not available'));
    return this.authenticate(user, () => apop.verify(user, this.apopTimestamp, digest));
  }

  loginFailed(user: string, reason: string, reply?: Outcome): Promise<Outcome> {
    return this.authenticate(user, () => Promise.resolve(false), { reason, ...(reply ? { reply } : {}) });
  }

  /**
   * The one login path (USER/PASS, AUTH PLAIN, APOP): throttle check, credential check, the
   * same reply and delay for an unknown user and a wrong password, then the maildrop.
   * `refused` marks a login refused before any credential check (loginFailed): its reason is
   * logged and its reply may differ, but it is throttled, logged and delayed like the rest.
   */
  private async authenticate(user: string, check: () => Promise<boolean>, refused?: { reason: string; reply?: Outcome }): Promise<Outcome> {
    const throttle = this.opts.throttle;
    const verdict = throttle?.check(this.peer.remoteAddress, user);
    if (verdict?.blocked) {
      // RFC 2449 §8.1.1 [LOGIN-DELAY]: fetchmail and others retry later instead of giving up.
      this.authFailures++;
      // rip then by, before the client-chosen user: fail2ban counts "by=ip" refusals (the
      // address itself kept failing) but not "by=user" ones (anyone can block a name, so the
      // refused address may be its owner's). docs/logging.md explains.
      log.warn('authentication refused: too many failures', { rip: this.peer.remoteAddress, by: verdict.by, user, retry_after_s: Math.ceil(verdict.retryAfterMs / 1000), session: this.id });
      serverEvents.emit('login', { id: this.id, rip: this.peer.remoteAddress, result: 'fail' });
      const reply = err('too many failed logins; try again later', 'LOGIN-DELAY');
      return this.authFailures >= this.opts.maxAuthFailures ? quit(reply) : reply;
    }
    let good: boolean;
    try {
      good = await check();
    } catch (e) {
      log.error('authenticator failed', { rip: this.peer.remoteAddress, session: this.id, error: String(e) });
      serverEvents.emit('login', { id: this.id, rip: this.peer.remoteAddress, result: 'error' });
      return err('authentication service unavailable', 'SYS/TEMP');
    }
    // An authenticator that accepts a name we could not safely map to a spool is still a failure.
    if (!good || !validateUsername(user)) {
      this.authFailures++;
      // rip first and fixed: fail2ban matches "authentication failed rip=<HOST>" (docs/logging.md),
      // so a hostile user name later in the line cannot frame another address. (In JSON, keys are
      // sorted: "cause" stays ahead of "message" so "message","rip" remain adjacent for the filter.)
      log.warn('authentication failed', { rip: this.peer.remoteAddress, user, tls: this.tls, failures: this.authFailures, session: this.id, cause: refused?.reason });
      serverEvents.emit('login', { id: this.id, rip: this.peer.remoteAddress, result: 'fail' });
      const delay = throttle ? throttle.fail(this.peer.remoteAddress, user) : this.opts.authFailureDelayMs;
      if (delay > 0) await new Promise((r) => setTimeout(r, delay).unref());
      const reply = refused?.reply ?? err('authentication failed', 'AUTH');
      return this.authFailures >= this.opts.maxAuthFailures ? quit(reply) : reply;
    }
    throttle?.succeed(this.peer.remoteAddress, user);
    const wait = this.opts.policy?.waitFor(user) ?? 0;
    if (wait > 0) {
      // RFC 2449 §8.1.1: the right password, too soon after the last login.
      log.info('login refused: login-delay', { rip: this.peer.remoteAddress, user, retry_after_s: wait, session: this.id });
      serverEvents.emit('login', { id: this.id, rip: this.peer.remoteAddress, result: 'fail' });
      return err(`minimum time between logins not yet passed; try again in ${wait} s`, 'LOGIN-DELAY');
    }
    let drop;
    try {
      drop = await this.opts.dropOpener.open(user);
    } catch (e) {
      // RFC 2449 §8.1.2: [IN-USE] etc. tell fetchmail this is not a wrong password.
      log.warn('maildrop open failed', { user, rip: this.peer.remoteAddress, session: this.id, error: String(e) });
      const inUse = (e as { code?: string }).code === 'IN_USE';
      serverEvents.emit('login', { id: this.id, rip: this.peer.remoteAddress, result: inUse ? 'inuse' : 'error' });
      return errorOutcome(e);
    }
    if (this.closed) {
      await drop.close().catch(() => undefined);
      return err('connection closed');
    }
    this.md = new Maildrop(drop);
    this.user = user;
    this.opts.policy?.loggedIn(user);
    this.state = 'TRANSACTION';
    const info = drop.info;
    log.info('login', { user, rip: this.peer.remoteAddress, tls: this.tls, session: this.id, mode: info.mode, cache: info.cache, lock_wait_ms: info.lockWaitMs });
    serverEvents.emit('login', {
      id: this.id, rip: this.peer.remoteAddress, result: 'ok', user,
      mode: info.mode, cache: info.cache, lockWaitMs: info.lockWaitMs, ...(info.bytesScanned === undefined ? {} : { bytesScanned: info.bytesScanned }),
    });
    return ok(`${user} has ${this.md.count} messages (${this.md.octets} octets)`);
  }

  async enterUpdate(): Promise<Outcome> {
    this.state = 'UPDATE';
    const md = this.maildrop;
    const signOff = (): Outcome => ok(`popspool signing off (${md.count} messages left)`);
    try {
      // A journaled rewrite answers as soon as it is durable (DESIGN.md §4's commit point):
      // the client goes on while the image is copied into the spool; the connection is closed
      // only when that is done, so a client that waits for the close sees the final spool.
      const res = await md.update(() => {
        this.quitAnswered = true;
        this.send(statusLine(signOff()) + '\r\n');
        void this.flushQuietly();
      });
      this.updateCase = res.case;
      this.updateOutcome = res;
      return signOff();
    } catch (e) {
      this.updateCase = 'failed';
      log.error('update failed', { user: this.user, rip: this.peer.remoteAddress, error: String(e) });
      await md.drop.close().catch(() => undefined);
      return err('some deleted messages not removed', 'SYS/TEMP');
    } finally {
      this.md = undefined; // updated (or closed): nothing left to close at the end
      this.lastMd = md;
    }
  }
  private lastMd: Maildrop | undefined;
  /** The QUIT's +OK went out at the update's commit point, before the update finished. */
  private quitAnswered = false;

  // ---- lifecycle ------------------------------------------------------------------------

  /** Send the greeting and serve until the session ends. */
  start(): void {
    serverEvents.emit('session-start', { id: this.id, rip: this.peer.remoteAddress, tls: this.tls });
    this.attach(this.stream);
    this.armTimer(this.deadline() - Date.now());
    this.loop()
      .catch((e) => {
        this.endReason = 'error';
        log.error('session failed', { rip: this.peer.remoteAddress, error: String(e) });
      })
      .finally(() => void this.finish());
  }

  /** Server shutdown: end at the next safe point; never interrupts an UPDATE. */
  shutdown(): void {
    this.shuttingDown = true;
    if (this.waitingFor('data')) this.wake('data');
    else if (this.waitingFor('drain') && this.state !== 'UPDATE') this.stream.destroy();
  }

  private async loop(): Promise<void> {
    this.send(`+OK popspool ready${this.apopTimestamp ? ' ' + this.apopTimestamp : ''}\r\n`);
    let continuation: ((line: string) => Promise<Outcome>) | undefined;
    for (;;) {
      if (this.closed) return;
      if (this.shuttingDown) {
        this.endReason = 'shutdown';
        this.send(statusLine(err('server shutting down', 'SYS/TEMP')) + '\r\n');
        return this.close();
      }
      const ev = this.reader.next();
      if (!ev) {
        if (this.eof) return;
        const flushed = this.flush();
        if (flushed) {
          // Input keeps coming while a reply waits for 'drain' (the stream flows): look again
          // before waiting for more, or a command that came meanwhile would wait forever.
          await flushed;
          continue;
        }
        await this.readMore();
        continue;
      }
      let outcome: Outcome;
      this.busy = true;
      try {
        if (continuation) {
          const next = continuation;
          continuation = undefined;
          outcome = await this.continueSasl(ev, next);
        } else {
          const d = this.dispatcher.dispatch(ev, this.state, this);
          outcome = (d instanceof Promise ? await d : d).outcome;
        }
      } finally {
        this.busy = false;
      }
      if (outcome.kind === 'continue') continuation = outcome.next;
      const more = this.reply(outcome);
      if (!(typeof more === 'boolean' ? more : await more)) return;
      if (this.outBytes > CORK_BYTES) {
        const flushed = this.flush();
        if (flushed) await flushed;
      }
      if (this.tlsRequested) {
        this.tlsRequested = false;
        await this.upgrade();
      }
    }
  }

  /** RFC 5034 §4: the client's line after "+ " is a SASL response, not a command. */
  private async continueSasl(ev: LineEvent, next: (line: string) => Promise<Outcome>): Promise<Outcome> {
    if (ev.kind === 'too-long') return err('SASL response too long');
    try {
      return await next(ev.bytes.toString('utf8').trim());
    } catch (e) {
      return errorOutcome(e);
    }
  }

  /** Write an outcome. Returns false when the session must end (a promise only when it must wait). */
  private reply(o: Outcome): boolean | Promise<boolean> {
    switch (o.kind) {
      case 'ok':
      case 'err':
      case 'continue':
        this.send(statusLine(o) + '\r\n');
        return true;
      case 'multiline':
        this.send(formatMultiline(o.text, o.lines));
        return true;
      case 'stream':
        return this.sendMessage(o.text, o.body);
      case 'quit': {
        this.endReason = this.quitReason(o.reply);
        if (!this.quitAnswered) this.send(statusLine(o.reply) + '\r\n');
        return this.close().then(() => false);
      }
    }
  }

  private quitReason(reply: Outcome): EndReason {
    if (reply.kind !== 'err' || this.state === 'UPDATE') return 'quit';
    if (this.dispatcher.bad > 0) return 'bad-commands';
    if (this.authFailures >= this.opts.maxAuthFailures) return 'auth-failures';
    return 'error';
  }

  /** RETR/TOP: +OK, the message through the wire encoder with backpressure, then ".". */
  private sendMessage(text: string, body: MessageBody): boolean | Promise<boolean> {
    let src: Readable | Buffer | Promise<Readable | Buffer>;
    try {
      src = body.open();
    } catch (e) {
      return this.readRefused(e);
    }
    if (src instanceof Promise) return src.then((opened) => this.sendOpened(text, body, opened), (e: unknown) => this.readRefused(e));
    return this.sendOpened(text, body, src);
  }

  /** The Drop saw the spool change underneath: answer, then end the session (no update). */
  private readRefused(e: unknown): Promise<boolean> {
    log.warn('message read refused', { user: this.user, rip: this.peer.remoteAddress, error: String(e) });
    return Promise.resolve(this.reply(quit(errorOutcome(e))));
  }

  private sendOpened(text: string, body: MessageBody, src: Readable | Buffer): boolean | Promise<boolean> {
    const enc = new WireEncoder(body.bodyLines === undefined ? {} : { bodyLines: body.bodyLines });
    const head = statusLine(ok(text)) + '\r\n';
    if (Buffer.isBuffer(src)) {
      // A small message, whole: status line, body and terminator in one reused frame, one
      // plain write (a RETR of up to ~32 KB). (Framing into a fresh buffer per message was
      // tried in the tenth session: V8 then started old-space collections for those buffers.)
      // Otherwise (TOP, a larger message, no SIMD): status line, body and terminator in one writev.
      const frame = enc.frame(head, src, TERMINATOR_BYTES);
      if (!frame) this.send(head);
      const out = frame ? [frame] : [enc.push(src), enc.end(), TERMINATOR_BYTES];
      if (this.closed) return false;
      const written = this.write(...out);
      body.onSent?.(enc.octets, enc.complete);
      return written ? written.then(() => true) : true;
    }
    this.send(head);
    return this.streamMessage(enc, body, src);
  }

  private async streamMessage(enc: WireEncoder, body: MessageBody, src: Readable): Promise<boolean> {
    // Each encoded chunk is held back until the next one is ready, so the last one goes out in
    // the same write as the ".": a message that fits in one chunk leaves as one writev of status
    // line, body and terminator (one TCP segment train, no lone ".\r\n" segment to wait for).
    let held: Buffer = EMPTY;
    // A source that recycles its chunks (the spool's rangeStream) gets each one back as soon as
    // the encoder has copied it; the encoder's output buffers go back on the write callback.
    const recycle = (src as RecyclingReadable)[RECYCLE_CHUNK];
    try {
      for await (const chunk of src) {
        const wire = enc.push(chunk as Buffer);
        recycle?.(chunk as Buffer);
        if (wire.length) {
          if (held.length) await this.write(held);
          held = wire;
        }
        if (this.closed) break;
        if (enc.done) break; // TOP limit: leaving the loop destroys the source
      }
    } catch (e) {
      // Part of the message is already out: the only honest move is to drop the connection.
      log.error('message stream failed', { user: this.user, rip: this.peer.remoteAddress, error: String(e) });
      this.endReason = 'error';
      this.stream.destroy();
      return false;
    } finally {
      src.destroy();
    }
    if (this.closed) return false;
    await this.write(held, enc.end(), TERMINATOR_BYTES);
    body.onSent?.(enc.octets, enc.complete);
    return true;
  }

  /** RFC 2595 §4: after "+OK", discard pipelined plaintext and negotiate TLS on the same socket. */
  private async upgrade(): Promise<void> {
    const ctx = this.opts.secureContext?.();
    await this.flush();
    if (this.closed || !ctx) return;
    this.reader.clear();
    const plain = this.stream;
    // Paused, as the plaintext stream must be when TLS takes its socket over: nothing more of
    // it is read as plaintext.
    plain.pause();
    this.detach(plain);
    const secure = new tls.TLSSocket(plain as import('node:net').Socket, { isServer: true, secureContext: ctx });
    this.stream = secure;
    // Flowing from the start: no application data can arrive before the handshake is done.
    this.attach(secure);
    await new Promise<void>((resolve) => {
      const onSecure = (): void => {
        secure.off('close', resolve);
        resolve();
      };
      secure.once('secure', onSecure);
      secure.once('close', resolve);
    });
    if (this.closed) return;
    this.tls = true;
    this.pendingUser = undefined;
  }

  private async close(): Promise<void> {
    await this.flush();
    this.hangUp();
  }

  /** End our side; destroy once flushed, or after a grace period if the peer never reads. */
  private hangUp(): void {
    if (this.closed) return;
    const s = this.stream;
    s.end(() => s.destroy());
    setTimeout(() => s.destroy(), HANGUP_GRACE_MS).unref();
  }

  private async finish(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    if (!this.closed) {
      await this.flushQuietly();
      this.hangUp();
    }
    // RFC 1939 §6: no QUIT, no UPDATE. The drop releases whatever it holds.
    if (this.md) {
      await this.md.drop.close().catch((e) => log.error('drop close failed', { user: this.user, error: String(e) }));
    }
    const md = this.md ?? this.lastMd;
    const c = md?.counters;
    const u = this.updateOutcome;
    let deleBytes = 0;
    if (md) for (const i of md.deleted) deleBytes += md.drop.messages.size(i);
    const durationMs = Date.now() - this.started;
    log.info('session end', {
      user: this.user || undefined,
      rip: this.peer.remoteAddress,
      tls: this.tls,
      session: this.id,
      retr: c?.retr ?? 0,
      retr_bytes: c?.retrBytes ?? 0,
      top: c?.top ?? 0,
      top_bytes: c?.topBytes ?? 0,
      dele: c?.dele ?? 0,
      dele_bytes: deleBytes,
      mode: md?.drop.info.mode,
      cache: md?.drop.info.cache,
      lock_wait_ms: md?.drop.info.lockWaitMs,
      update: this.updateCase || 'none',
      update_ms: u?.durationMs,
      update_answered_ms: u?.answeredMs,
      update_lock_wait_ms: u?.lockWaitMs,
      rewritten: u?.bytesRewritten,
      in: this.bytesIn,
      out: this.bytesOut,
      duration_ms: durationMs,
      end: this.endReason,
    });
    serverEvents.emit('session-end', {
      id: this.id, rip: this.peer.remoteAddress, ...(this.user ? { user: this.user } : {}), tls: this.tls,
      ...(md ? { mode: md.drop.info.mode } : {}),
      retr: c?.retr ?? 0, retrBytes: c?.retrBytes ?? 0, top: c?.top ?? 0, topBytes: c?.topBytes ?? 0,
      dele: c?.dele ?? 0, deleBytes, update: this.updateCase || 'none',
      ...(u ? { updateMs: u.durationMs, updateLockWaitMs: u.lockWaitMs, bytesRewritten: u.bytesRewritten } : {}),
      bytesIn: this.bytesIn, bytesOut: this.bytesOut, durationMs, end: this.endReason,
    });
    this.resolveDone();
  }

  // ---- I/O ------------------------------------------------------------------------------

  private readonly onData = (chunk: Buffer | string): void => {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.bytesIn += buf.length;
    this.reader.push(buf);
    this.lastActive = Date.now();
    if (this.reader.buffered > INPUT_HIGH && !this.paused) {
      this.paused = true;
      this.stream.pause();
    }
    this.wake('data');
  };
  private readonly onEnd = (): void => {
    this.eof = true;
    this.wakeAll();
  };
  private readonly onClose = (): void => {
    this.closed = true;
    this.wakeAll();
  };
  private readonly onError = (e: Error): void => {
    log.debug('connection error', { rip: this.peer.remoteAddress, error: e.message });
  };
  private readonly onDrain = (): void => {
    this.lastActive = Date.now();
    this.wake('drain');
  };

  private attach(s: Duplex): void {
    s.on('data', this.onData);
    s.on('end', this.onEnd);
    s.on('close', this.onClose);
    s.on('error', this.onError);
    s.on('drain', this.onDrain);
    // Flowing from here on (a server may hand its sockets over paused: pauseOnConnect).
    s.resume();
    this.paused = false;
  }

  private detach(s: Duplex): void {
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('close', this.onClose);
    s.off('drain', this.onDrain);
    // keep onError: a late error on the wrapped socket must not crash the process
  }

  private send(s: string): void {
    this.out.push(s);
    this.outBytes += s.length;
  }

  /** The gathered replies as one string, taken ('' when none). */
  private takeOut(): string {
    if (this.out.length === 0) return '';
    const text = this.out.length === 1 ? this.out[0]! : this.out.join('');
    this.out = [];
    this.outBytes = 0;
    return text;
  }

  /** Write gathered replies; a promise only when the output buffer is full (wait for it). */
  private flush(): Promise<void> | undefined {
    return this.out.length === 0 ? undefined : this.write();
  }

  /** flush() for the paths that must not fail: whatever goes wrong is the connection's end. */
  private flushQuietly(): Promise<void> {
    return Promise.resolve()
      .then(() => this.flush())
      .catch(() => undefined);
  }

  /**
   * Writes gathered replies, then `data`, as one corked batch (one writev on a socket, no
   * copying into one buffer). The replies go out as the string they are: the stream encodes it
   * straight into its write request, with no Buffer made here and nothing to hand back on the
   * write callback. Returns a promise only when the output buffer is full: it resolves on
   * 'drain' (or when the connection ends).
   */
  private write(...data: Buffer[]): Promise<void> | undefined {
    const text = this.takeOut();
    if (this.closed) return undefined;
    this.lastActive = Date.now();
    const s = this.stream;
    const many = data.length + (text ? 1 : 0) > 1;
    if (many) s.cork();
    let room = true;
    if (text) {
      this.bytesOut += Buffer.byteLength(text);
      room = s.write(text);
    }
    // An encoder slab goes back to the pool on the write callback only on a socket (TCP or
    // TLS), whose callback means the kernel or the TLS engine has taken the bytes. Other
    // duplexes (stdio's Duplex.from over two pipes) may call back while their own writable
    // still holds the buffer: there the slab is simply left to the garbage collector.
    const recycle = s instanceof Socket;
    for (const d of data) {
      if (d.length === 0) continue;
      this.bytesOut += d.length;
      room = recycle ? s.write(d, () => releaseWire(d)) : s.write(d);
    }
    if (many) s.uncork();
    return room ? undefined : this.wait('drain');
  }

  private readMore(): Promise<void> | undefined {
    if (this.closed || this.eof) return undefined;
    if (this.paused) {
      this.paused = false;
      this.stream.resume();
    }
    return this.wait('data');
  }

  private wait(what: 'data' | 'drain'): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((wake) => this.waiters.push({ what, wake }));
  }

  private waitingFor(what: 'data' | 'drain'): boolean {
    return this.waiters.some((w) => w.what === what);
  }

  /** Wake whoever waits for `what`. */
  private wake(what: 'data' | 'drain'): void {
    const ws = this.waiters;
    if (ws.length === 0) return;
    if (ws.length === 1) {
      // The common case: the loop alone waits.
      if (ws[0]!.what !== what) return;
      this.waiters = [];
      return ws[0]!.wake();
    }
    const now = ws.filter((w) => w.what === what);
    if (now.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.what !== what);
    for (const w of now) w.wake();
  }

  private wakeAll(): void {
    const all = this.waiters;
    this.waiters = [];
    for (const w of all) w.wake();
  }

  /**
   * When the session times out, as things stand. Before login it is a deadline from connect,
   * not an idle time: a slowloris client trickling a byte at a time must not hold a slot
   * forever. After login it is the idle time since the client's last input or the last
   * output it took.
   */
  private deadline(): number {
    return this.state === 'AUTHORIZATION' ? this.started + this.opts.preauthTimeoutMs : this.lastActive + this.opts.idleTimeoutMs;
  }

  /** One timer per session, re-armed only when it fires (activity just moves lastActive). */
  private armTimer(ms: number): void {
    this.timer = setTimeout(() => this.onTimeout(), Math.max(0, ms));
    this.timer.unref();
  }

  /** Not counted while a handler works (lock waits, UPDATE): that looks again a little later. */
  private onTimeout(): void {
    if (this.closed) return;
    const left = this.deadline() - Date.now();
    if (left > 0) return this.armTimer(left);
    if (this.busy) return this.armTimer(BUSY_RECHECK_MS);
    this.endReason = 'timeout';
    // Best effort: the client may not be reading at all, so destroy soon regardless.
    const s = this.stream;
    if (this.waitingFor('drain')) s.destroy();
    else {
      s.end(statusLine(err('autologout; idle for too long')) + '\r\n', () => s.destroy());
      setTimeout(() => s.destroy(), HANGUP_GRACE_MS).unref();
    }
  }
}

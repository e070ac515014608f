/**
 * System users through PAM (`auth = pam`), via the optional native addon authenticate-pam.
 *
 * The addon runs pam_start/pam_authenticate/pam_end on a libuv thread-pool thread, so the event
 * loop never blocks on PAM; but that pool (4 threads by default) also serves file I/O, scrypt and
 * DNS. A PAM stack that sleeps — pam_unix's own 2 s failure delay unless `nodelay`, an LDAP
 * module timing out — would hold threads, so at most half the pool runs PAM at once, a bounded
 * queue waits behind it, and a call that never returns is answered [SYS/TEMP] while its thread
 * slot stays taken (so stuck calls cannot pile up). The addon copies user and password into
 * 128-byte C buffers it never clears, NUL-terminated only when the text is under 127 bytes, and
 * C stops at a NUL: longer or NUL-carrying input is refused here, never truncated into (or
 * padded with heap garbage past) someone's password. It runs only PAM's auth stack, not the account stack
 * (pam_acct_mgmt): docs/security.md says what that means for expired accounts.
 *
 * Unknown users: pam_unix answers "User not known" at once but hashes (yescrypt: ~0.3 s) for a
 * known user with a wrong password, which would tell a guesser which names exist. The reply
 * for an unknown name is therefore held back to the running average time of wrong-password
 * failures. The service file must exist: a missing one makes PAM fall back to
 * /etc/pam.d/other, which on Debian is common-auth with `nullok` — not what anyone chose.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ConfigError } from '../errors.js';
import { log } from '../obs/log.js';
import type { AuthContext, Authenticator } from './types.js';
import { validateUsername } from './username.js';

/** The npm package this backend needs (an optionalDependency; native, needs libpam0g-dev to build). */
export const PAM_PACKAGE = 'authenticate-pam';

/** authenticate-pam's callback API (the package ships no types). */
export interface PamModule {
  authenticate(user: string, password: string, cb: (err?: string) => void, opts?: { serviceName?: string; remoteHost?: string }): void;
}

/**
 * The addon's buffers are char[128] with only byte 0 cleared, and V8's WriteUtf8(…, 127) writes
 * the terminating NUL only when it fits: 126 bytes of UTF-8 is the most that arrives intact.
 */
export const PAM_MAX_FIELD_BYTES = 126;
/** A PAM call not back after this long is answered [SYS/TEMP] (an LDAP or SSSD backend hanging). */
export const PAM_TIMEOUT_MS = 30_000;
/** Logins waiting for a PAM slot before further ones get [SYS/TEMP] (a flood must not queue forever). */
export const PAM_MAX_QUEUE = 256;

/** Where Linux-PAM looks for service files (the admin's, then the vendor's). */
export const PAM_DIRS = ['/etc/pam.d', '/usr/lib/pam.d'] as const;
/** Weight of the newest wrong-password time in the running average unknown names are padded to. */
const PAD_EWMA_WEIGHT = 0.2;

/** Half of libuv's thread pool (UV_THREADPOOL_SIZE, default 4), at least one. */
export function pamConcurrency(env = process.env): number {
  const pool = Number(env.UV_THREADPOOL_SIZE) || 4;
  return Math.max(1, Math.floor(pool / 2));
}

/**
 * Loads the addon; a ConfigError naming the package (exit 2 at start-up) when it is missing or
 * did not build. createRequire, not import(): the package's main is a .node file.
 */
export function loadPam(pkg: string = PAM_PACKAGE): PamModule {
  try {
    const mod = createRequire(import.meta.url)(pkg) as Partial<PamModule>;
    if (typeof mod.authenticate !== 'function') throw new Error('no authenticate() export');
    return mod as PamModule;
  } catch (e) {
    const why = (e as { code?: string }).code === 'MODULE_NOT_FOUND' ? 'it is not installed' : `it does not load: ${(e as Error).message.split('\n')[0]}`;
    throw new ConfigError(
      `auth = pam needs the optional package ${pkg}, but ${why}. Install the PAM headers and build it: ` +
        `apt-get install libpam0g-dev && npm install ${pkg} (or npm rebuild ${pkg})`,
    );
  }
}

/**
 * pam_strerror() texts meaning "PAM itself could not work" rather than "wrong credentials":
 * those become [SYS/TEMP], so fetchmail retries instead of deciding the password is wrong.
 * The addon reports a failed pam_start as just "pam_start: ".
 */
const SERVICE_ERROR = /^pam_start|^pam_set_item|System error|Critical error|Memory buffer error|cannot retrieve authentication info|Module is unknown|Failed to load module/i;

/** The service file's path; ConfigError when there is none (PAM would silently use "other"). */
export function pamServiceFile(service: string, dirs: readonly string[] = PAM_DIRS): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(service) || service.length > PAM_MAX_FIELD_BYTES) throw new ConfigError(`pam-service: invalid service name "${service}"`);
  const found = dirs.map((d) => `${d}/${service}`).find((f) => existsSync(f));
  if (!found) {
    throw new ConfigError(`pam-service: no PAM service file ${dirs[0]}/${service} (PAM would fall back to /etc/pam.d/other); create it, e.g. from docs/examples/pam.d/popspool`);
  }
  return found;
}

/** pam_strerror(PAM_USER_UNKNOWN). */
const USER_UNKNOWN = /User not known/i;

export interface PamOptions {
  /** /etc/pam.d/NAME. */
  readonly service: string;
  readonly concurrency?: number;
  readonly timeoutMs?: number;
}

export class PamAuthenticator implements Authenticator {
  /** Calls handed to PAM (tests count them). */
  calls = 0;
  private running = 0;
  private readonly queue: (() => void)[] = [];
  private readonly concurrency: number;
  private readonly timeoutMs: number;
  /** Running average of how long PAM takes to refuse a known user (ms); 0 until one is seen. */
  private wrongPasswordMs = 0;

  constructor(private readonly pam: PamModule, readonly opts: PamOptions) {
    this.concurrency = opts.concurrency ?? pamConcurrency();
    this.timeoutMs = opts.timeoutMs ?? PAM_TIMEOUT_MS;
  }

  async verify(user: string, password: string, ctx: AuthContext): Promise<boolean> {
    // Names we could never map to a spool, and input the addon would truncate, fail here.
    if (!validateUsername(user) || Buffer.byteLength(user) > PAM_MAX_FIELD_BYTES) return false;
    if (password.includes('\0') || Buffer.byteLength(password) > PAM_MAX_FIELD_BYTES) return false;
    await this.slot();
    const started = Date.now();
    const verdict = await this.call(user, password, ctx.remoteAddress);
    const took = Date.now() - started;
    if (verdict === 'wrong') this.wrongPasswordMs = this.wrongPasswordMs === 0 ? took : this.wrongPasswordMs + PAD_EWMA_WEIGHT * (took - this.wrongPasswordMs);
    if (verdict === 'unknown' && this.wrongPasswordMs > took) await new Promise((r) => setTimeout(r, this.wrongPasswordMs - took));
    return verdict === 'ok';
  }

  /** One PAM transaction; the slot is released when PAM returns, not when we stop waiting. */
  private call(user: string, password: string, rhost: string): Promise<'ok' | 'wrong' | 'unknown'> {
    return new Promise((resolve, reject) => {
      this.calls++;
      let answered = false;
      const timer = setTimeout(() => {
        answered = true;
        reject(new Error(`PAM service ${this.opts.service} did not answer within ${this.timeoutMs / 1000} s`));
      }, this.timeoutMs);
      timer.unref();
      const done = (err?: string | null): void => {
        this.release();
        clearTimeout(timer);
        if (answered) return;
        answered = true;
        if (err === undefined || err === null) return resolve('ok');
        if (SERVICE_ERROR.test(err)) return reject(new Error(`PAM service ${this.opts.service}: ${err}`));
        log.debug('PAM refused', { user, service: this.opts.service, pam: err });
        resolve(USER_UNKNOWN.test(err) ? 'unknown' : 'wrong');
      };
      try {
        this.pam.authenticate(user, password, done, { serviceName: this.opts.service, ...(rhost ? { remoteHost: rhost } : {}) });
      } catch (e) {
        // Argument errors are thrown synchronously; nothing was queued in the thread pool.
        this.release();
        clearTimeout(timer);
        reject(e as Error);
      }
    });
  }

  /** Waits for a free PAM slot; rejects when the queue is full. */
  private slot(): Promise<void> {
    if (this.running < this.concurrency) {
      this.running++;
      return Promise.resolve();
    }
    if (this.queue.length >= PAM_MAX_QUEUE) return Promise.reject(new Error('PAM busy: too many logins waiting'));
    return new Promise((resolve) => this.queue.push(resolve));
  }

  private release(): void {
    const next = this.queue.shift();
    if (next) next(); // the slot passes straight to the next waiter
    else this.running--;
  }
}

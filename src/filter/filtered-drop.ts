/**
 * The message filter as a Drop wrapper: RETR and TOP read the message through retr-filter,
 * LIST and STAT report the filtered sizes. The POP3 layer does not know a filter exists.
 *
 * Sizes. RFC 1939 wants LIST/STAT to be exact, and Drop.messages is a list read
 * synchronously, so every filtered size must be known when the drop opens. Opening therefore
 * runs the filter over each message whose size is not in the on-disk cache (FilterSizeCache,
 * keyed by UIDL, stored size and filter identity), FILTER_PARALLEL at a time. The first login
 * after the filter is configured (or changed) pays one filter run per message; later logins pay
 * one per newly arrived message. (The alternative, a lazily computed array-like, cannot work:
 * the filter is asynchronous and LIST is not.)
 *
 * Exactness. RETR runs the filter again and compares the wire octets of its output with the
 * size LIST reported; a filter whose output changed (it is not deterministic, or its config
 * changed behind its back) answers -ERR [SYS/TEMP] and its cache entry is dropped, so the next
 * session measures again. No mismatched message is ever sent.
 *
 * Failures. A filter that fails, times out or exceeds the cap answers -ERR [SYS/TEMP]: at login
 * (sizing) the drop is closed unchanged; at RETR/TOP the session layer ends the session without
 * an update. The spool is only ever read.
 */
import { Readable } from 'node:stream';
import path from 'node:path';
import type { Drop, DropMessage, DropOpener, MessageList, UpdateOutcome, UpdateRequest } from '../spool/drop.js';
import { entries, listOf } from '../spool/message-list.js';
import { wireSize } from '../mbox/wire.js';
import { log } from '../obs/log.js';
import { PopspoolError } from '../errors.js';
import { FilterError, runFilter, type FilterSpec } from './run-filter.js';
import { FilterSizeCache, filterIdentity, sizeKey } from './size-cache.js';

/** Filter runs at once while sizing a drop: enough to use a few cores, few enough not to starve other sessions. */
export const FILTER_PARALLEL = 4;

export interface FilterOptions extends FilterSpec {
  /** state-dir/filter-cache */
  readonly cacheDir: string;
}

export class FilteredDrop implements Drop {
  private constructor(
    private readonly inner: Drop,
    private readonly user: string,
    private readonly spec: FilterSpec,
    readonly messages: MessageList,
    private readonly keys: readonly string[],
    private readonly cache: FilterSizeCache,
  ) {}

  get info(): Drop['info'] {
    return this.inner.info;
  }

  /** Wraps an open drop, learning every filtered size (cache first). Closes nothing on failure: the opener does. */
  static async wrap(inner: Drop, user: string, opts: FilterOptions): Promise<FilteredDrop> {
    const started = Date.now();
    const cache = FilterSizeCache.load(opts.cacheDir, user, filterIdentity(opts.argv));
    const listed = entries(inner.messages);
    const keys = listed.map((m) => sizeKey(m.uidl, m.size));
    const sizes: (number | undefined)[] = keys.map((k) => cache.get(k));
    const missing = sizes.flatMap((s, i) => (s === undefined ? [i] : []));
    let next = 0;
    let failed: unknown;
    const worker = async (): Promise<void> => {
      while (failed === undefined && next < missing.length) {
        const i = missing[next++]!;
        try {
          const out = await runFilter(opts, await inner.read(i), envFor(user, listed[i]!, i));
          sizes[i] = wireSize(out);
          cache.set(keys[i]!, sizes[i]!);
        } catch (err) {
          failed ??= err;
          logFailure(err, user, i, 'sizing');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(FILTER_PARALLEL, missing.length) }, worker));
    // Keep what was learnt even after a failure: the next attempt resumes, it does not restart.
    const saveError = cache.save(new Set(keys));
    if (saveError) log.warn('filter size cache not written', { user, error: saveError.message });
    if (failed !== undefined) throw failed instanceof PopspoolError ? failed : new FilterError('exit', 'message filter failed', String(failed));
    if (missing.length > 0) log.debug('filter sizes computed', { user, computed: missing.length, cached: keys.length - missing.length, ms: Date.now() - started });
    const messages = listOf(listed.map((m, i) => ({ uidl: m.uidl, size: sizes[i]! })));
    return new FilteredDrop(inner, user, opts, messages, keys, cache);
  }

  async read(index: number): Promise<Readable> {
    const msg = { size: this.inner.messages.size(index), uidl: this.inner.messages.uidl(index) };
    let out: Buffer;
    try {
      out = await runFilter(this.spec, await this.inner.read(index), envFor(this.user, msg, index));
    } catch (err) {
      if (err instanceof FilterError) logFailure(err, this.user, index, 'retr');
      throw err;
    }
    const size = wireSize(out);
    if (size !== this.messages.size(index)) {
      this.cache.forget(this.keys[index]!);
      this.cache.save(new Set(this.keys));
      log.warn('message filter output changed size', { user: this.user, msg: index + 1, listed: this.messages.size(index), now: size });
      throw new FilterError('exit', 'message filter output differs from the size listed; try again in a new session');
    }
    return Readable.from([out]);
  }

  update(req: UpdateRequest): Promise<UpdateOutcome> {
    return this.inner.update(req);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** What the filter can know about the message, through its environment. */
function envFor(user: string, msg: DropMessage, index: number): Record<string, string> {
  return { POPSPOOL_USER: user, POPSPOOL_UIDL: msg.uidl, POPSPOOL_MSG: String(index + 1) };
}

function logFailure(err: unknown, user: string, index: number, during: 'sizing' | 'retr'): void {
  if (err instanceof FilterError) {
    log.warn('message filter failed', { user, msg: index + 1, during, reason: err.reason, error: err.message, stderr: err.detail || undefined });
  }
}

/** Opens drops through the inner opener and wraps them in a FilteredDrop. */
export class FilteredOpener implements DropOpener {
  constructor(private readonly inner: DropOpener, private readonly opts: FilterOptions) {}

  async open(user: string): Promise<Drop> {
    const drop = await this.inner.open(user);
    try {
      return await FilteredDrop.wrap(drop, user, this.opts);
    } catch (err) {
      await drop.close();
      throw err;
    }
  }
}

/** The opener serve uses: `store` itself when no filter is configured. */
export function filterOpener(store: DropOpener, config: { readonly retrFilter: readonly string[]; readonly retrFilterTimeout: number; readonly retrFilterMaxBytes: number; readonly stateDir: string }): DropOpener {
  if (config.retrFilter.length === 0) return store;
  return new FilteredOpener(store, {
    argv: config.retrFilter,
    timeoutMs: config.retrFilterTimeout * 1000,
    maxBytes: config.retrFilterMaxBytes,
    cacheDir: path.join(config.stateDir, 'filter-cache'),
  });
}

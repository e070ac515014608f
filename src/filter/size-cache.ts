/**
 * The filtered-size cache: one small JSON file per user under state-dir/filter-cache/, mapping
 * (UIDL, stored size) to the octets the filtered message has on the wire, valid only for one
 * filter identity (its command line and the program file's inode, size and mtime). LIST/STAT
 * need every size at login; this makes the filter run over each message once, not per session.
 * It is a private file in state-dir, written atomically; a bad or foreign file is simply empty —
 * and every RETR re-checks the filtered size anyway, so no cache content can make us send a
 * message whose size differs from the one LIST reported.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Bumped when the file layout changes: an old file then reads as empty. */
const VERSION = 1;
/** Names that are safe as a file name (the drop opener already validated the user). */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/**
 * A filter's identity: its argv and, for the program file (argv[0], searched in PATH when it has
 * no slash), device, inode, size and mtime — replacing or editing the program invalidates every
 * cached size. A script run by an interpreter (`sh -c`, `python3 script.py`) is named in argv;
 * files it reads are not tracked: change the command line (or delete the cache) when they change.
 */
export function filterIdentity(argv: readonly string[]): string {
  const program = argv[0] ?? '';
  const where = program.includes('/') ? [program] : (process.env.PATH ?? '/usr/bin:/bin').split(':').map((d) => path.join(d || '.', program));
  let stamp = 'missing';
  for (const p of where) {
    try {
      const st = fs.statSync(p);
      if (!st.isFile()) continue;
      stamp = `${p}:${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
      break;
    } catch {
      // not here
    }
  }
  return createHash('sha256').update(JSON.stringify([argv, stamp])).digest('hex');
}

/** The key of one message: its UIDL and its stored (unfiltered) size. */
export const sizeKey = (uidl: string, rawSize: number): string => `${rawSize} ${uidl}`;

export class FilterSizeCache {
  private readonly sizes = new Map<string, number>();
  private dirty = false;

  private constructor(private readonly file: string | undefined, private readonly identity: string) {}

  /** Loads USER's cache for `identity`; anything unreadable or for another filter is empty. */
  static load(dir: string, user: string, identity: string): FilterSizeCache {
    const file = SAFE_NAME.test(user) && !user.includes('..') ? path.join(dir, user) : undefined;
    const cache = new FilterSizeCache(file, identity);
    if (!file) return cache;
    try {
      const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { v?: unknown; filter?: unknown; sizes?: unknown };
      if (doc.v !== VERSION || doc.filter !== identity || typeof doc.sizes !== 'object' || doc.sizes === null) return cache;
      for (const [k, v] of Object.entries(doc.sizes as Record<string, unknown>)) {
        if (Number.isSafeInteger(v) && (v as number) >= 0) cache.sizes.set(k, v as number);
      }
    } catch {
      // missing or corrupt: start empty
    }
    return cache;
  }

  get(key: string): number | undefined {
    return this.sizes.get(key);
  }

  set(key: string, size: number): void {
    if (this.sizes.get(key) === size) return;
    this.sizes.set(key, size);
    this.dirty = true;
  }

  forget(key: string): void {
    if (this.sizes.delete(key)) this.dirty = true;
  }

  get size(): number {
    return this.sizes.size;
  }

  /**
   * Writes the cache if it changed, keeping only `keep` (the keys of the drop now open: deleted
   * messages drop out). Temp file + rename; errors are returned, not thrown — the cache is an
   * optimisation and must never fail a session.
   */
  save(keep: ReadonlySet<string>): Error | undefined {
    for (const k of [...this.sizes.keys()]) {
      if (!keep.has(k)) {
        this.sizes.delete(k);
        this.dirty = true;
      }
    }
    if (!this.file || !this.dirty) return undefined;
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(tmp, JSON.stringify({ v: VERSION, filter: this.identity, sizes: Object.fromEntries(this.sizes) }), { mode: 0o600 });
      fs.renameSync(tmp, this.file);
      this.dirty = false;
      return undefined;
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      return err as Error;
    }
  }
}

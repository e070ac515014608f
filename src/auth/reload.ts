/**
 * Files the server re-reads when they change (the users file, the APOP secrets): one stat per
 * use, a reload when inode, size or mtime moved, and a broken new version reported once while
 * the last good one stays in force. Uses that come while a stat is under way share it: at 100
 * logins at once, one thread-pool round trip instead of one each, and a file changed meanwhile
 * is seen by the next stat.
 */
import type { BigIntStats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { ConfigError } from '../errors.js';
import { log } from '../obs/log.js';

export class ReloadingFile {
  private stamp = '';

  /**
   * @param what names the file in messages, e.g. "users file"
   * @param apply parses the text and installs it; throws (ConfigError) when it is not valid
   */
  constructor(
    readonly file: string,
    private readonly what: string,
    private readonly apply: (text: string, st: BigIntStats) => void,
  ) {}

  /** Reads the file now; throws ConfigError when it cannot be read or is not valid. */
  async load(): Promise<void> {
    let text: string;
    let st: BigIntStats;
    try {
      st = await stat(this.file, { bigint: true });
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read ${this.what} ${this.file}: ${(e as Error).message}`);
    }
    this.apply(text, st);
    this.stamp = stampOf(st);
  }

  /** Reloads when the file changed since the last load (a check under way is shared); never throws. */
  refresh(): Promise<void> {
    this.checking ??= this.check().finally(() => {
      this.checking = null;
    });
    return this.checking;
  }

  private checking: Promise<void> | null = null;

  private async check(): Promise<void> {
    let st: BigIntStats;
    try {
      st = await stat(this.file, { bigint: true });
    } catch (e) {
      log.error(`${this.what} unreadable; keeping the loaded version`, { file: this.file, error: (e as Error).message });
      return;
    }
    if (stampOf(st) === this.stamp) return;
    try {
      await this.load();
      log.info(`${this.what} reloaded`, { file: this.file });
    } catch (e) {
      this.stamp = stampOf(st); // report a broken version once, not at every login
      log.error(`${this.what} invalid; keeping the loaded version`, { file: this.file, error: (e as Error).message });
    }
  }
}

function stampOf(st: BigIntStats): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}`;
}

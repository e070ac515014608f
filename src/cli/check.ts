/**
 * `popspool check SPOOL…`: a read-only health check of mbox spools. One pass per spool feeds
 * the real scanner (what the server would serve) and a line checker (what could go wrong),
 * under shared locks only: an fcntl read lock and a shared flock, both non-blocking and retried
 * until the lock timeout, so no writer (MDA, popspool, Qpopper) is mid-write while we read, and
 * no reader is excluded. The dotlock is never taken: creating it would block deliveries.
 * Nothing is ever written. Exit status: 0 clean, 1 anomalies, 2 a spool unreadable or busy.
 */
import fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { MboxFormatError } from '../errors.js';
import { dotlockPath, fcntlUnlock, isFcntlWriteLocked, parseDotlockContent, tryFcntlLock, tryFlock, flockUnlock } from '../lock/index.js';
import { FROM_LINE_MAX, MboxScanner, SCAN_CHUNK, isFromLine } from '../mbox/index.js';
import type { ScanResult } from '../mbox/types.js';

export const EXIT_CLEAN = 0;
export const EXIT_ANOMALIES = 1;
export const EXIT_UNREADABLE = 2;

/** Findings of one kind listed individually before "… and N more": enough to locate them. */
const MAX_LISTED = 10;
/** Spools at least this large get a progress bar (when stderr is a terminal). */
const PROGRESS_MIN_BYTES = 32 * 1024 * 1024;
/** liblockfile's and our own idea of an old dotlock (DESIGN.md §3). */
const DOTLOCK_STALE_MS = 5 * 60_000;

export interface CheckOptions {
  readonly strictFrom: boolean;
  /** popspool's state directory: look for leftover journals, images and copy-mode drops. */
  readonly stateDir?: string | undefined;
  readonly lockTimeoutMs: number;
  /** Progress bar stream (stderr when it is a terminal). */
  readonly progress?: NodeJS.WriteStream | undefined;
}

export interface Finding {
  readonly severity: 'anomaly' | 'note';
  readonly kind: string;
  readonly text: string;
}

export interface SpoolReport {
  readonly spool: string;
  readonly status: 'clean' | 'anomalies' | 'unreadable';
  readonly size: number;
  readonly messages?: number;
  readonly octets?: number;
  readonly largest?: number;
  readonly findings: Finding[];
}

/**
 * Looks at every line start without keeping lines: only the first FROM_LINE_MAX bytes of a line
 * that starts with "From " are held, so memory stays bounded on any input.
 */
class LineChecker {
  lines = 0;
  crlf = 0;
  nul = 0;
  ambiguous: string[] = [];
  ambiguousCount = 0;
  bodyFrom: string[] = [];
  bodyFromCount = 0;
  lastByte = -1;
  private pos = 0;
  private lineStart = 0;
  private prevEmpty = true; // the first line counts as "after an empty line"
  private head: Buffer[] = [];
  private headLen = 0;
  private lineLen = 0;

  push(chunk: Buffer): void {
    let i = 0;
    this.nul += countByte(chunk, 0);
    while (i < chunk.length) {
      const nl = chunk.indexOf(0x0a, i);
      const end = nl < 0 ? chunk.length : nl;
      if (this.headLen < FROM_LINE_MAX + 2 && end > i) {
        const part = chunk.subarray(i, Math.min(end, i + FROM_LINE_MAX + 2 - this.headLen));
        this.head.push(Buffer.from(part));
        this.headLen += part.length;
      }
      this.lineLen += end - i;
      if (nl < 0) break;
      this.endLine(nl > i ? chunk[nl - 1] === 0x0d : this.lineLen > 0 && this.lastByte === 0x0d);
      i = nl + 1;
      this.lineStart = this.pos + i;
    }
    this.pos += chunk.length;
    if (chunk.length) this.lastByte = chunk[chunk.length - 1]!;
  }

  finish(): void {
    if (this.lineLen > 0) this.endLine(false);
  }

  private endLine(cr: boolean): void {
    this.lines++;
    if (cr) this.crlf++;
    const head = Buffer.concat(this.head);
    const text = head.subarray(0, Math.max(0, head.length - (cr ? 1 : 0)));
    const empty = this.lineLen === 0 || (cr && this.lineLen === 1);
    if (isFromLine(text, false)) {
      const strict = isFromLine(text, true);
      const where = `line ${this.lines} (offset ${this.lineStart})`;
      const shown = JSON.stringify(text.subarray(0, 60).toString('latin1'));
      if (this.prevEmpty && !strict && this.lines > 1) {
        this.ambiguousCount++;
        if (this.ambiguous.length < MAX_LISTED) this.ambiguous.push(`${where}: ${shown}`);
      } else if (!this.prevEmpty && strict) {
        this.bodyFromCount++;
        if (this.bodyFrom.length < MAX_LISTED) this.bodyFrom.push(`${where}: ${shown}`);
      }
    }
    this.prevEmpty = empty;
    this.head = [];
    this.headLen = 0;
    this.lineLen = 0;
  }
}

function countByte(b: Buffer, v: number): number {
  let n = 0;
  for (let i = b.indexOf(v); i >= 0; i = b.indexOf(v, i + 1)) n++;
  return n;
}

function listed(items: string[], total: number): string {
  const more = total - items.length;
  return items.map((s) => `\n      ${s}`).join('') + (more > 0 ? `\n      … and ${more} more` : '');
}

/** Take the shared locks, retrying non-blocking attempts with a random 0.1–1 s back-off. */
async function lockShared(fd: number, timeoutMs: number): Promise<{ flock: boolean; fcntl: boolean } | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fcntl = tryFcntlLock(fd, true);
    const flock = fcntl ? await tryFlock(fd, true).catch(() => true) : false;
    if (fcntl && flock) return { fcntl, flock };
    if (fcntl) fcntlUnlock(fd);
    if (Date.now() >= deadline) return null;
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 900));
  }
}

async function dotlockFinding(spool: string): Promise<Finding | null> {
  const lockPath = dotlockPath(spool);
  let st: fs.Stats;
  let content: string;
  try {
    st = fs.lstatSync(lockPath);
    if (!st.isFile()) return { severity: 'anomaly', kind: 'dotlock', text: `${lockPath} exists and is not a regular file` };
    content = fs.readFileSync(lockPath, 'latin1').slice(0, 200);
  } catch {
    return null;
  }
  const { pid, host } = parseDotlockContent(content);
  const ageS = Math.round((Date.now() - st.mtimeMs) / 1000);
  const local = host === null || host === hostname();
  if (pid !== null && local) {
    try {
      process.kill(pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') {
        return { severity: 'anomaly', kind: 'dotlock', text: `stale dotlock ${lockPath}: pid ${pid} is not running (age ${ageS} s); MDAs may wait or refuse delivery until it is removed` };
      }
    }
    return { severity: 'note', kind: 'dotlock', text: `dotlock ${lockPath} held by running pid ${pid} (age ${ageS} s)` };
  }
  if (Date.now() - st.mtimeMs > DOTLOCK_STALE_MS && !(await isFcntlWriteLocked(spool))) {
    return { severity: 'anomaly', kind: 'dotlock', text: `stale dotlock ${lockPath}: unchanged for ${ageS} s and the spool is not fcntl-locked${host ? ` (holder on ${host})` : ''}` };
  }
  return { severity: 'note', kind: 'dotlock', text: `dotlock ${lockPath} present (${content.trim() || 'empty'}, age ${ageS} s)` };
}

function leftovers(spool: string, stateDir: string): Finding[] {
  const user = path.basename(spool);
  const out: Finding[] = [];
  const journalDir = path.join(stateDir, 'journal');
  const exists = (p: string) => fs.existsSync(p);
  const journal = path.join(journalDir, `${user}.journal`);
  if (exists(journal)) out.push({ severity: 'anomaly', kind: 'journal', text: `leftover journal ${journal}: an update was interrupted; popspool completes it at start-up or at ${user}'s next login` });
  const drop = path.join(stateDir, 'drops', `${user}.pop`);
  if (exists(drop)) out.push({ severity: 'anomaly', kind: 'temp-drop', text: `leftover copy-mode temp drop ${drop}: it may hold ${user}'s only copy of some mail; popspool merges it back at start-up or at the next login` });
  let names: string[] = [];
  try {
    names = fs.readdirSync(journalDir);
  } catch {
    /* no journal directory */
  }
  for (const n of names) {
    if (n.startsWith(`${user}.`) && n.endsWith('.image')) out.push({ severity: 'anomaly', kind: 'image', text: `leftover update image ${path.join(journalDir, n)}` });
  }
  return out;
}

function progressBar(out: NodeJS.WriteStream, name: string, total: number): (done: number) => void {
  let last = 0;
  const started = Date.now();
  return (done) => {
    const now = Date.now();
    if (now - last < 100 && done < total) return;
    last = now;
    const width = 30;
    const frac = total ? done / total : 1;
    const mibs = done / 1048576 / Math.max(0.001, (now - started) / 1000);
    out.write(`\r${path.basename(name)} [${'#'.repeat(Math.round(frac * width)).padEnd(width, '.')}] ${(frac * 100).toFixed(0).padStart(3)}% ${mibs.toFixed(0)} MiB/s`);
    if (done >= total) out.write('\n');
  };
}

export async function checkSpool(spool: string, opts: CheckOptions): Promise<SpoolReport> {
  const findings: Finding[] = [];
  const unreadable = (text: string): SpoolReport => ({ spool, status: 'unreadable', size: 0, findings: [{ severity: 'anomaly', kind: 'unreadable', text }] });
  let fd: number;
  try {
    // Read-only; O_NONBLOCK so a FIFO planted at the path cannot hang us.
    fd = fs.openSync(spool, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (e) {
    return unreadable(`cannot open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return unreadable('not a regular file');
    const locks = await lockShared(fd, opts.lockTimeoutMs);
    if (!locks) return unreadable(`busy: a writer held the spool lock for ${opts.lockTimeoutMs / 1000} s`);
    const size = fs.fstatSync(fd).size;
    const scanner = new MboxScanner({ strictFrom: opts.strictFrom });
    const lines = new LineChecker();
    let scan: ScanResult | null = null;
    let scanError: string | null = null;
    const bar = opts.progress && size >= PROGRESS_MIN_BYTES ? progressBar(opts.progress, spool, size) : undefined;
    const buf = Buffer.allocUnsafe(SCAN_CHUNK);
    let pos = 0;
    try {
      while (pos < size) {
        const n = fs.readSync(fd, buf, 0, Math.min(SCAN_CHUNK, size - pos), pos);
        if (n === 0) break;
        const chunk = buf.subarray(0, n);
        if (scanError === null) {
          try {
            scanner.push(chunk);
          } catch (e) {
            if (!(e instanceof MboxFormatError)) throw e;
            scanError = e.message;
          }
        }
        lines.push(chunk);
        pos += n;
        bar?.(pos);
      }
      lines.finish();
      if (scanError === null) scan = scanner.finish();
    } catch (e) {
      return unreadable(`read failed at offset ${pos}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    } finally {
      if (locks.fcntl) fcntlUnlock(fd);
      if (locks.flock) await flockUnlock(fd).catch(() => undefined);
    }
    if (scanError !== null) {
      findings.push({ severity: 'anomaly', kind: 'garbage', text: `garbage before the first From_ line (${scanError}); popspool refuses to serve this spool` });
    }
    if (lines.ambiguousCount) {
      findings.push({ severity: 'anomaly', kind: 'ambiguous-from', text: `${lines.ambiguousCount} "From " line(s) after an empty line that do not look like From_ lines: loose mode (the default) starts a message there, strict-from does not${listed(lines.ambiguous, lines.ambiguousCount)}` });
    }
    if (lines.bodyFromCount) {
      findings.push({ severity: 'anomaly', kind: 'unquoted-from', text: `${lines.bodyFromCount} unquoted From_-like line(s) inside messages: popspool keeps them as body text, but readers that do not require an empty line before From_ would split there${listed(lines.bodyFrom, lines.bodyFromCount)}` });
    }
    if (lines.crlf > 0) {
      const mixed = lines.crlf < lines.lines;
      findings.push({ severity: 'anomaly', kind: 'crlf', text: mixed ? `mixed line endings: ${lines.crlf} of ${lines.lines} lines end in CRLF` : `CRLF line endings (all ${lines.lines} lines): served correctly, but Unix mbox tools expect LF` });
    }
    if (size > 0 && lines.lastByte !== 0x0a) findings.push({ severity: 'anomaly', kind: 'no-final-newline', text: 'the last line has no newline: the next delivery may be glued to it by an MDA that does not check' });
    if (lines.nul > 0) findings.push({ severity: 'note', kind: 'nul', text: `${lines.nul} NUL byte(s): served as stored; some clients drop them` });
    const dl = await dotlockFinding(spool);
    if (dl) findings.push(dl);
    if (opts.stateDir) findings.push(...leftovers(spool, opts.stateDir));
    const anomalies = findings.some((f) => f.severity === 'anomaly');
    const msgs = scan?.messages;
    return {
      spool, size, findings, status: anomalies ? 'anomalies' : 'clean',
      ...(msgs ? { messages: msgs.length, octets: msgs.reduce((a, m) => a + m.size, 0), largest: msgs.reduce((a, m) => Math.max(a, m.size), 0) } : {}),
    };
  } finally {
    fs.closeSync(fd);
  }
}

export function formatReport(r: SpoolReport): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const head = r.status === 'unreadable' ? `${r.spool}: UNREADABLE`
    : r.messages === undefined ? `${r.spool}: ${n(r.size)} bytes, not servable`
      : `${r.spool}: ${n(r.messages)} messages, ${n(r.size)} bytes (POP3 octets ${n(r.octets!)}, largest ${n(r.largest!)})`;
  const body = r.findings.map((f) => `  ${f.severity}: ${f.text}`);
  return [head + (r.status === 'clean' ? ' — clean' : ''), ...body].join('\n') + '\n';
}

/** Checks every spool in turn; returns the exit status (the worst one). */
export async function checkCommand(spools: readonly string[], opts: CheckOptions & { json?: boolean }): Promise<number> {
  let status = EXIT_CLEAN;
  const reports: SpoolReport[] = [];
  for (const spool of spools) {
    const r = await checkSpool(spool, opts);
    reports.push(r);
    if (!opts.json) process.stdout.write(formatReport(r));
    status = Math.max(status, r.status === 'unreadable' ? EXIT_UNREADABLE : r.status === 'anomalies' ? EXIT_ANOMALIES : EXIT_CLEAN);
  }
  if (opts.json) process.stdout.write(JSON.stringify(reports, null, 2) + '\n');
  return status;
}

/**
 * The update scenarios the fault-injection and ENOSPC tests run through every step of
 * (DESIGN.md §4), and the oracle they are checked against: a crash may leave the spool as
 * before the QUIT or as after it — plus mail delivered meanwhile — and nothing else.
 */
import fs from 'node:fs';
import { expect } from 'chai';
import { message, runWorker, Sandbox, splitMbox } from './spool-support.js';
import type { WorkerArgs } from './spool-worker.js';

export interface FaultCase {
  readonly name: string;
  readonly initial: string;
  readonly args: Omit<WorkerArgs, 'spool' | 'user' | 'stateDir'>;
  /** Named fault points this case must pass through. */
  readonly steps: readonly string[];
}

const M = ['a', 'b', 'c', 'd', 'e', 'f'].map((id, i) => message(`${id}-${i}`, { bodyLines: 2 + 5 * i, status: i === 4 ? 'O' : undefined }));
const INITIAL = M.join('');
const ALL = [0, 1, 2, 3, 4, 5];
export const APPENDED_IN_SESSION = message('in-session', { bodyLines: 3 });

const SERVER_REWRITE = ['image-built', 'journal-prepared', 'image-copied', 'end-marked', 'spool-truncated', 'journal-removed'];
const SERVER_GROW = ['image-built', 'journal-prepared', 'spool-extended', 'image-copied', 'spool-truncated', 'journal-removed'];
const COPY_OPEN = ['drop-copied', 'spool-emptied'];
const COPY_BACK = ['copy-image-built', 'journal-prepared', 'spool-extended', 'image-copied', 'spool-truncated', 'journal-removed'];

export const FAULT_CASES: readonly FaultCase[] = [
  { name: 'server general', initial: INITIAL, steps: SERVER_REWRITE,
    args: { mode: 'server', action: 'update', read: [0, 1], deleted: [1, 3] } },
  { name: 'server general, holdLock', initial: INITIAL, steps: SERVER_REWRITE,
    args: { mode: 'server', holdLock: true, action: 'update', deleted: [0, 4], appendAfterOpen: APPENDED_IN_SESSION } },
  { name: 'server delete-all', initial: INITIAL, steps: ['before-truncate'],
    args: { mode: 'server', action: 'update', deleted: ALL } },
  { name: 'server delete-all + appended', initial: INITIAL, steps: SERVER_REWRITE,
    args: { mode: 'server', action: 'update', deleted: ALL, appendAfterOpen: APPENDED_IN_SESSION } },
  { name: 'server flags', initial: INITIAL, steps: SERVER_GROW,
    args: { mode: 'server', statusUpdate: true, action: 'update', seen: [1, 2, 4] } },
  { name: 'server flags + delete', initial: INITIAL, steps: SERVER_REWRITE,
    args: { mode: 'server', statusUpdate: true, holdLock: true, action: 'update', deleted: [0, 5], seen: [2, 3] } },
  { name: 'copy general', initial: INITIAL, steps: [...COPY_OPEN, ...COPY_BACK],
    args: { mode: 'copy', action: 'update', read: [2], deleted: [1, 3], appendAfterOpen: APPENDED_IN_SESSION } },
  { name: 'copy delete-all', initial: INITIAL, steps: [...COPY_OPEN, 'copy-image-built', 'journal-prepared', 'image-copied', 'spool-truncated', 'journal-removed'],
    args: { mode: 'copy', action: 'update', deleted: ALL, appendAfterOpen: APPENDED_IN_SESSION } },
  { name: 'copy flags', initial: INITIAL, steps: [...COPY_OPEN, ...COPY_BACK],
    args: { mode: 'copy', statusUpdate: true, action: 'update', seen: [0, 1, 2] } },
  { name: 'copy no QUIT', initial: INITIAL, steps: [...COPY_OPEN, ...COPY_BACK],
    args: { mode: 'copy', action: 'close', appendAfterOpen: APPENDED_IN_SESSION } },
];

/** Runs the case without a fault: the spool as a completed QUIT leaves it. */
export async function referenceAfter(c: FaultCase): Promise<string> {
  const sb = new Sandbox();
  try {
    sb.write(c.initial);
    const r = await runWorker(sb.workerArgs(c.args));
    if (r.code !== 0 || !r.done) throw new Error(`reference run of ${c.name} failed: ${JSON.stringify(r.events)} ${r.stderr}`);
    return sb.read().toString('latin1');
  } finally {
    await sb.cleanup();
  }
}

/** The spool as before the QUIT: the initial spool, plus what the session appended (if it got that far). */
export function beforeOf(c: FaultCase, opened: boolean): string {
  return c.initial + (opened && c.args.appendAfterOpen ? c.args.appendAfterOpen : '');
}

/**
 * The spool must be exactly `before + tail` or `after + tail`: all deletions or none, every
 * survivor once and in order, and the later mail behind them. Returns which.
 */
export function expectOneOf(actual: Buffer, before: string, after: string, tail: string, what: string): 'before' | 'after' {
  const s = actual.toString('latin1');
  if (s === after + tail) return 'after';
  if (s === before + tail) return 'before';
  const got = splitMbox(s).map((m) => m.split('\n')[0]);
  expect.fail(`${what}: the spool is neither the old nor the new state plus the delivered mail.\n` +
    `got messages: ${JSON.stringify(got)}\nbefore: ${JSON.stringify(splitMbox(before + tail).map((m) => m.split('\n')[0]))}\n` +
    `after: ${JSON.stringify(splitMbox(after + tail).map((m) => m.split('\n')[0]))}`);
}

/**
 * What recovery must leave in the state directory: no journal, no temp drop. Tolerated cruft
 * (reported, harmless): `*.tmp` files of a crashed write, a `.pop.meta` whose drop was never
 * renamed into place (removed at that user's next login, not by recoverAll), and orphan images
 * when recovery ran at login rather than at start-up (`imagesOk`).
 */
export async function expectNoPending(sb: Sandbox, imagesOk: boolean, what: string): Promise<void> {
  const files = await sb.pendingFiles();
  const left = files.filter((f) => !f.endsWith('.tmp'))
    .filter((f) => !(f.endsWith('.pop.meta') && !files.includes(f.slice(0, -'.meta'.length))))
    .filter((f) => !(imagesOk && f.endsWith('.image')));
  expect(left, `${what}: leftover state files`).to.deep.equal([]);
}

export function exists(p: string): boolean {
  return fs.existsSync(p);
}

/**
 * Mocha root setup.
 *
 * - In-process servers log through the global winston logger; keep test output readable unless
 *   POPSPOOL_TEST_LOG=1 (child-process servers log to their own stderr).
 * - Every temporary file of the run goes under one directory of its own: TMPDIR points there
 *   (os.tmpdir() reads it on every call, and child processes inherit it), and the directory is
 *   removed when the run ends. Work a server leaves running after its reply (a cache file
 *   written after the login +OK) may land after a test removed its own directory and recreate
 *   it; this way nothing a run creates outlives it. POPSPOOL_TEST_KEEP_TMP=1 keeps it (its path
 *   is printed) for a look after a failure.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { log } from '../src/obs/log.js';
import { backgroundSettled } from '../src/spool/background.js';

if (!process.env.POPSPOOL_TEST_LOG) log.silent = true;

const runTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-test-'));
// Like /tmp: tests that drop privileges hand their children paths under it.
fs.chmodSync(runTmp, 0o1777);
process.env.TMPDIR = runTmp;

function removeRunTmp(): void {
  if (process.env.POPSPOOL_TEST_KEEP_TMP) return;
  fs.rmSync(runTmp, { recursive: true, force: true });
}

if (process.env.POPSPOOL_TEST_KEEP_TMP) console.log(`temporary files of this run: ${runTmp}`);
// Last resort for whatever lands after the root hook (the exit handler must be synchronous).
process.on('exit', removeRunTmp);

export const mochaHooks = {
  async afterAll(): Promise<void> {
    await backgroundSettled();
    removeRunTmp();
  },
};

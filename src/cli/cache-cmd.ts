/**
 * `popspool cache show|rebuild USER`: inspect a user's scan cache against the spool as it is
 * now (read-only), or rebuild it under the spool lock, exactly as a login would. Uses the
 * server's own SpoolContext, so the cache tag (scanner version, strict-from) is the server's.
 */
import fs from 'node:fs';
import type { Config } from '../config/settings.js';
import { stampOf } from '../spool/cache.js';
import { journalPathFor } from '../spool/journal.js';
import { scanLocked } from '../spool/server-drop.js';
import { storeFor } from './serve.js';

export async function cacheCommand(action: 'show' | 'rebuild', user: string, config: Config): Promise<number> {
  const ctx = storeFor(config).ctx;
  const spool = ctx.spoolPath(user);
  const cacheFile = ctx.cache.path(user);
  if (action === 'show') return show(ctx, user, spool, cacheFile);
  if (fs.existsSync(journalPathFor(ctx.dirs.journal, user))) {
    console.error(`popspool: ${user} has an interrupted update pending; it is completed at server start or at the next login, not rebuilt here`);
    return 1;
  }
  const fd = await ctx.openSpool(spool);
  if (fd === null) {
    console.error(`popspool: ${spool} does not exist (an empty maildrop needs no cache)`);
    return 1;
  }
  try {
    const lock = await ctx.lockSpool(fd, spool);
    try {
      fs.rmSync(cacheFile, { force: true });
      const { state } = await scanLocked(ctx, user, fd);
      console.log(`rebuilt ${cacheFile}: ${state.scan.messages.length} messages, ${state.scan.scanEnd} bytes scanned`);
    } finally {
      await lock.release();
    }
  } finally {
    fs.closeSync(fd);
  }
  return 0;
}

async function show(ctx: ReturnType<typeof storeFor>['ctx'], user: string, spool: string, cacheFile: string): Promise<number> {
  let cst: fs.Stats | undefined;
  try {
    cst = fs.statSync(cacheFile);
  } catch {
    /* absent */
  }
  console.log(`cache file: ${cacheFile}${cst ? ` (${cst.size} bytes, written ${cst.mtime.toISOString()})` : ' (absent)'}`);
  let fd: number;
  try {
    fd = fs.openSync(spool, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    console.log(`spool: ${spool} (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})`);
    return 1;
  }
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    console.log(`spool: ${spool} (${st.size} bytes, inode ${st.ino})`);
    const found = await ctx.cache.lookup(user, fd, stampOf(st));
    if (found.kind === 'miss') {
      console.log(`lookup: miss — ${found.reason} (the next login scans the whole spool)`);
      return 0;
    }
    const scan = found.kind === 'hit' ? found.scan : found.prefix;
    const octets = scan.messages.reduce((a, m) => a + m.size, 0);
    console.log(found.kind === 'hit'
      ? `lookup: hit — ${scan.messages.length} messages, ${octets} octets; the next login reads no spool bytes`
      : `lookup: tail — ${scan.messages.length} cached messages up to offset ${scan.scanEnd}; the next login scans only the ${st.size - BigInt(scan.scanEnd)} appended bytes`);
    return 0;
  } finally {
    fs.closeSync(fd);
  }
}

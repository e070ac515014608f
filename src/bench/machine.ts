/**
 * What the report says about the machine: CPU, memory, kernel, node, the peers' versions, and
 * what durability costs on the bench's spool filesystem (fsync latencies), from which the
 * report derives what popspool's crash-safety journal costs per update.
 */
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** fsync latencies measured in one directory (milliseconds, medians). */
export interface FsyncProbe {
  readonly fsType: string;
  /** Write 200 bytes to a file and fsync it. */
  readonly fileMs: number;
  /** A journal state change as journal.ts writes it: temp file + fsync + rename + directory fsync. */
  readonly stateMs: number;
  /** Writing and fdatasyncing BULK_MB of data, per MB (what the image and the spool rewrite pay per byte). */
  readonly bulkMsPerMb: number;
  readonly samples: number;
}

export interface MachineInfo {
  nproc: string;
  free: string;
  uname: string;
  node: string;
  cpu: string;
  peerVersions: Record<string, string>;
  fsync?: FsyncProbe;
}

/** Samples per fsync measurement: enough for a stable median, about a second on a slow disk. */
const FSYNC_SAMPLES = 50;
/** Size of the bulk write+sync probe, and how often it runs: about the 1k mailbox's rewritten tail. */
const BULK_MB = 8;
const BULK_SAMPLES = 7;

function sh(cmd: string): string {
  try {
    return execSync(cmd, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '(unavailable)';
  }
}

export function machine(): MachineInfo {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? '?';
  return { nproc: sh('nproc'), free: sh('free -h'), uname: sh('uname -a'), node: process.version, cpu, peerVersions: {} };
}

export function peerVersion(name: string, bin: string): string {
  const args = name === 'dovecot' ? ['--version'] : name === 'mailutils' ? ['--version'] : ['-V'];
  try {
    return execSync([bin, ...args].join(' ') + ' 2>&1', { encoding: 'utf8', timeout: 5000 }).split('\n')[0]!.trim();
  } catch (err) {
    const out = String((err as { stdout?: string }).stdout ?? '').split('\n')[0]!.trim();
    return out || 'version unknown';
  }
}

function medianMs(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Times FSYNC_SAMPLES small-file fsyncs and journal-style state changes, and a bulk write + sync, in `dir`. */
export function probeFsync(dir: string): FsyncProbe {
  const file = path.join(dir, '.fsync-probe');
  const tmp = `${file}.tmp`;
  const payload = Buffer.alloc(200, 0x61);
  const fileTimes: number[] = [];
  const stateTimes: number[] = [];
  const bulkTimes: number[] = [];
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  try {
    for (let i = 0; i < FSYNC_SAMPLES; i++) {
      let t = now();
      const fd = fs.openSync(file, 'w', 0o600);
      fs.writeSync(fd, payload, 0, payload.length, 0);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fileTimes.push(now() - t);
      t = now();
      const tfd = fs.openSync(tmp, 'w', 0o600);
      fs.writeSync(tfd, payload, 0, payload.length, 0);
      fs.fsyncSync(tfd);
      fs.closeSync(tfd);
      fs.renameSync(tmp, file);
      const dfd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      fs.fsyncSync(dfd);
      fs.closeSync(dfd);
      stateTimes.push(now() - t);
    }
    const bulk = Buffer.alloc(BULK_MB << 20, 0x62);
    for (let i = 0; i < BULK_SAMPLES; i++) {
      const t = now();
      const fd = fs.openSync(file, 'w', 0o600);
      fs.writeSync(fd, bulk, 0, bulk.length, 0);
      fs.fdatasyncSync(fd);
      fs.closeSync(fd);
      bulkTimes.push((now() - t) / BULK_MB);
    }
  } finally {
    fs.rmSync(file, { force: true });
    fs.rmSync(tmp, { force: true });
  }
  return { fsType: sh(`stat -f -c %T ${JSON.stringify(dir)}`), fileMs: medianMs(fileTimes), stateMs: medianMs(stateTimes), bulkMsPerMb: medianMs(bulkTimes), samples: FSYNC_SAMPLES };
}

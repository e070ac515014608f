/**
 * Scanner throughput benchmark (not a test): `node dist/src/mbox/scan-bench.js FILE [--gen
 * headers|mix] [--mb N] [--runs N] [--impl PATH]`. With --gen it first writes a deterministic
 * synthetic spool to FILE (unless FILE already has the requested size), then scans FILE with
 * scanFd and prints MB/s, the median of --runs runs (default 5), and the process CPU time.
 * --impl PATH also loads scanFd from another compiled scanner module and alternates the two
 * run by run, so a before/after comparison on a busy machine sees the same load;
 * --offload-compare likewise compares the worker thread's help (split, or the sums offloaded)
 * against a scan on this thread alone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { scanFd as ownScanFd } from './scan-fd.js';
import type { ScanOptions, ScanResult } from './types.js';

type ScanFd = (fd: number, start: number, end: number, opts: ScanOptions) => Promise<ScanResult>;

/** Deterministic PRNG (mulberry32), so every generated spool is byte-identical run to run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = 'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there had all one their we can more when'.split(' ');
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function textLine(r: () => number, max = 72): string {
  let s = '';
  while (s.length < max - 12) s += WORDS[Math.floor(r() * WORDS.length)]! + ' ';
  // Some body lines start with "From " or "F", and a few are quoted ">From ".
  const k = r();
  return k < 0.01 ? 'From ' + s : k < 0.02 ? '>From ' + s : s;
}

/** Realistic header block: several Received hops, DKIM (folded), the usual fields. */
function headers(r: () => number, n: number, hops: number): string {
  const id = `${n.toString(36)}.${Math.floor(r() * 1e9).toString(36)}`;
  let h = `Return-Path: <user${n % 97}@example.org>\nX-Original-To: alice@example.com\nDelivered-To: alice@example.com\n`;
  for (let k = 0; k < hops; k++) {
    h += `Received: from mx${k}.example.net (mx${k}.example.net [192.0.2.${(n + k) % 250}])\n\tby mail.example.com (Postfix) with ESMTPS id ${id}${k}\n\tfor <alice@example.com>; Tue, 4 Jun 2024 10:${String(k % 60).padStart(2, '0')}:00 +0200 (CEST)\n`;
  }
  h += `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=s1;\n\th=from:to:subject:date:message-id; bh=${'x'.repeat(44)};\n\tb=${'Q'.repeat(70)}\n\t ${'Z'.repeat(70)}\n`;
  h += `Date: Tue, 4 Jun 2024 10:00:${String(n % 60).padStart(2, '0')} +0200\nFrom: Someone ${n % 97} <user${n % 97}@example.org>\nTo: Alice <alice@example.com>\n`;
  h += `Subject: ${textLine(r, 50)}\nMessage-ID: <${id}@example.net>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n`;
  h += `X-Spam-Status: No, score=-0.1 required=5.0 tests=DKIM_SIGNED,DKIM_VALID autolearn=ham\n`;
  if (r() < 0.3) h += 'Status: RO\n';
  return h;
}

function message(r: () => number, n: number, bodyBytes: number, base64: boolean, hops: number): string {
  let s = `From user${n % 97}@example.org Tue Jun  4 10:00:${String(n % 60).padStart(2, '0')} 2024\n` + headers(r, n, hops) + '\n';
  let body = '';
  if (base64) {
    body += 'A short note, the attachment follows.\n\n--b1\nContent-Transfer-Encoding: base64\n\n';
    let line = '';
    for (let k = 0; k < 76; k++) line += B64[Math.floor(r() * 64)]!;
    const rows = Math.ceil(bodyBytes / 77);
    for (let k = 0; k < rows; k++) body += (k % 7 === 0 ? line.slice(1) + 'A' : line) + '\n';
    body += '--b1--\n';
  } else {
    while (body.length < bodyBytes) {
      body += textLine(r) + '\n';
      if (r() < 0.15) body += '\n'; // paragraphs
    }
  }
  return s + body + '\n';
}

/** Write a synthetic spool of about `mb` MB: `headers` = ~4 KB header-heavy messages; `mix` =
 *  mostly 2–20 KB messages, 3% with 100 KB–1 MB base64 attachments. */
function generate(file: string, kind: 'headers' | 'mix', mb: number): void {
  const target = mb * 1e6;
  const r = rng(kind === 'headers' ? 1 : 2);
  const fd = fs.openSync(file, 'w');
  let written = 0;
  let parts: string[] = [];
  let partLen = 0;
  for (let n = 0; written + partLen < target; n++) {
    let m: string;
    if (kind === 'headers') m = message(r, n, 800 + Math.floor(r() * 1000), false, 6);
    else if (r() < 0.03) m = message(r, n, 100_000 + Math.floor(r() * 900_000), true, 3);
    else m = message(r, n, 1000 + Math.floor(r() * r() * 18_000), false, 3);
    parts.push(m);
    partLen += m.length;
    if (partLen > 8e6) {
      written += fs.writeSync(fd, Buffer.from(parts.join(''), 'latin1'));
      parts = [];
      partLen = 0;
    }
  }
  written += fs.writeSync(fd, Buffer.from(parts.join(''), 'latin1'));
  fs.closeSync(fd);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const k = args.indexOf(name);
    return k >= 0 ? args[k + 1] : undefined;
  };
  const file = args[0];
  if (file === undefined || file.startsWith('--')) {
    console.error('usage: scan-bench FILE [--gen headers|mix] [--mb N] [--runs N] [--impl PATH] [--offload-compare] [--strict]');
    process.exit(2);
  }
  const gen = opt('--gen');
  if (gen !== undefined) {
    if (gen !== 'headers' && gen !== 'mix') throw new Error(`--gen: headers or mix, not ${gen}`);
    const mb = Number(opt('--mb') ?? (gen === 'headers' ? 200 : 820));
    const have = fs.existsSync(file) ? fs.statSync(file).size : 0;
    if (Math.abs(have - mb * 1e6) > mb * 1e6 * 0.05) {
      console.log(`generating ${file} (${gen}, ~${mb} MB)…`);
      generate(file, gen, mb);
    }
  }
  const runs = Number(opt('--runs') ?? 5);
  const impl = opt('--impl');
  const scans: Array<[string, ScanFd]> = [['this scanner', ownScanFd]];
  if (args.includes('--offload-compare')) {
    scans.splice(0, 1, ['this thread alone', (fd, s, e, o) => ownScanFd(fd, s, e, o, Infinity)], ['with the worker', (fd, s, e, o) => ownScanFd(fd, s, e, o, 0)]);
  }
  if (impl !== undefined) {
    const other = ((await import(pathToFileURL(path.resolve(impl)).href)) as { scanFd: ScanFd }).scanFd;
    scans.unshift([impl, other]);
  }
  const opts: ScanOptions = { strictFrom: args.includes('--strict') };
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const wall = scans.map(() => [] as number[]);
    const cpu = scans.map(() => [] as number[]);
    let msgs = 0;
    for (const [, scan] of scans) await scan(fd, 0, size, opts); // warm-up (page cache, JIT)
    // Alternate the implementations run by run, so load from other processes hits both alike.
    for (let k = 0; k < runs; k++) {
      for (let j = 0; j < scans.length; j++) {
        const c0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        const res = await scans[j]![1](fd, 0, size, opts);
        wall[j]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
        const c = process.cpuUsage(c0);
        cpu[j]!.push((c.user + c.system) / 1000);
        msgs = res.messages.length;
      }
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const mbs = (ms: number): string => (size / 1e6 / (ms / 1000)).toFixed(0);
    console.log(`${path.basename(file)}: ${(size / 1e6).toFixed(0)} MB, ${msgs} messages, ${runs} runs`);
    scans.forEach(([name], j) => {
      const w = median(wall[j]!);
      console.log(
        `  ${name}: median ${w.toFixed(0)} ms = ${mbs(w)} MB/s (best ${mbs(Math.min(...wall[j]!))} MB/s; ` +
          `process CPU median ${median(cpu[j]!).toFixed(0)} ms; runs ${wall[j]!.map((t) => t.toFixed(0)).join(' ')})`,
      );
    });
  } finally {
    fs.closeSync(fd);
  }
}

await main();

/**
 * The scanner's JIT warm-up. A server that has just started runs the scanner's JavaScript in
 * V8's interpreter and its wasm kernels in the baseline compiler; they reach optimized code only
 * after tens of thousands of lines. Measured on the 865 MB 50k spool, fresh processes, 3 × 4 cold
 * sessions: the first cold session took 403–866 ms, the second 269–290 ms, the later ones
 * 195–228 ms. With this warm-up, 6 fresh servers alternating with 6 without: the first cold
 * session 298–432 ms (median ~320) against 399–497 ms (~465). It costs a starting server about
 * half a second of CPU over both threads (an idle server 4 s after start: 0.59–0.63 s of CPU
 * without it, 1.00–1.11 s with it), and ~8 MB of resident memory (87 → 96 MB idle), ~4 MB once
 * it has scanned a spool. (Over a 4 MiB spool, four
 * passes, the first session took 252–388 ms against 395–481, but the server kept ~21 MB more.) A daemon runs for weeks, so that is a cost of each restart, paid by whichever
 * user's mail happens to be scanned first. warmScanner() pays it at start-up instead: a few
 * passes of the real scanner, through the same kernel buffers a scan reads into, over a
 * synthetic spool built here (messages with the header fields the UIDL and the flags use, folded
 * lines, body lines that start with "From " or "." or ">From ", a few CRLF messages).
 *
 * The main thread runs it one chunk per turn of the event loop, so connections accepted
 * meanwhile are served; the scan worker runs it in one go when it starts (it has nothing else to
 * do yet). Nothing is read or written: the spool is made in memory.
 */
import { MboxScanner, SCAN_CHUNK } from './scanner.js';

/** Passes over the synthetic spool, and its size: enough for the functions a scan calls per line
 *  and per message to be optimized (16 × 1 MiB: ~12,000 messages, ~300,000 lines; twice as many
 *  were no better). A small spool passed over many times keeps the warm-up's own memory small:
 *  what it allocates stays in the heap it grows. */
const PASSES = 16;
const SPOOL_BYTES = 1024 * 1024;

/** A deterministic synthetic spool of about SPOOL_BYTES (made for a warm-up and dropped after it). */
export function warmupSpool(): Buffer {
  const words = 'the of and to in is that for it as was with be by on not this are or from at which'.split(' ');
  let seed = 1939;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const out = Buffer.allocUnsafe(SPOOL_BYTES + 8192);
  let size = 0;
  for (let k = 0; size < SPOOL_BYTES; k++) {
    const nl = k % 17 === 16 ? '\r\n' : '\n';
    const day = 1 + (k % 28);
    const lines = [
      `From sender${k % 97}@example.org Mon Nov ${day} 08:${String(k % 60).padStart(2, '0')}:00 2026`,
      `Received: from mx${k % 7}.example.org (mx.example.org [192.0.2.${k % 250}])`,
      `\tby mail.example.net with ESMTP id ${(k * 2654435761) >>> 0}`,
      `\tfor <user@example.net>; Mon, ${day} Nov 2026 08:00:00 +0000`,
      `Date: Mon, ${day} Nov 2026 08:00:00 +0000`,
      `Message-ID: <${k}.${(k * 40503) >>> 0}@example.org>`,
      `From: Sender ${k % 97} <sender${k % 97}@example.org>`,
      'To: user@example.net',
      `Subject: message ${k}`,
    ];
    if (k % 3 === 0) lines.push('Status: RO');
    if (k % 11 === 0) lines.push(`X-UIDL: warm${k}`);
    lines.push('');
    const body = 5 + rnd(40);
    for (let j = 0; j < body; j++) {
      const r = rnd(100);
      let text = '';
      while (text.length < 60) text += words[rnd(words.length)]! + ' ';
      lines.push(r === 0 ? `>From ${text}` : r === 1 ? `.${text}` : r === 2 ? '' : r === 3 ? `From ${text}` : text);
    }
    lines.push('');
    const msg = lines.join(nl) + nl;
    if (size + msg.length > out.length) break;
    size += out.write(msg, size, 'latin1');
  }
  return out.subarray(0, size);
}

/** One pass of the scanner over the synthetic spool, `chunk` bytes per push; `between` runs
 *  between pushes (the main thread yields to its event loop there). */
async function pass(src: Buffer, chunk: number, between: () => Promise<void> | void): Promise<number> {
  const scanner = new MboxScanner({ strictFrom: false, baseOffset: 0 });
  const size = Math.min(chunk, src.length);
  const buf = scanner.ioBuffersFromKernel(1, size)?.[0] ?? Buffer.allocUnsafe(size);
  for (let pos = 0; pos < src.length; pos += size) {
    const n = src.copy(buf, 0, pos, Math.min(src.length, pos + size));
    scanner.push(buf.subarray(0, n));
    await between();
  }
  return scanner.finish().messages.length;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The warm-up: PASSES passes, `chunk` bytes per push. The main thread yields to its event loop
 * between pushes (1 MiB: a few ms each once optimized, tens of ms before); the scan worker, which
 * has nothing else to do yet, passes `yieldBetween` false and its own read size. Resolves to the
 * number of messages the last pass framed.
 */
export async function warmScanner(chunk = SCAN_CHUNK / 4, yieldBetween = true): Promise<number> {
  const src = warmupSpool();
  let n = 0;
  for (let p = 0; p < PASSES; p++) n = await pass(src, chunk, yieldBetween ? yieldToLoop : () => undefined);
  return n;
}

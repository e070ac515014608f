/**
 * The scanner's start-up warm-up: its synthetic spool is a real mbox that exercises what a scan
 * does per header and body line, and the warm-up frames it as a scan in one piece does, on this
 * thread and in the scan worker.
 */
import { expect } from 'chai';
import { MboxScanner } from './scanner.js';
import { stopScanWorker, prewarmScanWorker } from './scan-worker.js';
import { warmScanner, warmupSpool } from './warmup.js';

describe('scanner warm-up', () => {
  const whole = (src: Buffer) => {
    const s = new MboxScanner({ strictFrom: false, baseOffset: 0 });
    s.push(src);
    return s.finish().messages;
  };

  it('builds a synthetic spool with the cases a scan meets', () => {
    const src = warmupSpool();
    expect(src.length).to.be.within(1024 * 1024, 1024 * 1024 + 8192);
    expect(warmupSpool().equals(src), 'deterministic').to.equal(true);
    const text = src.toString('latin1');
    for (const needle of ['\nReceived: ', '\n\tby ', '\nStatus: RO', '\nX-UIDL: ', '\n>From ', '\n.', '\r\n']) {
      expect(text.includes(needle), needle).to.equal(true);
    }
    const ms = whole(src);
    expect(ms.length).to.be.greaterThan(500);
    expect(ms.some((m) => m.status === 'RO')).to.equal(true);
    expect(ms.some((m) => m.uidlBase.startsWith('warm'))).to.equal(true);
  });

  it('frames the spool as one push does, in the chunk sizes of both threads', async () => {
    const want = whole(warmupSpool()).length;
    expect(await warmScanner()).to.equal(want);
    expect(await warmScanner(256 * 1024 + 7)).to.equal(want); // boundaries anywhere in a line
    expect(await warmScanner(256 * 1024, false)).to.equal(want);
  });

  it('runs in the scan worker without disturbing it', async function () {
    this.timeout(20_000);
    prewarmScanWorker();
    // The worker warms up in one go on its 'warm' message; a scan posted right after waits for it
    // and must still come back whole (scan-fd's split tests cover the scan itself).
    const { scanFd } = await import('./scan-fd.js');
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-warm-'));
    try {
      const file = path.join(dir, 'spool');
      const src = warmupSpool();
      fs.writeFileSync(file, src);
      const fd = fs.openSync(file, 'r');
      try {
        const r = await scanFd(fd, 0, src.length, { strictFrom: false }, 0); // offloadMin 0: split into the worker
        expect(r.messages.length).to.equal(whole(src).length);
      } finally {
        fs.closeSync(fd);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await stopScanWorker();
    }
  });
});

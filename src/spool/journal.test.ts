/**
 * The journal's image check: version 2 journals carry msum, version 1 journals (earlier
 * releases) crc32, and recovery must still finish a version 1 rewrite left behind by a crash
 * before an upgrade. The crash matrix itself is test/spool-faults.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { expect } from 'chai';
import { msum } from '../mbox/msum.js';
import { PopspoolError } from '../errors.js';
import { backgroundSettled } from './background.js';
import { journalPathFor, recoverJournal } from './journal.js';

const OLD = Buffer.from('From a\nkeep\n\nFrom b\ndelete me\n\nFrom c\nkeep too\n\n');
const W = OLD.indexOf('From b');
const IMAGE = Buffer.from('From c\nkeep too\n\n');

describe('spool journal: the image check', () => {
  let dir: string;
  let spool: string;
  let journal: string;
  let image: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-journal-'));
    spool = path.join(dir, 'u');
    journal = journalPathFor(dir, 'u');
    image = path.join(dir, `u.${process.pid}.abc.image`);
    fs.writeFileSync(spool, OLD);
    fs.writeFileSync(image, IMAGE);
  });
  afterEach(async () => {
    await backgroundSettled();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A journal file as writeJournal lays it out, for any record. */
  function writeRecord(fields: Record<string, unknown>): void {
    const st = fs.statSync(spool);
    const body = JSON.stringify({
      dev: String(st.dev), ino: String(st.ino), writeOffset: W, oldSize: OLD.length, newLength: IMAGE.length,
      imagePath: image, alsoRemove: [], state: 'prepared', ...fields,
    });
    fs.writeFileSync(journal, `popspool-journal ${zlib.crc32(body)} ${body}\n`);
  }

  async function recover(): Promise<string | PopspoolError> {
    const fd = fs.openSync(spool, 'r+');
    try {
      return await recoverJournal(journal, fd);
    } catch (err) {
      return err as PopspoolError;
    } finally {
      fs.closeSync(fd);
    }
  }

  const REWRITTEN = Buffer.concat([OLD.subarray(0, W), IMAGE]).toString();

  it('a version 2 journal (msum) is completed', async () => {
    writeRecord({ version: 2, imageSum: msum(IMAGE) });
    expect(await recover()).to.equal('recovered');
    expect(fs.readFileSync(spool, 'latin1')).to.equal(REWRITTEN);
    await backgroundSettled();
    expect(fs.readdirSync(dir)).to.deep.equal(['u']);
  });

  it('a version 1 journal (crc32) from an earlier release is still completed', async () => {
    writeRecord({ version: 1, imageCrc: zlib.crc32(IMAGE) });
    expect(await recover()).to.equal('recovered');
    expect(fs.readFileSync(spool, 'latin1')).to.equal(REWRITTEN);
  });

  it('mail appended after a version 1 crash goes behind the image', async () => {
    writeRecord({ version: 1, imageCrc: zlib.crc32(IMAGE) });
    const late = Buffer.from('From late\nnew\n\n');
    fs.appendFileSync(spool, late);
    expect(await recover()).to.equal('recovered');
    expect(fs.readFileSync(spool, 'latin1')).to.equal(REWRITTEN + late.toString());
    expect(fs.existsSync(journal)).to.equal(false);
  });

  for (const [what, fields] of [
    ['version 2, wrong msum', { version: 2, imageSum: (msum(IMAGE) ^ 1) >>> 0 }],
    ['version 1, wrong crc32', { version: 1, imageCrc: (zlib.crc32(IMAGE) ^ 1) >>> 0 }],
    ['version 2 carrying only a crc32', { version: 2, imageCrc: zlib.crc32(IMAGE) }],
  ] as const) {
    it(`${what}: SYS_TEMP, the spool untouched`, async () => {
      writeRecord(fields);
      const got = await recover();
      expect(got).to.be.instanceOf(PopspoolError);
      expect((got as PopspoolError).code).to.equal('SYS_TEMP');
      expect(fs.readFileSync(spool).equals(OLD)).to.equal(true);
    });
  }

  it('an image changed after its journal was written is refused (version 2)', async () => {
    writeRecord({ version: 2, imageSum: msum(IMAGE) });
    const bad = Buffer.from(IMAGE);
    bad[3] = 0x78;
    fs.writeFileSync(image, bad);
    const got = await recover();
    expect((got as PopspoolError).code).to.equal('SYS_TEMP');
    expect(fs.readFileSync(spool).equals(OLD)).to.equal(true);
  });
});

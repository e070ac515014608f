/** FilteredDrop over in-memory drops with a real shell-script filter: size cache, identity, failures. */
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MemoryDropOpener } from '../../test/helpers/memory-drop.js';
import { PopspoolError } from '../errors.js';
import { FilteredOpener, type FilterOptions } from './filtered-drop.js';
import { entries } from '../spool/message-list.js';

const MESSAGES = ['Subject: one\n\nbody 1\n', 'Subject: two\r\n\r\n.dot line\r\n', 'Subject: three\n\nno final newline'];

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('FilteredDrop', () => {
  let dir: string;
  let script: string;
  let counter: string;
  let opts: FilterOptions;
  const runs = (): number => (fs.existsSync(counter) ? fs.readFileSync(counter, 'utf8').length : 0);
  const writeScript = (tag: string): void => {
    fs.writeFileSync(script, `#!/bin/sh\nprintf x >> '${counter}'\nexec sed -e 's/^Subject:/Subject: ${tag}/'\n`, { mode: 0o755 });
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-filter-'));
    script = path.join(dir, 'filter.sh');
    counter = path.join(dir, 'runs');
    writeScript('[a]');
    opts = { argv: [script], timeoutMs: 5000, maxBytes: 1 << 20, cacheDir: path.join(dir, 'filter-cache') };
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('runs the filter once per message; the next open uses the cache; changing the program invalidates it', async () => {
    const opener = new FilteredOpener(new MemoryDropOpener({ u: MESSAGES }), opts);
    const d1 = await opener.open('u');
    expect(runs()).to.equal(3);
    const sizes = entries(d1.messages).map((m) => m.size);
    expect(sizes[0]).to.equal('Subject: [a] one\r\n\r\nbody 1\r\n'.length);
    expect(sizes[2]).to.equal('Subject: [a] three\r\n\r\nno final newline\r\n'.length);
    await d1.close();

    const d2 = await opener.open('u');
    expect(runs()).to.equal(3); // all from the cache
    expect(entries(d2.messages).map((m) => m.size)).to.deep.equal(sizes);
    const body = await readAll(await d2.read(1));
    expect(runs()).to.equal(4); // RETR runs it
    expect(body.toString()).to.equal('Subject: [a] two\r\n\r\n.dot line\r\n');
    await d2.close();

    writeScript('[longer]'); // new size and mtime: a new identity
    const d3 = await opener.open('u');
    expect(runs()).to.equal(7);
    expect(d3.messages.size(0)).to.equal(sizes[0]! + '[longer]'.length - '[a]'.length);
    await d3.close();
  });

  it('a corrupt cache file is ignored; a lying one never makes RETR send a mismatched message', async () => {
    const opener = new FilteredOpener(new MemoryDropOpener({ u: MESSAGES }), opts);
    await (await opener.open('u')).close();
    const file = path.join(opts.cacheDir, 'u');
    const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { sizes: Record<string, number> };
    for (const k of Object.keys(doc.sizes)) doc.sizes[k] = 7;
    fs.writeFileSync(file, JSON.stringify(doc));
    const lying = await opener.open('u');
    expect(lying.messages.size(0)).to.equal(7);
    let caught: unknown;
    try {
      await lying.read(0);
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(PopspoolError);
    expect((caught as PopspoolError).code).to.equal('SYS_TEMP');
    await lying.close();
    const fixed = await opener.open('u'); // the entry was forgotten: measured again
    expect(fixed.messages.size(0)).to.equal('Subject: [a] one\r\n\r\nbody 1\r\n'.length);
    await fixed.close();

    fs.writeFileSync(file, '{ not json');
    const d = await opener.open('u');
    expect(entries(d.messages).map((m) => m.size)).to.have.length(3);
    await d.close();
  });

  it('a failure while sizing closes the inner drop and rejects SYS_TEMP', async () => {
    const inner = new MemoryDropOpener({ u: MESSAGES });
    const opener = new FilteredOpener(inner, { ...opts, argv: ['/bin/sh', '-c', 'cat >/dev/null; echo oops >&2; exit 4'] });
    let caught: unknown;
    try {
      await opener.open('u');
    } catch (err) {
      caught = err;
    }
    expect((caught as PopspoolError).code).to.equal('SYS_TEMP');
    expect((caught as Error).message).to.equal('message filter failed (exit status 4)');
    expect(inner.opened[0]!.closes).to.equal(1);
    // The session lock was given back: the user can open again.
    await (await new FilteredOpener(inner, opts).open('u')).close();
  });
});

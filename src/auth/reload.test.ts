import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ReloadingFile } from './reload.js';

describe('ReloadingFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-reload-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('uses that come while a check is under way share it: one reload for many logins at once', async () => {
    const file = path.join(dir, 'users');
    fs.writeFileSync(file, 'one');
    const applied: string[] = [];
    const f = new ReloadingFile(file, 'users file', (text) => void applied.push(text));
    await f.load();
    expect(f.refresh()).to.equal(f.refresh());
    await Promise.all(Array.from({ length: 50 }, () => f.refresh()));
    expect(applied).to.deep.equal(['one']);
    fs.writeFileSync(file, 'two, longer');
    await Promise.all(Array.from({ length: 10 }, () => f.refresh()));
    expect(applied).to.deep.equal(['one', 'two, longer']);
    // A change after a shared check has finished is seen by the next one.
    fs.writeFileSync(file, 'three, longer still');
    await f.refresh();
    expect(applied).to.deep.equal(['one', 'two, longer', 'three, longer still']);
  });
});

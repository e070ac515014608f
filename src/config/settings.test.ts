import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.js';
import { buildConfig, parseHostPort } from './load.js';
import { renderConfigurationDoc } from './docs.js';
import { SETTINGS } from './settings.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function withFile(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-config-'));
  const file = path.join(dir, 'popspool.toml');
  fs.writeFileSync(file, text);
  return file;
}

describe('config', () => {
  it('defaults come from the settings table', () => {
    const c = buildConfig(undefined, {});
    expect(c.mode).to.equal('server');
    expect(c.locks).to.deep.equal(['fcntl', 'dotlock', 'flock']);
    expect(c.idleTimeout).to.equal(600);
    expect(c.spool).to.equal('/var/mail/%u');
  });

  it('flags win over the file, the file over defaults', () => {
    const file = withFile('mode = "copy"\nhold-lock = true\nlock-timeout = 5\n');
    const c = buildConfig(file, { 'lock-timeout': '7' });
    expect(c.mode).to.equal('copy');
    expect(c.holdLock).to.equal(true);
    expect(c.lockTimeout).to.equal(7);
  });

  const bad: [string, () => unknown, RegExp][] = [
    ['unknown key in file', () => buildConfig(withFile('holdlock = true\n'), {}), /unknown setting "holdlock" \(did you mean "hold-lock"\?\)/],
    ['bad enum flag', () => buildConfig(undefined, { mode: 'bogus' }), /mode: "bogus" is not one of server, copy/],
    ['wrong type in file', () => buildConfig(withFile('lock-timeout = "soon"\n'), {}), /lock-timeout: expected a whole number/],
    ['out of range', () => buildConfig(undefined, { 'idle-timeout': '5' }), /idle-timeout: 5 is below the minimum 30/],
    ['unknown lock method', () => buildConfig(undefined, { locks: 'fcntl,lockf' }), /locks: "lockf" is not one of/],
    ['duplicate lock method', () => buildConfig(undefined, { locks: 'fcntl,fcntl' }), /listed twice/],
    ['template without %u', () => buildConfig(undefined, { spool: '/var/mail/x' }), /must contain %u/],
    ['bad listen address', () => buildConfig(undefined, { listen: ['localhost'] }), /expected HOST:PORT/],
    ['tls listener without cert', () => buildConfig(undefined, { 'listen-tls': ['0.0.0.0:995'] }), /needs tls-cert/],
    ['not TOML', () => buildConfig(withFile('mode = \n'), {}), /not valid TOML/],
    ['missing file', () => buildConfig('/nonexistent/popspool.toml', {}), /cannot read it \(ENOENT\)/],
  ];
  for (const [name, fn, re] of bad) {
    it(`rejects: ${name}, with one line`, () => {
      expect(fn).to.throw(ConfigError, re);
      try { fn(); } catch (err) { expect((err as Error).message).not.to.include('\n'); }
    });
  }

  it('parses listen addresses', () => {
    expect(parseHostPort('127.0.0.1:110')).to.deep.equal({ host: '127.0.0.1', port: 110 });
    expect(parseHostPort('[::1]:995')).to.deep.equal({ host: '::1', port: 995 });
    expect(parseHostPort(':110')).to.deep.equal({ host: '0.0.0.0', port: 110 });
    expect(() => parseHostPort('1.2.3.4:70000')).to.throw(ConfigError);
  });

  it('every setting explains why it exists', () => {
    for (const s of SETTINGS) expect(s.why.length, s.name).to.be.greaterThan(30);
  });

  it('docs/configuration.md is generated from the table (run: node bin/popspool config-doc > docs/configuration.md)', () => {
    const committed = fs.readFileSync(path.join(ROOT, 'docs/configuration.md'), 'utf8');
    expect(committed).to.equal(renderConfigurationDoc() + '\n');
  });
});

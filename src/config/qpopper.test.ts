/** Table tests of the Qpopper config reader: mapped options, ignored ones, syntax errors, precedence. */
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { buildConfig, takeQpopperNotes } from './load.js';
import { parseQpopperConfig, type NoteKind } from './qpopper.js';

const F = '/etc/qpopper.config';

function tmpFile(name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popspool-qpopper-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('qpopper config', () => {
  // line → settings it must produce, and the kind of note it must leave
  const cases: [string, Record<string, unknown>, NoteKind][] = [
    ['set server-mode', { mode: 'server' }, 'mapped'],
    ['reset server-mode', { mode: 'copy' }, 'mapped'],
    ['set server-mode = false', { mode: 'copy' }, 'mapped'],
    ['SET Server-Mode = TRUE', { mode: 'server' }, 'mapped'],
    ['set timeout = 600', { 'idle-timeout': 600 }, 'mapped'],
    ['set timeout = 10', { 'idle-timeout': 30 }, 'ignored'],
    ['set spool-dir = /var/spool/mail/', { spool: '/var/spool/mail/%u' }, 'mapped'],
    ['set log-facility = LOG_LOCAL3', { 'log-facility': 'local3' }, 'mapped'],
    ['set log-facility = "mail"  # quoted, with a comment', { 'log-facility': 'mail' }, 'mapped'],
    ['set log-facility = kern', {}, 'ignored'],
    ['set statistics', {}, 'same'],
    ['reset statistics', {}, 'ignored'],
    ['set debug', { 'log-level': 'debug' }, 'mapped'],
    ['set update-status-headers', { 'status-update': true }, 'mapped'],
    ['set tls-server-cert-file = "/etc/ssl/pop.pem"', { 'tls-cert': '/etc/ssl/pop.pem' }, 'mapped'],
    ['set tls-support = alternate-port', { 'listen-tls': ['0.0.0.0:995'], listen: [] }, 'mapped'],
    ['set tls-support = stls', {}, 'same'],
    ['set clear-text-password = tls', { 'allow-plaintext-auth': false }, 'mapped'],
    ['set clear-text-password = never', {}, 'ignored'],
    ['set fast-update', {}, 'ignored'],
    ['set update-on-abort', {}, 'ignored'],
    ['reset update-on-abort', {}, 'same'],
    ['set bulldir = /var/spool/bulls', {}, 'ignored'],
    ['set hash-spool = 2', {}, 'ignored'],
    ['set no-such-option = 3', {}, 'ignored'],
  ];
  for (const [line, settings, kind] of cases) {
    it(`${line} → ${JSON.stringify(settings)} (${kind})`, () => {
      const r = parseQpopperConfig(`# a comment line\n\n${line}\n`, F);
      expect(Object.fromEntries(r.settings.map((s) => [s.name, s.value]))).to.deep.equal(settings);
      expect(r.notes).to.have.length(1);
      expect(r.notes[0]!.kind).to.equal(kind);
      expect(r.notes[0]!.line).to.equal(3);
      expect(r.notes[0]!.text).to.be.a('string').and.not.equal('');
    });
  }

  const errors: [string, RegExp][] = [
    ['server-mode = true', /^qpopper config \/etc\/qpopper\.config:2: expected "set NAME = VALUE"/],
    ['set', /:2: expected "set NAME/],
    ['set timeout =', /:2: timeout: "=" without a value/],
    ['set timeout = soon', /:2: timeout: expected a whole number, got "soon"/],
    ['set timeout', /:2: timeout: needs a value/],
    ['reset timeout', /:2: timeout: reset applies to on\/off options only/],
    ['reset server-mode = true', /:2: server-mode: reset takes no value/],
    ['set server-mode = maybe', /:2: server-mode: expected true or false, got "maybe"/],
    ['set spool-dir = /var/spool mail', /:2: spool-dir: a value with spaces must be "quoted"/],
    ['set spool-dir = "/var/spool', /:2: spool-dir: unterminated or malformed quoted value/],
  ];
  for (const [line, re] of errors) {
    it(`syntax error: ${line}`, () => {
      let caught: unknown;
      try {
        parseQpopperConfig(`set server-mode\n${line}\n`, F);
      } catch (err) {
        caught = err;
      }
      expect(caught).to.be.instanceOf(ConfigError);
      const msg = (caught as Error).message;
      expect(msg).to.match(re);
      expect(msg).not.to.include('\n');
    });
  }

  it('precedence: defaults < qpopper file < TOML file < flags', () => {
    const q = tmpFile('qpopper.config', 'set server-mode = false\nset timeout = 900\nset update-status-headers\nset debug\nset fast-update\n');
    const toml = tmpFile('popspool.toml', `qpopper-config = ${JSON.stringify(q)}\nidle-timeout = 1200\n`);
    const c = buildConfig(toml, { 'log-level': 'warn' });
    expect(c.mode).to.equal('copy'); //              qpopper over the default
    expect(c.statusUpdate).to.equal(true); //        qpopper over the default
    expect(c.idleTimeout).to.equal(1200); //         TOML over qpopper
    expect(c.logLevel).to.equal('warn'); //          flag over qpopper
    const notes = takeQpopperNotes();
    expect(notes?.file).to.equal(q);
    expect(notes?.notes.filter((n) => n.kind === 'ignored').map((n) => n.option)).to.deep.equal(['fast-update']);
    expect(takeQpopperNotes()).to.equal(undefined); // taken once
    // The flag names a different Qpopper file: it wins over the TOML key.
    const q2 = tmpFile('other.config', 'set server-mode\n');
    expect(buildConfig(toml, { 'qpopper-config': q2 }).mode).to.equal('server');
  });

  it('a value the settings table rejects names file:line', () => {
    const q = tmpFile('qpopper.config', '\n\nset timeout = 900\nset spool-dir = /var/mail\n');
    expect(buildConfig(undefined, { 'qpopper-config': q }).spool).to.equal('/var/mail/%u');
    const missing = path.join(path.dirname(q), 'nope.config');
    expect(() => buildConfig(undefined, { 'qpopper-config': missing })).to.throw(ConfigError, /qpopper-config .*nope\.config: cannot read it \(ENOENT\)/);
  });
});

/**
 * The bench's python3 clients against a scripted POP3 server on loopback: they must un-stuff
 * dot lines, find empty bodies, verify sizes and SHA-256s, and report a corrupted message.
 * Also the bench option parser's server×N variants and --hash, and crypt scheme naming.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { requireTool } from '../../test/helpers/tools.js';
import { describeCrypt } from './credentials.js';
import { floorPort } from './floor.js';
import { digestLines } from './generator.js';
import { parseBenchArgs } from './options.js';
import { pythonSession, type PyClientKind } from './pyclient.js';

const MESSAGES: string[][] = [
  ['Subject: one', '', '.a line that needs stuffing', '..two dots', '>From quoted', 'end'],
  ['Subject: two', '', '.'], // a body line that is a lone dot
  [], // an empty message: the reply is the status line and ".\r\n"
  ['..first line stuffed', 'end'], // stuffing at the very start of the reply body
];

/**
 * Serves MESSAGES (message `corrupt`, 1-based, with one byte changed); returns the port, the
 * commands seen, and the most commands that arrived in one read (> 1: the client pipelined).
 * CAPA lists PIPELINING when `pipelining`, and is refused otherwise.
 */
async function scriptedServer(corrupt = 0, pipelining = false, trickle = false): Promise<{ port: number; commands: string[]; batch: () => number; close: () => void }> {
  const commands: string[] = [];
  let batch = 0;
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    // With `trickle`, every reply goes out in pieces of 1 to 5 bytes a millisecond apart, so a
    // client's reads end at every possible place inside a CRLF "." sequence.
    let queue = Promise.resolve();
    const write = (text: string): void => {
      if (!trickle) {
        sock.write(text);
        return;
      }
      queue = queue.then(async () => {
        for (let i = 0, n = 1; i < text.length; i += n, n = (n % 5) + 1) {
          if (sock.destroyed) return;
          sock.write(text.slice(i, i + n));
          await new Promise((r) => setTimeout(r, 1));
        }
      });
    };
    write('+OK ready\r\n');
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      batch = Math.max(batch, buf.split('\r\n').length - 1);
      for (let i = buf.indexOf('\r\n'); i !== -1; i = buf.indexOf('\r\n')) {
        const cmd = buf.slice(0, i);
        buf = buf.slice(i + 2);
        commands.push(cmd);
        const [verb, arg] = cmd.split(' ');
        if (verb === 'CAPA') write(pipelining ? '+OK\r\nUIDL\r\nPIPELINING\r\n.\r\n' : '-ERR no CAPA here\r\n');
        else if (verb === 'STAT') write(`+OK ${MESSAGES.length} 999\r\n`);
        else if (verb === 'RETR') {
          const n = Number(arg);
          const lines = MESSAGES[n - 1]!.map((l) => (l.startsWith('.') ? `.${l}` : l));
          if (n === corrupt) lines[0] = lines[0]!.replace('S', 's');
          // Several small writes, as popa3d does: the client must reassemble them.
          write('+OK message follows\r\n');
          for (const l of lines) write(`${l}\r\n`);
          write('.\r\n');
        } else if (verb === 'QUIT') {
          write('+OK bye\r\n');
          queue = queue.then(() => void sock.end());
        } else write('+OK\r\n');
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, commands, batch: () => batch, close: () => server.close() };
}

/** digestLines always ends with a CRLF; the empty message's wire form is no bytes at all. */
const WANT = MESSAGES.map((m) => (m.length ? digestLines(m) : { octets: 0, sha256: createHash('sha256').digest('hex'), crc32: 0 }));

describe('bench python3 clients', function () {
  before(function () {
    requireTool(this, 'python3', 'python3');
  });

  for (const kind of ['quickack', 'pipelined', 'poplib'] as PyClientKind[]) {
    it(`${kind}: verifies stuffed, lone-dot and empty messages byte for byte`, async () => {
      const srv = await scriptedServer();
      try {
        const r = await pythonSession(kind, srv.port, 'u', 'p', WANT);
        expect(r.count).to.equal(MESSAGES.length);
        expect(r.badCount, `bad: ${r.bad.join(',')}`).to.equal(0);
        expect(r.octets).to.equal(WANT.reduce((a, d) => a + d.octets, 0));
        expect(r.cpu).to.be.a('number').within(0, r.total + 1);
      } finally {
        srv.close();
      }
    });

    it(`${kind}: reports a message whose bytes differ, and DELEs when asked`, async () => {
      const srv = await scriptedServer(1);
      try {
        const r = await pythonSession(kind, srv.port, 'u', 'p', WANT, true);
        expect(r.bad).to.deep.equal([1]);
        expect(srv.commands.filter((c) => c.startsWith('DELE'))).to.deep.equal(MESSAGES.map((_, i) => `DELE ${i + 1}`));
      } finally {
        srv.close();
      }
    });
  }

  for (const kind of ['quickack', 'pipelined'] as PyClientKind[]) {
    it(`${kind}: verifies replies that arrive a few bytes at a time`, async () => {
      const srv = await scriptedServer(1, kind === 'pipelined', true);
      try {
        const r = await pythonSession(kind, srv.port, 'u', 'p', WANT);
        expect(r.count).to.equal(MESSAGES.length);
        expect(r.bad).to.deep.equal([1]);
        expect(r.octets).to.equal(WANT.reduce((a, d) => a + d.octets, 0));
      } finally {
        srv.close();
      }
    });
  }

  it('pipelined: sends RETR and DELE in batches when CAPA lists PIPELINING, in order', async () => {
    const srv = await scriptedServer(2, true);
    try {
      const r = await pythonSession('pipelined', srv.port, 'u', 'p', WANT, true);
      expect(r.pipelined).to.equal(true);
      expect(r.bad).to.deep.equal([2]);
      expect(srv.batch()).to.be.greaterThan(1);
      expect(srv.commands.filter((c) => /^(RETR|DELE)/.test(c))).to.deep.equal(MESSAGES.flatMap((_, i) => [`RETR ${i + 1}`, `DELE ${i + 1}`]));
    } finally {
      srv.close();
    }
  });

  it('quickack with noops: sends that many NOOPs one at a time instead of the RETRs, and times them', async () => {
    const srv = await scriptedServer();
    try {
      const r = await pythonSession('quickack', srv.port, 'u', 'p', WANT, false, 50);
      const after = srv.commands.slice(srv.commands.indexOf('STAT') + 1);
      expect(after).to.deep.equal([...Array(50).fill('NOOP'), 'QUIT']);
      expect(srv.batch()).to.equal(1);
      expect(r.retr).to.be.greaterThan(0).and.lessThan(r.total);
    } finally {
      srv.close();
    }
  });

  it('the round-trip floor server answers the NOOP probe, and leaves the process free to exit', async () => {
    const r = await pythonSession('quickack', await floorPort(), 'u', 'p', [], false, 100);
    expect(r.count).to.equal(0); // its STAT says no messages
    expect(r.retr).to.be.greaterThan(0).and.lessThan(r.total);
  });

  it('pipelined: goes lockstep, one command at a time, when CAPA is refused', async () => {
    const srv = await scriptedServer(0, false);
    try {
      const r = await pythonSession('pipelined', srv.port, 'u', 'p', WANT);
      expect(r.pipelined).to.equal(false);
      expect(r.badCount).to.equal(0);
      expect(srv.batch()).to.equal(1);
    } finally {
      srv.close();
    }
  });
});

describe('bench options and schemes', () => {
  it('parses server×N and serverxN variants and --hash', () => {
    const o = parseBenchArgs(['--modes', 'server,serverx3,server×2', '--hash', 'plain']);
    expect(o.error).to.equal(undefined);
    expect(o.variants).to.deep.equal(['server', 'server×3', 'server×2']);
    expect(o.hash).to.equal('plain');
    expect(parseBenchArgs(['--modes', 'serverx']).error).to.match(/unknown mode/);
    expect(parseBenchArgs(['--hash', 'md5']).error).to.match(/unknown hash/);
  });

  it('names crypt schemes with their cost', () => {
    expect(describeCrypt('$6$abc$' + 'x'.repeat(86))).to.equal('SHA512-CRYPT (5000 rounds)');
    expect(describeCrypt('$6$rounds=10000$abc$' + 'x'.repeat(86))).to.equal('SHA512-CRYPT (10000 rounds)');
    expect(describeCrypt('$y$j9T$salt$hash')).to.equal('yescrypt (params j9T)');
    expect(describeCrypt('!')).to.match(/locked/);
  });
});

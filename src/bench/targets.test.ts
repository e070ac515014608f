/**
 * The report's Targets table from made-up results: a missed target says what bounds it with the
 * run's own figures; a met one, or one not measured, leaves that column empty.
 */
import { expect } from 'chai';
import { NODE_FLOOR } from './floor.js';
import { Results, type Mailbox } from './context.js';
import type { MachineInfo } from './machine.js';
import type { Manifest } from './generator.js';
import { targetsTable } from './targets.js';

const MACHINE: MachineInfo = {
  nproc: '2', free: '', uname: '', node: 'v20', cpu: 'test', peerVersions: {},
  fsync: { fsType: 'ext4', fileMs: 0.3, stateMs: 0.5, bulkMsPerMb: 1.5, samples: 50 },
};
const BOX_1K = { label: '1k', user: 'u', template: '', manifest: { spoolBytes: 16 * 2 ** 20 } as Manifest } as Mailbox;

/** The table's row whose Target cell starts with `prefix`, as its cells. */
function row(lines: string[], prefix: string): string[] {
  const line = lines.find((l) => l.startsWith(`| ${prefix}`));
  expect(line, prefix).to.be.a('string');
  return line!.split(' | ').map((c) => c.replace(/^\| |\s*\|$/g, ''));
}

describe('bench targets table', () => {
  /** Made-up medians: [target, key, value] (units and directions do not matter to the table). */
  const DATA: [string, string, number][] = [
    ['server', 'a.warm/1k', 0.01],
    ['copy', 'a.warm/1k', 0.04],
    ['server', 'a.warm/50k', 0.012],
    ['copy', 'a.warm/50k', 3],
    ['popa3d', 'a.cold/50k', 0.3],
    ['server', 'b.mbps/1k', 90],
    ['popa3d', 'b.mbps/1k', 110],
    ['popa3d', 'b.msretr/1k', 0.16],
    ['server', 'b.msretr/1k', 0.2],
    ['server', 'b.clientms/1k', 0.09],
    ['server', 'b.noop/1k', 82],
    ['popa3d', 'b.noop/1k', 65],
    [NODE_FLOOR, 'b.noop/1k', 71],
    ['server', 'c.total/1k', 0.3],
    ['copy', 'c.total/1k', 0.33],
    ['popa3d', 'c.total/1k', 0.25],
    ['server', 'c.quit/1k', 0.002],
    ['server', 'c.client/1k', 0.21],
    ['copy', 'c.quit/1k', 0.005],
    ['server', 'd.quit/1k', 0.027],
    ['popa3d', 'd.quit/1k', 0.012],
  ];
  function results(): Results {
    const r = new Results();
    for (const [target, key, value] of DATA) r.add(target, key, value, '', 'lower');
    r.add('server', 'a.cold/50k', 0.5, 's', 'lower', { cpu: 0.8, rss: 1 });
    return r;
  }
  const info = { targets: ['copy', 'server', 'popa3d'], mixLabels: ['1k', '50k'], pipelined: new Map<string, boolean>(), machine: MACHINE, mailboxes: [BOX_1K] };

  it('says what bounds each missed target, in figures from the run', () => {
    const t = targetsTable(results(), info);
    expect(t[0]).to.match(/What bounds it/);
    const cold = row(t, '(a) cold');
    expect(cold[3]).to.equal('**no**');
    expect(cold[4]).to.match(/0\.80* s of CPU/).and.match(/2 cores/);
    const lock = row(t, '(b) download-all 1k, QUICKACK client, lockstep');
    // 2× popa3d needs 0.08 ms per RETR; the client alone spends 0.09: the client bounds it.
    expect(lock[4]).to.match(/^the client/).and.match(/0\.080* ms/).and.match(/0\.090* ms/).and.match(/71(\.0+)? µs/).and.match(/1\.09\d*× popa3d's/).and.match(/adds 11(\.0+)? µs/);
    const copy = row(t, '(c) download-and-delete-all 1k, lockstep: copy');
    expect(copy[4]).to.match(/session took 300(\.0+)? ms \(the client's own CPU in it: 210(\.0+)? ms[^)]*\) and copy mode's 330(\.0+)? ms/).and.match(/costs copy mode 30(\.0+)? ms more/);
    const lockC = row(t, '(c) download-and-delete-all 1k, whole session incl. QUIT, lockstep');
    expect(lockC[4]).to.match(/per RETR the server took 0\.20* ms and popa3d 0\.160* ms/).and.match(/adds 11(\.0+)? µs/);
    const d = row(t, '(d) delete 10%');
    expect(d[4]).to.match(/~16(\.0+)? MB/).and.match(/≈ 24(\.0+)? ms/).and.match(/update of 12(\.0+)? ms/);
  });

  it('says when a missed target has no bound it can name', () => {
    const r = results();
    r.add('server', 'f.rate/c100', 100, '/s', 'higher');
    r.add('popa3d', 'f.rate/c100', 80, '/s', 'higher');
    expect(row(targetsTable(r, info), '(f) check-mail sessions/s, 100 at once: server ÷ popa3d')[4]).to.match(/^none known/);
  });

  it('a missed poplib row names the client\'s own CPU; a missed (e) row the peers\' rates in the run', () => {
    const r = results();
    r.add('server', 'b.py.msretr/1k', 0.75, 'ms', 'lower');
    r.add('server', 'b.py.clientms/1k', 0.41, 'ms', 'lower');
    r.add('popa3d', 'b.py.msretr/1k', 43.9, 'ms', 'lower');
    r.add('server', 'e.mbps/1g', 440, 'MB/s', 'higher');
    r.add('popa3d', 'e.mbps/1g', 357, 'MB/s', 'higher');
    const t = targetsTable(r, info);
    const py = row(t, '(b) download-all 1k, python3 poplib');
    expect(py[3]).to.equal('**no**');
    expect(py[4]).to.match(/^the client: poplib itself spent 0\.410* ms of CPU per RETR of the 0\.750* ms/).and.match(/QUICKACK client was 0\.20* ms/).and.match(/popa3d took 43\.90* ms/);
    const e = row(t, '(e) RETR of the 1g message: server MB/s');
    expect(e[3]).to.equal('**no**');
    expect(e[4]).to.match(/^none known: popspool fell short/).and.match(/popa3d 357(\.0+)? MB\/s/);
    r.add('server', 'b.py.msretr/1k', 0.3, 'ms', 'lower');
    r.add('server', 'b.py.msretr/1k', 0.3, 'ms', 'lower'); // median 0.3: met, no bound shown
    expect(row(targetsTable(r, info), '(b) download-all 1k, python3 poplib')[4]).to.equal('');
  });

  it('leaves the column empty for a met target and one not measured', () => {
    const r = results();
    r.add('server', 'b.clientms/1k', 0.01, 'ms', 'lower'); // median now below what 2× needs
    const t = targetsTable(r, info);
    expect(row(t, '(a) check-mail 50k (warm): copy')[3]).to.equal('yes');
    expect(row(t, '(a) check-mail 50k (warm): copy')[4]).to.equal('');
    expect(row(t, '(e) RETR')[2]).to.match(/not measured/);
    expect(row(t, '(e) RETR')[4]).to.equal('');
    // When the client is not what bounds lockstep, the row says so instead.
    expect(row(t, '(b) download-all 1k, QUICKACK client, lockstep')[4]).to.match(/^the server's time per round trip/);
  });
});

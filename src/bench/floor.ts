/**
 * The round-trip floor: the least a POP3 server written for Node can cost per command. A
 * listener in the bench's own process (idle while a python client runs) that answers every line
 * with one "+OK" write and does nothing else: no parsing beyond the verb, no state, no logging.
 * Workload b times NOOPs against it beside every server, so the report can say how much of a
 * lockstep session's time is the runtime's per-command cost and how much popspool adds to it.
 */
import net from 'node:net';

/** NOOPs in the round-trip probe: enough for a stable median, about a fifth of a second. */
export const NOOP_PROBE = 2000;

/** The target name the floor's figures are recorded under (never a column of the report's tables). */
export const NODE_FLOOR = 'node-floor';

let listening: Promise<number> | null = null;

/** The floor server's port; started on first use, and never keeps the process alive. */
export function floorPort(): Promise<number> {
  return (listening ??= new Promise((resolve, reject) => {
    const server = net.createServer({ noDelay: true }, (s) => {
      s.on('error', () => s.destroy());
      s.write('+OK floor\r\n');
      let pending = '';
      s.on('data', (d: Buffer) => {
        pending += d.toString('latin1');
        for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
          const verb = pending.slice(0, 4).toUpperCase();
          pending = pending.slice(nl + 1);
          if (verb === 'QUIT') return void s.end('+OK\r\n');
          s.write(verb === 'STAT' ? '+OK 0 0\r\n' : '+OK\r\n');
        }
      });
    });
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.unref();
      resolve((server.address() as net.AddressInfo).port);
    });
  }));
}

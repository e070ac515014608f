/**
 * The "ordinary client" for download-all: Python's poplib, which sends each command as its own
 * small write and never sets TCP_QUICKACK, so delayed-ACK stalls show up in its ms per RETR.
 * It verifies every message against the generator's digests, like the Node client.
 */
import { spawn } from 'node:child_process';
import type { MessageDigest } from './generator.js';

/** RETR every message, keep, QUIT; prints one JSON line. Digests come on stdin, one "octets sha256" per line. */
const SCRIPT = String.raw`
import hashlib, json, poplib, sys, time
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
want = [l.split() for l in sys.stdin.read().splitlines() if l.strip()]
poplib._MAXLINE = 1 << 20
t0 = time.perf_counter()
p = poplib.POP3(host, port, timeout=300)
p.user(user); p.pass_(pw)
n, _ = p.stat()
bad = []
octets = 0
t1 = time.perf_counter()
for i in range(1, n + 1):
    _, lines, _ = p.retr(i)
    wire = b"".join(l + b"\r\n" for l in lines)
    octets += len(wire)
    w = want[i - 1] if i - 1 < len(want) else None
    if w is None or int(w[0]) != len(wire) or w[1] != hashlib.sha256(wire).hexdigest():
        bad.append(i)
t2 = time.perf_counter()
p.quit()
t3 = time.perf_counter()
print(json.dumps({"count": n, "octets": octets, "bad": bad[:20], "badCount": len(bad), "total": t3 - t0, "retr": t2 - t1}))
`;

export interface PyResult {
  readonly count: number;
  readonly octets: number;
  readonly badCount: number;
  readonly bad: number[];
  /** Seconds for the whole session and for the RETR loop alone. */
  readonly total: number;
  readonly retr: number;
}

export function pythonDownloadAll(port: number, user: string, pass: string, want: readonly MessageDigest[]): Promise<PyResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', SCRIPT, '127.0.0.1', String(port), user, pass], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`python3 poplib client failed (${code}): ${err.trim().split('\n').pop() ?? ''}`));
        return;
      }
      try {
        resolve(JSON.parse(out) as PyResult);
      } catch {
        reject(new Error(`python3 poplib client printed: ${out.slice(0, 200)}`));
      }
    });
    child.stdin.end(want.map((d) => `${d.octets} ${d.sha256}`).join('\n'));
  });
}

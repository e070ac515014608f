/**
 * Two python3 clients for workloads b and c, both verifying every message against the
 * generator's digests like the Node client:
 * - `poplib`: Python's poplib, the "ordinary client": each command its own small write, never
 *   TCP_QUICKACK, so a server's delayed-ACK stalls show up in its ms per RETR;
 * - `quickack`: a raw-socket client that re-arms TCP_QUICKACK after every recv (the kernel
 *   clears it), as the orientation figures for the peers were measured. Servers that
 *   write a reply in several segments (popa3d, Mailutils) stall 40 ms per RETR on a
 *   delayed-ACK client; with this one they run at their real speed, so it is the fair client
 *   for comparing MB/s and ms per RETR across servers.
 */
import { spawn } from 'node:child_process';
import type { MessageDigest } from './generator.js';

/** Common prologue: arguments, digests on stdin ("octets sha256" per line), the result line. */
const PROLOGUE = String.raw`
import hashlib, json, socket, sys, time
host, port, user, pw, dele, window, noops = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "dele", int(sys.argv[6]), int(sys.argv[7])
pipelined = False
want = [l.split() for l in sys.stdin.read().splitlines() if l.strip()]
bad = []
octets = 0
def verify(i, n, hexdigest):
    global octets
    octets += n
    w = want[i - 1] if i - 1 < len(want) else None
    if w is None or int(w[0]) != n or w[1] != hexdigest:
        bad.append(i)
def check(i, wire):
    verify(i, len(wire), hashlib.sha256(wire).hexdigest())
def done(n, t0, t1, t2, t3):
    print(json.dumps({"pipelined": pipelined, "count": n, "octets": octets, "bad": bad[:20], "badCount": len(bad), "total": t3 - t0, "retr": t2 - t1, "quit": t3 - t2, "cpu": time.process_time() - cpu0}))
cpu0 = time.process_time()
`;

/** poplib: RETR (and DELE) every message, QUIT. */
const POPLIB = PROLOGUE + String.raw`
import poplib
poplib._MAXLINE = 1 << 20
t0 = time.perf_counter()
p = poplib.POP3(host, port, timeout=300)
p.user(user); p.pass_(pw)
n, _ = p.stat()
t1 = time.perf_counter()
for i in range(1, n + 1):
    _, lines, _ = p.retr(i)
    check(i, b"".join(l + b"\r\n" for l in lines))
    if dele: p.dele(i)
t2 = time.perf_counter()
p.quit()
t3 = time.perf_counter()
done(n, t0, t1, t2, t3)
`;

/**
 * Raw socket with TCP_NODELAY and TCP_QUICKACK re-armed after every recv. A multi-line reply
 * ends at the first CRLF.CRLF at or after its status line's CRLF (so an empty body is found
 * too); un-stuffing is one replace of CRLF.. by CRLF. plus a leading "..".
 */
const QUICKACK = PROLOGUE + String.raw`
IPT, QA = socket.IPPROTO_TCP, socket.TCP_QUICKACK
buf = bytearray()
chunk = memoryview(bytearray(1 << 18))
s = None
def recv():
    k = s.recv_into(chunk)
    s.setsockopt(IPT, QA, 1)
    if not k:
        raise EOFError("server closed the connection")
    buf.extend(chunk[:k])
def line():
    e = status()
    l = bytes(buf[:e]); del buf[:e + 2]
    return l
def status():
    # Waits for the status line of the reply at the front of buf (it must be +OK); returns
    # where its CRLF starts.
    scan = 0
    while True:
        e = buf.find(b"\r\n", scan)
        if e >= 0: break
        scan = max(0, len(buf) - 1); recv()
    if not buf.startswith(b"+OK"):
        raise RuntimeError("server said: %r" % bytes(buf[:min(e, 200)]))
    return e
def multi():
    # A whole multi-line reply (CAPA): waits for its terminating CRLF.CRLF, returns the body un-stuffed.
    e = status()
    scan = e
    while True:
        t = buf.find(b"\r\n.\r\n", scan)
        if t >= 0: break
        scan = max(e, len(buf) - 4); recv()
    body = bytes(buf[e + 2:t + 2]).replace(b"\r\n..", b"\r\n.")
    if body.startswith(b".."):
        body = body[1:]
    del buf[:t + 5]
    return body
def retr(i):
    # One RETR reply, verified as it arrives in a single pass over its bytes: after the status
    # line, each CRLF "." is a stuffed dot (CRLF ".." loses one), the terminator (CRLF ".\r\n"),
    # or a line kept as it is; the un-stuffed body is hashed piece by piece where it lies in the
    # buffer, and bytes already hashed are dropped, so a large message never piles up.
    e = status()
    h = hashlib.sha256()
    n = 0
    a = e + 2  # the first byte of the body not hashed yet
    pos = e    # where the next CRLF "." may start (the status line's CRLF starts the first)
    while True:
        k = buf.find(b"\r\n.", pos)
        if k >= 0 and k + 5 <= len(buf):
            c = buf[k + 3]
            if c == 46:  # "."
                if k + 3 > a:
                    with memoryview(buf) as mv: h.update(mv[a:k + 3])
                    n += k + 3 - a
                a = pos = k + 4
            elif buf[k + 3:k + 5] == b"\r\n":
                if k + 2 > a:
                    with memoryview(buf) as mv: h.update(mv[a:k + 2])
                    n += k + 2 - a
                del buf[:k + 5]
                verify(i, n, h.hexdigest())
                return
            else:
                pos = k + 3
            continue
        # Undecided: hash up to where a CRLF "." could start, drop what is hashed, read more.
        pos = k if k >= 0 else max(pos, len(buf) - 2)
        if pos > a:
            with memoryview(buf) as mv: h.update(mv[a:pos])
            n += pos - a
            a = pos
        cut = min(a, pos)
        del buf[:cut]
        a -= cut; pos -= cut
        recv()
def cmd(c):
    s.sendall(c.encode() + b"\r\n")
t0 = time.perf_counter()
s = socket.create_connection((host, port), timeout=300)
s.setsockopt(IPT, socket.TCP_NODELAY, 1)
s.setsockopt(IPT, QA, 1)
line()
if window > 1:
    cmd("CAPA")
    try:
        pipelined = b"PIPELINING" in multi().split(b"\r\n")
    except RuntimeError:
        del buf[:buf.find(b"\r\n") + 2]
cmd("USER " + user); line()
cmd("PASS " + pw); line()
cmd("STAT"); n = int(line().split()[1])
t1 = time.perf_counter()
if noops:
    # The round-trip probe: NOOPs one at a time instead of the download ("retr" times them).
    for k in range(noops):
        cmd("NOOP"); line()
elif not pipelined:
    for i in range(1, n + 1):
        cmd("RETR %d" % i)
        retr(i)
        if dele:
            cmd("DELE %d" % i); line()
else:
    # RFC 2449 PIPELINING: keep up to 'window' commands in flight, refilled in batches, so the
    # server always has the next command queued and neither side's socket buffer can fill
    # with unread commands.
    per = 2 if dele else 1
    total = n * per
    sent = got = 0
    while got < total:
        if sent < total and sent - got <= window // 2:
            upto = min(total, got + window)
            out = []
            for k in range(sent, upto):
                i = k // per + 1
                out.append(b"RETR %d\r\n" % i if k % per == 0 else b"DELE %d\r\n" % i)
            s.sendall(b"".join(out)); sent = upto
        if got % per == 0:
            retr(got // per + 1)
        else:
            line()
        got += 1
t2 = time.perf_counter()
cmd("QUIT"); line()
t3 = time.perf_counter()
s.close()
done(n, t0, t1, t2, t3)
`;

export type PyClientKind = 'poplib' | 'quickack' | 'pipelined';

/** Commands the pipelined client keeps in flight when the server advertises PIPELINING. */
export const PIPELINE_WINDOW = 64;

export interface PyResult {
  /** The 'pipelined' client found PIPELINING in CAPA and used it (false: it went lockstep). */
  readonly pipelined: boolean;
  readonly count: number;
  readonly octets: number;
  readonly badCount: number;
  readonly bad: number[];
  /** Seconds: the whole session, the RETR(+DELE) loop alone, and the QUIT (the update). */
  readonly total: number;
  readonly retr: number;
  readonly quit: number;
  /** The client's own CPU seconds (user + system) over the session, verification included. */
  readonly cpu: number;
}

/**
 * One python3 session: RETR every message (and DELE it when `dele`), QUIT; every message verified.
 * With `noops` (the QUICKACK client only), that many NOOPs one at a time instead of the RETRs:
 * `retr` is then their time, and `count` and `octets` say nothing.
 */
export function pythonSession(kind: PyClientKind, port: number, user: string, pass: string, want: readonly MessageDigest[], dele = false, noops = 0): Promise<PyResult> {
  return new Promise((resolve, reject) => {
    const script = kind === 'poplib' ? POPLIB : QUICKACK;
    const window = kind === 'pipelined' ? PIPELINE_WINDOW : 1;
    const child = spawn('python3', ['-c', script, '127.0.0.1', String(port), user, pass, dele ? 'dele' : 'keep', String(window), String(kind === 'poplib' ? 0 : noops)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`python3 ${kind} client failed (${code}): ${err.trim().split('\n').pop() ?? ''}`));
        return;
      }
      try {
        resolve(JSON.parse(out) as PyResult);
      } catch {
        reject(new Error(`python3 ${kind} client printed: ${out.slice(0, 200)}`));
      }
    });
    child.stdin.on('error', () => undefined); // a client that died early reports through 'close'
    child.stdin.end(want.map((d) => `${d.octets} ${d.sha256}`).join('\n'));
  });
}

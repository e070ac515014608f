/**
 * PamAuthenticator's own logic with a scripted stand-in for the addon (the real addon and a real
 * PAM stack are exercised in test/auth-pam.test.ts): the thread-pool cap, a hung call keeping
 * its slot, PAM errors that are not a wrong password, and input the addon would mangle.
 */
import { expect } from 'chai';
import { PAM_MAX_FIELD_BYTES, PamAuthenticator, pamConcurrency, type PamModule } from './pam.js';

const CTX = { remoteAddress: '192.0.2.1', secure: true };

/** Records calls; each waits until the test answers it. */
function scripted(): PamModule & { pending: { user: string; password: string; rhost?: string; answer: (err?: string) => void }[] } {
  const pending: { user: string; password: string; rhost?: string; answer: (err?: string) => void }[] = [];
  return {
    pending,
    authenticate(user, password, cb, opts) {
      pending.push({ user, password, ...(opts?.remoteHost ? { rhost: opts.remoteHost } : {}), answer: (err) => setImmediate(() => cb(err)) });
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('PamAuthenticator', () => {
  it('runs at most `concurrency` PAM calls at once; the rest wait their turn', async () => {
    const pam = scripted();
    const auth = new PamAuthenticator(pam, { service: 'popspool', concurrency: 2 });
    const results = ['a', 'b', 'c', 'd'].map((u) => auth.verify(u, 'pw', CTX));
    await tick();
    expect(pam.pending.map((p) => p.user)).to.deep.equal(['a', 'b']);
    expect(pam.pending[0]!.rhost).to.equal('192.0.2.1');
    pam.pending[0]!.answer();
    await tick();
    await tick();
    expect(pam.pending.map((p) => p.user)).to.deep.equal(['a', 'b', 'c']);
    pam.pending[1]!.answer('Authentication failure');
    pam.pending[2]!.answer();
    await tick();
    await tick();
    pam.pending[3]!.answer('Authentication failure');
    expect(await Promise.all(results)).to.deep.equal([true, false, true, false]);
  });

  it('a call that never returns is answered with an error, and its slot stays taken until PAM returns', async () => {
    const pam = scripted();
    const auth = new PamAuthenticator(pam, { service: 'popspool', concurrency: 1, timeoutMs: 20 });
    let error: Error | undefined;
    await auth.verify('a', 'pw', CTX).catch((e: Error) => (error = e));
    expect(error?.message).to.match(/did not answer/);
    const next = auth.verify('b', 'pw', CTX);
    await tick();
    expect(pam.pending.map((p) => p.user), 'b waits for the hung thread').to.deep.equal(['a']);
    pam.pending[0]!.answer(); // the late answer is dropped, the slot passes on
    await tick();
    await tick();
    expect(pam.pending.map((p) => p.user)).to.deep.equal(['a', 'b']);
    pam.pending[1]!.answer();
    expect(await next).to.equal(true);
  });

  it('PAM failures that are not about the password reject ([SYS/TEMP] upstream); unknown users are plain failures', async () => {
    const pam = scripted();
    const auth = new PamAuthenticator(pam, { service: 'popspool', concurrency: 4 });
    const broken = auth.verify('a', 'pw', CTX);
    const unknown = auth.verify('b', 'pw', CTX);
    await tick();
    pam.pending[0]!.answer('pam_start: ');
    pam.pending[1]!.answer('User not known to the underlying authentication module');
    let error: Error | undefined;
    await broken.catch((e: Error) => (error = e));
    expect(error?.message).to.match(/PAM service popspool: pam_start/);
    expect(await unknown).to.equal(false);
  });

  it('never hands PAM what the addon would truncate, pad with garbage or cut at a NUL', async () => {
    const pam = scripted();
    const auth = new PamAuthenticator(pam, { service: 'popspool' });
    expect(await auth.verify('alice', 'x'.repeat(PAM_MAX_FIELD_BYTES + 1), CTX)).to.equal(false);
    expect(await auth.verify('alice', 'é'.repeat(64), CTX)).to.equal(false); // 128 bytes of UTF-8
    expect(await auth.verify('alice', 'right\0wrong', CTX)).to.equal(false);
    expect(await auth.verify('../etc', 'pw', CTX)).to.equal(false);
    expect(pam.pending).to.have.length(0);
    expect(auth.calls).to.equal(0);
    const ok = auth.verify('alice', 'x'.repeat(PAM_MAX_FIELD_BYTES), CTX);
    await tick();
    pam.pending[0]!.answer();
    expect(await ok).to.equal(true);
  });

  it('uses half the libuv thread pool', () => {
    expect(pamConcurrency({})).to.equal(2);
    expect(pamConcurrency({ UV_THREADPOOL_SIZE: '16' })).to.equal(8);
    expect(pamConcurrency({ UV_THREADPOOL_SIZE: '1' })).to.equal(1);
  });
});

/**
 * Runs the message filter (retr-filter) once: the raw message on its stdin, the message to send
 * read from its stdout — all of it, bounded by a byte cap and a timeout, because +OK may only be
 * sent once the filter has exited successfully and the output is known to be whole.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { PopspoolError } from '../errors.js';

export interface FilterSpec {
  /** argv[0] is the program (looked up in PATH when it has no slash); never run through a shell. */
  readonly argv: readonly string[];
  readonly timeoutMs: number;
  /** Largest output accepted; more is a failure. */
  readonly maxBytes: number;
}

/** Where a filter failure came from, for the log line. The client only sees [SYS/TEMP]. */
export type FilterFailure = 'exit' | 'signal' | 'timeout' | 'too-big' | 'spawn' | 'input';

/** A filter run that produced no usable output. Answered as -ERR [SYS/TEMP]; nothing changes. */
export class FilterError extends PopspoolError {
  constructor(readonly reason: FilterFailure, message: string, readonly detail: string = '') {
    super('SYS_TEMP', message);
    this.name = 'FilterError';
  }
}

/** How much of the filter's stderr is kept for the log line (it explains most failures). */
const STDERR_TAIL = 300;
/** Fallback PATH when the server's environment has none (e.g. started with an empty env). */
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';

/**
 * Runs `spec.argv` with `input` on stdin and resolves with its whole stdout. The child gets a
 * small, fixed environment (PATH, LC_ALL=C so text tools treat bytes as bytes, and `env`), runs
 * in its own process group so a timeout or an over-cap output kills it with everything it
 * started (a `sh -c` pipeline included), and `input` is destroyed when the run ends.
 */
export function runFilter(spec: FilterSpec, input: Readable, env: Readonly<Record<string, string>> = {}): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const [program, ...args] = spec.argv;
    if (!program) {
      input.destroy();
      reject(new FilterError('spawn', 'message filter is not configured'));
      return;
    }
    const child = spawn(program, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: { PATH: process.env.PATH ?? DEFAULT_PATH, LC_ALL: 'C', ...env },
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let stderr = '';
    let failure: FilterError | undefined;
    let settled = false;
    const fail = (e: FilterError): void => {
      failure ??= e;
      killGroup();
    };
    const killGroup = (): void => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const finish = (result: Buffer | FilterError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      input.destroy();
      if (result instanceof Buffer) resolve(result);
      else reject(result);
    };
    const timer = setTimeout(() => fail(new FilterError('timeout', `message filter timed out after ${spec.timeoutMs / 1000} s`)), spec.timeoutMs);

    child.on('error', (e: NodeJS.ErrnoException) => {
      // Spawn failures (ENOENT, EACCES) may never emit 'close'.
      if (child.pid === undefined) finish(new FilterError('spawn', `message filter cannot be started (${e.code ?? e.message})`, `${program}: ${e.message}`));
      else fail(new FilterError('spawn', `message filter failed (${e.code ?? e.message})`));
    });
    child.stdout!.on('data', (d: Buffer) => {
      if (failure) return;
      size += d.length;
      if (size > spec.maxBytes) fail(new FilterError('too-big', `message filter output exceeds ${spec.maxBytes} bytes`));
      else chunks.push(d);
    });
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('latin1')).slice(-STDERR_TAIL);
    });
    // A filter may stop reading early (head, or a failure): EPIPE on its stdin is not our error.
    child.stdin!.on('error', () => {});
    input.on('error', (e) => fail(new FilterError('input', 'message could not be read for the filter', String(e))));
    input.pipe(child.stdin!);
    child.on('close', (code, signal) => {
      const tail = stderr.trim().replace(/\s+/g, ' ');
      if (failure) return finish(new FilterError(failure.reason, failure.message, tail || failure.detail));
      if (signal) return finish(new FilterError('signal', `message filter killed by ${signal}`, tail));
      if (code !== 0) return finish(new FilterError('exit', `message filter failed (exit status ${code})`, tail));
      finish(Buffer.concat(chunks, size));
    });
  });
}

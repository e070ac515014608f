/**
 * V8 flags popspool runs with. They cannot be set from inside a running process (V8 sizes its
 * heap at start-up), so they live on the node command line: in bin/popspool's shebang (which
 * /usr/bin/popspool, the systemd units and inetd run), in package.json's start and bench
 * scripts, and where the bench starts servers. test/node-flags.test.ts keeps those in step.
 *
 * --max-semi-space-size=4: V8's young generation may otherwise grow to 16 MB per semi-space.
 * A serving process keeps only ~11 MB of old generation alive, so V8 sets an old-generation
 * limit ~16 MB above that, no more than the young generation's size: from then on it starts an
 * incremental mark-compact every ~80 ms (--trace-incremental-marking: "Start (task)", far
 * below the limit), and the RETR path paid ~40 % of its CPU in collections. Measured on the
 * bench's 1k spool, one process per setting, sessions alternating (tenth session):
 *   | semi-space | lockstep download, server CPU | pipelined |
 *   | default    | 134 ms                        | 98 ms     |
 *   | 8 MB       | 124 ms                        | 96 ms     |
 *   | 4 MB       | 76 ms                         | 56 ms     |
 *   | 2 MB, 1 MB | 75, 79 ms                     | 58, 59 ms |
 * The ninth session found 4 MB no worse for a cold scan of the 865 MB spool.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

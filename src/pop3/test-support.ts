/**
 * Test-only helpers shared by the pop3 tests. Not imported by production code.
 */

/**
 * `buf` cut at the given offsets (deduplicated, in order): the chunks a stream might deliver.
 * Offsets past the end are clamped to it, or with `wrap` taken modulo length + 1 (so random
 * offsets spread over short buffers too).
 */
export function cutAt(buf: Buffer, cuts: readonly number[], wrap = false): Buffer[] {
  const points = [...new Set(cuts.map((c) => (wrap ? c % (buf.length + 1) : Math.min(c, buf.length))))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    chunks.push(buf.subarray(prev, p));
    prev = p;
  }
  chunks.push(buf.subarray(prev));
  return chunks;
}

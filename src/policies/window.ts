/** Shared by observation-window scorers (SnapKV, TOVA): attention of recent queries. */
import type { PolicyContext } from './types.ts';

/**
 * For each evictable entry, the attention it receives from the lane's recent queries
 * (`ctx.windowQueries()`, all heads of the GQA group), summed over queries and
 * averaged over the group's heads: `out[i]`. Returns false (and writes zeros) when no
 * query has been observed yet.
 */
export function windowAttention(ctx: PolicyContext, out: Float64Array): boolean {
  out.fill(0);
  const { queries, count } = ctx.windowQueries();
  if (count === 0) return false;
  const G = ctx.geometry.groupSize;
  const rows = count * G;
  const probs = ctx.attention(queries, rows);
  const n = ctx.tokens;
  const inv = 1 / G;
  for (let r = 0; r < rows; r++) {
    const base = r * n + ctx.evictStart;
    for (let i = 0; i < ctx.evictable; i++) out[i] += probs[base + i] * inv;
  }
  return true;
}

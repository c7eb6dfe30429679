/**
 * `uniform`: uniform random sampling of the evictable entries, the unbiased baseline
 * every importance method should beat at equal memory (sampling-based attention
 * estimators; see BalanceKV, arXiv 2502.07861, for the discrepancy-based refinement).
 *
 * Each compression keeps m of the n evictable entries, chosen without replacement with
 * the cache's seeded generator, and adds ln(n/m) to each kept entry's log-weight: every
 * entry survives with probability m/n and then counts n/m times, so the sums
 * Σ exp(logit) and Σ exp(logit)·v over the evictable entries are unbiased (their
 * ratio, the attention output, is consistent). Repeated compressions compose (the
 * weights add up). Sinks and the window stay exact with weight 0.
 */
import type { PolicyFactory } from './types.ts';

export const uniformPolicy: PolicyFactory = {
  name: 'uniform',
  summary: 'seeded uniform sampling with log-weights ln(n/m) (unbiased estimator)',
  options: {},
  create: () => ({
    name: 'uniform',
    config: {},
    evicts: true,
    needs: {},
    entryStateWidth: 0,
    plan(ctx, keep) {
      const n = ctx.evictable;
      const m = Math.min(keep, n);
      const idx = new Int32Array(n);
      for (let i = 0; i < n; i++) idx[i] = i;
      // Partial Fisher-Yates: the first m slots are a uniform m-subset.
      for (let i = 0; i < m; i++) {
        const j = i + ctx.rng.below(n - i);
        const t = idx[i]; idx[i] = idx[j]; idx[j] = t;
      }
      const kept = idx.subarray(0, m).slice().sort();
      const add = new Float32Array(m).fill(m > 0 ? Math.log(n / m) : 0);
      return { keep: kept, logWeightAdd: add };
    },
  }),
};

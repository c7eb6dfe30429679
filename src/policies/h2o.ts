/**
 * `h2o`: Heavy-Hitter Oracle (Zhang et al., "H2O: Heavy-Hitter Oracle for Efficient
 * Generative Inference of Large Language Models", arXiv 2306.14048).
 *
 * Kept from the paper: each entry accumulates the attention probability it receives
 * from every decoding query (observed during `attend`); when a lane is over budget the
 * entries with the smallest accumulated score are evicted, the recent window always
 * kept. Changed: the score of a KV head is the mean over its GQA group's query heads
 * (the paper has one KV per query head); eviction is amortized (down to budget − slack
 * at once, not one token per step); sinks are protected too. Entries start at 0, so
 * `aggregate: 'mean'` (score / number of observations, OpenVINO's NORM_SUM) is offered
 * to avoid favouring old entries.
 */
import { oneOfOption } from './options.ts';
import type { PolicyFactory } from './types.ts';

/** Per-entry state: [accumulated probability, number of attend calls observed]. */
const STATE_WIDTH = 2;

export const h2oPolicy: PolicyFactory = {
  name: 'h2o',
  summary: 'accumulated attention observed during attend (arXiv 2306.14048)',
  options: { aggregate: oneOfOption('sum', ['sum', 'mean'] as const) },
  create: (config) => {
    const mean = config.aggregate === 'mean';
    return {
      name: 'h2o',
      config,
      evicts: true,
      needs: { attendProbs: true },
      entryStateWidth: STATE_WIDTH,
      observe(ctx, probs, stride) {
        const G = ctx.geometry.groupSize;
        const st = ctx.entryState;
        const inv = 1 / G;
        for (let e = 0; e < ctx.tokens; e++) {
          let s = 0;
          for (let h = 0; h < G; h++) s += probs[h * stride + e];
          st[e * STATE_WIDTH] += s * inv;
          st[e * STATE_WIDTH + 1] += 1;
        }
      },
      score(ctx, out) {
        const st = ctx.entryState;
        for (let i = 0; i < ctx.evictable; i++) {
          const e = ctx.evictStart + i;
          const acc = st[e * STATE_WIDTH], seen = st[e * STATE_WIDTH + 1];
          out[i] = mean ? (seen > 0 ? acc / seen : 0) : acc;
        }
      },
    };
  },
};

/**
 * `snapkv`: observation-window selection (Li et al., "SnapKV: LLM Knows What You are
 * Looking for Before Generation", arXiv 2404.14469).
 *
 * Kept from the paper: the score of an entry is the attention it receives from the
 * last `window` queries (sum over queries), smoothed by 1-D pooling over neighbouring
 * entries (`kernel` 5, average pooling with zero padding, as in the official code), and
 * the top scores are kept per head. Changed: the queries are a ring of the last
 * `window` queries seen by `attend` (or given with `observe()` for a prompt), so the
 * same rule also compresses during decoding; GQA heads are averaged (the paper repeats
 * KV per query head); pooling runs over the lane's current entries in position order.
 * With no query observed yet the scores are all equal and the selector keeps the most
 * recent entries.
 */
import { intOption, oddIntOption, oneOfOption } from './options.ts';
import type { PolicyFactory } from './types.ts';
import { windowAttention } from './window.ts';

/** 1-D pooling over `x` into `out`, odd kernel `k`, same padding (zeros for avg, -inf for max). */
export function pool1d(x: Float64Array, k: number, mode: 'avg' | 'max', out: Float64Array): void {
  const n = x.length, r = (k - 1) >> 1;
  for (let i = 0; i < n; i++) {
    const lo = Math.max(0, i - r), hi = Math.min(n - 1, i + r);
    if (mode === 'avg') {
      let s = 0;
      for (let j = lo; j <= hi; j++) s += x[j];
      out[i] = s / k;
    } else {
      let m = -Infinity;
      for (let j = lo; j <= hi; j++) if (x[j] > m) m = x[j];
      out[i] = m;
    }
  }
}

export const snapkvPolicy: PolicyFactory = {
  name: 'snapkv',
  summary: 'pooled attention of the last `window` queries (arXiv 2404.14469)',
  options: {
    window: intOption(32, 1, 1024),
    kernel: oddIntOption(5, 1, 63),
    pooling: oneOfOption('avg', ['avg', 'max'] as const),
  },
  create: (config) => {
    const kernel = config.kernel as number;
    const mode = config.pooling as 'avg' | 'max';
    return {
      name: 'snapkv',
      config,
      evicts: true,
      needs: { queryWindow: config.window as number },
      entryStateWidth: 0,
      score(ctx, out) {
        const raw = new Float64Array(ctx.evictable);
        windowAttention(ctx, raw);
        if (kernel > 1) pool1d(raw, kernel, mode, out); else out.set(raw);
      },
    };
  },
};

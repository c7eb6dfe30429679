/**
 * `tova`: Token Omission Via Attention (Oren et al., "Transformers are Multi-State
 * RNNs", arXiv 2401.06104).
 *
 * Kept from the paper: no accumulation; the entries that the most recent query
 * attends to least are dropped, the attention averaged over the heads. Changed: the
 * average is over the KV head's GQA group (the paper averages over a layer's heads
 * and keeps one cache per layer; here each KV head keeps its own entries); eviction
 * is amortized (down to budget − slack at once, not one token per step), using the
 * last query seen by `attend` before the compression; sinks and the window are
 * protected. With no query observed yet the most recent entries are kept.
 */
import type { PolicyFactory } from './types.ts';
import { windowAttention } from './window.ts';

export const tovaPolicy: PolicyFactory = {
  name: 'tova',
  summary: 'attention of the last query, averaged over the group (arXiv 2401.06104)',
  options: {},
  create: () => ({
    name: 'tova',
    config: {},
    evicts: true,
    needs: { queryWindow: 1 },
    entryStateWidth: 0,
    score(ctx, out) { windowAttention(ctx, out); },
  }),
};

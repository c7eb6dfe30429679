/**
 * `streaming-llm`: attention sinks plus a sliding window (Xiao et al., "Efficient
 * Streaming Language Models with Attention Sinks", arXiv 2309.17453).
 *
 * Kept from the paper: the first `sinkTokens` entries and the most recent entries,
 * nothing in between. Changed: the recent part fills the lane's whole cap (sinks +
 * `windowTokens` are the protected minimum; a larger budget keeps more recent
 * entries), and positions are the original ones (the paper re-indexes positions
 * inside the cache, a choice for the runtime's RoPE, not for the cache).
 * Implementation: a scorer whose score is recency, so the shared selector keeps the
 * newest evictable entries.
 */
import type { PolicyFactory } from './types.ts';

export const streamingLlmPolicy: PolicyFactory = {
  name: 'streaming-llm',
  summary: 'attention sinks + most recent entries (arXiv 2309.17453)',
  options: {},
  create: () => ({
    name: 'streaming-llm',
    config: {},
    evicts: true,
    needs: {},
    entryStateWidth: 0,
    score(ctx, out) {
      for (let i = 0; i < ctx.evictable; i++) out[i] = i;
    },
  }),
};

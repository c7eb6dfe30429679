/**
 * `knorm`: keep the keys with the smallest L2 norm (Devoto et al., "A Simple and
 * Effective L2 Norm-Based Strategy for KV Cache Compression", arXiv 2406.11430; the
 * `KnormPress` of kvpress).
 *
 * Kept from the paper: score = −‖k‖₂ per entry, no attention needed (works with any
 * attention kernel and before any query is seen). Changed: the norm is that of the
 * stored key (dequantized, and Hadamard-rotated when `hadamard` is on, which leaves
 * norms unchanged); sinks and the window are protected.
 */
import type { PolicyFactory } from './types.ts';

export const knormPolicy: PolicyFactory = {
  name: 'knorm',
  summary: 'keep low key-norm entries (arXiv 2406.11430)',
  options: {},
  create: (_config, geometry) => {
    const d = geometry.headDim;
    return {
      name: 'knorm',
      config: {},
      evicts: true,
      needs: {},
      entryStateWidth: 0,
      score(ctx, out) {
        const k = ctx.keys();
        for (let i = 0; i < ctx.evictable; i++) {
          const base = (ctx.evictStart + i) * d;
          let s = 0;
          for (let c = 0; c < d; c++) s += k[base + c] * k[base + c];
          out[i] = -Math.sqrt(s);
        }
      },
    };
  },
};

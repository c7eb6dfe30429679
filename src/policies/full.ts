/**
 * `full`: keeps every entry (no eviction). The reference every other policy is
 * measured against. With a compressed `precision` it is pure KV quantization (KIVI,
 * arXiv 2402.02750) without pruning. With a budget, exceeding it is an `E_BUDGET`
 * error instead of an eviction.
 */
import type { PolicyFactory } from './types.ts';

export const fullPolicy: PolicyFactory = {
  name: 'full',
  summary: 'keep every entry (no eviction)',
  options: {},
  create: () => ({ name: 'full', config: {}, evicts: false, needs: {}, entryStateWidth: 0 }),
};

/**
 * BalanceKV (Kochetkova, Sheth, Han, Zandieh, Kapralov, "Streaming Attention
 * Approximation via Discrepancy Theory", arXiv 2502.07861): discrepancy-walk KV
 * compression. Standalone components over plain arrays and WASM pointers; the cache's
 * policy (src/policies/) plugs them in. See docs/methods/balancekv.md.
 */
export * from './params.ts';
export type { BlockWalker, WalkInput, WalkRequest, WalkSigns } from './types.ts';
export { walkKey, walkUniform, mix32, SplitRng } from './rng.ts';
export { prefixHalving, smallerClassHalving, anchoredHalving } from './halving.ts';
export type { Halving, AnchoredRule } from './halving.ts';
export { ReferenceWalker, referenceWalkBlock, literalWalkBlock, referenceGram, weightedAttention } from './reference.ts';
export { WasmWalker, wasmGram } from './walk.ts';
export type { ResidentRows } from './walk.ts';
export { compressOneShot, halvingPass, resolveCompressor } from './compress.ts';
export type { OneShotOptions, CompressResult, BalanceAlgorithm, CompressorSettings } from './compress.ts';
export { softmaxBalanceLogGamma, softmaxBalanceParams, DEFAULT_DELTA } from './softmax-balance.ts';
export { needleAnchors, DEFAULT_NEEDLE_RADIUS } from './needle.ts';
export { fakeQuantize, SAMPLE_BITS } from './quantized.ts';
export type { SampleBits } from './quantized.ts';
export { BalanceKVLane, levelsForBudget, DEFAULT_SINK_TOKENS, DEFAULT_WINDOW_TOKENS, DEFAULT_LEVELS } from './streaming.ts';
export type { BalanceKVLaneOptions, LaneEntries, LevelsForBudgetOptions } from './streaming.ts';

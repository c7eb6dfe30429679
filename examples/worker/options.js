// The cache every conversation of the example worker uses (a small GQA model; set
// your model's geometry). Kept apart from worker.js so that Node code can import it.

/** `createCache` options of each conversation. */
export const CACHE_OPTIONS = Object.freeze({
  layers: 2, qHeads: 4, kvHeads: 2, headDim: 64,
  budget: Object.freeze({ tokens: 64 }), policy: 'h2o', precision: 'int4', windowTokens: 16, sinkTokens: 4,
});

/** What a stored or uploaded snapshot must match (`loadCache(..., { expect })`). */
export const GEOMETRY = Object.freeze({
  layers: CACHE_OPTIONS.layers, qHeads: CACHE_OPTIONS.qHeads, kvHeads: CACHE_OPTIONS.kvHeads, headDim: CACHE_OPTIONS.headDim,
});

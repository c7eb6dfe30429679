/**
 * The contract between the model runner and whatever stores its keys and values.
 *
 * The runner drives attention exactly as a user's inference runtime drives an edgekv
 * cache: per layer, for each new token in order, `append` that token's keys and values
 * (post-RoPE), then `attend` with its queries. An edgekv cache
 * (`engine.createCache(...)`) satisfies this interface, so any compression policy can be
 * dropped in; `ExactAttention` is the uncompressed reference.
 */

/**
 * Attention over a growing key/value store, one call per layer and token. The arrays the
 * runner passes are views of its scratch memory, valid only during the call: copy what you
 * keep; write the result into `out` (or return a new array).
 */
export interface AttentionBackend {
  /**
   * Store new tokens of one layer. `keys`, `values`: `[kvHeads, tokens, headDim]`
   * (for one token simply `[kvHeads * headDim]`), keys already rotated (RoPE).
   * `positions`: the tokens' positions `[tokens]` (optional).
   */
  append(layer: number, keys: Float32Array, values: Float32Array, positions?: Int32Array): void;
  /**
   * Attention output of one query token over everything stored for `layer`:
   * `queries` `[qHeads, headDim]` → `[qHeads, headDim]` (written to `out` when given and returned).
   */
  attend(layer: number, queries: Float32Array, out?: Float32Array): Float32Array;
  /**
   * Optional asynchronous `attend` (a backend whose attention runs on a GPU). The runner's
   * async paths (`forwardAsync`, `generateAsync`) await it when present and call `attend`
   * otherwise; same contract and result as `attend`.
   */
  attendAsync?(layer: number, queries: Float32Array, out?: Float32Array): Promise<Float32Array>;
  /** Forget every stored token (optional). */
  reset?(): void;
}

/** Shape of a model's attention. */
export interface AttentionGeometry {
  layers: number;
  qHeads: number;
  kvHeads: number;
  headDim: number;
}

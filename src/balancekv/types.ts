/**
 * Shared shapes of the BalanceKV components: what a walk backend (the WebAssembly
 * kernel in `walk.ts`, the float64 reference in `reference.ts`) consumes and returns.
 */
import type { WalkParams } from './params.ts';

/** Keys and values of the tokens a walk may visit: row-major `[tokens][d]` (post-RoPE keys). */
export interface WalkInput {
  readonly keys: Float32Array;
  readonly values: Float32Array;
  /** Head dim d (also the value dim). */
  readonly d: number;
}

/** One halving pass: the tokens to walk, in walk order, cut into blocks of B. */
export interface WalkRequest {
  /** Token indices into the input's rows, in walk order (blocks are consecutive runs of B). */
  readonly order: Int32Array;
  /** Accumulated weight of each entry of `order` (ṽ = v * weight), or null for all 1. */
  readonly weights: Float64Array | null;
  /** 1 for an anchor (needle variant: not walked, sign 0), per entry of `order`; or null. */
  readonly anchors: Uint8Array | null;
  /** Key of the counter-based RNG for this pass (`walkKey`); token i of block b uses counter b*B + i. */
  readonly rngKey: number;
}

/** The walk's output for one pass. */
export interface WalkSigns {
  /** One sign per entry of `order`: +1, -1, or 0 for anchors. */
  readonly signs: Int8Array;
  /** Walked tokens whose probability saturated (|gamma*h| > 1/2: SoftmaxBalance's FAIL event). */
  readonly saturated: number;
}

/** A walk backend. */
export interface BlockWalker {
  /** 'wasm-simd', 'wasm-scalar' or 'reference'. */
  readonly name: string;
  /** Walk every block of `req.order` and return the signs. Inputs are trusted (validated by the caller). */
  walkSigns(input: WalkInput, req: WalkRequest, p: WalkParams): WalkSigns;
}

/**
 * One-shot BalanceKV compression of a set of tokens (the paper's prefill mode, arXiv
 * 2502.07861 §4.3; the authors' `balanced_walk`): T halvings, each one a walk over
 * blocks of B tokens of the current survivors IN THEIR KEPT ORDER, followed by the
 * prefix-weight halving; weights multiply across halvings and end as log-weights ln w.
 *
 * Options beyond the walk: `algorithm: 'softmax-balance'` (the theoretical Alg. 2, see
 * softmax-balance.ts), needle `anchors` (needle.ts), `massCorrection`.
 */
import { EdgeKVError, argError, checkInt, checkNum, shapeError } from '../errors.ts';
import { anchoredHalving, prefixHalving, smallerClassHalving, type AnchoredRule, type Halving } from './halving.ts';
import { MAX_LEVELS, WALK_OPTION_KEYS, checkLevelsLeaveTokens, checkOptionKeys, resolveWalkParams, type WalkOptions, type WalkParams } from './params.ts';
import { walkKey } from './rng.ts';
import { DEFAULT_DELTA, radii, softmaxBalanceParams } from './softmax-balance.ts';
import type { BlockWalker, WalkInput } from './types.ts';

/** Which halving algorithm runs. */
export type BalanceAlgorithm = 'walk' | 'softmax-balance';

/** Options of `compressOneShot`. */
export interface OneShotOptions extends WalkOptions {
  /** Number of halvings T (>= 1): about n/2^T tokens survive. Required. */
  levels: number;
  /** Seed of the walk's counter-based RNG. Default 42 (the authors' default). */
  seed?: number;
  /** Stream id folded into the RNG key (e.g. one per lane: layer * kvHeads + head). Default 0. */
  stream?: number;
  /** 'walk' (default: the practical walk of the code) or 'softmax-balance' (theory, for study). */
  algorithm?: BalanceAlgorithm;
  /** Failure probability of 'softmax-balance'. Default 0.01. */
  delta?: number;
  /** Needle anchors, one per entry of `middle` (1 = keep exactly with weight 1), or null. */
  anchors?: Uint8Array | null;
  /** How the needle variant halves the walked tokens. Default 'prefix'. */
  anchorRule?: AnchoredRule;
}

const ONE_SHOT_KEYS = [...WALK_OPTION_KEYS, 'levels', 'seed', 'stream', 'algorithm', 'delta', 'anchors', 'anchorRule'] as const;

/** The survivors of a compression. */
export interface CompressResult {
  /** Kept token indices (rows of the input), in kept order. */
  readonly indices: Int32Array;
  /** Final weight of each kept token (product over halvings; 1 for anchors). */
  readonly weights: Float64Array;
  /** ln(weight), the log-weight attention adds to the logit. */
  readonly logWeights: Float32Array;
  /** Walked tokens whose probability saturated, summed over halvings. */
  readonly saturated: number;
  /** softmax-balance only: some |h_i| exceeded cR^2 (the algorithm's FAIL). */
  readonly failed: boolean;
}

/** Validated settings of the compressor shared by one-shot and streaming. */
export interface CompressorSettings {
  readonly walk: WalkParams;
  readonly seed: number;
  readonly stream: number;
  readonly algorithm: BalanceAlgorithm;
  readonly delta: number;
  readonly anchorRule: AnchoredRule;
}

/** Validate the non-walk compressor options. */
export function resolveCompressor(o: Omit<OneShotOptions, 'levels'>, prefix = 'options'): CompressorSettings {
  const walk = resolveWalkParams(o, prefix);
  const seed = checkInt(`${prefix}.seed`, o.seed ?? 42, 0, 0xffffffff);
  const stream = checkInt(`${prefix}.stream`, o.stream ?? 0, 0, 0xffffffff);
  const algorithm = o.algorithm ?? 'walk';
  if (algorithm !== 'walk' && algorithm !== 'softmax-balance') throw argError(`${prefix}.algorithm`, algorithm, '"walk" or "softmax-balance"');
  const delta = checkNum(`${prefix}.delta`, o.delta ?? DEFAULT_DELTA, Number.MIN_VALUE, 0.5);
  const anchorRule = o.anchorRule ?? 'prefix';
  if (anchorRule !== 'prefix' && anchorRule !== 'code') throw argError(`${prefix}.anchorRule`, anchorRule, '"prefix" or "code"');
  return { walk, seed, stream, algorithm, delta, anchorRule };
}

/** Validate keys/values `[tokens][d]` (finite, matching) and return the token count. */
export function checkInput(input: WalkInput, name = 'input'): number {
  if (input === null || typeof input !== 'object') throw argError(name, input, 'an object { keys, values, d }');
  const d = checkInt(`${name}.d`, input.d, 1, 4096);
  if (!(input.keys instanceof Float32Array)) throw argError(`${name}.keys`, input.keys, 'a Float32Array [tokens][d]');
  if (!(input.values instanceof Float32Array)) throw argError(`${name}.values`, input.values, 'a Float32Array [tokens][d]');
  if (input.keys.length % d !== 0) throw shapeError(`${name}.keys`, `length ${input.keys.length}`, `a multiple of d = ${d}`);
  if (input.values.length !== input.keys.length) throw shapeError(`${name}.values`, `length ${input.values.length}`, `length ${input.keys.length} (as keys)`);
  for (const [arr, nm] of [[input.keys, 'keys'], [input.values, 'values']] as const) {
    for (let i = 0; i < arr.length; i++) {
      if (!Number.isFinite(arr[i])) throw new EdgeKVError('E_NONFINITE', `${name}.${nm}[${i}] = ${arr[i]} is not finite; keys and values must be finite`, `${name}.${nm}`);
    }
  }
  return input.keys.length / d;
}

/**
 * One halving pass over `order` (weights and anchors per entry): walk, halve, update.
 * Returns the survivors' order, weights and anchors, plus the walk's saturation count.
 */
export function halvingPass(walker: BlockWalker, input: WalkInput, order: Int32Array, weights: Float64Array, anchors: Uint8Array | null,
  s: CompressorSettings, rngKey: number): { order: Int32Array; weights: Float64Array; anchors: Uint8Array | null; saturated: number } {
  let p = s.walk;
  if (s.algorithm === 'softmax-balance') {
    const r = radii(input.keys, input.values, input.d, order, weights);
    p = softmaxBalanceParams(s.walk, r.rKey, r.rValue, input.d, s.delta);
  }
  const ws = walker.walkSigns(input, { order, weights, anchors, rngKey }, p);
  let hv: Halving;
  if (s.algorithm === 'softmax-balance') hv = smallerClassHalving(ws.signs);
  else if (anchors) hv = anchoredHalving(ws.signs, anchors, s.anchorRule);
  else hv = prefixHalving(ws.signs);
  const m = hv.keep.length;
  const nOrder = new Int32Array(m), nW = new Float64Array(m);
  const nA = anchors ? new Uint8Array(m) : null;
  for (let k = 0; k < m; k++) {
    const i = hv.keep[k];
    nOrder[k] = order[i];
    nW[k] = weights[i] * hv.factor[k];
    if (nA && anchors) nA[k] = anchors[i];
  }
  if (s.walk.massCorrection) {
    let before = 0, after = 0;
    for (let i = 0; i < order.length; i++) if (!anchors || !anchors[i]) before += weights[i];
    for (let k = 0; k < m; k++) if (!nA || !nA[k]) after += nW[k];
    if (after > 0) for (let k = 0; k < m; k++) if (!nA || !nA[k]) nW[k] *= before / after;
  }
  return { order: nOrder, weights: nW, anchors: nA, saturated: ws.saturated };
}

/**
 * Compress the tokens `middle` (row indices of `input`, in position order) with T = levels
 * halvings. Validates everything first; a rejected call changes nothing.
 */
export function compressOneShot(walker: BlockWalker, input: WalkInput, middle: Int32Array, options: OneShotOptions): CompressResult {
  if (options === null || typeof options !== 'object') throw argError('options', options, 'an options object');
  checkOptionKeys('options', options, ONE_SHOT_KEYS);
  const tokens = checkInput(input);
  const s = resolveCompressor(options);
  const levels = checkInt('options.levels', options.levels, 1, MAX_LEVELS);
  if (!(middle instanceof Int32Array)) throw argError('middle', middle, 'an Int32Array of token indices');
  for (let i = 0; i < middle.length; i++) {
    if (middle[i] < 0 || middle[i] >= tokens) throw argError(`middle[${i}]`, middle[i], `a token index in [0, ${tokens - 1}]`);
  }
  checkLevelsLeaveTokens(levels, middle.length, 'options.levels');
  let anchors: Uint8Array | null = null;
  if (options.anchors != null) {
    if (!(options.anchors instanceof Uint8Array)) throw argError('options.anchors', options.anchors, 'a Uint8Array (one flag per middle token) or null');
    if (options.anchors.length !== middle.length) throw shapeError('options.anchors', `length ${options.anchors.length}`, `length ${middle.length} (one per middle token)`);
    if (s.algorithm !== 'walk') throw argError('options.algorithm', s.algorithm, '"walk" when anchors are given');
    anchors = options.anchors.slice();
  }
  let order: Int32Array = middle.slice();
  let weights: Float64Array = new Float64Array(order.length).fill(1);
  let saturated = 0;
  for (let t = 0; t < levels; t++) {
    const r = halvingPass(walker, input, order, weights, anchors, s, walkKey(s.seed, s.stream, t, 0));
    order = r.order; weights = r.weights; anchors = r.anchors; saturated += r.saturated;
  }
  const logWeights = new Float32Array(order.length);
  for (let k = 0; k < order.length; k++) logWeights[k] = Math.log(weights[k]);
  return { indices: order, weights, logWeights, saturated, failed: s.algorithm === 'softmax-balance' && saturated > 0 };
}

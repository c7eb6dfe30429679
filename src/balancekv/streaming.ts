/**
 * A BalanceKV lane over plain Float32Array keys/values: `[sinks | compressed | window]`,
 * in one of the two modes of the paper (arXiv 2502.07861):
 *
 * - `mode: 'stream'` (default; §4.2 MergeAndReduce, reconstructed): tokens leaving the
 *   recent window enter level 0; when level l holds B tokens, ONE walk halving (one block)
 *   runs on it and its survivors, weights multiplied by 2 or 1 (prefix rule), are appended
 *   to level l+1 in kept order; level T (the top) accumulates without further halving.
 *   Memory: sinks + window + T*(B-1) + about n/2^T entries for n tokens seen.
 * - `mode: 'prefill'` (§4.3, what the experiments do): `prefill(keys, values)` compresses
 *   the middle of the prompt once with T halvings (compress.ts); tokens appended later go
 *   through the window and stay exact (weight 1) when they leave it.
 *
 * `entries()` returns what attention reads: keys, values, positions and log-weights
 * (0 for exact tokens, ln w for samples). Options: the walk's (params.ts), needle anchors
 * (needle.ts), low-bit samples (quantized.ts), 'softmax-balance' (softmax-balance.ts).
 * Every public entry point validates its input; a rejected call changes nothing.
 */
import type { Engine } from '../engine.ts';
import { EdgeKVError, argError, checkInt, checkKeys, shapeError } from '../errors.ts';
import { defaultValueGroup } from '../formats.ts';
import { compressOneShot, halvingPass, resolveCompressor, type BalanceAlgorithm, type CompressorSettings } from './compress.ts';
import type { AnchoredRule } from './halving.ts';
import { DEFAULT_NEEDLE_RADIUS, needleAnchors } from './needle.ts';
import { MAX_LEVELS, WALK_OPTION_KEYS, keptAfter, levelsForRatio, type WalkOptions } from './params.ts';
import { QUANT_MAX_ABS, SAMPLE_BITS, checkQuantGeometry, fakeQuantize, type SampleBits } from './quantized.ts';
import { walkKey } from './rng.ts';
import type { BlockWalker } from './types.ts';

/** Sinks of the authors' LongBench runs. */
export const DEFAULT_SINK_TOKENS = 32;
/** Recent window of the authors' LongBench runs. */
export const DEFAULT_WINDOW_TOKENS = 32;
/** Default halvings T (the code's `itrs`: a 1/4 budget). */
export const DEFAULT_LEVELS = 2;
/** Largest head dim a lane accepts. */
const MAX_HEAD_DIM = 4096;
/** Largest sink / window count. */
const MAX_EXACT_TOKENS = 1 << 24;

/** Options of a BalanceKV lane. */
export interface BalanceKVLaneOptions extends WalkOptions {
  /** Head dim d of keys and values. Required. */
  headDim: number;
  /** First tokens kept exactly. Default 32. */
  sinkTokens?: number;
  /** Most recent tokens kept exactly. Default 32. */
  windowTokens?: number;
  /** Halvings T (1..24). Default 2. Give `levels` or `ratio`, not both. */
  levels?: number;
  /** Compression ratio of the middle, 2^-T (0.5, 0.25, ...). */
  ratio?: number;
  /** 'stream' (merge-and-reduce during decoding, default) or 'prefill' (one-shot on the prompt). */
  mode?: 'stream' | 'prefill';
  /** RNG seed. Default 42. */
  seed?: number;
  /** RNG stream (one per lane). Default 0. */
  stream?: number;
  /** 'walk' (default) or 'softmax-balance' (theory, for study). */
  algorithm?: BalanceAlgorithm;
  /** softmax-balance failure probability. Default 0.01. */
  delta?: number;
  /**
   * Needle-aware variant: true, or { radius (default 25), rule ('prefix' | 'code') }, or
   * { anchors } with precomputed anchors for prefill mode (one per middle token, e.g. the
   * mask of layer 1 reused by deeper layers as the authors do). Default false.
   */
  needle?: boolean | { radius?: number; rule?: AnchoredRule; anchors?: Uint8Array };
  /** Bits of the compressed samples: 32 (exact f32, default), 8 or 4 (KIVI layout). */
  sampleBits?: SampleBits;
  /** Value quantization group (channels) for 8/4-bit samples. Default min(32, headDim). */
  valueGroup?: number;
}

const LANE_KEYS = [...WALK_OPTION_KEYS, 'headDim', 'sinkTokens', 'windowTokens', 'levels', 'ratio', 'mode', 'seed', 'stream',
  'algorithm', 'delta', 'needle', 'sampleBits', 'valueGroup'] as const;

/** What attention reads from a lane. */
export interface LaneEntries {
  /** `[count][d]` */
  readonly keys: Float32Array;
  /** `[count][d]` */
  readonly values: Float32Array;
  /** Original positions `[count]`. */
  readonly positions: Int32Array;
  /** Log-weights `[count]`: 0 for exact tokens, ln w for samples. */
  readonly logWeights: Float32Array;
  readonly count: number;
  /** Entries per tier, in the order they appear: sinks, compressed (top, then levels T-1..0), exact residual, window. */
  readonly tiers: { sinks: number; compressed: number; residual: number; window: number };
}

/** A growable set of rows with per-row position, weight and anchor flag; `head` supports FIFO pops. */
class RowStore {
  keys: Float32Array;
  values: Float32Array;
  positions: Int32Array;
  weights: Float64Array;
  anchors: Uint8Array;
  head = 0;
  end = 0;
  constructor(readonly d: number, capacity = 16) {
    this.keys = new Float32Array(capacity * d);
    this.values = new Float32Array(capacity * d);
    this.positions = new Int32Array(capacity);
    this.weights = new Float64Array(capacity);
    this.anchors = new Uint8Array(capacity);
  }
  get count(): number { return this.end - this.head; }
  private reserve(extra: number): void {
    const cap = this.positions.length;
    if (this.end + extra <= cap) return;
    const live = this.count;
    const want = Math.max(16, live + extra, live * 2);
    const d = this.d;
    const k = new Float32Array(want * d), v = new Float32Array(want * d);
    k.set(this.keys.subarray(this.head * d, this.end * d));
    v.set(this.values.subarray(this.head * d, this.end * d));
    const p = new Int32Array(want), w = new Float64Array(want), a = new Uint8Array(want);
    p.set(this.positions.subarray(this.head, this.end));
    w.set(this.weights.subarray(this.head, this.end));
    a.set(this.anchors.subarray(this.head, this.end));
    this.keys = k; this.values = v; this.positions = p; this.weights = w; this.anchors = a;
    this.head = 0; this.end = live;
  }
  push(k: Float32Array, ko: number, v: Float32Array, vo: number, pos: number, weight: number, anchor: number): void {
    this.reserve(1);
    const d = this.d, e = this.end;
    this.keys.set(k.subarray(ko, ko + d), e * d);
    this.values.set(v.subarray(vo, vo + d), e * d);
    this.positions[e] = pos; this.weights[e] = weight; this.anchors[e] = anchor;
    this.end++;
  }
  /** Copy row i (0 = oldest live) of `src` into this store with a new weight. */
  pushFrom(src: RowStore, i: number, weight: number, anchor: number): void {
    const r = src.head + i, d = this.d;
    this.push(src.keys, r * d, src.values, r * d, src.positions[r], weight, anchor);
  }
  /** Drop the oldest row (FIFO). */
  shift(): void {
    this.head++;
    if (this.head === this.end) { this.head = 0; this.end = 0; }
  }
  clear(): void { this.head = 0; this.end = 0; }
  /** Shrink storage to the live rows (after a level is emptied, memory really goes back). */
  release(): void {
    if (this.count === 0 && this.positions.length > 16) {
      this.keys = new Float32Array(16 * this.d); this.values = new Float32Array(16 * this.d);
      this.positions = new Int32Array(16); this.weights = new Float64Array(16); this.anchors = new Uint8Array(16);
      this.head = 0; this.end = 0;
    }
  }
  liveKeys(): Float32Array { return this.keys.subarray(this.head * this.d, this.end * this.d); }
  liveValues(): Float32Array { return this.values.subarray(this.head * this.d, this.end * this.d); }
}

/** A BalanceKV-compressed lane (see the module comment). */
export class BalanceKVLane {
  readonly headDim: number;
  readonly sinkTokens: number;
  readonly windowTokens: number;
  readonly levels: number;
  readonly mode: 'stream' | 'prefill';
  readonly sampleBits: SampleBits;
  readonly valueGroup: number;
  private readonly walker: BlockWalker;
  private readonly engine: Engine | null;
  private readonly settings: CompressorSettings;
  private readonly needle: { radius: number; anchors: Uint8Array | null } | null;
  private readonly sinks: RowStore;
  private readonly window: RowStore;
  private readonly residual: RowStore;
  private readonly buffers: RowStore[];
  private readonly top: RowStore;
  private readonly merges: number[];
  private seen = 0;
  private prefilled = false;
  private saturatedSteps = 0;
  private peak = 0;

  /**
   * @param walker the walk backend (`new WasmWalker(engine)` or `new ReferenceWalker()`)
   * @param options see `BalanceKVLaneOptions`
   * @param engine the engine whose quant kernels make low-bit samples (null: float64 reference)
   */
  constructor(walker: BlockWalker, options: BalanceKVLaneOptions, engine: Engine | null = null) {
    if (walker === null || typeof walker !== 'object' || typeof walker.walkSigns !== 'function') throw argError('walker', walker, 'a BlockWalker (WasmWalker or ReferenceWalker)');
    if (options === null || typeof options !== 'object') throw argError('options', options, 'an options object');
    checkKeys('options', options, LANE_KEYS);
    this.headDim = checkInt('options.headDim', options.headDim, 1, MAX_HEAD_DIM);
    this.sinkTokens = checkInt('options.sinkTokens', options.sinkTokens ?? DEFAULT_SINK_TOKENS, 0, MAX_EXACT_TOKENS);
    this.windowTokens = checkInt('options.windowTokens', options.windowTokens ?? DEFAULT_WINDOW_TOKENS, 0, MAX_EXACT_TOKENS);
    if (options.levels !== undefined && options.ratio !== undefined) throw argError('options.ratio', options.ratio, 'absent when options.levels is given', 'give one of levels, ratio');
    this.levels = options.ratio !== undefined ? levelsForRatio(options.ratio, 'options.ratio') : checkInt('options.levels', options.levels ?? DEFAULT_LEVELS, 1, MAX_LEVELS);
    const mode = options.mode ?? 'stream';
    if (mode !== 'stream' && mode !== 'prefill') throw argError('options.mode', mode, '"stream" or "prefill"');
    this.mode = mode;
    this.settings = resolveCompressor(options);
    const bits = options.sampleBits ?? 32;
    if (!SAMPLE_BITS.includes(bits)) throw argError('options.sampleBits', bits, 'one of 32, 8, 4');
    this.sampleBits = bits;
    this.valueGroup = options.valueGroup ?? defaultValueGroup(this.headDim);
    checkQuantGeometry(this.headDim, this.valueGroup, bits);
    const nd = options.needle ?? false;
    if (nd === false) this.needle = null;
    else {
      if (nd !== true && (typeof nd !== 'object' || nd === null)) throw argError('options.needle', nd, 'true, false or { radius, rule, anchors }');
      const o = nd === true ? {} : nd;
      if (nd !== true) checkKeys('options.needle', o, ['radius', 'rule', 'anchors']);
      const radius = checkInt('options.needle.radius', o.radius ?? DEFAULT_NEEDLE_RADIUS, 0, MAX_EXACT_TOKENS);
      const rule = o.rule ?? 'prefix';
      if (rule !== 'prefix' && rule !== 'code') throw argError('options.needle.rule', rule, '"prefix" or "code"');
      if (o.anchors !== undefined && !(o.anchors instanceof Uint8Array)) throw argError('options.needle.anchors', o.anchors, 'a Uint8Array (one flag per middle token)');
      if (o.anchors !== undefined && mode !== 'prefill') throw argError('options.needle.anchors', 'Uint8Array', 'absent in stream mode (anchors are computed per level-0 buffer)');
      if (this.settings.algorithm !== 'walk') throw argError('options.algorithm', this.settings.algorithm, '"walk" with the needle variant');
      this.needle = { radius, anchors: o.anchors ?? null };
      this.settings = { ...this.settings, anchorRule: rule };
    }
    this.walker = walker;
    this.engine = engine;
    const d = this.headDim;
    this.sinks = new RowStore(d);
    this.window = new RowStore(d);
    this.residual = new RowStore(d);
    this.buffers = Array.from({ length: this.levels }, () => new RowStore(d));
    this.top = new RowStore(d);
    this.merges = new Array(this.levels).fill(0);
  }

  /** Tokens appended so far (including prefill). */
  get tokensSeen(): number { return this.seen; }
  /** Entries held now. */
  get size(): number {
    let s = this.sinks.count + this.window.count + this.residual.count + this.top.count;
    for (const b of this.buffers) s += b.count;
    return s;
  }
  /** Largest `size` seen after any call. */
  get peakSize(): number { return this.peak; }
  /** Walked tokens whose probability saturated, over all halvings so far (how greedy the walk was). */
  get saturated(): number { return this.saturatedSteps; }

  /**
   * Upper bound on `size` after n tokens in stream mode: sinks + window + T*(B-1) + the top
   * level, which holds at most n_mid/2^T entries.
   */
  memoryBound(n: number): number {
    const B = this.settings.walk.blockSize;
    const mid = Math.max(0, n - this.sinkTokens - this.windowTokens);
    return Math.min(n, this.sinkTokens + this.windowTokens + this.levels * (B - 1) + Math.floor(mid / 2 ** this.levels));
  }

  private checkRows(keys: Float32Array, values: Float32Array, positions: Int32Array | undefined, what: string): number {
    const d = this.headDim;
    if (!(keys instanceof Float32Array)) throw argError(`${what}.keys`, keys, `a Float32Array [tokens][${d}]`);
    if (!(values instanceof Float32Array)) throw argError(`${what}.values`, values, `a Float32Array [tokens][${d}]`);
    if (keys.length % d !== 0) throw shapeError('keys', `length ${keys.length}`, `a multiple of headDim = ${d}`);
    if (values.length !== keys.length) throw shapeError('values', `length ${values.length}`, `length ${keys.length} (as keys)`);
    const m = keys.length / d;
    for (const [arr, nm] of [[keys, 'keys'], [values, 'values']] as const) {
      for (let i = 0; i < arr.length; i++) if (!Number.isFinite(arr[i])) throw new EdgeKVError('E_NONFINITE', `${nm}[${i}] = ${arr[i]} is not finite; keys and values must be finite`, nm);
      if (this.sampleBits !== 32) {
        for (let i = 0; i < arr.length; i++) {
          if (Math.abs(arr[i]) > QUANT_MAX_ABS) throw argError(`${nm}[${i}]`, arr[i], `a magnitude <= ${QUANT_MAX_ABS} for ${this.sampleBits}-bit samples (f16 scales)`, 'use sampleBits: 32');
        }
      }
    }
    if (positions !== undefined) {
      if (!(positions instanceof Int32Array)) throw argError('positions', positions, 'an Int32Array, one per token');
      if (positions.length !== m) throw shapeError('positions', `length ${positions.length}`, `length ${m} (one per token)`);
    }
    return m;
  }

  /**
   * Append tokens (`keys`, `values`: `[m][headDim]`; `positions` default: running count).
   * Stream mode compresses tokens leaving the window as they arrive; prefill mode keeps them exact.
   */
  append(keys: Float32Array, values: Float32Array, positions?: Int32Array): void {
    const m = this.checkRows(keys, values, positions, 'append');
    const d = this.headDim;
    for (let t = 0; t < m; t++) {
      const idx = this.seen;
      const pos = positions ? positions[t] : idx;
      this.seen++;
      if (idx < this.sinkTokens && this.sinks.count === idx) {
        this.sinks.push(keys, t * d, values, t * d, pos, 1, 0);
        continue;
      }
      this.window.push(keys, t * d, values, t * d, pos, 1, 0);
      if (this.window.count > this.windowTokens) {
        this.evict();
        this.window.shift();
      }
    }
    this.peak = Math.max(this.peak, this.size);
  }

  /** The oldest window token leaves the window. */
  private evict(): void {
    if (this.mode === 'prefill') {
      this.residual.pushFrom(this.window, 0, 1, 0);
      return;
    }
    const b0 = this.buffers[0];
    b0.pushFrom(this.window, 0, 1, 0);
    if (b0.count === this.settings.walk.blockSize) this.reduce(0);
  }

  /** Level l is full: quantize/anchor (level 0), walk one block, push survivors up. */
  private reduce(level: number): void {
    const buf = this.buffers[level];
    const n = buf.count, d = this.headDim;
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    if (level === 0) {
      if (this.sampleBits !== 32) {
        const q = fakeQuantize(this.engine, buf.liveKeys(), buf.liveValues(), order, d, this.sampleBits, this.valueGroup);
        buf.liveKeys().set(q.keys);
        buf.liveValues().set(q.values);
      }
      if (this.needle) buf.anchors.set(needleAnchors(buf.liveKeys(), n, d, this.settings.walk.blockSize, this.needle.radius), buf.head);
    }
    const weights = buf.weights.slice(buf.head, buf.end);
    const anc = this.needle ? buf.anchors.slice(buf.head, buf.end) : null;
    const input = { keys: buf.liveKeys(), values: buf.liveValues(), d };
    const r = halvingPass(this.walker, input, order, weights, anc, this.settings,
      walkKey(this.settings.seed, this.settings.stream, level + 1, this.merges[level]++));
    this.saturatedSteps += r.saturated;
    const dst = level + 1 < this.levels ? this.buffers[level + 1] : this.top;
    for (let k = 0; k < r.order.length; k++) dst.pushFrom(buf, r.order[k], r.weights[k], r.anchors ? r.anchors[k] : 0);
    buf.clear();
    buf.release();
    if (level + 1 < this.levels && dst.count === this.settings.walk.blockSize) this.reduce(level + 1);
  }

  /**
   * Prefill: in prefill mode, compress the prompt once (sinks and window exact, the middle
   * through T halvings); the lane must be empty. In stream mode the same as `append`.
   * Throws E_BUDGET when T halvings would leave nothing of a non-empty middle.
   */
  prefill(keys: Float32Array, values: Float32Array, positions?: Int32Array): void {
    if (this.mode === 'stream') { this.append(keys, values, positions); return; }
    if (this.prefilled || this.seen > 0) throw new EdgeKVError('E_STATE', 'prefill() runs once, on an empty lane; use append() for later tokens', 'prefill');
    const m = this.checkRows(keys, values, positions, 'prefill');
    const d = this.headDim;
    const S = Math.min(this.sinkTokens, m);
    const W = Math.min(this.windowTokens, m - S);
    const nMid = m - S - W;
    const middle = new Int32Array(nMid);
    for (let i = 0; i < nMid; i++) middle[i] = S + i;
    let anchors: Uint8Array | null = null;
    if (this.needle) {
      if (this.needle.anchors) {
        if (this.needle.anchors.length !== nMid) throw shapeError('options.needle.anchors', `length ${this.needle.anchors.length}`, `length ${nMid} (one per middle token)`);
        anchors = this.needle.anchors;
      }
    }
    let input = { keys, values, d };
    if (this.sampleBits !== 32 && nMid > 0) {
      const q = fakeQuantize(this.engine, keys, values, middle, d, this.sampleBits, this.valueGroup);
      const k2 = keys.slice(), v2 = values.slice();
      k2.set(q.keys, S * d);
      v2.set(q.values, S * d);
      input = { keys: k2, values: v2, d };
    }
    if (this.needle && !anchors) anchors = needleAnchors(input.keys.subarray(S * d, (S + nMid) * d), nMid, d, this.settings.walk.blockSize, this.needle.radius);
    let result = null;
    if (nMid > 0) {
      const s = this.settings;
      result = compressOneShot(this.walker, input, middle, {
        levels: this.levels, gamma: s.walk.gamma, temp: s.walk.temp, beta: s.walk.beta, blockSize: s.walk.blockSize,
        c0: s.walk.c0, center: s.walk.center, massCorrection: s.walk.massCorrection, seed: s.seed, stream: s.stream,
        algorithm: s.algorithm, delta: s.delta, anchors, anchorRule: s.anchorRule,
      });
    }
    // Nothing is stored until every check and the compression succeeded.
    for (let t = 0; t < S; t++) this.sinks.push(keys, t * d, values, t * d, positions ? positions[t] : t, 1, 0);
    if (result) {
      this.saturatedSteps += result.saturated;
      for (let k = 0; k < result.indices.length; k++) {
        const i = result.indices[k];
        this.top.push(input.keys, i * d, input.values, i * d, positions ? positions[i] : i, result.weights[k], 0);
      }
    }
    for (let t = m - W; t < m; t++) this.window.push(keys, t * d, values, t * d, positions ? positions[t] : t, 1, 0);
    this.seen = m;
    this.prefilled = true;
    this.peak = Math.max(this.peak, this.size);
  }

  /** Current entries for attention (copies). */
  entries(): LaneEntries {
    const d = this.headDim;
    const tiers = [this.sinks, this.top, ...[...this.buffers].reverse(), this.residual, this.window];
    const count = tiers.reduce((a, s) => a + s.count, 0);
    const keys = new Float32Array(count * d), values = new Float32Array(count * d);
    const positions = new Int32Array(count), logWeights = new Float32Array(count);
    let o = 0;
    for (const s of tiers) {
      keys.set(s.liveKeys(), o * d);
      values.set(s.liveValues(), o * d);
      positions.set(s.positions.subarray(s.head, s.end), o);
      for (let i = 0; i < s.count; i++) logWeights[o + i] = Math.log(s.weights[s.head + i]);
      o += s.count;
    }
    let compressed = this.top.count;
    for (const b of this.buffers) compressed += b.count;
    return { keys, values, positions, logWeights, count, tiers: { sinks: this.sinks.count, compressed, residual: this.residual.count, window: this.window.count } };
  }
}

/** Inputs of `levelsForBudget`. */
export interface LevelsForBudgetOptions {
  /** Tokens the lane will hold uncompressed (prompt length, or expected stream length). */
  tokens: number;
  /** Entries the lane may keep. */
  budgetTokens: number;
  sinkTokens?: number;
  windowTokens?: number;
  /** Block size B (stream mode counts T*(B-1) level buffers). Default 128. */
  blockSize?: number;
  mode?: 'stream' | 'prefill';
}

/**
 * Smallest T whose lane fits `budgetTokens` entries after `tokens` tokens: prefill mode
 * sinks + window + floor^T(n_mid/2); stream mode the `memoryBound`. Throws E_BUDGET naming
 * budgetTokens when the budget cannot even hold sinks + window, or no T <= 24 fits.
 */
export function levelsForBudget(o: LevelsForBudgetOptions): number {
  if (o === null || typeof o !== 'object') throw argError('options', o, 'an options object');
  checkKeys('options', o, ['tokens', 'budgetTokens', 'sinkTokens', 'windowTokens', 'blockSize', 'mode']);
  const n = checkInt('options.tokens', o.tokens, 0, 2 ** 31 - 1);
  const budget = checkInt('options.budgetTokens', o.budgetTokens, 0, 2 ** 31 - 1);
  const S = checkInt('options.sinkTokens', o.sinkTokens ?? DEFAULT_SINK_TOKENS, 0, MAX_EXACT_TOKENS);
  const W = checkInt('options.windowTokens', o.windowTokens ?? DEFAULT_WINDOW_TOKENS, 0, MAX_EXACT_TOKENS);
  const B = checkInt('options.blockSize', o.blockSize ?? 128, 2, 4096);
  const mode = o.mode ?? 'stream';
  if (mode !== 'stream' && mode !== 'prefill') throw argError('options.mode', mode, '"stream" or "prefill"');
  if (budget < S + W + 1) {
    throw new EdgeKVError('E_BUDGET', `options.budgetTokens = ${budget} cannot hold sinkTokens + windowTokens = ${S + W} plus at least one compressed entry; expected >= ${S + W + 1}, or lower sinkTokens/windowTokens`, 'options.budgetTokens');
  }
  const mid = Math.max(0, n - S - W);
  for (let T = 1; T <= MAX_LEVELS; T++) {
    const size = mode === 'prefill' ? S + W + keptAfter(mid, T) : Math.min(n, S + W + T * (B - 1) + Math.floor(mid / 2 ** T));
    if (size <= budget) {
      if (mid > 0 && keptAfter(mid, T) === 0 && mode === 'prefill') break;
      return T;
    }
  }
  throw new EdgeKVError('E_BUDGET', `options.budgetTokens = ${budget} cannot hold ${n} tokens with sinks ${S}, window ${W}${mode === 'stream' ? `, block size ${B}` : ''} at any T <= ${MAX_LEVELS}; raise the budget${mode === 'stream' ? ' or lower blockSize' : ''}`, 'options.budgetTokens');
}

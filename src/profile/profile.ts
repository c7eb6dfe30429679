/**
 * The one-time profiling pass of BaKlaVa (arXiv 2502.13176), run by `edgekv profile`:
 * rate every lane of a model once, search a small family of allocations by perplexity
 * on a calibration text, and return a `Profile` (schema.ts) for the `baklava` and
 * `adakv` planners.
 *
 * 1. **Capture** (one exact forward): a spy attention backend sees every layer's keys,
 *    values, queries and outputs. Head importance (the paper's heuristic, in our reading
 *    of it) is `1 − mean_t cos(v_t, o_{h,t})`: the cosine between what a head reads (the
 *    value vector of the current token, the head's own projection of its input) and what
 *    it writes (its attention output); a head that changes its input more matters more.
 *    Query-head scores are averaged over each GQA group (per KV head, i.e. per lane).
 * 2. **Layer importance**: the paper scales head scores by a layer proxy. The runner does
 *    not expose hidden states to an attention backend, so instead of the cosine between
 *    a layer's input and output we *measure* each layer's sensitivity: the KL of the
 *    calibration text (vs the full cache) when only that layer is compressed at the
 *    calibration budget. `layers.headMean` keeps the head-based proxy beside it.
 * 3. **Score curves** (for AdaKV): each lane's SnapKV observation-window attention at
 *    several checkpoints, over the entries a policy may evict, sorted and sampled.
 * 4. **Search**: uniform plus each family × alpha (baklava.ts), each run through the
 *    model at the calibration budget; the lowest perplexity (or KL) wins. If uniform
 *    wins, the profile says so (weights all 1).
 */
import type { Engine } from '../engine.ts';
import { EdgeKVError, checkInt, checkNum } from '../errors.ts';
import { createCache } from '../cache/cache.ts';
import { baklavaWeights, laneImportance, weightedPlanner } from '../budget/baklava.ts';
import type { PlannerInput } from '../budget/types.ts';
import { PAGE_TOKENS, pageBytes } from '../formats.ts';
import type { LlamaModel } from '../model/llama.ts';
import type { AttentionBackend } from '../model/types.ts';
import { klDivergence, nll } from '../eval/metrics.ts';
import { PROFILE_FORMAT, PROFILE_VERSION, type BaklavaFamily, type Profile, type SearchCandidate } from './schema.ts';

/** Options of `profileModel` (defaults in `PROFILE_DEFAULTS`). */
export interface ProfileOptions {
  /** Budget of the sensitivity runs and the search, as a fraction of the full f16 cache's bytes. */
  ratio: number;
  /** Policy of the sensitivity runs and the search (a scorer, e.g. 'snapkv'). */
  policy: string;
  /** Observation window (queries) of the score curves. */
  window: number;
  sinkTokens: number;
  windowTokens: number;
  /** Search metric (the paper uses perplexity). */
  metric: 'ppl' | 'kl';
  families: BaklavaFamily[];
  alphas: number[];
  floor: number;
  /** Points of each score curve. */
  curvePoints: number;
  /** Positions from this fraction of the text on are scored (as `edgekv eval`). */
  evalFrom: number;
  /** Description of the text (file name) and model (directory), recorded in the profile. */
  text?: string;
  source?: string;
  seed?: number;
  /** Progress messages (the library prints nothing by itself). */
  onProgress?: (message: string) => void;
}

/** Defaults: the evaluation's sinks / window, 1/8 of the bytes, SnapKV, perplexity. */
export const PROFILE_DEFAULTS: Omit<ProfileOptions, 'onProgress' | 'text' | 'source' | 'seed'> = {
  ratio: 1 / 8,
  policy: 'snapkv',
  window: 32,
  sinkTokens: 4,
  windowTokens: 64,
  metric: 'ppl',
  families: ['heads', 'layers', 'both'],
  alphas: [0.5, 1],
  floor: 0.25,
  curvePoints: 128,
  evalFrom: 0.5,
};

/** The cache's default value group for `headDim` (32, 16 or 8 channels, whichever divides it first). */
function defaultValueGroup(headDim: number): number {
  return [32, 16, 8].find((g) => headDim % g === 0) ?? headDim;
}

/** Checkpoints (fractions of the text) at which score curves are taken. */
const CURVE_CHECKPOINTS = [0.25, 0.5, 0.75, 1];

/** Bytes of the full f16 cache of `tokens` tokens (every lane, whole pages), as `edgekv eval`. */
export function fullF16Bytes(model: LlamaModel, tokens: number): number {
  const c = model.config;
  return c.layers * c.kvHeads * Math.ceil(tokens / PAGE_TOKENS) * pageBytes('f16', c.headDim, defaultValueGroup(c.headDim));
}

/** Everything the capture pass records. */
interface Captured {
  /** Per layer: keys `[T][kvHeads·d]`, queries `[T][qHeads·d]`. */
  keys: Float32Array[];
  queries: Float32Array[];
  /** Σ_t cos(v, o) per layer and query head, and counts. */
  cosSum: Float64Array[];
  tokens: number;
}

function cosine(a: Float32Array, ao: number, b: Float32Array, bo: number, d: number): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < d; i++) { const x = a[ao + i], y = b[bo + i]; ab += x * y; aa += x * x; bb += y * y; }
  const den = Math.sqrt(aa * bb);
  return den > 0 ? ab / den : 1;
}

/** One exact forward that records K, Q and the head cosines; returns the reference logits from `from` on. */
function capture(model: LlamaModel, ids: number[], from: number): { cap: Captured; ref: Float32Array } {
  const c = model.config, d = c.headDim, T = ids.length, G = c.qHeads / c.kvHeads;
  const kvDim = c.kvHeads * d, qDim = c.qHeads * d, V = c.vocabSize;
  const cap: Captured = {
    keys: Array.from({ length: c.layers }, () => new Float32Array(T * kvDim)),
    queries: Array.from({ length: c.layers }, () => new Float32Array(T * qDim)),
    cosSum: Array.from({ length: c.layers }, () => new Float64Array(c.qHeads)),
    tokens: T,
  };
  const n = new Array<number>(c.layers).fill(0);
  const lastV = Array.from({ length: c.layers }, () => new Float32Array(kvDim));
  const exact = model.createExactAttention({ initialCapacity: T + 8 });
  const spy: AttentionBackend = {
    append(layer, k, v, pos) {
      // one token per call in the runner: [kvHeads, 1, d]
      cap.keys[layer].set(k, n[layer] * kvDim);
      lastV[layer].set(v);
      exact.append(layer, k, v, pos);
    },
    attend(layer, q, out) {
      cap.queries[layer].set(q, n[layer] * qDim);
      const o = exact.attend(layer, q, out);
      for (let h = 0; h < c.qHeads; h++) cap.cosSum[layer][h] += cosine(lastV[layer], Math.floor(h / G) * d, o, h * d, d);
      n[layer]++;
      return o;
    },
  };
  const M = T - 1 - from;
  const ref = new Float32Array(M * V);
  try {
    model.forward(ids, spy, { onLogits: (i, l) => { if (i >= from && i < T - 1) ref.set(l, (i - from) * V); } });
  } finally { exact.dispose(); }
  return { cap, ref };
}

/**
 * Score curve of one lane at checkpoint `end` (tokens 0..end-1): the attention of the last
 * `w` queries (mean over the GQA group, causal) summed per entry, over the evictable
 * entries [sinks, end − window), scaled to mean 1, sorted descending, sampled at `fractions`.
 */
function laneCurve(model: LlamaModel, cap: Captured, layer: number, kvHead: number, end: number, w: number, sinks: number, windowTokens: number, fractions: number[]): number[] | null {
  const c = model.config, d = c.headDim, G = c.qHeads / c.kvHeads, kvDim = c.kvHeads * d, qDim = c.qHeads * d;
  const lo = sinks, hi = end - windowTokens;
  if (hi - lo < 2) return null;
  const K = cap.keys[layer], Q = cap.queries[layer], scale = 1 / Math.sqrt(d);
  const acc = new Float64Array(hi - lo);
  const logit = new Float64Array(end);
  for (let p = Math.max(0, end - w); p < end; p++) {
    for (let g = 0; g < G; g++) {
      const h = kvHead * G + g;
      let m = -Infinity;
      for (let t = 0; t <= p; t++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += Q[p * qDim + h * d + i] * K[t * kvDim + kvHead * d + i];
        logit[t] = s * scale;
        if (logit[t] > m) m = logit[t];
      }
      let z = 0;
      for (let t = 0; t <= p; t++) z += Math.exp(logit[t] - m);
      for (let t = lo; t < Math.min(hi, p + 1); t++) acc[t - lo] += Math.exp(logit[t] - m) / z / G;
    }
  }
  const n = acc.length;
  const mean = acc.reduce((a, b) => a + b, 0) / n;
  const sorted = Array.from(acc, (x) => (mean > 0 ? x / mean : 1)).sort((a, b) => b - a);
  return fractions.map((f) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(f * n) - 1))]);
}

/** Perplexity and KL of `ids` through a cache with explicit per-lane caps. */
function runCaps(engine: Engine, model: LlamaModel, ids: number[], from: number, ref: Float32Array, caps: number[], o: ProfileOptions, budgetBytes?: number): { ppl: number; kl: number } {
  const c = model.config, V = c.vocabSize, T = ids.length, M = T - 1 - from;
  const cache = createCache(engine, {
    layers: c.layers, qHeads: c.qHeads, kvHeads: c.kvHeads, headDim: c.headDim, policy: o.policy,
    planner: caps, ...(budgetBytes ? { budget: { bytes: budgetBytes } } : {}),
    sinkTokens: o.sinkTokens, windowTokens: o.windowTokens,
  });
  let s = 0, k = 0;
  try {
    model.forward(ids, cache as unknown as AttentionBackend, {
      onLogits: (i, l) => {
        if (i < from || i >= T - 1) return;
        s += nll(l, 0, V, ids[i + 1]);
        k += klDivergence(ref, (i - from) * V, l, 0, V);
      },
    });
  } finally { cache.dispose(); }
  return { ppl: Math.exp(s / M), kl: k / M };
}

function checkOptions(o: ProfileOptions, T: number): void {
  checkNum('ratio', o.ratio, 1e-4, 1);
  checkInt('window', o.window, 1, T);
  checkInt('curvePoints', o.curvePoints, 2, 1 << 16);
  checkNum('floor', o.floor, 0, 1);
  checkNum('evalFrom', o.evalFrom, 0, 0.99);
  for (const a of o.alphas) checkNum('alphas[]', a, 0, 1);
  if (o.sinkTokens + o.windowTokens + 2 >= T) throw new EdgeKVError('E_ARG', `the calibration text has ${T} tokens: too few for sinkTokens + windowTokens = ${o.sinkTokens + o.windowTokens}; use a longer text or --tokens`, 'tokens');
}

/**
 * Profile `model` on the token ids `ids` (the calibration text). Returns a validated
 * profile for the model's geometry. Cost: one exact forward, one forward per layer and
 * one per search candidate, plus the curves.
 */
export function profileModel(engine: Engine, model: LlamaModel, ids: number[], options: Partial<ProfileOptions> = {}): Profile {
  const o: ProfileOptions = { ...PROFILE_DEFAULTS, ...options };
  const c = model.config, T = ids.length, L = c.layers, H = c.kvHeads, G = c.qHeads / c.kvHeads;
  checkOptions(o, T);
  const say = o.onProgress ?? (() => {});
  const from = Math.floor(T * o.evalFrom);

  say(`capture: exact forward over ${T} tokens`);
  const { cap, ref } = capture(model, ids, from);
  const query = cap.cosSum.map((row) => Array.from(row, (s) => 1 - s / T));
  const kv = query.map((row) => Array.from({ length: H }, (_, h) => row.slice(h * G, (h + 1) * G).reduce((a, b) => a + b, 0) / G));
  const headMean = kv.map((row) => row.reduce((a, b) => a + b, 0) / H);

  say('score curves');
  const fractions = Array.from({ length: o.curvePoints }, (_, j) => (j + 1) / o.curvePoints);
  const scores: number[][][] = [];
  for (let l = 0; l < L; l++) {
    const layer: number[][] = [];
    for (let h = 0; h < H; h++) {
      const curves = CURVE_CHECKPOINTS.map((f) => laneCurve(model, cap, l, h, Math.floor(f * T), o.window, o.sinkTokens, o.windowTokens, fractions)).filter((x): x is number[] => x !== null);
      layer.push(fractions.map((_, j) => curves.reduce((a, cv) => a + cv[j], 0) / curves.length));
    }
    scores.push(layer);
  }

  // The uniform caps of the calibration budget.
  const budgetBytes = Math.floor(fullF16Bytes(model, T) * o.ratio);
  const input: PlannerInput = {
    layers: L, kvHeads: H, headDim: c.headDim, valueGroup: defaultValueGroup(c.headDim), budget: { bytes: budgetBytes },
    precision: 'f16', exactPrecision: 'f16', sinkTokens: o.sinkTokens, windowTokens: o.windowTokens,
  };
  const uniformCap = weightedPlanner(input, new Array(L * H).fill(1))[0].tokens;
  if (uniformCap < o.sinkTokens + o.windowTokens) {
    throw new EdgeKVError('E_BUDGET', `ratio = ${o.ratio} of ${T} tokens leaves ${uniformCap} tokens per lane, fewer than sinkTokens + windowTokens = ${o.sinkTokens + o.windowTokens}; raise --ratio or --tokens`, 'ratio');
  }
  const open = T + PAGE_TOKENS; // a cap no lane reaches: no eviction

  const sensitivity: number[] = [];
  for (let l = 0; l < L; l++) {
    say(`layer ${l}: only this layer compressed to ${uniformCap} tokens per lane`);
    const caps = Array.from({ length: L * H }, (_, i) => (Math.floor(i / H) === l ? uniformCap : open));
    sensitivity.push(runCaps(engine, model, ids, from, ref, caps, o).kl);
  }

  const draft: Profile = {
    format: PROFILE_FORMAT, version: PROFILE_VERSION,
    model: { layers: L, qHeads: c.qHeads, kvHeads: H, headDim: c.headDim, ...(o.source ? { source: o.source } : {}) },
    calibration: { tokens: T, ratio: o.ratio, policy: o.policy, window: o.window, ...(o.text ? { text: o.text } : {}), ...(o.seed !== undefined ? { seed: o.seed } : {}) },
    heads: { query, kv }, layers: { sensitivity, headMean }, curves: { fractions, scores },
    search: { metric: o.metric, candidates: [], best: 0 }, weights: new Array(L * H).fill(1),
  };

  const family: { family: BaklavaFamily; alpha: number }[] = [{ family: 'uniform', alpha: 0 }];
  for (const f of o.families) for (const a of o.alphas) family.push({ family: f, alpha: a });
  const candidates: SearchCandidate[] = [];
  const weightsOf: number[][] = [];
  for (const cand of family) {
    const w = cand.family === 'uniform' ? new Array(L * H).fill(1) : baklavaWeights(laneImportance(draft, cand.family), cand.alpha, o.floor);
    const caps = weightedPlanner(input, w).map((p) => p.tokens);
    say(`search: ${cand.family} alpha ${cand.alpha}`);
    const r = runCaps(engine, model, ids, from, ref, caps, o, budgetBytes);
    candidates.push({ ...cand, floor: o.floor, ppl: r.ppl, kl: r.kl });
    weightsOf.push(w);
  }
  let best = 0;
  for (let i = 1; i < candidates.length; i++) if (candidates[i][o.metric] < candidates[best][o.metric]) best = i;
  draft.search = { metric: o.metric, candidates, best };
  draft.weights = weightsOf[best];
  return draft;
}

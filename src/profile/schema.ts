/**
 * The profile JSON written by `edgekv profile` (BaKlaVa, arXiv 2502.13176; AdaKV-style
 * curves) and read by the `baklava` and `adakv` budget planners. Plain JSON, no file
 * access here: the planners receive the parsed object (`planner: { name: 'baklava',
 * profile }`), so the same profile works in Node, browsers and workers.
 *
 * Shapes (L layers, Hq query heads, Hkv KV heads, Q curve points):
 * - `heads.query` `[L][Hq]`: importance of each query head, 1 − mean cos(input, output);
 * - `heads.kv` `[L][Hkv]`: the same, averaged over each KV head's GQA group;
 * - `layers.sensitivity` `[L]`: KL (nats/token) of the calibration text when only that
 *   layer is compressed; `layers.headMean` `[L]`: mean head importance of the layer;
 * - `curves.fractions` `[Q]` (ascending in (0, 1]) and `curves.scores` `[L][Hkv][Q]`:
 *   each lane's observation-window attention sorted descending, sampled at those rank
 *   fractions, scaled so a uniform distribution scores 1 (AdaKV);
 * - `weights` `[L·Hkv]`: the lane weights (mean 1) of the allocation the search chose.
 */
import { EdgeKVError, fmt } from '../errors.ts';
import type { CacheGeometry } from '../policies/types.ts';

/** The `format` field of a profile. */
export const PROFILE_FORMAT = 'edgekv-profile';
/** The schema version this code reads and writes. */
export const PROFILE_VERSION = 1;

/** Allocation families the BaKlaVa search tries (lane importance used for ranking). */
export const BAKLAVA_FAMILIES = ['uniform', 'heads', 'layers', 'both'] as const;
export type BaklavaFamily = (typeof BAKLAVA_FAMILIES)[number];

/** One evaluated candidate allocation. */
export interface SearchCandidate {
  family: BaklavaFamily;
  /** Strength of the reallocation (0: uniform; 1: from `floor` to 2 − `floor` times the mean). */
  alpha: number;
  /** Smallest lane weight before renormalization. */
  floor: number;
  /** Perplexity and KL (vs the full cache) on the calibration text. */
  ppl: number;
  kl: number;
}

/** A parsed, validated profile. */
export interface Profile {
  format: typeof PROFILE_FORMAT;
  version: typeof PROFILE_VERSION;
  model: { layers: number; qHeads: number; kvHeads: number; headDim: number; source?: string };
  calibration: { tokens: number; ratio: number; policy: string; window: number; text?: string; seed?: number };
  heads: { query: number[][]; kv: number[][] };
  layers: { sensitivity: number[]; headMean: number[] };
  curves: { fractions: number[]; scores: number[][][] };
  search: { metric: 'ppl' | 'kl'; candidates: SearchCandidate[]; best: number };
  weights: number[];
}

function bad(where: string, what: string): EdgeKVError {
  return new EdgeKVError('E_ARG', `${where}: ${what}; the profile is malformed (write a new one with \`edgekv profile --model DIR --text FILE --out profile.json\`)`, where);
}

function obj(where: string, v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(where, `expected an object, got ${fmt(v)}`);
  return v as Record<string, unknown>;
}

function num(where: string, v: unknown, lo = -Infinity, hi = Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw bad(where, `expected a finite number in [${lo}, ${hi}], got ${fmt(v)}`);
  return v;
}

function int(where: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw bad(where, `expected an integer in [${lo}, ${hi}], got ${fmt(v)}`);
  return v;
}

function arr(where: string, v: unknown, len: number): unknown[] {
  if (!Array.isArray(v)) throw bad(where, `expected an array of ${len}, got ${fmt(v)}`);
  if (v.length !== len) throw bad(where, `has ${v.length} elements; expected ${len}`);
  return v;
}

function nums(where: string, v: unknown, len: number, lo = -Infinity, hi = Infinity): number[] {
  return arr(where, v, len).map((x, i) => num(`${where}[${i}]`, x, lo, hi));
}

/** Sanity bound on dimensions read from a profile. */
const MAX_DIM = 1 << 16;

/**
 * Validate a profile object (as parsed from JSON) and, when `geometry` is given, check
 * that it was made for the same model geometry. Throws `E_ARG` naming the field.
 */
export function validateProfile(p: unknown, geometry?: Pick<CacheGeometry, 'layers' | 'qHeads' | 'kvHeads' | 'headDim'>, where = 'profile'): Profile {
  const o = obj(where, p);
  if (o.format !== PROFILE_FORMAT) throw bad(`${where}.format`, `expected ${JSON.stringify(PROFILE_FORMAT)}, got ${fmt(o.format)}`);
  if (o.version !== PROFILE_VERSION) throw bad(`${where}.version`, `this edgekv reads version ${PROFILE_VERSION}, got ${fmt(o.version)}`);
  const m = obj(`${where}.model`, o.model);
  const L = int(`${where}.model.layers`, m.layers, 1, MAX_DIM);
  const Hq = int(`${where}.model.qHeads`, m.qHeads, 1, MAX_DIM);
  const Hkv = int(`${where}.model.kvHeads`, m.kvHeads, 1, MAX_DIM);
  const d = int(`${where}.model.headDim`, m.headDim, 1, MAX_DIM);
  if (Hq % Hkv !== 0) throw bad(`${where}.model.qHeads`, `${Hq} is not a multiple of kvHeads = ${Hkv}`);
  if (geometry) {
    const mine = `${L} layers, ${Hq} query heads, ${Hkv} KV heads, head dim ${d}`;
    const theirs = `${geometry.layers} layers, ${geometry.qHeads} query heads, ${geometry.kvHeads} KV heads, head dim ${geometry.headDim}`;
    if (L !== geometry.layers || Hq !== geometry.qHeads || Hkv !== geometry.kvHeads || d !== geometry.headDim) {
      throw new EdgeKVError('E_ARG', `${where} was made for another model (${mine}${typeof m.source === 'string' ? `, ${m.source}` : ''}); this cache has ${theirs}. Profile this model with \`edgekv profile\``, `${where}.model`);
    }
  }
  const c = obj(`${where}.calibration`, o.calibration);
  const calibration: Profile['calibration'] = {
    tokens: int(`${where}.calibration.tokens`, c.tokens, 1, 2 ** 30),
    ratio: num(`${where}.calibration.ratio`, c.ratio, 1e-6, 1),
    policy: typeof c.policy === 'string' ? c.policy : (() => { throw bad(`${where}.calibration.policy`, `expected a policy name, got ${fmt(c.policy)}`); })(),
    window: int(`${where}.calibration.window`, c.window, 1, 2 ** 20),
  };
  if (typeof c.text === 'string') calibration.text = c.text;
  if (c.seed !== undefined) calibration.seed = int(`${where}.calibration.seed`, c.seed, 0, 2 ** 32 - 1);
  const h = obj(`${where}.heads`, o.heads);
  const query = arr(`${where}.heads.query`, h.query, L).map((r, l) => nums(`${where}.heads.query[${l}]`, r, Hq, -1, 2));
  const kv = arr(`${where}.heads.kv`, h.kv, L).map((r, l) => nums(`${where}.heads.kv[${l}]`, r, Hkv, -1, 2));
  const ly = obj(`${where}.layers`, o.layers);
  const layers = { sensitivity: nums(`${where}.layers.sensitivity`, ly.sensitivity, L, 0), headMean: nums(`${where}.layers.headMean`, ly.headMean, L, -1, 2) };
  const cu = obj(`${where}.curves`, o.curves);
  if (!Array.isArray(cu.fractions) || cu.fractions.length < 2) throw bad(`${where}.curves.fractions`, `expected an array of at least 2 rank fractions, got ${fmt(cu.fractions)}`);
  const Q = cu.fractions.length;
  const fractions = nums(`${where}.curves.fractions`, cu.fractions, Q, 0, 1);
  for (let i = 1; i < Q; i++) if (!(fractions[i] > fractions[i - 1])) throw bad(`${where}.curves.fractions[${i}]`, 'fractions must increase strictly');
  const scores = arr(`${where}.curves.scores`, cu.scores, L).map((r, l) => arr(`${where}.curves.scores[${l}]`, r, Hkv).map((x, k) => {
    const s = nums(`${where}.curves.scores[${l}][${k}]`, x, Q, 0);
    for (let i = 1; i < Q; i++) if (s[i] > s[i - 1]) throw bad(`${where}.curves.scores[${l}][${k}][${i}]`, 'a curve of sorted scores must not increase');
    return s;
  }));
  const se = obj(`${where}.search`, o.search);
  if (se.metric !== 'ppl' && se.metric !== 'kl') throw bad(`${where}.search.metric`, `expected "ppl" or "kl", got ${fmt(se.metric)}`);
  if (!Array.isArray(se.candidates) || se.candidates.length === 0) throw bad(`${where}.search.candidates`, 'expected a non-empty array');
  const candidates = se.candidates.map((x, i) => {
    const w = `${where}.search.candidates[${i}]`;
    const cc = obj(w, x);
    if (!(BAKLAVA_FAMILIES as readonly unknown[]).includes(cc.family)) throw bad(`${w}.family`, `expected one of ${BAKLAVA_FAMILIES.join(', ')}, got ${fmt(cc.family)}`);
    return { family: cc.family as BaklavaFamily, alpha: num(`${w}.alpha`, cc.alpha, 0, 1), floor: num(`${w}.floor`, cc.floor, 0, 1), ppl: num(`${w}.ppl`, cc.ppl, 0), kl: num(`${w}.kl`, cc.kl, 0) };
  });
  const best = int(`${where}.search.best`, se.best, 0, candidates.length - 1);
  const weights = nums(`${where}.weights`, o.weights, L * Hkv, Number.MIN_VALUE);
  const out: Profile = {
    format: PROFILE_FORMAT, version: PROFILE_VERSION,
    model: { layers: L, qHeads: Hq, kvHeads: Hkv, headDim: d, ...(typeof m.source === 'string' ? { source: m.source } : {}) },
    calibration, heads: { query, kv }, layers, curves: { fractions, scores },
    search: { metric: se.metric, candidates, best }, weights,
  };
  return out;
}

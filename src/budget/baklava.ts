/**
 * BaKlaVa budget planner (Gulhan, Chitty-Venkata, Emani, Kandemir, Vishwanath,
 * "BaKlaVa — Budgeted Allocation of KV cache for Long-context Inference",
 * arXiv 2502.13176).
 *
 * Not every KV head matters equally: a one-time profiling pass (`edgekv profile`,
 * src/profile/) rates every lane, a small search picks how strongly to move memory from
 * unimportant to important lanes by perplexity on a calibration text, and this planner
 * gives every lane its own cap: lanes are ragged, and a lane with a small cap really
 * holds fewer pages (the cache frees them), so `stats().lanes[i].bytes` differ.
 *
 * Allocation family (parameterised as in the spec, our choice where the paper is not
 * explicit): lanes are ranked by an importance (`heads`: the GQA-aggregated head
 * importance; `layers`: the layer's measured sensitivity; `both`: their product, each
 * normalised to mean 1); with z the rank percentile in [0, 1], a lane's weight is
 * `clamp(1 + alpha (2z − 1), floor, 2 − floor)`, renormalised to mean 1. The evictable
 * part of the budget (beyond sinks and window, which every lane keeps) is shared in
 * proportion to the weights: by tokens (`budget.tokens`, exact total) or by bytes
 * (`budget.bytes`; every lane's worst-case page bytes within its share; the total is the
 * bytes the uniform plan of the same budget really takes, so both are compared at equal
 * memory, and leftover whole pages go to the lanes furthest below their share).
 *
 * Planner spec: `{ name: 'baklava', profile, family?, alpha?, floor? }`. Without
 * family/alpha/floor the profile's searched weights are used; with them the weights are
 * recomputed from the profile's importances (for experiments).
 */
import { EdgeKVError, checkNum, checkOneOf, checkKeys, fmt } from '../errors.ts';
import type { CacheGeometry } from '../policies/types.ts';
import { BAKLAVA_FAMILIES, validateProfile, type BaklavaFamily, type Profile } from '../profile/schema.ts';
import { laneBytesBound, tokensForBytes, type LanePlan, type PlannerInput } from './types.ts';
import { uniformPlanner } from './uniform.ts';

/** Default smallest lane weight of the family (before renormalisation). */
export const BAKLAVA_DEFAULT_FLOOR = 0.25;

/** Values normalised to mean 1 (all ones when they are all zero). */
function toMeanOne(x: number[]): number[] {
  const m = x.reduce((a, b) => a + b, 0) / x.length;
  return m > 0 ? x.map((v) => v / m) : x.map(() => 1);
}

/** Rank percentile in [0, 1] of each value (ties share their mean rank); 0.5 for a single value. */
export function rankPercentile(x: number[]): number[] {
  const n = x.length;
  if (n === 1) return [0.5];
  const order = x.map((v, i) => i).sort((a, b) => x[a] - x[b]);
  const z = new Array<number>(n);
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && x[order[j + 1]] === x[order[i]]) j++;
    const r = (i + j) / 2 / (n - 1);
    for (let k = i; k <= j; k++) z[order[k]] = r;
    i = j + 1;
  }
  return z;
}

/** Lane importance `[L·Hkv]` of a family (lane = layer · kvHeads + kvHead). */
export function laneImportance(profile: Profile, family: BaklavaFamily): number[] {
  const { layers: L, kvHeads: H } = profile.model;
  const heads = toMeanOne(profile.heads.kv.flat());
  const layer = toMeanOne(profile.layers.sensitivity);
  const out: number[] = [];
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < H; h++) {
      const i = l * H + h;
      out.push(family === 'heads' ? heads[i] : family === 'layers' ? layer[l] : family === 'both' ? heads[i] * layer[l] : 1);
    }
  }
  return out;
}

/** Lane weights (mean 1) of the family: `clamp(1 + alpha (2z − 1), floor, 2 − floor)`, renormalised. */
export function baklavaWeights(importance: number[], alpha: number, floor = BAKLAVA_DEFAULT_FLOOR): number[] {
  const z = rankPercentile(importance);
  const hi = 2 - floor;
  return toMeanOne(z.map((v) => Math.min(hi, Math.max(floor, 1 + alpha * (2 * v - 1)))));
}

/**
 * Per-lane caps from weights (mean 1): every lane keeps sinks + window, and the
 * evictable rest of the budget is split in proportion to `weights`. Shared by the
 * `baklava` and `adakv` planners.
 */
export function weightedPlanner(input: PlannerInput, weights: number[]): LanePlan[] {
  const { layers, kvHeads, sinkTokens, windowTokens, precision } = input;
  const lanes = layers * kvHeads;
  const protectedTokens = sinkTokens + windowTokens;
  const sum = weights.reduce((a, b) => a + b, 0);
  if ('tokens' in input.budget) {
    const total = Math.max(0, input.budget.tokens - protectedTokens) * lanes;
    // Largest-remainder rounding: the lane shares add up to the uniform total exactly.
    const exact = weights.map((w) => (total * w) / sum);
    const share = exact.map(Math.floor);
    let left = total - share.reduce((a, b) => a + b, 0);
    const order = exact.map((x, i) => i).sort((a, b) => (exact[b] - share[b]) - (exact[a] - share[a]) || a - b);
    for (let k = 0; left > 0; k = (k + 1) % lanes, left--) share[order[k]]++;
    return share.map((s) => ({ tokens: s + protectedTokens, precision }));
  }
  const fixed = laneBytesBound(protectedTokens, precision, input);
  // Never more memory than the uniform plan of this budget really takes (its caps are
  // rounded down to whole pages per lane), so comparisons with it are at equal bytes.
  const bytes = uniformPlanner(input).reduce((a, p) => a + laneBytesBound(p.tokens, p.precision, input), 0);
  const free = bytes - lanes * fixed;
  const target = weights.map((w) => fixed + (free > 0 ? (free * w) / sum : free / lanes));
  const caps = target.map((t) => tokensForBytes(Math.floor(t), precision, input));
  const used = caps.map((t) => laneBytesBound(t, precision, input));
  // Caps move in whole pages, so flooring every share would leave up to a page per lane
  // unused: hand the leftover out a page at a time, to the lane furthest below its share.
  let left = bytes - used.reduce((a, b) => a + b, 0);
  for (;;) {
    let best = -1, bestNext = 0;
    for (let i = 0; i < lanes; i++) {
      if (caps[i] === 0) continue;
      const next = laneBytesBound(caps[i] + 1, precision, input);
      if (next - used[i] > left) continue;
      if (best < 0 || target[i] - used[i] > target[best] - used[best]) { best = i; bestNext = next; }
    }
    if (best < 0) break;
    caps[best] = tokensForBytes(bestNext, precision, input);
    left -= bestNext - used[best];
    used[best] = bestNext;
  }
  return caps.map((tokens) => ({ tokens, precision }));
}

/** The resolved (JSON) planner spec stored in the cache options. */
export interface BaklavaPlannerSpec {
  name: 'baklava';
  profile: Profile;
  family?: BaklavaFamily;
  alpha?: number;
  floor?: number;
}

/**
 * Validate `{ name: 'baklava', profile, family?, alpha?, floor? }` against the cache's
 * geometry and plan every lane. Errors: `E_ARG` for a missing, malformed or foreign
 * profile (naming the field, or both geometries).
 */
export function resolveBaklavaPlanner(spec: unknown, input: PlannerInput, geometry: CacheGeometry): { resolved: BaklavaPlannerSpec; plans: LanePlan[] } {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new EdgeKVError('E_ARG', `options.planner = ${fmt(spec)}: the baklava planner needs a profile: { name: 'baklava', profile } (make one with \`edgekv profile\`)`, 'options.planner');
  }
  const s = spec as Record<string, unknown>;
  checkKeys('options.planner', s, ['name', 'profile', 'family', 'alpha', 'floor']);
  if (s.profile === undefined) throw new EdgeKVError('E_ARG', 'options.planner.profile is missing: the baklava planner reads a profile written by `edgekv profile` (pass the parsed JSON)', 'options.planner.profile');
  const profile = validateProfile(s.profile, geometry, 'options.planner.profile');
  const resolved: BaklavaPlannerSpec = { name: 'baklava', profile };
  let weights = profile.weights;
  if (s.family !== undefined || s.alpha !== undefined || s.floor !== undefined) {
    const best = profile.search.candidates[profile.search.best];
    resolved.family = s.family === undefined ? best.family : checkOneOf('options.planner.family', s.family, BAKLAVA_FAMILIES);
    resolved.alpha = s.alpha === undefined ? best.alpha : checkNum('options.planner.alpha', s.alpha, 0, 1);
    resolved.floor = s.floor === undefined ? best.floor : checkNum('options.planner.floor', s.floor, 0, 1);
    weights = baklavaWeights(laneImportance(profile, resolved.family), resolved.alpha, resolved.floor);
  }
  return { resolved, plans: weightedPlanner(input, weights) };
}

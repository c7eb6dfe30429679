/**
 * AdaKV-style budget planner (Feng et al., "Ada-KV: Optimizing KV Cache Eviction by
 * Adaptive Budget Allocation for Efficient LLM Inference", arXiv 2407.11550; the
 * safeguard as in kvpress's `AdaKVPress(alpha_safeguard)`).
 *
 * AdaKV keeps a layer's total budget but lets its heads compete for it: at compression
 * time the scores of all heads of a layer are concatenated and the top `H·B` survive, so
 * a head whose attention is concentrated gives entries to a head whose attention is
 * spread; a safeguard first guarantees every head `safeguard · B` entries.
 *
 * What fits this cache: lanes get fixed caps from a planner when the cache is created
 * (each lane is compressed on its own, when it passes its cap, and pages are freed per
 * lane), so the caps cannot follow each compression's scores. This planner makes the
 * same top-k decision once, on the *profiled* score distributions: `edgekv profile`
 * records, for every lane, its observation-window attention (the SnapKV score) sorted
 * descending, as a curve over the rank fraction (`curves` in the profile). A global
 * top-k over a layer's heads equals a water level τ: head h keeps the fraction
 * `g_h(τ)` of its entries whose score passes τ, at least the safeguard, with
 * `Σ_h max(safeguard·x, g_h(τ)) = H·x` (x = the layer's mean evictable share of the
 * context). τ is found by bisection; the caps follow `a_h / x` as weights within each
 * layer (layers keep equal totals, as in AdaKV). Changed from the paper: the allocation
 * is per profile, not per prompt; it depends on the budget through x, computed for
 * `contextTokens` (default: the profile's calibration length).
 *
 * Planner spec: `{ name: 'adakv', profile, safeguard? = 0.2, contextTokens? }`.
 */
import { EdgeKVError, checkInt, checkKeys, checkNum, fmt } from '../errors.ts';
import type { CacheGeometry } from '../policies/types.ts';
import { validateProfile, type Profile } from '../profile/schema.ts';
import { weightedPlanner } from './baklava.ts';
import { uniformPlanner } from './uniform.ts';
import type { LanePlan, PlannerInput } from './types.ts';

/** kvpress's default safeguard share (`alpha_safeguard`). */
export const ADAKV_DEFAULT_SAFEGUARD = 0.2;
/** Bisection steps on the water level (far below float64 resolution of the curves). */
const BISECTION_STEPS = 100;

/** Fraction of a lane's entries whose (curve) score exceeds `tau`: linear in the rank fraction between points. */
export function fractionAbove(fractions: number[], scores: number[], tau: number): number {
  const Q = fractions.length;
  if (scores[0] <= tau) return 0;
  if (scores[Q - 1] > tau) return 1;
  for (let j = 1; j < Q; j++) {
    if (scores[j] <= tau) {
      const a = scores[j - 1], b = scores[j];
      const t = a === b ? 1 : (a - tau) / (a - b);
      return fractions[j - 1] + t * (fractions[j] - fractions[j - 1]);
    }
  }
  return 1;
}

/**
 * Per-head shares of one layer (fractions of the context, mean `x`): the top-k over the
 * heads' concatenated score curves, each head at least `safeguard · x`.
 */
export function adakvShares(fractions: number[], curves: number[][], x: number, safeguard: number): number[] {
  const H = curves.length;
  if (x >= 1) return curves.map(() => 1);
  const floor = safeguard * x;
  const total = H * x;
  const kept = (tau: number) => curves.reduce((a, c) => a + Math.max(floor, fractionAbove(fractions, c, tau)), 0);
  let lo = 0, hi = Math.max(...curves.map((c) => c[0]));
  if (kept(lo) <= total) return curves.map((c) => Math.max(floor, fractionAbove(fractions, c, lo)));
  for (let i = 0; i < BISECTION_STEPS; i++) {
    const mid = (lo + hi) / 2;
    if (kept(mid) > total) lo = mid; else hi = mid;
  }
  const shares = curves.map((c) => Math.max(floor, fractionAbove(fractions, c, hi)));
  // Hand the rounding gap of the bisection to the heads above the floor, in proportion.
  const gap = total - shares.reduce((a, b) => a + b, 0);
  const free = shares.reduce((a, s) => a + (s > floor ? s : 0), 0);
  return free > 0 ? shares.map((s) => (s > floor ? s + (gap * s) / free : s)) : shares.map(() => x);
}

/** Lane weights (mean 1 per layer) of the AdaKV allocation at evictable share `x` of the context. */
export function adakvWeights(profile: Profile, x: number, safeguard: number): number[] {
  const out: number[] = [];
  for (let l = 0; l < profile.model.layers; l++) {
    const shares = adakvShares(profile.curves.fractions, profile.curves.scores[l], x, safeguard);
    const mean = shares.reduce((a, b) => a + b, 0) / shares.length;
    for (const s of shares) out.push(mean > 0 ? s / mean : 1);
  }
  return out;
}

/** The resolved (JSON) planner spec stored in the cache options. */
export interface AdaKVPlannerSpec {
  name: 'adakv';
  profile: Profile;
  safeguard: number;
  contextTokens: number;
}

/** Validate `{ name: 'adakv', profile, safeguard?, contextTokens? }` and plan every lane. */
export function resolveAdaKVPlanner(spec: unknown, input: PlannerInput, geometry: CacheGeometry): { resolved: AdaKVPlannerSpec; plans: LanePlan[] } {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new EdgeKVError('E_ARG', `options.planner = ${fmt(spec)}: the adakv planner needs a profile: { name: 'adakv', profile } (make one with \`edgekv profile\`)`, 'options.planner');
  }
  const s = spec as Record<string, unknown>;
  checkKeys('options.planner', s, ['name', 'profile', 'safeguard', 'contextTokens']);
  if (s.profile === undefined) throw new EdgeKVError('E_ARG', 'options.planner.profile is missing: the adakv planner reads the score curves of a profile written by `edgekv profile`', 'options.planner.profile');
  const profile = validateProfile(s.profile, geometry, 'options.planner.profile');
  const safeguard = s.safeguard === undefined ? ADAKV_DEFAULT_SAFEGUARD : checkNum('options.planner.safeguard', s.safeguard, 0, 1);
  const contextTokens = s.contextTokens === undefined ? profile.calibration.tokens : checkInt('options.planner.contextTokens', s.contextTokens, 1, 2 ** 30);
  // The layer's mean evictable share of the context, from the uniform plan of this budget.
  const uniform = uniformPlanner(input)[0].tokens;
  const evictable = Math.max(0, uniform - input.sinkTokens - input.windowTokens);
  const ctxEvictable = Math.max(1, contextTokens - input.sinkTokens - input.windowTokens);
  const x = Math.min(1, evictable / ctxEvictable);
  const resolved: AdaKVPlannerSpec = { name: 'adakv', profile, safeguard, contextTokens };
  return { resolved, plans: weightedPlanner(input, adakvWeights(profile, x, safeguard)) };
}

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
 * records, for every lane, its observation-window attention (the SnapKV score, scaled
 * so that a uniform distribution scores 1) sorted descending, as a curve over the rank
 * fraction (`curves` in the profile). With x the layer's mean evictable share of the
 * context, each head first gets `safeguard · x`, then the layer's remaining budget goes
 * to the highest scores of all its heads' curves together (a top-k over the
 * concatenated curves). A head whose best entries score high (concentrated attention)
 * therefore gains at small budgets, a flat head loses (its entries carry little mass
 * each). The caps follow `share_h / x` as weights within each layer (layers keep equal
 * totals, as in AdaKV). Changed from the paper: the allocation
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

/**
 * Per-head shares of one layer (fractions of the context, mean `x`): every head first
 * gets `safeguard · x` (its best entries), then the rest of the layer's `H · x` goes to
 * the best remaining entries of all heads together — a top-k over the heads'
 * concatenated score curves. Curve point j stands for the ranks between fractions j − 1
 * and j (score = the curve's value there); the last segment taken may be partial.
 */
export function adakvShares(fractions: number[], curves: number[][], x: number, safeguard: number): number[] {
  const H = curves.length;
  if (x >= 1) return curves.map(() => 1);
  const floor = safeguard * x;
  const shares = curves.map(() => floor);
  const segs: { head: number; score: number; width: number }[] = [];
  curves.forEach((c, h) => {
    for (let j = 0; j < fractions.length; j++) {
      const lo = Math.max(j === 0 ? 0 : fractions[j - 1], floor), width = fractions[j] - lo;
      if (width > 0) segs.push({ head: h, score: c[j], width });
    }
  });
  segs.sort((a, b) => b.score - a.score || a.head - b.head);
  let left = H * x - H * floor;
  for (const sg of segs) {
    if (left <= 0) break;
    const take = Math.min(sg.width, left);
    shares[sg.head] += take;
    left -= take;
  }
  return shares;
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

/**
 * PyramidKV budget planner (Cai et al., "PyramidKV: Dynamic KV Cache Compression
 * based on Pyramidal Information Funneling", arXiv 2406.02069).
 *
 * Attention is broad in lower layers and concentrated in upper layers, so lower
 * layers get more cache. Kept from the paper (as in its reference code): with the
 * per-lane evictable average X (budget minus sinks and window), layer l of L gets
 * `max - l * (max - min) / (L - 1)` evictable entries, where `min = X / beta`,
 * `max = 2X - min` (beta = 20), so the total equals the uniform total. Changed: the
 * protected part is sinks + window (the paper has only the window); with a byte
 * budget the same line is drawn over each lane's bytes beyond its protected pages,
 * so the whole cache stays within the byte budget; rounding remainders go to the
 * lowest layers so the token total is exact.
 */
import { laneBytesBound, tokensForBytes, type LanePlan, type PlannerInput } from './types.ts';

/** PyramidKV's default ratio between the largest and the smallest layer share. */
export const PYRAMID_BETA = 20;

/** Per-layer shares of `perLane * layers` along the PyramidKV line (floats). */
export function pyramidShares(layers: number, perLane: number, beta = PYRAMID_BETA): number[] {
  if (layers === 1) return [perLane];
  const min = perLane / beta;
  const max = 2 * perLane - min;
  const step = (max - min) / (layers - 1);
  return Array.from({ length: layers }, (_, l) => max - l * step);
}

/** Integer shares summing exactly to `round(perLane) * layers`, remainders to the lowest layers. */
function integerShares(layers: number, perLane: number, beta: number): number[] {
  const f = pyramidShares(layers, perLane, beta);
  const out = f.map(Math.floor);
  let left = Math.floor(perLane) * layers - out.reduce((a, b) => a + b, 0);
  for (let l = 0; left > 0; l = (l + 1) % layers, left--) out[l]++;
  return out;
}

/** Caps per lane along the PyramidKV line; `beta` as in the paper (default 20). */
export function pyramidPlanner(input: PlannerInput, beta = PYRAMID_BETA): LanePlan[] {
  const { layers, kvHeads, sinkTokens, windowTokens } = input;
  const protectedTokens = sinkTokens + windowTokens;
  let perLayer: number[];
  if ('tokens' in input.budget) {
    const x = Math.max(0, input.budget.tokens - protectedTokens);
    perLayer = integerShares(layers, x, beta).map((t) => t + protectedTokens);
  } else {
    const fixed = laneBytesBound(protectedTokens, input.precision, input);
    const share = Math.floor(input.budget.bytes / (layers * kvHeads)) - fixed;
    const shares = share > 0 ? integerShares(layers, share, beta) : new Array(layers).fill(share);
    perLayer = shares.map((b) => tokensForBytes(fixed + b, input.precision, input));
  }
  const plans: LanePlan[] = [];
  for (let l = 0; l < layers; l++) for (let h = 0; h < kvHeads; h++) plans.push({ tokens: perLayer[l], precision: input.precision });
  return plans;
}

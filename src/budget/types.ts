/**
 * Budget planning: how one number (a token budget per lane or a byte budget for the
 * whole cache) becomes a hard token cap and a storage format for every lane
 * (layer × KV head). Planners only decide caps and formats; the cache enforces them.
 */
import { PAGE_TOKENS, isPacked, pageBytes, type Format } from '../formats.ts';

/** A cache-wide budget: average tokens per lane, or total bytes of KV pages. */
export type Budget = { tokens: number } | { bytes: number };

/** What a planner decides for one lane. */
export interface LanePlan {
  /** Hard cap on the entries the lane holds after any public call (sinks and window included). */
  tokens: number;
  /** Format of the lane's compressed middle tier. */
  precision: Format;
}

/** Everything a planner needs to know about the cache's storage. */
export interface PlannerInput {
  layers: number;
  kvHeads: number;
  headDim: number;
  valueGroup: number;
  budget: Budget;
  /** Format of the compressed middle tier (cache default). */
  precision: Format;
  /** Format of sinks, residual and window. */
  exactPrecision: Format;
  sinkTokens: number;
  windowTokens: number;
}

/** A budget planner: one plan per lane, lane index = layer * kvHeads + kvHead. */
export type Planner = (input: PlannerInput) => LanePlan[];

/**
 * Spare pages a packed middle tier may hold beyond dense, as a fraction of its dense
 * page count. Evictions leave holes in packed pages; closing them means re-packing
 * (re-quantizing) neighbouring pages, so holes are merged only past this allowance:
 * a larger allowance re-quantizes fewer entries per compression (less compounding of
 * quantization error, less time) for a few percent of bytes. Exact tiers merge
 * losslessly and keep no spare pages.
 */
export const PACKED_SPARE_FRACTION = 1 / 16;

/** Spare pages allowed for a middle tier of `densePages` dense pages in `precision`. */
export function sparePages(densePages: number, precision: Format): number {
  return isPacked(precision) ? Math.floor(densePages * PACKED_SPARE_FRACTION) : 0;
}

/**
 * Upper bound on the bytes of KV pages a lane holding `tokens` entries can occupy
 * between public calls: sinks in exact pages, a tail (residual + window, fewer than
 * `windowTokens + PAGE_TOKENS` entries) in dense exact pages, the rest in pages of
 * `precision` (dense plus `sparePages`). Every byte of a page counts (payload, scales, minima, positions,
 * log-weights, padding): see `pageBytes`.
 */
export function laneBytesBound(tokens: number, precision: Format, input: Pick<PlannerInput, 'headDim' | 'valueGroup' | 'exactPrecision' | 'sinkTokens' | 'windowTokens'>): number {
  const exact = pageBytes(input.exactPrecision, input.headDim, input.valueGroup);
  const mid = pageBytes(precision, input.headDim, input.valueGroup);
  const sinks = Math.min(tokens, input.sinkTokens);
  const rest = tokens - sinks;
  const sinkBytes = Math.ceil(sinks / PAGE_TOKENS) * exact;
  const tailMin = Math.min(rest, input.windowTokens);
  const tailMax = Math.min(rest, input.windowTokens + PAGE_TOKENS - 1);
  let worst = 0;
  for (let t = tailMin; t <= tailMax; t++) {
    const midPages = Math.ceil((rest - t) / PAGE_TOKENS);
    const b = Math.ceil(t / PAGE_TOKENS) * exact + (midPages + sparePages(midPages, precision)) * mid;
    if (b > worst) worst = b;
  }
  return sinkBytes + worst;
}

/** The largest token cap whose `laneBytesBound` fits in `bytes` (0 when nothing fits). */
export function tokensForBytes(bytes: number, precision: Format, input: Parameters<typeof laneBytesBound>[2]): number {
  if (laneBytesBound(1, precision, input) > bytes) return 0;
  let lo = 1, hi = 2;
  while (laneBytesBound(hi, precision, input) <= bytes) { lo = hi; hi *= 2; if (hi > 2 ** 31) return lo; }
  while (hi - lo > 1) {
    const m = Math.floor((lo + hi) / 2);
    if (laneBytesBound(m, precision, input) <= bytes) lo = m; else hi = m;
  }
  return lo;
}

/**
 * Quantized-pruning budget planner ("More Tokens, Lower Precision: Towards the Optimal
 * Storage-Performance Trade-off of KV Cache Compression", Zhang et al., arXiv
 * 2412.12706, with KIVI's layouts, arXiv 2402.02750).
 *
 * At a fixed number of bytes, a lane can hold N tokens at 16 bits or about 3.5 N at
 * 4 bits; the paper finds that the second is usually better (4 bits is the sweet spot,
 * 2 bits collapses). This planner turns a byte budget into bits × tokens per lane and
 * leaves *which* tokens to any pruning policy (`snapkv`, `h2o`, … with this planner).
 *
 * Accounting: every byte of a page counts (`pageBytes`: payload, the f16 per-channel key
 * scales and minima, the f16 per-token value scales and minima of every value group,
 * positions, log-weights, padding), and the exact tiers (sinks, residual, window) stay
 * f16, so the token counts are the real ones, not the nominal 16/b ratio. `quantizedTable`
 * lists them.
 *
 * Rule, per lane (share = its bytes): among `formats` (default f16, int8, int4; int2 only
 * when listed), take the highest precision that holds `contextTokens` (no eviction at
 * all, least quantization error); when none does, or no `contextTokens` is given, take the
 * lowest bit width (most tokens). With a `profile` the shares follow the profile's
 * BaKlaVa weights instead of being equal, so lanes can differ in bits as well as tokens.
 * A token budget (`budget.tokens`) is read as the bytes of that many f16 tokens per lane.
 *
 * Planner spec: `{ name: 'quantized', formats?, contextTokens?, profile? }` (or the string
 * 'quantized'). Errors: `E_BUDGET` when a lane's share cannot hold sinks + window at any
 * of the formats (naming the smallest budget that works).
 */
import { EdgeKVError, checkInt, checkKeys, checkOneOf, fmt } from '../errors.ts';
import { FORMAT_BITS, FORMATS, PAGE_TOKENS, pageBytes, type Format } from '../formats.ts';
import type { CacheGeometry } from '../policies/types.ts';
import { validateProfile, type Profile } from '../profile/schema.ts';
import { laneBytesBound, tokensForBytes, type LanePlan, type PlannerInput } from './types.ts';

/** Default candidate formats: 2 bits only on request (the paper finds it collapses). */
export const QUANTIZED_DEFAULT_FORMATS: readonly Format[] = ['f16', 'int8', 'int4'];

/** One row of `quantizedTable`. */
export interface QuantizedRow {
  format: Format;
  /** Nominal bits per stored number. */
  bits: number;
  /** Bytes per entry of a full page of this format (K and V, with scales, minima, position, log-weight). */
  bytesPerToken: number;
  /** Effective bits per stored number, overhead included: 8 · bytesPerToken / (2 · headDim). */
  effectiveBits: number;
  /** Token cap of one lane with `laneBytes`. */
  tokens: number;
}

/** Tokens one lane holds with `laneBytes` at each format (every byte counted). */
export function quantizedTable(laneBytes: number, input: Pick<PlannerInput, 'headDim' | 'valueGroup' | 'exactPrecision' | 'sinkTokens' | 'windowTokens'>, formats: readonly Format[] = FORMATS): QuantizedRow[] {
  return formats.map((format) => {
    const bytesPerToken = pageBytes(format, input.headDim, input.valueGroup) / PAGE_TOKENS;
    return { format, bits: FORMAT_BITS[format], bytesPerToken, effectiveBits: (8 * bytesPerToken) / (2 * input.headDim), tokens: tokensForBytes(laneBytes, format, input) };
  });
}

/** The format and cap one lane gets from `laneBytes` (see the rule in the module comment); null when none holds the floor. */
export function chooseFormat(laneBytes: number, input: PlannerInput, formats: readonly Format[], contextTokens?: number): LanePlan | null {
  const floor = Math.max(1, input.sinkTokens + input.windowTokens);
  const byBits = [...formats].sort((a, b) => FORMAT_BITS[b] - FORMAT_BITS[a]);
  const options = byBits.map((f) => ({ precision: f, tokens: tokensForBytes(laneBytes, f, input) })).filter((x) => x.tokens >= floor);
  if (options.length === 0) return null;
  if (contextTokens !== undefined) {
    const fits = options.find((x) => x.tokens >= contextTokens);
    if (fits) return fits;
  }
  return options[options.length - 1];
}

/** The resolved (JSON) planner spec stored in the cache options. */
export interface QuantizedPlannerSpec {
  name: 'quantized';
  formats: Format[];
  contextTokens?: number;
  profile?: Profile;
}

/** Validate `'quantized'` or `{ name: 'quantized', formats?, contextTokens?, profile? }` and plan every lane. */
export function resolveQuantizedPlanner(spec: unknown, input: PlannerInput, geometry: CacheGeometry, hasBudget: boolean): { resolved: QuantizedPlannerSpec; plans: LanePlan[] } {
  const s: Record<string, unknown> = typeof spec === 'string' ? { name: spec } : (spec as Record<string, unknown>);
  checkKeys('options.planner', s, ['name', 'formats', 'contextTokens', 'profile']);
  let formats: Format[] = [...QUANTIZED_DEFAULT_FORMATS];
  if (s.formats !== undefined) {
    if (!Array.isArray(s.formats) || s.formats.length === 0) throw new EdgeKVError('E_ARG', `options.planner.formats = ${fmt(s.formats)} is not allowed: expected a non-empty array of formats (${FORMATS.join(', ')})`, 'options.planner.formats');
    formats = s.formats.map((f, i) => checkOneOf(`options.planner.formats[${i}]`, f, FORMATS));
  }
  const resolved: QuantizedPlannerSpec = { name: 'quantized', formats };
  if (s.contextTokens !== undefined) resolved.contextTokens = checkInt('options.planner.contextTokens', s.contextTokens, 1, 2 ** 30);
  if (s.profile !== undefined) resolved.profile = validateProfile(s.profile, geometry, 'options.planner.profile');
  const lanes = input.layers * input.kvHeads;
  if (!hasBudget) return { resolved, plans: Array.from({ length: lanes }, () => ({ tokens: Infinity, precision: formats[0] })) };
  const total = 'bytes' in input.budget ? input.budget.bytes : lanes * laneBytesBound(input.budget.tokens, 'f16', input);
  const weights = resolved.profile ? resolved.profile.weights : new Array<number>(lanes).fill(1);
  const sum = weights.reduce((a, b) => a + b, 0);
  const plans: LanePlan[] = [];
  for (let i = 0; i < lanes; i++) {
    const share = Math.floor((total * weights[i]) / sum);
    const plan = chooseFormat(share, input, formats, resolved.contextTokens);
    if (!plan) {
      const cheapest = [...formats].sort((a, b) => FORMAT_BITS[a] - FORMAT_BITS[b])[0];
      const need = laneBytesBound(input.sinkTokens + input.windowTokens, cheapest, input);
      const layer = Math.floor(i / input.kvHeads), head = i % input.kvHeads;
      throw new EdgeKVError('E_BUDGET', `options.budget cannot be met at any precision: lane (layer ${layer}, kvHead ${head}) gets ${share} bytes, and even ${cheapest} needs ${need} bytes per lane for sinkTokens + windowTokens = ${input.sinkTokens + input.windowTokens} exact entries (about ${Math.ceil((need * sum) / weights[i])} bytes for the cache); raise the budget, lower sinkTokens / windowTokens, or allow lower formats (options.planner.formats: ${formats.join(', ')})`, 'options.budget');
    }
    plans.push(plan);
  }
  return { resolved, plans };
}

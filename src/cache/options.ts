/**
 * `createCache` options: types, defaults, and validation. Every option is checked
 * here, before anything is allocated; errors name the option, the value, the allowed
 * range and the fix. The resolved options are plain JSON (they go into snapshots).
 */
import { EdgeKVError, argError, checkInt, checkKeys, checkNum, checkOneOf, fmt } from '../errors.ts';
import { FORMATS, PAGE_TOKENS, SUPPORTED_HEAD_DIMS, type Format } from '../formats.ts';
import { laneBytesBound, type Budget, type LanePlan, type PlannerInput } from '../budget/types.ts';
import { uniformPlanner } from '../budget/uniform.ts';
import { PYRAMID_BETA, pyramidPlanner } from '../budget/pyramid.ts';
import { resolveBaklavaPlanner, type BaklavaPlannerSpec } from '../budget/baklava.ts';
import { resolveAdaKVPlanner, type AdaKVPlannerSpec } from '../budget/adakv.ts';
import { resolveQuantizedPlanner, type QuantizedPlannerSpec } from '../budget/quantized.ts';
import { createPolicy, type PolicySpec } from '../policies/registry.ts';
import type { CacheGeometry, Policy } from '../policies/types.ts';

/** Per-lane budget given explicitly: a token cap, or a cap and the lane's precision. */
export type LaneBudget = number | { tokens: number; precision?: Format };

/** Options of `engine.createCache()`. Only the geometry is required. */
export interface CacheOptions {
  /** Transformer layers (>= 1). */
  layers: number;
  /** Query heads per layer (a multiple of kvHeads). */
  qHeads: number;
  /** KV heads per layer (GQA: query head h uses KV head floor(h / (qHeads / kvHeads))). */
  kvHeads: number;
  /** Head dimension: one of 8, 16, 32, 64, 80, 96, 128, 256. */
  headDim: number;
  /**
   * `{ tokens }`: average cap per lane (layer × KV head), sinks and window included;
   * `{ bytes }`: total bytes of KV pages for the whole cache (every byte counted).
   * Absent: no cap (only with policy 'full').
   */
  budget?: Budget;
  /** Eviction policy: a name or `{ name, ...options }`. Default 'full' without a budget, 'snapkv' with one. */
  policy?: PolicySpec;
  /** Format of the compressed middle tier: 'f32', 'f16' (default), 'int8', 'int4', 'int2'. */
  precision?: Format;
  /** Format of sinks, residual and recent window: 'f32' or 'f16' (default). */
  exactPrecision?: 'f32' | 'f16';
  /** First entries of every lane kept exact and never evicted (default 4). */
  sinkTokens?: number;
  /** Most recent entries of every lane kept exact and never evicted (default 32). */
  windowTokens?: number;
  /**
   * Amortization (tokens): a lane over its cap is compressed down to cap − slack, so
   * compression runs about once every `slack` appended tokens (default 32; 0: every token).
   */
  slack?: number;
  /**
   * Rotate stored rows with an orthonormal Walsh-Hadamard transform (headDim a power of
   * two): true (keys and values), 'keys', 'values', or false (default). Rotation spreads
   * outlier channels over the whole head: it helps per-token value quantization and keys
   * with outlier tokens; per-channel key quantization already absorbs outlier channels.
   */
  hadamard?: Hadamard;
  /**
   * 'uniform' (default), 'pyramid' (PyramidKV), `{ name: 'pyramid', beta }`, one `LaneBudget` per lane
   * (lane = layer * kvHeads + kvHead), `{ name: 'baklava', profile }` / `{ name: 'adakv', profile }`
   * (a profile from `edgekv profile`), or 'quantized' / `{ name: 'quantized', formats?, contextTokens? }`
   * (bits x tokens per lane from the byte budget; see src/budget/).
   */
  planner?: 'uniform' | 'pyramid' | 'quantized' | { name: 'uniform' } | { name: 'pyramid'; beta?: number } | LaneBudget[]
    | ({ name: 'baklava' | 'adakv' | 'quantized' } & Record<string, unknown>);
  /** Channels per value quantization group (divides headDim; default: 32, or the largest of 16, 8 dividing headDim). */
  valueGroup?: number;
  /** Logit scale (default 1 / sqrt(headDim)). */
  scale?: number;
  /** Seed of the cache's random generator (sampling policies; default 0). */
  seed?: number;
}

/** Which rows the Walsh-Hadamard rotation applies to. */
export type Hadamard = boolean | 'keys' | 'values';

/** The option names, for typo checks. */
export const CACHE_OPTIONS = ['layers', 'qHeads', 'kvHeads', 'headDim', 'budget', 'policy', 'precision', 'exactPrecision', 'sinkTokens', 'windowTokens', 'slack', 'hadamard', 'planner', 'valueGroup', 'scale', 'seed'] as const;

/** Defaults of the optional settings. */
export const CACHE_DEFAULTS = {
  precision: 'f16' as Format,
  exactPrecision: 'f16' as 'f32' | 'f16',
  sinkTokens: 4,
  windowTokens: 32,
  slack: 32,
  hadamard: false as Hadamard,
  planner: 'uniform' as const,
  seed: 0,
};

/** Largest GQA group the attention kernels take (assembly/kernels/attention.ts MAX_GROUP). */
export const MAX_GROUP = 32;
/** Value groups are a multiple of this (kernel precondition: SIMD vectors never straddle groups). */
export const VALUE_GROUP_MULTIPLE = 4;
/** Largest finite binary16: f16 pages, scales and minima cannot hold more. */
export const F16_MAX = 65504;

/** Largest layers / heads accepted (sanity bounds, far above real models). */
const MAX_LAYERS = 1024;
const MAX_HEADS = 1024;
const MAX_TOKENS = 2 ** 30;

/** Options with every default filled in; plain JSON. */
export interface ResolvedOptions {
  layers: number;
  qHeads: number;
  kvHeads: number;
  headDim: number;
  budget: Budget | null;
  policy: { name: string } & Record<string, unknown>;
  precision: Format;
  exactPrecision: 'f32' | 'f16';
  sinkTokens: number;
  windowTokens: number;
  slack: number;
  hadamard: Hadamard;
  planner: { name: 'uniform' } | { name: 'pyramid'; beta: number } | { name: 'lanes'; lanes: LanePlan[] } | BaklavaPlannerSpec | AdaKVPlannerSpec | QuantizedPlannerSpec;
  valueGroup: number;
  scale: number;
  seed: number;
}

function defaultValueGroup(d: number): number {
  for (const g of [32, 16, 8]) if (d % g === 0) return g;
  return d;
}

/** Validate `options`; returns the resolved options, the policy, and one plan per lane. */
export function resolveOptions(options: unknown): { resolved: ResolvedOptions; policy: Policy; plans: LanePlan[]; geometry: CacheGeometry } {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new EdgeKVError('E_ARG', `options must be an object { layers, qHeads, kvHeads, headDim, ... }, got ${fmt(options)}`, 'options');
  }
  const o = options as Record<string, unknown>;
  checkKeys('options', o, CACHE_OPTIONS);
  const layers = checkInt('options.layers', o.layers, 1, MAX_LAYERS);
  const kvHeads = checkInt('options.kvHeads', o.kvHeads, 1, MAX_HEADS);
  const qHeads = checkInt('options.qHeads', o.qHeads, 1, MAX_HEADS);
  if (qHeads % kvHeads !== 0) throw argError('options.qHeads', qHeads, `a multiple of options.kvHeads = ${kvHeads} (GQA groups of equal size)`);
  if (qHeads / kvHeads > MAX_GROUP) {
    throw new EdgeKVError('E_UNSUPPORTED', `options.qHeads / options.kvHeads = ${qHeads / kvHeads} query heads per KV head; the attention kernels take at most ${MAX_GROUP}`, 'options.qHeads');
  }
  const headDim = o.headDim as number;
  if (!(SUPPORTED_HEAD_DIMS as readonly number[]).includes(headDim)) {
    throw new EdgeKVError('E_UNSUPPORTED', `options.headDim = ${fmt(headDim)} is not supported: expected one of ${SUPPORTED_HEAD_DIMS.join(', ')}`, 'options.headDim');
  }
  const precision = checkOneOf('options.precision', o.precision ?? CACHE_DEFAULTS.precision, FORMATS);
  const exactPrecision = checkOneOf('options.exactPrecision', o.exactPrecision ?? CACHE_DEFAULTS.exactPrecision, ['f32', 'f16'] as const);
  const sinkTokens = checkInt('options.sinkTokens', o.sinkTokens ?? CACHE_DEFAULTS.sinkTokens, 0, MAX_TOKENS);
  const windowTokens = checkInt('options.windowTokens', o.windowTokens ?? CACHE_DEFAULTS.windowTokens, 0, MAX_TOKENS);
  const slack = checkInt('options.slack', o.slack ?? CACHE_DEFAULTS.slack, 0, MAX_TOKENS);
  const hadamard = o.hadamard ?? CACHE_DEFAULTS.hadamard;
  if (typeof hadamard !== 'boolean' && hadamard !== 'keys' && hadamard !== 'values') throw argError('options.hadamard', hadamard, "true, false, 'keys' or 'values'");
  if (hadamard && (headDim & (headDim - 1)) !== 0) {
    throw new EdgeKVError('E_UNSUPPORTED', `options.hadamard = ${fmt(hadamard)} needs a power-of-two headDim; headDim = ${headDim}. Set hadamard: false`, 'options.hadamard');
  }
  const valueGroup = o.valueGroup === undefined ? defaultValueGroup(headDim) : checkInt('options.valueGroup', o.valueGroup, 1, headDim);
  if (headDim % valueGroup !== 0 || valueGroup % VALUE_GROUP_MULTIPLE !== 0) {
    throw argError('options.valueGroup', valueGroup, `a multiple of ${VALUE_GROUP_MULTIPLE} dividing headDim = ${headDim}`);
  }
  const scale = o.scale === undefined ? 1 / Math.sqrt(headDim) : checkNum('options.scale', o.scale, Number.MIN_VALUE, 1e6);
  const seed = o.seed === undefined ? CACHE_DEFAULTS.seed : checkInt('options.seed', o.seed, 0, 2 ** 32 - 1);

  let budget: Budget | null = null;
  if (o.budget !== undefined) {
    const b = o.budget;
    if (b === null || typeof b !== 'object' || Array.isArray(b)) throw argError('options.budget', b, '{ tokens: n } (per lane) or { bytes: n } (whole cache)');
    const keys = Object.keys(b);
    if (keys.length !== 1 || (keys[0] !== 'tokens' && keys[0] !== 'bytes')) throw argError('options.budget', b, 'exactly one of { tokens: n } (per lane) or { bytes: n } (whole cache)');
    budget = keys[0] === 'tokens'
      ? { tokens: checkInt('options.budget.tokens', (b as { tokens: unknown }).tokens, 1, MAX_TOKENS) }
      : { bytes: checkInt('options.budget.bytes', (b as { bytes: unknown }).bytes, 1, Number.MAX_SAFE_INTEGER) };
  }

  const geometry: CacheGeometry = { layers, qHeads, kvHeads, headDim, groupSize: qHeads / kvHeads };
  const policySpec = o.policy ?? (budget || Array.isArray(o.planner) ? 'snapkv' : 'full');
  const { policy, spec } = createPolicy(policySpec, geometry);

  // Planner.
  const lanes = layers * kvHeads;
  const input: PlannerInput = { layers, kvHeads, headDim, valueGroup, budget: budget ?? { tokens: MAX_TOKENS }, precision, exactPrecision, sinkTokens, windowTokens };
  let planner: ResolvedOptions['planner'];
  let plans: LanePlan[];
  const p = o.planner ?? CACHE_DEFAULTS.planner;
  if (Array.isArray(p)) {
    if (p.length !== lanes) throw new EdgeKVError('E_SHAPE', `options.planner has ${p.length} lane budgets; expected layers * kvHeads = ${lanes} (lane = layer * kvHeads + kvHead)`, 'options.planner');
    if (budget && 'tokens' in budget) throw new EdgeKVError('E_ARG', 'options.planner is a per-lane array and options.budget.tokens is set: give one or the other (a per-lane array may be combined with { bytes } as a check)', 'options.budget');
    plans = p.map((x, i) => {
      const where = `options.planner[${i}]`;
      if (typeof x === 'number') return { tokens: checkInt(where, x, 1, MAX_TOKENS), precision };
      if (x === null || typeof x !== 'object') throw argError(where, x, 'a token count or { tokens, precision? }');
      checkKeys(where, x, ['tokens', 'precision']);
      return {
        tokens: checkInt(`${where}.tokens`, (x as { tokens: unknown }).tokens, 1, MAX_TOKENS),
        precision: checkOneOf(`${where}.precision`, (x as { precision?: unknown }).precision ?? precision, FORMATS),
      };
    });
    planner = { name: 'lanes', lanes: plans.map((x) => ({ ...x })) };
    if (budget && 'bytes' in budget) {
      const total = plans.reduce((a, x) => a + laneBytesBound(x.tokens, x.precision, input), 0);
      if (total > budget.bytes) {
        throw new EdgeKVError('E_BUDGET', `options.planner: the per-lane caps can take up to ${total} bytes, more than options.budget.bytes = ${budget.bytes}; lower the caps or raise the budget`, 'options.planner');
      }
    }
  } else if ([p, (p as { name?: unknown } | null)?.name].some((n) => n === 'baklava' || n === 'adakv' || n === 'quantized')) {
    const which = typeof p === 'string' ? p : (p as { name: string }).name;
    const r = which === 'baklava' ? resolveBaklavaPlanner(p, input, geometry)
      : which === 'adakv' ? resolveAdaKVPlanner(p, input, geometry)
        : resolveQuantizedPlanner(p, input, geometry, budget !== null);
    planner = r.resolved;
    plans = budget || which === 'quantized' ? r.plans : Array.from({ length: lanes }, () => ({ tokens: Infinity, precision }));
  } else {
    let name: unknown = p, beta = PYRAMID_BETA;
    if (p !== null && typeof p === 'object') {
      checkKeys('options.planner', p, ['name', 'beta']);
      name = (p as { name?: unknown }).name;
      if ((p as { beta?: unknown }).beta !== undefined) {
        if (name !== 'pyramid') throw new EdgeKVError('E_ARG', 'options.planner.beta applies only to the pyramid planner', 'options.planner.beta');
        beta = checkNum('options.planner.beta', (p as { beta: unknown }).beta, 1, 1e6);
      }
    }
    const which = checkOneOf('options.planner', name, ['uniform', 'pyramid', 'baklava', 'adakv', 'quantized'] as const) as 'uniform' | 'pyramid';
    planner = which === 'pyramid' ? { name: 'pyramid', beta } : { name: 'uniform' };
    if (!budget) plans = Array.from({ length: lanes }, () => ({ tokens: Infinity, precision }));
    else plans = which === 'pyramid' ? pyramidPlanner(input, beta) : uniformPlanner(input);
  }

  const hasCaps = budget !== null || Array.isArray(p);
  if (!hasCaps && policy.evicts) {
    throw new EdgeKVError('E_ARG', `policy ${JSON.stringify(spec.name)} evicts entries and needs a budget: set options.budget ({ tokens } per lane or { bytes } for the cache) or a per-lane options.planner`, 'options.budget');
  }
  const floor = sinkTokens + windowTokens;
  if (hasCaps) {
    for (let i = 0; i < plans.length; i++) {
      if (plans[i].tokens < Math.max(1, floor)) {
        const layer = Math.floor(i / kvHeads), head = i % kvHeads;
        const why = budget && 'bytes' in budget
          ? `options.budget.bytes = ${budget.bytes} leaves lane (layer ${layer}, kvHead ${head}) room for ${plans[i].tokens} tokens`
          : `lane (layer ${layer}, kvHead ${head}) gets a cap of ${plans[i].tokens} tokens`;
        throw new EdgeKVError('E_BUDGET', `${why}, fewer than sinkTokens + windowTokens = ${floor}; raise the budget or lower sinkTokens / windowTokens${planner.name === 'pyramid' ? ' (the pyramid planner gives upper layers the least)' : ''}`, 'options.budget');
      }
    }
  }

  const resolved: ResolvedOptions = {
    layers, qHeads, kvHeads, headDim, budget, policy: spec, precision, exactPrecision,
    sinkTokens, windowTokens, slack, hadamard, planner, valueGroup, scale, seed,
  };
  return { resolved, policy, plans, geometry };
}

/** Compression target of a lane with cap `cap`: cap − slack, but never below sinks + window. */
export function laneTarget(cap: number, o: Pick<ResolvedOptions, 'slack' | 'sinkTokens' | 'windowTokens'>): number {
  if (!Number.isFinite(cap)) return cap;
  return Math.min(cap, Math.max(o.sinkTokens + o.windowTokens, cap - o.slack, 1));
}

export { PAGE_TOKENS };

/**
 * `balancekv`: discrepancy-walk sampling (Kochetkova, Sheth, Han, Zandieh, Kapralov,
 * "Streaming Attention Approximation via Discrepancy Theory" / BalanceKV, arXiv
 * 2502.07861; the authors' code github.com/ksheth96/BalanceKV, `balanced_walk`). The
 * walk, its kernel, the halving rules and their float64 reference live in
 * `src/balancekv/` (docs/methods/balancekv.md); this file makes them a cache policy.
 *
 * **Kept from the paper and the code.** Each halving walks blocks of B entries (in
 * position order) with the self-balancing walk over the kernel
 * `exp(temp·<k̄a,k̄b>/√d − β)·(<ṽa,ṽb> + c0)` (keys centred per block, ṽ = v·w with w
 * the weight an entry already carries), `p_i = 1/2 − γ·h_i`, then the code's
 * prefix-weight rule keeps ⌊n/2⌋ entries with their weight multiplied by 2 (or 1 for
 * the tail after the balance point). Defaults are the code's LongBench settings:
 * γ = 4, temp = 1, B = 128, c0 = 0.025, β = 0, padded centring. Options: the
 * needle-aware variant (`needle`: outlier-anchored neighbourhoods kept with weight 1,
 * left out of the walk), the theoretical SoftmaxBalance (`theoretical`: γ = 1/(2cR²),
 * smaller sign class with weight 2, FAIL counted in `stats.failures`), γ = 0 (random
 * signs: the repo's uniform-halving baseline).
 *
 * **What changes, and why.**
 * - *Log-weights.* A kept entry's weight w goes into the cache as `ln w` added to its
 *   log-weight (`plan.logWeightAdd`); attention adds the log-weight to the logit, so
 *   the numerator AND the denominator of softmax attention both weight the entry by w:
 *   `Σ w e^{l} v / Σ w e^{l}`. This is the paper's estimator (Alg. 1: level weights 2^ℓ in
 *   both sums) and the needle code's convention. The LongBench code instead stores
 *   `v·w/2^T` with a bias `ln 2^T` (w in the numerator, 2^T in the denominator); one
 *   log-weight per entry cannot express that (it would need rescaled values), and with
 *   w = 2^T for almost every survivor the two agree.
 * - *Streaming inside a budgeted cache* (`mode: 'stream'`, the default). The cache calls
 *   `plan(ctx, keep)` whenever a lane exceeds its cap (about every `slack` tokens). The
 *   plan is a merge-and-reduce over **levels**: every entry carries in its policy state
 *   the number of halvings it went through (0 for a fresh token). To free R entries the
 *   plan halves the fullest level (counts weighted by `levelRatio`^level), its oldest
 *   entries first and 2·R of them at most (so the lane stays full), promotes the
 *   survivors to the next level, and repeats while entries must still go, like the carry
 *   of a binary counter. Levels thus hold similar numbers of entries, each level covering
 *   twice the stretch of the stream of the one below: density falls with age (recent
 *   entries denser, as the paper's MergeAndReduce buffers), all of it within the cache's
 *   fixed memory (the cap; no level buffers beside it). Each plan walks only the entries
 *   it halves (about 2·R, never the whole lane), so the cost per token is O(B·d)
 *   amortised. The paper's MergeAndReduce instead keeps T buffers of B entries (memory
 *   sinks + window + T·B + n/2^T, growing with n); a cache with a hard cap cannot, so the
 *   levels here share the cap, and a halving's block is the 2·R entries it frees (R is
 *   about the cache's `slack`), not B, unless a long append frees more.
 * - *Prefill* (`mode: 'prefill'`, the experiments' one-shot). When the fresh (level-0)
 *   entries can be compressed by whole halvings to fit the budget beside the older
 *   entries (a long append: the prompt), they get the paper's T full halvings, T the
 *   fewest that fit; otherwise (decode-time compressions) the stream cascade runs.
 * - *Low-bit samples.* With `precision` int8/int4/int2 the compressed middle is stored
 *   packed; `ctx.keys()` / `ctx.values()` are the stored, dequantized rows, so the walk
 *   balances exactly the values attention will read. Only the exact residual (fewer than
 *   32 fresh entries per lane, not yet packed) is seen unquantized.
 * - *Random numbers.* Each halving draws its walk key from the cache's seeded generator
 *   (saved in snapshots), and the walk's uniforms are the counter-based hash of
 *   `src/balancekv/rng.ts`: runs are deterministic per seed and continue identically
 *   after a snapshot round trip; they are not bit-compatible with torch's generator.
 * - *Needle anchors* are computed on each fresh batch (blocks of B in position order,
 *   ±`needleRadius`), not once per prompt at layer 1; the flag follows the entry.
 * - Value-norm bucketing (Alg. 1) is not implemented; ṽ = v·w and c0 carry the norms.
 *
 * Per-entry state (2 float64): [level, anchor flag]; it follows the entries through
 * compaction and snapshots. The walk runs in WebAssembly (`WasmWalker`, SIMD where
 * available) on the cache's engine.
 */
import { EdgeKVError, argError, checkInt, checkNum } from '../errors.ts';
import { halvingPass, type CompressorSettings } from '../balancekv/compress.ts';
import { DEFAULT_NEEDLE_RADIUS, needleAnchors } from '../balancekv/needle.ts';
import {
  CENTER_MODES, DEFAULT_BLOCK_SIZE, DEFAULT_C0, DEFAULT_GAMMA, MAX_BLOCK_SIZE, MAX_LEVELS, TEMP_LONGBENCH, keptAfter, resolveWalkParams,
  type CenterMode,
} from '../balancekv/params.ts';
import { ReferenceWalker } from '../balancekv/reference.ts';
import { walkKey } from '../balancekv/rng.ts';
import { DEFAULT_DELTA } from '../balancekv/softmax-balance.ts';
import type { BlockWalker } from '../balancekv/types.ts';
import { WasmWalker } from '../balancekv/walk.ts';
import type { Engine } from '../engine.ts';
import { numOption, oneOfOption } from './options.ts';
import type { OptionSpec, Plan, Policy, PolicyContext, PolicyFactory } from './types.ts';

/** Per-entry state: [level (halvings passed), anchor flag]. */
export const BALANCEKV_STATE_WIDTH = 2;
/**
 * Default `levelRatio`: each level holds about 1/1.5 as many entries as the one below
 * (chosen on held-out text windows of mix-27m, seeds 100-109: docs/results/balancekv.md).
 */
export const LEVEL_RATIO = 1.5;
/** Highest level tracked (halvings an entry went through); 2^60 tokens per entry is beyond any stream. */
const MAX_LEVEL = 60;
/** Largest needle radius accepted (positions each side). */
const MAX_NEEDLE_RADIUS = 1 << 16;

/** A boolean option. */
function boolOption(def: boolean): OptionSpec {
  return { default: def, check: (name, v) => { if (typeof v !== 'boolean') throw argError(name, v, 'true or false'); return v; } };
}

/** The options of `balancekv` (defaults: the authors' LongBench settings). */
export const BALANCEKV_OPTIONS: Record<string, OptionSpec> = {
  /** Walk constant γ >= 0 (0: random signs). */
  gamma: numOption(DEFAULT_GAMMA, 0, Number.MAX_VALUE),
  /** Kernel temperature > 0. */
  temp: {
    default: TEMP_LONGBENCH,
    check: (name, v) => {
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw argError(name, v, 'a finite number > 0', 'use 1 (LongBench) or 0.1 (single-layer study)');
      return v;
    },
  },
  /** Block size B: an even integer in [2, 4096]. */
  blockSize: {
    default: DEFAULT_BLOCK_SIZE,
    check: (name, v) => {
      const b = checkInt(name, v, 2, MAX_BLOCK_SIZE);
      if (b % 2 !== 0) throw argError(name, v, `an even integer in [2, ${MAX_BLOCK_SIZE}]`, 'a halving keeps B/2 entries of a full block');
      return b;
    },
  },
  /** Constant added to the value kernel (balances the softmax denominator too). */
  c0: numOption(DEFAULT_C0, 0, Number.MAX_VALUE),
  /** Key centring per block: 'padded' (the code), 'real', 'none'. */
  center: oneOfOption<CenterMode>('padded', CENTER_MODES),
  /** Exponent shift β: a number (0: the paper's walk) or 'auto' (normalised kernel, a less greedy walk). */
  beta: {
    default: 0,
    check: (name, v) => {
      if (v !== 'auto' && (typeof v !== 'number' || !Number.isFinite(v))) throw argError(name, v, 'a finite number or "auto"');
      return v;
    },
  },
  /**
   * 'none' (default) keeps the code's weights (2 and 1), which lose the mass of the walk
   * prefix's larger sign class; 'prefix' rescales the weight-2 survivors to the weight of
   * the prefix they stand for (the tail survivors are exact); 'all' rescales every
   * survivor (the components' `massCorrection: true`). See docs/results/balancekv.md.
   */
  massCorrection: oneOfOption('none', ['none', 'prefix', 'all'] as const),
  /** 'stream' (merge-and-reduce levels) or 'prefill' (one-shot T halvings of a long append). */
  mode: oneOfOption('stream', ['stream', 'prefill'] as const),
  /**
   * stream: the cascade halves the level l maximising count_l · levelRatio^l, so level l
   * holds about levelRatio^-l as many entries as level 0 (1: equal counts, as the buffers
   * of a binary counter; larger: denser recent history; 0: always the lowest level, which
   * halves fresh entries up to the weight of the oldest: uniform density over the stream).
   */
  levelRatio: numOption(LEVEL_RATIO, 0, 1e6),
  /**
   * prefill: at least this many halvings T of a long append (the code's `itrs`, 2 = 1/4),
   * even when the budget would allow fewer; 0 (default): the fewest that fit the budget.
   * T never exceeds log2 of the append's size, so at least one entry of it remains.
   */
  levels: { default: 0, check: (name, v) => checkInt(name, v, 0, MAX_LEVELS) },
  /** Needle-aware variant: outlier neighbourhoods kept with weight 1. */
  needle: boolOption(false),
  /** Neighbourhood of an outlier kept by the needle variant (positions each side). */
  needleRadius: {
    default: DEFAULT_NEEDLE_RADIUS,
    check: (name, v) => checkInt(name, v, 0, MAX_NEEDLE_RADIUS),
  },
  /** How the needle variant halves walked entries: 'prefix' (budget-exact) or 'code' (the authors'). */
  needleRule: oneOfOption('prefix', ['prefix', 'code'] as const),
  /** Theoretical SoftmaxBalance (Alg. 2) instead of the practical walk. */
  theoretical: boolOption(false),
  /** SoftmaxBalance failure probability δ in (0, 0.5]. */
  delta: {
    default: DEFAULT_DELTA,
    check: (name, v) => checkNum(name, v, Number.MIN_VALUE, 0.5),
  },
};

/** Counters of a `balancekv` policy instance (not saved in snapshots). */
export interface BalanceKVStats {
  /** Plans executed. */
  plans: number;
  /** Halving passes run (one per level group halved). */
  halvings: number;
  /** Entries walked (sum of pass sizes). */
  walked: number;
  /** Walked entries whose probability saturated (|γh| > 1/2: the walk decided greedily). */
  saturated: number;
  /** theoretical: passes where SoftmaxBalance's FAIL condition |h| > cR² occurred. */
  failures: number;
  /** Milliseconds spent in plans (walk, halving, bookkeeping; not the cache's execution). */
  ms: number;
}

/** The `balancekv` policy object (a `Policy` with its counters). */
export interface BalanceKVPolicy extends Policy {
  readonly stats: BalanceKVStats;
}

/**
 * Mass correction 'prefix' of one halving, in place on `keptW`: survivors whose weight
 * doubled came from the walk's balanced prefix and stand for all of it, so they are
 * rescaled to carry the prefix's weight (the walked weight minus the tail survivors',
 * which stand only for themselves). Anchors (weight unchanged, `anc`) are exact. When
 * no entry doubled (a one-sided walk), every walked survivor is rescaled instead.
 * `inW`/`anc` are per walked entry (row `inRows[k]`), `keptRows`/`keptW` per survivor.
 */
function prefixMass(inW: Float64Array, anc: Uint8Array | null, keptRows: Int32Array, keptW: Float64Array, inRows: Int32Array): void {
  const at = new Map<number, number>();
  for (let k = 0; k < inRows.length; k++) at.set(inRows[k], k);
  let before = 0;
  for (let k = 0; k < inW.length; k++) if (!anc || !anc[k]) before += inW[k];
  let doubled = 0, single = 0;
  const kind = new Uint8Array(keptRows.length); // 0 anchor, 1 tail (weight kept), 2 doubled
  for (let j = 0; j < keptRows.length; j++) {
    const k = at.get(keptRows[j])!;
    if (anc && anc[k]) continue;
    if (keptW[j] > inW[k] * DOUBLED) { kind[j] = 2; doubled += keptW[j]; } else { kind[j] = 1; single += keptW[j]; }
  }
  if (doubled > 0 && before > single) {
    const f = (before - single) / doubled;
    for (let j = 0; j < keptRows.length; j++) if (kind[j] === 2) keptW[j] *= f;
  } else if (doubled + single > 0) {
    const f = before / (doubled + single);
    for (let j = 0; j < keptRows.length; j++) if (kind[j] > 0) keptW[j] *= f;
  }
}
/** A survivor whose weight grew by more than this factor was doubled by the prefix rule. */
const DOUBLED = 1.5;

const walkers = new WeakMap<Engine, WasmWalker>();
const referenceWalker = new ReferenceWalker();

function walkerFor(engine: Engine | undefined): BlockWalker {
  if (!engine) return referenceWalker;
  let w = walkers.get(engine);
  if (!w) walkers.set(engine, (w = new WasmWalker(engine)));
  return w;
}

function now(): number { return typeof performance !== 'undefined' ? performance.now() : Date.now(); }

/** Indices of `idx` sorted by position order (they are lane rows: ascending = position order). */
function ascending(a: number[]): Int32Array { return Int32Array.from(a).sort(); }

/**
 * The `balancekv` policy factory: `{ name: 'balancekv', gamma, temp, blockSize, c0, center,
 * beta, massCorrection, mode, levels, needle, needleRadius, needleRule, theoretical, delta }`
 * (every option optional; see `BALANCEKV_OPTIONS` and the module comment).
 */
export const balancekvPolicy: PolicyFactory = {
  name: 'balancekv',
  summary: 'discrepancy-walk halving with log-weights, merge-and-reduce levels (arXiv 2502.07861)',
  options: BALANCEKV_OPTIONS,
  create: (config, geometry): BalanceKVPolicy => {
    const walk = resolveWalkParams({
      gamma: config.gamma as number, temp: config.temp as number, beta: config.beta as number | 'auto',
      blockSize: config.blockSize as number, c0: config.c0 as number, center: config.center as CenterMode,
      massCorrection: config.massCorrection === 'all',
    }, 'options.policy');
    const theoretical = config.theoretical as boolean;
    const needle = config.needle as boolean;
    if (theoretical && needle) throw new EdgeKVError('E_ARG', 'options.policy.theoretical = true cannot be combined with options.policy.needle = true (SoftmaxBalance has no anchors); choose one', 'options.policy.theoretical');
    const settings: CompressorSettings = {
      walk, seed: 0, stream: 0, algorithm: theoretical ? 'softmax-balance' : 'walk',
      delta: config.delta as number, anchorRule: config.needleRule as 'prefix' | 'code',
    };
    const mode = config.mode as 'stream' | 'prefill';
    const radius = config.needleRadius as number;
    const minLevels = config.levels as number;
    const massMode = config.massCorrection as 'prefix' | 'all' | 'none';
    const levelRatio = config.levelRatio as number;
    const W = BALANCEKV_STATE_WIDTH;
    const stats: BalanceKVStats = { plans: 0, halvings: 0, walked: 0, saturated: 0, failures: 0, ms: 0 };

    function plan(ctx: PolicyContext, keep: number): Plan {
      const t0 = now();
      const E = ctx.evictable, s0 = ctx.evictStart, d = geometry.headDim;
      if (keep >= E) {
        const all = new Int32Array(E);
        for (let i = 0; i < E; i++) all[i] = i;
        return { keep: all };
      }
      if (keep <= 0) return { keep: new Int32Array(0) };
      if (!ctx.rows && !ctx.values) throw new EdgeKVError('E_STATE', 'policy balancekv needs PolicyContext.rows() or values() (the stored values); this cache provides neither');
      const logW = ctx.logWeights();
      const st = ctx.entryState;
      // Rows of the entries a halving walks: only their pages are read (ctx.rows), or the
      // whole lane once per plan where the context cannot read selected rows.
      let whole: { keys: Float32Array; values: Float32Array; d: number } | null = null;
      const gather = (order: Int32Array): { input: { keys: Float32Array; values: Float32Array; d: number }; idx: Int32Array } => {
        if (ctx.rows) {
          const idx = new Int32Array(order.length);
          for (let k = 0; k < idx.length; k++) idx[k] = k;
          return { input: { keys: ctx.rows('keys', order), values: ctx.rows('values', order), d }, idx };
        }
        whole ??= { keys: ctx.keys(), values: ctx.values!(), d };
        return { input: whole, idx: order };
      };
      const walker = walkerFor(ctx.engine);
      const stream = ctx.layer * geometry.kvHeads + ctx.kvHead;
      // Per evictable entry: alive, level, anchor flag, log of the weight factor of this plan.
      const alive = new Uint8Array(E).fill(1);
      const level = new Int32Array(E), anchor = new Uint8Array(E), addLog = new Float64Array(E);
      for (let i = 0; i < E; i++) { level[i] = Math.min(MAX_LEVEL, st[(s0 + i) * W]); anchor[i] = st[(s0 + i) * W + 1] ? 1 : 0; }
      let remaining = E;

      /** Halve the entries `rows` (evictable indices, ascending) once; survivors move to `toLevel`. */
      const halve = (rows: Int32Array, toLevel: number, fresh: boolean): void => {
        const n = rows.length;
        const order = new Int32Array(n), weights = new Float64Array(n);
        for (let k = 0; k < n; k++) {
          const i = rows[k];
          order[k] = s0 + i;
          weights[k] = Math.exp(logW[s0 + i] + addLog[i]);
        }
        const { input, idx } = gather(order);
        let anc: Uint8Array | null = null;
        if (needle) {
          anc = new Uint8Array(n);
          if (fresh) {
            const kk = new Float32Array(n * d);
            for (let k = 0; k < n; k++) kk.set(input.keys.subarray(idx[k] * d, idx[k] * d + d), k * d);
            const a = needleAnchors(kk, n, d, walk.blockSize, radius);
            for (let k = 0; k < n; k++) if (a[k]) anchor[rows[k]] = 1;
          }
          let any = false;
          for (let k = 0; k < n; k++) { anc[k] = anchor[rows[k]]; any ||= anc[k] === 1; }
          if (!any) anc = null;
        }
        // The walk's key comes from the cache's generator (saved in snapshots) and the lane.
        const key = walkKey(ctx.rng.nextU32(), stream, toLevel, 0);
        const r = halvingPass(walker, input, idx, weights, anc, settings, key);
        stats.halvings++;
        stats.walked += n;
        stats.saturated += r.saturated;
        if (theoretical && r.saturated > 0) stats.failures++;
        if (massMode === 'prefix' && !theoretical) prefixMass(weights, anc, r.order, r.weights, idx);
        for (let k = 0; k < n; k++) alive[rows[k]] = 0;
        for (let k = 0; k < r.order.length; k++) {
          // Input row -> evictable index (selected rows are 0..n-1; whole-lane rows are lane entries).
          const i = ctx.rows ? rows[r.order[k]] : r.order[k] - s0;
          alive[i] = 1;
          addLog[i] = Math.log(r.weights[k]) - logW[s0 + i];
          level[i] = Math.min(MAX_LEVEL, toLevel);
        }
        remaining -= n - r.order.length;
      };

      // prefill: the fresh entries get the paper's T full halvings when that alone fits.
      if (mode === 'prefill') {
        const fresh: number[] = [];
        for (let i = 0; i < E; i++) if (level[i] === 0) fresh.push(i);
        const others = E - fresh.length;
        let T = 0;
        for (let t = 1; t <= MAX_LEVELS && fresh.length >= 2; t++) {
          const left = keptAfter(fresh.length, t);
          if (left === 0) break;
          if (others + left <= keep) { T = t; break; }
        }
        // At least `levels` halvings, but never so many that nothing of the append remains.
        while (T > 0 && T < minLevels && keptAfter(fresh.length, T + 1) > 0) T++;
        if (T > 0) {
          let rows = ascending(fresh);
          for (let t = 1; t <= T; t++) {
            halve(rows, t, t === 1);
            const next: number[] = [];
            for (const i of rows) if (alive[i]) next.push(i);
            rows = Int32Array.from(next);
          }
        }
      }

      // stream (and prefill's fallback): lowest level first, oldest entries first, 2·(still to free) at most.
      // Needle anchors already flagged stay out of the cascade while other entries can go.
      let withAnchors = !needle;
      const count = new Int32Array(MAX_LEVEL + 2);
      while (remaining > keep) {
        count.fill(0);
        let eligible = 0;
        for (let i = 0; i < E; i++) if (alive[i] && (withAnchors || !anchor[i])) { count[level[i]]++; eligible++; }
        if (eligible < 2 && !withAnchors) { withAnchors = true; continue; }
        const lv: number[] = [];
        for (let l = 0; l < count.length; l++) if (count[l] > 0) lv.push(l);
        // The fullest level, counts weighted by levelRatio^l (ties: the lower level); with
        // levelRatio 1 levels hold similar counts, as the buffers of a binary counter, and
        // density falls with age. When no level holds two entries, the two lowest merge.
        let lo = lv[0], hi = lv[0], best = -1;
        for (const l of lv) {
          const c = count[l];
          const score = c < 2 ? -1 : c * Math.pow(levelRatio, l);
          if (score > best) { best = score; lo = hi = l; }
        }
        if (best < 0) { lo = lv[0]; hi = lv[Math.min(1, lv.length - 1)]; }
        const group: number[] = [];
        for (let i = 0; i < E; i++) if (alive[i] && (withAnchors || !anchor[i]) && level[i] >= lo && level[i] <= hi) group.push(i);
        if (group.length < 2) break; // unreachable: remaining > keep >= 1 means two alive entries
        const need = remaining - keep;
        const take = Math.min(group.length, 2 * need);
        const rows = Int32Array.from(group.slice(0, take));
        halve(rows, hi + 1, hi === 0);
      }

      let m = 0;
      for (let i = 0; i < E; i++) m += alive[i];
      const keepIdx = new Int32Array(m), add = new Float32Array(m);
      for (let i = 0, j = 0; i < E; i++) {
        if (!alive[i]) continue;
        keepIdx[j] = i; add[j] = addLog[i]; j++;
        st[(s0 + i) * W] = level[i];
        st[(s0 + i) * W + 1] = anchor[i];
      }
      stats.plans++;
      stats.ms += now() - t0;
      return { keep: keepIdx, logWeightAdd: add };
    }

    return { name: 'balancekv', config, evicts: true, needs: {}, entryStateWidth: W, plan, stats };
  },
};


/**
 * The policy interface: what decides which entries of a lane survive.
 *
 * A lane (layer × KV head) holds its entries in position order:
 * `[sinks | evictable (compressed middle + exact residual) | recent window]`.
 * Policies see only the evictable range, through a `PolicyContext`, and never touch
 * KV memory: the cache executes their decisions.
 *
 * - **Scorers** write one score per evictable entry (`score`); the shared selector
 *   (`selector.ts`) keeps the top scores, and optional **stages** (a composition
 *   `base+stage`, e.g. a KVCrush-style rescue of representatives from the evicted set)
 *   edit that selection before it is executed.
 * - **Samplers / planners of their own** return a `Plan` directly (`plan`): a keep
 *   list plus log-weights to add (uniform sampling; later BalanceKV, merges).
 * - **Observers** ask the cache for attention probabilities on every `attend`
 *   (`needs.attendProbs`, H2O) or for a ring of recent queries (`needs.queryWindow`,
 *   SnapKV / TOVA); the cache gathers them only when the active policy asks.
 * - **Per-entry state** (`entryStateWidth` float64 numbers per entry, e.g. H2O's
 *   accumulated attention) lives with the lane, follows compaction and is saved in
 *   snapshots.
 */
import type { Rng } from '../cache/rng.ts';
import type { Engine } from '../engine.ts';

/** Geometry shared by every lane of a cache. */
export interface CacheGeometry {
  layers: number;
  qHeads: number;
  kvHeads: number;
  headDim: number;
  /** Query heads per KV head (qHeads / kvHeads). */
  groupSize: number;
}

/** What a policy may read about one lane when it is compressed. */
export interface PolicyContext {
  readonly geometry: CacheGeometry;
  readonly layer: number;
  readonly kvHead: number;
  /** Entries in the lane (sinks + evictable + window). */
  readonly tokens: number;
  /** Index of the first evictable entry (= number of sinks held). */
  readonly evictStart: number;
  /** Number of evictable entries (scores / plans are over these, index 0 = entry `evictStart`). */
  readonly evictable: number;
  /** Per-entry state of the whole lane, `[tokens][entryStateWidth]` (shared, mutable). */
  readonly entryState: Float64Array;
  /** The cache's seeded random generator (saved in snapshots). */
  readonly rng: Rng;
  /** Original positions of all entries, `[tokens]` (lazily read from the pages). */
  positions(): Int32Array;
  /** Stored (dequantized, possibly Hadamard-rotated) keys of all entries, `[tokens][headDim]`. */
  keys(): Float32Array;
  /** Stored log-weights of all entries, `[tokens]`. */
  logWeights(): Float32Array;
  /**
   * Stored (dequantized, possibly Hadamard-rotated) values of all entries,
   * `[tokens][headDim]`, like `keys()` (samplers that balance values: BalanceKV).
   */
  values?(): Float32Array;
  /**
   * Stored (dequantized) keys or values of the entries `entries` only (ascending entry
   * indices, as in `positions()`), `[entries.length][headDim]`: unpacks only the pages
   * that hold them (policies that read a few rows per compression: BalanceKV).
   */
  rows?(which: 'keys' | 'values', entries: Int32Array): Float32Array;
  /** The engine whose kernels the cache runs on (policies with WASM kernels of their own: BalanceKV's walk). */
  readonly engine?: Engine;
  /**
   * The recent queries of this lane's GQA group (policies with `needs.queryWindow`),
   * `[count][groupSize][headDim]` in storage basis, oldest first; count may be 0.
   */
  windowQueries(): { queries: Float32Array; count: number };
  /**
   * Attention probabilities of `rows` queries (`[rows][headDim]`, storage basis) over
   * all lane entries: `[rows][tokens]`, each row summing to 1 (log-weights included).
   */
  attention(queries: Float32Array, rows: number): Float32Array;
  /**
   * Hamming distance of each packed bit row `[n][words]` (u32 words) to `anchor`
   * `[words]`, by the WASM popcount kernel `hammingRows`: `Int32Array(n)` (KVCrush).
   */
  hamming?(bits: Uint32Array, words: number, anchor: Uint32Array): Int32Array;
}

/** A plan: which evictable entries to keep and what to add to their log-weights. */
export interface Plan {
  /** Evictable indices to keep (0 = entry `evictStart`), strictly ascending. */
  keep: Int32Array;
  /** Added to each kept entry's log-weight (same length as keep), or absent. */
  logWeightAdd?: Float32Array;
}

/** What the cache must gather for a policy. */
export interface PolicyNeeds {
  /** Attention probabilities of every attend call, delivered to `observe`. */
  attendProbs?: boolean;
  /** Keep a ring of the last `queryWindow` queries per layer (0: none). */
  queryWindow?: number;
}

/** An eviction policy instance (one per cache). */
export interface Policy {
  /** Registry name, e.g. 'snapkv' or 'snapkv+kvcrush'. */
  readonly name: string;
  /** Resolved options (defaults filled in), JSON-serializable; saved in snapshots. */
  readonly config: Record<string, unknown>;
  /** False for policies that never evict (full). */
  readonly evicts: boolean;
  readonly needs: PolicyNeeds;
  /** float64 numbers of per-entry state (0: none). */
  readonly entryStateWidth: number;
  /** Called after each attend with probabilities `[groupSize][tokens]` (needs.attendProbs). */
  observe?(ctx: PolicyContext, probs: Float32Array, stride: number): void;
  /** Scorer: write one score per evictable entry into `out` (higher = keep). */
  score?(ctx: PolicyContext, out: Float64Array): void;
  /** Sampler: return a plan keeping at most `keep` evictable entries. */
  plan?(ctx: PolicyContext, keep: number): Plan;
  /** Stages run after the selector (compositions `base+stage`); scorers only. */
  readonly stages?: readonly Stage[];
}

/**
 * A stage applied after the selector (composition `base+stage`): it may change which
 * evictable entries are kept (`keepMask[i] = 1`), keeping at most `keep` of them.
 */
export interface Stage {
  readonly name: string;
  readonly config: Record<string, unknown>;
  /** What the cache must gather for this stage (merged with the base policy's needs). */
  readonly needs?: PolicyNeeds;
  apply(ctx: PolicyContext, scores: Float64Array, keepMask: Uint8Array, keep: number): void;
}

/** Option declaration of a policy or stage: default and validator. */
export interface OptionSpec {
  default: unknown;
  /** Throws an EdgeKVError naming `name` when `value` is not allowed; returns the value. */
  check(name: string, value: unknown): unknown;
}

/** A registered policy: its options and its constructor. */
export interface PolicyFactory {
  readonly name: string;
  /** One line for docs and error messages. */
  readonly summary: string;
  readonly options: Record<string, OptionSpec>;
  create(config: Record<string, unknown>, geometry: CacheGeometry): Policy;
}

/** A registered stage. */
export interface StageFactory {
  readonly name: string;
  readonly summary: string;
  readonly options: Record<string, OptionSpec>;
  create(config: Record<string, unknown>, geometry: CacheGeometry): Stage;
}

/**
 * `kvcrush`: a rescue stage for any scoring policy (`snapkv+kvcrush`, `h2o+kvcrush`):
 * KVCrush (Jha, Gobriel, Talamanova, Jain, "KVCrush: Key Value Cache Size-Reduction
 * Using Similarity in Head-Behaviour", arXiv 2503.00022).
 *
 * Alongside the base policy's importance selection, a share `rho` of the lane's budget
 * goes to *representatives* of the entries the base policy would evict. Each entry gets
 * a short binary "head-behaviour" vector (bit = "this head puts the entry in the top
 * half of its attention"); units (entries, or blocks of entries) are ordered by the
 * Hamming distance of their vector to one anchor vector (popcount in WASM, kernel
 * `hammingRows`), and the representatives are the evicted units at evenly spaced ranks
 * of that order (one per bucket of the distance-sorted list; ranks
 * `floor(j (n - 1) / (m - 1))`, both ends included, as the vLLM reference port's
 * linspace). Cost: O(bits · entries) to build vectors, one popcount pass, one sort;
 * no pairwise similarity.
 *
 * Kept from the paper: the budget split (importance gets `keep − ⌊rho·keep⌋`; with
 * ⌊rho·keep⌋ = 0 the stage does nothing), top-half bits, anchors `random`, `mean` (bitwise majority over
 * all units), `alternate` (0101…), `zeros`, `ones` (the last two from OpenVINO GenAI),
 * representatives drawn only from units the importance pick left out, the result sorted
 * back into position order.
 *
 * Changed, because lanes here are ragged (each KV head keeps its own entries):
 * - **Which heads give the bits.** The paper's vector has one bit per head of the layer,
 *   over a token set shared by all heads. Here two lanes of one layer hold different
 *   entries, so only the query heads that read this lane's keys — the GQA group — can
 *   rate its entries. `bits: 'heads'` gives one bit per query head of the group (the
 *   paper's rule restricted to the heads that see the lane): the summed attention of
 *   the last `window` queries of each head, top half per head. `'queries'` gives one bit
 *   per (recent query, head) pair, `window · groupSize` bits, a finer behaviour vector
 *   for models with small groups (the default: 4 bits per entry leave only 5 distinct
 *   distances on a group of 4). `'score'` is OpenVINO GenAI's rule: one bit per entry
 *   from the base policy's own (head-aggregated) scores. The stage asks the cache for a
 *   ring of the last `window` queries (merged with the base's own window), so it works
 *   over H2O too; before any query is seen it falls back to `'score'` bits.
 * - **Granularity.** `'token'` (default; the paper's token-level variant) or `'block'`
 *   (OpenVINO GenAI's variant): the evictable range is cut into blocks of
 *   `blockTokens` consecutive entries; importance keeps whole blocks by summed score,
 *   `max(1, ⌊rho·keep / blockTokens⌋)` representative blocks are rescued, a block's vector
 *   is the concatenation of its entries' vectors; the budget left over by whole blocks
 *   goes to the best-scored remaining entries, so the stage always keeps exactly `keep`.
 *   With `keep < blockTokens` no block fits and the base selection stands.
 * - Compression is amortized (the cache compresses a lane to cap − slack), so the stage
 *   runs once per compression, not per decode step; the anchor `random` is drawn from
 *   the cache's seeded generator (saved in snapshots).
 */
import { topK } from './selector.ts';
import { intOption, numOption, oneOfOption } from './options.ts';
import type { PolicyContext, Stage, StageFactory } from './types.ts';

/** Anchor vectors (default `mean`; arXiv 2503.00022; `zeros`/`ones` from OpenVINO GenAI). */
export const KVCRUSH_ANCHORS = ['random', 'mean', 'alternate', 'zeros', 'ones'] as const;
export type KVCrushAnchor = (typeof KVCRUSH_ANCHORS)[number];
/** Where the per-entry bits come from (see the module comment). */
export const KVCRUSH_BITS = ['heads', 'queries', 'score'] as const;
export type KVCrushBits = (typeof KVCRUSH_BITS)[number];
/** Unit of representatives: entries, or blocks of consecutive entries (OpenVINO GenAI). */
export const KVCRUSH_GRANULARITY = ['token', 'block'] as const;
export type KVCrushGranularity = (typeof KVCRUSH_GRANULARITY)[number];

/** Default budget share of representatives (vLLM reference port default). */
export const KVCRUSH_DEFAULT_RHO = 0.25;
/** Default number of recent queries giving the head bits (OpenVINO's SnapKV window). */
export const KVCRUSH_DEFAULT_WINDOW = 8;
/** Default block size of the block variant (vLLM port page size). */
export const KVCRUSH_DEFAULT_BLOCK = 16;
/** Largest `rho`: the importance pick keeps at least a tenth of the budget. */
export const KVCRUSH_MAX_RHO = 0.9;
/** Bits per packed word. */
const WORD_BITS = 32;
/** 0b1010…: bits 1, 3, 5 … set (the `alternate` anchor: bit j = j mod 2). */
const ALTERNATE_WORD = 0xaaaaaaaa;

/** Per-unit packed bit vectors: `bits` is `[units][words]`, `nbits` bits used per row. */
export interface BitRows { bits: Uint32Array; units: number; words: number; nbits: number; }

/** NaN → -Infinity (the selector's convention), so sums and sorts stay ordered. */
function clean(x: number): number { return x === x ? x : -Infinity; }

/**
 * The k-th largest value of `a[0..n)` (1 ≤ k ≤ n), by quickselect in place (`a` is
 * reordered). Average O(n): the bits need a threshold per row, not a sorted row.
 */
export function kthLargest(a: Float64Array, n: number, k: number): number {
  let lo = 0, hi = n - 1;
  const target = k - 1; // index in descending order
  while (lo < hi) {
    // median of three as the pivot
    const mid = (lo + hi) >>> 1;
    const x = a[lo], y = a[mid], z = a[hi];
    const pivot = x > y ? (y > z ? y : x > z ? z : x) : (x > z ? x : y > z ? z : y);
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) { const t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target];
  }
  return a[target];
}

/**
 * Top-half bit rows: `values` is `[rows][n]`; entry i gets bit r when `values[r][i]`
 * is among the ⌊n/2⌋ largest of row r (ties toward the higher index, as the selector).
 * Returns `[n][⌈rows/32⌉]` packed rows.
 */
export function topHalfBits(values: Float64Array, rows: number, n: number): BitRows {
  const words = Math.max(1, Math.ceil(rows / WORD_BITS));
  const bits = new Uint32Array(n * words);
  const half = Math.floor(n / 2);
  if (half === 0) return { bits, units: n, words, nbits: rows };
  const scratch = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const row = values.subarray(r * n, (r + 1) * n);
    scratch.set(row);
    const thr = kthLargest(scratch, n, half);
    const w = r >>> 5, b = (1 << (r & 31)) >>> 0;
    let taken = 0;
    for (let i = 0; i < n; i++) if (row[i] > thr) { bits[i * words + w] = (bits[i * words + w] | b) >>> 0; taken++; }
    for (let i = n - 1; i >= 0 && taken < half; i--) if (row[i] === thr) { bits[i * words + w] = (bits[i * words + w] | b) >>> 0; taken++; }
  }
  return { bits, units: n, words, nbits: rows };
}

/**
 * Concatenate the vectors of `size` consecutive rows into one block row (blocks of
 * `tokens` rows; the last block may be shorter and is zero-padded).
 */
export function blockBits(tok: BitRows, size: number): BitRows {
  const nb = Math.ceil(tok.units / size);
  const nbits = size * tok.nbits;
  const words = Math.max(1, Math.ceil(nbits / WORD_BITS));
  const bits = new Uint32Array(nb * words);
  for (let t = 0; t < tok.units; t++) {
    const blk = Math.floor(t / size), slot = t - blk * size;
    for (let j = 0; j < tok.nbits; j++) {
      if (!((tok.bits[t * tok.words + (j >>> 5)] >>> (j & 31)) & 1)) continue;
      const k = slot * tok.nbits + j;
      bits[blk * words + (k >>> 5)] = (bits[blk * words + (k >>> 5)] | (1 << (k & 31))) >>> 0;
    }
  }
  return { bits, units: nb, words, nbits };
}

/** Mask of the bits a row uses, per word (unused tail bits stay 0 in rows and anchors). */
function usedMask(nbits: number, w: number): number {
  const lo = w * WORD_BITS;
  if (nbits >= lo + WORD_BITS) return 0xffffffff;
  if (nbits <= lo) return 0;
  return ((1 << (nbits - lo)) - 1) >>> 0;
}

/**
 * The anchor vector `[words]` for `mode` over the unit rows: `mean` is the bitwise
 * majority (1 when more than half of the units have the bit), `random` draws i.i.d.
 * bits from `next32` (a u32 source), `alternate` is 0101… (bit j = j mod 2).
 */
export function makeAnchor(mode: KVCrushAnchor, rows: BitRows, next32: () => number): Uint32Array {
  const { words, nbits, units, bits } = rows;
  const a = new Uint32Array(words);
  for (let w = 0; w < words; w++) {
    let x = 0;
    if (mode === 'ones') x = 0xffffffff;
    else if (mode === 'alternate') x = ALTERNATE_WORD;
    else if (mode === 'random') x = next32();
    else if (mode === 'mean') {
      for (let b = 0; b < WORD_BITS && w * WORD_BITS + b < nbits; b++) {
        let c = 0;
        for (let u = 0; u < units; u++) c += (bits[u * words + w] >>> b) & 1;
        if (c * 2 > units) x |= 1 << b;
      }
    }
    a[w] = (x & usedMask(nbits, w)) >>> 0;
  }
  return a;
}

/** Hamming distances in TypeScript (used only when a context has no `hamming` kernel). */
export function hammingJS(bits: Uint32Array, words: number, anchor: Uint32Array): Int32Array {
  const n = bits.length / words;
  const out = new Int32Array(n);
  for (let t = 0; t < n; t++) {
    let d = 0;
    for (let w = 0; w < words; w++) {
      let x = (bits[t * words + w] ^ anchor[w]) >>> 0;
      x -= (x >>> 1) & 0x55555555;
      x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
      d += (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
    }
    out[t] = d;
  }
  return out;
}

/** `m` evenly spaced ranks in [0, n): `floor(j (n − 1) / (m − 1))`, both ends included (m ≤ n). */
export function evenlySpacedRanks(n: number, m: number): Int32Array {
  const out = new Int32Array(Math.min(m, n));
  if (out.length === 1) return out;
  for (let j = 0; j < out.length; j++) out[j] = Math.floor((j * (n - 1)) / (out.length - 1));
  return out;
}

/**
 * Representatives: the `eligible` units (indices) sorted by ascending distance (ties by
 * index), then the ones at `evenlySpacedRanks`. Returns unit indices (sorted ascending).
 */
export function representatives(distance: Int32Array, eligible: Int32Array, m: number): Int32Array {
  const order = Array.from(eligible).sort((a, b) => distance[a] - distance[b] || a - b);
  const ranks = evenlySpacedRanks(order.length, m);
  return Int32Array.from(ranks, (r) => order[r]).sort();
}

/**
 * Per-entry bit rows of the evictable entries: the GQA group's attention from the last
 * `window` queries (`heads`: summed per head; `queries`: one row per query and head), or
 * one top-half bit of the base scores (`score`, and the fallback before any query).
 */
export function entryBits(ctx: PolicyContext, scores: Float64Array, source: KVCrushBits, window: number): BitRows {
  const E = ctx.evictable;
  if (source !== 'score') {
    const { queries, count } = ctx.windowQueries();
    const G = ctx.geometry.groupSize, d = ctx.geometry.headDim;
    const w = Math.min(count, window);
    if (w > 0) {
      const rows = w * G;
      const probs = ctx.attention(queries.subarray((count - w) * G * d), rows);
      const n = ctx.tokens, s = ctx.evictStart;
      const R = source === 'heads' ? G : rows;
      const vals = new Float64Array(R * E);
      for (let r = 0; r < rows; r++) {
        const src = probs.subarray(r * n + s, r * n + s + E);
        if (source === 'queries') { vals.set(src, r * E); continue; }
        const dst = (r % G) * E;
        for (let i = 0; i < E; i++) vals[dst + i] += src[i];
      }
      return topHalfBits(vals, R, E);
    }
  }
  const vals = new Float64Array(E);
  for (let i = 0; i < E; i++) vals[i] = clean(scores[i]);
  return topHalfBits(vals, 1, E);
}

/** Resolved options of the stage. */
export interface KVCrushConfig {
  rho: number;
  anchor: KVCrushAnchor;
  bits: KVCrushBits;
  window: number;
  granularity: KVCrushGranularity;
  blockTokens: number;
}

/** Distances of the unit rows to the anchor, on the WASM kernel when the context has it. */
function distances(ctx: PolicyContext, rows: BitRows, anchor: Uint32Array): Int32Array {
  if (rows.units === 0) return new Int32Array(0);
  return ctx.hamming ? ctx.hamming(rows.bits, rows.words, anchor) : hammingJS(rows.bits, rows.words, anchor);
}

function notIn(mask: Uint8Array): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) if (!mask[i]) out.push(i);
  return Int32Array.from(out);
}

/** Build the stage (exported for tests; register through the registry). */
export function createKVCrush(config: KVCrushConfig): Stage {
  const { rho, anchor, bits: source, window, granularity, blockTokens: P } = config;
  const rng32 = (ctx: PolicyContext) => () => ctx.rng.nextU32();
  return {
    name: 'kvcrush',
    config: { ...config },
    needs: source === 'score' ? {} : { queryWindow: window },
    apply(ctx, scores, mask, keep) {
      const E = scores.length;
      if (rho === 0 || keep <= 0 || keep >= E) return;
      if (granularity === 'token') {
        // Fewer than 1 / rho entries to keep: no representative (one would replace a large
        // share of a tiny importance pick; at 1/16 on mix-27m that only hurt).
        const bc = Math.floor(rho * keep);
        if (bc === 0) return;
        const imp = topK(scores, keep - bc);
        const tok = entryBits(ctx, scores, source, window);
        const a = makeAnchor(anchor, tok, rng32(ctx));
        const reps = representatives(distances(ctx, tok, a), notIn(imp), bc);
        mask.set(imp);
        for (const r of reps) mask[r] = 1;
        return;
      }
      // Block variant (OpenVINO GenAI).
      const bcBlocks = Math.max(1, Math.floor((rho * keep) / P));
      if (bcBlocks * P > keep) return; // no whole block fits: keep the base selection
      const impBlocks = Math.floor((keep - bcBlocks * P) / P);
      const nb = Math.ceil(E / P);
      const blockScore = new Float64Array(nb);
      for (let i = 0; i < E; i++) blockScore[Math.floor(i / P)] += clean(scores[i]);
      const imp = topK(blockScore, impBlocks);
      const blocks = blockBits(entryBits(ctx, scores, source, window), P);
      const a = makeAnchor(anchor, blocks, rng32(ctx));
      const reps = representatives(distances(ctx, blocks, a), notIn(imp), bcBlocks);
      mask.fill(0);
      let kept = 0;
      const take = (b: number) => { for (let i = b * P; i < Math.min(E, (b + 1) * P); i++) { mask[i] = 1; kept++; } };
      for (let b = 0; b < nb; b++) if (imp[b]) take(b);
      for (const b of reps) take(b);
      // Fill what whole blocks left of the budget with the best remaining entries.
      if (kept < keep) {
        const rest = new Float64Array(E);
        for (let i = 0; i < E; i++) rest[i] = mask[i] ? -Infinity : clean(scores[i]);
        const order = Array.from({ length: E }, (_, i) => i).filter((i) => !mask[i]).sort((x, y) => rest[y] - rest[x] || y - x);
        for (let j = 0; j < keep - kept && j < order.length; j++) mask[order[j]] = 1;
      }
    },
  };
}

/** Registry entry of the stage (compositions `base+kvcrush`, options under `kvcrush`). */
export const kvcrushStage: StageFactory = {
  name: 'kvcrush',
  summary: 'rescue representatives of the evicted entries by head-behaviour bits (arXiv 2503.00022)',
  options: {
    rho: numOption(KVCRUSH_DEFAULT_RHO, 0, KVCRUSH_MAX_RHO),
    anchor: oneOfOption<KVCrushAnchor>('mean', KVCRUSH_ANCHORS),
    bits: oneOfOption<KVCrushBits>('queries', KVCRUSH_BITS),
    window: intOption(KVCRUSH_DEFAULT_WINDOW, 1, 1024),
    granularity: oneOfOption<KVCrushGranularity>('token', KVCRUSH_GRANULARITY),
    blockTokens: intOption(KVCRUSH_DEFAULT_BLOCK, 1, 1024),
  },
  create: (config) => createKVCrush(config as unknown as KVCrushConfig),
};

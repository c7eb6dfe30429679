/**
 * Synthetic clustered KV and the measuring tools for BalanceKV studies and tests:
 * a generator of LLM-like keys (a large shared offset plus cluster structure, as
 * post-RoPE keys of real heads; values correlated with the key cluster), the uniform
 * sampling baseline at equal kept count, and the relative attention-output error
 * ||ô - o|| / ||o|| averaged over queries (the paper's Fig. 1 metric).
 */
import { SplitRng } from './rng.ts';
import { weightedAttention } from './reference.ts';

/** Keys, values and future queries of one synthetic lane. */
export interface SyntheticKV {
  /** `[n][d]` */
  readonly keys: Float32Array;
  /** `[n][d]` */
  readonly values: Float32Array;
  /** `[queries][d]`, drawn from the same clusters (future queries: never compressed). */
  readonly queries: Float32Array;
  readonly n: number;
  readonly d: number;
  readonly nq: number;
}

/** Options of `clusteredKV` (all optional except n, d). */
export interface ClusteredKVOptions {
  n: number;
  d: number;
  /** Number of key clusters. Default 16. */
  clusters?: number;
  /** Norm of the offset shared by every key (real heads: most of the key norm). Default 12. */
  offsetNorm?: number;
  /** Norm of each cluster centre around the offset. Default 6. */
  clusterNorm?: number;
  /** Norm of the per-token noise. Default 3. */
  noiseNorm?: number;
  /** Norm of the value cluster means. Default 2. */
  valueNorm?: number;
  /** Norm of the per-token value noise. Default 2. */
  valueNoise?: number;
  /** Number of queries. Default 32. */
  queries?: number;
  /** Query norm along its cluster centre. Default 10. */
  queryNorm?: number;
  seed?: number;
}

function randomDirection(rng: SplitRng, d: number, norm: number): Float64Array {
  const x = new Float64Array(d);
  let s = 0;
  for (let c = 0; c < d; c++) { x[c] = rng.normal(); s += x[c] * x[c]; }
  const f = norm / Math.sqrt(s);
  for (let c = 0; c < d; c++) x[c] *= f;
  return x;
}

/** Generate a clustered lane: keys `offset + centre_z + noise`, values `mean_z + noise`. */
export function clusteredKV(o: ClusteredKVOptions): SyntheticKV {
  const { n, d } = o;
  const C = o.clusters ?? 16;
  const rng = new SplitRng(o.seed ?? 1, 0x5e7);
  const offset = randomDirection(rng, d, o.offsetNorm ?? 12);
  const centres = Array.from({ length: C }, () => randomDirection(rng, d, o.clusterNorm ?? 6));
  const vmeans = Array.from({ length: C }, () => randomDirection(rng, d, o.valueNorm ?? 2));
  const noise = (o.noiseNorm ?? 3) / Math.sqrt(d);
  const vnoise = (o.valueNoise ?? 2) / Math.sqrt(d);
  const keys = new Float32Array(n * d), values = new Float32Array(n * d);
  // Cluster sizes follow a skewed law (a few large clusters, many small), as real heads.
  const weights = Array.from({ length: C }, (_, i) => 1 / (i + 1));
  const total = weights.reduce((a, b) => a + b, 0);
  const pick = (): number => {
    let r = rng.next() * total;
    for (let i = 0; i < C; i++) { r -= weights[i]; if (r < 0) return i; }
    return C - 1;
  };
  for (let t = 0; t < n; t++) {
    const z = pick();
    for (let c = 0; c < d; c++) {
      keys[t * d + c] = offset[c] + centres[z][c] + noise * rng.normal();
      values[t * d + c] = vmeans[z][c] + vnoise * rng.normal();
    }
  }
  const nq = o.queries ?? 32;
  const qn = o.queryNorm ?? 10;
  const queries = new Float32Array(nq * d);
  for (let i = 0; i < nq; i++) {
    const z = rng.below(C);
    const cn = Math.hypot(...centres[z]);
    for (let c = 0; c < d; c++) queries[i * d + c] = (centres[z][c] / cn) * qn + (qn / 4 / Math.sqrt(d)) * rng.normal();
  }
  return { keys, values, queries, n, d, nq };
}

/**
 * Uniform sampling without replacement of `keep` of the tokens `middle`, each with weight
 * `weight` (default middle.length / keep). Returns the kept tokens in position order.
 */
export function uniformSample(middle: Int32Array, keep: number, seed: number, weight?: number): { indices: Int32Array; weights: Float64Array } {
  const n = middle.length;
  const m = Math.min(keep, n);
  const rng = new SplitRng(seed, 0xa11);
  const idx = Int32Array.from(middle);
  for (let i = 0; i < m; i++) {
    const j = i + rng.below(n - i);
    const t = idx[i]; idx[i] = idx[j]; idx[j] = t;
  }
  const indices = idx.subarray(0, m).slice().sort();
  return { indices, weights: new Float64Array(m).fill(weight ?? (m > 0 ? n / m : 0)) };
}

/**
 * Mean over the queries of ||ô - o||_2 / max(||o||_2, 1e-8): o = exact attention over all n
 * tokens of `kv`, ô = attention over `rows` with log-weights `logW`; the rows index
 * `stored` (e.g. a lane's dequantized entries) when given, else `kv` itself.
 */
export function relativeAttentionError(kv: SyntheticKV, rows: Int32Array, logW: Float64Array | Float32Array,
  stored?: { keys: Float32Array; values: Float32Array }): number {
  const src = stored ?? kv;
  const { d, n } = kv;
  const all = new Int32Array(n);
  for (let i = 0; i < n; i++) all[i] = i;
  const o = new Float64Array(d), e = new Float64Array(d);
  let sum = 0;
  for (let qi = 0; qi < kv.nq; qi++) {
    const q = kv.queries.subarray(qi * d, qi * d + d);
    weightedAttention(q, kv.keys, kv.values, d, all, null, o);
    weightedAttention(q, src.keys, src.values, d, rows, logW, e);
    let num = 0, den = 0;
    for (let c = 0; c < d; c++) { num += (e[c] - o[c]) ** 2; den += o[c] ** 2; }
    sum += Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-8);
  }
  return sum / kv.nq;
}

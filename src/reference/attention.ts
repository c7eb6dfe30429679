/**
 * Float64 reference of decode attention with log-weights (assembly/kernels/attention.ts):
 *
 *   logit(h, e) = scale * <q_h, k_e> + logW_e
 *   p(h, e)     = exp(logit(h, e) - lse_h),   lse_h = log sum_e exp(logit(h, e))
 *   out_h       = sum_e p(h, e) v_e
 *
 * computed directly (two passes, no online softmax), in float64, over plain arrays or
 * over page bytes decoded by the reference unpacker. Tests use it; never the hot path.
 */
import type { Format } from '../formats.ts';
import { unpackPage } from './quant.ts';

export interface AttentionResult {
  /** `[G][d]` attention output (0 for a head with no live entry). */
  out: Float64Array;
  /** `[G]` log-sum-exp of the logits (-inf for a head with no live entry). */
  lse: Float64Array;
  /** `[G][n]` raw logits. */
  logits: Float64Array;
  /** `[G][n]` softmax probabilities. */
  probs: Float64Array;
}

/**
 * Exact attention of G query heads `q: [G][d]` over n entries (`k`, `v`: `[n][d]`,
 * `logW: [n]`, -inf masks an entry).
 */
export function attention(q: ArrayLike<number>, G: number, d: number, k: ArrayLike<number>, v: ArrayLike<number>, logW: ArrayLike<number>, n: number, scale: number): AttentionResult {
  const out = new Float64Array(G * d);
  const lse = new Float64Array(G);
  const logits = new Float64Array(G * n);
  const probs = new Float64Array(G * n);
  for (let h = 0; h < G; h++) {
    let m = -Infinity;
    for (let e = 0; e < n; e++) {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += q[h * d + c] * k[e * d + c];
      const s = scale * dot + logW[e];
      logits[h * n + e] = s;
      if (s > m) m = s;
    }
    if (m === -Infinity) { lse[h] = -Infinity; continue; }
    let l = 0;
    for (let e = 0; e < n; e++) l += Math.exp(logits[h * n + e] - m);
    lse[h] = m + Math.log(l);
    for (let e = 0; e < n; e++) {
      const p = Math.exp(logits[h * n + e] - lse[h]);
      probs[h * n + e] = p;
      if (p !== 0) for (let c = 0; c < d; c++) out[h * d + c] += p * v[e * d + c];
    }
  }
  return { out, lse, logits, probs };
}

/** Decoded contents of a list of pages, concatenated in order. */
export function concatPages(format: Format, d: number, vg: number, pages: Uint8Array[], counts: number[]): { k: Float64Array; v: Float64Array; logW: Float64Array; n: number } {
  const n = counts.reduce((a, b) => a + b, 0);
  const k = new Float64Array(n * d), v = new Float64Array(n * d), logW = new Float64Array(n);
  let e = 0;
  for (let i = 0; i < pages.length; i++) {
    const p = unpackPage(format, d, vg, counts[i], pages[i]);
    k.set(p.k, e * d); v.set(p.v, e * d); logW.set(p.logW, e);
    e += counts[i];
  }
  return { k, v, logW, n };
}

/** Attention over page bytes (decoded in float64 by the reference unpacker). */
export function attentionOverPages(format: Format, d: number, vg: number, pages: Uint8Array[], counts: number[], q: ArrayLike<number>, G: number, scale: number): AttentionResult {
  const { k, v, logW, n } = concatPages(format, d, vg, pages, counts);
  return attention(q, G, d, k, v, logW, n, scale);
}

/**
 * Merge two partial results over disjoint entry sets (the log-sum-exp rule used to
 * combine tiers or backends): out = (e^{lse_a} out_a + e^{lse_b} out_b) / e^{lse}.
 */
export function mergePartials(a: { out: ArrayLike<number>; lse: ArrayLike<number> }, b: { out: ArrayLike<number>; lse: ArrayLike<number> }, G: number, d: number): { out: Float64Array; lse: Float64Array } {
  const out = new Float64Array(G * d), lse = new Float64Array(G);
  for (let h = 0; h < G; h++) {
    const m = Math.max(a.lse[h], b.lse[h]);
    if (m === -Infinity) { lse[h] = -Infinity; continue; }
    const wa = Math.exp(a.lse[h] - m), wb = Math.exp(b.lse[h] - m);
    lse[h] = m + Math.log(wa + wb);
    for (let c = 0; c < d; c++) out[h * d + c] = (wa * a.out[h * d + c] + wb * b.out[h * d + c]) / (wa + wb);
  }
  return { out, lse };
}

/**
 * Float64 TypeScript reference of the BalanceKV walk (arXiv 2502.07861; the authors'
 * `src/balanced_walk.py::balanced_walk`): the same math as assembly/kernels/walk.ts,
 * in double precision, with the same counter-based uniforms, so that on well-conditioned
 * inputs it produces the kernel's signs exactly. Tests and studies use it; it is also a
 * complete walk backend (`ReferenceWalker`) for runtimes without WebAssembly.
 *
 * Per block of n <= B tokens (rows of `keys`/`values`, `[tokens][d]`):
 *   k̄_a = k_a - mean (see `CenterMode`), ṽ_a = v_a * w_a,
 *   G_ab = exp(temp*<k̄_a,k̄_b>/sqrt(d) - beta) * (<ṽ_a,ṽ_b> + c0),
 *   s_0 = +1, h_i = sum_{j<i} G_ij s_j, p_i = 1/2 - gamma*h_i, s_i = +1 iff u_i < p_i.
 * `referenceWalkBlock` evaluates h_i scaled by its row max (no overflow for any key norm)
 * and decides exactly as the kernel does; `literalWalkBlock` evaluates the formula as
 * written (overflows for large norms), to show the two agree wherever it does not.
 */
import type { WalkParams } from './params.ts';
import type { BlockWalker, WalkInput, WalkRequest, WalkSigns } from './types.ts';
import { walkUniform } from './rng.ts';

/** |gamma*h| clamp of the decision, as the kernel's LOG_SAT. */
const LOG_SAT = 60;

type Rows = ArrayLike<number>;

interface PreparedBlock { kb: Float64Array; vb: Float64Array; n: number; d: number; scale: number; beta: number }

function prepare(keys: Rows, values: Rows, d: number, rows: ArrayLike<number>, weights: ArrayLike<number> | null, B: number, p: WalkParams): PreparedBlock {
  const n = rows.length;
  const mean = new Float64Array(d);
  if (p.center !== 'none') {
    for (let j = 0; j < n; j++) for (let c = 0; c < d; c++) mean[c] += keys[rows[j] * d + c];
    const div = p.center === 'padded' ? B : n;
    for (let c = 0; c < d; c++) mean[c] /= div;
  }
  const kb = new Float64Array(n * d), vb = new Float64Array(n * d);
  for (let j = 0; j < n; j++) {
    const w = weights ? weights[j] : 1;
    for (let c = 0; c < d; c++) {
      kb[j * d + c] = keys[rows[j] * d + c] - mean[c];
      vb[j * d + c] = values[rows[j] * d + c] * w;
    }
  }
  const scale = p.temp / Math.sqrt(d);
  let beta = 0;
  if (p.beta === 'auto') {
    beta = -Infinity;
    for (let a = 0; a < n; a++) beta = Math.max(beta, scale * dot(kb, a, kb, a, d));
  } else beta = p.beta;
  return { kb, vb, n, d, scale, beta };
}

function dot(x: Float64Array, i: number, y: Float64Array, j: number, d: number): number {
  let s = 0;
  const oi = i * d, oj = j * d;
  for (let c = 0; c < d; c++) s += x[oi + c] * y[oj + c];
  return s;
}

/**
 * Kernel rows of one block in float64: A[i][j] = temp*<k̄_i,k̄_j>/sqrt(d) (without beta) and
 * W[i][j] = <ṽ_i,ṽ_j> + c0, both `[n][n]`; `beta` is the shift the walk would use.
 */
export function referenceGram(keys: Rows, values: Rows, d: number, rows: ArrayLike<number>, weights: ArrayLike<number> | null, B: number, p: WalkParams): { A: Float64Array; W: Float64Array; beta: number } {
  const b = prepare(keys, values, d, rows, weights, B, p);
  const n = b.n;
  const A = new Float64Array(n * n), W = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    A[i * n + j] = b.scale * dot(b.kb, i, b.kb, j, d);
    W[i * n + j] = dot(b.vb, i, b.vb, j, d) + p.c0;
  }
  return { A, W, beta: b.beta };
}

/**
 * Walk one block in float64 with the kernel's scaled evaluation: for row i,
 * M = max_j a_ij over active j < i, ĥ = sum_j exp(a_ij - M)(<ṽ_i,ṽ_j> + c0) s_j, and
 * gamma*h_i = sign(ĥ) exp(min(ln gamma + ln|ĥ| + M - beta, 60)).
 */
export function referenceWalkBlock(keys: Rows, values: Rows, d: number, rows: ArrayLike<number>, weights: ArrayLike<number> | null,
  anchors: ArrayLike<number> | null, B: number, p: WalkParams, rngKey: number, indexBase: number): WalkSigns {
  const b = prepare(keys, values, d, rows, weights, B, p);
  const n = b.n;
  const s = new Float64Array(n);
  const out = new Int8Array(n);
  const a = new Float64Array(n);
  let saturated = 0;
  for (let i = 0; i < n; i++) {
    if (anchors && anchors[i]) { s[i] = 0; out[i] = 0; continue; }
    let si = 1;
    if (i > 0) {
      let m = -Infinity;
      for (let j = 0; j < i; j++) {
        if (s[j] === 0) continue;
        a[j] = b.scale * dot(b.kb, i, b.kb, j, d);
        if (a[j] > m) m = a[j];
      }
      let hHat = 0;
      if (m > -Infinity) {
        for (let j = 0; j < i; j++) {
          if (s[j] === 0) continue;
          hHat += Math.exp(a[j] - m) * (dot(b.vb, i, b.vb, j, d) + p.c0) * s[j];
        }
      }
      let gh = 0;
      if (hHat !== 0 && p.logGamma > -Infinity) {
        const t = Math.min(p.logGamma + Math.log(Math.abs(hHat)) + (m - b.beta), LOG_SAT);
        gh = hHat > 0 ? Math.exp(t) : -Math.exp(t);
      }
      if (Math.abs(gh) > 0.5) saturated++;
      si = walkUniform(rngKey, (indexBase + i) >>> 0) < 0.5 - gh ? 1 : -1;
    }
    s[i] = si;
    out[i] = si;
  }
  return { signs: out, saturated };
}

/**
 * The paper's formula as written, in float64: G formed explicitly, p_i = 1/2 - gamma*h_i.
 * Overflows (Infinity / NaN) for large key norms: only for checking the scaled evaluation.
 */
export function literalWalkBlock(keys: Rows, values: Rows, d: number, rows: ArrayLike<number>, weights: ArrayLike<number> | null,
  anchors: ArrayLike<number> | null, B: number, p: WalkParams, rngKey: number, indexBase: number): WalkSigns {
  const b = prepare(keys, values, d, rows, weights, B, p);
  const n = b.n;
  const s = new Float64Array(n);
  const out = new Int8Array(n);
  let saturated = 0;
  for (let i = 0; i < n; i++) {
    if (anchors && anchors[i]) continue;
    let si = 1;
    if (i > 0) {
      let h = 0;
      for (let j = 0; j < i; j++) {
        if (s[j] === 0) continue;
        h += Math.exp(b.scale * dot(b.kb, i, b.kb, j, d) - b.beta) * (dot(b.vb, i, b.vb, j, d) + p.c0) * s[j];
      }
      const pr = 0.5 - p.gamma * h;
      if (pr < 0 || pr > 1) saturated++;
      si = walkUniform(rngKey, (indexBase + i) >>> 0) < pr ? 1 : -1;
    }
    s[i] = si;
    out[i] = si;
  }
  return { signs: out, saturated };
}

/** Walk every block of a request with a block function (shared by the reference walkers). */
export function walkBlocks(input: WalkInput, req: WalkRequest, p: WalkParams, block: typeof referenceWalkBlock): WalkSigns {
  const n = req.order.length, B = p.blockSize;
  const signs = new Int8Array(n);
  let saturated = 0;
  for (let b0 = 0; b0 < n; b0 += B) {
    const e = Math.min(n, b0 + B);
    const r = block(input.keys, input.values, input.d, req.order.subarray(b0, e), req.weights ? req.weights.subarray(b0, e) : null,
      req.anchors ? req.anchors.subarray(b0, e) : null, B, p, req.rngKey, b0);
    signs.set(r.signs, b0);
    saturated += r.saturated;
  }
  return { signs, saturated };
}

/** The float64 walk backend. */
export class ReferenceWalker implements BlockWalker {
  readonly name = 'reference';
  walkSigns(input: WalkInput, req: WalkRequest, p: WalkParams): WalkSigns {
    return walkBlocks(input, req, p, referenceWalkBlock);
  }
}

/**
 * Attention of one query over weighted entries, in float64:
 * out = sum_i exp(<q,k_i>/sqrt(d) + logW_i) v_i / sum_i exp(<q,k_i>/sqrt(d) + logW_i),
 * over the rows `rows` of `keys`/`values` (`[tokens][d]`), logW per entry of `rows` (null: 0).
 * Writes `out` (length d) and returns the log-sum-exp.
 */
export function weightedAttention(q: ArrayLike<number>, keys: Rows, values: Rows, d: number, rows: ArrayLike<number>,
  logW: ArrayLike<number> | null, out: Float64Array): number {
  const n = rows.length;
  const inv = 1 / Math.sqrt(d);
  const logits = new Float64Array(n);
  let m = -Infinity;
  for (let i = 0; i < n; i++) {
    let s = 0;
    const o = rows[i] * d;
    for (let c = 0; c < d; c++) s += q[c] * keys[o + c];
    logits[i] = s * inv + (logW ? logW[i] : 0);
    if (logits[i] > m) m = logits[i];
  }
  out.fill(0);
  let z = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(logits[i] - m);
    z += e;
    const o = rows[i] * d;
    for (let c = 0; c < d; c++) out[c] += e * values[o + c];
  }
  for (let c = 0; c < d; c++) out[c] /= z;
  return m + Math.log(z);
}

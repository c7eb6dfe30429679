/**
 * Float64 TypeScript references of the model-runner kernels (assembly/kernels/matmul.ts).
 * Written from the definitions (Hugging Face `LlamaForCausalLM` semantics), not from the
 * kernels' tiling, so tests compare two independent implementations. Slow on purpose.
 * Nothing here touches WebAssembly.
 *
 * Weights are row-major `[rows][cols]` (nn.Linear `[out][in]`); f16 weights are given as
 * their bit patterns (Uint16Array). Activations are token-major `[n][cols]`.
 */
import { f16ToNumber } from './basic.ts';

/** Weights for the references: f32 values, or f16 bit patterns. */
export type RefWeights = Float32Array | Float64Array | Uint16Array;

function weightAt(w: RefWeights, i: number): number {
  return w instanceof Uint16Array ? f16ToNumber(w[i]) : w[i];
}

/** y[t][r] = sum_c W[r][c] x[t][c]; x `[n][cols]`, result `[n][rows]`. */
export function matmulRef(w: RefWeights, x: ArrayLike<number>, rows: number, cols: number, n: number): Float64Array {
  const y = new Float64Array(n * rows);
  for (let t = 0; t < n; t++) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += weightAt(w, r * cols + c) * x[t * cols + c];
      y[t * rows + r] = s;
    }
  }
  return y;
}

/** RMSNorm per row: y = weight * x / sqrt(mean(x^2) + eps); x `[n][dim]`. */
export function rmsNormRef(x: ArrayLike<number>, weight: ArrayLike<number>, dim: number, n: number, eps: number): Float64Array {
  const y = new Float64Array(n * dim);
  for (let t = 0; t < n; t++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[t * dim + i] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[t * dim + i] = weight[i] * x[t * dim + i] * inv;
  }
  return y;
}

/**
 * Llama's RoPE inverse frequencies, as Hugging Face computes them (in f32):
 * invFreq[i] = 1 / theta^(2i / headDim), i < headDim/2.
 */
export function ropeInvFreq(theta: number, headDim: number): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) out[i] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim))));
  return out;
}

/**
 * RoPE, rotate-half convention, on x `[n][heads][headDim]` (returns a new array). The angle
 * is f32(invFreq[i] * position), as in Hugging Face (f32 `inv_freq @ position_ids`); the
 * rotation itself in float64.
 */
export function ropeRef(x: ArrayLike<number>, positions: ArrayLike<number>, invFreq: ArrayLike<number>, n: number, heads: number, headDim: number): Float64Array {
  const half = headDim / 2;
  const y = Float64Array.from(x as ArrayLike<number>);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const a = Math.fround(invFreq[i] * positions[t]);
        const c = Math.cos(a), s = Math.sin(a);
        const x1 = x[base + i], x2 = x[base + i + half];
        y[base + i] = x1 * c - x2 * s;
        y[base + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return y;
}

/** silu(gate) * up, silu(g) = g / (1 + e^-g). */
export function swigluRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  const y = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) y[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
  return y;
}

/** First index of the maximum, NaN skipped; -1 when there is none. */
export function argmaxRef(x: ArrayLike<number>): number {
  let best = -1;
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) {
    if (x[i] > m || (best < 0 && x[i] === m)) { m = x[i]; best = i; }
  }
  return best;
}

/** Embedding rows table[ids[t]] as float64 `[n][dim]`. */
export function embedRef(table: RefWeights, ids: ArrayLike<number>, dim: number): Float64Array {
  const y = new Float64Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) for (let j = 0; j < dim; j++) y[t * dim + j] = weightAt(table, ids[t] * dim + j);
  return y;
}

/**
 * Exact softmax attention of one query token over `len` cached tokens. q `[qHeads][headDim]`,
 * k and v token-major `[len][kvHeads][headDim]`; query head h uses KV head
 * h / (qHeads / kvHeads). Returns `[qHeads][headDim]`.
 */
export function attendExactRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, len: number, qHeads: number, kvHeads: number, headDim: number, scale: number): Float64Array {
  const out = new Float64Array(qHeads * headDim);
  const group = qHeads / kvHeads;
  const s = new Float64Array(len);
  for (let h = 0; h < qHeads; h++) {
    const g = Math.floor(h / group);
    let m = -Infinity;
    for (let t = 0; t < len; t++) {
      let d = 0;
      for (let i = 0; i < headDim; i++) d += q[h * headDim + i] * k[(t * kvHeads + g) * headDim + i];
      s[t] = d * scale;
      if (s[t] > m) m = s[t];
    }
    let sum = 0;
    for (let t = 0; t < len; t++) { s[t] = Math.exp(s[t] - m); sum += s[t]; }
    for (let t = 0; t < len; t++) {
      const p = s[t] / sum;
      for (let i = 0; i < headDim; i++) out[h * headDim + i] += p * v[(t * kvHeads + g) * headDim + i];
    }
  }
  return out;
}

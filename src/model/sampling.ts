/**
 * Next-token choice from logits: greedy (argmax) or seeded sampling with temperature and
 * top-k. Deterministic for a given seed in every runtime (mulberry32 PRNG, float64 math).
 */
import { checkInt, checkNum } from '../errors.ts';

/** Sampling options; temperature 0 (the default) means greedy. */
export interface SamplingOptions {
  /** Softmax temperature; 0 = greedy argmax. Default 0. Range [0, 100]. */
  temperature?: number;
  /** Keep only the k most likely tokens before sampling; 0 = all. Default 0. */
  topK?: number;
  /** PRNG seed (integer). Default 0. */
  seed?: number;
}

/** Deterministic PRNG (mulberry32): returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Index of the first maximum (NaN skipped). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > m) { m = x[i]; best = i; }
  return best;
}

/** Indices of the k largest entries, largest first (ties: lower index first). */
export function topK(x: ArrayLike<number>, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (Number.isNaN(v)) continue;
    if (idx.length < k || v > x[idx[idx.length - 1]]) {
      let j = idx.length < k ? idx.length : idx.length - 1;
      if (idx.length < k) idx.push(i);
      while (j > 0 && x[idx[j - 1]] < v) { idx[j] = idx[j - 1]; j--; }
      idx[j] = i;
    }
  }
  return idx;
}

/** A token sampler bound to its options and PRNG state. */
export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  private readonly random: () => number;

  constructor(options: SamplingOptions = {}) {
    this.temperature = checkNum('temperature', options.temperature ?? 0, 0, 100);
    this.topK = checkInt('topK', options.topK ?? 0, 0, 1 << 24);
    this.random = mulberry32(checkInt('seed', options.seed ?? 0, -(2 ** 31), 2 ** 32 - 1));
  }

  /** Choose the next token from `logits` `[vocab]`. */
  next(logits: ArrayLike<number>): number {
    if (this.temperature === 0) return argmax(logits);
    const cand = this.topK > 0 && this.topK < logits.length ? topK(logits, this.topK) : Array.from({ length: logits.length }, (_, i) => i);
    let m = -Infinity;
    for (const i of cand) if (logits[i] > m) m = logits[i];
    const p = cand.map((i) => Math.exp((logits[i] - m) / this.temperature));
    let sum = 0;
    for (const v of p) sum += v;
    let r = this.random() * sum;
    for (let j = 0; j < cand.length; j++) {
      r -= p[j];
      if (r < 0) return cand[j];
    }
    return cand[cand.length - 1];
  }
}

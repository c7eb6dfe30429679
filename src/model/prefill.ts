/**
 * One-shot prefill: the setting of the compression papers (SnapKV, PyramidKV,
 * BalanceKV's experiments). The prompt is run with exact causal attention; then each
 * layer's prompt keys and values go into the cache in ONE `append` (so the cache
 * compresses once, after the whole prompt), preceded by the prompt's last
 * `observeQueries` queries (`cache.observe`, SnapKV's observation window) when the
 * cache takes observations. Decoding then continues through the cache as usual
 * (`model.forward([token], cache, { startPosition: prompt.length })`).
 *
 * The alternative — streaming prefill, `model.forward(prompt, cache)` — appends and
 * attends token by token, so a lane over budget is compressed while the prompt is
 * still arriving (what a device must do when the prompt itself exceeds memory).
 */
import { EdgeKVError, argError, checkInt } from '../errors.ts';
import type { LlamaModel } from './llama.ts';
import type { AttentionBackend } from './types.ts';

/** A backend that can also take observed queries (an edgekv cache can). */
export type ObservingBackend = AttentionBackend & { observe?(layer: number, queries: Float32Array): void };

export interface PrefillOptions {
  /** Prompt queries handed to `cache.observe` before the append (default 32; 0: none). */
  observeQueries?: number;
}

/**
 * Run `tokens` (a fresh prompt, positions 0..n-1) with exact attention, then move the
 * prompt's KV into `cache` with one append per layer. Returns the last token's logits.
 */
export function prefillOneShot(model: LlamaModel, tokens: ArrayLike<number>, cache: ObservingBackend, options: PrefillOptions = {}): Float32Array {
  const W = checkInt('observeQueries', options.observeQueries ?? 32, 0, 1 << 16);
  if (!cache || typeof cache.append !== 'function') throw argError('cache', cache, 'an AttentionBackend (e.g. an edgekv cache)');
  const c = model.config, T = tokens.length, d = c.headDim, kvDim = c.kvHeads * d, qDim = c.qHeads * d;
  if (T < 1) throw argError('tokens', tokens, 'a non-empty prompt');
  // Per layer: keys/values laid out [kvHeads, T, d] (the append layout), a ring of the last W queries.
  const K = Array.from({ length: c.layers }, () => new Float32Array(T * kvDim));
  const V = Array.from({ length: c.layers }, () => new Float32Array(T * kvDim));
  const n = new Array<number>(c.layers).fill(0);
  const Wq = Math.min(W, T);
  const qRing = Array.from({ length: c.layers }, () => new Float32Array(Math.max(1, Wq) * qDim));
  const qCount = new Array<number>(c.layers).fill(0);
  const exact = model.createExactAttention({ initialCapacity: T + 8 });
  const spy: AttentionBackend = {
    append(layer, k, v, pos) {
      const toks = k.length / kvDim;
      for (let h = 0; h < c.kvHeads; h++) {
        const src = h * toks * d, dst = (h * T + n[layer]) * d;
        K[layer].set(k.subarray(src, src + toks * d), dst);
        V[layer].set(v.subarray(src, src + toks * d), dst);
      }
      n[layer] += toks;
      exact.append(layer, k, v, pos);
    },
    attend(layer, q, out) {
      if (Wq > 0) { qRing[layer].set(q, (qCount[layer] % Wq) * qDim); qCount[layer]++; }
      return exact.attend(layer, q, out);
    },
  };
  let logits: Float32Array;
  try {
    logits = model.forward(tokens, spy, { startPosition: 0 }).slice();
  } finally {
    exact.dispose();
  }
  for (let l = 0; l < c.layers; l++) {
    if (n[l] !== T) throw new EdgeKVError('E_STATE', `prefill captured ${n[l]} tokens for layer ${l}, expected ${T}`);
    if (Wq > 0 && typeof cache.observe === 'function') {
      const m = Math.min(Wq, qCount[l]);
      const ordered = new Float32Array(m * qDim);
      for (let i = 0; i < m; i++) {
        const slot = (qCount[l] - m + i) % Wq;
        ordered.set(qRing[l].subarray(slot * qDim, (slot + 1) * qDim), i * qDim);
      }
      cache.observe(l, ordered);
    }
    cache.append(l, K[l], V[l]);
  }
  return logits;
}

/**
 * Per-position language-model metrics from logits: negative log-likelihood of the
 * next token, KL(P_full || P_compressed), top-1 agreement. Float64 throughout.
 */

/** log-sum-exp of logits[off .. off+V). */
export function logSumExp(logits: Float32Array, off: number, V: number): number {
  let m = -Infinity;
  for (let i = 0; i < V; i++) if (logits[off + i] > m) m = logits[off + i];
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(logits[off + i] - m);
  return m + Math.log(s);
}

/** -log p(target) under the softmax of logits[off .. off+V). */
export function nll(logits: Float32Array, off: number, V: number, target: number): number {
  return logSumExp(logits, off, V) - logits[off + target];
}

/** KL(P || Q) for P = softmax(p[offP..]), Q = softmax(q[offQ..]), in nats. */
export function klDivergence(p: Float32Array, offP: number, q: Float32Array, offQ: number, V: number): number {
  const lp = logSumExp(p, offP, V), lq = logSumExp(q, offQ, V);
  let kl = 0;
  for (let i = 0; i < V; i++) {
    const a = p[offP + i] - lp;
    const pa = Math.exp(a);
    if (pa > 0) kl += pa * (a - (q[offQ + i] - lq));
  }
  return Math.max(0, kl);
}

export function argmax(x: Float32Array, off: number, V: number): number {
  let best = 0, bv = -Infinity;
  for (let i = 0; i < V; i++) if (x[off + i] > bv) { bv = x[off + i]; best = i; }
  return best;
}

/**
 * The one shared selector: given one score per evictable entry, keep the `keep`
 * highest. Sinks and the recent window are never offered to it (the cache protects
 * them), so every scorer gets them for free. Ties go to the more recent entry; NaN
 * scores count as -Infinity. Stages (compositions `base+stage`) then edit the
 * selection. The result is a `Plan` the cache executes.
 */
import { EdgeKVError } from '../errors.ts';
import type { Plan, PolicyContext, Stage } from './types.ts';

/**
 * Indices (ascending) of the `keep` largest scores; ties broken toward higher index.
 * O(n log n) with a native typed-array sort for the threshold.
 */
export function topK(scores: Float64Array, keep: number): Uint8Array {
  const n = scores.length;
  const mask = new Uint8Array(n);
  if (keep >= n) { mask.fill(1); return mask; }
  if (keep <= 0) return mask;
  const sorted = new Float64Array(n);
  for (let i = 0; i < n; i++) { const s = scores[i]; sorted[i] = s === s ? s : -Infinity; }
  sorted.sort();
  const thr = sorted[n - keep];
  let taken = 0;
  for (let i = 0; i < n; i++) {
    const s = scores[i];
    if (s === s && s > thr) { mask[i] = 1; taken++; }
  }
  for (let i = n - 1; i >= 0 && taken < keep; i--) {
    const s = scores[i];
    const v = s === s ? s : -Infinity;
    if (v === thr && !mask[i]) { mask[i] = 1; taken++; }
  }
  return mask;
}

/** Turn a keep mask into the ascending index list of a plan. */
export function maskToKeep(mask: Uint8Array): Int32Array {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i] ? 1 : 0;
  const keep = new Int32Array(n);
  for (let i = 0, j = 0; i < mask.length; i++) if (mask[i]) keep[j++] = i;
  return keep;
}

/** Select: top `keep` scores, then each stage in order; checks the stages kept their word. */
export function select(ctx: PolicyContext, scores: Float64Array, keep: number, stages: readonly Stage[] = []): Plan {
  const mask = topK(scores, keep);
  for (const st of stages) {
    st.apply(ctx, scores, mask, keep);
    let n = 0;
    for (let i = 0; i < mask.length; i++) n += mask[i] ? 1 : 0;
    if (n > keep) throw new EdgeKVError('E_STATE', `stage ${st.name} kept ${n} entries, more than the ${keep} allowed`);
  }
  return { keep: maskToKeep(mask) };
}

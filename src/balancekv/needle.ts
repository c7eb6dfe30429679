/**
 * The needle-aware variant of BalanceKV (arXiv 2502.07861 §5 NIAH; the authors'
 * `balanced_walk_needle_detection`): tokens whose keys are anti-correlated with their
 * block are "outliers"; every token within ±radius positions of an outlier becomes an
 * anchor, kept exactly (weight 1) and left out of the walk.
 *
 * Exactly as the code: blocks of B consecutive tokens in position order, the last one
 * zero-padded; a token is normal when mean_j <k_i, k_j> + 1e-8 > 0 (mean over the B slots
 * of its block, pads included, raw keys); it stays walkable only if every token within
 * ±radius of it (inside the sequence) is normal. The code computes the mask once, at
 * layer index 1, and reuses it in deeper layers: callers do the same by passing the
 * anchors they computed to the other layers' lanes.
 */

/** Neighbourhood kept around an outlier, in positions each side (the code's 25). */
export const DEFAULT_NEEDLE_RADIUS = 25;
/** Added to every inner product by the code before averaging. */
const CODE_EPS = 1e-8;

/**
 * Anchors of n tokens (keys `[n][d]`, position order): 1 = kept exactly, 0 = walked.
 */
export function needleAnchors(keys: Float32Array, n: number, d: number, blockSize: number, radius = DEFAULT_NEEDLE_RADIUS): Uint8Array {
  const normal = new Uint8Array(n);
  const sum = new Float64Array(d);
  for (let b0 = 0; b0 < n; b0 += blockSize) {
    const e = Math.min(n, b0 + blockSize);
    sum.fill(0);
    for (let j = b0; j < e; j++) for (let c = 0; c < d; c++) sum[c] += keys[j * d + c];
    for (let i = b0; i < e; i++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += keys[i * d + c] * sum[c];
      normal[i] = s / blockSize + CODE_EPS > 0 ? 1 : 0;
    }
  }
  // anchor_i = some token in [i - radius, i + radius] is not normal (outside the sequence counts as normal)
  const anchors = new Uint8Array(n);
  let bad = 0;
  for (let j = 0; j < Math.min(n, radius + 1); j++) bad += 1 - normal[j];
  for (let i = 0; i < n; i++) {
    anchors[i] = bad > 0 ? 1 : 0;
    const add = i + radius + 1, drop = i - radius;
    if (add < n) bad += 1 - normal[add];
    if (drop >= 0) bad -= 1 - normal[drop];
  }
  return anchors;
}

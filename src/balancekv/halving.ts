/**
 * Turning a walk's signs into a halving: which entries survive and by how much their
 * weight is multiplied. Pure integer bookkeeping, shared by every walk backend.
 *
 * - `prefixHalving`: the rule of the authors' code (`balanced_walk`, kv_type
 *   'weightedbw'), reproduced exactly (spec §3 step 5).
 * - `smallerClassHalving`: SoftmaxBalance's output (Alg. 2): the smaller sign class, weight 2.
 * - `anchoredHalving`: the needle variant: anchors first with weight 1, then the walked tokens.
 */

/** Surviving entries of one halving. */
export interface Halving {
  /** Positions in the halved sequence, in kept order (this order feeds the next halving's blocks). */
  readonly keep: Int32Array;
  /** Weight multiplier of each kept entry (2 or 1; 1 for anchors). */
  readonly factor: Float64Array;
}

const EMPTY: Halving = { keep: new Int32Array(0), factor: new Float64Array(0) };

/**
 * The prefix-weight rule over signs s[0..n) of +1/-1 (h = floor(n/2)):
 * c = the larger of the first index where the -1 count reaches h and the first index
 * where the +1 count reaches h (a class that never reaches h gives 0, as torch.argmax of
 * an all-false mask does); A = s[c]. Entries i <= c of the other class get weight 2,
 * entries i <= c of class A weight -2, entries i > c weight 1; a stable sort by weight,
 * descending, keeps the first h: the weight-2 entries in order, then the earliest tail
 * entries. Kept factors are 2 or 1 (never -2: at least h entries have weight >= 1).
 */
export function prefixHalving(signs: ArrayLike<number>): Halving {
  const n = signs.length;
  const h = n >> 1;
  if (h === 0) return EMPTY;
  let cNeg = 0, cPos = 0, neg = 0, pos = 0;
  let foundNeg = false, foundPos = false;
  for (let i = 0; i < n && !(foundNeg && foundPos); i++) {
    if (signs[i] < 0) { neg++; if (!foundNeg && neg === h) { cNeg = i; foundNeg = true; } }
    else { pos++; if (!foundPos && pos === h) { cPos = i; foundPos = true; } }
  }
  const c = Math.max(cNeg, cPos);
  const A = signs[c] < 0 ? -1 : 1;
  const keep = new Int32Array(h);
  const factor = new Float64Array(h);
  let k = 0;
  for (let i = 0; i <= c && k < h; i++) {
    const s = signs[i] < 0 ? -1 : 1;
    if (s !== A) { keep[k] = i; factor[k] = 2; k++; }
  }
  for (let i = c + 1; i < n && k < h; i++) { keep[k] = i; factor[k] = 1; k++; }
  // Only reachable if the counts were inconsistent; the code would then keep -2 entries.
  for (let i = 0; i <= c && k < h; i++) {
    const s = signs[i] < 0 ? -1 : 1;
    if (s === A) { keep[k] = i; factor[k] = -2; k++; }
  }
  return { keep, factor };
}

/**
 * SoftmaxBalance's output: the smaller of the two sign classes (the -1 class on a tie, as
 * the v1 code keeps it), in order, each with weight 2. Keeps at most floor(n/2) entries.
 */
export function smallerClassHalving(signs: ArrayLike<number>): Halving {
  const n = signs.length;
  let neg = 0;
  for (let i = 0; i < n; i++) if (signs[i] < 0) neg++;
  const want = neg <= n - neg ? -1 : 1;
  const m = want < 0 ? neg : n - neg;
  const keep = new Int32Array(m);
  let k = 0;
  for (let i = 0; i < n; i++) if ((signs[i] < 0 ? -1 : 1) === want) keep[k++] = i;
  return { keep, factor: new Float64Array(m).fill(2) };
}

/** How the needle variant halves the walked (non-anchor) tokens. */
export type AnchoredRule = 'prefix' | 'code';

/**
 * The needle variant's halving over n entries, some of them anchors (sign 0), h = floor(n/2):
 * anchors are kept first, in order, with weight 1 (at most h of them). The remaining
 * s = h - anchors slots go to walked tokens:
 * - 'prefix' (default): the prefix rule over the walked tokens' own signs, its first s
 *   survivors (s never exceeds its floor(u/2) survivors).
 * - 'code': as `balanced_walk_needle_detection`: the +1 class in order with weight 2;
 *   when it is short, the code fills with -1 tokens of weight 0, which add nothing to
 *   attention: they are dropped here (fewer than h entries survive).
 * With no anchor present both reduce to `prefixHalving` (the code's `torch.all(mask)` branch).
 */
export function anchoredHalving(signs: ArrayLike<number>, anchors: ArrayLike<number>, rule: AnchoredRule = 'prefix'): Halving {
  const n = signs.length;
  let a = 0;
  for (let i = 0; i < n; i++) if (anchors[i]) a++;
  if (a === 0) return prefixHalving(signs);
  const h = n >> 1;
  const keep: number[] = [];
  const factor: number[] = [];
  for (let i = 0; i < n && keep.length < h; i++) if (anchors[i]) { keep.push(i); factor.push(1); }
  const slots = h - keep.length;
  if (slots > 0) {
    const walked: number[] = [];
    for (let i = 0; i < n; i++) if (!anchors[i]) walked.push(i);
    if (rule === 'prefix') {
      const sub = prefixHalving(walked.map((i) => signs[i]));
      for (let k = 0; k < sub.keep.length && k < slots; k++) { keep.push(walked[sub.keep[k]]); factor.push(sub.factor[k]); }
    } else {
      for (const i of walked) {
        if (keep.length >= h) break;
        if (signs[i] > 0) { keep.push(i); factor.push(2); }
      }
    }
  }
  return { keep: Int32Array.from(keep), factor: Float64Array.from(factor) };
}

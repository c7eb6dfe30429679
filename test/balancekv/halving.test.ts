// Halving rules against literal ports of the authors' tensor code (cumsum / argmax / stable argsort).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { anchoredHalving, prefixHalving, smallerClassHalving } from '../../src/balancekv/halving.ts';
import { SplitRng } from '../../src/balancekv/rng.ts';

const test = suite('balancekv halving rules');

/** torch.argmax(mask): first true index, 0 when none. */
function argmaxFirst(mask: boolean[]): number {
  const i = mask.indexOf(true);
  return i < 0 ? 0 : i;
}

/** Stable argsort by descending key. */
function argsortDesc(w: number[]): number[] {
  return w.map((x, i) => [x, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map((p) => p[1]);
}

/** `balanced_walk`'s weighting, transcribed step by step. */
function codePrefix(signs: number[]): { keep: number[]; factor: number[] } {
  const n = signs.length, h = Math.floor(n / 2);
  let cn = 0, cp = 0;
  const cumNeg = signs.map((s) => (cn += s === -1 ? 1 : 0));
  const cumPos = signs.map((s) => (cp += s === 1 ? 1 : 0));
  const c = Math.max(argmaxFirst(cumNeg.map((x) => x === h)), argmaxFirst(cumPos.map((x) => x === h)));
  const weight = signs.slice();
  for (let i = 0; i < n; i++) if (i > c) weight[i] = Math.abs(weight[i]);
  const flip = signs[c] === 1;
  for (let i = 0; i <= c; i++) { weight[i] *= 2; if (flip) weight[i] *= -1; }
  const order = argsortDesc(weight).slice(0, h);
  return { keep: order, factor: order.map((i) => weight[i]) };
}

/** `balanced_walk_needle_detection`'s weighting when some mask entry is 0 (anchors). */
function codeNeedle(signs: number[], anchors: number[]): { keep: number[]; factor: number[] } {
  const n = signs.length, h = Math.floor(n / 2);
  const w = signs.map((s, i) => (anchors[i] ? 0 : s));
  const key = w.map((x) => (x === 0 ? 2 : x) + 1);
  const order = argsortDesc(key).slice(0, h);
  const weight = key.map((k, i) => (w[i] === 0 ? 1 : k));
  return { keep: order, factor: order.map((i) => weight[i]) };
}

function randomSigns(rng: SplitRng, n: number, pPlus: number): number[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? 1 : rng.next() < pPlus ? 1 : -1));
}

test('prefixHalving == the code\'s cumsum/argmax/argsort rule on 3000 random sequences', () => {
  const rng = new SplitRng(1);
  for (let trial = 0; trial < 3000; trial++) {
    const n = 1 + rng.below(300);
    const s = randomSigns(rng, n, [0.5, 0.3, 0.7, 0.05, 0.95][trial % 5]);
    const got = prefixHalving(s);
    const want = codePrefix(s);
    assert.equal(Array.from(got.keep), want.keep, `n=${n} ${s.join(',')}`);
    assert.equal(Array.from(got.factor), want.factor);
    for (const f of got.factor) assert.ok(f === 1 || f === 2, 'kept weights are 2 or 1');
  }
});

test('prefixHalving: worked examples', () => {
  // balanced: every kept token has weight 2
  let r = prefixHalving([1, -1, 1, -1, -1, 1]);
  assert.equal(Array.from(r.keep), [1, 3, 4]);
  assert.equal(Array.from(r.factor), [2, 2, 2]);
  // + reaches h = 4 at index 3, - never does: c = 3, A = +, tail 4..7 kept with weight 1
  r = prefixHalving([1, 1, 1, 1, 1, -1, -1, -1]);
  assert.equal(Array.from(r.keep), [4, 5, 6, 7]);
  assert.equal(Array.from(r.factor), [1, 1, 1, 1]);
  // odd n: h = 2; - reaches 2 at 2, + reaches 2 at 3: c = 3, A = +, keep the two -
  r = prefixHalving([1, -1, -1, 1, 1]);
  assert.equal(Array.from(r.keep), [1, 2]);
  assert.equal(Array.from(r.factor), [2, 2]);
  assert.is(prefixHalving([1]).keep.length, 0);
  assert.is(prefixHalving([]).keep.length, 0);
});

test('smallerClassHalving keeps the smaller class (ties: -1), weight 2, at most n/2', () => {
  assert.equal(Array.from(smallerClassHalving([1, 1, -1, 1]).keep), [2]);
  assert.equal(Array.from(smallerClassHalving([1, -1, -1, -1, 1]).keep), [0, 4]);
  assert.equal(Array.from(smallerClassHalving([1, -1, 1, -1]).keep), [1, 3]);
  const rng = new SplitRng(3);
  for (let t = 0; t < 200; t++) {
    const s = randomSigns(rng, 1 + rng.below(100), 0.5);
    const r = smallerClassHalving(s);
    assert.ok(r.keep.length <= s.length / 2);
    for (const f of r.factor) assert.is(f, 2);
  }
});

test('anchoredHalving("code") == the needle code\'s rule (weight-0 entries dropped); no anchors == prefix rule', () => {
  const rng = new SplitRng(5);
  for (let t = 0; t < 2000; t++) {
    const n = 2 + rng.below(200);
    const s = randomSigns(rng, n, 0.5);
    const anchors = s.map(() => (rng.next() < [0, 0.05, 0.3, 0.9][t % 4] ? 1 : 0));
    const got = anchoredHalving(s, anchors, 'code');
    if (!anchors.some((a) => a)) {
      const p = prefixHalving(s);
      assert.equal(Array.from(got.keep), Array.from(p.keep));
      continue;
    }
    const want = codeNeedle(s, anchors);
    const kept = want.keep.filter((_, k) => want.factor[k] !== 0);
    assert.equal(Array.from(got.keep), kept, `n=${n}`);
    assert.equal(Array.from(got.factor), want.factor.filter((f) => f !== 0));
  }
});

test('anchoredHalving("prefix"): anchors first with weight 1, then the prefix rule over walked tokens; at most n/2', () => {
  const rng = new SplitRng(6);
  for (let t = 0; t < 1000; t++) {
    const n = 2 + rng.below(200);
    const s = randomSigns(rng, n, 0.5);
    const anchors = s.map(() => (rng.next() < 0.1 ? 1 : 0));
    const r = anchoredHalving(s, anchors, 'prefix');
    const h = n >> 1;
    assert.ok(r.keep.length <= h);
    const nA = anchors.filter((a) => a).length;
    const keptA = Array.from(r.keep).filter((i) => anchors[i]).length;
    assert.is(keptA, Math.min(nA, h), 'every anchor that fits is kept');
    for (let k = 0; k < r.keep.length; k++) {
      if (anchors[r.keep[k]]) assert.is(r.factor[k], 1);
      else assert.ok(r.factor[k] === 1 || r.factor[k] === 2);
    }
    if (nA < h) assert.is(r.keep.length, h, 'fills the budget exactly');
  }
});

test.run();

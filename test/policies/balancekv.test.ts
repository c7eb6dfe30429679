/**
 * The `balancekv` cache policy (src/policies/balancekv.ts): budget at every step, log-weights,
 * levels, determinism, snapshots, γ = 0 as random halving, needle anchors, SoftmaxBalance,
 * bad options, and a quality number against `uniform` on synthetic clustered KV.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine } from '../../src/engine.ts';
import { loadCache } from '../../src/cache/snapshot.ts';
import type { KVCache } from '../../src/cache/cache.ts';
import type { CacheOptions } from '../../src/cache/options.ts';
import { clusteredKV } from '../../src/balancekv/synthetic.ts';
import { weightedAttention } from '../../src/balancekv/reference.ts';
import { BALANCEKV_STATE_WIDTH, type BalanceKVPolicy } from '../../src/policies/balancekv.ts';
import { catchErr, prng, randn, refAttend, relErr } from '../cache/helpers.ts';

const engine = await createEngine({ backend: 'wasm-simd' });
const t = suite('policies: balancekv');

function positions(c: KVCache, h = 0): number[] { return Array.from(c.store.readHeader(c.lane(0, h), 'pos')); }
function logW(c: KVCache, h = 0): number[] { return Array.from(c.store.readHeader(c.lane(0, h), 'logW')); }
function levels(c: KVCache, h = 0): number[] {
  const lane = c.lane(0, h);
  return Array.from({ length: lane.tokens }, (_, e) => lane.state[e * BALANCEKV_STATE_WIDTH]);
}
const base = (d: number, extra: Partial<CacheOptions> = {}): CacheOptions => ({
  layers: 1, qHeads: 2, kvHeads: 1, headDim: d, precision: 'f32', exactPrecision: 'f32', sinkTokens: 4, windowTokens: 8, slack: 16, ...extra,
});

t('stream: within the cap after every append, sinks and window exact; levels and log-weights as designed', () => {
  const d = 16, rnd = prng(1);
  const K = randn(600 * d, rnd), V = randn(600 * d, rnd);
  for (const [precision, massCorrection] of [['f32', 'none'], ['f32', 'prefix'], ['f16', 'prefix'], ['int8', 'all'], ['int4', 'prefix']] as const) {
    const c = engine.createCache(base(d, { policy: { name: 'balancekv', massCorrection }, budget: { tokens: 100 }, precision, exactPrecision: 'f16' }));
    for (let s = 0; s < 600; s++) {
      c.append(0, K.subarray(s * d, (s + 1) * d), V.subarray(s * d, (s + 1) * d));
      const lane = c.lane(0, 0);
      assert.ok(lane.tokens <= lane.cap, `${precision} step ${s}: ${lane.tokens} > cap ${lane.cap}`);
    }
    const what = `${precision}/${massCorrection}`;
    const pos = positions(c), w = logW(c), lv = levels(c);
    assert.equal(pos.slice(0, 4), [0, 1, 2, 3]);
    assert.equal(pos.slice(-8), [592, 593, 594, 595, 596, 597, 598, 599]);
    assert.equal(w.slice(0, 4), [0, 0, 0, 0]);
    assert.equal(w.slice(-8), [0, 0, 0, 0, 0, 0, 0, 0]);
    // Levels fall with recency: the oldest compressed entries carry the highest level.
    const mid = lv.slice(4, -8), wm = w.slice(4, -8);
    for (let e = 1; e < mid.length; e++) assert.ok(mid[e] <= mid[e - 1], `${what}: levels ${mid.join(',')}`);
    assert.ok(mid[0] >= 3, `${what}: ${mid[0]} levels`);
    const mass = wm.reduce((a, x) => a + Math.exp(x), 0);
    if (massCorrection === 'none') {
      // The code's weights: powers of two up to 2^level; the prefix rule keeps c + 1 <= n of the mass.
      for (let e = 0; e < wm.length; e++) {
        const a = wm[e] / Math.LN2;
        assert.ok(Math.abs(a - Math.round(a)) < 1e-5 && a >= -1e-6 && Math.round(a) <= mid[e], `${what}: entry ${e}: ln w = ${wm[e]}, level ${mid[e]}`);
      }
      assert.ok(mass <= 588 + 1e-3, `${what}: middle mass ${mass}`);
    } else {
      // Corrected: the kept weights stand for every evicted token (up to a dropped odd entry per halving).
      assert.ok(Math.abs(mass - 588) < 0.03 * 588, `${what}: middle mass ${mass} vs 588 tokens`);
    }
    c.dispose();
  }
});

t('prefill: a long append gets T full halvings (weights 2^T or less); mass corrections keep its total weight', () => {
  const d = 16, rnd = prng(2);
  const K = randn((4 + 400 + 8) * d, rnd);
  const V = randn((4 + 400 + 8) * d, rnd);
  for (const massCorrection of ['none', 'prefix', 'all'] as const) {
    const c = engine.createCache(base(d, { policy: { name: 'balancekv', mode: 'prefill', massCorrection }, budget: { tokens: 4 + 8 + 100 + 16 }, slack: 16 }));
    c.append(0, K, V);
    // 400 middle tokens into at most 100 slots: T = 2 full halvings (400 -> 200 -> 100).
    const w = logW(c).slice(4, -8), lv = levels(c).slice(4, -8);
    assert.is(w.length, 100);
    for (const l of lv) assert.is(l, 2);
    const mass = w.reduce((a, x) => a + Math.exp(x), 0);
    if (massCorrection !== 'none') assert.ok(Math.abs(mass - 400) < 1e-3 * 400, `${massCorrection}: mass ${mass}`);
    else {
      assert.ok(mass <= 400 + 1e-3 && mass >= 300, `mass ${mass}`);
      for (const x of w) assert.ok([0, 1, 2].some((a) => Math.abs(x - a * Math.LN2) < 1e-6), `ln w = ${x}`);
      assert.ok(w.filter((x) => Math.abs(x - 2 * Math.LN2) < 1e-6).length >= 50, 'most survivors weigh 2^T');
    }
    c.dispose();
  }
  // levels: 3 forces three halvings even though two would fit.
  const c3 = engine.createCache(base(d, { policy: { name: 'balancekv', mode: 'prefill', levels: 3 }, budget: { tokens: 128 }, slack: 16 }));
  c3.append(0, K, V);
  assert.is(c3.lane(0, 0).tokens, 4 + 50 + 8);
  // levels larger than log2 of the append: capped so that one entry remains.
  const c9 = engine.createCache(base(d, { policy: { name: 'balancekv', mode: 'prefill', levels: 24 }, budget: { tokens: 128 }, slack: 16 }));
  c9.append(0, K, V);
  assert.is(c9.lane(0, 0).tokens, 4 + 1 + 8);
});

t('PolicyContext.rows (PageStore.readSelected) = the same rows of keys() / values(), every tier and format', () => {
  const d = 16, rnd = prng(9);
  for (const precision of ['f16', 'int4', 'int2'] as const) {
    const c = engine.createCache(base(d, { policy: 'full', precision, exactPrecision: 'f16' }));
    c.append(0, randn(150 * d, rnd), randn(150 * d, rnd));
    for (let s = 0; s < 20; s++) c.append(0, randn(d, rnd), randn(d, rnd));
    const lane = c.lane(0, 0);
    assert.ok(lane.sinks.pages > 0 && lane.mid.pages > 0 && lane.tail.pages > 0, 'all three tiers hold pages');
    const K = c.store.readRows(lane, 'k'), V = c.store.readRows(lane, 'v');
    const pick = Int32Array.from([0, 3, 4, 31, 32, 33, 64, 100, 140, 160, 169].filter((x) => x < lane.tokens));
    const k = c.store.readSelected(lane, 'k', pick), v = c.store.readSelected(lane, 'v', pick);
    for (let j = 0; j < pick.length; j++) {
      assert.equal(Array.from(k.subarray(j * d, (j + 1) * d)), Array.from(K.subarray(pick[j] * d, (pick[j] + 1) * d)), `${precision}: key of entry ${pick[j]}`);
      assert.equal(Array.from(v.subarray(j * d, (j + 1) * d)), Array.from(V.subarray(pick[j] * d, (pick[j] + 1) * d)), `${precision}: value of entry ${pick[j]}`);
    }
    assert.is(c.store.readSelected(lane, 'k', new Int32Array(0)).length, 0);
    c.dispose();
  }
});

t('attention reads the log-weights: cache output = float64 weighted attention over the kept entries', () => {
  const d = 16, rnd = prng(3);
  const c = engine.createCache(base(d, { policy: 'balancekv', budget: { tokens: 60 } }));
  for (let s = 0; s < 300; s++) c.append(0, randn(d, rnd), randn(d, rnd));
  assert.ok(logW(c).some((x) => x > 0), 'some entries carry weight');
  const q = randn(2 * d, rnd);
  const err = relErr(c.attend(0, q), refAttend(c, 0, q).out);
  assert.ok(err < 1e-5, `kernel vs float64 reference ${err}`);
});

t('deterministic per seed; different seeds differ (gamma 0)', () => {
  const d = 16, rnd = prng(4);
  const K = randn(500 * d, rnd), V = randn(500 * d, rnd);
  const run = (seed: number, policy: CacheOptions['policy']) => {
    const c = engine.createCache(base(d, { policy, budget: { tokens: 80 }, seed }));
    for (let s = 0; s < 500; s++) c.append(0, K.subarray(s * d, (s + 1) * d), V.subarray(s * d, (s + 1) * d));
    const r = { pos: positions(c), w: logW(c) };
    c.dispose();
    return r;
  };
  assert.equal(run(5, 'balancekv'), run(5, 'balancekv'));
  assert.equal(run(5, { name: 'balancekv', gamma: 0 }), run(5, { name: 'balancekv', gamma: 0 }));
  assert.not.equal(run(5, { name: 'balancekv', gamma: 0 }).pos, run(6, { name: 'balancekv', gamma: 0 }).pos);
});

t('snapshot round trip: the restored cache continues identically (levels, RNG, log-weights)', () => {
  const d = 16, rnd = prng(5);
  const K = randn(700 * d, rnd), V = randn(700 * d, rnd);
  for (const policy of ['balancekv', { name: 'balancekv', gamma: 0 }, { name: 'balancekv', needle: true, needleRadius: 2, gamma: 1 }] as const) {
    const a = engine.createCache(base(d, { policy, budget: { tokens: 90 }, precision: 'int8', exactPrecision: 'f16', kvHeads: 1 }));
    for (let s = 0; s < 350; s++) a.append(0, K.subarray(s * d, (s + 1) * d), V.subarray(s * d, (s + 1) * d));
    const b = loadCache(engine, a.save());
    assert.equal(levels(b), levels(a));
    for (let s = 350; s < 700; s++) {
      a.append(0, K.subarray(s * d, (s + 1) * d), V.subarray(s * d, (s + 1) * d));
      b.append(0, K.subarray(s * d, (s + 1) * d), V.subarray(s * d, (s + 1) * d));
    }
    assert.equal(positions(b), positions(a));
    assert.equal(logW(b), logW(a));
    assert.equal(levels(b), levels(a));
    const q = randn(2 * d, rnd);
    assert.equal(Array.from(b.attend(0, q)), Array.from(a.attend(0, q)));
    a.dispose(); b.dispose();
  }
});

t('gamma 0 is random halving: kept set independent of the data, each entry kept about half the time', () => {
  const d = 16, n = 4 + 8 + 128;
  const seeds = 200;
  const kept = new Float64Array(n);
  for (let seed = 0; seed < seeds; seed++) {
    const sets: number[][] = [];
    for (const dataSeed of [11, 12]) {
      const rnd = prng(dataSeed);
      const c = engine.createCache(base(d, { policy: { name: 'balancekv', gamma: 0, mode: 'prefill' }, budget: { tokens: 4 + 8 + 64 + 16 }, seed }));
      c.append(0, randn(n * d, rnd, dataSeed), randn(n * d, rnd));
      sets.push(positions(c));
      c.dispose();
    }
    assert.equal(sets[0], sets[1], `seed ${seed}: the same tokens kept for different keys and values`);
    for (const p of sets[0]) kept[p]++;
  }
  // Early middle entries (before the prefix rule's tail, which is kept whole): about 1/2 each.
  const se = Math.sqrt(seeds * 0.25);
  let mean = 0;
  const early = 64;
  for (let i = 4; i < 4 + early; i++) {
    assert.ok(Math.abs(kept[i] - seeds / 2) < 5 * se, `entry ${i} kept ${kept[i]} / ${seeds}`);
    mean += kept[i] / early;
  }
  assert.ok(Math.abs(mean - seeds / 2) < 5 * se / Math.sqrt(early) + 0.05 * seeds, `mean keep count ${mean}`);
  // Exactly half of the middle survives each time.
  assert.is(kept.slice(4, n - 8).reduce((a, x) => a + x, 0), 64 * seeds);
});

t('needle variant: an outlier token and its neighbourhood survive heavy compression with weight 1', () => {
  const d = 16, rnd = prng(7), n = 400;
  const off = randn(d, rnd, 3);
  const K = new Float32Array(n * d), V = randn(n * d, rnd);
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) K[i * d + c] = off[c] + 0.3 * (rnd() - 0.5);
  const needle = 200;
  for (let c = 0; c < d; c++) K[needle * d + c] = -2 * off[c];
  const c = engine.createCache(base(d, { policy: { name: 'balancekv', needle: true, needleRadius: 2 }, budget: { tokens: 64 } }));
  for (let s = 0; s < n; s++) c.append(0, K.subarray(s * d, (s + 1) * d), V.subarray(s * d, (s + 1) * d));
  const pos = positions(c), w = logW(c);
  for (const p of [198, 199, 200, 201, 202]) {
    const e = pos.indexOf(p);
    assert.ok(e >= 0, `anchor ${p} kept (kept: ${pos.join(',')})`);
    assert.is(w[e], 0, `anchor ${p} keeps weight 1`);
  }
});

t('theoretical SoftmaxBalance: within budget, finite attention, FAIL counted; gamma ~ 0 (random halving)', () => {
  const d = 16, rnd = prng(8);
  const c = engine.createCache(base(d, { policy: { name: 'balancekv', theoretical: true }, budget: { tokens: 64 } }));
  for (let s = 0; s < 400; s++) {
    c.append(0, randn(d, rnd, 4), randn(d, rnd));
    assert.ok(c.lane(0, 0).tokens <= c.lane(0, 0).cap);
  }
  assert.ok(c.attend(0, randn(2 * d, rnd)).every(Number.isFinite));
  const st = (c.policy as BalanceKVPolicy).stats;
  assert.ok(st.halvings > 0 && st.failures === 0 && st.saturated === 0, JSON.stringify(st));
});

t('bad options and budgets: E_ARG / E_BUDGET naming the option', () => {
  const d = 16;
  const bad: [Record<string, unknown>, string][] = [
    [{ gamma: -1 }, 'options.policy.gamma'],
    [{ gamma: NaN }, 'options.policy.gamma'],
    [{ temp: 0 }, 'options.policy.temp'],
    [{ temp: -0.1 }, 'options.policy.temp'],
    [{ blockSize: 1 }, 'options.policy.blockSize'],
    [{ blockSize: 7 }, 'options.policy.blockSize'],
    [{ blockSize: 8192 }, 'options.policy.blockSize'],
    [{ c0: -1 }, 'options.policy.c0'],
    [{ center: 'middle' }, 'options.policy.center'],
    [{ beta: 'big' }, 'options.policy.beta'],
    [{ mode: 'batch' }, 'options.policy.mode'],
    [{ levels: 25 }, 'options.policy.levels'],
    [{ levels: -1 }, 'options.policy.levels'],
    [{ needle: 1 }, 'options.policy.needle'],
    [{ delta: 0 }, 'options.policy.delta'],
    [{ theoretical: true, needle: true }, 'options.policy.theoretical'],
    [{ B: 128 }, 'options.policy.B'],
  ];
  for (const [o, arg] of bad) {
    const e = catchErr(() => engine.createCache(base(d, { policy: { name: 'balancekv', ...o }, budget: { tokens: 64 } })));
    assert.is(e.code, 'E_ARG', JSON.stringify(o));
    assert.is(e.argument, arg, `${JSON.stringify(o)}: ${e.message}`);
  }
  const e = catchErr(() => engine.createCache(base(d, { policy: 'balancekv', budget: { tokens: 11 } })));
  assert.is(e.code, 'E_BUDGET');
  assert.is(e.argument, 'options.budget');
});

t('quality: lower attention error than uniform at equal bytes on clustered KV (paired seeds)', () => {
  const n = 1536, d = 64, seeds = 4;
  let wins = 0, sumB = 0, sumU = 0;
  for (let seed = 0; seed < seeds; seed++) {
    const kv = clusteredKV({ n, d, seed: seed + 1, queryNorm: 4, queries: 16 });
    const all = new Int32Array(n);
    for (let i = 0; i < n; i++) all[i] = i;
    const err: Record<string, number> = {};
    // levelRatio 1: equal counts per level (this data has no recency: every token matters alike).
    for (const policy of ['uniform', { name: 'balancekv', levelRatio: 1 }] as const) {
      const name = typeof policy === 'string' ? policy : policy.name;
      const c = engine.createCache({ layers: 1, qHeads: 1, kvHeads: 1, headDim: d, policy, budget: { tokens: 256 }, precision: 'f16', sinkTokens: 32, windowTokens: 32, seed });
      for (let s = 0; s < n; s += 16) c.append(0, kv.keys.slice(s * d, (s + 16) * d), kv.values.slice(s * d, (s + 16) * d));
      let e = 0;
      const o = new Float64Array(d);
      for (let q = 0; q < kv.nq; q++) {
        const qv = kv.queries.slice(q * d, (q + 1) * d);
        weightedAttention(qv, kv.keys, kv.values, d, all, null, o);
        const out = c.attend(0, qv);
        let num = 0, den = 0;
        for (let i = 0; i < d; i++) { num += (out[i] - o[i]) ** 2; den += o[i] ** 2; }
        e += Math.sqrt(num / den) / kv.nq;
      }
      err[name] = e;
      c.dispose();
    }
    if (err.balancekv < err.uniform) wins++;
    sumB += err.balancekv; sumU += err.uniform;
  }
  assert.ok(wins >= seeds - 1, `balancekv wins ${wins}/${seeds} (mean ${sumB / seeds} vs uniform ${sumU / seeds})`);
  assert.ok(sumB < 0.85 * sumU, `balancekv mean error ${sumB / seeds} vs uniform ${sumU / seeds}`);
});

t.run();

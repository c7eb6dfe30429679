import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine } from '../../src/engine.ts';
import type { KVCache } from '../../src/cache/cache.ts';
import type { CacheOptions } from '../../src/cache/options.ts';
import { laneBytesBound } from '../../src/budget/types.ts';
import { pyramidShares } from '../../src/budget/pyramid.ts';
import { FORMATS } from '../../src/formats.ts';
import { ERROR_BUDGETS } from '../../src/reference/quant.ts';
import { policyNames, registerPolicy, registerStage, type PolicySpec } from '../../src/policies/registry.ts';
import { topK } from '../../src/policies/selector.ts';
import { catchErr, prng, randn, refAttend, relErr } from '../cache/helpers.ts';

const engine = await createEngine({ backend: 'wasm-simd' });

// A test-only policy whose per-entry state is the entry's own position: after any
// compaction state[e] must still equal positions[e] (state follows its entry).
registerPolicy({
  name: 'test-poswatch',
  summary: 'test: state = position, evicts the oldest',
  options: {},
  create: () => ({
    name: 'test-poswatch', config: {}, evicts: true, needs: { attendProbs: true }, entryStateWidth: 1,
    observe(ctx) {
      const pos = ctx.positions();
      for (let e = 0; e < ctx.tokens; e++) if (ctx.entryState[e] === 0) ctx.entryState[e] = pos[e] + 1;
    },
    score(ctx, out) { for (let i = 0; i < ctx.evictable; i++) out[i] = -ctx.entryState[ctx.evictStart + i]; },
  }),
});
// A test-only stage: swaps the lowest-scored kept entry for the highest-scored evicted one
// ("rescue" shape of KVCrush), and one that breaks its contract.
registerStage({
  name: 'test-rescue', summary: 'test', options: {},
  create: () => ({
    name: 'test-rescue', config: {},
    apply(_ctx, scores, mask) {
      let lo = -1, hi = -1;
      for (let i = 0; i < mask.length; i++) {
        if (mask[i] && (lo < 0 || scores[i] < scores[lo])) lo = i;
        if (!mask[i] && (hi < 0 || scores[i] > scores[hi])) hi = i;
      }
      if (lo >= 0 && hi >= 0) { mask[lo] = 0; mask[hi] = 1; }
    },
  }),
});
registerStage({
  name: 'test-greedy', summary: 'test', options: {},
  create: () => ({ name: 'test-greedy', config: {}, apply(_ctx, _s, mask) { mask.fill(1); } }),
});

/**
 * Kernel vs float64 reference over the stored entries: 1e-5 for exact pages; packed pages
 * use 16-bit fixed point in the SIMD kernel (ERROR_BUDGETS.kernelRel = 3e-4; measured up
 * to ~7e-4 of the output's largest magnitude here, the scalar build ~5e-7), so the same
 * 10x allowance as the kernel's own tests (test/kernels/attention.test.ts).
 */
const tolKernel = (f: (typeof FORMATS)[number]) => Math.max(1e-5, 10 * ERROR_BUDGETS[f].kernelRel);

/** BalanceKV's hard config: tiny blocks, non-default kernel, needle anchors, prefill one-shot, corrected mass. */
const BALANCEKV_HARD: PolicySpec = { name: 'balancekv', blockSize: 2, gamma: 0.5, temp: 0.1, center: 'real', beta: 'auto', needle: true, needleRadius: 1, mode: 'prefill', levels: 2, massCorrection: 'all', levelRatio: 2 };
const BASELINES: PolicySpec[] = ['full', 'streaming-llm', 'h2o', 'snapkv', 'tova', 'knorm', 'uniform', 'balancekv', BALANCEKV_HARD];

/** Positions of a lane's entries. */
function positions(c: KVCache, layer: number, h: number): number[] {
  return Array.from(c.store.readHeader(c.lane(layer, h), 'pos'));
}

/** Invariants after every public call: caps, byte bounds, sinks, window, finite attention. */
function checkInvariants(c: KVCache, what: string): void {
  const o = c.options;
  const st = c.stats();
  for (const l of st.lanes) {
    assert.ok(l.tokens <= l.cap, `${what}: lane ${l.layer}/${l.kvHead} holds ${l.tokens} > cap ${l.cap}`);
    if (Number.isFinite(l.cap)) {
      const bound = laneBytesBound(l.cap, l.precision, o);
      assert.ok(l.bytes <= bound, `${what}: lane ${l.layer}/${l.kvHead} bytes ${l.bytes} > bound ${bound}`);
    }
    const pos = positions(c, l.layer, l.kvHead);
    const n = st.appended[l.layer];
    const sinks = Math.min(o.sinkTokens, n);
    for (let i = 0; i < sinks; i++) assert.is(pos[i], i, `${what}: sink ${i} kept`);
    const w = Math.min(o.windowTokens, n - sinks);
    for (let i = 0; i < w; i++) assert.is(pos[pos.length - 1 - i], n - 1 - i, `${what}: window entry ${n - 1 - i} kept`);
    for (let i = 1; i < pos.length; i++) assert.ok(pos[i] > pos[i - 1], `${what}: positions ascending`);
  }
  if (o.budget && 'bytes' in o.budget) assert.ok(st.bytes <= o.budget.bytes, `${what}: ${st.bytes} bytes > budget ${o.budget.bytes}`);
}

const m = suite('policies: matrix');

m('every policy x planner x precision keeps within budget, keeps sinks and window, attends finitely', () => {
  const d = 16, layers = 3, qHeads = 4, kvHeads = 2;
  const planners = ['uniform', 'pyramid', 'lanes', 'bytes'] as const;
  let configs = 0;
  for (const policy of BASELINES) for (const planner of planners) for (const precision of FORMATS) {
    const rnd = prng(configs * 31 + 7);
    const base: CacheOptions = { layers, qHeads, kvHeads, headDim: d, policy, precision, sinkTokens: 4, windowTokens: 16, slack: 8, hadamard: ([false, true, 'keys', 'values'] as const)[configs % 4], seed: configs };
    let opts: CacheOptions;
    if (policy === 'full') opts = { ...base, budget: { tokens: 400 } };
    else if (planner === 'lanes') opts = { ...base, planner: Array.from({ length: layers * kvHeads }, (_, i) => 40 + 13 * i) };
    else if (planner === 'bytes') opts = { ...base, budget: { bytes: 64 * 1024 }, planner: 'pyramid' };
    else opts = { ...base, budget: { tokens: 72 }, planner };
    const c = engine.createCache(opts);
    const what = `${typeof policy === 'string' ? policy : `${policy.name}(hard)`}/${planner}/${precision}`;
    for (let l = 0; l < layers; l++) {
      c.observe(l, randn(3 * qHeads * d, rnd));
      c.append(l, randn(kvHeads * 150 * d, rnd), randn(kvHeads * 150 * d, rnd));
    }
    checkInvariants(c, `${what} after prefill`);
    for (let s = 0; s < 60; s++) {
      for (let l = 0; l < layers; l++) {
        c.append(l, randn(kvHeads * d, rnd), randn(kvHeads * d, rnd));
        const q = randn(qHeads * d, rnd);
        const out = c.attend(l, q);
        assert.ok(out.every(Number.isFinite), `${what}: finite`);
        if (s % 20 === 0) {
          const err = relErr(out, refAttend(c, l, q).out);
          assert.ok(err <= tolKernel(precision), `${what}: kernel vs reference ${err}`);
        }
      }
      checkInvariants(c, `${what} step ${s}`);
    }
    c.dispose();
    configs++;
  }
  assert.is(configs, BASELINES.length * planners.length * FORMATS.length);
});

m('edge budgets: caps of 1, 2, 33 tokens with no sinks / window, slack 0 and larger than the cap', () => {
  const d = 8;
  for (const policy of BASELINES.filter((p2) => p2 !== 'full')) {
    for (const cap of [1, 2, 33]) for (const slack of [0, 64]) for (const precision of ['f16', 'int2'] as const) {
      const rnd = prng(cap * 7 + slack);
      const c = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: d, policy, precision, budget: { tokens: cap }, sinkTokens: 0, windowTokens: 0, slack });
      for (let s = 0; s < 70; s++) {
        c.append(0, randn((s % 9 === 0 ? 40 : 1) * d, rnd), randn((s % 9 === 0 ? 40 : 1) * d, rnd));
        const lane = c.lane(0, 0);
        assert.ok(lane.tokens >= 1 && lane.tokens <= cap, `${policy} cap ${cap} slack ${slack}: ${lane.tokens} tokens`);
        assert.ok(c.attend(0, randn(2 * d, rnd)).every(Number.isFinite));
      }
      c.dispose();
    }
  }
});

m('per-entry policy state follows its entry through compaction, migration and merges', () => {
  const rnd = prng(4), d = 16;
  for (const precision of ['f16', 'int4'] as const) {
    const c = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: d, policy: 'test-poswatch', precision, budget: { tokens: 90 }, windowTokens: 8, slack: 20 });
    for (let s = 0; s < 300; s++) {
      c.append(0, randn(d, rnd), randn(d, rnd));
      c.attend(0, randn(2 * d, rnd));
      const lane = c.lane(0, 0);
      const pos = c.store.readHeader(lane, 'pos');
      for (let e = 0; e < lane.tokens; e++) assert.is(lane.state[e], pos[e] + 1, `${precision} step ${s} entry ${e}`);
    }
  }
});

m('decode-time eviction on packed pages barely compounds quantization error (holes merged past a spare allowance)', () => {
  const d = 64, rnd = prng(3), N = 3000;
  for (const precision of ['int4', 'int2'] as const) {
    const c = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: d, policy: 'h2o', precision, budget: { tokens: 1024 }, windowTokens: 32, slack: 32 });
    const K = randn(N * d, rnd), V = randn(N * d, rnd);
    c.append(0, K.subarray(0, 1000 * d), V.subarray(0, 1000 * d));
    for (let t = 1000; t < N; t++) { c.append(0, K.subarray(t * d, (t + 1) * d), V.subarray(t * d, (t + 1) * d)); c.attend(0, randn(2 * d, rnd)); }
    const lane = c.lane(0, 0);
    const pos = c.store.readHeader(lane, 'pos'), ks = c.store.readRows(lane, 'k');
    // The same surviving keys quantized once, in fresh pages.
    const once = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: d, policy: 'full', precision, sinkTokens: 0, windowTokens: 0 });
    const Ks = new Float32Array(pos.length * d);
    for (let i = 0; i < pos.length; i++) Ks.set(K.subarray(pos[i] * d, pos[i] * d + d), i * d);
    once.append(0, Ks, Ks);
    const kOnce = once.store.readRows(once.lane(0, 0), 'k');
    let eDecode = 0, eOnce = 0;
    for (let i = 0; i < Ks.length; i++) { eDecode += (ks[i] - Ks[i]) ** 2; eOnce += (kOnce[i] - Ks[i]) ** 2; }
    assert.ok(Math.sqrt(eDecode / eOnce) < 1.25, `${precision}: key error after ${N} tokens ${Math.sqrt(eDecode / Ks.length)} vs quantized once ${Math.sqrt(eOnce / Ks.length)}`);
    c.dispose(); once.dispose();
  }
});

const b = suite('policies: behaviour');

/** A lane whose entries at `hot` positions have keys along `u` (others small noise). */
function plantedKV(n: number, d: number, hot: Set<number>, u: Float32Array, rnd: () => number): { K: Float32Array; V: Float32Array } {
  const K = randn(n * d, rnd, 0.1), V = randn(n * d, rnd);
  for (const i of hot) for (let c = 0; c < d; c++) K[i * d + c] = u[c] * 3;
  return { K, V };
}

b('streaming-llm keeps exactly the sinks and the most recent entries', () => {
  const rnd = prng(1), d = 16;
  const c = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: d, policy: 'streaming-llm', budget: { tokens: 40 }, sinkTokens: 4, windowTokens: 8, slack: 0 });
  c.append(0, randn(100 * d, rnd), randn(100 * d, rnd));
  for (let s = 0; s < 50; s++) {
    c.append(0, randn(d, rnd), randn(d, rnd));
    const n = 101 + s;
    const want = [0, 1, 2, 3, ...Array.from({ length: 36 }, (_, i) => n - 36 + i)];
    assert.equal(positions(c, 0, 0), want);
  }
});

b('h2o keeps the entries that received the most attention', () => {
  const rnd = prng(2), d = 16, n = 120;
  const u = randn(d, rnd); const un = Math.hypot(...u); for (let i = 0; i < d; i++) u[i] /= un;
  const hot = new Set([20, 33, 47, 61, 75, 88]);
  const { K, V } = plantedKV(n, d, hot, u, rnd);
  const c = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: d, policy: 'h2o', budget: { tokens: 40 }, sinkTokens: 4, windowTokens: 8, slack: 0 });
  // Build up attention while the lane is under its cap: queries along u.
  c.append(0, K.subarray(0, 39 * d), V.subarray(0, 39 * d));
  for (let t = 39; t < n; t++) {
    const q = new Float32Array(2 * d); for (let c2 = 0; c2 < d; c2++) { q[c2] = u[c2] * 4; q[d + c2] = u[c2] * 4; }
    c.attend(0, q);
    c.append(0, K.subarray(t * d, (t + 1) * d), V.subarray(t * d, (t + 1) * d));
  }
  const kept = new Set(positions(c, 0, 0));
  for (const h of hot) assert.ok(kept.has(h), `heavy hitter ${h} kept (kept: ${[...kept]})`);
});

b('snapkv keeps what the observation window attends to (with pooled neighbours)', () => {
  const rnd = prng(3), d = 16, n = 200;
  const u = randn(d, rnd); const un = Math.hypot(...u); for (let i = 0; i < d; i++) u[i] /= un;
  const hot = new Set([30, 90, 150]);
  const { K, V } = plantedKV(n, d, hot, u, rnd);
  const c = engine.createCache({ layers: 1, qHeads: 4, kvHeads: 2, headDim: d, policy: { name: 'snapkv', window: 4, kernel: 5 }, budget: { tokens: 40 }, sinkTokens: 4, windowTokens: 8, slack: 0 });
  const obs = new Float32Array(4 * 4 * d);
  for (let r = 0; r < 16; r++) for (let c2 = 0; c2 < d; c2++) obs[r * d + c2] = u[c2] * 4;
  c.observe(0, obs);
  const K2 = new Float32Array(2 * n * d), V2 = new Float32Array(2 * n * d);
  K2.set(K); K2.set(K, n * d); V2.set(V); V2.set(V, n * d);
  c.append(0, K2, V2);
  for (const h of [0, 1]) {
    const kept = new Set(positions(c, 0, h));
    for (const x of hot) {
      assert.ok(kept.has(x), `kvHead ${h}: observed entry ${x} kept`);
      assert.ok(kept.has(x - 1) && kept.has(x + 1), `kvHead ${h}: pooling keeps the neighbours of ${x}`);
    }
  }
});

b('tova keeps what the last query attends to', () => {
  const rnd = prng(5), d = 16, n = 100;
  const u = randn(d, rnd); const un = Math.hypot(...u); for (let i = 0; i < d; i++) u[i] /= un;
  const hot = new Set([10, 50, 70]);
  const { K, V } = plantedKV(n, d, hot, u, rnd);
  const c = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: d, policy: 'tova', budget: { tokens: 30 }, sinkTokens: 2, windowTokens: 4, slack: 0 });
  c.append(0, K.subarray(0, 29 * d), V.subarray(0, 29 * d));
  const q = new Float32Array(2 * d); for (let c2 = 0; c2 < d; c2++) { q[c2] = u[c2] * 4; q[d + c2] = u[c2] * 4; }
  c.attend(0, q);
  c.append(0, K.subarray(29 * d), V.subarray(29 * d));
  const kept = new Set(positions(c, 0, 0));
  for (const h of hot) assert.ok(kept.has(h), `entry ${h} kept`);
});

b('knorm keeps the evictable entries with the smallest key norms', () => {
  const rnd = prng(6), d = 16, n = 80;
  const K = randn(n * d, rnd), V = randn(n * d, rnd);
  const c = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: d, policy: 'knorm', precision: 'f32', exactPrecision: 'f32', budget: { tokens: 30 }, sinkTokens: 2, windowTokens: 4, slack: 0 });
  c.append(0, K, V);
  const norms = Array.from({ length: n }, (_, i) => Math.hypot(...K.subarray(i * d, (i + 1) * d)));
  const evictable = Array.from({ length: n - 6 }, (_, i) => i + 2).sort((a, b2) => norms[a] - norms[b2]);
  const want = new Set([0, 1, ...evictable.slice(0, 24), 76, 77, 78, 79]);
  assert.equal(positions(c, 0, 0), [...want].sort((a, b2) => a - b2));
});

b('uniform sampling: the weighted sums are unbiased over seeds', () => {
  const rnd = prng(7), d = 8, n = 120, qh = 2;
  const K = randn(n * d, rnd), V = randn(n * d, rnd);
  const q = randn(qh * d, rnd);
  const opts: CacheOptions = { layers: 1, qHeads: qh, kvHeads: 1, headDim: d, precision: 'f32', exactPrecision: 'f32', sinkTokens: 2, windowTokens: 4, slack: 0 };
  const full = engine.createCache({ ...opts, policy: 'full' });
  full.append(0, K, V);
  const lseF = new Float32Array(qh);
  const outF = full.attend(0, q, undefined, { lse: lseF });
  const Z = Array.from(lseF, Math.exp); // Σ exp(logit)
  const N = Array.from(outF, (x, i) => x * Z[Math.floor(i / d)]); // Σ exp(logit) v
  const seeds = 300;
  const sumZ = new Float64Array(qh), sumZ2 = new Float64Array(qh), sumN = new Float64Array(qh * d), sumN2 = new Float64Array(qh * d);
  for (let s = 0; s < seeds; s++) {
    const c = engine.createCache({ ...opts, policy: 'uniform', budget: { tokens: 36 }, seed: s });
    c.append(0, K, V);
    assert.is(c.lane(0, 0).tokens, 36);
    const lse = new Float32Array(qh);
    const out = c.attend(0, q, undefined, { lse });
    for (let h = 0; h < qh; h++) {
      const z = Math.exp(lse[h]); sumZ[h] += z; sumZ2[h] += z * z;
      for (let c2 = 0; c2 < d; c2++) { const v = out[h * d + c2] * z; sumN[h * d + c2] += v; sumN2[h * d + c2] += v * v; }
    }
    c.dispose();
  }
  const within = (sum: number, sum2: number, truth: number, what: string) => {
    const mean = sum / seeds, sd = Math.sqrt(Math.max(0, sum2 / seeds - mean * mean));
    const se = sd / Math.sqrt(seeds);
    assert.ok(Math.abs(mean - truth) <= 4.5 * se + 1e-9 * Math.abs(truth), `${what}: mean ${mean} vs ${truth} (se ${se})`);
  };
  for (let h = 0; h < qh; h++) within(sumZ[h], sumZ2[h], Z[h], `Z[${h}]`);
  for (let i = 0; i < qh * d; i++) within(sumN[i], sumN2[i], N[i], `N[${i}]`);
});

b('uniform: same seed, same samples; log-weights ln(n/m) on kept evictable entries only', () => {
  const rnd = prng(8), d = 8;
  const K = randn(100 * d, rnd), V = randn(100 * d, rnd);
  const make = (seed: number) => { const c = engine.createCache({ layers: 1, qHeads: 1, kvHeads: 1, headDim: d, policy: 'uniform', budget: { tokens: 30 }, sinkTokens: 2, windowTokens: 4, slack: 0, seed }); c.append(0, K, V); return c; };
  const a = make(1), a2 = make(1), b2 = make(2);
  assert.equal(positions(a, 0, 0), positions(a2, 0, 0));
  assert.not.equal(positions(a, 0, 0), positions(b2, 0, 0));
  const w = Array.from(a.store.readHeader(a.lane(0, 0), 'logW'));
  assert.equal(w.slice(0, 2), [0, 0]);
  assert.equal(w.slice(-4), [0, 0, 0, 0]);
  for (const x of w.slice(2, -4)) assert.ok(Math.abs(x - Math.log(94 / 24)) < 1e-6);
});

b('compositions: base+stage runs the stage after the selector; a stage may not keep more', () => {
  const rnd = prng(9), d = 16;
  const K = randn(80 * d, rnd), V = randn(80 * d, rnd);
  const opts = { layers: 1, qHeads: 2, kvHeads: 1, headDim: d, budget: { tokens: 30 }, sinkTokens: 2, windowTokens: 4, slack: 0 };
  const plain = engine.createCache({ ...opts, policy: 'knorm' });
  plain.append(0, K, V);
  const withStage = engine.createCache({ ...opts, policy: 'knorm+test-rescue' });
  assert.is(withStage.options.policy.name, 'knorm+test-rescue');
  assert.equal(withStage.options.policy['test-rescue'], {});
  withStage.append(0, K, V);
  const a = positions(plain, 0, 0), b2 = positions(withStage, 0, 0);
  assert.is(a.length, b2.length);
  assert.is(a.filter((x) => !b2.includes(x)).length, 1, 'one entry swapped');
  const greedy = engine.createCache({ ...opts, policy: 'knorm+test-greedy' });
  assert.is(catchErr(() => greedy.append(0, K, V)).code, 'E_STATE');
  assert.is(catchErr(() => engine.createCache({ ...opts, policy: 'uniform+test-rescue' })).code, 'E_ARG');
  assert.is(catchErr(() => engine.createCache({ ...opts, policy: { name: 'knorm+test-rescue', 'test-rescue': { x: 1 } } })).code, 'E_ARG');
  assert.ok(policyNames().includes('knorm'));
});

b('selector: top-k with ties to the most recent, NaN as -Infinity', () => {
  const s = new Float64Array([1, 5, 5, NaN, 2, 5]);
  assert.equal(Array.from(topK(s, 2)), [0, 0, 1, 0, 0, 1]);
  assert.equal(Array.from(topK(s, 4)), [0, 1, 1, 0, 1, 1]);
  assert.equal(Array.from(topK(s, 6)), [1, 1, 1, 1, 1, 1]);
  assert.equal(Array.from(topK(s, 0)), [0, 0, 0, 0, 0, 0]);
});

const p = suite('budget planners');

p('pyramid: layer caps decrease with depth, same total as uniform; byte budgets hold', () => {
  const sh = pyramidShares(4, 100);
  assert.ok(sh[0] > sh[1] && sh[1] > sh[2] && sh[2] > sh[3]);
  assert.ok(Math.abs(sh.reduce((a, x) => a + x, 0) - 400) < 1e-9);
  assert.ok(Math.abs(sh[3] - 5) < 1e-9, 'min = X / beta');
  const base = { layers: 6, qHeads: 4, kvHeads: 2, headDim: 16, policy: 'snapkv', sinkTokens: 4, windowTokens: 16 } as const;
  const uni = engine.createCache({ ...base, budget: { tokens: 100 } });
  const pyr = engine.createCache({ ...base, budget: { tokens: 100 }, planner: 'pyramid' });
  const cu = uni.stats().lanes.map((l) => l.cap), cp = pyr.stats().lanes.map((l) => l.cap);
  assert.is(cu.reduce((a, x) => a + x, 0), cp.reduce((a, x) => a + x, 0));
  for (let l = 1; l < 6; l++) assert.ok(cp[l * 2] <= cp[(l - 1) * 2], 'decreasing');
  assert.is(cp[0], cp[1], 'same cap for the heads of a layer');
  for (const planner of ['uniform', 'pyramid'] as const) {
    for (const precision of ['f16', 'int4', 'int2'] as const) {
      const bytes = 300_000;
      const c = engine.createCache({ ...base, budget: { bytes }, planner, precision });
      const o = c.options;
      const total = c.stats().lanes.reduce((a, l) => a + laneBytesBound(l.cap, l.precision, o), 0);
      assert.ok(total <= bytes, `${planner}/${precision}: worst case ${total} <= ${bytes}`);
      assert.ok(total > bytes * 0.85, `${planner}/${precision}: uses most of the budget (${total})`);
    }
  }
  const lowBits = engine.createCache({ ...base, budget: { bytes: 300_000 }, precision: 'int4' });
  const f16 = engine.createCache({ ...base, budget: { bytes: 300_000 }, precision: 'f16' });
  assert.ok(lowBits.stats().lanes[0].cap > 2 * f16.stats().lanes[0].cap, 'int4 fits more tokens in the same bytes');
});

p('per-lane plans: caps and precisions per lane', () => {
  const c = engine.createCache({ layers: 2, qHeads: 2, kvHeads: 1, headDim: 16, policy: 'h2o', windowTokens: 8, planner: [64, { tokens: 200, precision: 'int2' }] });
  const st = c.stats();
  assert.equal(st.lanes.map((l) => [l.cap, l.precision]), [[64, 'f16'], [200, 'int2']]);
});

m.run();
b.run();
p.run();

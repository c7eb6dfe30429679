import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { KVCache } from '../../src/cache/cache.ts';
import type { CacheOptions } from '../../src/cache/options.ts';
import { PAGE_TOKENS, type Format } from '../../src/formats.ts';
import { ERROR_BUDGETS } from '../../src/reference/quant.ts';
import { loadCache } from '../../src/cache/snapshot.ts';
import { EdgeKVError } from '../../src/errors.ts';
import { catchErr, exactAttention, prng, randn, refAttend, relErr, testEngines } from './helpers.ts';

const engines = await testEngines();

/** Kernel result vs float64 reference over the stored entries (exact tiers). */
const TOL_KERNEL = 1e-5;
/**
 * Same, per format: packed pages use 16-bit fixed point in the SIMD kernel
 * (ERROR_BUDGETS.kernelRel = 3e-4 in src/reference/quant.ts; measured up to ~7e-4 of the
 * output's largest magnitude on these caches, the scalar build ~5e-7), so the same 10x
 * allowance as the kernel's own tests (test/kernels/attention.test.ts).
 */
const tolPacked = (f: Format) => Math.max(TOL_KERNEL, 10 * ERROR_BUDGETS[f].kernelRel);
/**
 * Attention output error vs exact attention on the raw inputs, per storage format:
 * max |out - exact| in units of the values' RMS (random KV, uniform in ±3σ-ish).
 */
const TOL_FORMAT: Record<string, number> = { f32: 1e-6, f16: 1e-3, int8: 1e-2, int4: 0.12, int2: 0.5 };

function absErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
function rms(a: Float32Array): number {
  let s = 0;
  for (const x of a) s += x * x;
  return Math.sqrt(s / a.length);
}

function geometry(extra: Partial<CacheOptions> = {}): CacheOptions {
  return { layers: 2, qHeads: 6, kvHeads: 2, headDim: 16, ...extra };
}

/** A fingerprint of all cache state: stats, RNG, query rings, every lane's stored entries and policy state. */
function fingerprint(c: KVCache): string {
  const { overheadBytes: _, ...st } = c.stats();
  const parts: unknown[] = [st, Array.from(c.rng.s), c.rings?.map((r) => [r.count, r.next, Array.from(r.buf)]) ?? null];
  for (const lane of c.lanes) {
    if (lane.tokens === 0) continue;
    parts.push(Array.from(c.store.readHeader(lane, 'pos')), Array.from(c.store.readHeader(lane, 'logW')));
    parts.push(Array.from(c.store.readRows(lane, 'k')), Array.from(c.store.readRows(lane, 'v')), Array.from(lane.state.subarray(0, lane.tokens * lane.stateWidth)));
  }
  // Short, comparable: one line per part (a failing assert then shows which part differs).
  return parts.map((p, i) => `${i}:${hash(JSON.stringify(p))}`).join(' ');
}

function hash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0).toString(16);
}

for (const { name, engine } of engines) {
  const t = suite(`cache [${name}]`);
  // Only the SIMD build's packed path is approximate; scalar and the TS reference are exact f32 math.
  const tolKernel = (f: Format) => (name === 'wasm-simd' ? tolPacked(f) : TOL_KERNEL);

  t('full policy equals exact attention (f32 storage, raw inputs) across page edges', () => {
    const d = 16, kvHeads = 2, qHeads = 6;
    for (const hadamard of [false, true]) {
      for (const T of [1, 2, 3, 31, 32, 33, 65]) {
        const rnd = prng(T * 7 + (hadamard ? 1 : 0));
        const c = engine.createCache(geometry({ precision: 'f32', exactPrecision: 'f32', hadamard, sinkTokens: 4, windowTokens: 8 }));
        const K = randn(kvHeads * T * d, rnd), V = randn(kvHeads * T * d, rnd);
        c.append(0, K, V);
        const Ks = [K.subarray(0, T * d), K.subarray(T * d)], Vs = [V.subarray(0, T * d), V.subarray(T * d)];
        const q = randn(qHeads * d, rnd);
        const lse = new Float32Array(qHeads);
        const out = c.attend(0, q, undefined, { lse });
        const ex = exactAttention(q, Ks, Vs, qHeads, kvHeads, d, c.options.scale);
        assert.ok(relErr(out, ex) <= TOL_KERNEL, `T=${T} hadamard=${hadamard}: rel err ${relErr(out, ex)}`);
        const ref = refAttend(c, 0, q);
        for (let h = 0; h < qHeads; h++) assert.ok(Math.abs(lse[h] - ref.lse[h]) <= 1e-5 * Math.max(1, Math.abs(ref.lse[h])), `lse[${h}] ${lse[h]} vs ${ref.lse[h]}`);
        c.dispose();
      }
    }
  });

  t('full policy over f16 and packed tiers: kernel equals the reference over stored entries; format error within budget', () => {
    const d = 16, kvHeads = 2, qHeads = 6;
    for (const precision of ['f16', 'int8', 'int4', 'int2'] as const) {
      const rnd = prng(99);
      const c = engine.createCache(geometry({ precision, exactPrecision: precision === 'f16' ? 'f16' : 'f32', sinkTokens: 0, windowTokens: 0 }));
      const T = 96;
      const K = randn(kvHeads * T * d, rnd), V = randn(kvHeads * T * d, rnd);
      c.append(1, K, V);
      const st = c.stats().lanes[2];
      assert.is(st.middle, T, `${precision}: every whole page is in the compressed tier`);
      let worstRef = 0, worstExact = 0;
      for (let i = 0; i < 8; i++) {
        const q = randn(qHeads * d, rnd);
        const out = c.attend(1, q);
        worstRef = Math.max(worstRef, relErr(out, refAttend(c, 1, q).out));
        worstExact = Math.max(worstExact, absErr(out, exactAttention(q, [K.subarray(0, T * d), K.subarray(T * d)], [V.subarray(0, T * d), V.subarray(T * d)], qHeads, kvHeads, d, c.options.scale)) / rms(V));
      }
      assert.ok(worstRef <= tolKernel(precision), `${precision}: kernel vs reference ${worstRef}`);
      assert.ok(worstExact <= TOL_FORMAT[precision], `${precision}: vs exact ${worstExact} > ${TOL_FORMAT[precision]}`);
      c.dispose();
    }
  });

  t('streaming decode: full policy stays exact step by step; ragged lengths per layer', () => {
    const d = 16, rnd = prng(5);
    const c = engine.createCache(geometry({ precision: 'int8', windowTokens: 8, sinkTokens: 2 }));
    c.append(0, randn(2 * 40 * d, rnd), randn(2 * 40 * d, rnd));
    for (let s = 0; s < 40; s++) {
      const layer = s % 3 === 0 ? 1 : 0;
      c.append(layer, randn(2 * d, rnd), randn(2 * d, rnd));
      const q = randn(6 * d, rnd);
      const out = c.attend(layer, q);
      assert.ok(relErr(out, refAttend(c, layer, q).out) <= tolKernel('int8'), `step ${s}`);
    }
    const st = c.stats();
    assert.is(st.lanes[0].tokens, 40 + 26);
    assert.is(st.lanes[2].tokens, 14);
    assert.equal(st.appended, [66, 14]);
    for (const l of st.lanes) assert.ok(l.tail < 8 + PAGE_TOKENS && l.tail >= Math.min(8, l.tokens - l.sinks), 'tail holds window + residual');
    c.dispose();
  });

  t('stats bytes equal the arena blocks of the pages; dispose gives everything back', () => {
    const before = engine.arena.bytesInUse;
    const rnd = prng(3), d = 16;
    const c = engine.createCache(geometry({ policy: 'h2o', budget: { tokens: 48 }, precision: 'int4', windowTokens: 8, slack: 8 }));
    for (let s = 0; s < 120; s++) {
      for (let l = 0; l < 2; l++) { c.append(l, randn(2 * d, rnd), randn(2 * d, rnd)); c.attend(l, randn(6 * d, rnd)); }
      if (s % 17 !== 0) continue;
      const st = c.stats();
      let pages = 0;
      for (const lane of c.lanes) for (const tier of lane.tiers) for (const p of tier.ptrs) pages += engine.arena.sizeOf(p);
      assert.is(st.bytes, pages);
      assert.is(st.bytes, st.lanes.reduce((a, l) => a + l.bytes, 0));
      assert.is(engine.arena.bytesInUse - before, st.bytes + st.overheadBytes);
    }
    c.reset();
    assert.is(c.stats().bytes, 0);
    assert.is(engine.arena.bytesInUse - before, c.stats().overheadBytes);
    c.dispose();
    assert.is(engine.arena.bytesInUse, before);
    assert.is(catchErr(() => c.stats()).code, 'E_STATE');
  });

  t('rejected calls change nothing', () => {
    const rnd = prng(11), d = 16;
    const c = engine.createCache(geometry({ policy: 'h2o', budget: { tokens: 40 }, precision: 'int4', windowTokens: 8, slack: 4 }));
    c.append(0, randn(2 * 50 * d, rnd), randn(2 * 50 * d, rnd));
    c.append(1, randn(2 * 5 * d, rnd), randn(2 * 5 * d, rnd));
    c.attend(0, randn(6 * d, rnd));
    const probe = randn(6 * d, rnd);
    const base = fingerprint(c);
    const good = randn(2 * 2 * d, rnd);
    const nan = good.slice(); nan[5] = NaN;
    const inf = good.slice(); inf[9] = -Infinity;
    const bad: Array<[string, () => unknown, string]> = [
      ['layer out of range', () => c.append(2, good, good), 'E_ARG'],
      ['layer not integer', () => c.append(0.5, good, good), 'E_ARG'],
      ['keys not Float32Array', () => c.append(0, Array.from(good) as never, good), 'E_ARG'],
      ['keys wrong length', () => c.append(0, good.subarray(1), good.subarray(1)), 'E_SHAPE'],
      ['values wrong length', () => c.append(0, good, good.subarray(1)), 'E_SHAPE'],
      ['NaN in keys', () => c.append(0, nan, good), 'E_NONFINITE'],
      ['Inf in values', () => c.append(0, good, inf), 'E_NONFINITE'],
      ['positions too few', () => c.append(0, good, good, [100]), 'E_SHAPE'],
      ['positions not increasing', () => c.append(0, good, good, [101, 101]), 'E_ARG'],
      ['positions before last', () => c.append(0, good, good, [3, 4]), 'E_ARG'],
      ['positions not integers', () => c.append(0, good, good, [100.5, 102]), 'E_ARG'],
      ['positions negative', () => c.append(1, good, good, [-2, -1]), 'E_ARG'],
      ['attend wrong length', () => c.attend(0, probe.subarray(1)), 'E_SHAPE'],
      ['attend NaN', () => { const q = probe.slice(); q[0] = NaN; c.attend(0, q); }, 'E_NONFINITE'],
      ['attend out wrong length', () => c.attend(0, probe, new Float32Array(3)), 'E_SHAPE'],
      ['attend lse wrong length', () => c.attend(0, probe, undefined, { lse: new Float32Array(2) }), 'E_SHAPE'],
      ['attend unknown option', () => c.attend(0, probe, undefined, { lsee: new Float32Array(6) } as never), 'E_ARG'],
      ['observe wrong length', () => c.observe(0, probe.subarray(2)), 'E_SHAPE'],
      ['value outside the f16 range', () => { const big = good.slice(); big[3] = 70000; c.append(0, good, big); }, 'E_ARG'],
    ];
    for (const [what, f, code] of bad) {
      const err = catchErr(f);
      assert.is(err.code, code, `${what}: ${err.message}`);
      assert.ok(err.message.length > 20, what);
    }
    assert.is(fingerprint(c), base, 'cache unchanged after every rejected call');
  });

  t('full policy with a budget: exceeding the cap is E_BUDGET and changes nothing', () => {
    const rnd = prng(2), d = 16;
    const c = engine.createCache(geometry({ policy: 'full', budget: { tokens: 40 }, windowTokens: 8 }));
    c.append(0, randn(2 * 39 * d, rnd), randn(2 * 39 * d, rnd));
    const probe = randn(6 * d, rnd);
    const base = fingerprint(c);
    assert.is(catchErr(() => c.append(0, randn(2 * 2 * d, rnd), randn(2 * 2 * d, rnd))).code, 'E_BUDGET');
    assert.is(fingerprint(c), base);
    c.append(0, randn(2 * d, rnd), randn(2 * d, rnd));
    assert.is(c.stats().lanes[0].tokens, 40);
  });

  t('f32 tiers take values outside the f16 range; hadamard rotation keeps attention exact', () => {
    const rnd = prng(21), d = 16;
    const c = engine.createCache(geometry({ precision: 'f32', exactPrecision: 'f32', hadamard: true }));
    const K = randn(2 * 5 * d, rnd, 30000), V = randn(2 * 5 * d, rnd, 30000);
    c.append(0, K, V);
    const q = randn(6 * d, rnd, 1e-4);
    const out = c.attend(0, q);
    const ex = exactAttention(q, [K.subarray(0, 5 * d), K.subarray(5 * d)], [V.subarray(0, 5 * d), V.subarray(5 * d)], 6, 2, d, c.options.scale);
    assert.ok(relErr(out, ex) <= TOL_KERNEL, `rel err ${relErr(out, ex)}`);
  });

  t('hadamard on values lowers the int4 error when values have outlier channels; keys / values / both stay consistent', () => {
    const d = 64, T = 128, qh = 2;
    const errs = new Map<string, number>();
    for (const hadamard of [false, 'values', 'keys', true] as const) {
      const rnd = prng(77);
      const c = engine.createCache({ layers: 1, qHeads: qh, kvHeads: 1, headDim: d, precision: 'int4', hadamard, exactPrecision: 'f32', sinkTokens: 0, windowTokens: 0 });
      const K = randn(T * d, rnd), V = randn(T * d, rnd);
      for (let t2 = 0; t2 < T; t2++) { V[t2 * d + 3] *= 10; V[t2 * d + 40] *= 10; } // outlier value channels
      c.append(0, K, V);
      let num = 0, den = 0;
      for (let i = 0; i < 8; i++) {
        const q = randn(qh * d, rnd);
        const out = c.attend(0, q);
        const kerr = relErr(out, refAttend(c, 0, q).out);
        assert.ok(kerr <= tolKernel('int4'), `${hadamard}: kernel vs reference ${kerr}`);
        const ex = exactAttention(q, [K], [V], qh, 1, d, c.options.scale);
        for (let j = 0; j < out.length; j++) { num += (out[j] - ex[j]) ** 2; den += ex[j] ** 2; }
      }
      errs.set(String(hadamard), Math.sqrt(num / den));
      c.dispose();
    }
    assert.ok(errs.get('values')! < 0.9 * errs.get('false')!, `values rotated ${errs.get('values')} vs plain ${errs.get('false')}`);
  });

  t('running out of memory inside compression leaves every lane valid; later appends recover', () => {
    const d = 16;
    for (let failAt = 0; failAt < 6; failAt++) {
      for (const precision of ['f16', 'int4'] as const) {
        const rnd = prng(failAt);
        const c = engine.createCache(geometry({ policy: 'uniform', budget: { tokens: 60 }, precision, windowTokens: 8, slack: 8 }));
        c.append(0, randn(2 * 59 * d, rnd), randn(2 * 59 * d, rnd));
        const alloc = c.store.alloc.bind(c.store);
        let calls = 0;
        c.store.alloc = (f) => {
          if (calls++ === failAt) throw new EdgeKVError('E_OOM', 'test: no memory');
          return alloc(f);
        };
        // 40 tokens: over the cap, compression must allocate (tail rebuild, merges, migration).
        const err = (() => { try { c.append(0, randn(2 * 40 * d, rnd), randn(2 * 40 * d, rnd)); return null; } catch (e) { return e as EdgeKVError; } })();
        c.store.alloc = alloc;
        if (err) assert.is(err.code, 'E_OOM');
        for (const lane of [c.lane(0, 0), c.lane(0, 1)]) {
          const pos = c.store.readHeader(lane, 'pos');
          for (let i = 1; i < pos.length; i++) assert.ok(pos[i] > pos[i - 1], `failAt ${failAt}: positions ascending`);
          for (const tier of lane.tiers) assert.is(tier.entries, tier.counts.reduce((a, b) => a + b, 0));
        }
        const q = randn(6 * d, rnd);
        assert.ok(relErr(c.attend(0, q), refAttend(c, 0, q).out) <= tolKernel(precision), `failAt ${failAt} ${precision}: attention over the stored entries`);
        c.append(0, randn(2 * d, rnd), randn(2 * d, rnd));
        assert.ok(c.lane(0, 0).tokens <= 60, 'the next append compresses');
        const bytes = c.save();
        assert.ok(loadCache(engine, bytes).save().length === bytes.length, 'still a valid snapshot');
        c.dispose();
      }
    }
  });

  t('attend before any append is E_STATE; out and lse buffers are filled in place', () => {
    const rnd = prng(8), d = 16;
    const c = engine.createCache(geometry());
    assert.is(catchErr(() => c.attend(0, randn(6 * d, rnd))).code, 'E_STATE');
    c.append(0, randn(2 * 3 * d, rnd), randn(2 * 3 * d, rnd));
    const out = new Float32Array(6 * d), lse = new Float32Array(6);
    const r = c.attend(0, randn(6 * d, rnd), out, { lse });
    assert.ok(r === out);
    assert.ok(lse.every((x) => Number.isFinite(x) && x !== 0));
  });

  t.run();
}

const v = suite('cache options');

v('createCache validates every option', async () => {
  const { engine } = engines[0];
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['missing layers', { qHeads: 2, kvHeads: 1, headDim: 16 }, 'E_ARG'],
    ['qHeads not a multiple', { layers: 1, qHeads: 3, kvHeads: 2, headDim: 16 }, 'E_ARG'],
    ['headDim unsupported', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 48 }, 'E_UNSUPPORTED'],
    ['unknown option', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, windowSize: 3 }, 'E_ARG'],
    ['unknown policy', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, policy: 'h20', budget: { tokens: 64 } }, 'E_ARG'],
    ['unknown policy option', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, policy: { name: 'snapkv', windw: 3 }, budget: { tokens: 64 } }, 'E_ARG'],
    ['bad policy option', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, policy: { name: 'snapkv', kernel: 4 }, budget: { tokens: 64 } }, 'E_ARG'],
    ['unknown stage', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, policy: 'snapkv+nothing', budget: { tokens: 64 } }, 'E_ARG'],
    ['evicting policy without budget', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, policy: 'h2o' }, 'E_ARG'],
    ['budget below sinks + window', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, policy: 'h2o', budget: { tokens: 30 } }, 'E_BUDGET'],
    ['byte budget too small', { layers: 2, qHeads: 2, kvHeads: 1, headDim: 16, policy: 'h2o', budget: { bytes: 4000 } }, 'E_BUDGET'],
    ['budget both keys', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, budget: { tokens: 64, bytes: 5 } }, 'E_ARG'],
    ['budget zero', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, budget: { tokens: 0 } }, 'E_ARG'],
    ['precision unknown', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, precision: 'int3' }, 'E_ARG'],
    ['exactPrecision packed', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, exactPrecision: 'int8' }, 'E_ARG'],
    ['negative sinks', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, sinkTokens: -1 }, 'E_ARG'],
    ['window not integer', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, windowTokens: 2.5 }, 'E_ARG'],
    ['hadamard on 80', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 80, hadamard: true }, 'E_UNSUPPORTED'],
    ['hadamard not boolean', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, hadamard: 1 }, 'E_ARG'],
    ['planner unknown', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, planner: 'ada' }, 'E_ARG'],
    ['planner array wrong length', { layers: 2, qHeads: 2, kvHeads: 1, headDim: 16, planner: [64] }, 'E_SHAPE'],
    ['planner array with token budget', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, planner: [64], budget: { tokens: 64 } }, 'E_ARG'],
    ['planner array over byte budget', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, planner: [640], budget: { bytes: 1000 } }, 'E_BUDGET'],
    ['valueGroup not dividing', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, valueGroup: 24 }, 'E_ARG'],
    ['scale negative', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, scale: -1 }, 'E_ARG'],
    ['seed negative', { layers: 1, qHeads: 2, kvHeads: 1, headDim: 16, seed: -1 }, 'E_ARG'],
    ['options not object', 5 as never, 'E_ARG'],
  ];
  const before = engine.arena.bytesInUse;
  for (const [what, o, code] of cases) {
    const err = catchErr(() => engine.createCache(o as never));
    assert.is(err.code, code, `${what}: ${err.message}`);
  }
  assert.is(engine.arena.bytesInUse, before, 'rejected createCache allocates nothing');
});

v('defaults are documented values; policy defaults to full without budget and snapkv with one', () => {
  const { engine } = engines[0];
  const a = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: 80 });
  assert.is(a.options.policy.name, 'full');
  assert.is(a.options.precision, 'f16');
  assert.is(a.options.exactPrecision, 'f16');
  assert.is(a.options.sinkTokens, 4);
  assert.is(a.options.windowTokens, 32);
  assert.is(a.options.slack, 32);
  assert.is(a.options.valueGroup, 16);
  assert.ok(Math.abs(a.options.scale - 1 / Math.sqrt(80)) < 1e-12);
  const b = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: 64, budget: { tokens: 128 } });
  assert.is(b.options.policy.name, 'snapkv');
  assert.equal(b.options.policy, { name: 'snapkv', window: 32, kernel: 5, pooling: 'avg' });
  a.dispose(); b.dispose();
});

v.run();

// The walk kernel (assembly/kernels/walk.ts) against the float64 reference, SIMD against
// scalar, and the numerics the paper's formula lacks (large key norms).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine, type Engine } from '../../src/engine.ts';
import { resolveWalkParams, type WalkOptions } from '../../src/balancekv/params.ts';
import { walkKey, walkUniform, SplitRng } from '../../src/balancekv/rng.ts';
import { ReferenceWalker, literalWalkBlock, referenceGram, referenceWalkBlock, walkBlocks } from '../../src/balancekv/reference.ts';
import { WasmWalker, wasmExp, wasmGram, wasmUniforms } from '../../src/balancekv/walk.ts';
import { clusteredKV } from '../../src/balancekv/synthetic.ts';

const test = suite('balancekv walk kernel');

/** Relative error of the f32 exp polynomial against Math.exp. */
const EXP_REL_TOL = 4e-7;
/** Kernel-row exponents: f32 dots of centred keys, relative to the row's magnitude. */
const GRAM_REL_TOL = 2e-5;
/** Sizes around the kernel's tiles (4 lanes, 16-token unroll). */
const SIZES = [1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65];

let simd: Engine, scalar: Engine;
test.before(async () => {
  simd = await createEngine({ backend: 'wasm-simd' });
  scalar = await createEngine({ backend: 'wasm-scalar' });
});

function gaussian(n: number, d: number, seed: number, scale = 1): Float32Array {
  const r = new SplitRng(seed);
  const x = new Float32Array(n * d);
  for (let i = 0; i < x.length; i++) x[i] = r.normal() * scale;
  return x;
}

function seq(n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

test('uniforms: kernel and host draw the same 24-bit numbers', () => {
  for (const [seed, stream, a, b] of [[42, 0, 0, 0], [7, 3, 1, 0], [0xffffffff, 0x80000000, 5, 9]]) {
    const key = walkKey(seed, stream, a, b);
    for (const base of [0, 1000, 0x7ffffff0]) {
      const k = wasmUniforms(simd, key, base, 40);
      const s = wasmUniforms(scalar, key, base, 40);
      for (let i = 0; i < 40; i++) {
        const u = walkUniform(key, (base + i) >>> 0);
        assert.ok(u >= 0 && u < 1);
        assert.is(k[i], u, `simd u[${base + i}]`);
        assert.is(s[i], u, `scalar u[${base + i}]`);
      }
    }
  }
  // roughly uniform: mean and a 10-bin histogram over 20000 draws
  const key = walkKey(1, 2, 3, 4);
  const bins = new Array(10).fill(0);
  let mean = 0;
  for (let i = 0; i < 20000; i++) { const u = walkUniform(key, i); mean += u; bins[Math.floor(u * 10)]++; }
  assert.ok(Math.abs(mean / 20000 - 0.5) < 0.01);
  for (const b of bins) assert.ok(b > 1800 && b < 2200, `bin ${b}`);
});

test('exp polynomial: relative error < 4e-7 on [-87, 0], SIMD == scalar bit for bit', () => {
  const n = 1023;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = -87 * (i / (n - 1)) ** 1.5;
  x[5] = 0; x[6] = -1e30; x[7] = 3; // 3 is clamped to 0
  const a = wasmExp(simd, x), b = wasmExp(scalar, x);
  assert.equal(Array.from(a), Array.from(b));
  for (let i = 0; i < n; i++) {
    const want = Math.exp(Math.max(Math.min(x[i], 0), -87));
    assert.ok(Math.abs(a[i] - want) <= EXP_REL_TOL * want, `exp(${x[i]}) = ${a[i]} vs ${want}`);
  }
});

test('kernel rows (walkGram): SIMD == scalar bit for bit, both == float64 reference', () => {
  const d = 64;
  for (const n of SIZES) {
    for (const center of ['padded', 'real', 'none'] as const) {
      const p = resolveWalkParams({ blockSize: 66, center, temp: 0.7, c0: 0.03 });
      const keys = gaussian(n, d, n * 3 + 1, 2);
      const values = gaussian(n, d, n * 3 + 2);
      const w = new Float32Array(n).map((_, i) => (i % 3 === 0 ? 2 : 1));
      const s = wasmGram(simd, keys, values, d, w, n, p);
      const c = wasmGram(scalar, keys, values, d, w, n, p);
      assert.equal(Array.from(s.A), Array.from(c.A), `A n=${n} ${center}`);
      assert.equal(Array.from(s.W), Array.from(c.W), `W n=${n} ${center}`);
      const r = referenceGram(keys, values, d, seq(n), w, 66, p);
      let amax = 0, wmax = 0;
      for (let i = 0; i < n * n; i++) { amax = Math.max(amax, Math.abs(r.A[i])); wmax = Math.max(wmax, Math.abs(r.W[i])); }
      for (let i = 0; i < n * n; i++) {
        assert.ok(Math.abs(s.A[i] - r.A[i]) <= GRAM_REL_TOL * Math.max(amax, 1), `A[${i}] n=${n} ${center}: ${s.A[i]} vs ${r.A[i]}`);
        assert.ok(Math.abs(s.W[i] - r.W[i]) <= GRAM_REL_TOL * Math.max(wmax, 1), `W[${i}] n=${n} ${center}`);
      }
    }
  }
});

function walkAll(engine: Engine, kv: { keys: Float32Array; values: Float32Array; d: number }, n: number, opts: WalkOptions, rngKey: number, anchors: Uint8Array | null = null, weights: Float64Array | null = null) {
  const p = resolveWalkParams(opts);
  return new WasmWalker(engine).walkSigns(kv, { order: seq(n), weights, anchors, rngKey }, p);
}

function refAll(kv: { keys: Float32Array; values: Float32Array; d: number }, n: number, opts: WalkOptions, rngKey: number, anchors: Uint8Array | null = null, weights: Float64Array | null = null) {
  return new ReferenceWalker().walkSigns(kv, { order: seq(n), weights, anchors, rngKey }, resolveWalkParams(opts));
}

function agreement(a: Int8Array, b: Int8Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

test('walk signs: SIMD == scalar exactly, == float64 reference on well-conditioned inputs', () => {
  const d = 64;
  for (const n of [1, 2, 3, 7, 8, 9, 63, 64, 65, 200]) {
    const kv = clusteredKV({ n, d, seed: n });
    for (const opts of [{ blockSize: 64 }, { blockSize: 16, temp: 0.1 }, { blockSize: 64, center: 'real' as const, gamma: 0.5 }]) {
      const key = walkKey(42, n, 0, 0);
      const s = walkAll(simd, kv, n, opts, key);
      const c = walkAll(scalar, kv, n, opts, key);
      const r = refAll(kv, n, opts, key);
      assert.equal(Array.from(s.signs), Array.from(c.signs), `simd vs scalar n=${n} ${JSON.stringify(opts)}`);
      assert.is(s.saturated, c.saturated);
      assert.equal(Array.from(s.signs), Array.from(r.signs), `wasm vs reference n=${n} ${JSON.stringify(opts)}`);
      assert.is(s.saturated, r.saturated);
      assert.is(s.signs[0], 1, 'first sign of a block is +1');
      if (n > 64 && opts.blockSize === 64) assert.is(s.signs[64], 1, 'second block starts at +1');
    }
  }
});

test('walk with accumulated weights and beta: wasm == reference; scaled == literal formula where it is finite', () => {
  const d = 32, n = 96;
  const kv = clusteredKV({ n, d, seed: 5, offsetNorm: 3, clusterNorm: 2, noiseNorm: 1 });
  const weights = new Float64Array(n).map((_, i) => (i % 4 === 0 ? 1 : i % 4 === 1 ? 2 : 4));
  for (const opts of [{ blockSize: 32 }, { blockSize: 32, beta: 3.5 }, { blockSize: 32, beta: -2, gamma: 0.01 }, { blockSize: 32, beta: 'auto' as const }]) {
    const key = walkKey(9, 1, 2, 3);
    const s = walkAll(simd, kv, n, opts, key, null, weights);
    const r = refAll(kv, n, opts, key, null, weights);
    assert.equal(Array.from(s.signs), Array.from(r.signs), JSON.stringify(opts));
    const lit = walkBlocks(kv, { order: seq(n), weights, anchors: null, rngKey: key }, resolveWalkParams(opts), literalWalkBlock);
    assert.equal(Array.from(lit.signs), Array.from(r.signs), `literal ${JSON.stringify(opts)}`);
    assert.is(lit.saturated, r.saturated);
  }
});

test('large key norms (30-120): no NaN, WASM == reference, the literal formula overflows', () => {
  const d = 64, n = 128;
  for (const norm of [30, 60, 120]) {
    const kv = clusteredKV({ n, d, seed: norm, offsetNorm: norm, clusterNorm: norm / 2, noiseNorm: norm / 4, valueNorm: 3 });
    for (const opts of [{ blockSize: 128 }, { blockSize: 128, center: 'none' as const }, { blockSize: 64, beta: 'auto' as const }]) {
      const key = walkKey(3, norm, 0, 0);
      const s = walkAll(simd, kv, n, opts, key);
      const c = walkAll(scalar, kv, n, opts, key);
      const r = refAll(kv, n, opts, key);
      for (const x of s.signs) assert.ok(x === 1 || x === -1);
      assert.equal(Array.from(s.signs), Array.from(c.signs));
      assert.ok(agreement(s.signs, r.signs) === 1, `norm ${norm} ${JSON.stringify(opts)}: agreement ${agreement(s.signs, r.signs)}`);
    }
    // The formula as written: exp(<k,k'>/sqrt(d)) without centring overflows float64 at these norms.
    if (norm >= 120) {
      const p = resolveWalkParams({ blockSize: 128, center: 'none' });
      const lit = literalWalkBlock(kv.keys, kv.values, d, seq(n), null, null, 128, p, walkKey(3, norm, 0, 0), 0);
      const ref = referenceWalkBlock(kv.keys, kv.values, d, seq(n), null, null, 128, p, walkKey(3, norm, 0, 0), 0);
      assert.ok(agreement(lit.signs, ref.signs) < 1, 'the literal walk degenerates (Inf - Inf = NaN)');
    }
  }
});

test('gamma = 0 gives s_i = (u_i < 1/2): the repo\'s uniform halving', () => {
  const d = 16, n = 130;
  const kv = clusteredKV({ n, d, seed: 2 });
  const key = walkKey(1, 1, 1, 1);
  const s = walkAll(simd, kv, n, { gamma: 0, blockSize: 64 }, key);
  for (let i = 0; i < n; i++) {
    const want = i % 64 === 0 ? 1 : walkUniform(key, i) < 0.5 ? 1 : -1;
    assert.is(s.signs[i], want, `i=${i}`);
  }
  assert.is(s.saturated, 0);
});

test('anchors get sign 0 and are left out of every h_i; wasm == reference', () => {
  const d = 32, n = 100;
  const kv = clusteredKV({ n, d, seed: 11 });
  const anchors = new Uint8Array(n);
  for (const i of [0, 1, 17, 18, 19, 50, 99]) anchors[i] = 1;
  const key = walkKey(5, 0, 0, 0);
  const s = walkAll(simd, kv, n, { blockSize: 64 }, key, anchors);
  const c = walkAll(scalar, kv, n, { blockSize: 64 }, key, anchors);
  const r = refAll(kv, n, { blockSize: 64 }, key, anchors);
  assert.equal(Array.from(s.signs), Array.from(c.signs));
  assert.equal(Array.from(s.signs), Array.from(r.signs));
  for (let i = 0; i < n; i++) assert.is(s.signs[i] === 0, anchors[i] === 1, `i=${i}`);
  // Changing an anchor's key/value must not change any sign (it enters only the block mean,
  // which 'none' centring removes).
  const kv2 = { keys: kv.keys.slice(), values: kv.values.slice(), d };
  for (let c2 = 0; c2 < d; c2++) { kv2.keys[17 * d + c2] += 50; kv2.values[17 * d + c2] -= 9; }
  const a = walkAll(simd, kv, n, { blockSize: 64, center: 'none' }, key, anchors);
  const b = walkAll(simd, kv2, n, { blockSize: 64, center: 'none' }, key, anchors);
  assert.equal(Array.from(a.signs), Array.from(b.signs));
});

test('the walk balances: the signed kernel sum s^T G s is far below a random signing\'s (its trace)', () => {
  const d = 64, n = 128;
  const kv = clusteredKV({ n, d, seed: 21 });
  // temp 0.1 (single-layer study): at temp 1 these keys give a near-diagonal kernel and no
  // signing can go much below the trace.
  const p = resolveWalkParams({ blockSize: 128, temp: 0.1 });
  const g = referenceGram(kv.keys, kv.values, d, seq(n), null, 128, p);
  let m = -Infinity;
  for (let i = 0; i < n * n; i++) m = Math.max(m, g.A[i]);
  const G = (i: number, j: number): number => Math.exp(g.A[i * n + j] - m) * g.W[i * n + j];
  const disc = (s: Int8Array): number => {
    let t = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t += s[i] * s[j] * G(i, j);
    return t;
  };
  let trace = 0;
  for (let i = 0; i < n; i++) trace += G(i, i);
  for (let seed = 0; seed < 3; seed++) {
    const walk = refAll(kv, n, { temp: 0.1 }, walkKey(seed, 0, 0, 0)).signs;
    assert.ok(disc(walk) < 0.5 * trace, `walk ${disc(walk)} vs E[random] = trace ${trace}`);
  }
});

test('walkResident: rows scattered in WASM memory (page-like) give the same signs as plain arrays', () => {
  const d = 32, n = 150;
  const kv = clusteredKV({ n, d, seed: 31 });
  const p = resolveWalkParams({ blockSize: 64 });
  const key = walkKey(4, 4, 4, 4);
  // Store token t's key and value rows at slot perm[t] of two separate WASM buffers.
  const perm = Int32Array.from({ length: n }, (_, i) => (i * 37) % n);
  const kp = simd.arena.alloc(n * d * 4), vp = simd.arena.alloc(n * d * 4);
  try {
    const kv32 = simd.f32(kp, n * d), vv32 = simd.f32(vp, n * d);
    const keyAddr = new Uint32Array(n), valueAddr = new Uint32Array(n);
    for (let t = 0; t < n; t++) {
      kv32.set(kv.keys.subarray(t * d, t * d + d), perm[t] * d);
      vv32.set(kv.values.subarray(t * d, t * d + d), perm[t] * d);
      keyAddr[t] = kp + perm[t] * d * 4;
      valueAddr[t] = vp + perm[t] * d * 4;
    }
    const order = Int32Array.from({ length: n }, (_, i) => n - 1 - i);
    const weights = new Float64Array(n).map((_, i) => 1 + (i % 2));
    const w = new WasmWalker(simd);
    const a = w.walkResident({ keyAddr, valueAddr, d }, { order, weights, anchors: null, rngKey: key }, p);
    const b = w.walkSigns(kv, { order, weights, anchors: null, rngKey: key }, p);
    const r = new ReferenceWalker().walkSigns(kv, { order, weights, anchors: null, rngKey: key }, p);
    assert.equal(Array.from(a.signs), Array.from(b.signs));
    assert.equal(Array.from(a.signs), Array.from(r.signs));
  } finally {
    simd.arena.free(kp);
    simd.arena.free(vp);
  }
  // the walker gives back every arena block it took
  const before = simd.arena.bytesInUse;
  new WasmWalker(simd).walkSigns(kv, { order: seq(n), weights: null, anchors: null, rngKey: key }, p);
  assert.is(simd.arena.bytesInUse, before);
});

test.run();

// One-shot compression (T halvings), SoftmaxBalance, and the estimator against uniform sampling.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine, type Engine } from '../../src/engine.ts';
import { compressOneShot, halvingPass, resolveCompressor } from '../../src/balancekv/compress.ts';
import { keptAfter } from '../../src/balancekv/params.ts';
import { ReferenceWalker } from '../../src/balancekv/reference.ts';
import { walkKey } from '../../src/balancekv/rng.ts';
import { softmaxBalanceLogGamma, softmaxBalanceParams } from '../../src/balancekv/softmax-balance.ts';
import { clusteredKV, relativeAttentionError, uniformSample } from '../../src/balancekv/synthetic.ts';
import { WasmWalker } from '../../src/balancekv/walk.ts';

const test = suite('balancekv one-shot compression');

let engine: Engine, scalar: Engine;
test.before(async () => {
  engine = await createEngine({ backend: 'wasm-simd' });
  scalar = await createEngine({ backend: 'wasm-scalar' });
});

const range = (a: number, b: number): Int32Array => Int32Array.from({ length: b - a }, (_, i) => a + i);

test('T halvings keep floor^T(n/2) tokens with weights in {1..2^T}; WASM (SIMD, scalar) == reference', () => {
  const d = 32;
  for (const n of [1, 2, 3, 65, 300, 1023]) {
    const kv = clusteredKV({ n, d, seed: n });
    for (const T of [1, 2, 3]) {
      if (keptAfter(n, T) === 0) continue;
      const mid = range(0, n);
      const opts = { levels: T, blockSize: 64, seed: 7 };
      const a = compressOneShot(new WasmWalker(engine), kv, mid, opts);
      const b = compressOneShot(new WasmWalker(scalar), kv, mid, opts);
      const r = compressOneShot(new ReferenceWalker(), kv, mid, opts);
      assert.is(a.indices.length, keptAfter(n, T), `n=${n} T=${T}`);
      assert.equal(Array.from(a.indices), Array.from(b.indices));
      assert.equal(Array.from(a.indices), Array.from(r.indices), `wasm vs reference n=${n} T=${T}`);
      assert.equal(Array.from(a.weights), Array.from(r.weights));
      assert.is(new Set(a.indices).size, a.indices.length, 'no token kept twice');
      for (let k = 0; k < a.weights.length; k++) {
        const w = a.weights[k];
        assert.ok(Number.isInteger(Math.log2(w)) && w >= 1 && w <= 2 ** T, `weight ${w}`);
        assert.is(a.logWeights[k], Math.fround(Math.log(w)));
      }
    }
  }
});

test('each halving walks the previous survivors in their kept order (blocks re-cut), with ṽ = v * weight', () => {
  const d = 16, n = 400;
  const kv = clusteredKV({ n, d, seed: 3 });
  const s = resolveCompressor({ blockSize: 32, seed: 11 });
  const w = new ReferenceWalker();
  let order: Int32Array = range(0, n), weights: Float64Array = new Float64Array(n).fill(1);
  for (let t = 0; t < 3; t++) {
    const r = halvingPass(w, kv, order, weights, null, s, walkKey(11, 0, t, 0));
    order = r.order; weights = r.weights;
  }
  const one = compressOneShot(w, kv, range(0, n), { levels: 3, blockSize: 32, seed: 11 });
  assert.equal(Array.from(one.indices), Array.from(order));
  assert.equal(Array.from(one.weights), Array.from(weights));
  // Weight-2 survivors come from the prefix [0..c] and the weight-1 ones from the tail after
  // c, so the kept order of the prefix rule is position order at every level.
  for (let k = 1; k < one.indices.length; k++) assert.ok(one.indices[k] > one.indices[k - 1]);
});

test('seeded and deterministic: same seed same result; the seed matters only where p is not saturated', () => {
  const d = 32, n = 512;
  const kv = clusteredKV({ n, d, seed: 9 });
  const w = new WasmWalker(engine);
  const run = (o: object) => Array.from(compressOneShot(w, kv, range(0, n), { levels: 2, ...o }).indices);
  assert.equal(run({ seed: 1 }), run({ seed: 1 }));
  // gamma = 4 on the unnormalised kernel saturates almost every step: the walk is greedy and
  // (nearly) seed-independent, as in the authors' code.
  const sat = compressOneShot(w, kv, range(0, n), { levels: 2, seed: 1 });
  assert.ok(sat.saturated > 0.95 * (n / 2 + n / 4), `saturated ${sat.saturated}`);
  // A small gamma leaves room for the coin: other seeds and streams give other samples.
  assert.not.equal(run({ seed: 1, gamma: 0.001 }), run({ seed: 2, gamma: 0.001 }));
  assert.not.equal(run({ seed: 1, gamma: 0.001 }), run({ seed: 1, stream: 5, gamma: 0.001 }));
});

test('massCorrection: weights of every halving sum to the weight they replace', () => {
  const d = 16, n = 777;
  const kv = clusteredKV({ n, d, seed: 4 });
  const r = compressOneShot(new WasmWalker(engine), kv, range(0, n), { levels: 3, massCorrection: true, gamma: 0 });
  const sum = r.weights.reduce((x, y) => x + y, 0);
  assert.ok(Math.abs(sum - n) < 1e-9 * n, `sum ${sum}`);
  const plain = compressOneShot(new WasmWalker(engine), kv, range(0, n), { levels: 3, gamma: 0 });
  assert.ok(plain.weights.reduce((x, y) => x + y, 0) <= n, 'the code\'s rule never gains mass');
});

test('estimator: lower attention-output error than uniform sampling at the same kept count (paired, 6 seeds)', () => {
  const d = 32, n = 1024;
  const w = new WasmWalker(engine);
  for (const T of [1, 2, 3]) {
    let wins = 0, eb = 0, eu = 0;
    for (let seed = 0; seed < 6; seed++) {
      const kv = clusteredKV({ n, d, seed: 50 + seed, queryNorm: 4, valueNoise: 1, queries: 16 });
      const mid = range(0, n);
      const r = compressOneShot(w, kv, mid, { levels: T, seed });
      const u = uniformSample(mid, r.indices.length, seed, 2 ** T);
      const a = relativeAttentionError(kv, r.indices, r.logWeights);
      const b = relativeAttentionError(kv, u.indices, u.weights.map(Math.log));
      eb += a; eu += b;
      if (a < b) wins++;
    }
    assert.ok(eb < 0.9 * eu, `T=${T}: balancekv ${eb / 6} vs uniform ${eu / 6}`);
    assert.ok(wins >= 5, `T=${T}: ${wins}/6 wins`);
  }
});

test('softmax-balance: theoretical gamma ~ 0 (uniform-like walk), never FAILs, keeps the smaller class', () => {
  const d = 32, n = 600;
  const kv = clusteredKV({ n, d, seed: 12 });
  // key norm ~ 13.7 at d = 32: R^2 = e^{r^2/sqrt(d)} ... gamma below 1e-14
  assert.ok(softmaxBalanceLogGamma(13.7, 3, 128, d, 1, 0.025, 0.01) < Math.log(1e-14));
  const r = compressOneShot(new WasmWalker(engine), kv, range(0, n), { levels: 2, algorithm: 'softmax-balance' });
  const ref = compressOneShot(new ReferenceWalker(), kv, range(0, n), { levels: 2, algorithm: 'softmax-balance' });
  assert.equal(Array.from(r.indices), Array.from(ref.indices));
  assert.is(r.failed, false);
  assert.is(r.saturated, 0);
  assert.ok(r.indices.length <= keptAfter(n, 2));
  for (const x of r.weights) assert.is(x, 4);
  // With the theory's gamma the signs are those of gamma = 0 (p = 1/2 to 1e-14).
  const base = resolveCompressor({}).walk;
  const p = softmaxBalanceParams(base, 14, 3, d, 0.01);
  const req = { order: range(0, 256), weights: null, anchors: null, rngKey: walkKey(1, 2, 3, 4) };
  const theory = new WasmWalker(engine).walkSigns(kv, req, p);
  const random = new WasmWalker(engine).walkSigns(kv, req, { ...p, gamma: 0, logGamma: -Infinity });
  assert.equal(Array.from(theory.signs), Array.from(random.signs));
});

test.run();

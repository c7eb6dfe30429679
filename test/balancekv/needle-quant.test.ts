// Needle anchors (outlier-anchored keep) and low-bit samples.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine, type Engine } from '../../src/engine.ts';
import { compressOneShot } from '../../src/balancekv/compress.ts';
import { needleAnchors } from '../../src/balancekv/needle.ts';
import { fakeQuantize } from '../../src/balancekv/quantized.ts';
import { SplitRng } from '../../src/balancekv/rng.ts';
import { BalanceKVLane } from '../../src/balancekv/streaming.ts';
import { clusteredKV, relativeAttentionError } from '../../src/balancekv/synthetic.ts';
import { WasmWalker } from '../../src/balancekv/walk.ts';
import { ReferenceWalker } from '../../src/balancekv/reference.ts';

const test = suite('balancekv needle anchors and low-bit samples');

let engine: Engine;
test.before(async () => { engine = await createEngine(); });

const range = (a: number, b: number): Int32Array => Int32Array.from({ length: b - a }, (_, i) => a + i);

/** The code's mask, transcribed: padded blocks, (1e-8 + K K^T).sum(-1)/B > 0, then a 51-wide all-normal window. */
function codeAnchors(keys: Float32Array, n: number, d: number, B: number, radius: number): number[] {
  const nb = Math.ceil(n / B);
  const normal: number[] = [];
  for (let b = 0; b < nb; b++) {
    for (let i = 0; i < B; i++) {
      const gi = b * B + i;
      let s = 0;
      for (let j = 0; j < B; j++) {
        const gj = b * B + j;
        let ip = 0;
        for (let c = 0; c < d; c++) ip += (gi < n ? keys[gi * d + c] : 0) * (gj < n ? keys[gj * d + c] : 0);
        s += 1e-8 + ip;
      }
      normal.push(s / B > 0 ? 1 : 0);
    }
  }
  const m = normal.slice(0, n);
  const padded = [...new Array(radius).fill(1), ...m, ...new Array(radius).fill(1)];
  return m.map((x, i) => {
    let sum = 0;
    for (let k = 0; k <= 2 * radius; k++) sum += padded[i + k];
    return sum > 2 * radius && x ? 0 : 1;
  });
}

function plantedKeys(n: number, d: number, needles: number[], seed: number): Float32Array {
  const rng = new SplitRng(seed);
  const keys = new Float32Array(n * d);
  for (let t = 0; t < n; t++) for (let c = 0; c < d; c++) keys[t * d + c] = 1 + 0.5 * rng.normal();
  for (const p of needles) for (let c = 0; c < d; c++) keys[p * d + c] = -2 + 0.1 * rng.normal();
  return keys;
}

test('needleAnchors == the code\'s mask (padded blocks, ±radius window)', () => {
  const d = 8;
  for (const [n, B, r] of [[1, 4, 25], [50, 16, 25], [130, 64, 25], [300, 64, 3], [97, 32, 0]]) {
    const rng = new SplitRng(n);
    const keys = new Float32Array(n * d);
    for (let i = 0; i < keys.length; i++) keys[i] = 0.3 + rng.normal();
    assert.equal(Array.from(needleAnchors(keys, n, d, B, r)), codeAnchors(keys, n, d, B, r), `n=${n} B=${B} r=${r}`);
  }
});

test('a planted anti-correlated needle anchors exactly its ±25 neighbourhood, kept with weight 1', () => {
  const d = 16, n = 1000;
  const keys = plantedKeys(n, d, [400], 1);
  const anchors = needleAnchors(keys, n, d, 128);
  for (let i = 0; i < n; i++) assert.is(anchors[i], Math.abs(i - 400) <= 25 ? 1 : 0, `i=${i}`);
  const values = clusteredKV({ n, d, seed: 1 }).values;
  for (const rule of ['prefix', 'code'] as const) {
    const r = compressOneShot(new WasmWalker(engine), { keys, values, d }, range(0, n), { levels: 3, anchors, anchorRule: rule });
    for (let p = 375; p <= 425; p++) {
      const k = Array.from(r.indices).indexOf(p);
      assert.ok(k >= 0, `${rule}: anchor ${p} kept`);
      assert.is(r.weights[k], 1);
    }
    if (rule === 'prefix') assert.is(r.indices.length, 125);
    else assert.ok(r.indices.length <= 125);
    const ref = compressOneShot(new ReferenceWalker(), { keys, values, d }, range(0, n), { levels: 3, anchors, anchorRule: rule });
    assert.equal(Array.from(r.indices), Array.from(ref.indices));
  }
});

test('needle lanes: prefill keeps the neighbourhood exactly; stream keeps it within its level-0 block', () => {
  const d = 16, n = 1200;
  const keys = plantedKeys(n, d, [600], 2);
  const values = clusteredKV({ n, d, seed: 2 }).values;
  for (const mode of ['prefill', 'stream'] as const) {
    const lane = new BalanceKVLane(new WasmWalker(engine), { headDim: d, mode, levels: 2, blockSize: 128, needle: true });
    lane.prefill(keys, values);
    const e = lane.entries();
    for (let p = 575; p <= 625; p++) {
      const i = Array.from(e.positions).indexOf(p);
      assert.ok(i >= 0, `${mode}: ${p} kept`);
      assert.is(e.logWeights[i], 0);
    }
    const plain = new BalanceKVLane(new WasmWalker(engine), { headDim: d, mode, levels: 2, blockSize: 128 });
    plain.prefill(keys, values);
    const kept = Array.from(plain.entries().positions).filter((p) => p >= 575 && p <= 625).length;
    assert.ok(kept < 40, `${mode}: without anchors only ${kept} of 51 survive`);
  }
  // precomputed anchors (the code computes them at layer 1 and reuses them deeper)
  const mid = needleAnchors(keys.subarray(32 * d, (n - 32) * d), n - 64, d, 128);
  const lane = new BalanceKVLane(new WasmWalker(engine), { headDim: d, mode: 'prefill', levels: 2, needle: { anchors: mid } });
  lane.prefill(keys, values);
  assert.ok(Array.from(lane.entries().positions).includes(600));
});

test('fakeQuantize: WASM kernels == float64 reference (to one code), error <= half a step', () => {
  const d = 64, n = 77;
  const kv = clusteredKV({ n, d, seed: 3 });
  for (const bits of [8, 4] as const) {
    const a = fakeQuantize(engine, kv.keys, kv.values, range(0, n), d, bits, 32);
    const b = fakeQuantize(null, kv.keys, kv.values, range(0, n), d, bits, 32);
    let keyRange = 0, valRange = 0;
    for (let t0 = 0; t0 < n; t0 += 32) for (let c = 0; c < d; c++) {
      let mn = Infinity, mx = -Infinity;
      for (let t = t0; t < Math.min(n, t0 + 32); t++) { mn = Math.min(mn, kv.keys[t * d + c]); mx = Math.max(mx, kv.keys[t * d + c]); }
      keyRange = Math.max(keyRange, mx - mn);
    }
    for (let t = 0; t < n; t++) for (let g = 0; g < 2; g++) {
      let mn = Infinity, mx = -Infinity;
      for (let c = g * 32; c < g * 32 + 32; c++) { mn = Math.min(mn, kv.values[t * d + c]); mx = Math.max(mx, kv.values[t * d + c]); }
      valRange = Math.max(valRange, mx - mn);
    }
    const kStep = (keyRange / (2 ** bits - 1)) * 1.01, vStep = (valRange / (2 ** bits - 1)) * 1.01;
    for (let i = 0; i < n * d; i++) {
      assert.ok(Math.abs(a.keys[i] - b.keys[i]) <= kStep + 1e-6, `key ${i}`);
      assert.ok(Math.abs(a.values[i] - b.values[i]) <= vStep + 1e-6, `value ${i}`);
      assert.ok(Math.abs(a.keys[i] - kv.keys[i]) <= kStep / 2 + 1e-3, `key error ${i}`);
      assert.ok(Math.abs(a.values[i] - kv.values[i]) <= vStep / 2 + 1e-3, `value error ${i}`);
    }
  }
});

test('low-bit lanes: the walk sees the dequantized samples it stores; 8-bit error ~ f32 error', () => {
  const d = 32, n = 1000, S = 16, W = 32;
  const kv = clusteredKV({ n, d, seed: 5, queryNorm: 4, valueNoise: 1, queries: 16 });
  const errs: Record<number, number> = {};
  for (const bits of [32, 8, 4] as const) {
    const lane = new BalanceKVLane(new WasmWalker(engine), { headDim: d, mode: 'prefill', levels: 2, blockSize: 64, sinkTokens: S, windowTokens: W, sampleBits: bits }, engine);
    lane.prefill(kv.keys, kv.values);
    const e = lane.entries();
    errs[bits] = relativeAttentionError(kv, range(0, e.count), e.logWeights, e);
    if (bits === 32) continue;
    const q = fakeQuantize(engine, kv.keys, kv.values, range(S, n - W), d, bits, 32);
    const k2 = kv.keys.slice(), v2 = kv.values.slice();
    k2.set(q.keys, S * d); v2.set(q.values, S * d);
    const want = compressOneShot(new WasmWalker(engine), { keys: k2, values: v2, d }, range(S, n - W), { levels: 2, blockSize: 64 });
    const comp = e.positions.subarray(S, S + e.tiers.compressed);
    assert.equal(Array.from(comp), Array.from(want.indices), `${bits}-bit: same survivors as a walk over the dequantized rows`);
    for (let k = 0; k < comp.length; k++) {
      for (let c = 0; c < d; c++) {
        assert.is(e.keys[(S + k) * d + c], k2[comp[k] * d + c]);
        assert.is(e.values[(S + k) * d + c], v2[comp[k] * d + c]);
      }
    }
    // sinks and window stay exact
    for (let c = 0; c < d; c++) assert.is(e.keys[c], kv.keys[c]);
  }
  assert.ok(errs[8] < errs[32] * 1.1 + 0.005, `8-bit ${errs[8]} vs f32 ${errs[32]}`);
  assert.ok(Number.isFinite(errs[4]) && errs[4] < 1, `4-bit ${errs[4]}`);
});

test.run();

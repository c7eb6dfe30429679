// BalanceKVLane: merge-and-reduce streaming and one-shot prefill over plain arrays.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine, type Engine } from '../../src/engine.ts';
import { EdgeKVError } from '../../src/errors.ts';
import { compressOneShot } from '../../src/balancekv/compress.ts';
import { ReferenceWalker } from '../../src/balancekv/reference.ts';
import { BalanceKVLane, levelsForBudget } from '../../src/balancekv/streaming.ts';
import { clusteredKV, relativeAttentionError, uniformSample } from '../../src/balancekv/synthetic.ts';
import { WasmWalker } from '../../src/balancekv/walk.ts';

const test = suite('balancekv lane (stream / prefill)');

let engine: Engine;
test.before(async () => { engine = await createEngine(); });

const range = (a: number, b: number): Int32Array => Int32Array.from({ length: b - a }, (_, i) => a + i);

function feed(lane: BalanceKVLane, kv: { keys: Float32Array; values: Float32Array; d: number }, from: number, to: number, chunk: number, check?: () => void): void {
  const d = kv.d;
  for (let t = from; t < to; t += chunk) {
    const e = Math.min(to, t + chunk);
    lane.append(kv.keys.subarray(t * d, e * d), kv.values.subarray(t * d, e * d));
    check?.();
  }
}

test('stream: memory stays within sinks + window + T*(B-1) + n_mid/2^T after every append', () => {
  const d = 16, n = 5000;
  const kv = clusteredKV({ n, d, seed: 1 });
  for (const [T, B] of [[1, 16], [3, 32], [5, 8]]) {
    const lane = new BalanceKVLane(new WasmWalker(engine), { headDim: d, levels: T, blockSize: B, sinkTokens: 4, windowTokens: 16 });
    feed(lane, kv, 0, n, 37, () => assert.ok(lane.size <= lane.memoryBound(lane.tokensSeen), `T=${T} B=${B} size ${lane.size} > ${lane.memoryBound(lane.tokensSeen)} at ${lane.tokensSeen}`));
    const e = lane.entries();
    assert.is(e.count, lane.size);
    assert.is(e.tiers.sinks, 4);
    assert.is(e.tiers.window, 16);
    const mid = n - 20;
    // the top level holds exactly (B/2^T) per B*... : every full level-0 block yields B/2^T top entries
    const fullBlocks = Math.floor(mid / B);
    assert.ok(e.tiers.compressed >= Math.floor((fullBlocks * B) / 2 ** T) - T * B, 'top level is about n/2^T');
    assert.ok(lane.peakSize <= lane.memoryBound(n));
  }
});

test('stream: entries carry positions and log-weights: sinks and window exact, samples ln w, no token twice', () => {
  const d = 16, n = 1000;
  const kv = clusteredKV({ n, d, seed: 2 });
  const lane = new BalanceKVLane(new WasmWalker(engine), { headDim: d, levels: 2, blockSize: 32, sinkTokens: 8, windowTokens: 24 });
  feed(lane, kv, 0, n, 100);
  const e = lane.entries();
  const pos = Array.from(e.positions);
  assert.is(new Set(pos).size, pos.length);
  assert.equal(pos.slice(0, 8), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(pos.slice(-24), Array.from(range(n - 24, n)));
  for (let i = 0; i < e.count; i++) {
    const p = e.positions[i];
    // stored rows are the original rows
    for (let c = 0; c < d; c++) assert.is(e.keys[i * d + c], kv.keys[p * d + c]);
    const lw = e.logWeights[i];
    if (i < 8 || i >= e.count - 24) assert.is(lw, 0);
    else assert.ok([0, 1, 2].some((k) => Math.abs(lw - Math.log(2 ** k)) < 1e-6), `log-weight ${lw}`);
  }
});

test('stream: WASM walker == reference walker; appending in chunks == one by one', () => {
  const d = 16, n = 700;
  const kv = clusteredKV({ n, d, seed: 3 });
  const opts = { headDim: d, levels: 3, blockSize: 16, sinkTokens: 2, windowTokens: 8 };
  const a = new BalanceKVLane(new WasmWalker(engine), opts);
  const b = new BalanceKVLane(new ReferenceWalker(), opts);
  feed(a, kv, 0, n, 1);
  feed(b, kv, 0, n, 250);
  assert.equal(Array.from(a.entries().positions), Array.from(b.entries().positions));
  assert.equal(Array.from(a.entries().logWeights), Array.from(b.entries().logWeights));
});

test('prefill: sinks + T halvings of the middle + window; later tokens stay exact', () => {
  const d = 16, n = 900;
  const kv = clusteredKV({ n, d, seed: 4 });
  const lane = new BalanceKVLane(new WasmWalker(engine), { headDim: d, mode: 'prefill', ratio: 1 / 4, blockSize: 32, sinkTokens: 16, windowTokens: 32 });
  lane.prefill(kv.keys.subarray(0, 800 * d), kv.values.subarray(0, 800 * d));
  const one = compressOneShot(new WasmWalker(engine), kv, range(16, 800 - 32), { levels: 2, blockSize: 32 });
  let e = lane.entries();
  assert.is(e.tiers.sinks, 16);
  assert.is(e.tiers.window, 32);
  assert.equal(Array.from(e.positions.subarray(16, 16 + e.tiers.compressed)), Array.from(one.indices));
  assert.equal(Array.from(e.logWeights.subarray(16, 16 + e.tiers.compressed)), Array.from(one.logWeights));
  feed(lane, { keys: kv.keys, values: kv.values, d }, 800, n, 7);
  e = lane.entries();
  assert.is(e.tiers.residual, 100);
  assert.is(e.count, 16 + one.indices.length + 100 + 32);
  assert.throws(() => lane.prefill(kv.keys.subarray(0, d), kv.values.subarray(0, d)), (x: unknown) => x instanceof EdgeKVError && x.code === 'E_STATE');
});

test('estimator: stream and prefill lanes beat uniform sampling with identical sinks, window and kept count', () => {
  const d = 32, n = 1200, S = 16, W = 32;
  for (const mode of ['stream', 'prefill'] as const) {
    let wins = 0, eb = 0, eu = 0;
    for (let seed = 0; seed < 5; seed++) {
      const kv = clusteredKV({ n, d, seed: 70 + seed, queryNorm: 4, valueNoise: 1, queries: 16 });
      const lane = new BalanceKVLane(new WasmWalker(engine), { headDim: d, mode, levels: 2, blockSize: 64, sinkTokens: S, windowTokens: W, seed });
      lane.prefill(kv.keys, kv.values);
      const e = lane.entries();
      const rows = e.positions;
      const a = relativeAttentionError(kv, rows, e.logWeights);
      // uniform: same sinks and window, same number of middle entries, weight n_mid / kept
      const u = uniformSample(range(S, n - W), e.tiers.compressed, seed);
      const urows = Int32Array.from([...range(0, S), ...u.indices, ...range(n - W, n)]);
      const ulw = Float64Array.from([...new Array(S).fill(0), ...u.weights.map(Math.log), ...new Array(W).fill(0)]);
      const b = relativeAttentionError(kv, urows, ulw);
      eb += a; eu += b;
      if (a < b) wins++;
    }
    assert.ok(eb < eu, `${mode}: balancekv ${eb / 5} vs uniform ${eu / 5}`);
    assert.ok(wins >= 4, `${mode}: ${wins}/5`);
  }
});

test('levelsForBudget: smallest T that fits; E_BUDGET naming budgetTokens when sinks + window do not fit', () => {
  assert.is(levelsForBudget({ tokens: 4096, budgetTokens: 1088, mode: 'prefill' }), 2);
  assert.is(levelsForBudget({ tokens: 4096, budgetTokens: 1071, mode: 'prefill' }), 3);
  assert.is(levelsForBudget({ tokens: 4096, budgetTokens: 64 + 3 * 127 + 504, mode: 'stream' }), 3);
  for (const bad of [{ tokens: 100, budgetTokens: 64 }, { tokens: 100, budgetTokens: 10, sinkTokens: 8, windowTokens: 8 }]) {
    try {
      levelsForBudget(bad);
      assert.unreachable();
    } catch (x) {
      assert.instance(x, EdgeKVError);
      assert.is((x as EdgeKVError).code, 'E_BUDGET');
      assert.is((x as EdgeKVError).argument, 'options.budgetTokens');
    }
  }
  assert.throws(() => levelsForBudget({ tokens: 1 << 20, budgetTokens: 65, mode: 'stream' }), (x: unknown) => x instanceof EdgeKVError && x.code === 'E_BUDGET');
});

test.run();

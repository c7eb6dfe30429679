// Bad input: every public entry point throws an EdgeKVError naming the parameter, and a
// rejected call changes nothing.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine, type Engine } from '../../src/engine.ts';
import { EdgeKVError } from '../../src/errors.ts';
import { compressOneShot } from '../../src/balancekv/compress.ts';
import { levelsForRatio, resolveWalkParams } from '../../src/balancekv/params.ts';
import { BalanceKVLane } from '../../src/balancekv/streaming.ts';
import { clusteredKV } from '../../src/balancekv/synthetic.ts';
import { WasmWalker } from '../../src/balancekv/walk.ts';

const test = suite('balancekv bad input');

let engine: Engine;
test.before(async () => { engine = await createEngine(); });

function expectError(fn: () => unknown, argument: string, code = 'E_ARG'): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, EdgeKVError, `${argument}: ${e}`);
    const x = e as EdgeKVError;
    assert.is(x.code, code, `${argument}: ${x.message}`);
    assert.ok(x.argument === argument || x.message.includes(argument), `expected ${argument}, got ${x.argument}: ${x.message}`);
    return;
  }
  assert.unreachable(`${argument}: no error`);
}

const range = (a: number, b: number): Int32Array => Int32Array.from({ length: b - a }, (_, i) => a + i);

test('walk parameters: gamma < 0, temp <= 0 / non-finite, B < 2 or odd or too large, beta, c0, center', () => {
  const bad: Array<[object, string]> = [
    [{ gamma: -1 }, 'options.gamma'], [{ gamma: NaN }, 'options.gamma'], [{ gamma: Infinity }, 'options.gamma'],
    [{ temp: 0 }, 'options.temp'], [{ temp: -0.1 }, 'options.temp'], [{ temp: Infinity }, 'options.temp'], [{ temp: NaN }, 'options.temp'],
    [{ blockSize: 1 }, 'options.blockSize'], [{ blockSize: 0 }, 'options.blockSize'], [{ blockSize: 127 }, 'options.blockSize'],
    [{ blockSize: 8192 }, 'options.blockSize'], [{ blockSize: 12.5 }, 'options.blockSize'],
    [{ beta: 'max' }, 'options.beta'], [{ beta: Infinity }, 'options.beta'],
    [{ c0: -0.1 }, 'options.c0'], [{ center: 'mean' }, 'options.center'], [{ massCorrection: 1 }, 'options.massCorrection'],
  ];
  for (const [o, name] of bad) expectError(() => resolveWalkParams(o as never), name);
  // the defaults of the code
  const p = resolveWalkParams();
  assert.equal([p.gamma, p.temp, p.beta, p.blockSize, p.center], [4, 1, 0, 128, 'padded']);
  assert.ok(Math.abs(p.c0 - 0.02500001) < 1e-12);
});

test('levels / ratio: T such that nothing would remain, ratios that are not 2^-T', () => {
  for (const r of [0, 1, 0.3, -0.5, NaN, 2 ** -25]) expectError(() => levelsForRatio(r), 'ratio');
  assert.is(levelsForRatio(1 / 16), 4);
  const kv = clusteredKV({ n: 40, d: 8, seed: 1 });
  const w = new WasmWalker(engine);
  expectError(() => compressOneShot(w, kv, range(0, 40), { levels: 6 }), 'options.levels', 'E_BUDGET');
  expectError(() => compressOneShot(w, kv, range(0, 40), { levels: 0 }), 'options.levels');
  expectError(() => compressOneShot(w, kv, range(0, 40), { levels: 25 }), 'options.levels');
  assert.is(compressOneShot(w, kv, range(0, 40), { levels: 5 }).indices.length, 1);
});

test('compressOneShot: shapes, non-finite input, indices, unknown options, anchors', () => {
  const kv = clusteredKV({ n: 64, d: 8, seed: 1 });
  const w = new WasmWalker(engine);
  const ok = { levels: 1 };
  expectError(() => compressOneShot(w, { ...kv, d: 0 }, range(0, 64), ok), 'input.d');
  expectError(() => compressOneShot(w, { ...kv, values: kv.values.subarray(1) }, range(0, 64), ok), 'input.values', 'E_SHAPE');
  const nan = kv.keys.slice(); nan[17] = NaN;
  expectError(() => compressOneShot(w, { ...kv, keys: nan }, range(0, 64), ok), 'input.keys', 'E_NONFINITE');
  expectError(() => compressOneShot(w, kv, Int32Array.from([0, 64]), ok), 'middle[1]');
  expectError(() => compressOneShot(w, kv, [0, 1] as never, ok), 'middle');
  expectError(() => compressOneShot(w, kv, range(0, 64), { levels: 1, gama: 3 } as never), 'options.gama');
  expectError(() => compressOneShot(w, kv, range(0, 64), { levels: 1, anchors: new Uint8Array(3) }), 'options.anchors', 'E_SHAPE');
  expectError(() => compressOneShot(w, kv, range(0, 64), { levels: 1, algorithm: 'greedy' as never }), 'options.algorithm');
  expectError(() => compressOneShot(w, kv, range(0, 64), { levels: 1, delta: 0 }), 'options.delta');
  expectError(() => compressOneShot(w, kv, range(0, 64), { levels: 1, seed: -1 }), 'options.seed');
});

test('lane options: headDim, sinks, window, levels and ratio together, mode, sampleBits geometry, needle', () => {
  const w = new WasmWalker(engine);
  const bad: Array<[object, string]> = [
    [{}, 'options.headDim'], [{ headDim: 0 }, 'options.headDim'], [{ headDim: 16, sinkTokens: -1 }, 'options.sinkTokens'],
    [{ headDim: 16, windowTokens: 1.5 }, 'options.windowTokens'], [{ headDim: 16, levels: 2, ratio: 0.25 }, 'options.ratio'],
    [{ headDim: 16, levels: 0 }, 'options.levels'], [{ headDim: 16, ratio: 0.3 }, 'options.ratio'], [{ headDim: 16, mode: 'batch' }, 'options.mode'],
    [{ headDim: 16, sampleBits: 2 }, 'options.sampleBits'], [{ headDim: 12, sampleBits: 8 }, 'options.headDim'],
    [{ headDim: 16, sampleBits: 8, valueGroup: 6 }, 'options.valueGroup'], [{ headDim: 16, needle: { radius: -2 } }, 'options.needle.radius'],
    [{ headDim: 16, needle: { anchors: new Uint8Array(4) } }, 'options.needle.anchors'],
    [{ headDim: 16, needle: true, algorithm: 'softmax-balance' }, 'options.algorithm'], [{ headDim: 16, gamma: -1 }, 'options.gamma'],
    [{ headDim: 16, windowTokns: 3 }, 'options.windowTokns'],
  ];
  for (const [o, name] of bad) expectError(() => new BalanceKVLane(w, o as never), name);
  expectError(() => new BalanceKVLane({} as never, { headDim: 16 }), 'walker');
});

test('a rejected append / prefill changes nothing', () => {
  const d = 16;
  const kv = clusteredKV({ n: 300, d, seed: 2 });
  const lane = new BalanceKVLane(new WasmWalker(engine), { headDim: d, levels: 2, blockSize: 16, sinkTokens: 4, windowTokens: 8, sampleBits: 8 }, engine);
  lane.append(kv.keys.subarray(0, 200 * d), kv.values.subarray(0, 200 * d));
  const before = lane.entries();
  const bad = kv.keys.slice(200 * d, 300 * d); bad[5 * d + 3] = Infinity;
  expectError(() => lane.append(bad, kv.values.subarray(200 * d, 300 * d)), 'keys', 'E_NONFINITE');
  const huge = kv.values.slice(200 * d, 300 * d); huge[99 * d] = 1e6;
  expectError(() => lane.append(kv.keys.subarray(200 * d, 300 * d), huge), 'values[1584]');
  expectError(() => lane.append(kv.keys.subarray(0, 7), kv.values.subarray(0, 7)), 'keys', 'E_SHAPE');
  expectError(() => lane.append(kv.keys.subarray(0, 2 * d), kv.values.subarray(0, 2 * d), new Int32Array(3)), 'positions', 'E_SHAPE');
  const after = lane.entries();
  assert.is(lane.tokensSeen, 200);
  assert.equal(Array.from(after.positions), Array.from(before.positions));
  assert.equal(Array.from(after.keys), Array.from(before.keys));
  // prefill mode: too many levels for the middle -> E_BUDGET, lane still empty and usable
  const p = new BalanceKVLane(new WasmWalker(engine), { headDim: d, mode: 'prefill', levels: 8, sinkTokens: 4, windowTokens: 8 });
  expectError(() => p.prefill(kv.keys.subarray(0, 100 * d), kv.values.subarray(0, 100 * d)), 'options.levels', 'E_BUDGET');
  assert.is(p.size, 0);
  p.prefill(kv.keys.subarray(0, 300 * d), kv.values.subarray(0, 300 * d));
  assert.is(p.entries().tiers.compressed, 1);
});

test.run();

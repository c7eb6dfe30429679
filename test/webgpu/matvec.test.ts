/**
 * WebGPU f16 matvec against a float64 reference: one matrix at tile edges and odd column
 * counts, groups of matrices sharing the input (one submit), row blocks (split matrices),
 * per-matrix scales, queued calls, bad options. Skips without an adapter.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EdgeKVError } from '../../src/errors.ts';
import { createWebGPUContext } from '../../src/webgpu/device.ts';
import type { WebGPUContext } from '../../src/webgpu/device.ts';
import { createWebGPUMatvec, createWebGPUMatvecGroup } from '../../src/webgpu/matvec.ts';
import { floatToHalf, halfToFloat } from '../../src/webgpu/pagecodec.ts';
import { gpuEnv, rng } from './gpu-env.ts';

/** |GPU - float64| relative to sum_c |w_rc x_c|: f32 accumulation over <= 1024 terms. */
const MATVEC_TOL = 1e-5;

/** Check `y[off .. off + rows)` against scale * W x in float64. */
function checkRows(y: Float32Array, off: number, w: Uint16Array, x: Float32Array, rows: number, cols: number, scale: number, what: string): void {
  for (let r = 0; r < rows; r++) {
    let s = 0, mag = 0;
    for (let c = 0; c < cols; c++) { const t = halfToFloat(w[r * cols + c]) * x[c]; s += t; mag += Math.abs(t); }
    assert.ok(Math.abs(y[off + r] - scale * s) <= MATVEC_TOL * scale * mag, `${what} row ${r}: ${y[off + r]} vs ${scale * s}`);
  }
}

function randomHalves(rand: () => number, n: number): Uint16Array {
  return Uint16Array.from({ length: n }, () => floatToHalf(rand()));
}

async function rejects(p: () => Promise<unknown>, code: string, ...fragments: string[]): Promise<void> {
  try { await p(); } catch (e) {
    assert.instance(e, EdgeKVError, String(e));
    assert.is((e as EdgeKVError).code, code, (e as Error).message);
    for (const f of fragments) assert.ok((e as Error).message.includes(f), `${(e as Error).message} lacks ${f}`);
    return;
  }
  assert.unreachable(`should reject with ${code}`);
}

const env = await gpuEnv();
if (!env.gpu) {
  console.log(`  webgpu matvec tests skipped: ${env.reason}`);
  test.skip('webgpu matvec (no adapter)', () => {});
} else {
  const gpu = env.gpu;
  let ctx: WebGPUContext;
  test.before(async () => { ctx = await createWebGPUContext({ gpu, onNotice: () => {} }); });
  test.after(() => ctx.destroy());

  test('f16 matvec equals the float64 reference at tile edges and odd column counts', async () => {
    const rand = rng(21);
    for (const [rows, cols] of [[1, 1], [1, 2], [3, 8], [2, 3], [7, 126], [5, 37], [64, 128], [65, 130], [9, 1024], [4, 1023]]) {
      const w = randomHalves(rand, rows * cols);
      const x = Float32Array.from({ length: cols }, rand);
      const mv = await createWebGPUMatvec({ context: ctx, rows, cols, weights: w });
      checkRows(await mv.run(x), 0, w, x, rows, cols, 1, `${rows}x${cols}`);
      mv.destroy();
    }
  });

  test('a group computes every matrix of a shared input in one run, each with its scale', async () => {
    const rand = rng(5);
    const cols = 37;
    const shapes = [{ rows: 24, scale: 2 ** -10 }, { rows: 12, scale: 1 }, { rows: 13, scale: 0.5 }];
    const ws = shapes.map((s) => randomHalves(rand, s.rows * cols));
    const mv = await createWebGPUMatvecGroup({ context: ctx, cols, matrices: shapes.map((s, i) => ({ rows: s.rows, weights: ws[i], scale: s.scale })) });
    assert.is(mv.rows, 49);
    assert.equal(mv.matrixRows, [24, 12, 13]);
    assert.is(mv.blocks, 3);
    const x = Float32Array.from({ length: cols }, rand);
    const out = new Float32Array(49);
    const y = await mv.run(x, out);
    assert.is(y, out);
    let off = 0;
    for (let i = 0; i < shapes.length; i++) { checkRows(y, off, ws[i], x, shapes[i].rows, cols, shapes[i].scale, `matrix ${i}`); off += shapes[i].rows; }
    mv.destroy();
  });

  test('matrices larger than maxBlockBytes are split by rows with the same result', async () => {
    const rand = rng(8);
    const cols = 21, stride = 22; // padded row: 44 bytes
    const a = randomHalves(rand, 10 * cols), b = randomHalves(rand, 3 * cols);
    const whole = await createWebGPUMatvecGroup({ context: ctx, cols, matrices: [{ rows: 10, weights: a }, { rows: 3, weights: b }] });
    const split = await createWebGPUMatvecGroup({ context: ctx, cols, matrices: [{ rows: 10, weights: a }, { rows: 3, weights: b }], maxBlockBytes: 3 * 2 * stride });
    assert.is(whole.blocks, 2);
    assert.is(split.blocks, 4 + 1);
    const x = Float32Array.from({ length: cols }, rand);
    const y1 = await whole.run(x), y2 = await split.run(x);
    assert.equal(Array.from(y2), Array.from(y1));
    checkRows(y2, 0, a, x, 10, cols, 1, 'split a');
    checkRows(y2, 10, b, x, 3, cols, 1, 'split b');
    await rejects(() => createWebGPUMatvecGroup({ context: ctx, cols, matrices: [{ rows: 1, weights: a.subarray(0, cols), name: 'wide.weight' }], maxBlockBytes: 40 }), 'E_UNSUPPORTED', '"wide.weight"', '40 bytes');
    whole.destroy();
    split.destroy();
  });

  test('queued calls keep their own inputs (x is copied at the call)', async () => {
    const rand = rng(13);
    const w = randomHalves(rand, 6 * 8);
    const mv = await createWebGPUMatvec({ context: ctx, rows: 6, cols: 8, weights: w });
    const x = Float32Array.from({ length: 8 }, rand);
    const x0 = x.slice();
    const p1 = mv.run(x);
    x.fill(1);
    const [y1, y2] = await Promise.all([p1, mv.run(x)]);
    checkRows(y1, 0, w, x0, 6, 8, 1, 'first');
    checkRows(y2, 0, w, x, 6, 8, 1, 'second');
    mv.destroy();
    assert.throws(() => mv.run(x), (e: unknown) => e instanceof EdgeKVError && e.code === 'E_STATE');
  });

  test('matvec rejects bad shapes and inputs', async () => {
    await rejects(() => createWebGPUMatvec({ context: ctx, rows: 2, cols: 4, weights: new Uint16Array(7) }), 'E_SHAPE', 'options.weights');
    await rejects(() => createWebGPUMatvec({ context: ctx, rows: 0, cols: 4, weights: new Uint16Array(0) }), 'E_ARG', 'options.rows');
    await rejects(() => createWebGPUMatvec({ context: ctx, rows: 2, cols: 4, weights: new Uint16Array(8), scale: 0 }), 'E_ARG', 'options.scale');
    await rejects(() => createWebGPUMatvec({ context: ctx, rows: 2, cols: 4, weights: new Uint16Array(8), maxBlockBytes: 2 }), 'E_ARG', 'options.maxBlockBytes');
    await rejects(() => createWebGPUMatvecGroup({ context: ctx, cols: 4, matrices: [] }), 'E_ARG', 'options.matrices');
    await rejects(() => createWebGPUMatvecGroup({ context: ctx, cols: 4, matrices: [{ rows: 2, weights: new Uint16Array(8) }, { rows: 1, weights: new Uint16Array(3) }] }), 'E_SHAPE', 'options.matrices[1].weights');
    await rejects(() => createWebGPUMatvecGroup({ context: ctx, cols: 4, matrices: [{ rows: 2, weights: new Uint16Array(8), bias: 1 } as never] }), 'E_ARG', 'options.matrices[0].bias');
    await rejects(() => createWebGPUMatvecGroup({ context: {} as never, cols: 4, matrices: [{ rows: 2, weights: new Uint16Array(8) }] }), 'E_ARG', 'options.context');
    const mv = await createWebGPUMatvec({ context: ctx, rows: 2, cols: 4, weights: new Uint16Array(8) });
    assert.throws(() => mv.run(new Float32Array(3)), (e: unknown) => e instanceof EdgeKVError && e.code === 'E_SHAPE');
    assert.throws(() => mv.run(Float32Array.of(0, 1, NaN, 2)), (e: unknown) => e instanceof EdgeKVError && e.code === 'E_NONFINITE');
    assert.throws(() => mv.run(new Float32Array(4), new Float32Array(3)), (e: unknown) => e instanceof EdgeKVError && e.code === 'E_SHAPE');
    mv.destroy();
  });
}
test.run();

/** WebGPU f16 matvec against a float64 reference; skips without an adapter. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EdgeKVError } from '../../src/errors.ts';
import { createWebGPUContext } from '../../src/webgpu/device.ts';
import { createWebGPUMatvec } from '../../src/webgpu/matvec.ts';
import { floatToHalf, halfToFloat } from '../../src/webgpu/pagecodec.ts';
import { gpuEnv, rng } from './gpu-env.ts';

/** |GPU - float64| relative to sum_c |w_rc x_c|: f32 accumulation over <= 1024 terms. */
const MATVEC_TOL = 1e-5;

const env = await gpuEnv();
if (!env.gpu) {
  console.log(`  webgpu matvec tests skipped: ${env.reason}`);
  test.skip('webgpu matvec (no adapter)', () => {});
} else {
  const gpu = env.gpu;
  test('f16 matvec equals the float64 reference at tile edges', async () => {
    const ctx = await createWebGPUContext({ gpu, onNotice: () => {} });
    const rand = rng(21);
    for (const [rows, cols] of [[1, 2], [3, 8], [7, 126], [64, 128], [65, 130], [9, 1024]]) {
      const w = Uint16Array.from({ length: rows * cols }, () => floatToHalf(rand()));
      const x = Float32Array.from({ length: cols }, rand);
      const mv = await createWebGPUMatvec({ context: ctx, rows, cols, weights: w });
      const y = await mv.run(x);
      for (let r = 0; r < rows; r++) {
        let s = 0, mag = 0;
        for (let c = 0; c < cols; c++) { const t = halfToFloat(w[r * cols + c]) * x[c]; s += t; mag += Math.abs(t); }
        assert.ok(Math.abs(y[r] - s) <= MATVEC_TOL * mag, `${rows}x${cols} row ${r}: ${y[r]} vs ${s}`);
      }
      mv.destroy();
    }
    ctx.destroy();
  });

  test('matvec rejects bad shapes and inputs', async () => {
    const ctx = await createWebGPUContext({ gpu, onNotice: () => {} });
    const bad = async (o: object, code: string) => {
      try { await createWebGPUMatvec({ context: ctx, ...o } as never); assert.unreachable(); } catch (e) {
        assert.instance(e, EdgeKVError); assert.is((e as EdgeKVError).code, code, (e as Error).message);
      }
    };
    await bad({ rows: 2, cols: 3, weights: new Uint16Array(6) }, 'E_ARG');
    await bad({ rows: 2, cols: 4, weights: new Uint16Array(7) }, 'E_SHAPE');
    await bad({ rows: 0, cols: 4, weights: new Uint16Array(0) }, 'E_ARG');
    const mv = await createWebGPUMatvec({ context: ctx, rows: 2, cols: 4, weights: new Uint16Array(8) });
    assert.throws(() => mv.run(new Float32Array(3)), (e: unknown) => e instanceof EdgeKVError && e.code === 'E_SHAPE');
    assert.throws(() => mv.run(Float32Array.of(0, 1, NaN, 2)), (e: unknown) => e instanceof EdgeKVError && e.code === 'E_NONFINITE');
    mv.destroy();
    ctx.destroy();
  });
}
test.run();

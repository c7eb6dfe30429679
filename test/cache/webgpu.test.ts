/**
 * The cache on WebGPU (`cache.useWebGPU()` + `attendAsync`): equal to the float64
 * reference over what the lanes store and to the WASM `attend`, for every precision and
 * evicting policies; residency (a decode step uploads only the pages it wrote, never the
 * whole cache); fallbacks (no adapter, device lost mid-run, GPU out of memory, observing
 * policies) keep every entry and give the WASM results; bad options change nothing.
 * Skips, with the reason printed, where no WebGPU adapter exists.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine } from '../../src/engine.ts';
import { EdgeKVError } from '../../src/errors.ts';
import { PAGE_TOKENS, type Format } from '../../src/formats.ts';
import { loadCache } from '../../src/cache/snapshot.ts';
import type { KVCache } from '../../src/cache/cache.ts';
import type { CacheOptions } from '../../src/cache/options.ts';
import { createWebGPUContext } from '../../src/webgpu/device.ts';
import type { Gpu, GpuDevice, GpuError } from '../../src/webgpu/gpu-types.ts';
import { gpuEnv } from '../webgpu/gpu-env.ts';
import { prng, randn, refAttend, relErr } from './helpers.ts';

/**
 * GPU vs float64 reference over the stored (dequantized) entries, relative to max |out|:
 * f32 softmax rounding over at most a few hundred entries; packed pages fold the
 * scale/min terms, so a little more.
 */
const GPU_TOL = 2e-5;
/** Log-sum-exp, absolute. */
const LSE_TOL = 5e-5;
/** WASM SIMD on packed pages rounds to 16-bit fixed point (see test/webgpu/attention.test.ts). */
const WASM_TOL: Record<Format, number> = { f32: 2e-6, f16: 2e-6, int8: 3e-4, int4: 3e-4, int2: 3e-4 };

const env = await gpuEnv();
if (!env.gpu) {
  console.log(`  cache webgpu tests skipped: ${env.reason}`);
  test.skip('cache on webgpu (no adapter)', () => {});
  test.run();
} else {
  await suite(env.gpu);
}

async function suite(gpu: Gpu): Promise<void> {
  const engine = await createEngine();
  const ctx = await createWebGPUContext({ gpu, onNotice: () => {} });
  const geometry = (o: Partial<CacheOptions>): CacheOptions => ({ layers: 2, qHeads: 4, kvHeads: 2, headDim: 16, ...o });

  /** Append `T` tokens to every layer of `c` (one call per layer). */
  function feed(c: KVCache, T: number, rnd: () => number): void {
    const { layers, kvHeads, headDim: d } = c.options;
    for (let l = 0; l < layers; l++) c.append(l, randn(kvHeads * T * d, rnd), randn(kvHeads * T * d, rnd, 0.5));
  }

  async function checkLayer(c: KVCache, layer: number, rnd: () => number, label: string, wasmTol: number): Promise<void> {
    const { qHeads, headDim: d } = c.options;
    const q = randn(qHeads * d, rnd, 0.7);
    const ref = refAttend(c, layer, q);
    const lse = new Float32Array(qHeads);
    const got = await c.attendAsync(layer, q, undefined, { lse });
    const e = relErr(got, ref.out);
    assert.ok(e <= GPU_TOL, `${label}: GPU vs float64 ${e.toExponential(2)} > ${GPU_TOL}`);
    for (let h = 0; h < qHeads; h++) assert.ok(Math.abs(lse[h] - ref.lse[h]) <= LSE_TOL, `${label}: lse[${h}] ${lse[h]} vs ${ref.lse[h]}`);
    const cpu = c.attend(layer, q);
    const ec = relErr(got, cpu);
    assert.ok(ec <= GPU_TOL + wasmTol, `${label}: GPU vs WASM ${ec.toExponential(2)}`);
  }

  for (const precision of ['f32', 'f16', 'int8', 'int4', 'int2'] as const) {
    for (const policy of ['full', 'snapkv', 'balancekv', 'uniform'] as const) {
      test(`attendAsync on the GPU == float64 reference == WASM attend (${precision}, ${policy})`, async () => {
        const rnd = prng(precision.length * 31 + policy.length);
        const c = engine.createCache(geometry({
          policy, precision, windowTokens: 8, slack: 8, sinkTokens: 4,
          ...(policy === 'full' ? {} : { budget: { tokens: 72 } }),
          exactPrecision: precision === 'f32' ? 'f32' : 'f16',
        }));
        assert.is(await c.useWebGPU({ context: ctx }), 'webgpu');
        assert.is(c.backend, 'webgpu');
        feed(c, 150, rnd);
        for (let l = 0; l < 2; l++) await checkLayer(c, l, rnd, `prefill layer ${l}`, WASM_TOL[precision]);
        for (let step = 0; step < 40; step++) {
          feed(c, 1, rnd);
          if (step % 13 === 0) await checkLayer(c, step % 2, rnd, `decode ${step}`, WASM_TOL[precision]);
        }
        const s = c.stats();
        assert.is(s.backend, 'webgpu');
        assert.ok(s.webgpu !== null);
        c.dispose();
      });
    }
  }

  test('hadamard rotation and GQA groups of 4, custom scale: GPU == reference', async () => {
    const rnd = prng(5);
    for (const hadamard of [true, 'keys', 'values'] as const) {
      const c = engine.createCache({ layers: 1, qHeads: 8, kvHeads: 2, headDim: 32, hadamard, precision: 'int4', policy: 'snapkv', budget: { tokens: 96 }, windowTokens: 16, slack: 16, scale: 0.3 });
      await c.useWebGPU({ context: ctx });
      feed(c, 300, rnd);
      await checkLayer(c, 0, rnd, `hadamard ${hadamard}`, WASM_TOL.int4);
      c.dispose();
    }
  });

  test('residency: a decode step uploads the pages it wrote (about one per lane), never the whole cache', async () => {
    const rnd = prng(9);
    const c = engine.createCache(geometry({ layers: 2, policy: 'full', precision: 'f16' }));
    await c.useWebGPU({ context: ctx });
    feed(c, 1000, rnd);
    const q = randn(4 * 16, rnd);
    for (let l = 0; l < 2; l++) await c.attendAsync(l, q);
    const first = c.stats().webgpu!;
    const pages = c.stats().pages.f16;
    assert.is(first.pagesCreated, pages, 'the first attend uploads every page once');
    assert.is(first.residentBytes, c.stats().bytes, 'GPU holds exactly the cache bytes');
    let prev = first;
    for (let step = 0; step < 70; step++) {
      feed(c, 1, rnd);
      for (let l = 0; l < 2; l++) await c.attendAsync(l, q);
      const now = c.stats().webgpu!;
      const uploads = (now.pagesCreated - prev.pagesCreated) + (now.pagesUpdated - prev.pagesUpdated);
      assert.ok(uploads <= 4, `step ${step}: ${uploads} page uploads for 4 lanes`);
      assert.ok(uploads >= 4, `step ${step}: every lane's tail page changed, ${uploads} uploads`);
      prev = now;
    }
    // f16 pages moving from the tail into the f16 middle are not re-sent
    assert.is(prev.pagesCreated - first.pagesCreated, c.stats().pages.f16 - pages);
    assert.is(prev.residentBytes, c.stats().bytes);
    c.dispose();
  });

  test('residency under eviction: a compression uploads only the pages it re-packed or compacted', async () => {
    const rnd = prng(10);
    const c = engine.createCache(geometry({ layers: 1, policy: 'snapkv', precision: 'int4', budget: { tokens: 512 }, windowTokens: 32, slack: 64 }));
    await c.useWebGPU({ context: ctx });
    feed(c, 480, rnd);
    const q = randn(4 * 16, rnd);
    await c.attendAsync(0, q);
    let total = 0, steps = 0;
    const before = c.stats().webgpu!;
    for (let step = 0; step < 200; step++) {
      feed(c, 1, rnd);
      await c.attendAsync(0, q);
      steps++;
    }
    const after = c.stats().webgpu!;
    total = after.uploadedBytes - before.uploadedBytes;
    const cacheBytes = c.stats().bytes;
    // 200 steps with several compressions: far less than re-sending the cache every step
    assert.ok(total < 0.25 * steps * cacheBytes, `uploaded ${total} bytes over ${steps} steps; cache is ${cacheBytes}`);
    assert.is(after.residentBytes, cacheBytes, 'freed pages leave the GPU too');
    await checkLayer(c, 0, rnd, 'after compressions', WASM_TOL.int4);
    c.dispose();
  });

  test('thousands of writes between GPU attends (sync attend meanwhile): the GPU copy catches up exactly', async () => {
    const rnd = prng(14);
    const c = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: 8, policy: 'balancekv', precision: 'int4', budget: { tokens: 256 }, windowTokens: 8, slack: 16 });
    await c.useWebGPU({ context: ctx });
    feed(c, 100, rnd);
    await checkLayer(c, 0, rnd, 'start', WASM_TOL.int4);
    for (let i = 0; i < 5000; i++) { feed(c, 1, rnd); if (i % 1000 === 0) c.attend(0, randn(16, rnd)); }
    await checkLayer(c, 0, rnd, 'after 5000 unattended steps', WASM_TOL.int4);
    assert.is(c.stats().webgpu!.residentBytes, c.stats().bytes);
    c.dispose();
  });

  test('reset, releaseWebGPU and dispose free the GPU pages; snapshots load and mirror again', async () => {
    const rnd = prng(11);
    const c = engine.createCache(geometry({ policy: 'balancekv', precision: 'int8', budget: { tokens: 96 }, windowTokens: 8, slack: 8 }));
    await c.useWebGPU({ context: ctx });
    feed(c, 200, rnd);
    await checkLayer(c, 1, rnd, 'before snapshot', WASM_TOL.int8);
    const snap = c.save();
    const d = loadCache(engine, snap);
    assert.is(d.backend, engine.backend, 'a loaded cache starts on WASM');
    assert.is(await d.useWebGPU({ context: ctx }), 'webgpu');
    const q = randn(4 * 16, rnd);
    const a = await c.attendAsync(0, q), b = await d.attendAsync(0, q);
    assert.equal(Array.from(a), Array.from(b), 'same pages, same GPU result');
    c.reset();
    feed(c, 3, rnd);
    for (let l = 0; l < 2; l++) await c.attendAsync(l, q);
    assert.is(c.stats().webgpu!.residentBytes, c.stats().bytes, 'reset freed the old pages on the GPU');
    c.releaseWebGPU();
    assert.is(c.backend, engine.backend);
    assert.is(c.stats().webgpu, null);
    await checkLayer(c, 0, rnd, 'after release (WASM)', 0);
    c.dispose();
    d.dispose();
  });

  test('bad options: typed errors, the cache unchanged', async () => {
    const c = engine.createCache(geometry({ policy: 'full' }));
    feed(c, 40, prng(1));
    const snap = c.save();
    for (const [opts, code, arg] of [
      [{ contxt: ctx }, 'E_ARG', 'options'],
      [{ context: ctx, targetSplits: 0 }, 'E_ARG', 'options.targetSplits'],
      [{ context: ctx, onNotice: 3 }, 'E_ARG', 'options.onNotice'],
      [null, 'E_ARG', 'options'],
    ] as const) {
      try {
        await c.useWebGPU(opts as never);
        assert.unreachable(`${JSON.stringify(opts)} accepted`);
      } catch (e) {
        assert.instance(e, EdgeKVError);
        assert.is((e as EdgeKVError).code, code, (e as Error).message);
        assert.ok((e as EdgeKVError).argument?.startsWith(arg.split('.')[0]), (e as Error).message);
      }
      assert.is(c.backend, engine.backend);
      assert.equal(c.save(), snap, 'cache unchanged');
    }
    c.dispose();
  });

  test('no adapter / observing policy: one notice, attention stays on WASM', async () => {
    const notices: string[] = [];
    const c = engine.createCache(geometry({ policy: 'full' }));
    const none: Gpu = { requestAdapter: async () => null } as unknown as Gpu;
    assert.is(await c.useWebGPU({ gpu: none, onNotice: (m) => notices.push(m) }), engine.backend);
    assert.is(notices.length, 1);
    assert.match(notices[0], /no adapter/);
    const h = engine.createCache(geometry({ policy: 'h2o', budget: { tokens: 64 } }));
    assert.is(await h.useWebGPU({ context: ctx, onNotice: (m) => notices.push(m) }), engine.backend);
    assert.is(notices.length, 2);
    assert.match(notices[1], /h2o/);
    const rnd = prng(3);
    feed(h, 100, rnd);
    await checkLayer(h, 0, rnd, 'h2o via attendAsync (WASM)', 0);
    c.dispose(); h.dispose();
  });

  test('device lost mid-run: one notice, every entry kept, attendAsync answers from WASM', async () => {
    const rnd = prng(12);
    const own = await createWebGPUContext({ gpu, onNotice: () => {} });
    const notices: string[] = [];
    const c = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: 8, policy: 'snapkv', precision: 'int4', budget: { tokens: 64 }, windowTokens: 8, slack: 8 });
    assert.is(await c.useWebGPU({ context: own, onNotice: (m) => notices.push(m) }), 'webgpu');
    feed(c, 100, rnd);
    await checkLayer(c, 0, rnd, 'before loss', WASM_TOL.int4);
    const tokens = c.stats().tokens;
    own.device.destroy();
    await own.device.lost;
    feed(c, 5, rnd);
    const q = randn(2 * 8, rnd);
    const got = await c.attendAsync(0, q);
    assert.ok(relErr(got, refAttend(c, 0, q).out) <= WASM_TOL.int4, 'WASM answer after the loss');
    assert.is(c.backend, engine.backend);
    assert.is(c.stats().tokens, tokens + 5, 'nothing lost');
    assert.is(notices.length, 1, notices.join('\n'));
    assert.match(notices[0], /lost.*nothing lost/);
    c.dispose();
  });

  test('GPU out of memory while uploading: one notice, WASM answers, the cache intact', async () => {
    const rnd = prng(13);
    const notices: string[] = [];
    const small = await createWebGPUContext({ device: oomAfter(ctx.device, 1), onNotice: () => {} });
    const c = engine.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: 8, policy: 'full', precision: 'f16' });
    await c.useWebGPU({ context: small, onNotice: (m) => notices.push(m), chunkBytes: 4096 });
    feed(c, 800, rnd); // 25 pages: more than one 4 KiB pool buffer
    const q = randn(2 * 8, rnd);
    const got = await c.attendAsync(0, q);
    assert.ok(relErr(got, refAttend(c, 0, q).out) <= WASM_TOL.f16 + GPU_TOL);
    assert.is(notices.length, 1, notices.join('\n'));
    assert.match(notices[0], /E_OOM|out of memory|could not allocate/i);
    assert.is(c.backend, engine.backend);
    assert.is(c.stats().tokens, 800);
    c.dispose();
  });

  test('cleanup', () => { ctx.destroy(); });
  test.run();
}

/**
 * The same device, but the error scopes report an out-of-memory error for every buffer
 * created after the first `n` (the pool's first chunk fits, later ones do not).
 */
function oomAfter(device: GpuDevice, n: number): GpuDevice {
  let created = 0;
  let failNext = false;
  return new Proxy(device, {
    get(t, k) {
      if (k === 'createBuffer') {
        return (desc: { size: number }) => {
          created++;
          if (created > n && desc.size >= PAGE_TOKENS) failNext = true;
          return t.createBuffer(desc as never);
        };
      }
      if (k === 'popErrorScope') {
        return async (): Promise<GpuError | null> => {
          const real = await t.popErrorScope();
          if (failNext) { failNext = false; return { message: 'injected: out of memory' } as GpuError; }
          return real;
        };
      }
      const v = Reflect.get(t, k, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

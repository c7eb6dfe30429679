import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine, detectSimd, EdgeKVError } from '../src/index.ts';
import { pageBytes, FORMATS, FORMAT_CODE } from '../src/formats.ts';

test('createEngine loads the SIMD build by default', async () => {
  const e = await createEngine();
  assert.is(detectSimd(), true);
  assert.is(e.backend, 'wasm-simd');
  assert.is(e.simd, true);
});

test('createEngine loads the scalar build on request', async () => {
  const e = await createEngine({ backend: 'wasm-scalar' });
  assert.is(e.backend, 'wasm-scalar');
  assert.is(e.simd, false);
});

test('createEngine rejects unknown options and backends with EdgeKVError', async () => {
  for (const bad of [{ backend: 'gpu' }, { bakend: 'wasm-simd' }]) {
    try {
      await createEngine(bad as never);
      assert.unreachable('should throw');
    } catch (e) {
      assert.instance(e, EdgeKVError);
      assert.is((e as EdgeKVError).code, 'E_ARG');
    }
  }
});

test('pageBytes: TypeScript mirror equals the kernel', async () => {
  const e = await createEngine();
  for (const f of FORMATS) for (const d of [8, 64, 128]) {
    const vg = Math.min(32, d);
    assert.is(pageBytes(f, d, vg), e.kernels.pageBytes(FORMAT_CODE[f], d, vg), `${f} d=${d}`);
  }
});

test('arena reuses freed blocks and counts bytes', async () => {
  const e = await createEngine();
  const a = e.arena.alloc(100);
  assert.is(a % 16, 0);
  assert.is(e.arena.bytesInUse, 112);
  e.arena.free(a);
  assert.is(e.arena.bytesInUse, 0);
  const b = e.arena.alloc(112);
  assert.is(b, a);
  assert.throws(() => e.arena.free(b + 16), (err: unknown) => err instanceof EdgeKVError);
  // growth keeps earlier data
  const big = e.arena.alloc(64 << 20);
  e.u8(b, 4).set([1, 2, 3, 4]);
  const big2 = e.arena.alloc(64 << 20);
  assert.equal(Array.from(e.u8(b, 4)), [1, 2, 3, 4]);
  e.arena.free(big); e.arena.free(big2); e.arena.free(b);
});

test.run();

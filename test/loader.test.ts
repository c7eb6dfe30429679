/**
 * createEngine(): every way the kernels can arrive (a compiled WebAssembly.Module as in
 * edge workers, raw bytes, a file URL, a { simd, scalar } pair), forced scalar, SIMD
 * detection and the no-SIMD fallback, damaged or foreign modules (E_BACKEND listing every
 * failure), bad options, and arena growth keeping data.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { createEngine, detectSimd, EdgeKVError, type Engine } from '../src/index.ts';
import { align } from '../src/arena.ts';

const SIMD_URL = new URL('../build/edgekv.simd.wasm', import.meta.url);
const SCALAR_URL = new URL('../build/edgekv.scalar.wasm', import.meta.url);
const simdBytes = new Uint8Array(readFileSync(SIMD_URL));
const scalarBytes = new Uint8Array(readFileSync(SCALAR_URL));

/** A tiny valid module with none of the kernel exports (exports one function `f`). */
const FOREIGN_WASM = new Uint8Array([
  0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, // magic, version
  1, 4, 1, 0x60, 0, 0, // type section: () -> ()
  3, 2, 1, 0, // function section
  7, 5, 1, 1, 0x66, 0, 0, // export "f" = func 0
  10, 4, 1, 2, 0, 0x0b, // code: empty body
]);

/** Run a kernel end to end: proves the engine works, not only that it was created. */
function works(e: Engine): boolean {
  const a = e.copyIn(new Float32Array([1, 2, 3, 4, 5]));
  const b = e.copyIn(new Float32Array([5, 4, 3, 2, 1]));
  const d = e.kernels.dotF32(a, b, 5);
  e.arena.free(a);
  e.arena.free(b);
  return d === 35;
}

async function rejects(p: Promise<unknown>, code: string, ...mentions: string[]): Promise<EdgeKVError> {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof EdgeKVError)) assert.unreachable(`threw ${String(err)} instead of EdgeKVError`);
    const e = err as EdgeKVError;
    assert.is(e.code, code, e.message);
    for (const m of mentions) assert.ok(e.message.includes(m), `message lacks "${m}": ${e.message}`);
    return e;
  }
  assert.unreachable('did not throw');
  throw new Error('unreachable');
}

function noticeLog(): { notices: string[]; onNotice: (m: string) => void } {
  const notices: string[] = [];
  return { notices, onNotice: (m) => notices.push(m) };
}

// ---------------------------------------------------------------------------------------------
const SOURCES = suite('loader: where the kernels come from');

SOURCES('default: the package build/ files, SIMD where supported, no notice', async () => {
  const log = noticeLog();
  const e = await createEngine({ onNotice: log.onNotice });
  assert.is(e.backend, detectSimd() ? 'wasm-simd' : 'wasm-scalar');
  assert.ok(works(e));
  assert.equal(log.notices, []);
});

SOURCES('an explicit WebAssembly.Module (edge workers), either build', async () => {
  const simdMod = await WebAssembly.compile(simdBytes);
  const scalarMod = await WebAssembly.compile(scalarBytes);
  const e1 = await createEngine({ wasm: simdMod });
  assert.is(e1.backend, 'wasm-simd');
  assert.ok(e1.simd && works(e1));
  // a single scalar module under 'auto' is taken for what it is
  const e2 = await createEngine({ wasm: scalarMod });
  assert.is(e2.backend, 'wasm-scalar');
  assert.ok(!e2.simd && works(e2));
  // two engines from one module have separate memories
  const e3 = await createEngine({ wasm: simdMod });
  assert.is.not(e1.memory, e3.memory);
});

SOURCES('raw bytes: ArrayBuffer, Uint8Array, and a Uint8Array view at an offset', async () => {
  const ab = simdBytes.buffer.slice(simdBytes.byteOffset, simdBytes.byteOffset + simdBytes.byteLength);
  const e1 = await createEngine({ wasm: ab });
  assert.is(e1.backend, 'wasm-simd');
  assert.ok(works(e1));
  const e2 = await createEngine({ wasm: scalarBytes, backend: 'wasm-scalar' });
  assert.is(e2.backend, 'wasm-scalar');
  assert.ok(works(e2));
  const padded = new Uint8Array(simdBytes.length + 24);
  padded.set(simdBytes, 7);
  const e3 = await createEngine({ wasm: padded.subarray(7, 7 + simdBytes.length) });
  assert.ok(works(e3));
});

SOURCES('a file URL, as URL and as string', async () => {
  const e1 = await createEngine({ wasm: SCALAR_URL, backend: 'wasm-scalar' });
  assert.is(e1.backend, 'wasm-scalar');
  assert.ok(works(e1));
  const e2 = await createEngine({ wasm: SIMD_URL.href });
  assert.is(e2.backend, 'wasm-simd');
  assert.ok(works(e2));
});

SOURCES('{ simd, scalar } pairs pick by backend; a missing half is reported', async () => {
  const pair = { simd: simdBytes, scalar: await WebAssembly.compile(scalarBytes) };
  assert.is((await createEngine({ wasm: pair })).backend, 'wasm-simd');
  assert.is((await createEngine({ wasm: pair, backend: 'wasm-scalar' })).backend, 'wasm-scalar');
  assert.is((await createEngine({ wasm: { scalar: scalarBytes }, backend: 'wasm-scalar' })).backend, 'wasm-scalar');
  await rejects(createEngine({ wasm: { simd: simdBytes }, backend: 'wasm-scalar' }), 'E_BACKEND', 'options.wasm.scalar was not given');
  // auto with only the scalar half: falls back with one notice that says why
  const log = noticeLog();
  const e = await createEngine({ wasm: { scalar: scalarBytes }, onNotice: log.onNotice });
  assert.is(e.backend, 'wasm-scalar');
  assert.is(log.notices.length, 1);
  assert.ok(log.notices[0].includes('options.wasm.simd was not given'), log.notices[0]);
});

SOURCES('swapped builds are caught: the module says which build it is', async () => {
  await rejects(createEngine({ wasm: { simd: scalarBytes, scalar: scalarBytes }, backend: 'wasm-simd' }), 'E_BACKEND', 'options.wasm.simd is the wasm-scalar build');
  await rejects(createEngine({ wasm: simdBytes, backend: 'wasm-scalar' }), 'E_BACKEND', 'is the wasm-simd build');
});

SOURCES.run();

// ---------------------------------------------------------------------------------------------
const BACKENDS = suite('loader: backends and SIMD detection');

BACKENDS('forced scalar runs the scalar build', async () => {
  const e = await createEngine({ backend: 'wasm-scalar' });
  assert.is(e.backend, 'wasm-scalar');
  assert.is(e.simd, false);
  assert.is(e.kernels.hasSimd(), 0);
  assert.ok(works(e));
});

BACKENDS('detectSimd agrees with the runtime validating the SIMD build, and is stable', () => {
  assert.is(detectSimd(), WebAssembly.validate(simdBytes));
  assert.is(WebAssembly.validate(scalarBytes), true);
  assert.is(detectSimd(), detectSimd());
});

BACKENDS('a runtime without SIMD: auto gives scalar with one notice; wasm-simd is refused', async () => {
  // A fresh copy of the engine module (its detection cache is per module) sees a
  // WebAssembly.validate that rejects everything, as a runtime without SIMD would for the probe.
  const realValidate = WebAssembly.validate;
  let fresh: typeof import('../src/engine.ts');
  try {
    (WebAssembly as { validate: unknown }).validate = () => false;
    fresh = await import(`../src/engine.ts?no-simd=${Date.now()}`);
    assert.is(fresh.detectSimd(), false);
  } finally {
    (WebAssembly as { validate: unknown }).validate = realValidate;
  }
  assert.is(fresh.detectSimd(), false, 'detected once, not re-checked');
  const log = noticeLog();
  const e = await fresh.createEngine({ onNotice: log.onNotice });
  assert.is(e.backend, 'wasm-scalar');
  assert.is(log.notices.length, 1);
  assert.match(log.notices[0], /SIMD is not available/);
  await rejects(fresh.createEngine({ backend: 'wasm-simd' }), 'E_BACKEND', 'does not support WebAssembly SIMD');
});

BACKENDS.run();

// ---------------------------------------------------------------------------------------------
const DAMAGED = suite('loader: damaged and foreign modules');

DAMAGED('truncated bytes: E_BACKEND listing the failure of each backend tried', async () => {
  const cut = simdBytes.subarray(0, simdBytes.length >> 1);
  const e = await rejects(createEngine({ wasm: { simd: cut, scalar: scalarBytes.subarray(0, 100) } }), 'E_BACKEND', 'wasm-simd:', 'wasm-scalar:');
  assert.ok(e.message.split('\n').length >= 3, e.message);
  await rejects(createEngine({ wasm: cut }), 'E_BACKEND', 'wasm-simd:');
  await rejects(createEngine({ wasm: new Uint8Array(0) }), 'E_BACKEND');
});

DAMAGED('a damaged SIMD build with a good scalar one: falls back with one notice naming the failure', async () => {
  const bad = simdBytes.slice();
  bad[0] = 0x01; // not the wasm magic
  const log = noticeLog();
  const e = await createEngine({ wasm: { simd: bad, scalar: scalarBytes }, onNotice: log.onNotice });
  assert.is(e.backend, 'wasm-scalar');
  assert.ok(works(e));
  assert.is(log.notices.length, 1);
  assert.ok(log.notices[0].includes('wasm-simd:'), log.notices[0]);
});

DAMAGED('a valid module that is not edgekv, and a missing file', async () => {
  assert.ok(WebAssembly.validate(FOREIGN_WASM));
  await rejects(createEngine({ wasm: FOREIGN_WASM }), 'E_BACKEND', 'not an edgekv kernel module');
  await rejects(createEngine({ wasm: new URL('./no-such-file.wasm', SIMD_URL) }), 'E_BACKEND', 'wasm-simd:');
  // a failed URL load is not cached: the same URL may load once the file exists
  await rejects(createEngine({ wasm: new URL('./no-such-file.wasm', SIMD_URL) }), 'E_BACKEND');
});

DAMAGED('bad options: E_ARG naming the option', async () => {
  await rejects(createEngine({ wasm: 42 as never }), 'E_ARG', 'options.wasm');
  await rejects(createEngine({ wasm: null as never }), 'E_ARG', 'options.wasm');
  await rejects(createEngine({ wasm: { simd: simdBytes, scaler: scalarBytes } as never }), 'E_ARG', 'options.wasm.scaler');
  await rejects(createEngine({ wasm: { simd: 7 } as never }), 'E_ARG', 'options.wasm.simd');
  await rejects(createEngine({ onNotice: 'loud' as never }), 'E_ARG', 'options.onNotice');
  await rejects(createEngine({ backend: 'webgpu' as never }), 'E_ARG', 'options.backend');
  await rejects(createEngine('simd' as never), 'E_ARG');
});

DAMAGED.run();

// ---------------------------------------------------------------------------------------------
const MEMORY = suite('loader: memory growth and the arena');

/** Big enough to force memory.grow from the initial 16 pages (1 MiB). */
const GROW_BYTES = 8 << 20;

MEMORY('growth keeps earlier data; views taken afterwards see it; kernels still run', async () => {
  const e = await createEngine();
  const before = e.memory.buffer.byteLength;
  const data = Float32Array.from({ length: 1000 }, (_, i) => i * 0.5);
  const p = e.copyIn(data);
  const stale = e.f32(p, data.length);
  const big = e.arena.alloc(GROW_BYTES);
  assert.ok(e.memory.buffer.byteLength > before, 'memory grew');
  assert.is(stale.length, 0, 'a view taken before growth is detached (take views after allocating)');
  assert.equal(Array.from(e.f32(p, data.length)), Array.from(data));
  e.f32(big, GROW_BYTES / 4).fill(1);
  assert.is(e.kernels.dotF32(p, big, data.length), data.reduce((s, v) => s + v, 0));
  e.arena.free(big);
  e.arena.free(p);
  assert.is(e.arena.bytesInUse, 0);
});

MEMORY('freed blocks are reused before the arena grows again', async () => {
  const e = await createEngine({ backend: 'wasm-scalar' });
  const a = e.arena.alloc(GROW_BYTES);
  const reserved = e.arena.bytesReserved;
  e.arena.free(a);
  const b = e.arena.alloc(GROW_BYTES);
  assert.is(b, a);
  assert.is(e.arena.bytesReserved, reserved);
  assert.is(e.arena.peakBytes, GROW_BYTES);
  e.arena.free(b);
});

MEMORY('sizes past 2^31 round correctly; past 4 GiB they fail with E_OOM, leaving the arena as it was', async () => {
  assert.is(align(2 ** 31 + 1), 2 ** 31 + 16);
  assert.is(align(2 ** 33 - 1), 2 ** 33);
  assert.is(align(0), 0);
  const e = await createEngine();
  const p = e.copyIn(new Float32Array([1, 2, 3]));
  const state = [e.arena.bytesInUse, e.arena.bytesReserved, e.arena.liveBlocks, e.memory.buffer.byteLength];
  for (const bytes of [2 ** 32, 2 ** 32 + 1, 2 ** 40]) {
    try {
      e.arena.alloc(bytes);
      assert.unreachable(`alloc(${bytes}) succeeded`);
    } catch (err) {
      assert.instance(err, EdgeKVError);
      assert.is((err as EdgeKVError).code, 'E_OOM', (err as Error).message);
    }
    assert.equal([e.arena.bytesInUse, e.arena.bytesReserved, e.arena.liveBlocks, e.memory.buffer.byteLength], state);
  }
  for (const bad of [-1, 1.5, NaN]) assert.throws(() => e.arena.alloc(bad), (err: unknown) => err instanceof EdgeKVError && err.code === 'E_ARG');
  assert.equal(Array.from(e.f32(p, 3)), [1, 2, 3]);
  e.arena.free(p);
});

MEMORY.run();

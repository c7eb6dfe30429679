/**
 * WebGPU decode attention against the float64 reference (decoding the very same page
 * bytes) and against the WASM kernels, on every format; residency (a page write
 * uploads that page only), split-K / multi-chunk paths, bad input, device loss.
 * Skips, with the reason printed, where no WebGPU adapter exists.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine } from '../../src/engine.ts';
import { EdgeKVError } from '../../src/errors.ts';
import { FORMATS, FORMAT_CODE, PAGE_TOKENS, pageBytes } from '../../src/formats.ts';
import type { Format } from '../../src/formats.ts';
import { createWebGPUAttention, WebGPUAttention } from '../../src/webgpu/attention.ts';
import { createWebGPUContext, WebGPUContext } from '../../src/webgpu/device.ts';
import { createPagedAttention, WasmPagedAttention } from '../../src/webgpu/backend.ts';
import { decodePage, encodePage, referenceAttention } from '../../src/webgpu/pagecodec.ts';
import type { DecodedPage } from '../../src/webgpu/pagecodec.ts';
import type { Gpu, GpuBuffer, GpuDevice } from '../../src/webgpu/gpu-types.ts';
import { gpuEnv, rng } from './gpu-env.ts';

/**
 * Largest |GPU - float64 reference| allowed, relative to max |v|: the GPU computes in f32
 * over exactly the bytes the reference decodes, so this is f32 rounding of a softmax
 * (packed pages add the folded min/scale terms).
 */
const OUT_TOL: Record<Format, number> = { f32: 2e-6, f16: 2e-6, int8: 4e-6, int4: 4e-6, int2: 4e-6 };
/** Largest |GPU - reference| of the log-sum-exp (absolute; logits are O(1) here). */
const LSE_TOL = 2e-5;
/**
 * Largest |WASM SIMD - reference| on packed pages, relative to max |v| (out) and absolute
 * (lse): that kernel rounds q*kScale and p*vScale to 16-bit fixed point (relative error
 * up to 2^-16 per term, see assembly/kernels/attention.ts), so it is looser than f32.
 */
const WASM_PACKED_TOL = 2e-4;
/** Tolerance of the WASM kernels per format (f32 / f16 pages: f32 math, as on the GPU). */
const WASM_TOL: Record<Format, number> = { f32: 2e-6, f16: 2e-6, int8: WASM_PACKED_TOL, int4: WASM_PACKED_TOL, int2: WASM_PACKED_TOL };

const env = await gpuEnv();
if (!env.gpu) {
  console.log(`  webgpu tests skipped: ${env.reason}`);
  test.skip('webgpu attention (no adapter)', () => {});
  test.run();
} else {
  await suiteWithGpu(env.gpu);
}

interface Built { bytes: Uint8Array[]; counts: number[]; decoded: DecodedPage[] }

/** `n` random entries cut into pages of `format` (the last page partial). */
function build(format: Format | Format[], d: number, vg: number, n: number, rand: () => number, masked = false): Built {
  const bytes: Uint8Array[] = [], counts: number[] = [], decoded: DecodedPage[] = [];
  for (let p = 0; p * PAGE_TOKENS < n; p++) {
    const f = Array.isArray(format) ? format[p % format.length] : format;
    const cnt = Math.min(PAGE_TOKENS, n - p * PAGE_TOKENS);
    const k = Float32Array.from({ length: cnt * d }, () => 2 * rand());
    const v = Float32Array.from({ length: cnt * d }, rand);
    const w = Float32Array.from({ length: cnt }, (_, i) => (masked && i % 3 === 0 ? -Infinity : 0.5 * rand()));
    const b = encodePage(f, d, vg, cnt, k, v, w);
    bytes.push(b);
    counts.push(cnt);
    decoded.push(decodePage(f, d, vg, cnt, b));
  }
  return { bytes, counts, decoded };
}

function upload(a: WebGPUAttention | WasmPagedAttention, lane: number, format: Format | Format[], b: Built): void {
  b.bytes.forEach((bytes, i) => a.writePage(lane, i, Array.isArray(format) ? format[i % format.length] : format, bytes, b.counts[i]));
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function compare(label: string, got: { out: Float32Array; lse: Float32Array }, ref: { out: ArrayLike<number>; lse: ArrayLike<number> }, tol: number, lseTol = LSE_TOL): void {
  const scale = Math.max(1e-30, maxAbs(ref.out));
  let worst = 0;
  for (let i = 0; i < ref.out.length; i++) worst = Math.max(worst, Math.abs(got.out[i] - ref.out[i]) / scale);
  assert.ok(worst <= tol, `${label}: out error ${worst.toExponential(2)} > ${tol}`);
  for (let i = 0; i < ref.lse.length; i++) {
    if (ref.lse[i] === -Infinity) assert.is(got.lse[i], -Infinity, `${label}: lse[${i}]`);
    else assert.ok(Math.abs(got.lse[i] - ref.lse[i]) <= lseTol, `${label}: lse[${i}] ${got.lse[i]} vs ${ref.lse[i]}`);
  }
}

/** The same device with some limits reported lower (methods bound to the real device). */
function limitedDevice(device: GpuDevice, lower: Record<string, number>): GpuDevice {
  const limits = new Proxy(device.limits, { get: (t, k) => (typeof k === 'string' && k in lower ? lower[k] : Reflect.get(t, k, t)) });
  return new Proxy(device, {
    get: (t, k) => {
      if (k === 'limits') return limits;
      const v = Reflect.get(t, k, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

async function rejects(p: () => Promise<unknown> | unknown, code: string, label: string): Promise<void> {
  try {
    await p();
  } catch (e) {
    assert.instance(e, EdgeKVError, label);
    assert.is((e as EdgeKVError).code, code, `${label}: ${(e as Error).message}`);
    return;
  }
  assert.unreachable(`${label}: should throw ${code}`);
}

async function suiteWithGpu(gpu: Gpu): Promise<void> {
  const ctx = await createWebGPUContext({ gpu, onNotice: () => {} });
  console.log(`  webgpu: ${env.source} ${ctx.adapter.vendor} ${ctx.adapter.architecture} ${ctx.adapter.description}`.trimEnd());
  // shapes: tiny head (int2 rows of 2 bytes, int4 of 4), a GQA model head (every format);
  // a head dim that is not a power of two with an odd group (tails of the thread loops)
  const shapes: Array<{ d: number; G: number; vg: number; sizes: number[]; formats: readonly Format[] }> = [
    { d: 8, G: 1, vg: 8, sizes: [1, 2, 3, 33], formats: FORMATS },
    { d: 64, G: 4, vg: 32, sizes: [31, 32, 65, 200], formats: FORMATS },
    { d: 96, G: 3, vg: 32, sizes: [7, 64], formats: ['f32', 'int8'] },
    { d: 80, G: 2, vg: 16, sizes: [45], formats: ['int2'] },
  ];
  const instances = new Map<string, WebGPUAttention>();
  const gpuFor = async (d: number, G: number, vg: number, formats: readonly Format[] = FORMATS): Promise<WebGPUAttention> => {
    const key = `${d}/${G}/${vg}`;
    let a = instances.get(key);
    if (!a) {
      instances.set(key, (a = await createWebGPUAttention({ context: ctx, headDim: d, groupSize: G, valueGroup: vg })));
      await a.warmUp(formats); // concurrent compiles
    }
    return a;
  };

  test('every format and shape equals the float64 reference over the same page bytes', async () => {
    const rand = rng(11);
    for (const s of shapes) {
      const a = await gpuFor(s.d, s.G, s.vg, s.formats);
      for (const f of s.formats) {
        const lanes: number[] = [], refs: Array<{ out: Float64Array; lse: Float64Array }> = [];
        const q = Float32Array.from({ length: s.sizes.length * s.G * s.d }, rand);
        s.sizes.forEach((n, li) => {
          const b = build(f, s.d, s.vg, n, rand);
          const lane = a.createLane();
          upload(a, lane, f, b);
          lanes.push(lane);
          refs.push(referenceAttention(b.decoded, q.subarray(li * s.G * s.d, (li + 1) * s.G * s.d), s.G, s.d, 1 / Math.sqrt(s.d)));
        });
        const r = await a.attend(lanes, q);
        refs.forEach((ref, li) => compare(`${f} d=${s.d} G=${s.G} n=${s.sizes[li]}`, {
          out: r.out.subarray(li * s.G * s.d, (li + 1) * s.G * s.d), lse: r.lse.subarray(li * s.G, (li + 1) * s.G),
        }, ref, OUT_TOL[f]));
        for (const l of lanes) a.freeLane(l);
      }
    }
  });

  test('a lane of mixed tiers (int2, int4, int8, f16, f32 pages) with masked entries, an empty lane, a repeated lane', async () => {
    const rand = rng(12);
    const a = await gpuFor(64, 4, 32);
    const tiers: Format[] = ['int2', 'int4', 'int8', 'f16', 'f32'];
    const b = build(tiers, 64, 32, 150, rand, true);
    const lane = a.createLane(), empty = a.createLane();
    upload(a, lane, tiers, b);
    const q = Float32Array.from({ length: 3 * 4 * 64 }, rand);
    const r = await a.attend([lane, empty, lane], q, 0.2);
    for (const li of [0, 2]) {
      const ref = referenceAttention(b.decoded, q.subarray(li * 256, (li + 1) * 256), 4, 64, 0.2);
      compare(`mixed lane #${li}`, { out: r.out.subarray(li * 256, (li + 1) * 256), lse: r.lse.subarray(li * 4, (li + 1) * 4) }, ref, OUT_TOL.int2);
    }
    assert.equal(Array.from(r.out.subarray(256, 512)), new Array(256).fill(0), 'empty lane: out 0');
    assert.equal(Array.from(r.lse.subarray(4, 8)), [-Infinity, -Infinity, -Infinity, -Infinity], 'empty lane: lse -Infinity');
    a.freeLane(lane); a.freeLane(empty);
  });

  test('split-K with several pages per split, several pool chunks, pool growth: same results', async () => {
    const rand = rng(13);
    const d = 64, G = 4, vg = 32;
    const b = build('f16', d, vg, 70 * PAGE_TOKENS + 5, rand);
    const q = Float32Array.from({ length: G * d }, rand);
    const ref = referenceAttention(b.decoded, q, G, d, 1 / Math.sqrt(d));
    const pb = pageBytes('f16', d, vg);
    // 3 splits over 71 pages; chunks of 16 pages (5 chunks); 71 > 64 initial slots forces growth
    for (const opts of [{ targetSplits: 3 }, { targetSplits: 1 }, { chunkBytes: 16 * pb }, { targetSplits: 1000 }]) {
      const a = await createWebGPUAttention({ context: ctx, headDim: d, groupSize: G, valueGroup: vg, ...opts });
      const lane = a.createLane();
      upload(a, lane, 'f16', b);
      compare(`f16 ${JSON.stringify(opts)}`, await a.attend([lane], q), ref, OUT_TOL.f16);
      assert.is(a.bytesResident, 71 * pb);
      a.destroy();
    }
  });

  test('GQA groups over 8 heads (head blocks) and the kernel layout knobs: same results', async () => {
    const rand = rng(18);
    const cases: Array<{ d: number; G: number; f: Format; tuning?: Record<string, number | boolean> }> = [
      { d: 32, G: 12, f: 'int4' }, // 2 head blocks of 6
      { d: 16, G: 9, f: 'f16', tuning: { wordsPerThread: 1, rowGroups: 1 } }, // blocks of 5 (one padded); 8-thread workgroups
      { d: 64, G: 2, f: 'f32', tuning: { wordsPerThread: 1 } }, // 64 threads per row: partial dots reduced in 2 rounds
      { d: 64, G: 4, f: 'int8', tuning: { wordsPerThread: 1, headsPerPass: 3, rowGroups: 32, prefetch: false } },
    ];
    for (const c of cases) {
      const vg = Math.min(32, c.d);
      const a = await createWebGPUAttention({ context: ctx, headDim: c.d, groupSize: c.G, valueGroup: vg, tuning: c.tuning });
      const b = build(c.f, c.d, vg, 3 * PAGE_TOKENS + 13, rand, true);
      const lane = a.createLane();
      upload(a, lane, c.f, b);
      const q = Float32Array.from({ length: c.G * c.d }, rand);
      compare(`${c.f} d=${c.d} G=${c.G} ${JSON.stringify(c.tuning ?? {})}`, await a.attend([lane], q), referenceAttention(b.decoded, q, c.G, c.d, 1 / Math.sqrt(c.d)), OUT_TOL[c.f]);
      a.destroy();
    }
    await rejects(() => createWebGPUAttention({ context: ctx, headDim: 64, groupSize: 4, tuning: { wordsPerThread: 3 } }), 'E_ARG', 'wordsPerThread 3');
    await rejects(() => createWebGPUAttention({ context: ctx, headDim: 64, groupSize: 4, tuning: { rowGroups: 6 } }), 'E_ARG', 'rowGroups 6');
    await rejects(() => createWebGPUAttention({ context: ctx, headDim: 64, groupSize: 4, tuning: { headsPerPass: 9 } }), 'E_ARG', 'headsPerPass 9');
    await rejects(() => createWebGPUAttention({ context: ctx, headDim: 64, groupSize: 4, tuning: { bogus: 1 } as never }), 'E_ARG', 'unknown tuning key');
  });

  test('residency: appending or replacing a page uploads that page only; truncate and free reuse slots', async () => {
    const rand = rng(14);
    const d = 64, G = 4, vg = 32;
    const a = await createWebGPUAttention({ context: ctx, headDim: d, groupSize: G, valueGroup: vg });
    const pb = pageBytes('int4', d, vg);
    const lane = a.createLane();
    const b = build('int4', d, vg, 40 * PAGE_TOKENS, rand);
    upload(a, lane, 'int4', b);
    const q = Float32Array.from({ length: G * d }, rand);
    await a.attend([lane], q);
    // spy on the queue: count bytes written into page-pool buffers
    const queue = ctx.device.queue as unknown as { writeBuffer: (buf: GpuBuffer, off: number, data: ArrayBufferView) => void };
    const orig = queue.writeBuffer;
    const writes: number[] = [];
    const poolBuffers = () => (a as unknown as { pools: Map<Format, { chunks: GpuBuffer[] }> }).pools.get('int4')!.chunks;
    queue.writeBuffer = function (buf, off, data) {
      if (poolBuffers().includes(buf)) writes.push(data.byteLength);
      return orig.call(this, buf, off, data);
    };
    try {
      const extra = build('int4', d, vg, 20, rand);
      a.writePage(lane, 40, 'int4', extra.bytes[0], 20);
      const fresh = build('int4', d, vg, PAGE_TOKENS, rand);
      a.writePage(lane, 3, 'int4', fresh.bytes[0], PAGE_TOKENS);
      const r = await a.attend([lane], q);
      assert.equal(writes, [pb, pb], 'one page per write, nothing else re-uploaded into the pool');
      const decoded = b.decoded.slice();
      decoded[3] = fresh.decoded[0];
      decoded.push(extra.decoded[0]);
      compare('after append + replace', r, referenceAttention(decoded, q, G, d, 1 / Math.sqrt(d)), OUT_TOL.int4);
    } finally {
      queue.writeBuffer = orig;
    }
    const pool = a.poolBytes;
    a.truncate(lane, 10);
    assert.is(a.pageCount(lane), 10);
    assert.is(a.entryCount(lane), 10 * PAGE_TOKENS);
    const lane2 = a.createLane();
    upload(a, lane2, 'int4', build('int4', d, vg, 31 * PAGE_TOKENS, rand));
    assert.is(a.poolBytes, pool, 'freed slots are reused: the pool did not grow');
    a.destroy();
  });

  test('equals the WASM kernels on pages made by the WASM packPage, every format', async () => {
    const engine = await createEngine();
    const rand = rng(15);
    const d = 64, G = 4, vg = 32;
    const a = await gpuFor(d, G, vg);
    const w = new WasmPagedAttention(engine, { headDim: d, groupSize: G, valueGroup: vg });
    for (const f of FORMATS) {
      const n = 3 * PAGE_TOKENS + 9;
      const k = Float32Array.from({ length: n * d }, () => 2 * rand()), v = Float32Array.from({ length: n * d }, rand);
      const lw = Float32Array.from({ length: n }, () => 0.3 * rand());
      const gl = a.createLane(), wl = w.createLane();
      const pb = pageBytes(f, d, vg);
      const kp = engine.arena.alloc(4 * PAGE_TOKENS * d), vp = engine.arena.alloc(4 * PAGE_TOKENS * d);
      const wp = engine.arena.alloc(4 * PAGE_TOKENS), pp = engine.arena.alloc(4 * PAGE_TOKENS), page = engine.arena.alloc(pb);
      for (let p = 0; p * PAGE_TOKENS < n; p++) {
        const at = p * PAGE_TOKENS, c = Math.min(PAGE_TOKENS, n - at);
        engine.f32(kp, c * d).set(k.subarray(at * d, (at + c) * d));
        engine.f32(vp, c * d).set(v.subarray(at * d, (at + c) * d));
        engine.f32(wp, c).set(lw.subarray(at, at + c));
        engine.i32(pp, c).set(Int32Array.from({ length: c }, (_, i) => at + i));
        engine.kernels.packPage(FORMAT_CODE[f], d, vg, c, kp, vp, wp, pp, page);
        const bytes = engine.u8(page, pb).slice();
        assert.equal(bytes, encodePage(f, d, vg, c, k.subarray(at * d, (at + c) * d), v.subarray(at * d, (at + c) * d), lw.subarray(at, at + c), Int32Array.from({ length: c }, (_, i) => at + i)), `${f}: TS codec and WASM packPage give the same bytes`);
        a.writePage(gl, p, f, bytes, c);
        w.writePage(wl, p, f, bytes, c);
      }
      for (const ptr of [kp, vp, wp, pp, page]) engine.arena.free(ptr);
      const q = Float32Array.from({ length: G * d }, rand);
      const rg = await a.attend([gl], q), rw = await w.attend([wl], q);
      compare(`${f}: webgpu vs wasm-simd`, rg, rw, OUT_TOL[f] + WASM_TOL[f], LSE_TOL + WASM_TOL[f]);
      a.freeLane(gl); w.freeLane(wl);
    }
    w.destroy();
  });

  test('bad input throws EdgeKVError naming the argument, and changes nothing', async () => {
    const a = await gpuFor(64, 4, 32);
    const lane = a.createLane();
    const good = build('f16', 64, 32, 32, rng(16));
    a.writePage(lane, 0, 'f16', good.bytes[0], 32);
    const q = new Float32Array(4 * 64);
    await rejects(() => a.writePage(lane, 0, 'f16', good.bytes[0].subarray(1), 32), 'E_SHAPE', 'short page');
    await rejects(() => a.writePage(lane, 0, 'int4', good.bytes[0], 32), 'E_SHAPE', 'page of another format');
    await rejects(() => a.writePage(lane, 2, 'f16', good.bytes[0], 32), 'E_ARG', 'index past the end');
    await rejects(() => a.writePage(lane, 0, 'f16', good.bytes[0], 0), 'E_ARG', 'count 0');
    await rejects(() => a.writePage(lane, 0, 'f16', good.bytes[0], 33), 'E_ARG', 'count 33');
    await rejects(() => a.writePage(lane, 0, 'bf16' as Format, good.bytes[0], 32), 'E_ARG', 'unknown format');
    await rejects(() => a.writePage(999, 0, 'f16', good.bytes[0], 32), 'E_ARG', 'unknown lane');
    await rejects(() => a.attend([lane], new Float32Array(5)), 'E_SHAPE', 'q length');
    await rejects(() => a.attend([lane], q.map((_, i) => (i === 7 ? NaN : 0))), 'E_NONFINITE', 'NaN query');
    await rejects(() => a.attend([], q), 'E_ARG', 'no lanes');
    await rejects(() => a.attend([lane], q, -1), 'E_ARG', 'negative scale');
    await rejects(() => a.truncate(lane, 5), 'E_ARG', 'truncate past the end');
    assert.is(a.pageCount(lane), 1, 'nothing changed');
    compare('still intact', await a.attend([lane], q), referenceAttention(good.decoded, q, 4, 64, 1 / 8), OUT_TOL.f16);
    await rejects(() => createWebGPUAttention({ context: ctx, headDim: 60, groupSize: 4 }), 'E_ARG', 'headDim 60');
    await rejects(() => createWebGPUAttention({ context: ctx, headDim: 64, groupSize: 33 }), 'E_ARG', 'groupSize 33');
    await rejects(() => createWebGPUAttention({ context: ctx, headDim: 64, groupSize: 4, valueGroup: 24 }), 'E_ARG', 'valueGroup 24');
    const d80 = await createWebGPUAttention({ context: ctx, headDim: 80, groupSize: 1 });
    assert.is(d80.valueGroup, 16, 'default value group for headDim 80 (as the cache)');
    d80.destroy();
    await rejects(() => createWebGPUAttention({ context: ctx, headDim: 64, groupSize: 4, chunkBytes: 8192 }), 'E_UNSUPPORTED', 'chunk smaller than a page');
    await rejects(() => createWebGPUAttention({ context: ctx, headDim: 64, groupSize: 4, bogus: 1 } as never), 'E_ARG', 'unknown option');
    a.freeLane(lane);
  });

  test('geometry over the device limits: E_UNSUPPORTED, and the registry falls back to WASM with one notice', async () => {
    // the kernels fit 16 KiB of workgroup memory at every supported shape (G=32, d=256 too);
    // a device that reports 4 KiB does not take d=128, G=4
    const small = await createWebGPUContext({ device: limitedDevice(ctx.device, { maxComputeWorkgroupStorageSize: 4096 }), onNotice: () => {} });
    await rejects(() => createWebGPUAttention({ context: small, headDim: 128, groupSize: 4 }), 'E_UNSUPPORTED', 'd=128 G=4 over 4096 bytes of workgroup memory');
    const big = await createWebGPUAttention({ context: ctx, headDim: 256, groupSize: 32 });
    big.destroy();
    const notices: string[] = [];
    const p = await createPagedAttention({ backend: 'webgpu', context: small, headDim: 128, groupSize: 4, onNotice: (m) => notices.push(m) });
    assert.is(p.backend, 'wasm-simd');
    assert.is(notices.length, 1, notices.join('\n'));
    p.destroy();
  });

  test('no adapter: createWebGPUAttention throws E_BACKEND; the registry falls back with one notice; auto never picks webgpu', async () => {
    const none: Gpu = { requestAdapter: async () => null };
    await rejects(() => createWebGPUAttention({ gpu: none, headDim: 64, groupSize: 4 }), 'E_BACKEND', 'no adapter');
    const notices: string[] = [];
    const p = await createPagedAttention({ backend: 'webgpu', gpu: none, headDim: 64, groupSize: 4, onNotice: (m) => notices.push(m) });
    assert.is(p.backend, 'wasm-simd');
    assert.is(notices.length, 1);
    assert.match(notices[0], 'no adapter');
    const auto = await createPagedAttention({ headDim: 64, groupSize: 4, gpu, onNotice: (m) => notices.push(m) });
    assert.is(auto.backend, 'wasm-simd');
    assert.is(notices.length, 1);
    p.destroy(); auto.destroy();
  });

  test('device lost mid-run: E_BACKEND from the GPU-only backend; the mirrored backend continues on WASM, same results', async () => {
    const rand = rng(17);
    // a small shape: every new device compiles its kernels again
    const d = 8, G = 1, vg = 8;
    const b = build(['int4', 'f16'], d, vg, 100, rand);
    const q = Float32Array.from({ length: G * d }, rand);
    const ref = referenceAttention(b.decoded, q, G, d, 1 / Math.sqrt(d));
    // GPU only: the pages are gone with the device
    const own = await createWebGPUContext({ gpu, onNotice: () => {} });
    const a = await createWebGPUAttention({ context: own, headDim: d, groupSize: G });
    const lane = a.createLane();
    upload(a, lane, ['int4', 'f16'], b);
    compare('before loss', await a.attend([lane], q), ref, OUT_TOL.int4);
    own.device.destroy();
    await own.device.lost;
    await rejects(() => a.attend([lane], q), 'E_BACKEND', 'attend after loss');
    await rejects(() => a.writePage(lane, 0, 'int4', b.bytes[0], 32), 'E_BACKEND', 'writePage after loss');
    // mirrored: one notice, then WASM
    const notices: string[] = [];
    const own2 = await createWebGPUContext({ gpu, onNotice: () => {} });
    const m = await createPagedAttention({ backend: 'webgpu', context: own2, headDim: d, groupSize: G, keepHostCopy: true, onNotice: (x) => notices.push(x) });
    const ml = m.createLane();
    b.bytes.forEach((bytes, i) => m.writePage(ml, i, i % 2 === 0 ? 'int4' : 'f16', bytes, b.counts[i]));
    assert.is(m.backend, 'webgpu');
    compare('mirrored on GPU', await m.attend([ml], q), ref, OUT_TOL.int4);
    own2.device.destroy();
    await own2.device.lost;
    compare('mirrored after loss', await m.attend([ml], q), ref, WASM_TOL.int4, WASM_TOL.int4);
    assert.is(m.backend, 'wasm-simd');
    assert.is(notices.length, 1, notices.join('\n'));
    m.destroy();
  });

  test('destroyed object: E_STATE', async () => {
    const a = await createWebGPUAttention({ context: ctx, headDim: 8, groupSize: 1 });
    a.destroy();
    await rejects(() => a.createLane(), 'E_STATE', 'createLane after destroy');
  });

  test('cleanup', () => {
    for (const a of instances.values()) a.destroy();
    ctx.destroy();
  });

  test.run();
}

export type { WebGPUContext };

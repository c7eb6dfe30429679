/**
 * Packed formats: f16 conversion inside pages, KIVI group quantization (keys per
 * channel, values per token over groups), fused dequantize-dot / -axpy and page
 * pack/unpack, each in the SIMD build, the scalar build and the float64 reference.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine, type Engine } from '../../src/engine.ts';
import { FORMATS, FORMAT_CODE, PAGE_TOKENS, pageBytes, packedOffsets, isPacked, type Format } from '../../src/formats.ts';
import * as ref from '../../src/reference/quant.ts';
import { rng, gauss } from './random.ts';

const test = suite('kernels/quant');

let engines: Engine[] = [];
test.before(async () => {
  engines = [await createEngine({ backend: 'wasm-simd' }), await createEngine({ backend: 'wasm-scalar' })];
});

const BITS = [8, 4, 2] as const;
const HEAD_DIMS = [8, 64, 128];
const COUNTS = [1, 2, 3, 7, 8, 9, 31, 32];

/** Run a kernel on copies of the inputs; returns the output bytes. */
function withMem<T>(e: Engine, fn: (alloc: (bytes: number) => number) => T): T {
  const ptrs: number[] = [];
  try {
    return fn((bytes) => { const p = e.arena.alloc(Math.max(bytes, 16)); e.u8(p, Math.max(bytes, 16)).fill(0); ptrs.push(p); return p; });
  } finally { for (const p of ptrs) e.arena.free(p); }
}

function kernelPack(e: Engine, format: Format, d: number, vg: number, count: number, k: Float32Array, v: Float32Array, logW: Float32Array, pos: Int32Array): Uint8Array {
  return withMem(e, (alloc) => {
    const kp = alloc(k.byteLength), vp = alloc(v.byteLength), wp = alloc(logW.byteLength), pp = alloc(pos.byteLength);
    const bytes = pageBytes(format, d, vg);
    const page = alloc(bytes);
    e.u8(page, bytes).fill(0xa5); // garbage: packPage must define every byte
    e.f32(kp, k.length).set(k); e.f32(vp, v.length).set(v); e.f32(wp, logW.length).set(logW); e.i32(pp, pos.length).set(pos);
    e.kernels.packPage(FORMAT_CODE[format], d, vg, count, kp, vp, wp, pp, page);
    return e.u8(page, bytes).slice();
  });
}

function kernelUnpack(e: Engine, format: Format, d: number, vg: number, count: number, bytes: Uint8Array) {
  return withMem(e, (alloc) => {
    const page = alloc(bytes.length);
    e.u8(page, bytes.length).set(bytes);
    const kp = alloc(count * d * 4), vp = alloc(count * d * 4), wp = alloc(count * 4), pp = alloc(count * 4);
    e.kernels.unpackPage(FORMAT_CODE[format], d, vg, count, page, kp, vp, wp, pp);
    return { k: e.f32(kp, count * d).slice(), v: e.f32(vp, count * d).slice(), logW: e.f32(wp, count).slice(), pos: e.i32(pp, count).slice() };
  });
}

function sample(seed: number, count: number, d: number) {
  const r = rng(seed);
  const k = gauss(r, count * d, 1.5, 0.3);
  const v = gauss(r, count * d);
  // a few outlier channels, as real keys have
  for (let t = 0; t < count; t++) { k[t * d] *= 8; if (d > 8) k[t * d + 5] += 12; }
  const logW = new Float32Array(count).map(() => (r() < 0.3 ? Math.log(1 + Math.floor(r() * 8)) : 0));
  const pos = new Int32Array(count).map((_, i) => 1000 + 3 * i);
  return { k, v, logW, pos };
}

/** Codes may differ from the float64 reference by one only where the value is within f32 rounding of a tie. */
function assertCodesClose(kernel: Uint8Array, reference: Uint8Array, bits: number, R: number, rows: number, what: string): void {
  let mismatches = 0;
  const mask = (1 << bits) - 1;
  for (let i = 0; i < rows * R; i++) {
    if (kernel[i] === reference[i]) continue;
    for (let s = 0; s < 8 / bits; s++) {
      const a = (kernel[i] >> (s * bits)) & mask, b = (reference[i] >> (s * bits)) & mask;
      if (a !== b) {
        mismatches++;
        assert.ok(Math.abs(a - b) === 1, `${what}: code ${a} vs reference ${b} at byte ${i}`);
      }
    }
  }
  assert.ok(mismatches <= Math.max(1, (rows * R * 8) / bits / 1000), `${what}: ${mismatches} codes differ from the reference (ties only expected)`);
}

test('f16 pages: round to nearest even, subnormals, overflow edge, exact decode', () => {
  const special = [0, -0, 1, -1, 65504, -65504, 65519.99, 6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-7, 1.00048828125, 1.000732421875, 1.00146484375, 0.1, 3.14159, -2.5e-6, 1024.5, 2049];
  const d = 8, vg = 8, count = Math.ceil(special.length / d);
  const k = new Float32Array(count * d); k.set(special);
  const v = new Float32Array(count * d).map((_, i) => -k[i]);
  const logW = new Float32Array(count), pos = new Int32Array(count);
  const want = ref.packPage('f16', d, vg, count, k, v, logW, pos);
  for (const e of engines) {
    const got = kernelPack(e, 'f16', d, vg, count, k, v, logW, pos);
    assert.equal(Array.from(got), Array.from(want), `${e.backend}: f16 page bytes`);
    const back = kernelUnpack(e, 'f16', d, vg, count, got);
    const dec = ref.unpackPage('f16', d, vg, count, got);
    assert.equal(Array.from(back.k), Array.from(dec.k).map(Math.fround), `${e.backend}: f16 decode exact`);
  }
  // spot-check the reference itself against known encodings
  assert.is(ref.floatToHalf(65504), 0x7bff);
  assert.is(ref.floatToHalf(65520), 0x7c00);
  assert.is(ref.floatToHalf(1.00048828125), 0x3c00); // tie -> even
  assert.is(ref.floatToHalf(1.00146484375), 0x3c02); // tie -> even (up)
  assert.is(ref.floatToHalf(1.000732421875), 0x3c01);
  assert.is(ref.floatToHalf(2 ** -24), 1);
  assert.is(ref.floatToHalf(2 ** -25), 0); // tie -> even (zero)
  assert.is(ref.halfToFloat(0x3555), 0.333251953125);
});

test('unpackPage decodes every binary16 pattern of an f16 page exactly (Inf, NaN, subnormals, -0)', () => {
  const d = 8, vg = 8, count = PAGE_TOKENS;
  const bytes = new Uint8Array(pageBytes('f16', d, vg));
  const u16 = new Uint16Array(bytes.buffer, 256);
  const patterns = [0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400, 0x3c00, 0xbc00, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0xfe01, 0x3555, 0x1234];
  const r = rng(3);
  for (let i = 0; i < 2 * count * d; i++) u16[i] = i < patterns.length ? patterns[i] : Math.floor(r() * 65536);
  for (const e of engines) withMem(e, (alloc) => {
    const page = alloc(bytes.length), kp = alloc(count * d * 4), vp = alloc(count * d * 4);
    e.u8(page, bytes.length).set(bytes);
    e.kernels.unpackPage(FORMAT_CODE.f16, d, vg, count, page, kp, vp, 0, 0);
    const k = e.f32(kp, count * d), v = e.f32(vp, count * d);
    for (let i = 0; i < count * d; i++) {
      for (const [got, bits] of [[k[i], u16[i]], [v[i], u16[count * d + i]]]) {
        const want = ref.halfToFloat(bits);
        assert.ok(Number.isNaN(want) ? Number.isNaN(got) : Object.is(got, want), `${e.backend}: 0x${bits.toString(16)} -> ${got}, want ${want}`);
      }
    }
  });
});

test('halfDown / halfUp bracket their argument', () => {
  const r = rng(7);
  for (let i = 0; i < 2000; i++) {
    const x = Math.fround((r() - 0.5) * 2 ** Math.floor(r() * 30 - 20));
    const lo = ref.halfToFloat(ref.halfDown(x)), hi = ref.halfToFloat(ref.halfUp(Math.abs(x)));
    assert.ok(lo <= x, `halfDown(${x}) = ${lo}`);
    assert.ok(hi >= Math.abs(x), `halfUp(${x}) = ${hi}`);
    assert.ok(x - lo <= Math.max(2 ** -24, Math.abs(x) * 2 ** -10), 'halfDown is one step at most');
  }
});

test('quantKeys / quantValues: stored f16 scale and min equal the reference, codes equal up to ties', () => {
  for (const bits of BITS) for (const d of HEAD_DIMS) for (const n of COUNTS) {
    const vg = Math.min(32, d);
    const R = (d * bits) / 8, ng = d / vg;
    const { k, v } = sample(bits * 1000 + d * 10 + n, n, d);
    const kr = ref.quantKeys(k, n, d, bits), vr = ref.quantValues(v, n, d, vg, bits);
    const outs: Uint8Array[] = [];
    for (const e of engines) {
      withMem(e, (alloc) => {
        const src = alloc(n * d * 4), codes = alloc(n * R), sc = alloc(2 * d), mn = alloc(2 * d);
        e.f32(src, n * d).set(k);
        e.kernels.quantKeys(src, n, d, bits, codes, sc, mn);
        const what = `${e.backend} keys bits=${bits} d=${d} n=${n}`;
        assert.equal(Array.from(e.u16(sc, d)), Array.from(kr.scale), `${what}: scale`);
        assert.equal(Array.from(e.u16(mn, d)), Array.from(kr.min), `${what}: min`);
        const kc = e.u8(codes, n * R).slice();
        assertCodesClose(kc, kr.codes, bits, R, n, what);
        outs.push(kc);
        const vsrc = alloc(n * d * 4), vcodes = alloc(n * R), vsc = alloc(2 * n * ng), vmn = alloc(2 * n * ng);
        e.f32(vsrc, n * d).set(v);
        e.kernels.quantValues(vsrc, n, d, vg, bits, vcodes, vsc, vmn);
        const vwhat = `${e.backend} values bits=${bits} d=${d} n=${n}`;
        assert.equal(Array.from(e.u16(vsc, n * ng)), Array.from(vr.scale), `${vwhat}: scale`);
        assert.equal(Array.from(e.u16(vmn, n * ng)), Array.from(vr.min), `${vwhat}: min`);
        const vc = e.u8(vcodes, n * R).slice();
        assertCodesClose(vc, vr.codes, bits, R, n, vwhat);
        outs.push(vc);
      });
    }
    assert.equal(Array.from(outs[0]), Array.from(outs[2]), 'SIMD and scalar key codes identical');
    assert.equal(Array.from(outs[1]), Array.from(outs[3]), 'SIMD and scalar value codes identical');
  }
});

test('round trip: |x - x^| <= half the stored step, and the stored step is the ideal one up to f16 rounding', () => {
  for (const bits of BITS) for (const d of [64, 128]) {
    const levels = 2 ** bits - 1;
    const n = PAGE_TOKENS, vg = 32;
    const R = (d * bits) / 8, ng = d / vg;
    const { k, v } = sample(bits * 77 + d, n, d);
    for (const e of engines) {
      withMem(e, (alloc) => {
        const src = alloc(n * d * 4), codes = alloc(n * R), sc = alloc(2 * n * ng + 2 * d), mn = alloc(2 * n * ng + 2 * d), dst = alloc(n * d * 4);
        // keys
        e.f32(src, n * d).set(k);
        e.kernels.quantKeys(src, n, d, bits, codes, sc, mn);
        e.kernels.dequantKeys(codes, sc, mn, n, d, bits, dst);
        const kh = e.f32(dst, n * d).slice();
        const ks = Array.from(e.u16(sc, d), ref.halfToFloat);
        let worst = 0;
        for (let c = 0; c < d; c++) {
          let lo = Infinity, hi = -Infinity;
          for (let t = 0; t < n; t++) { lo = Math.min(lo, k[t * d + c]); hi = Math.max(hi, k[t * d + c]); }
          const ideal = (hi - lo) / levels;
          // stored step: ideal, widened by rounding the min down and the step up to f16
          assert.ok(ks[c] <= (ideal + (2 ** -10) * Math.abs(lo) / levels) * (1 + 2 ** -10) + 2 ** -24, `keys step c=${c}`);
          for (let t = 0; t < n; t++) {
            const err = Math.abs(kh[t * d + c] - k[t * d + c]);
            worst = Math.max(worst, err / ks[c]);
            assert.ok(err <= ks[c] * (0.5 + ref.ROUND_TRIP_F32_SLACK) + 1e-6 * Math.abs(k[t * d + c]), `${e.backend} keys bits=${bits} err ${err} > half step ${ks[c] / 2}`);
          }
        }
        assert.ok(worst <= ref.ERROR_BUDGETS[bits === 8 ? 'int8' : bits === 4 ? 'int4' : 'int2'].roundTripSteps + ref.ROUND_TRIP_F32_SLACK + 1e-3);
        // values
        e.f32(src, n * d).set(v);
        e.kernels.quantValues(src, n, d, vg, bits, codes, sc, mn);
        e.kernels.dequantValues(codes, sc, mn, n, d, vg, bits, dst);
        const vh = e.f32(dst, n * d).slice();
        const vs = Array.from(e.u16(sc, n * ng), ref.halfToFloat);
        for (let t = 0; t < n; t++) for (let c = 0; c < d; c++) {
          const step = vs[t * ng + Math.floor(c / vg)];
          const err = Math.abs(vh[t * d + c] - v[t * d + c]);
          assert.ok(err <= step * (0.5 + ref.ROUND_TRIP_F32_SLACK) + 1e-6 * Math.abs(v[t * d + c]), `${e.backend} values bits=${bits} err ${err} > half step ${step / 2}`);
        }
      });
    }
  }
});

test('constant groups: scale 0, codes 0, exact round trip', () => {
  const d = 64, n = 9, vg = 32;
  const k = new Float32Array(n * d).map((_, i) => ((i % d) - 20) * 0.375); // constant per channel
  const v = new Float32Array(n * d).map((_, i) => Math.floor(i / d) * 0.5 - 1); // constant per token
  for (const bits of BITS) for (const e of engines) {
    const page = kernelPack(e, bits === 8 ? 'int8' : bits === 4 ? 'int4' : 'int2', d, vg, n, k, v, new Float32Array(n), new Int32Array(n));
    const fmt = bits === 8 ? 'int8' : bits === 4 ? 'int4' : 'int2';
    const o = packedOffsets(fmt, d, vg);
    const dv = new DataView(page.buffer);
    for (let c = 0; c < d; c++) assert.is(dv.getUint16(o.kScale + 2 * c, true), 0, 'key scale 0');
    for (let i = 0; i < n * o.R; i++) assert.is(page[o.kCodes + i], 0);
    const back = kernelUnpack(e, fmt, d, vg, n, page);
    assert.equal(Array.from(back.k), Array.from(k), `${e.backend} ${fmt} constant keys exact`);
    assert.equal(Array.from(back.v), Array.from(v), `${e.backend} ${fmt} constant values exact`);
  }
});

test('qdotKeys / qaxpyValues equal the float64 reference on the dequantized codes', () => {
  for (const bits of BITS) for (const d of HEAD_DIMS) for (const n of [1, 3, 8, 9, 31, 32]) {
    const vg = Math.min(32, d), R = (d * bits) / 8, ng = d / vg;
    const { k, v } = sample(bits + d + n, n, d);
    const r = rng(n * 31 + d);
    const q = gauss(r, d), p = new Float32Array(n).map(() => r());
    const kr = ref.quantKeys(k, n, d, bits), vr = ref.quantValues(v, n, d, vg, bits);
    const kd = ref.dequantKeys(kr, n, d, bits), vd = ref.dequantValues(vr, n, d, vg, bits);
    const wantDot = new Float64Array(n), wantAxpy = new Float64Array(d).fill(0.25);
    let dotScale = 0;
    for (let t = 0; t < n; t++) for (let c = 0; c < d; c++) { wantDot[t] += q[c] * kd[t * d + c]; dotScale += Math.abs(q[c] * kd[t * d + c]) / n; }
    for (let t = 0; t < n; t++) for (let c = 0; c < d; c++) wantAxpy[c] += p[t] * vd[t * d + c];
    for (const e of engines) withMem(e, (alloc) => {
      const codes = alloc(n * R), sc = alloc(2 * Math.max(d, n * ng)), mn = alloc(2 * Math.max(d, n * ng));
      const qp = alloc(4 * d), out = alloc(4 * Math.max(n, d)), pp = alloc(4 * n);
      e.u8(codes, n * R).set(kr.codes); e.u16(sc, d).set(kr.scale); e.u16(mn, d).set(kr.min);
      e.f32(qp, d).set(q);
      e.kernels.qdotKeys(codes, sc, mn, n, d, bits, qp, out);
      const got = e.f32(out, n);
      for (let t = 0; t < n; t++) assert.ok(Math.abs(got[t] - wantDot[t]) <= 1e-5 * dotScale * d, `${e.backend} qdot bits=${bits} d=${d} t=${t}: ${got[t]} vs ${wantDot[t]}`);
      e.u8(codes, n * R).set(vr.codes); e.u16(sc, n * ng).set(vr.scale); e.u16(mn, n * ng).set(vr.min);
      e.f32(pp, n).set(p); e.f32(out, d).fill(0.25);
      e.kernels.qaxpyValues(codes, sc, mn, n, d, vg, bits, pp, out);
      const ga = e.f32(out, d);
      for (let c = 0; c < d; c++) assert.ok(Math.abs(ga[c] - wantAxpy[c]) <= 1e-5 * (1 + Math.abs(wantAxpy[c])) * n, `${e.backend} qaxpy bits=${bits} d=${d} c=${c}`);
    });
  }
});

const PAGE_CASES: [number, number][] = [[8, 8], [64, 32], [128, 32], [64, 4], [64, 8], [64, 16], [80, 16], [96, 32], [256, 64]];

test('packPage / unpackPage: every format, head dim, value group and fill; SIMD = scalar = reference bytes', () => {
  for (const format of FORMATS) for (const [d, vg] of PAGE_CASES) for (const count of [0, ...COUNTS]) {
    if (vg !== Math.min(32, d) && count % 7 !== 1 && count !== 32) continue; // fewer fills for the extra groups
    const { k, v, logW, pos } = sample(count * 13 + d, count, d);
    const want = ref.packPage(format, d, vg, count, k, v, logW, pos);
    const pages = engines.map((e) => kernelPack(e, format, d, vg, count, k, v, logW, pos));
    const what = `${format} d=${d} vg=${vg} count=${count}`;
    assert.equal(Array.from(pages[0]), Array.from(pages[1]), `${what}: SIMD and scalar page bytes identical`);
    if (!isPacked(format)) {
      assert.equal(Array.from(pages[0]), Array.from(want), `${what}: bytes equal the reference`);
    } else {
      const o = packedOffsets(format, d, vg);
      // everything but the codes is exact
      assert.equal(Array.from(pages[0].subarray(0, o.kCodes)), Array.from(want.subarray(0, o.kCodes)), `${what}: header, key scale/min`);
      assert.equal(Array.from(pages[0].subarray(o.vScale, o.vCodes)), Array.from(want.subarray(o.vScale, o.vCodes)), `${what}: value scale/min`);
      assertCodesClose(pages[0].subarray(o.kCodes, o.vScale), want.subarray(o.kCodes, o.vScale), o.bits, o.R, PAGE_TOKENS, `${what} key codes`);
      assertCodesClose(pages[0].subarray(o.vCodes), want.subarray(o.vCodes), o.bits, o.R, PAGE_TOKENS, `${what} value codes`);
    }
    for (const e of engines) {
      const back = kernelUnpack(e, format, d, vg, count, pages[0]);
      const dec = ref.unpackPage(format, d, vg, count, pages[0]);
      assert.equal(Array.from(back.logW), Array.from(logW), `${what}: logW`);
      assert.equal(Array.from(back.pos), Array.from(pos), `${what}: pos`);
      for (let i = 0; i < count * d; i++) {
        assert.ok(Math.abs(back.k[i] - dec.k[i]) <= 1e-6 * Math.abs(dec.k[i]) + 1e-30, `${e.backend} ${what}: k[${i}] ${back.k[i]} vs ${dec.k[i]}`);
        assert.ok(Math.abs(back.v[i] - dec.v[i]) <= 1e-6 * Math.abs(dec.v[i]) + 1e-30, `${e.backend} ${what}: v[${i}]`);
      }
      if (format === 'f32') assert.equal(Array.from(back.k), Array.from(k));
    }
  }
});

test('unpackPage skips null destinations', () => {
  const e = engines[0];
  const d = 64, vg = 32, count = 5;
  const { k, v, logW, pos } = sample(5, count, d);
  for (const format of FORMATS) {
    const page = kernelPack(e, format, d, vg, count, k, v, logW, pos);
    withMem(e, (alloc) => {
      const pp = alloc(page.length);
      e.u8(pp, page.length).set(page);
      const wp = alloc(count * 4);
      e.kernels.unpackPage(FORMAT_CODE[format], d, vg, count, pp, 0, 0, wp, 0);
      assert.equal(Array.from(e.f32(wp, count)), Array.from(logW));
    });
  }
});

test.run();

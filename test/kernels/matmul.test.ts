/**
 * Model-runner kernels (assembly/kernels/matmul.ts): SIMD build vs scalar build vs the
 * float64 references in src/reference/matmul.ts, at sizes around the tile edges
 * (4 f32 lanes, 8-column unroll, 2-row x 4-token prefill tiles, 4-row matvec passes).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine, type Engine } from '../../src/engine.ts';
import { f16ToNumber } from '../../src/reference/basic.ts';
import {
  matmulRef, rmsNormRef, ropeRef, ropeInvFreq, swigluRef, argmaxRef, embedRef, attendExactRef,
} from '../../src/reference/matmul.ts';
import { mulberry32 as rng } from '../../src/model/sampling.ts';

/** |kernel - reference| <= DOT_REL_TOL * sum |w x| (f32 accumulation of up to ~1K terms). */
const DOT_REL_TOL = 1e-5;
/** Element-wise kernels (rmsnorm, rope, swiglu): relative to the magnitude of the operands. */
const ELEMWISE_TOL = 2e-6;
/** Attention output: relative to max |v|. */
const ATTN_TOL = 2e-5;

const COLS = [1, 2, 3, 7, 8, 9, 63, 64, 65, 1023];
const ROWS = [1, 2, 3, 4, 5, 9];
const TOKENS = [1, 2, 3, 4, 5, 8, 9];

const engines: Promise<Engine[]> = Promise.all([createEngine({ backend: 'wasm-simd' }), createEngine({ backend: 'wasm-scalar' })]);

/** Deterministic PRNG (mulberry32). */

function randF32(r: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

/** Random finite f16 bit patterns: mostly |w| in [2^-8, 2), plus zeros, -0 and subnormals. */
function randF16(r: () => number, n: number): Uint16Array {
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    const sign = r() < 0.5 ? 0x8000 : 0;
    const mant = Math.floor(r() * 1024);
    if (u < 0.05) a[i] = sign; // ±0
    else if (u < 0.15) a[i] = sign | mant; // subnormal
    else a[i] = sign | ((7 + Math.floor(r() * 9)) << 10) | mant; // 2^-8 .. 2^0 scale
  }
  return a;
}

function put(e: Engine, data: Float32Array | Uint16Array | Int32Array): number {
  return e.copyIn(data);
}

function closeTo(got: ArrayLike<number>, want: ArrayLike<number>, bound: (i: number) => number, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= bound(i))) assert.unreachable(`${what}[${i}]: got ${got[i]}, want ${want[i]} (err ${err} > ${bound(i)})`);
  }
}

function absDots(w: Float32Array | Uint16Array, x: Float32Array, rows: number, cols: number, n: number): Float64Array {
  const aw = w instanceof Uint16Array ? Float64Array.from(w, (h) => Math.abs(f16ToNumber(h))) : Float64Array.from(w, Math.abs);
  return matmulRef(aw, Float64Array.from(x, Math.abs), rows, cols, n);
}

for (const dtype of ['f16', 'f32'] as const) {
  test(`matvec${dtype.toUpperCase()} / matmul${dtype.toUpperCase()}: SIMD and scalar vs float64 reference at tile edges`, async () => {
    const r = rng(dtype === 'f16' ? 1 : 2);
    for (const e of await engines) {
      const k = e.kernels;
      for (const cols of COLS) for (const rows of ROWS) for (const n of TOKENS) {
        if (cols === 1023 && n > 5) continue; // keep the test fast
        const w = dtype === 'f16' ? randF16(r, rows * cols) : randF32(r, rows * cols);
        const x = randF32(r, n * cols, 2);
        const want = matmulRef(w, x, rows, cols, n);
        const abs = absDots(w, x, rows, cols, n);
        const pw = put(e, w), px = put(e, x), py = e.arena.alloc(4 * n * rows);
        if (dtype === 'f16') k.matmulF16(pw, px, py, rows, cols, n, 1);
        else k.matmulF32(pw, px, py, rows, cols, n);
        const what = `${e.backend} ${dtype} rows=${rows} cols=${cols} n=${n}`;
        closeTo(e.f32(py, n * rows), want, (i) => DOT_REL_TOL * abs[i] + 1e-30, `matmul ${what}`);
        if (n === 1) {
          e.f32(py, rows).fill(NaN);
          if (dtype === 'f16') k.matvecF16(pw, px, py, rows, cols, 1);
          else k.matvecF32(pw, px, py, rows, cols);
          closeTo(e.f32(py, rows), want, (i) => DOT_REL_TOL * abs[i] + 1e-30, `matvec ${what}`);
        }
        e.arena.free(pw); e.arena.free(px); e.arena.free(py);
      }
    }
  });
}

test('matmulF16: a tile result equals the matvec of each token (prefill == decode)', async () => {
  const r = rng(3);
  const [simd] = await engines;
  const rows = 9, cols = 67, n = 9;
  const w = randF16(r, rows * cols), x = randF32(r, n * cols);
  const pw = put(simd, w), px = put(simd, x), py = simd.arena.alloc(4 * n * rows), pv = simd.arena.alloc(4 * rows);
  simd.kernels.matmulF16(pw, px, py, rows, cols, n, 1);
  const abs = absDots(w, x, rows, cols, n);
  for (let t = 0; t < n; t++) {
    simd.kernels.matvecF16(pw, px + 4 * t * cols, pv, rows, cols, 1);
    closeTo(simd.f32(pv, rows), simd.f32(py + 4 * t * rows, rows), (i) => 2 * DOT_REL_TOL * abs[t * rows + i], `token ${t}`);
  }
});

test('matmulF16 across several decoded row blocks and beyond the block scratch (wide rows)', async () => {
  const r = rng(11);
  for (const e of await engines) {
    for (const [rows, cols, n] of [[37, 1023, 5], [3, 16385, 4], [70, 512, 9]]) {
      const w = randF16(r, rows * cols), x = randF32(r, n * cols);
      const want = matmulRef(w, x, rows, cols, n);
      const abs = absDots(w, x, rows, cols, n);
      const pw = put(e, w), px = put(e, x), py = e.arena.alloc(4 * n * rows);
      e.kernels.matmulF16(pw, px, py, rows, cols, n, 1);
      closeTo(e.f32(py, n * rows), want, (i) => DOT_REL_TOL * abs[i] + 1e-30, `${e.backend} rows=${rows} cols=${cols} n=${n}`);
      for (const p of [pw, px, py]) e.arena.free(p);
    }
  }
});

test('f16 weight scale: a power of two applied exactly (matvec and matmul, SIMD and scalar)', async () => {
  const r = rng(10);
  for (const e of await engines) {
    for (const [rows, cols, n] of [[5, 67, 1], [9, 65, 6], [3, 8, 4]]) {
      const w = randF16(r, rows * cols), x = randF32(r, n * cols);
      const pw = put(e, w), px = put(e, x), py = e.arena.alloc(4 * n * rows), pz = e.arena.alloc(4 * n * rows);
      e.kernels.matmulF16(pw, px, py, rows, cols, n, 1);
      for (const scale of [2 ** -10, 2 ** 3]) {
        e.kernels.matmulF16(pw, px, pz, rows, cols, n, scale);
        closeTo(e.f32(pz, n * rows), Array.from(e.f32(py, n * rows), (v) => v * scale), () => 0, `${e.backend} matmul scale=${scale}`);
        if (n === 1) {
          e.kernels.matvecF16(pw, px, pz, rows, cols, scale);
          closeTo(e.f32(pz, rows), Array.from(e.f32(py, rows), (v) => v * scale), () => 0, `${e.backend} matvec scale=${scale}`);
        }
      }
      for (const p of [pw, px, py, pz]) e.arena.free(p);
    }
  }
});

test('rmsNormF32 (in place and out of place) vs reference', async () => {
  const r = rng(4);
  for (const e of await engines) {
    for (const dim of [1, 3, 4, 7, 8, 9, 64, 65, 512]) for (const n of [1, 2, 5]) {
      const x = randF32(r, n * dim, 3), wt = randF32(r, dim);
      const eps = 1e-5;
      const want = rmsNormRef(x, wt, dim, n, eps);
      const px = put(e, x), pw = put(e, wt), py = e.arena.alloc(4 * n * dim);
      e.kernels.rmsNormF32(px, pw, py, dim, n, eps);
      closeTo(e.f32(py, n * dim), want, (i) => ELEMWISE_TOL * (Math.abs(want[i]) + 1e-6), `${e.backend} dim=${dim} n=${n}`);
      e.kernels.rmsNormF32(px, pw, px, dim, n, eps);
      closeTo(e.f32(px, n * dim), want, (i) => ELEMWISE_TOL * (Math.abs(want[i]) + 1e-6), `${e.backend} in place dim=${dim} n=${n}`);
      e.arena.free(px); e.arena.free(pw); e.arena.free(py);
    }
  }
});

test('ropeRotateHalfF32 vs reference (theta 10000, positions up to 4095)', async () => {
  const r = rng(5);
  for (const e of await engines) {
    for (const headDim of [2, 8, 64, 128]) for (const [n, heads] of [[1, 1], [3, 2], [5, 8]]) {
      const x = randF32(r, n * heads * headDim);
      const positions = Int32Array.from({ length: n }, (_, i) => (i === 0 ? 0 : Math.floor(r() * 4096)));
      const inv = ropeInvFreq(10000, headDim);
      const want = ropeRef(x, positions, inv, n, heads, headDim);
      const px = put(e, x), pp = put(e, positions), pi = put(e, inv);
      e.kernels.ropeRotateHalfF32(px, pp, pi, n, heads, headDim);
      closeTo(e.f32(px, x.length), want, () => 4 * ELEMWISE_TOL, `${e.backend} d=${headDim} n=${n} heads=${heads}`);
      e.arena.free(px); e.arena.free(pp); e.arena.free(pi);
    }
  }
});

test('ropeInvFreq matches the Hugging Face f32 formula at the ends', () => {
  const inv = ropeInvFreq(10000, 64);
  assert.is(inv.length, 32);
  assert.is(inv[0], 1);
  assert.ok(Math.abs(inv[31] - 10000 ** (-62 / 64)) < 1e-9);
});

test('swigluF32 and addF32 vs reference', async () => {
  const r = rng(6);
  for (const e of await engines) {
    for (const len of [1, 3, 4, 5, 172, 1408, 1409]) {
      const g = randF32(r, len, 12), u = randF32(r, len, 3);
      const want = swigluRef(g, u);
      const pg = put(e, g), pu = put(e, u), po = e.arena.alloc(4 * len);
      e.kernels.swigluF32(pg, pu, po, len);
      closeTo(e.f32(po, len), want, (i) => ELEMWISE_TOL * (Math.abs(want[i]) + 1e-30), `${e.backend} swiglu len=${len}`);
      e.kernels.addF32(pg, pu, len);
      closeTo(e.f32(pg, len), Float64Array.from(g, (v, i) => Math.fround(v + u[i])), () => 0, `${e.backend} add len=${len}`);
      e.arena.free(pg); e.arena.free(pu); e.arena.free(po);
    }
  }
});

test('argmaxF32: first maximum, NaN skipped, -1 for all-NaN', async () => {
  const r = rng(7);
  for (const e of await engines) {
    for (const n of [1, 2, 7, 8192]) {
      const x = randF32(r, n);
      if (n > 2) { x[1] = NaN; x[n - 1] = x[0] = 5; }
      const p = put(e, x);
      assert.is(e.kernels.argmaxF32(p, n), argmaxRef(x), `${e.backend} n=${n}`);
      e.arena.free(p);
    }
    const nan = put(e, new Float32Array([NaN, NaN]));
    assert.is(e.kernels.argmaxF32(nan, 2), -1);
    const inf = put(e, new Float32Array([-Infinity, -Infinity]));
    assert.is(e.kernels.argmaxF32(inf, 2), 0);
  }
});

test('embedF16 / embedF32 vs reference', async () => {
  const r = rng(8);
  for (const e of await engines) {
    const vocab = 11, dim = 9;
    const t16 = randF16(r, vocab * dim), t32 = randF32(r, vocab * dim);
    const ids = Int32Array.from([0, 10, 3, 3, 7]);
    const p16 = put(e, t16), p32 = put(e, t32), pi = put(e, ids), po = e.arena.alloc(4 * ids.length * dim);
    e.kernels.embedF16(p16, pi, ids.length, dim, po, 1);
    closeTo(e.f32(po, ids.length * dim), embedRef(t16, ids, dim), () => 0, `${e.backend} f16`);
    e.kernels.embedF16(p16, pi, ids.length, dim, po, 2 ** -10);
    closeTo(e.f32(po, ids.length * dim), embedRef(t16, ids, dim).map((v) => v * 2 ** -10), () => 0, `${e.backend} f16 scaled`);
    e.kernels.embedF32(p32, pi, ids.length, dim, po);
    closeTo(e.f32(po, ids.length * dim), embedRef(t32, ids, dim), () => 0, `${e.backend} f32`);
  }
});

test('attendExactF32 vs reference (GQA groups 1, 2, 4; head dims 8, 63, 64)', async () => {
  const r = rng(9);
  for (const e of await engines) {
    const cases: Array<[number, number, number, number, number]> = [];
    for (const [qHeads, kvHeads] of [[1, 1], [8, 4], [8, 2]]) for (const headDim of [8, 63, 64]) for (const len of [1, 2, 3, 4, 5, 9, 65]) cases.push([qHeads, kvHeads, headDim, len, 2]);
    cases.push([8, 2, 64, 1023, 2], [4, 1, 64, 67, 12]); // long; peaked softmax (scores spread over ~100)
    for (const [qHeads, kvHeads, headDim, len, mag] of cases) {
      const q = randF32(r, qHeads * headDim, mag), k = randF32(r, len * kvHeads * headDim, mag), v = randF32(r, len * kvHeads * headDim);
      const scale = 1 / Math.sqrt(headDim);
      const want = attendExactRef(q, k, v, len, qHeads, kvHeads, headDim, scale);
      const pq = put(e, q), pk = put(e, k), pv = put(e, v), ps = e.arena.alloc(4 * len), po = e.arena.alloc(4 * qHeads * headDim);
      e.kernels.attendExactF32(pq, pk, pv, len, qHeads, kvHeads, headDim, Math.fround(scale), ps, po);
      closeTo(e.f32(po, qHeads * headDim), want, () => ATTN_TOL, `${e.backend} ${qHeads}/${kvHeads} d=${headDim} len=${len}`);
      for (const p of [pq, pk, pv, ps, po]) e.arena.free(p);
    }
  }
});

test.run();

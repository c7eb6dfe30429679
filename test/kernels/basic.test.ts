/**
 * Basic kernels (f16 conversion, dot/axpy/scale, FWHT, gather/compact, Hamming rows):
 * SIMD build vs scalar build vs the float64 references in src/reference/basic.ts, at sizes
 * around the tile edges; then the validated wrappers in src/ops/basic.ts against bad input.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine, EdgeKVError, type Engine } from '../../src/index.ts';
import * as ref from '../../src/reference/basic.ts';
import * as ops from '../../src/ops/basic.ts';

const simd = await createEngine({ backend: 'wasm-simd' });
const scalar = await createEngine({ backend: 'wasm-scalar' });
const BUILDS: Array<[string, Engine]> = [['simd', simd], ['scalar', scalar]];

/** Sizes around the SIMD tiles (4 lanes, 16-element unroll) and a large odd size. */
const SIZES = [1, 2, 3, 7, 8, 9, 63, 64, 65, 1023];
/** f32 unit roundoff. */
const U32 = 2 ** -24;
/**
 * Dot product error budget: |got - exact| <= (n + 1) * u * sum|a_i b_i| (Higham's gamma_n,
 * covering any summation order and the product roundings).
 */
const dotBound = (n: number, absSum: number) => (n + 1) * U32 * absSum;
/**
 * FWHT error budget in the 2-norm, per transform: each of the log2(n) butterfly stages and the
 * final scale add at most u * ||x||_2 once propagated through the orthonormal rest.
 */
const fwhtBound = (n: number, norm2: number) => (Math.log2(n) + 1) * U32 * norm2;
/** Bytes left after each output to catch writes past the end. */
const GUARD_BYTES = 64;
const GUARD = 0xa5;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function randF32(n: number, r: () => number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}
function randF16(n: number, r: () => number, lo = -2, hi = 2): Uint16Array {
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) a[i] = ref.numberToF16(lo + (hi - lo) * r());
  return a;
}
const f32Bits = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0];
const bitsF32 = (b: number) => new Float32Array(new Uint32Array([b]).buffer)[0];

/** Arena scratch for raw kernel calls: `put` copies in (at a byte offset, to test unaligned access). */
class Scratch {
  private ptrs: number[] = [];
  constructor(readonly e: Engine) {}
  alloc(bytes: number, offset = 0): number {
    const p = this.e.arena.alloc(bytes + offset + GUARD_BYTES);
    this.ptrs.push(p);
    this.e.u8(p, bytes + offset + GUARD_BYTES).fill(GUARD);
    return p + offset;
  }
  put(a: ArrayBufferView, offset = 0): number {
    const p = this.alloc(a.byteLength, offset);
    this.e.u8(p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    return p;
  }
  guardIntact(p: number, bytes: number): boolean {
    return this.e.u8(p + bytes, GUARD_BYTES).every((b) => b === GUARD);
  }
  free(): void { for (const p of this.ptrs) this.e.arena.free(p); this.ptrs = []; }
}

function sameBits(a: ArrayBufferView, b: ArrayBufferView): boolean {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength), y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
const F16 = suite('kernels/f16');

F16('reference: numberToF16 inverts f16ToNumber on every finite pattern', () => {
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) === 0x7c00) continue;
    assert.is(ref.numberToF16(ref.f16ToNumber(h)), h, `h=0x${h.toString(16)}`);
  }
});

F16('all 65536 patterns decode exactly and re-encode to the same bits (SIMD and scalar)', () => {
  const all = new Uint16Array(0x10000);
  for (let h = 0; h < all.length; h++) all[h] = h;
  const expect = new Uint32Array(all.length);
  for (let h = 0; h < all.length; h++) {
    expect[h] = ref.f16IsNaN(h)
      ? (((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13)) >>> 0 // NaN payload kept
      : f32Bits(ref.f16ToNumber(h)); // exact: every f16 is an f32 (sign of zero included)
  }
  const decoded: Uint32Array[] = [];
  for (const [name, e] of BUILDS) {
    const s = new Scratch(e);
    const src = s.put(all), dst = s.alloc(4 * all.length), back = s.alloc(2 * all.length);
    e.kernels.f16ToF32(src, dst, all.length);
    const got = new Uint32Array(e.u8(dst, 4 * all.length).slice().buffer);
    for (let h = 0; h < all.length; h++) {
      if (got[h] !== expect[h]) assert.unreachable(`${name}: f16 0x${h.toString(16)} -> 0x${got[h].toString(16)}, expected 0x${expect[h].toString(16)}`);
    }
    e.kernels.f32ToF16(dst, back, all.length);
    const again = e.u16(back, all.length);
    for (let h = 0; h < all.length; h++) {
      if (again[h] !== h) assert.unreachable(`${name}: 0x${h.toString(16)} re-encodes to 0x${again[h].toString(16)}`);
    }
    assert.ok(s.guardIntact(dst, 4 * all.length) && s.guardIntact(back, 2 * all.length), `${name}: wrote past the end`);
    decoded.push(got);
    s.free();
  }
  assert.ok(sameBits(decoded[0], decoded[1]), 'SIMD and scalar decode differ');
});

/** f32 values that probe every rounding decision: each f16 midpoint and its f32 neighbours. */
function roundingProbes(): Float32Array {
  const out: number[] = [];
  for (let h = 0; h < 0x7c00; h++) {
    const v = ref.f16ToNumber(h);
    const next = h === 0x7bff ? 65536 : ref.f16ToNumber(h + 1);
    const mid = (v + next) / 2; // exactly an f32 (12 significant bits)
    const mb = f32Bits(mid);
    for (const x of [v, mid, bitsF32(mb - 1), bitsF32(mb + 1)]) out.push(x, -x);
  }
  return new Float32Array(out);
}

/** f32 values from random bit patterns: every exponent, subnormals, Inf, NaN. */
function randomBitPatterns(n: number, r: () => number): Float32Array {
  const u = new Uint32Array(n);
  for (let i = 0; i < n; i++) u[i] = (r() * 2 ** 32) >>> 0;
  return new Float32Array(u.buffer);
}

F16('f32 -> f16 rounds to nearest even at every midpoint, against the TypeScript reference', () => {
  const r = rng(1);
  const probes = [roundingProbes(), randomBitPatterns(100_000, r)];
  const outs: Uint16Array[] = [];
  for (const [name, e] of BUILDS) {
    const s = new Scratch(e);
    for (const x of probes) {
      const src = s.put(x), dst = s.alloc(2 * x.length);
      e.kernels.f32ToF16(src, dst, x.length);
      const got = e.u16(dst, x.length).slice();
      const xb = new Uint32Array(x.buffer, x.byteOffset, x.length);
      for (let i = 0; i < x.length; i++) {
        const want = ref.numberToF16(x[i]);
        const ok = Number.isNaN(x[i]) ? ref.f16IsNaN(got[i]) && (got[i] & 0x8000) === ((xb[i] >>> 16) & 0x8000) : got[i] === want;
        if (!ok) assert.unreachable(`${name}: f32 0x${xb[i].toString(16)} (${x[i]}) -> 0x${got[i].toString(16)}, expected 0x${want.toString(16)}`);
      }
      assert.ok(s.guardIntact(dst, 2 * x.length));
      outs.push(got);
    }
    s.free();
  }
  assert.ok(sameBits(outs[0], outs[2]) && sameBits(outs[1], outs[3]), 'SIMD and scalar encode differ');
});

F16('f32 -> f16 named cases: overflow, ties, subnormals, signed zero, NaN', () => {
  const cases: Array<[number, number]> = [
    [65504, 0x7bff], [65519.996, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00], [-65520, 0xfc00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [0, 0], [-0, 0x8000],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [bitsF32(f32Bits(2 ** -25) + 1), 0x0001], [3 * 2 ** -25, 0x0002],
    [5 * 2 ** -25, 0x0002], [2 ** -14, 0x0400], [2 ** -14 - 2 ** -25, 0x0400], [1e-45, 0], [-1e-45, 0x8000],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1, 0x3c00], [-2, 0xc000], [0.1, 0x2e66],
  ];
  for (const [name, e] of BUILDS) {
    for (const len of [1, 8, 9]) { // scalar tail and SIMD body
      const x = new Float32Array(len * cases.length);
      cases.forEach(([v], i) => x.fill(v, i * len, (i + 1) * len));
      const s = new Scratch(e);
      const src = s.put(x), dst = s.alloc(2 * x.length);
      e.kernels.f32ToF16(src, dst, x.length);
      const got = e.u16(dst, x.length);
      cases.forEach(([v, want], i) => {
        for (let k = 0; k < len; k++) assert.is(got[i * len + k], want, `${name}: ${v} -> 0x${got[i * len + k].toString(16)}`);
      });
      // NaN (quiet, signalling with a low payload only, negative) stays NaN
      const nans = new Uint32Array([0x7fc00000, 0x7f800001, 0xffc00000, 0x7fa00000, 0x7f802000, 0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff]);
      const pn = s.put(nans), dn = s.alloc(2 * nans.length);
      e.kernels.f32ToF16(pn, dn, nans.length);
      const hn = e.u16(dn, nans.length);
      for (let i = 0; i < nans.length; i++) {
        assert.ok(ref.f16IsNaN(hn[i]), `${name}: NaN 0x${nans[i].toString(16)} -> 0x${hn[i].toString(16)}`);
        assert.is(hn[i] & 0x8000, (nans[i] >>> 16) & 0x8000);
      }
      s.free();
    }
  }
});

F16.run();

// ---------------------------------------------------------------------------------------------
const VEC = suite('kernels/vec');

VEC('dotF32 and dotF16: SIMD vs scalar vs float64, within (n+1)*u*sum|ab|, aligned and unaligned', () => {
  const r = rng(2);
  for (const n of [...SIZES, 4096]) {
    const a = randF32(n, r), b = randF32(n, r), h = randF16(n, r);
    const want32 = ref.dotRef(a, b), abs32 = ref.dotAbsRef(a, b);
    const hv = ref.decodeF16Ref(h);
    const want16 = ref.dotRef(hv, b), abs16 = ref.dotAbsRef(hv, b);
    for (const [name, e] of BUILDS) {
      for (const off of [0, 4]) {
        const s = new Scratch(e);
        const pa = s.put(a, off), pb = s.put(b, off), ph = s.put(h, off / 2);
        const got32 = e.kernels.dotF32(pa, pb, n), got16 = e.kernels.dotF16(ph, pb, n);
        assert.ok(Math.abs(got32 - want32) <= dotBound(n, abs32), `${name} dotF32 n=${n} off=${off}: ${got32} vs ${want32}`);
        assert.ok(Math.abs(got16 - want16) <= dotBound(n, abs16), `${name} dotF16 n=${n} off=${off}: ${got16} vs ${want16}`);
        s.free();
      }
    }
  }
  for (const [, e] of BUILDS) assert.is(e.kernels.dotF32(0, 0, 0), 0);
});

VEC('axpyF32 / axpyF16: bit-exact f32 semantics fl(fl(alpha*x)+y), SIMD = scalar, within the float64 bound, no write past n', () => {
  const r = rng(3);
  for (const n of SIZES) {
    const x = randF32(n, r), y = randF32(n, r), h = randF16(n, r);
    const alpha = Math.fround(0.7 + r());
    const hv = ref.decodeF16Ref(h);
    const exact32 = new Float32Array(n), exact16 = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      exact32[i] = Math.fround(Math.fround(alpha * x[i]) + y[i]);
      exact16[i] = Math.fround(Math.fround(alpha * hv[i]) + y[i]);
    }
    const r64 = ref.axpyRef(alpha, x, y), r64h = ref.axpyRef(alpha, hv, y);
    for (const [name, e] of BUILDS) {
      const s = new Scratch(e);
      const py = s.put(y), py2 = s.put(y);
      e.kernels.axpyF32(alpha, s.put(x), py, n);
      e.kernels.axpyF16(alpha, s.put(h), py2, n);
      const g32 = e.f32(py, n), g16 = e.f32(py2, n);
      assert.ok(sameBits(g32, exact32), `${name} axpyF32 n=${n}`);
      assert.ok(sameBits(g16, exact16), `${name} axpyF16 n=${n}`);
      for (let i = 0; i < n; i++) {
        assert.ok(Math.abs(g32[i] - r64[i]) <= 2 * U32 * (Math.abs(alpha * x[i]) + Math.abs(y[i])), `${name} axpyF32 vs f64 at ${i}`);
        assert.ok(Math.abs(g16[i] - r64h[i]) <= 2 * U32 * (Math.abs(alpha * hv[i]) + Math.abs(y[i])), `${name} axpyF16 vs f64 at ${i}`);
      }
      assert.ok(s.guardIntact(py, 4 * n) && s.guardIntact(py2, 4 * n), `${name} n=${n}: wrote past the end`);
      s.free();
    }
  }
});

VEC('scaleF32 / scaleF16: bit-exact against fl(alpha*x) and f16(fl(alpha*x)), SIMD = scalar, no write past n', () => {
  const r = rng(4);
  for (const n of SIZES) {
    const x = randF32(n, r, -100, 100), h = randF16(n, r, -100, 100);
    const alpha = Math.fround(-1.3 + 0.1 * r());
    const r64 = ref.scaleRef(alpha, x);
    const want32 = new Float32Array(n), want16 = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      want32[i] = Math.fround(alpha * x[i]);
      want16[i] = ref.numberToF16(Math.fround(alpha * ref.f16ToNumber(h[i])));
    }
    for (const [name, e] of BUILDS) {
      const s = new Scratch(e);
      const px = s.put(x), ph = s.put(h);
      e.kernels.scaleF32(alpha, px, n);
      e.kernels.scaleF16(alpha, ph, n);
      const g32 = e.f32(px, n);
      assert.ok(sameBits(g32, want32), `${name} scaleF32 n=${n}`);
      assert.ok(sameBits(e.u16(ph, n), want16), `${name} scaleF16 n=${n}`);
      for (let i = 0; i < n; i++) assert.ok(Math.abs(g32[i] - r64[i]) <= U32 * Math.abs(r64[i]), `${name} scaleF32 vs f64`);
      assert.ok(s.guardIntact(px, 4 * n) && s.guardIntact(ph, 2 * n), `${name} n=${n}: wrote past the end`);
      s.free();
    }
  }
});

VEC('f16 kernels propagate Inf and NaN through the SIMD slow path and the scalar tail', () => {
  for (const n of [8, 16, 17, 33]) {
    for (const [bad, kind] of [[0x7c00, 'inf'], [0xfc00, '-inf'], [0x7e01, 'nan']] as const) {
      const h = new Uint16Array(n).fill(0x3c00); // 1.0
      h[n - 2] = bad; // inside the unrolled body for n = 16, 33; in the tail for n = 17
      const b = new Float32Array(n).fill(1);
      for (const [name, e] of BUILDS) {
        const s = new Scratch(e);
        const got = e.kernels.dotF16(s.put(h), s.put(b), n);
        const py = s.put(new Float32Array(n));
        e.kernels.axpyF16(2, s.put(h), py, n);
        const y = e.f32(py, n);
        const ph = s.put(h);
        e.kernels.scaleF16(0.5, ph, n);
        const sh = e.u16(ph, n);
        if (kind === 'nan') {
          assert.ok(Number.isNaN(got) && Number.isNaN(y[n - 2]) && ref.f16IsNaN(sh[n - 2]), `${name} n=${n} NaN`);
        } else {
          const sign = kind === 'inf' ? 1 : -1;
          assert.is(got, sign * Infinity, `${name} n=${n} dot ${kind}`);
          assert.is(y[n - 2], sign * Infinity, `${name} n=${n} axpy ${kind}`);
          assert.is(sh[n - 2], bad, `${name} n=${n} scale ${kind}`);
        }
        assert.is(y[0], 2, `${name}: finite lanes next to ${kind}`);
        assert.is(sh[0], 0x3800, `${name}: 0.5 * 1.0`);
        s.free();
      }
    }
  }
});

VEC.run();

// ---------------------------------------------------------------------------------------------
const FWHT = suite('kernels/fwht');

const norm2 = (a: ArrayLike<number>) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * a[i]; return Math.sqrt(s); };
const diff2 = (a: ArrayLike<number>, b: ArrayLike<number>) => { let s = 0; for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2; return Math.sqrt(s); };

FWHT('against the O(n^2) Hadamard product for n = 1..256; SIMD = scalar bit for bit; twice = identity', () => {
  const r = rng(5);
  const COUNT = 3;
  for (let n = 1; n <= 256; n *= 2) {
    const x = randF32(n * COUNT, r);
    const want = ref.fwhtMatrixRef(x, n);
    const outs: Float32Array[] = [];
    for (const [name, e] of BUILDS) {
      const s = new Scratch(e);
      const p = s.put(x);
      e.kernels.fwht(p, n, COUNT);
      const got = e.f32(p, n * COUNT).slice();
      for (let c = 0; c < COUNT; c++) {
        const g = got.subarray(c * n, (c + 1) * n), w = want.subarray(c * n, (c + 1) * n), xi = x.subarray(c * n, (c + 1) * n);
        assert.ok(diff2(g, w) <= fwhtBound(n, norm2(xi)), `${name} n=${n} vector ${c}: error ${diff2(g, w)}`);
      }
      e.kernels.fwht(p, n, COUNT);
      const back = e.f32(p, n * COUNT);
      for (let c = 0; c < COUNT; c++) {
        const b = back.subarray(c * n, (c + 1) * n), xi = x.subarray(c * n, (c + 1) * n);
        assert.ok(diff2(b, xi) <= 2 * fwhtBound(n, norm2(xi)), `${name} n=${n}: twice != identity (${diff2(b, xi)})`);
      }
      assert.ok(s.guardIntact(p, 4 * n * COUNT), `${name} n=${n}: wrote past the end`);
      outs.push(got);
      s.free();
    }
    assert.ok(sameBits(outs[0], outs[1]), `n=${n}: SIMD and scalar differ`);
  }
});

FWHT('large n (1024, 4096) against the float64 butterflies; count = 0 is a no-op', () => {
  const r = rng(6);
  for (const n of [1024, 4096]) {
    const x = randF32(2 * n, r);
    const want = ref.fwhtRef(x, n);
    for (const [name, e] of BUILDS) {
      const s = new Scratch(e);
      const p = s.put(x);
      e.kernels.fwht(p, n, 2);
      const got = e.f32(p, 2 * n);
      for (let c = 0; c < 2; c++) {
        assert.ok(diff2(got.subarray(c * n, (c + 1) * n), want.subarray(c * n, (c + 1) * n)) <= fwhtBound(n, norm2(x.subarray(c * n, (c + 1) * n))), `${name} n=${n}`);
      }
      e.kernels.fwht(p, n, 0);
      s.free();
    }
  }
  for (const [name, e] of BUILDS) {
    const s = new Scratch(e);
    const x = randF32(16, r), p = s.put(x);
    e.kernels.fwht(p, 16, 0);
    assert.ok(sameBits(e.f32(p, 16), x), `${name}: count 0 changed data`);
    s.free();
  }
});

FWHT.run();

// ---------------------------------------------------------------------------------------------
const GATHER = suite('kernels/gather');

/** Row sizes in bytes: around 1, 8, 16 and 64 (the SIMD step), not only multiples of 16. */
const ROW_BYTES = [1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 48, 63, 64, 65, 100, 128, 259];

function randomBytes(n: number, r: () => number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 256) | 0;
  return a;
}

GATHER('gatherRows against JS for row sizes not multiple of 16, repeats, empty list, unaligned pointers', () => {
  const r = rng(7);
  const ROWS = 37;
  for (const rb of ROW_BYTES) {
    const src = randomBytes(ROWS * rb, r);
    for (const n of [0, 1, 3, 9, 65]) {
      const idx = new Int32Array(n);
      for (let i = 0; i < n; i++) idx[i] = (r() * ROWS) | 0;
      const want = ref.gatherRowsRef(src, rb, idx);
      for (const [name, e] of BUILDS) {
        const s = new Scratch(e);
        const ps = s.put(src, rb % 3), pi = s.put(idx), pd = s.alloc(n * rb, 1);
        e.kernels.gatherRows(ps, pd, pi, n, rb);
        assert.ok(sameBits(e.u8(pd, n * rb), want), `${name} rowBytes=${rb} n=${n}`);
        assert.ok(s.guardIntact(pd, n * rb), `${name} rowBytes=${rb} n=${n}: wrote past the end`);
        s.free();
      }
    }
  }
});

GATHER('compactRows against JS: strictly ascending lists (identity prefix, gaps, all rows, none)', () => {
  const r = rng(8);
  const ROWS = 41;
  for (const rb of ROW_BYTES) {
    const data = randomBytes(ROWS * rb, r);
    const lists: number[][] = [[], [0], [ROWS - 1], Array.from({ length: ROWS }, (_, i) => i), [0, 1, 2, 5, 6, 40]];
    const random: number[] = [];
    for (let i = 0; i < ROWS; i++) if (r() < 0.4) random.push(i);
    lists.push(random);
    for (const list of lists) {
      const idx = Int32Array.from(list);
      const want = ref.compactRowsRef(data, rb, idx);
      for (const [name, e] of BUILDS) {
        const s = new Scratch(e);
        const pd = s.put(data, 2), pi = s.put(idx);
        e.kernels.compactRows(pd, pi, idx.length, rb);
        assert.ok(sameBits(e.u8(pd, data.length), want), `${name} rowBytes=${rb} idx=${list.slice(0, 8)}`);
        assert.ok(s.guardIntact(pd, data.length));
        s.free();
      }
    }
  }
});

GATHER.run();

// ---------------------------------------------------------------------------------------------
const POP = suite('kernels/popcount');

POP('hammingRows against JS popcount, words around the v128 width', () => {
  const r = rng(9);
  for (const words of [1, 2, 3, 4, 5, 7, 8, 9, 16, 33]) {
    for (const n of [0, 1, 3, 64]) {
      const bits = new Uint32Array(n * words), anchor = new Uint32Array(words);
      for (let i = 0; i < bits.length; i++) bits[i] = r() < 0.1 ? 0xffffffff : (r() * 2 ** 32) >>> 0;
      for (let i = 0; i < words; i++) anchor[i] = i % 3 === 0 ? 0 : (r() * 2 ** 32) >>> 0;
      const want = ref.hammingRowsRef(bits, n, words, anchor);
      for (const [name, e] of BUILDS) {
        const s = new Scratch(e);
        const po = s.alloc(4 * n);
        e.kernels.hammingRows(s.put(bits), n, words, s.put(anchor), po);
        assert.equal(Array.from(e.i32(po, n)), Array.from(want), `${name} words=${words} n=${n}`);
        assert.ok(s.guardIntact(po, 4 * n));
        s.free();
      }
    }
  }
  // all bits differ: distance = 32 * words
  const words = 12, bits = new Uint32Array(words).fill(0xffffffff), anchor = new Uint32Array(words);
  for (const [, e] of BUILDS) {
    const s = new Scratch(e);
    const po = s.alloc(4);
    e.kernels.hammingRows(s.put(bits), 1, words, s.put(anchor), po);
    assert.is(e.i32(po, 1)[0], 32 * words);
    s.free();
  }
});

POP.run();

// ---------------------------------------------------------------------------------------------
const OPS = suite('ops/basic (validated wrappers)');

OPS('wrappers compute what the references say, on both builds', () => {
  const r = rng(10);
  for (const [name, e] of BUILDS) {
    const x = randF32(65, r), y = randF32(65, r);
    const h = ops.encodeF16(e, x);
    for (let i = 0; i < x.length; i++) assert.is(h[i], ref.numberToF16(x[i]));
    const back = ops.decodeF16(e, h);
    for (let i = 0; i < x.length; i++) assert.is(back[i], ref.f16ToNumber(h[i]));
    assert.ok(Math.abs(ops.dotF32(e, x, y) - ref.dotRef(x, y)) <= dotBound(65, ref.dotAbsRef(x, y)), name);
    const hv = ref.decodeF16Ref(h);
    assert.ok(Math.abs(ops.dotF16(e, h, y) - ref.dotRef(hv, y)) <= dotBound(65, ref.dotAbsRef(hv, y)), name);
    const y2 = y.slice();
    assert.is(ops.axpyF32(e, 0.5, x, y2), y2);
    for (let i = 0; i < y.length; i++) assert.is(y2[i], Math.fround(Math.fround(0.5 * x[i]) + y[i]));
    const y3 = y.slice();
    ops.axpyF16(e, 0.5, h, y3);
    for (let i = 0; i < y.length; i++) assert.is(y3[i], Math.fround(Math.fround(0.5 * hv[i]) + y[i]));
    const x2 = x.slice();
    ops.scaleF32(e, 3, x2);
    for (let i = 0; i < x.length; i++) assert.is(x2[i], Math.fround(3 * x[i]));
    const h2 = h.slice();
    ops.scaleF16(e, -2, h2);
    for (let i = 0; i < h.length; i++) assert.is(h2[i], ref.numberToF16(Math.fround(-2 * hv[i])));
    const f = randF32(4 * 64, r);
    const want = ref.fwhtRef(f, 64);
    ops.fwht(e, f, 64);
    assert.ok(diff2(f, want) <= 4 * fwhtBound(64, norm2(want)), name);
    const rows = Float32Array.from({ length: 5 * 3 }, (_, i) => i);
    assert.equal(Array.from(ops.gatherRows(e, rows, 3, [4, 0, 4])), [12, 13, 14, 0, 1, 2, 12, 13, 14]);
    assert.equal(Array.from(ops.compactRows(e, rows, 3, [1, 3])), [3, 4, 5, 9, 10, 11]);
    assert.equal(Array.from(rows.subarray(6)), [6, 7, 8, 9, 10, 11, 12, 13, 14]);
    const u16 = Uint16Array.from({ length: 7 * 5 }, (_, i) => i); // rows of 10 bytes
    assert.equal(Array.from(ops.gatherRows(e, u16, 5, Int32Array.from([6, 2]))), [30, 31, 32, 33, 34, 10, 11, 12, 13, 14]);
    assert.equal(Array.from(ops.hammingRows(e, Uint32Array.from([0, 1, 0xffffffff, 3, 7, 0]), 2, Uint32Array.from([1, 0]))), [2, 33, 2]);
    assert.equal(ops.encodeF16(e, new Float32Array([NaN, 1e6]), undefined, { allowNonFinite: true }).map((v) => (ref.f16IsNaN(v) ? 1 : v)), new Uint16Array([1, 0x7c00]));
    assert.is(e.arena.liveBlocks, 0, `${name}: wrappers leaked arena blocks`);
  }
});

/** An engine whose WebAssembly side throws on touch: proves checks run before any WASM call or allocation. */
function tripwire(e: Engine): Engine {
  const boom = { get() { throw new Error('reached WebAssembly before validation finished'); } };
  return Object.create(e, { kernels: boom, arena: boom, memory: boom }) as Engine;
}

OPS('every bad input throws EdgeKVError with its code, before any WASM call, and writes nothing', () => {
  const e = simd;
  const x = new Float32Array([1, 2, 3, 4]), y = new Float32Array([5, 6, 7, 8]);
  const h = new Uint16Array([0x3c00, 0x4000, 0x4200, 0x4400]);
  const xNaN = new Float32Array([1, NaN, 3, 4]), xInf = new Float32Array([1, 2, -Infinity, 4]);
  const hNaN = new Uint16Array([0x3c00, 0x7e00, 0, 0]), hInf = new Uint16Array([0x3c00, 0, 0xfc00, 0]);
  const rows = new Float32Array(12);
  const bits = new Uint32Array(6), anchor = new Uint32Array(2);
  type Case = [string, (en: Engine) => unknown, string];
  const cases: Case[] = [
    ['encodeF16 NaN', (en) => ops.encodeF16(en, xNaN), 'E_NONFINITE'],
    ['encodeF16 Inf', (en) => ops.encodeF16(en, xInf), 'E_NONFINITE'],
    ['encodeF16 overflow', (en) => ops.encodeF16(en, new Float32Array([65520])), 'E_ARG'],
    ['encodeF16 wrong type', (en) => ops.encodeF16(en, [1, 2] as never), 'E_ARG'],
    ['encodeF16 out length', (en) => ops.encodeF16(en, x, new Uint16Array(3)), 'E_SHAPE'],
    ['encodeF16 out type', (en) => ops.encodeF16(en, x, new Int16Array(4) as never), 'E_ARG'],
    ['encodeF16 bad option', (en) => ops.encodeF16(en, x, undefined, { allowNonFinite: 'yes' as never }), 'E_ARG'],
    ['decodeF16 wrong type', (en) => ops.decodeF16(en, x as never), 'E_ARG'],
    ['decodeF16 out length', (en) => ops.decodeF16(en, h, new Float32Array(5)), 'E_SHAPE'],
    ['dotF32 lengths', (en) => ops.dotF32(en, x, new Float32Array(3)), 'E_SHAPE'],
    ['dotF32 NaN', (en) => ops.dotF32(en, x, xNaN), 'E_NONFINITE'],
    ['dotF32 Float64Array', (en) => ops.dotF32(en, new Float64Array(4) as never, y), 'E_ARG'],
    ['dotF16 f16 NaN', (en) => ops.dotF16(en, hNaN, y), 'E_NONFINITE'],
    ['dotF16 f16 Inf', (en) => ops.dotF16(en, hInf, y), 'E_NONFINITE'],
    ['dotF16 lengths', (en) => ops.dotF16(en, h, new Float32Array(5)), 'E_SHAPE'],
    ['axpyF32 alpha NaN', (en) => ops.axpyF32(en, NaN, x, y), 'E_ARG'],
    ['axpyF32 alpha beyond f32', (en) => ops.axpyF32(en, 1e39, x, y), 'E_ARG'],
    ['axpyF32 alpha string', (en) => ops.axpyF32(en, '2' as never, x, y), 'E_ARG'],
    ['axpyF32 lengths', (en) => ops.axpyF32(en, 1, x, new Float32Array(3)), 'E_SHAPE'],
    ['axpyF32 x Inf', (en) => ops.axpyF32(en, 1, xInf, y), 'E_NONFINITE'],
    ['axpyF32 y NaN', (en) => ops.axpyF32(en, 1, x, xNaN), 'E_NONFINITE'],
    ['axpyF16 x NaN', (en) => ops.axpyF16(en, 1, hNaN, y), 'E_NONFINITE'],
    ['axpyF16 lengths', (en) => ops.axpyF16(en, 1, h, new Float32Array(2)), 'E_SHAPE'],
    ['scaleF32 alpha Inf', (en) => ops.scaleF32(en, Infinity, x), 'E_ARG'],
    ['scaleF32 x NaN', (en) => ops.scaleF32(en, 2, xNaN), 'E_NONFINITE'],
    ['scaleF16 overflow', (en) => ops.scaleF16(en, 20000, h), 'E_ARG'],
    ['scaleF16 x Inf', (en) => ops.scaleF16(en, 2, hInf), 'E_NONFINITE'],
    ['fwht n=3', (en) => ops.fwht(en, new Float32Array(6), 3), 'E_ARG'],
    ['fwht n=0', (en) => ops.fwht(en, x, 0), 'E_ARG'],
    ['fwht n=1.5', (en) => ops.fwht(en, x, 1.5), 'E_ARG'],
    ['fwht n too large', (en) => ops.fwht(en, x, 2 ** 25), 'E_ARG'],
    ['fwht length not a multiple', (en) => ops.fwht(en, new Float32Array(6), 4), 'E_SHAPE'],
    ['fwht NaN', (en) => ops.fwht(en, xNaN, 4), 'E_NONFINITE'],
    ['gather idx negative', (en) => ops.gatherRows(en, rows, 3, [0, -1]), 'E_ARG'],
    ['gather idx = rows', (en) => ops.gatherRows(en, rows, 3, [4]), 'E_ARG'],
    ['gather idx fractional', (en) => ops.gatherRows(en, rows, 3, [1.5]), 'E_ARG'],
    ['gather idx NaN', (en) => ops.gatherRows(en, rows, 3, [NaN]), 'E_ARG'],
    ['gather idx type', (en) => ops.gatherRows(en, rows, 3, new Float32Array([0]) as never), 'E_ARG'],
    ['gather rowLength 0', (en) => ops.gatherRows(en, rows, 0, [0]), 'E_ARG'],
    ['gather length not a multiple', (en) => ops.gatherRows(en, rows, 5, [0]), 'E_SHAPE'],
    ['gather src type', (en) => ops.gatherRows(en, [1, 2, 3] as never, 1, [0]), 'E_ARG'],
    ['compact not ascending', (en) => ops.compactRows(en, rows, 3, [2, 1]), 'E_ARG'],
    ['compact repeated', (en) => ops.compactRows(en, rows, 3, [1, 1]), 'E_ARG'],
    ['compact out of range', (en) => ops.compactRows(en, rows, 3, [0, 4]), 'E_ARG'],
    ['hamming anchor length', (en) => ops.hammingRows(en, bits, 2, new Uint32Array(3)), 'E_SHAPE'],
    ['hamming bits not a multiple', (en) => ops.hammingRows(en, bits, 4, new Uint32Array(4)), 'E_SHAPE'],
    ['hamming words 0', (en) => ops.hammingRows(en, bits, 0, anchor), 'E_ARG'],
    ['hamming bits type', (en) => ops.hammingRows(en, new Int32Array(6) as never, 2, anchor), 'E_ARG'],
    ['not an engine', () => ops.dotF32({} as never, x, y), 'E_ARG'],
  ];
  const snapshot = () => [x, y, h, xNaN, xInf, hNaN, hInf, rows, bits, anchor].map((a) => new Uint8Array(a.buffer.slice(0)));
  const before = snapshot();
  const inUse = e.arena.bytesInUse, blocks = e.arena.liveBlocks, reserved = e.arena.bytesReserved;
  for (const [label, call, code] of cases) {
    for (const en of [tripwire(e), e]) {
      try {
        call(en);
        assert.unreachable(`${label}: did not throw`);
      } catch (err) {
        if (!(err instanceof EdgeKVError)) assert.unreachable(`${label}: threw ${(err as Error).message}`);
        assert.is((err as EdgeKVError).code, code, `${label}: ${(err as Error).message}`);
        assert.ok((err as Error).message.length > 20, `${label}: message too short`);
      }
    }
  }
  const after = snapshot();
  before.forEach((b, i) => assert.ok(sameBits(b, after[i]), `input ${i} was modified by a rejected call`));
  assert.is(e.arena.bytesInUse, inUse);
  assert.is(e.arena.liveBlocks, blocks);
  assert.is(e.arena.bytesReserved, reserved);
});

OPS.run();

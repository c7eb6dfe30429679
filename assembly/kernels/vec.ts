// Vector primitives over f32 and f16 storage (f16 = IEEE binary16 bits in u16).
//
// dotF32(a: f32[n], b: f32[n], n): f32          sum a*b (f32 accumulation, 4 x f32x4 accumulators)
// dotF16(a: u16[n] (f16), b: f32[n], n): f32    sum f32(a)*b
// axpyF32(alpha, x: f32[n], y: f32[n], n)       y += alpha*x
// axpyF16(alpha, x: u16[n] (f16), y: f32[n], n) y += alpha*f32(x)
// scaleF32(alpha, x: f32[n], n)                 x *= alpha (in place)
// scaleF16(alpha, x: u16[n] (f16), n)           x = f16(alpha*f32(x)) (in place, round to nearest even)
//
// Preconditions (checked by the host): n >= 0; x and y do not overlap.
// axpy and scale compute fl(fl(alpha*x) + y) per element in both builds, so the SIMD and
// scalar builds agree bit for bit; the dot products differ only in summation order.
import {
  f16bitsToF32, f32ToF16bits, f16x4ToF32x4, f32x4ToF16x4, f16x8HasInfNaN, f16x16HasInfNaN,
  f16x8LowToF32x4, f16x8HighToF32x4, f16x8LowToF32x4Finite, f16x8HighToF32x4Finite,
  f32x8AllF16Normal, f32x4ToF16x4Normal,
} from './f16';

/** Elements per unrolled SIMD iteration: 4 accumulators x 4 lanes. */
// @ts-ignore: decorator
@inline const UNROLL: i32 = 16;
/** Lanes of one f32x4. */
// @ts-ignore: decorator
@inline const LANES: i32 = 4;

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** Dot product of two f32 vectors. */
export function dotF32(a: usize, b: usize, n: i32): f32 {
  let i: i32 = 0;
  let s: f32 = 0;
  if (ASC_FEATURE_SIMD) {
    let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0), acc2 = f32x4.splat(0), acc3 = f32x4.splat(0);
    for (; i + UNROLL <= n; i += UNROLL) {
      const pa = a + (<usize>i << 2), pb = b + (<usize>i << 2);
      acc0 = f32x4.add(acc0, f32x4.mul(v128.load(pa), v128.load(pb)));
      acc1 = f32x4.add(acc1, f32x4.mul(v128.load(pa, 16), v128.load(pb, 16)));
      acc2 = f32x4.add(acc2, f32x4.mul(v128.load(pa, 32), v128.load(pb, 32)));
      acc3 = f32x4.add(acc3, f32x4.mul(v128.load(pa, 48), v128.load(pb, 48)));
    }
    for (; i + LANES <= n; i += LANES) {
      acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
    }
    s = hsum(f32x4.add(f32x4.add(acc0, acc1), f32x4.add(acc2, acc3)));
  } else {
    let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
    for (; i + LANES <= n; i += LANES) {
      const pa = a + (<usize>i << 2), pb = b + (<usize>i << 2);
      s0 += load<f32>(pa) * load<f32>(pb);
      s1 += load<f32>(pa, 4) * load<f32>(pb, 4);
      s2 += load<f32>(pa, 8) * load<f32>(pb, 8);
      s3 += load<f32>(pa, 12) * load<f32>(pb, 12);
    }
    s = (s0 + s1) + (s2 + s3);
  }
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** Dot product of an f16 vector with an f32 vector. */
export function dotF16(a: usize, b: usize, n: i32): f32 {
  let i: i32 = 0;
  let s: f32 = 0;
  if (ASC_FEATURE_SIMD) {
    let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0), acc2 = f32x4.splat(0), acc3 = f32x4.splat(0);
    for (; i + UNROLL <= n; i += UNROLL) {
      const pa = a + (<usize>i << 1), pb = b + (<usize>i << 2);
      const h0 = v128.load(pa), h1 = v128.load(pa, 16);
      let x0: v128, x1: v128, x2: v128, x3: v128;
      if (f16x16HasInfNaN(h0, h1)) {
        x0 = f16x8LowToF32x4(h0); x1 = f16x8HighToF32x4(h0); x2 = f16x8LowToF32x4(h1); x3 = f16x8HighToF32x4(h1);
      } else {
        x0 = f16x8LowToF32x4Finite(h0); x1 = f16x8HighToF32x4Finite(h0); x2 = f16x8LowToF32x4Finite(h1); x3 = f16x8HighToF32x4Finite(h1);
      }
      acc0 = f32x4.add(acc0, f32x4.mul(x0, v128.load(pb)));
      acc1 = f32x4.add(acc1, f32x4.mul(x1, v128.load(pb, 16)));
      acc2 = f32x4.add(acc2, f32x4.mul(x2, v128.load(pb, 32)));
      acc3 = f32x4.add(acc3, f32x4.mul(x3, v128.load(pb, 48)));
    }
    for (; i + LANES <= n; i += LANES) {
      const x = f16x4ToF32x4(v128.load16x4_u(a + (<usize>i << 1)));
      acc0 = f32x4.add(acc0, f32x4.mul(x, v128.load(b + (<usize>i << 2))));
    }
    s = hsum(f32x4.add(f32x4.add(acc0, acc1), f32x4.add(acc2, acc3)));
  } else {
    let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
    for (; i + LANES <= n; i += LANES) {
      const pa = a + (<usize>i << 1), pb = b + (<usize>i << 2);
      s0 += f16bitsToF32(<u32>load<u16>(pa)) * load<f32>(pb);
      s1 += f16bitsToF32(<u32>load<u16>(pa, 2)) * load<f32>(pb, 4);
      s2 += f16bitsToF32(<u32>load<u16>(pa, 4)) * load<f32>(pb, 8);
      s3 += f16bitsToF32(<u32>load<u16>(pa, 6)) * load<f32>(pb, 12);
    }
    s = (s0 + s1) + (s2 + s3);
  }
  for (; i < n; i++) s += f16bitsToF32(<u32>load<u16>(a + (<usize>i << 1))) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** y += alpha * x over f32. */
export function axpyF32(alpha: f32, x: usize, y: usize, n: i32): void {
  let i: i32 = 0;
  if (ASC_FEATURE_SIMD) {
    const va = f32x4.splat(alpha);
    for (; i + UNROLL <= n; i += UNROLL) {
      const px = x + (<usize>i << 2), py = y + (<usize>i << 2);
      v128.store(py, f32x4.add(v128.load(py), f32x4.mul(va, v128.load(px))));
      v128.store(py, f32x4.add(v128.load(py, 16), f32x4.mul(va, v128.load(px, 16))), 16);
      v128.store(py, f32x4.add(v128.load(py, 32), f32x4.mul(va, v128.load(px, 32))), 32);
      v128.store(py, f32x4.add(v128.load(py, 48), f32x4.mul(va, v128.load(px, 48))), 48);
    }
    for (; i + LANES <= n; i += LANES) {
      const px = x + (<usize>i << 2), py = y + (<usize>i << 2);
      v128.store(py, f32x4.add(v128.load(py), f32x4.mul(va, v128.load(px))));
    }
  } else {
    for (; i + LANES <= n; i += LANES) {
      const px = x + (<usize>i << 2), py = y + (<usize>i << 2);
      store<f32>(py, load<f32>(py) + alpha * load<f32>(px));
      store<f32>(py, load<f32>(py, 4) + alpha * load<f32>(px, 4), 4);
      store<f32>(py, load<f32>(py, 8) + alpha * load<f32>(px, 8), 8);
      store<f32>(py, load<f32>(py, 12) + alpha * load<f32>(px, 12), 12);
    }
  }
  for (; i < n; i++) {
    const py = y + (<usize>i << 2);
    store<f32>(py, load<f32>(py) + alpha * load<f32>(x + (<usize>i << 2)));
  }
}

/** y += alpha * x, x in f16 storage, y in f32. */
export function axpyF16(alpha: f32, x: usize, y: usize, n: i32): void {
  let i: i32 = 0;
  if (ASC_FEATURE_SIMD) {
    const va = f32x4.splat(alpha);
    for (; i + UNROLL <= n; i += UNROLL) {
      const px = x + (<usize>i << 1), py = y + (<usize>i << 2);
      const h0 = v128.load(px), h1 = v128.load(px, 16);
      let x0: v128, x1: v128, x2: v128, x3: v128;
      if (f16x16HasInfNaN(h0, h1)) {
        x0 = f16x8LowToF32x4(h0); x1 = f16x8HighToF32x4(h0); x2 = f16x8LowToF32x4(h1); x3 = f16x8HighToF32x4(h1);
      } else {
        x0 = f16x8LowToF32x4Finite(h0); x1 = f16x8HighToF32x4Finite(h0); x2 = f16x8LowToF32x4Finite(h1); x3 = f16x8HighToF32x4Finite(h1);
      }
      v128.store(py, f32x4.add(v128.load(py), f32x4.mul(va, x0)));
      v128.store(py, f32x4.add(v128.load(py, 16), f32x4.mul(va, x1)), 16);
      v128.store(py, f32x4.add(v128.load(py, 32), f32x4.mul(va, x2)), 32);
      v128.store(py, f32x4.add(v128.load(py, 48), f32x4.mul(va, x3)), 48);
    }
    for (; i + LANES <= n; i += LANES) {
      const py = y + (<usize>i << 2);
      const v = f16x4ToF32x4(v128.load16x4_u(x + (<usize>i << 1)));
      v128.store(py, f32x4.add(v128.load(py), f32x4.mul(va, v)));
    }
  }
  for (; i < n; i++) {
    const py = y + (<usize>i << 2);
    store<f32>(py, load<f32>(py) + alpha * f16bitsToF32(<u32>load<u16>(x + (<usize>i << 1))));
  }
}

/** x *= alpha over f32, in place. */
export function scaleF32(alpha: f32, x: usize, n: i32): void {
  let i: i32 = 0;
  if (ASC_FEATURE_SIMD) {
    const va = f32x4.splat(alpha);
    for (; i + UNROLL <= n; i += UNROLL) {
      const p = x + (<usize>i << 2);
      v128.store(p, f32x4.mul(va, v128.load(p)));
      v128.store(p, f32x4.mul(va, v128.load(p, 16)), 16);
      v128.store(p, f32x4.mul(va, v128.load(p, 32)), 32);
      v128.store(p, f32x4.mul(va, v128.load(p, 48)), 48);
    }
    for (; i + LANES <= n; i += LANES) {
      const p = x + (<usize>i << 2);
      v128.store(p, f32x4.mul(va, v128.load(p)));
    }
  }
  for (; i < n; i++) {
    const p = x + (<usize>i << 2);
    store<f32>(p, alpha * load<f32>(p));
  }
}

/** x = f16(alpha * f32(x)) over f16 storage, in place. */
export function scaleF16(alpha: f32, x: usize, n: i32): void {
  let i: i32 = 0;
  if (ASC_FEATURE_SIMD) {
    const va = f32x4.splat(alpha);
    for (; i + 8 <= n; i += 8) {
      const p = x + (<usize>i << 1);
      const h = v128.load(p);
      let xl: v128, xh: v128;
      if (f16x8HasInfNaN(h)) {
        xl = f16x8LowToF32x4(h); xh = f16x8HighToF32x4(h);
      } else {
        xl = f16x8LowToF32x4Finite(h); xh = f16x8HighToF32x4Finite(h);
      }
      const yl = f32x4.mul(va, xl), yh = f32x4.mul(va, xh);
      let lo: v128, hi: v128;
      if (f32x8AllF16Normal(yl, yh)) {
        lo = f32x4ToF16x4Normal(yl); hi = f32x4ToF16x4Normal(yh);
      } else {
        lo = f32x4ToF16x4(yl); hi = f32x4ToF16x4(yh);
      }
      v128.store(p, i16x8.narrow_i32x4_u(lo, hi));
    }
  }
  for (; i < n; i++) {
    const p = x + (<usize>i << 1);
    store<u16>(p, <u16>f32ToF16bits(alpha * f16bitsToF32(<u32>load<u16>(p))));
  }
}

// Fast Walsh-Hadamard transform (the rotation applied before low-bit quantization:
// it spreads outlier channels over the whole head, QuaRot / QuIP# style).
//
// fwht(x: f32[count][n], n, count): each of the `count` contiguous vectors of length n is
//   replaced by H_n x / sqrt(n) (H_n the Sylvester Hadamard matrix, entries ±1), in place.
//   The transform is orthonormal and symmetric: applying it twice gives the input back.
// Preconditions (checked by the host): n a power of two, n >= 1; count >= 0.
//
// Butterflies (a, b) -> (a + b, a - b) for strides h = 1, 2, 4, ..., n/2, then one scale by
// f32(1/sqrt(n)). The SIMD build does strides 1 and 2 inside one f32x4 (shuffles) and strides
// >= 4 on whole f32x4s; every element sees the same operations in the same order as in the
// scalar build, so both builds agree bit for bit.

/** Lanes of one f32x4: strides below this are done inside a vector. */
// @ts-ignore: decorator
@inline const LANES: i32 = 4;

/** Scalar butterflies of stride h over one vector at p. */
// @ts-ignore: decorator
@inline function stageScalar(p: usize, n: i32, h: i32): void {
  for (let i = 0; i < n; i += h << 1) {
    for (let j = i; j < i + h; j++) {
      const pa = p + (<usize>j << 2), pb = pa + (<usize>h << 2);
      const a = load<f32>(pa), b = load<f32>(pb);
      store<f32>(pa, a + b);
      store<f32>(pb, a - b);
    }
  }
}

/** In-place orthonormal FWHT of `count` vectors of length n. */
export function fwht(x: usize, n: i32, count: i32): void {
  if (n <= 1) return;
  const scale = <f32>(1.0 / Math.sqrt(<f64>n));
  const rowBytes = <usize>n << 2;
  for (let r = 0; r < count; r++) {
    const p = x + <usize>r * rowBytes;
    let h = 1;
    if (ASC_FEATURE_SIMD) {
      if (n >= LANES) {
        // strides 1 and 2: a 4-point transform inside each f32x4
        for (let i = 0; i < n; i += LANES) {
          const q = p + (<usize>i << 2);
          const v = v128.load(q);
          const e = f32x4.shuffle(v, v, 0, 0, 2, 2);
          const o = f32x4.shuffle(v, v, 1, 1, 3, 3);
          const s1 = f32x4.shuffle(f32x4.add(e, o), f32x4.sub(e, o), 0, 4, 2, 6);
          const lo = f32x4.shuffle(s1, s1, 0, 1, 0, 1);
          const hi = f32x4.shuffle(s1, s1, 2, 3, 2, 3);
          v128.store(q, f32x4.shuffle(f32x4.add(lo, hi), f32x4.sub(lo, hi), 0, 1, 4, 5));
        }
        h = LANES;
        for (; h < n; h <<= 1) {
          for (let i = 0; i < n; i += h << 1) {
            for (let j = i; j < i + h; j += LANES) {
              const pa = p + (<usize>j << 2), pb = pa + (<usize>h << 2);
              const a = v128.load(pa), b = v128.load(pb);
              v128.store(pa, f32x4.add(a, b));
              v128.store(pb, f32x4.sub(a, b));
            }
          }
        }
        const vs = f32x4.splat(scale);
        for (let i = 0; i < n; i += LANES) {
          const q = p + (<usize>i << 2);
          v128.store(q, f32x4.mul(v128.load(q), vs));
        }
        continue;
      }
    }
    for (; h < n; h <<= 1) stageScalar(p, n, h);
    for (let i = 0; i < n; i++) {
      const q = p + (<usize>i << 2);
      store<f32>(q, load<f32>(q) * scale);
    }
  }
}

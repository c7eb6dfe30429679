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
// >= 4 on whole f32x4s, two strides per pass (radix 4); every element sees the same operations
// in the same order as in the scalar build, so both builds agree bit for bit.

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

/** SIMD: strides 1 and 2 as a 4-point transform inside each f32x4 (times `vs` when `last`). */
// @ts-ignore: decorator
@inline function stage12Simd(p: usize, n: i32, last: bool, vs: v128): void {
  for (let i = 0; i < n; i += LANES) {
    const q = p + (<usize>i << 2);
    const v = v128.load(q);
    const e = f32x4.shuffle(v, v, 0, 0, 2, 2);
    const o = f32x4.shuffle(v, v, 1, 1, 3, 3);
    const s1 = f32x4.shuffle(f32x4.add(e, o), f32x4.sub(e, o), 0, 4, 2, 6);
    const lo = f32x4.shuffle(s1, s1, 0, 1, 0, 1);
    const hi = f32x4.shuffle(s1, s1, 2, 3, 2, 3);
    let r = f32x4.shuffle(f32x4.add(lo, hi), f32x4.sub(lo, hi), 0, 1, 4, 5);
    if (last) r = f32x4.mul(r, vs);
    v128.store(q, r);
  }
}

/** SIMD: strides h and 2h in one pass over memory (h >= 4), times `vs` when `last`. */
// @ts-ignore: decorator
@inline function stageRadix4Simd(p: usize, n: i32, h: i32, last: bool, vs: v128): void {
  const hb = <usize>h << 2;
  for (let i = 0; i < n; i += h << 2) {
    for (let j = i; j < i + h; j += LANES) {
      const p0 = p + (<usize>j << 2), p1 = p0 + hb, p2 = p1 + hb, p3 = p2 + hb;
      const a = v128.load(p0), b = v128.load(p1), c = v128.load(p2), d = v128.load(p3);
      const ab = f32x4.add(a, b), amb = f32x4.sub(a, b), cd = f32x4.add(c, d), cmd = f32x4.sub(c, d);
      let r0 = f32x4.add(ab, cd), r2 = f32x4.sub(ab, cd), r1 = f32x4.add(amb, cmd), r3 = f32x4.sub(amb, cmd);
      if (last) { r0 = f32x4.mul(r0, vs); r1 = f32x4.mul(r1, vs); r2 = f32x4.mul(r2, vs); r3 = f32x4.mul(r3, vs); }
      v128.store(p0, r0); v128.store(p1, r1); v128.store(p2, r2); v128.store(p3, r3);
    }
  }
}

/** SIMD: stride h alone (h >= 4), times `vs` when `last`. */
// @ts-ignore: decorator
@inline function stageRadix2Simd(p: usize, n: i32, h: i32, last: bool, vs: v128): void {
  for (let i = 0; i < n; i += h << 1) {
    for (let j = i; j < i + h; j += LANES) {
      const pa = p + (<usize>j << 2), pb = pa + (<usize>h << 2);
      const a = v128.load(pa), b = v128.load(pb);
      let s = f32x4.add(a, b), d = f32x4.sub(a, b);
      if (last) { s = f32x4.mul(s, vs); d = f32x4.mul(d, vs); }
      v128.store(pa, s);
      v128.store(pb, d);
    }
  }
}

/**
 * In-place orthonormal FWHT of `count` vectors of length n. The SIMD build fuses pairs of
 * strides into one pass over memory and the final scale into the last pass; each element
 * still sees the scalar build's operations in the scalar build's order.
 */
export function fwht(x: usize, n: i32, count: i32): void {
  if (n <= 1) return;
  const scale = <f32>(1.0 / Math.sqrt(<f64>n));
  const rowBytes = <usize>n << 2;
  for (let r = 0; r < count; r++) {
    const p = x + <usize>r * rowBytes;
    if (ASC_FEATURE_SIMD) {
      if (n >= LANES) {
        const vs = f32x4.splat(scale);
        stage12Simd(p, n, n == LANES, vs);
        let h = LANES;
        for (; h * 4 <= n; h <<= 2) stageRadix4Simd(p, n, h, h * 4 == n, vs);
        if (h < n) stageRadix2Simd(p, n, h, true, vs);
        continue;
      }
    }
    for (let h = 1; h < n; h <<= 1) stageScalar(p, n, h);
    for (let i = 0; i < n; i++) {
      const q = p + (<usize>i << 2);
      store<f32>(q, load<f32>(q) * scale);
    }
  }
}

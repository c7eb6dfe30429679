// BalanceKV discrepancy walk (Kochetkova, Sheth, Han, Zandieh, Kapralov, arXiv 2502.07861;
// the practical walk of the authors' code, src/balanced_walk.py::balanced_walk).
//
// walkBlock walks ONE block of n <= B tokens and writes one sign per token:
//
//   k̄_a  = k_a - mean            mean over the block (WALK_CENTER); divided by B instead of n
//                                 when WALK_CENTER_PADDED (the code zero-pads the last block
//                                 before centering, so pads pull the mean toward 0)
//   ṽ_a  = v_a * w_a             w_a: the token's accumulated weight (1 when wts = 0)
//   G_ab = exp(scale*<k̄_a,k̄_b> - beta) * (<ṽ_a,ṽ_b> + c0)        scale = temp / sqrt(d)
//   s_0  = +1;  h_i = sum_{j<i} G_ij s_j;  p_i = 1/2 - gamma*h_i;  s_i = +1 if u_i < p_i else -1
//
// Anchors (needle variant): a token with anchors[a] != 0 gets sign 0 and adds nothing to
// any h_i (the code multiplies the signs by its needle mask).
//
// Numerics (float32 storage, exact decision). exp(scale*<k̄,k̄>) overflows f32 for real key
// norms, so G is never formed. For row i the kernel computes the exponents
// a_ij = scale*<k̄_i,k̄_j> of the active tokens j < i, their max M_i, and
//   ĥ_i = sum_j exp(a_ij - M_i) * (<ṽ_i,ṽ_j> + c0) * s_j          (every exp <= 1),
// so that h_i = exp(M_i - beta) * ĥ_i exactly. The decision is taken in f64 from
//   t_i = logGamma + ln|ĥ_i| + (M_i - beta),   gamma*h_i = sign(ĥ_i) * exp(min(t_i, LOG_SAT)),
// which equals the paper's p_i = 1/2 - gamma*h_i whenever |gamma*h_i| < e^LOG_SAT and gives the
// same sign otherwise (p is far outside [0, 1] either way). gamma enters as its logarithm so
// that the theoretical SoftmaxBalance gamma = 1/(2cR^2) (underflows f32) and gamma = 0
// (logGamma = -inf: a uniformly random walk) are both exact.
// WALK_BETA_AUTO replaces beta by the block's largest diagonal exponent max_a scale*||k̄_a||^2
// (then every G_ab has exponential factor <= 1): a DIFFERENT, less saturated walk, for study.
//
// Randomness: u_i = walkUniform(rngKey, indexBase + i), a counter-based hash (mix32 twice) of
// the token's index; 24-bit uniforms, exactly representable in f32 and f64, so the host's
// TypeScript reference draws the very same numbers.
//
// Bitwise parity: key and value dots are accumulated per token over channels in channel
// order (transposed block, one f32x4 lane per token), the exp is one polynomial, and ĥ is
// summed in 4 interleaved partial sums in both builds; SIMD and scalar builds write the same
// signs bit for bit.
//
// Layouts: kRows, vRows: u32[n] byte addresses of each token's f32[d] key / value row (any
// storage: contiguous arrays or f32 pages); wts: f32[n] or 0; anchors: u8[n] or 0;
// scratch: walkScratchBytes(B, d) bytes, 16-byte aligned; signs: i8[n] out.
// Preconditions (checked by the host): 1 <= n <= B, d >= 1, rows finite, scratch aligned.

/** Lanes of one f32x4. */
// @ts-ignore: decorator
@inline const LANES: i32 = 4;
/** Tokens per unrolled SIMD step of a kernel row (4 accumulators x 4 lanes). */
// @ts-ignore: decorator
@inline const UNROLL: i32 = 16;
/** Exponent given to inactive tokens (j >= i, anchors): its exp is 0 after clamping. */
// @ts-ignore: decorator
@inline const NEG_BIG: f32 = -1.0e30;
/** Lower clamp of the exp polynomial's input: exp(-87) ~ 1.6e-38 is still a normal f32. */
// @ts-ignore: decorator
@inline const EXP_MIN: f32 = -87.0;
// @ts-ignore: decorator
@inline const LOG2E: f32 = 1.44269504088896341;
/** ln 2 split in a high part with 9 zero low bits (exact k*LN2_HI for |k| < 2^9) and the rest. */
// @ts-ignore: decorator
@inline const LN2_HI: f32 = 0.693145751953125;
// @ts-ignore: decorator
@inline const LN2_LO: f32 = 1.42860682030941723e-6;
/** |gamma*h| is clamped at e^LOG_SAT in the decision (p is saturated far before). */
// @ts-ignore: decorator
@inline const LOG_SAT: f64 = 60.0;
/** 2^-24: turns the top 24 bits of a hash into a uniform in [0, 1). */
// @ts-ignore: decorator
@inline const U24: f64 = 5.9604644775390625e-8;
/** Odd constant (2^32 / golden ratio) added between the two hash rounds. */
// @ts-ignore: decorator
@inline const GOLDEN: u32 = 0x9e3779b9;

/** Flag: subtract the block mean from the keys. */
export const WALK_CENTER: i32 = 1;
/** Flag: the mean divides by B (zero pads counted, as the authors' code) instead of n. */
export const WALK_CENTER_PADDED: i32 = 2;
/** Flag: beta := max_a scale*||k̄_a||^2 of the block (normalised kernel; not the paper's walk). */
export const WALK_BETA_AUTO: i32 = 4;

// @ts-ignore: decorator
@inline function padLanes(n: i32): i32 { return (n + LANES - 1) & ~(LANES - 1); }

/** One round of a 32-bit integer finaliser (xor-shift / multiply, two multiplies). */
// @ts-ignore: decorator
@inline function mix32(x: u32): u32 {
  x ^= x >>> 16;
  x *= 0x7feb352d;
  x ^= x >>> 15;
  x *= 0x846ca68b;
  x ^= x >>> 16;
  return x;
}

/** The walk's uniform for counter `index` under `key`: a multiple of 2^-24 in [0, 1). */
// @ts-ignore: decorator
@inline function uniformAt(key: u32, index: u32): f64 {
  return <f64>(mix32(mix32(index ^ key) + GOLDEN) >>> 8) * U24;
}

/** Bytes of scratch walkBlock / walkGram need for blocks of B tokens of dim d. */
export function walkScratchBytes(B: i32, d: i32): i32 {
  const Bp = padLanes(B);
  return (2 * d * Bp + 3 * Bp + padLanes(d)) << 2;
}

/** f32 exp for x <= 0 (inputs below EXP_MIN clamp to it): range reduction + degree-6 Taylor. */
// @ts-ignore: decorator
@inline function expNegScalar(x: f32): f32 {
  x = max<f32>(x, EXP_MIN);
  const k = nearest<f32>(x * LOG2E);
  const r = (x - k * LN2_HI) - k * LN2_LO;
  let p: f32 = <f32>(1.0 / 720.0);
  p = p * r + <f32>(1.0 / 120.0);
  p = p * r + <f32>(1.0 / 24.0);
  p = p * r + <f32>(1.0 / 6.0);
  p = p * r + <f32>0.5;
  p = p * r + <f32>1.0;
  p = p * r + <f32>1.0;
  return p * reinterpret<f32>((<i32>k + 127) << 23);
}

// @ts-ignore: decorator
@inline function expNegV(x: v128): v128 {
  x = f32x4.max(x, f32x4.splat(EXP_MIN));
  const k = f32x4.nearest(f32x4.mul(x, f32x4.splat(LOG2E)));
  const r = f32x4.sub(f32x4.sub(x, f32x4.mul(k, f32x4.splat(LN2_HI))), f32x4.mul(k, f32x4.splat(LN2_LO)));
  let p = f32x4.splat(<f32>(1.0 / 720.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(<f32>(1.0 / 120.0)));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(<f32>(1.0 / 24.0)));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(<f32>(1.0 / 6.0)));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(<f32>0.5));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(<f32>1.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(<f32>1.0));
  const e = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(k), i32x4.splat(127)), 23);
  return f32x4.mul(p, e);
}

/** dst[i] = exp(min(src[i], 0)) with the walk's f32 polynomial (exposed for tests). */
export function walkExp(src: usize, dst: usize, n: i32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + LANES <= n; i += LANES) {
      const x = f32x4.min(v128.load(src + (<usize>i << 2)), f32x4.splat(0));
      v128.store(dst + (<usize>i << 2), expNegV(x));
    }
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), expNegScalar(min<f32>(load<f32>(src + (<usize>i << 2)), 0)));
}

/** dst[i] = the walk's uniform for counter indexBase + i under rngKey, as f32 (exact). */
export function walkRandom(rngKey: u32, indexBase: u32, n: i32, dst: usize): void {
  for (let i = 0; i < n; i++) store<f32>(dst + (<usize>i << 2), <f32>uniformAt(rngKey, indexBase + <u32>i));
}

// Scratch offsets (bytes) for padded block Bp and dim d.
// @ts-ignore: decorator
@inline function offV(Bp: i32, d: i32): usize { return <usize>(d * Bp) << 2; }
// @ts-ignore: decorator
@inline function offRowA(Bp: i32, d: i32): usize { return <usize>(2 * d * Bp) << 2; }
// @ts-ignore: decorator
@inline function offRowW(Bp: i32, d: i32): usize { return <usize>(2 * d * Bp + Bp) << 2; }
// @ts-ignore: decorator
@inline function offSign(Bp: i32, d: i32): usize { return <usize>(2 * d * Bp + 2 * Bp) << 2; }
// @ts-ignore: decorator
@inline function offMean(Bp: i32, d: i32): usize { return <usize>(2 * d * Bp + 3 * Bp) << 2; }

/**
 * Gathers the block into scratch, transposed: kT[c][j] = k_j[c] - mean[c], vT[c][j] = v_j[c]*w_j,
 * columns n..Bp-1 zero. Returns nothing; same code in both builds.
 */
function prepareBlock(kRows: usize, vRows: usize, wts: usize, n: i32, B: i32, d: i32, flags: i32, scratch: usize): void {
  const Bp = padLanes(B);
  const kT = scratch, vT = scratch + offV(Bp, d), mean = scratch + offMean(Bp, d);
  const rowStride = <usize>Bp << 2;
  for (let c = 0; c < d; c++) store<f32>(mean + (<usize>c << 2), 0);
  if (flags & WALK_CENTER) {
    for (let j = 0; j < n; j++) {
      const kr = <usize>load<u32>(kRows + (<usize>j << 2));
      for (let c = 0; c < d; c++) {
        const p = mean + (<usize>c << 2);
        store<f32>(p, load<f32>(p) + load<f32>(kr + (<usize>c << 2)));
      }
    }
    const inv: f32 = <f32>1.0 / <f32>((flags & WALK_CENTER_PADDED) ? B : n);
    for (let c = 0; c < d; c++) {
      const p = mean + (<usize>c << 2);
      store<f32>(p, load<f32>(p) * inv);
    }
  }
  for (let j = 0; j < n; j++) {
    const kr = <usize>load<u32>(kRows + (<usize>j << 2));
    const vr = <usize>load<u32>(vRows + (<usize>j << 2));
    const w: f32 = wts ? load<f32>(wts + (<usize>j << 2)) : 1;
    for (let c = 0; c < d; c++) {
      const o = <usize>c * rowStride + (<usize>j << 2);
      store<f32>(kT + o, load<f32>(kr + (<usize>c << 2)) - load<f32>(mean + (<usize>c << 2)));
      store<f32>(vT + o, load<f32>(vr + (<usize>c << 2)) * w);
    }
  }
  for (let j = n; j < Bp; j++) {
    for (let c = 0; c < d; c++) {
      const o = <usize>c * rowStride + (<usize>j << 2);
      store<f32>(kT + o, 0);
      store<f32>(vT + o, 0);
    }
  }
}

/**
 * out[j] = <x_i, x_j> * mul + add for j in [0, padLanes(jEnd)), x the columns of the
 * transposed block X (f32[d][Bp]). Per token, the sum runs over channels in order.
 */
function rowDots(X: usize, i: i32, jEnd: i32, Bp: i32, d: i32, mul: f32, add: f32, out: usize): void {
  const rowStride = <usize>Bp << 2;
  const xi = X + (<usize>i << 2);
  const end = padLanes(jEnd);
  let j = 0;
  if (ASC_FEATURE_SIMD) {
    const vm = f32x4.splat(mul), va = f32x4.splat(add);
    for (; j + UNROLL <= end; j += UNROLL) {
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let col = X + (<usize>j << 2);
      let pi = xi;
      for (let c = 0; c < d; c++) {
        const s = f32x4.splat(load<f32>(pi));
        a0 = f32x4.add(a0, f32x4.mul(s, v128.load(col)));
        a1 = f32x4.add(a1, f32x4.mul(s, v128.load(col, 16)));
        a2 = f32x4.add(a2, f32x4.mul(s, v128.load(col, 32)));
        a3 = f32x4.add(a3, f32x4.mul(s, v128.load(col, 48)));
        col += rowStride;
        pi += rowStride;
      }
      const o = out + (<usize>j << 2);
      v128.store(o, f32x4.add(f32x4.mul(a0, vm), va));
      v128.store(o, f32x4.add(f32x4.mul(a1, vm), va), 16);
      v128.store(o, f32x4.add(f32x4.mul(a2, vm), va), 32);
      v128.store(o, f32x4.add(f32x4.mul(a3, vm), va), 48);
    }
    for (; j < end; j += LANES) {
      let a0 = f32x4.splat(0);
      let col = X + (<usize>j << 2);
      let pi = xi;
      for (let c = 0; c < d; c++) {
        a0 = f32x4.add(a0, f32x4.mul(f32x4.splat(load<f32>(pi)), v128.load(col)));
        col += rowStride;
        pi += rowStride;
      }
      v128.store(out + (<usize>j << 2), f32x4.add(f32x4.mul(a0, vm), va));
    }
  } else {
    // Channel-outer order (rows of X read contiguously); each out[j] still sums its
    // channels in order, so the result equals the SIMD build's bit for bit.
    for (let jj = 0; jj < end; jj++) store<f32>(out + (<usize>jj << 2), 0);
    let row = X;
    let pi = xi;
    for (let c = 0; c < d; c++) {
      const s = load<f32>(pi);
      for (let jj = 0; jj < end; jj++) {
        const po = out + (<usize>jj << 2);
        store<f32>(po, load<f32>(po) + s * load<f32>(row + (<usize>jj << 2)));
      }
      row += rowStride;
      pi += rowStride;
    }
    for (let jj = 0; jj < end; jj++) {
      const po = out + (<usize>jj << 2);
      store<f32>(po, load<f32>(po) * mul + add);
    }
  }
}

/**
 * Kernel rows of a whole block, for tests and benches: A[i][j] = scale*<k̄_i,k̄_j> (no beta)
 * and W[i][j] = <ṽ_i,ṽ_j> + c0, both f32[n][n] (row stride n). Same arithmetic as walkBlock.
 */
export function walkGram(kRows: usize, vRows: usize, wts: usize, n: i32, B: i32, d: i32, flags: i32,
  scale: f32, c0: f32, scratch: usize, outA: usize, outW: usize): void {
  prepareBlock(kRows, vRows, wts, n, B, d, flags, scratch);
  const Bp = padLanes(B);
  const rowA = scratch + offRowA(Bp, d), rowW = scratch + offRowW(Bp, d);
  const vT = scratch + offV(Bp, d);
  for (let i = 0; i < n; i++) {
    rowDots(scratch, i, n, Bp, d, scale, 0, rowA);
    rowDots(vT, i, n, Bp, d, 1, c0, rowW);
    memory.copy(outA + (<usize>(i * n) << 2), rowA, <usize>n << 2);
    memory.copy(outW + (<usize>(i * n) << 2), rowW, <usize>n << 2);
  }
}

/**
 * Walk one block (see the header). Writes signs (i8[n]: +1, -1, or 0 for anchors) and
 * returns how many walked tokens had a saturated probability (|gamma*h_i| > 1/2, i.e. p_i
 * outside [0, 1]: the SoftmaxBalance FAIL event).
 */
export function walkBlock(kRows: usize, vRows: usize, wts: usize, anchors: usize, n: i32, B: i32, d: i32,
  flags: i32, scale: f32, beta: f64, logGamma: f64, c0: f32, rngKey: u32, indexBase: u32,
  scratch: usize, signs: usize): i32 {
  prepareBlock(kRows, vRows, wts, n, B, d, flags, scratch);
  const Bp = padLanes(B);
  const kT = scratch, vT = scratch + offV(Bp, d);
  const rowA = scratch + offRowA(Bp, d), rowW = scratch + offRowW(Bp, d), sgn = scratch + offSign(Bp, d);
  const rowStride = <usize>Bp << 2;
  for (let j = 0; j < Bp; j++) store<f32>(sgn + (<usize>j << 2), 0);

  if (flags & WALK_BETA_AUTO) {
    let best: f32 = NEG_BIG;
    for (let a = 0; a < n; a++) {
      let s: f32 = 0;
      let p = kT + (<usize>a << 2);
      for (let c = 0; c < d; c++) { const x = load<f32>(p); s += x * x; p += rowStride; }
      best = max<f32>(best, s * scale);
    }
    beta = <f64>best;
  }

  let saturated = 0;
  for (let i = 0; i < n; i++) {
    if (anchors && load<u8>(anchors + <usize>i)) {
      store<i8>(signs + <usize>i, 0);
      continue;
    }
    let s: f32 = 1;
    if (i > 0) {
      rowDots(kT, i, i, Bp, d, scale, 0, rowA);
      rowDots(vT, i, i, Bp, d, 1, c0, rowW);
      const end = padLanes(i);
      // Mask inactive tokens (sign 0: j >= i, anchors) and take the row max of the rest.
      let m: f32 = NEG_BIG;
      let j = 0;
      if (ASC_FEATURE_SIMD) {
        let vmax = f32x4.splat(NEG_BIG);
        const zero = f32x4.splat(0), big = f32x4.splat(NEG_BIG);
        for (; j < end; j += LANES) {
          const pa = rowA + (<usize>j << 2);
          const live = f32x4.ne(v128.load(sgn + (<usize>j << 2)), zero);
          const a = v128.bitselect(v128.load(pa), big, live);
          v128.store(pa, a);
          vmax = f32x4.max(vmax, a);
        }
        m = max<f32>(max<f32>(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)),
          max<f32>(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)));
      } else {
        for (; j < end; j++) {
          const pa = rowA + (<usize>j << 2);
          const a = load<f32>(sgn + (<usize>j << 2)) != 0 ? load<f32>(pa) : NEG_BIG;
          store<f32>(pa, a);
          m = max<f32>(m, a);
        }
      }
      let hHat: f32 = 0;
      if (m > NEG_BIG) {
        j = 0;
        if (ASC_FEATURE_SIMD) {
          let acc = f32x4.splat(0);
          const vm = f32x4.splat(m);
          for (; j < end; j += LANES) {
            const e = expNegV(f32x4.sub(v128.load(rowA + (<usize>j << 2)), vm));
            acc = f32x4.add(acc, f32x4.mul(f32x4.mul(e, v128.load(rowW + (<usize>j << 2))), v128.load(sgn + (<usize>j << 2))));
          }
          hHat = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) + (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
        } else {
          let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
          for (; j < end; j += LANES) {
            const pa = rowA + (<usize>j << 2), pw = rowW + (<usize>j << 2), ps = sgn + (<usize>j << 2);
            s0 += (expNegScalar(load<f32>(pa) - m) * load<f32>(pw)) * load<f32>(ps);
            s1 += (expNegScalar(load<f32>(pa, 4) - m) * load<f32>(pw, 4)) * load<f32>(ps, 4);
            s2 += (expNegScalar(load<f32>(pa, 8) - m) * load<f32>(pw, 8)) * load<f32>(ps, 8);
            s3 += (expNegScalar(load<f32>(pa, 12) - m) * load<f32>(pw, 12)) * load<f32>(ps, 12);
          }
          hHat = (s0 + s1) + (s2 + s3);
        }
      }
      let gh: f64 = 0;
      if (hHat != 0 && logGamma > -Infinity) {
        const t = min<f64>(logGamma + Math.log(Math.abs(<f64>hHat)) + (<f64>m - beta), LOG_SAT);
        gh = hHat > 0 ? Math.exp(t) : -Math.exp(t);
      }
      if (Math.abs(gh) > 0.5) saturated++;
      const u = uniformAt(rngKey, indexBase + <u32>i);
      s = u < 0.5 - gh ? 1 : -1;
    }
    store<f32>(sgn + (<usize>i << 2), s);
    store<i8>(signs + <usize>i, <i8>s);
  }
  return saturated;
}

// IEEE binary16 <-> binary32 conversion (WebAssembly has no native f16: everything
// below is integer bit manipulation, in i32x4 lanes in the SIMD build).
//
// f16ToF32(src: u16[n], dst: f32[n], n)   exact for every bit pattern: ±0, subnormals,
//                                         normals, ±Inf; NaN payloads kept (bits << 13)
// f32ToF16(src: f32[n], dst: u16[n], n)   round to nearest, ties to even; |x| >= 65520
//                                         -> ±Inf; results below 2^-14 -> f16 subnormals
//                                         (or ±0); NaN -> NaN (payload's top 10 bits kept,
//                                         quiet bit set if they were all zero)
// Preconditions (checked by the host): n >= 0, src and dst do not overlap.
//
// The `@inline` helpers are exported for other kernel files (attention, quant, walk):
//   f16bitsToF32(h) / f32ToF16bits(x)           scalar
//   f16x4ToF32x4(h) / f32x4ToF16x4(x)           v128 (SIMD build only): i32x4 of f16 bits <-> f32x4
//   f16x8LowToF32x4(h) / f16x8HighToF32x4(h)    v128: lanes 0..3 / 4..7 of an i16x8 of f16 -> f32x4
//   f16x8HasInfNaN(h) + f16x8{Low,High}ToF32x4Finite(h)   the fast path for finite data
//   f32x8AllF16Normal(x0, x1) + f32x4ToF16x4Normal(x)      the fast encode for the normal range
//   loadF16x4(ptr)                              4 f16 from memory -> f32x4

/** f32 exponent bias minus f16 exponent bias (127 - 15), in the f32 exponent field. */
// @ts-ignore: decorator
@inline const REBIAS: u32 = 112 << 23;
/** f32 bits of 2^-14 (the smallest normal f16): the "magic" of the subnormal decode. */
// @ts-ignore: decorator
@inline const SUBNORMAL_MAGIC: u32 = 113 << 23;
/** f32 bits of 0.5: its ulp is 2^-24, the f16 subnormal step (subnormal encode by one add). */
// @ts-ignore: decorator
@inline const HALF_BITS: u32 = 126 << 23;
/** f16 exponent mask (also: +Inf). */
// @ts-ignore: decorator
@inline const F16_EXP: u32 = 0x7c00;
/** f16 magnitude bits. */
// @ts-ignore: decorator
@inline const F16_ABS: u32 = 0x7fff;
/** f16 sign bit. */
// @ts-ignore: decorator
@inline const F16_SIGN: u32 = 0x8000;
/** f16 quiet-NaN bit. */
// @ts-ignore: decorator
@inline const F16_QUIET: u32 = 0x0200;
/** f16 magnitudes below this are subnormal (exponent field 0). */
// @ts-ignore: decorator
@inline const F16_MIN_NORMAL: u32 = 0x0400;
/** f32 exponent mask (also: +Inf). */
// @ts-ignore: decorator
@inline const F32_EXP: u32 = 0x7f800000;
/** f32 magnitude bits. */
// @ts-ignore: decorator
@inline const F32_ABS: u32 = 0x7fffffff;
/** f32 bits of 65520: the first magnitude that rounds to f16 Inf (halfway above 65504, tie to even). */
// @ts-ignore: decorator
@inline const F32_F16_OVERFLOW: u32 = 0x477ff000;
/** f32 bits of 2^-14: the smallest magnitude that encodes as a normal f16. */
// @ts-ignore: decorator
@inline const F32_F16_MIN_NORMAL: u32 = 0x38800000;
/** Mantissa bits dropped from f32 (23) to f16 (10). */
// @ts-ignore: decorator
@inline const MANT_SHIFT: u32 = 13;
/** Half an f16 ulp minus one, in the dropped bits (round to nearest even adds the kept lsb). */
// @ts-ignore: decorator
@inline const ROUND_HALF_MINUS_1: u32 = 0x0fff;

/** Decode one f16 (low 16 bits of `h`) to f32, exactly. */
// @ts-ignore: decorator
@inline export function f16bitsToF32(h: u32): f32 {
  const em = h & F16_ABS;
  const sign = (h & F16_SIGN) << 16;
  let bits: u32;
  if (em >= F16_EXP) {
    bits = (em << MANT_SHIFT) | F32_EXP; // Inf / NaN (payload kept)
  } else if (em >= F16_MIN_NORMAL) {
    bits = (em << MANT_SHIFT) + REBIAS;
  } else {
    // subnormal or zero: (2^-14 + m*2^-24) - 2^-14, exact
    bits = reinterpret<u32>(reinterpret<f32>((em << MANT_SHIFT) + SUBNORMAL_MAGIC) - reinterpret<f32>(SUBNORMAL_MAGIC));
  }
  return reinterpret<f32>(bits | sign);
}

/** Encode one f32 as f16 bits (round to nearest even, overflow to Inf, NaN kept). */
// @ts-ignore: decorator
@inline export function f32ToF16bits(x: f32): u32 {
  const u = reinterpret<u32>(x);
  const a = u & F32_ABS;
  const sign = (u >> 16) & F16_SIGN;
  let h: u32;
  if (a >= F32_EXP) {
    const m = (a >> MANT_SHIFT) & 0x3ff;
    h = a > F32_EXP ? F16_EXP | m | (m == 0 ? F16_QUIET : 0) : F16_EXP;
  } else if (a >= F32_F16_OVERFLOW) {
    h = F16_EXP;
  } else if (a >= F32_F16_MIN_NORMAL) {
    const t = a - REBIAS;
    h = (t + ROUND_HALF_MINUS_1 + ((t >> MANT_SHIFT) & 1)) >> MANT_SHIFT;
  } else {
    // |x| < 2^-14: adding 0.5 rounds |x| to a multiple of 2^-24 (ties to even) in the FPU
    h = reinterpret<u32>(reinterpret<f32>(a) + reinterpret<f32>(HALF_BITS)) - HALF_BITS;
  }
  return h | sign;
}

/** 2^112 as f32: scales f16 bits placed in f32 position (sign | em << 13) to their value, exactly. */
// @ts-ignore: decorator
@inline const F16_TO_F32_SCALE: u32 = (127 + 112) << 23;
/** f32 sign bit plus the 15 bits an f16 magnitude occupies after `(h << 16) >> 3` (arithmetic). */
// @ts-ignore: decorator
@inline const WIDE_KEEP: u32 = 0x8fffffff;
/** `h << 16` magnitudes above this are f16 Inf / NaN (0x7bff << 16 | 0xffff). */
// @ts-ignore: decorator
@inline const WIDE_MAX_FINITE: u32 = 0x7bffffff;
/** `h << 1` (sign dropped) above this is an f16 Inf / NaN (16-bit compare). */
// @ts-ignore: decorator
@inline const SHL1_MAX_FINITE: u16 = 0xf7ff;

// The SIMD decode works on f32 lanes holding `h << 16` (what interleaving eight f16 with
// zeros gives, one instruction per four lanes): an arithmetic shift right by 3 and a mask
// put sign | em << 13 in place, and one multiply by 2^112 rebiases normals and subnormals
// alike, exactly. Inf / NaN lanes then need their exponent forced to all ones (payload kept);
// the *Finite variants skip that, for callers that checked `f16x8HasInfNaN` once per 8 lanes.
// Note: f16 subnormals (|x| < 6.1e-5) make that multiply see an f32 subnormal operand, which
// some x86 cores handle in microcode (slower, still exact); KV data rarely holds them.

// @ts-ignore: decorator
@inline function wideToF32x4Finite(x: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shr_s(x, 3), i32x4.splat(WIDE_KEEP)), i32x4.splat(F16_TO_F32_SCALE));
}

// @ts-ignore: decorator
@inline function wideToF32x4(x: v128): v128 {
  const infNan = i32x4.gt_s(v128.and(x, i32x4.splat(F32_ABS)), i32x4.splat(WIDE_MAX_FINITE));
  return v128.or(wideToF32x4Finite(x), v128.and(infNan, i32x4.splat(F32_EXP)));
}

/** Whether any of the eight f16 lanes of `h` (i16x8) is Inf or NaN. SIMD build only. */
// @ts-ignore: decorator
@inline export function f16x8HasInfNaN(h: v128): bool {
  return v128.any_true(i16x8.gt_u(i16x8.shl(h, 1), i16x8.splat(<i16>SHL1_MAX_FINITE)));
}

/** Whether any of the sixteen f16 lanes of `h0`, `h1` (two i16x8) is Inf or NaN. SIMD build only. */
// @ts-ignore: decorator
@inline export function f16x16HasInfNaN(h0: v128, h1: v128): bool {
  const m = i16x8.max_u(i16x8.shl(h0, 1), i16x8.shl(h1, 1));
  return v128.any_true(i16x8.gt_u(m, i16x8.splat(<i16>SHL1_MAX_FINITE)));
}

/** Lanes 0..3 of eight f16 (i16x8) as an f32x4, exactly. SIMD build only. */
// @ts-ignore: decorator
@inline export function f16x8LowToF32x4(h: v128): v128 {
  return wideToF32x4(i16x8.shuffle(i32x4.splat(0), h, 0, 8, 1, 9, 2, 10, 3, 11));
}

/** Lanes 4..7 of eight f16 (i16x8) as an f32x4, exactly. SIMD build only. */
// @ts-ignore: decorator
@inline export function f16x8HighToF32x4(h: v128): v128 {
  return wideToF32x4(i16x8.shuffle(i32x4.splat(0), h, 4, 12, 5, 13, 6, 14, 7, 15));
}

/** Lanes 0..3 of eight f16 as an f32x4; exact when `f16x8HasInfNaN(h)` is false. SIMD build only. */
// @ts-ignore: decorator
@inline export function f16x8LowToF32x4Finite(h: v128): v128 {
  return wideToF32x4Finite(i16x8.shuffle(i32x4.splat(0), h, 0, 8, 1, 9, 2, 10, 3, 11));
}

/** Lanes 4..7 of eight f16 as an f32x4; exact when `f16x8HasInfNaN(h)` is false. SIMD build only. */
// @ts-ignore: decorator
@inline export function f16x8HighToF32x4Finite(h: v128): v128 {
  return wideToF32x4Finite(i16x8.shuffle(i32x4.splat(0), h, 4, 12, 5, 13, 6, 14, 7, 15));
}

/** Decode four f16 (the low 16 bits of each i32x4 lane) to an f32x4, exactly. SIMD build only. */
// @ts-ignore: decorator
@inline export function f16x4ToF32x4(h: v128): v128 {
  return wideToF32x4(i32x4.shl(h, 16));
}

/** Encode an f32x4 as four f16 (i32x4 lanes holding the bits). SIMD build only. */
// @ts-ignore: decorator
@inline export function f32x4ToF16x4(x: v128): v128 {
  const a = v128.and(x, i32x4.splat(F32_ABS));
  const sign = v128.and(i32x4.shr_u(x, 16), i32x4.splat(F16_SIGN));
  // normal range
  const t = i32x4.sub(a, i32x4.splat(REBIAS));
  const lsb = v128.and(i32x4.shr_u(t, MANT_SHIFT), i32x4.splat(1));
  const norm = i32x4.shr_u(i32x4.add(i32x4.add(t, i32x4.splat(ROUND_HALF_MINUS_1)), lsb), MANT_SHIFT);
  // subnormal range: one float add rounds to the 2^-24 grid
  const sub = i32x4.sub(f32x4.add(a, i32x4.splat(HALF_BITS)), i32x4.splat(HALF_BITS));
  // Inf / NaN / overflow
  const m = v128.and(i32x4.shr_u(a, MANT_SHIFT), i32x4.splat(0x3ff));
  const isNan = i32x4.gt_s(a, i32x4.splat(F32_EXP));
  const quiet = v128.and(i32x4.eq(m, i32x4.splat(0)), i32x4.splat(F16_QUIET));
  const nan = v128.or(v128.or(m, quiet), i32x4.splat(F16_EXP));
  const big = v128.bitselect(nan, i32x4.splat(F16_EXP), isNan);
  let h = v128.bitselect(sub, norm, i32x4.lt_s(a, i32x4.splat(F32_F16_MIN_NORMAL)));
  h = v128.bitselect(big, h, i32x4.ge_s(a, i32x4.splat(F32_F16_OVERFLOW)));
  return v128.or(h, sign);
}

/** Width of the f16 normal range in f32 bits: a - F32_F16_MIN_NORMAL below this (unsigned) is normal. */
// @ts-ignore: decorator
@inline const F32_F16_NORMAL_SPAN: u32 = F32_F16_OVERFLOW - F32_F16_MIN_NORMAL;

/** Whether all eight lanes of `x0`, `x1` (f32x4) encode as normal f16 (2^-14 <= |x| < 65520). SIMD build only. */
// @ts-ignore: decorator
@inline export function f32x8AllF16Normal(x0: v128, x1: v128): bool {
  const low = i32x4.splat(F32_F16_MIN_NORMAL), span = i32x4.splat(F32_F16_NORMAL_SPAN - 1);
  const out0 = i32x4.gt_u(i32x4.sub(v128.and(x0, i32x4.splat(F32_ABS)), low), span);
  const out1 = i32x4.gt_u(i32x4.sub(v128.and(x1, i32x4.splat(F32_ABS)), low), span);
  return !v128.any_true(v128.or(out0, out1));
}

/**
 * Encode an f32x4 whose lanes are all in the f16 normal range (see `f32x8AllF16Normal`) as four
 * f16 (i32x4 lanes holding the bits), round to nearest even. SIMD build only.
 */
// @ts-ignore: decorator
@inline export function f32x4ToF16x4Normal(x: v128): v128 {
  const a = v128.and(x, i32x4.splat(F32_ABS));
  const lsb = v128.and(i32x4.shr_u(a, MANT_SHIFT), i32x4.splat(1)); // REBIAS has no bits below 2^23
  const h = i32x4.shr_u(i32x4.add(i32x4.add(a, i32x4.splat(ROUND_HALF_MINUS_1 - REBIAS)), lsb), MANT_SHIFT);
  return v128.or(h, v128.and(i32x4.shr_u(x, 16), i32x4.splat(F16_SIGN)));
}

/** Load four f16 at `ptr` as an f32x4. SIMD build only. */
// @ts-ignore: decorator
@inline export function loadF16x4(ptr: usize): v128 {
  return f16x4ToF32x4(v128.load16x4_u(ptr));
}

/** Decode n f16 at src into n f32 at dst. */
export function f16ToF32(src: usize, dst: usize, n: i32): void {
  let i: i32 = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 8 <= n; i += 8) {
      const h = v128.load(src + (<usize>i << 1));
      const o = dst + (<usize>i << 2);
      if (f16x8HasInfNaN(h)) {
        v128.store(o, f16x8LowToF32x4(h));
        v128.store(o, f16x8HighToF32x4(h), 16);
      } else {
        v128.store(o, f16x8LowToF32x4Finite(h));
        v128.store(o, f16x8HighToF32x4Finite(h), 16);
      }
    }
  }
  for (; i < n; i++) {
    store<f32>(dst + (<usize>i << 2), f16bitsToF32(<u32>load<u16>(src + (<usize>i << 1))));
  }
}

/** Encode n f32 at src into n f16 at dst. */
export function f32ToF16(src: usize, dst: usize, n: i32): void {
  let i: i32 = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 8 <= n; i += 8) {
      const s = src + (<usize>i << 2);
      const x0 = v128.load(s), x1 = v128.load(s, 16);
      let lo: v128, hi: v128;
      if (f32x8AllF16Normal(x0, x1)) {
        lo = f32x4ToF16x4Normal(x0); hi = f32x4ToF16x4Normal(x1);
      } else {
        lo = f32x4ToF16x4(x0); hi = f32x4ToF16x4(x1);
      }
      v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(lo, hi));
    }
  }
  for (; i < n; i++) {
    store<u16>(dst + (<usize>i << 1), <u16>f32ToF16bits(load<f32>(src + (<usize>i << 2))));
  }
}

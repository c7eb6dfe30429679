// Asymmetric group quantization in the two KIVI layouts (arXiv 2402.02750), page
// pack/unpack, and the fused dequantize-dot / dequantize-axpy used by attention.
// Page layout: see layout.ts.
//
// quantKeys(src: f32[n][d], n, d, bits, codes: u8[n][R], scale: f16[d], min: f16[d])
//     per channel over the n tokens (1 <= n <= PAGE_TOKENS).
// dequantKeys(codes, scale, min, n, d, bits, dst: f32[n][d])
// quantValues(src: f32[n][d], n, d, vg, bits, codes: u8[n][R], scale: f16[n][d/vg], min: f16[n][d/vg])
// dequantValues(codes, scale, min, n, d, vg, bits, dst: f32[n][d])
// qdotKeys(codes, scale, min, n, d, bits, q: f32[d], out: f32[n])         out[t] = <q, k^_t>
// qaxpyValues(codes, scale, min, n, d, vg, bits, p: f32[n], out: f32[d])  out += sum_t p[t] v^_t
// packPage(format, d, vg, count, k: f32[count][d], v: f32[count][d], logW: f32[count], pos: i32[count], page)
// unpackPage(format, d, vg, count, page, k, v, logW, pos)   any destination pointer may be 0 (skipped)
//
// Preconditions (checked by the host): d % 8 == 0, d <= MAX_HEAD_DIM; vg divides d and
// vg % 4 == 0; bits in {2, 4, 8}; 0 <= count <= PAGE_TOKENS (n >= 1 for quant*);
// every input value finite with |x| <= 65504 (the f16 range: scales and minima are f16).
//
// Quantization of one group with minimum mn and maximum mx (L = 2^bits - 1 levels):
//   minH   = mn rounded DOWN to f16,  scaleH = (mx - minH) / L rounded UP to f16,
//   code   = clamp(round_even((x - minH) / scaleH), 0, L)     (code = 0 when scaleH == 0)
//   x^     = minH + scaleH * code.
// Because the stored (rounded) minimum and scale are the ones used to pick the code,
// every x lies in [minH, minH + L*scaleH] and |x - x^| <= scaleH / 2 (up to f32 rounding).
//
// Code packing inside a row of R = d*bits/8 bytes: byte j holds channel j + s*R in bits
// [s*bits, (s+1)*bits), s = 0 .. 8/bits - 1.
//
// Pages keep unused slots (count .. PAGE_TOKENS-1) zeroed, so a page's bytes depend only
// on its entries (snapshots are deterministic).
//
// SIMD build: quantization (group min/max, lane-wise f16 round-down/up, magic-number rounding,
// byte packing of the planes), dequantization, f16 page conversion and the fused qdot/qaxpy
// run 4-16 lanes at a time where rows are whole 16-byte chunks (d*bits/8 % 16 == 0, and
// vg % 4 == 0 for values); other shapes use the scalar code. Quantization and f16 conversion
// do the same operations as the scalar code, so both builds write identical page bytes.
// builtins renamed because kernels take a parameter called `min` (the ABI's name)
// @ts-ignore: decorator
@inline function fmin<T>(a: T, b: T): T { return min<T>(a, b); }
// @ts-ignore: decorator
@inline function fmax<T>(a: T, b: T): T { return max<T>(a, b); }

import {
  PAGE_TOKENS, PAYLOAD_OFFSET, FMT_F32, FMT_F16, formatBits, rowBytes,
  kScaleOff, kMinOff, kCodesOff, vScaleOff, vMinOff, vCodesOff,
} from './layout';

/** Largest head dim the kernels accept (scratch buffers are sized by it). */
export const MAX_HEAD_DIM: i32 = 256;

// ---------------------------------------------------------------------------------
// binary16 helpers (self-contained: quant/attention do not depend on f16.ts)

/** 2^112 as f32: scales a binary16 magnitude placed at bit 13 of a binary32 to its value. */
export const F16_TO_F32_SCALE: f32 = 5.192296858534828e33;
const F16_EXP_MASK: u32 = 0x7c00;
const F16_SIGN: u32 = 0x8000;
const F16_INF_NAN_F32: u32 = 0x7f800000;

/** Exact binary16 -> binary32 (Inf and NaN kept). */
// @ts-ignore: decorator
@inline export function halfToFloat(h: u32): f32 {
  const sign = (h & F16_SIGN) << 16;
  const mag = h & 0x7fff;
  if (mag >= F16_EXP_MASK) return reinterpret<f32>(sign | F16_INF_NAN_F32 | ((mag & 0x3ff) << 13));
  const f = reinterpret<f32>(mag << 13) * F16_TO_F32_SCALE;
  return reinterpret<f32>(reinterpret<u32>(f) | sign);
}

/** binary32 -> binary16, round to nearest even; overflow -> Inf; NaN kept (quiet). */
export function floatToHalf(f: f32): u32 {
  const x = reinterpret<u32>(f);
  const sign = (x >> 16) & F16_SIGN;
  let a = x & 0x7fffffff;
  if (a >= F16_INF_NAN_F32) return sign | F16_EXP_MASK | (a > F16_INF_NAN_F32 ? 0x200 : 0);
  if (a >= 0x477ff000) return sign | F16_EXP_MASK; // >= 65520 rounds to Inf
  if (a < 0x38800000) {
    // below 2^-14: f16 subnormal. Adding 0.5 puts the f16 ulp (2^-24) at the f32 ulp of 0.5,
    // so the hardware's round-to-nearest-even does the rounding.
    const v = reinterpret<f32>(a) + 0.5;
    return sign | (reinterpret<u32>(v) - 0x3f000000);
  }
  a += 0xc8000000; // rebias exponent 127 -> 15
  a += 0xfff + ((a >> 13) & 1);
  return sign | (a >> 13);
}

/** Largest binary16 <= x (x finite, |x| <= 65504). */
export function halfDown(x: f32): u32 {
  let h = floatToHalf(x);
  if (halfToFloat(h) > x) {
    if (h & F16_SIGN) h += 1;      // negative: one step away from zero
    else if (h == 0) h = 0x8001;   // +0 -> -smallest subnormal
    else h -= 1;
  }
  return h;
}

/** Smallest binary16 >= x (x finite, 0 <= x <= 65504). */
export function halfUp(x: f32): u32 {
  let h = floatToHalf(x);
  if (halfToFloat(h) < x) {
    if (h == F16_SIGN) h = 1;
    else if (h & F16_SIGN) h -= 1;
    else h += 1;
  }
  return h;
}

// ---------------------------------------------------------------------------------
// One group: min/max -> stored f16 min and scale, and the quantizer

/** Writes minH and scaleH (f16) for a group with minimum mn and maximum mx; returns nothing. */
// @ts-ignore: decorator
@inline function groupParams(mn: f32, mx: f32, levels: i32, scalePtr: usize, minPtr: usize): void {
  const minH = halfDown(mn);
  const minF = halfToFloat(minH);
  const scaleH = mx > minF ? halfUp((mx - minF) / <f32>levels) : 0;
  store<u16>(minPtr, <u16>minH);
  store<u16>(scalePtr, <u16>scaleH);
}

// @ts-ignore: decorator
@inline function quantize(x: f32, minF: f32, inv: f32, levels: i32): i32 {
  let c = <i32>nearest((x - minF) * inv);
  if (c < 0) c = 0;
  if (c > levels) c = levels;
  return c;
}

/** Reciprocal of a stored scale, 0 for a constant group. */
// @ts-ignore: decorator
@inline function invScale(scaleF: f32): f32 {
  return scaleF > 0 ? <f32>1.0 / scaleF : 0;
}

/** Code of channel c in a packed row (R bytes, `bits` per code). */
// @ts-ignore: decorator
@inline export function codeAt(row: usize, c: i32, R: i32, bits: i32): i32 {
  const s = c / R;
  return (<i32>load<u8>(row + <usize>(c - s * R)) >> (s * bits)) & ((1 << bits) - 1);
}

// ---------------------------------------------------------------------------------
// SIMD versions of the f16 helpers and of the quantizer (same operations lane by lane,
// so the SIMD and scalar builds write identical bytes)

/** 1.5 * 2^23: adding it leaves round-half-even(x) in the low mantissa bits (|x| < 2^22). */
const ROUND_MAGIC: f32 = 12582912.0;
const ROUND_MAGIC_BITS: i32 = 0x4b400000;

/** f32x4 -> binary16 bits in i32 lanes, round to nearest even (as floatToHalf). */
// @ts-ignore: decorator
@inline function f32x4ToHalfBits(x: v128): v128 {
  const sign = v128.and(i32x4.shr_u(x, 16), i32x4.splat(<i32>F16_SIGN));
  const a = v128.and(x, i32x4.splat(0x7fffffff));
  const r = i32x4.add(a, i32x4.splat(<i32>0xc8000000));
  const nrm = i32x4.shr_u(i32x4.add(r, i32x4.add(i32x4.splat(0xfff), v128.and(i32x4.shr_u(r, 13), i32x4.splat(1)))), 13);
  const sub = i32x4.sub(f32x4.add(a, f32x4.splat(0.5)), i32x4.splat(0x3f000000));
  let h = v128.bitselect(sub, nrm, i32x4.lt_s(a, i32x4.splat(0x38800000)));
  h = v128.bitselect(i32x4.splat(<i32>F16_EXP_MASK), h, i32x4.ge_s(a, i32x4.splat(0x477ff000)));
  h = v128.bitselect(i32x4.splat(<i32>(F16_EXP_MASK | 0x200)), h, i32x4.gt_s(a, i32x4.splat(<i32>F16_INF_NAN_F32)));
  return v128.or(h, sign);
}

/** binary16 bits in i32 lanes -> f32x4, exact for finite values. */
// @ts-ignore: decorator
@inline function halfBitsToF32x4(h: v128): v128 {
  const mag = f32x4.mul(i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13), f32x4.splat(F16_TO_F32_SCALE));
  return v128.or(mag, i32x4.shl(v128.and(h, i32x4.splat(<i32>F16_SIGN)), 16));
}

/** Lane-wise halfDown (largest f16 <= x). */
// @ts-ignore: decorator
@inline function halfDownx4(x: v128): v128 {
  const h = f32x4ToHalfBits(x);
  const gt = f32x4.gt(halfBitsToF32x4(h), x);
  const neg = i32x4.ne(v128.and(h, i32x4.splat(<i32>F16_SIGN)), i32x4.splat(0));
  let adj = v128.bitselect(i32x4.add(h, i32x4.splat(1)), i32x4.sub(h, i32x4.splat(1)), neg);
  adj = v128.bitselect(i32x4.splat(0x8001), adj, i32x4.eq(h, i32x4.splat(0)));
  return v128.bitselect(adj, h, gt);
}

/** Lane-wise halfUp (smallest f16 >= x, x >= 0). */
// @ts-ignore: decorator
@inline function halfUpx4(x: v128): v128 {
  const h = f32x4ToHalfBits(x);
  const lt = f32x4.lt(halfBitsToF32x4(h), x);
  let adj = v128.bitselect(i32x4.splat(1), i32x4.add(h, i32x4.splat(1)), i32x4.eq(h, i32x4.splat(<i32>F16_SIGN)));
  adj = v128.bitselect(i32x4.sub(h, i32x4.splat(1)), adj, i32x4.gt_s(h, i32x4.splat(<i32>F16_SIGN)));
  return v128.bitselect(adj, h, lt);
}

/** Store the low 16 bits of four i32 lanes as four u16. */
// @ts-ignore: decorator
@inline function storeU16x4(p: usize, h: v128): void {
  v128.store64_lane(p, i16x8.narrow_i32x4_u(h, h), 0);
}

/**
 * Group parameters for four groups at once (lanes): stores f16 min/scale at minPtr/scalePtr
 * (4 x u16) and returns nothing; minF / inv (f32x4) go to minOut / invOut.
 */
// @ts-ignore: decorator
@inline function groupParamsx4(mn: v128, mx: v128, levels: i32, scalePtr: usize, minPtr: usize, minOut: usize, invOut: usize): void {
  const minH = halfDownx4(mn);
  const minF = halfBitsToF32x4(minH);
  const pos = f32x4.gt(mx, minF);
  const scaleH = v128.and(halfUpx4(f32x4.div(f32x4.sub(mx, minF), f32x4.splat(<f32>levels))), pos);
  const scaleF = halfBitsToF32x4(scaleH);
  const inv = v128.and(f32x4.div(f32x4.splat(1), scaleF), f32x4.gt(scaleF, f32x4.splat(0)));
  storeU16x4(minPtr, minH);
  storeU16x4(scalePtr, scaleH);
  v128.store(minOut, minF);
  v128.store(invOut, inv);
}

/** Codes of 4 values: clamp(round((x - minF) * inv), 0, levels) as i32 lanes. */
// @ts-ignore: decorator
@inline function quantizex4(x: v128, minF: v128, inv: v128, levels: v128): v128 {
  const y = f32x4.add(f32x4.mul(f32x4.sub(x, minF), inv), f32x4.splat(ROUND_MAGIC));
  return i32x4.min_s(i32x4.max_s(i32x4.sub(y, i32x4.splat(ROUND_MAGIC_BITS)), i32x4.splat(0)), levels);
}

/** Four i32x4 of codes (0..255) -> 16 bytes. */
// @ts-ignore: decorator
@inline function packBytes(a: v128, b: v128, c: v128, d: v128): v128 {
  return i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(a, b), i16x8.narrow_i32x4_u(c, d));
}

/** binary16 bits in i32 lanes -> f32x4, exact for every input (Inf and NaN kept). */
// @ts-ignore: decorator
@inline function halfBitsToF32x4Full(h: v128): v128 {
  const f = halfBitsToF32x4(h);
  const special = i32x4.eq(v128.and(h, i32x4.splat(<i32>F16_EXP_MASK)), i32x4.splat(<i32>F16_EXP_MASK));
  const sp = v128.or(v128.or(i32x4.shl(v128.and(h, i32x4.splat(<i32>F16_SIGN)), 16), i32x4.splat(<i32>F16_INF_NAN_F32)), i32x4.shl(v128.and(h, i32x4.splat(0x3ff)), 13));
  return v128.bitselect(sp, f, special);
}

/** Dequantize 16 codes (one plane of a 16-byte chunk, as bytes) to dst[0..15] = min + scale * code. */
// @ts-ignore: decorator
@inline function dequant16(c: v128, minF0: v128, minF1: v128, minF2: v128, minF3: v128, sc0: v128, sc1: v128, sc2: v128, sc3: v128, dst: usize): void {
  const lo = i16x8.extend_low_i8x16_u(c), hi = i16x8.extend_high_i8x16_u(c);
  v128.store(dst, f32x4.add(minF0, f32x4.mul(sc0, f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(lo)))));
  v128.store(dst, f32x4.add(minF1, f32x4.mul(sc1, f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(lo)))), 16);
  v128.store(dst, f32x4.add(minF2, f32x4.mul(sc2, f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(hi)))), 32);
  v128.store(dst, f32x4.add(minF3, f32x4.mul(sc3, f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(hi)))), 48);
}

/** Plane k of 16 packed bytes (bits [k*bits, (k+1)*bits) of each byte). */
// @ts-ignore: decorator
@inline function planeBytes(b: v128, k: i32, bits: i32): v128 {
  if (bits == 8) return b;
  const mask: i32 = (1 << bits) - 1;
  return v128.and(k == 0 ? b : i16x8.shr_u(b, k * bits), i8x16.splat(<i8>mask));
}

/** Scratch: per-channel (keys) or per-group (values) minF and 1/scale as f32. */
const Q_MINF: usize = memory.data(MAX_HEAD_DIM * 4 * PAGE_TOKENS);
const Q_INV: usize = memory.data(MAX_HEAD_DIM * 4 * PAGE_TOKENS);
const Q_MN: usize = memory.data(MAX_HEAD_DIM * PAGE_TOKENS + 16);
const Q_MX: usize = memory.data(MAX_HEAD_DIM * PAGE_TOKENS + 16);

/**
 * Pack one row of codes: byte j = sum_k code(j + k*R) << (k*bits). `codeOf(c)` is evaluated by
 * the caller through the per-channel arrays: minF/inv at (minBase, invBase) + 4*c, or per group.
 * Handles 16-byte chunks when R % 16 == 0 and (for values) vg % 4 == 0; returns the bytes done.
 */
// @ts-ignore: decorator
@inline function packRowSimd(x: usize, row: usize, R: i32, P: i32, bits: i32, levels: i32, minF: usize, inv: usize, perGroup: bool, vg: i32): i32 {
  if ((R & 15) != 0) return 0;
  const lv = i32x4.splat(levels);
  for (let j = 0; j < R; j += 16) {
    let acc = i32x4.splat(0);
    for (let k = 0; k < P; k++) {
      const c = j + k * R;
      let m0: v128, m1: v128, m2: v128, m3: v128, i0: v128, i1: v128, i2: v128, i3: v128;
      if (perGroup) {
        const g0 = <usize>(c / vg) << 2, g1 = <usize>((c + 4) / vg) << 2, g2 = <usize>((c + 8) / vg) << 2, g3 = <usize>((c + 12) / vg) << 2;
        m0 = v128.load32_splat(minF + g0); m1 = v128.load32_splat(minF + g1); m2 = v128.load32_splat(minF + g2); m3 = v128.load32_splat(minF + g3);
        i0 = v128.load32_splat(inv + g0); i1 = v128.load32_splat(inv + g1); i2 = v128.load32_splat(inv + g2); i3 = v128.load32_splat(inv + g3);
      } else {
        const o = <usize>c << 2;
        m0 = v128.load(minF + o); m1 = v128.load(minF + o, 16); m2 = v128.load(minF + o, 32); m3 = v128.load(minF + o, 48);
        i0 = v128.load(inv + o); i1 = v128.load(inv + o, 16); i2 = v128.load(inv + o, 32); i3 = v128.load(inv + o, 48);
      }
      const xp = x + (<usize>c << 2);
      const b = packBytes(quantizex4(v128.load(xp), m0, i0, lv), quantizex4(v128.load(xp, 16), m1, i1, lv),
        quantizex4(v128.load(xp, 32), m2, i2, lv), quantizex4(v128.load(xp, 48), m3, i3, lv));
      acc = v128.or(acc, k == 0 ? b : i16x8.shl(b, k * bits));
    }
    v128.store(row + <usize>j, acc);
  }
  return R;
}

// ---------------------------------------------------------------------------------
// Keys: per channel over the tokens

/** Quantize keys `src: f32[n][d]` per channel (KIVI key layout). */
export function quantKeys(src: usize, n: i32, d: i32, bits: i32, codes: usize, scale: usize, min: usize): void {
  const levels = (1 << bits) - 1;
  const R = rowBytes(d, bits);
  if (ASC_FEATURE_SIMD && (R & 15) == 0) {
    // per 4 channels: min/max over the tokens, then the group parameters lane-wise
    for (let c = 0; c < d; c += 4) {
      let mn = v128.load(src + (<usize>c << 2)), mx = mn;
      for (let t = 1; t < n; t++) {
        const x = v128.load(src + (<usize>(t * d + c) << 2));
        mn = f32x4.min(mn, x);
        mx = f32x4.max(mx, x);
      }
      groupParamsx4(mn, mx, levels, scale + (<usize>c << 1), min + (<usize>c << 1), Q_MINF + (<usize>c << 2), Q_INV + (<usize>c << 2));
    }
    const P = 8 / bits;
    for (let t = 0; t < n; t++) {
      packRowSimd(src + (<usize>(t * d) << 2), codes + <usize>(t * R), R, P, bits, levels, Q_MINF, Q_INV, false, 0);
    }
    return;
  }
  memory.fill(codes, 0, <usize>(n * R));
  for (let c = 0; c < d; c++) {
    let mn = load<f32>(src + (<usize>c << 2));
    let mx = mn;
    for (let t = 1; t < n; t++) {
      const x = load<f32>(src + (<usize>(t * d + c) << 2));
      mn = fmin<f32>(mn, x);
      mx = fmax<f32>(mx, x);
    }
    groupParams(mn, mx, levels, scale + (<usize>c << 1), min + (<usize>c << 1));
    const minF = halfToFloat(load<u16>(min + (<usize>c << 1)));
    const inv = invScale(halfToFloat(load<u16>(scale + (<usize>c << 1))));
    const s = c / R;
    const byteOff = <usize>(c - s * R);
    const shift = s * bits;
    for (let t = 0; t < n; t++) {
      const code = quantize(load<f32>(src + (<usize>(t * d + c) << 2)), minF, inv, levels);
      const p = codes + <usize>(t * R) + byteOff;
      store<u8>(p, load<u8>(p) | <u8>(code << shift));
    }
  }
}

/** Dequantize keys to `dst: f32[n][d]`. */
export function dequantKeys(codes: usize, scale: usize, min: usize, n: i32, d: i32, bits: i32, dst: usize): void {
  const R = rowBytes(d, bits);
  if (ASC_FEATURE_SIMD && (R & 15) == 0) {
    for (let c = 0; c < d; c += 4) {
      v128.store(Q_MINF + (<usize>c << 2), halfBitsToF32x4(v128.load16x4_u(min + (<usize>c << 1))));
      v128.store(Q_INV + (<usize>c << 2), halfBitsToF32x4(v128.load16x4_u(scale + (<usize>c << 1))));
    }
    const P = 8 / bits;
    for (let t = 0; t < n; t++) {
      const row = codes + <usize>(t * R);
      const out = dst + (<usize>(t * d) << 2);
      for (let j = 0; j < R; j += 16) {
        const b = v128.load(row + <usize>j);
        for (let k = 0; k < P; k++) {
          const o = <usize>(j + k * R) << 2;
          const m = Q_MINF + o, sc = Q_INV + o;
          dequant16(planeBytes(b, k, bits), v128.load(m), v128.load(m, 16), v128.load(m, 32), v128.load(m, 48),
            v128.load(sc), v128.load(sc, 16), v128.load(sc, 32), v128.load(sc, 48), out + o);
        }
      }
    }
    return;
  }
  for (let t = 0; t < n; t++) {
    const row = codes + <usize>(t * R);
    for (let c = 0; c < d; c++) {
      const sF = halfToFloat(load<u16>(scale + (<usize>c << 1)));
      const mF = halfToFloat(load<u16>(min + (<usize>c << 1)));
      store<f32>(dst + (<usize>(t * d + c) << 2), mF + sF * <f32>codeAt(row, c, R, bits));
    }
  }
}

// ---------------------------------------------------------------------------------
// Values: per token over groups of vg channels

/** Quantize values `src: f32[n][d]` per token over groups of vg channels (KIVI value layout). */
export function quantValues(src: usize, n: i32, d: i32, vg: i32, bits: i32, codes: usize, scale: usize, min: usize): void {
  const levels = (1 << bits) - 1;
  const R = rowBytes(d, bits);
  const ng = d / vg;
  if (ASC_FEATURE_SIMD && (R & 15) == 0 && (vg & 3) == 0) {
    // min/max per (token, group), then the parameters of 4 groups at a time (flattened index)
    const total = n * ng;
    for (let t = 0; t < n; t++) {
      for (let g = 0; g < ng; g++) {
        const x = src + (<usize>(t * d + g * vg) << 2);
        let mn = v128.load(x), mx = mn;
        for (let c = 4; c < vg; c += 4) {
          const v = v128.load(x + (<usize>c << 2));
          mn = f32x4.min(mn, v);
          mx = f32x4.max(mx, v);
        }
        mn = f32x4.min(mn, v128.shuffle<f32>(mn, mn, 2, 3, 0, 1));
        mx = f32x4.max(mx, v128.shuffle<f32>(mx, mx, 2, 3, 0, 1));
        const i = <usize>(t * ng + g) << 2;
        store<f32>(Q_MN + i, fmin<f32>(f32x4.extract_lane(mn, 0), f32x4.extract_lane(mn, 1)));
        store<f32>(Q_MX + i, fmax<f32>(f32x4.extract_lane(mx, 0), f32x4.extract_lane(mx, 1)));
      }
    }
    // pad to a multiple of 4 with a harmless group; only `total` parameters are stored
    for (let i = total; i < ((total + 3) & ~3); i++) { store<f32>(Q_MN + (<usize>i << 2), 0); store<f32>(Q_MX + (<usize>i << 2), 0); }
    for (let i = 0; i < total; i += 4) {
      const o = <usize>i << 2;
      if (i + 4 <= total) {
        groupParamsx4(v128.load(Q_MN + o), v128.load(Q_MX + o), levels, scale + (<usize>i << 1), min + (<usize>i << 1), Q_MINF + o, Q_INV + o);
      } else {
        for (let k = i; k < total; k++) {
          const ko = <usize>k << 2;
          groupParams(load<f32>(Q_MN + ko), load<f32>(Q_MX + ko), levels, scale + (<usize>k << 1), min + (<usize>k << 1));
          const minF = halfToFloat(load<u16>(min + (<usize>k << 1)));
          store<f32>(Q_MINF + ko, minF);
          store<f32>(Q_INV + ko, invScale(halfToFloat(load<u16>(scale + (<usize>k << 1)))));
        }
      }
    }
    const P = 8 / bits;
    for (let t = 0; t < n; t++) {
      const gi = <usize>(t * ng) << 2;
      packRowSimd(src + (<usize>(t * d) << 2), codes + <usize>(t * R), R, P, bits, levels, Q_MINF + gi, Q_INV + gi, true, vg);
    }
    return;
  }
  memory.fill(codes, 0, <usize>(n * R));
  for (let t = 0; t < n; t++) {
    const x0 = src + (<usize>(t * d) << 2);
    const row = codes + <usize>(t * R);
    for (let g = 0; g < ng; g++) {
      const c0 = g * vg;
      let mn = load<f32>(x0 + (<usize>c0 << 2));
      let mx = mn;
      for (let c = c0 + 1; c < c0 + vg; c++) {
        const x = load<f32>(x0 + (<usize>c << 2));
        mn = fmin<f32>(mn, x);
        mx = fmax<f32>(mx, x);
      }
      const gp = <usize>((t * ng + g) << 1);
      groupParams(mn, mx, levels, scale + gp, min + gp);
      const minF = halfToFloat(load<u16>(min + gp));
      const inv = invScale(halfToFloat(load<u16>(scale + gp)));
      for (let c = c0; c < c0 + vg; c++) {
        const code = quantize(load<f32>(x0 + (<usize>c << 2)), minF, inv, levels);
        const s = c / R;
        const p = row + <usize>(c - s * R);
        store<u8>(p, load<u8>(p) | <u8>(code << (s * bits)));
      }
    }
  }
}

/** Dequantize values to `dst: f32[n][d]`. */
export function dequantValues(codes: usize, scale: usize, min: usize, n: i32, d: i32, vg: i32, bits: i32, dst: usize): void {
  const R = rowBytes(d, bits);
  const ng = d / vg;
  if (ASC_FEATURE_SIMD && (R & 15) == 0 && (vg & 3) == 0) {
    const P = 8 / bits;
    for (let t = 0; t < n; t++) {
      const row = codes + <usize>(t * R);
      const out = dst + (<usize>(t * d) << 2);
      const gp = <usize>(t * ng) << 1;
      for (let j = 0; j < R; j += 16) {
        const b = v128.load(row + <usize>j);
        for (let k = 0; k < P; k++) {
          const c = j + k * R;
          const g0 = gp + (<usize>(c / vg) << 1), g1 = gp + (<usize>((c + 4) / vg) << 1);
          const g2 = gp + (<usize>((c + 8) / vg) << 1), g3 = gp + (<usize>((c + 12) / vg) << 1);
          dequant16(planeBytes(b, k, bits),
            f32x4.splat(halfToFloat(load<u16>(min + g0))), f32x4.splat(halfToFloat(load<u16>(min + g1))),
            f32x4.splat(halfToFloat(load<u16>(min + g2))), f32x4.splat(halfToFloat(load<u16>(min + g3))),
            f32x4.splat(halfToFloat(load<u16>(scale + g0))), f32x4.splat(halfToFloat(load<u16>(scale + g1))),
            f32x4.splat(halfToFloat(load<u16>(scale + g2))), f32x4.splat(halfToFloat(load<u16>(scale + g3))),
            out + (<usize>c << 2));
        }
      }
    }
    return;
  }
  for (let t = 0; t < n; t++) {
    const row = codes + <usize>(t * R);
    for (let c = 0; c < d; c++) {
      const gp = <usize>((t * ng + c / vg) << 1);
      const sF = halfToFloat(load<u16>(scale + gp));
      const mF = halfToFloat(load<u16>(min + gp));
      store<f32>(dst + (<usize>(t * d + c) << 2), mF + sF * <f32>codeAt(row, c, R, bits));
    }
  }
}

// ---------------------------------------------------------------------------------
// Fused dequantize-dot / dequantize-axpy (no float copy of the codes is built)

/** Scratch for qdotKeys: q_c * scale_c. */
const QS_SCRATCH: usize = memory.data(MAX_HEAD_DIM * 4);

/**
 * out[t] = <q, k^_t> for the n quantized keys, computed as
 * sum_c q_c*min_c + sum_c (q_c*scale_c) * code_tc (the per-channel products once per call).
 */
export function qdotKeys(codes: usize, scale: usize, min: usize, n: i32, d: i32, bits: i32, q: usize, out: usize): void {
  const R = rowBytes(d, bits);
  if (ASC_FEATURE_SIMD && (R & 15) == 0) {
    let qmv = f32x4.splat(0);
    for (let c = 0; c < d; c += 4) {
      const qc = v128.load(q + (<usize>c << 2));
      qmv = f32x4.add(qmv, f32x4.mul(qc, halfBitsToF32x4(v128.load16x4_u(min + (<usize>c << 1)))));
      v128.store(QS_SCRATCH + (<usize>c << 2), f32x4.mul(qc, halfBitsToF32x4(v128.load16x4_u(scale + (<usize>c << 1)))));
    }
    const qm = (f32x4.extract_lane(qmv, 0) + f32x4.extract_lane(qmv, 1)) + (f32x4.extract_lane(qmv, 2) + f32x4.extract_lane(qmv, 3));
    const P = 8 / bits;
    for (let t = 0; t < n; t++) {
      const row = codes + <usize>(t * R);
      let acc = f32x4.splat(0);
      for (let j = 0; j < R; j += 16) {
        const b = v128.load(row + <usize>j);
        for (let k = 0; k < P; k++) {
          const qs = QS_SCRATCH + (<usize>(j + k * R) << 2);
          const c = planeBytes(b, k, bits);
          const lo = i16x8.extend_low_i8x16_u(c), hi = i16x8.extend_high_i8x16_u(c);
          acc = f32x4.add(acc, f32x4.mul(v128.load(qs), f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(lo))));
          acc = f32x4.add(acc, f32x4.mul(v128.load(qs, 16), f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(lo))));
          acc = f32x4.add(acc, f32x4.mul(v128.load(qs, 32), f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(hi))));
          acc = f32x4.add(acc, f32x4.mul(v128.load(qs, 48), f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(hi))));
        }
      }
      store<f32>(out + (<usize>t << 2), qm + ((f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) + (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3))));
    }
    return;
  }
  let qm: f32 = 0;
  for (let c = 0; c < d; c++) {
    const qc = load<f32>(q + (<usize>c << 2));
    qm += qc * halfToFloat(load<u16>(min + (<usize>c << 1)));
    store<f32>(QS_SCRATCH + (<usize>c << 2), qc * halfToFloat(load<u16>(scale + (<usize>c << 1))));
  }
  for (let t = 0; t < n; t++) {
    const row = codes + <usize>(t * R);
    let acc: f32 = 0;
    for (let c = 0; c < d; c++) acc += load<f32>(QS_SCRATCH + (<usize>c << 2)) * <f32>codeAt(row, c, R, bits);
    store<f32>(out + (<usize>t << 2), qm + acc);
  }
}

/** out[c] += sum_t p[t] * v^_t[c] for the n quantized values. */
export function qaxpyValues(codes: usize, scale: usize, min: usize, n: i32, d: i32, vg: i32, bits: i32, p: usize, out: usize): void {
  const R = rowBytes(d, bits);
  const ng = d / vg;
  if (ASC_FEATURE_SIMD && (R & 15) == 0 && (vg & 3) == 0) {
    const P = 8 / bits;
    for (let t = 0; t < n; t++) {
      const pt = load<f32>(p + (<usize>t << 2));
      if (pt == 0) continue;
      // per group of this token: a = p * scale, b = p * min (group g's vectors at Q_MINF / Q_INV)
      for (let g = 0; g < ng; g++) {
        const gp = <usize>((t * ng + g) << 1);
        store<f32>(Q_INV + (<usize>g << 2), pt * halfToFloat(load<u16>(scale + gp)));
        store<f32>(Q_MINF + (<usize>g << 2), pt * halfToFloat(load<u16>(min + gp)));
      }
      const row = codes + <usize>(t * R);
      for (let j = 0; j < R; j += 16) {
        const b = v128.load(row + <usize>j);
        for (let k = 0; k < P; k++) {
          const c = j + k * R;
          const cb = planeBytes(b, k, bits);
          const lo = i16x8.extend_low_i8x16_u(cb), hi = i16x8.extend_high_i8x16_u(cb);
          const o = out + (<usize>c << 2);
          for (let q4 = 0; q4 < 4; q4++) {
            const g = <usize>((c + 4 * q4) / vg) << 2;
            const codes4 = q4 == 0 ? i32x4.extend_low_i16x8_u(lo) : q4 == 1 ? i32x4.extend_high_i16x8_u(lo) : q4 == 2 ? i32x4.extend_low_i16x8_u(hi) : i32x4.extend_high_i16x8_u(hi);
            const op = o + (<usize>q4 << 4);
            const x = f32x4.add(v128.load32_splat(Q_MINF + g), f32x4.mul(v128.load32_splat(Q_INV + g), f32x4.convert_i32x4_u(codes4)));
            v128.store(op, f32x4.add(v128.load(op), x));
          }
        }
      }
    }
    return;
  }
  for (let t = 0; t < n; t++) {
    const pt = load<f32>(p + (<usize>t << 2));
    if (pt == 0) continue;
    const row = codes + <usize>(t * R);
    for (let g = 0; g < ng; g++) {
      const gp = <usize>((t * ng + g) << 1);
      const a = pt * halfToFloat(load<u16>(scale + gp));
      const b = pt * halfToFloat(load<u16>(min + gp));
      for (let c = g * vg; c < (g + 1) * vg; c++) {
        const o = out + (<usize>c << 2);
        store<f32>(o, load<f32>(o) + (b + a * <f32>codeAt(row, c, R, bits)));
      }
    }
  }
}

// ---------------------------------------------------------------------------------
// Pages

/** f32[n] -> f16[n], round to nearest even. */
export function convertToHalf(src: usize, dst: usize, n: i32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 8 <= n; i += 8) {
      const p = src + (<usize>i << 2);
      v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(f32x4ToHalfBits(v128.load(p)), f32x4ToHalfBits(v128.load(p, 16))));
    }
  }
  for (; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>floatToHalf(load<f32>(src + (<usize>i << 2))));
}

/** f16[n] -> f32[n], exact. */
export function convertFromHalf(src: usize, dst: usize, n: i32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), halfBitsToF32x4Full(v128.load16x4_u(src + (<usize>i << 1))));
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), halfToFloat(load<u16>(src + (<usize>i << 1))));
}

/**
 * Write one page of `format` from `count` entries: keys and values `f32[count][d]`,
 * log-weights `f32[count]`, positions `i32[count]`. Unused slots are zeroed.
 */
export function packPage(format: i32, d: i32, vg: i32, count: i32, k: usize, v: usize, logW: usize, pos: usize, page: usize): void {
  memory.fill(page, 0, PAYLOAD_OFFSET);
  memory.copy(page, logW, <usize>count << 2);
  memory.copy(page + (PAGE_TOKENS << 2), pos, <usize>count << 2);
  const payload = page + PAYLOAD_OFFSET;
  const plane = PAGE_TOKENS * d;
  if (format == FMT_F32) {
    memory.fill(payload, 0, <usize>(2 * plane) << 2);
    memory.copy(payload, k, <usize>(count * d) << 2);
    memory.copy(payload + (<usize>plane << 2), v, <usize>(count * d) << 2);
  } else if (format == FMT_F16) {
    memory.fill(payload, 0, <usize>(2 * plane) << 1);
    convertToHalf(k, payload, count * d);
    convertToHalf(v, payload + (<usize>plane << 1), count * d);
  } else {
    const bits = formatBits(format);
    const R = rowBytes(d, bits);
    const end = vCodesOff(d, bits, vg) + PAGE_TOKENS * R;
    memory.fill(page + PAYLOAD_OFFSET, 0, <usize>(end - PAYLOAD_OFFSET));
    if (count == 0) return;
    quantKeys(k, count, d, bits, page + kCodesOff(d), page + kScaleOff(), page + kMinOff(d));
    quantValues(v, count, d, vg, bits, page + vCodesOff(d, bits, vg), page + vScaleOff(d, bits), page + vMinOff(d, bits, vg));
  }
}

/**
 * Read one page back: keys/values `f32[count][d]` (dequantized for packed formats),
 * log-weights, positions. Any destination pointer may be 0 (skipped).
 */
export function unpackPage(format: i32, d: i32, vg: i32, count: i32, page: usize, k: usize, v: usize, logW: usize, pos: usize): void {
  if (logW) memory.copy(logW, page, <usize>count << 2);
  if (pos) memory.copy(pos, page + (PAGE_TOKENS << 2), <usize>count << 2);
  const payload = page + PAYLOAD_OFFSET;
  const plane = PAGE_TOKENS * d;
  if (format == FMT_F32) {
    if (k) memory.copy(k, payload, <usize>(count * d) << 2);
    if (v) memory.copy(v, payload + (<usize>plane << 2), <usize>(count * d) << 2);
  } else if (format == FMT_F16) {
    if (k) convertFromHalf(payload, k, count * d);
    if (v) convertFromHalf(payload + (<usize>plane << 1), v, count * d);
  } else {
    const bits = formatBits(format);
    if (k) dequantKeys(page + kCodesOff(d), page + kScaleOff(), page + kMinOff(d), count, d, bits, k);
    if (v) dequantValues(page + vCodesOff(d, bits, vg), page + vScaleOff(d, bits), page + vMinOff(d, bits, vg), count, d, vg, bits, v);
  }
}

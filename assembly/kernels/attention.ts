// Decode attention over a lane's pages: online softmax (flash-decoding style), all
// G query heads of one GQA group in one pass over the keys, per-entry log-weight
// added to the logit.
//
// state (f32): m[G] running max, l[G] running sum, acc[G][d] running numerator.
// attnInit(state, G, d)                      m = -inf, l = 0, acc = 0
// attendPages(table, nPages, format, d, vg, q, G, scale, state, logits, logitsStride)
//     table: i32 pairs [pagePtr, count] x nPages, all pages of one `format`
//     q: f32[G][d]; logit(h, e) = scale * <q_h, k_e> + logW_e
//     logits: 0, or f32 with logits[h*logitsStride + e] = logit(h, e), e counted over
//     the entries of this call in page-table order (so the host offsets the pointer
//     per call to build one row over the whole lane).
//     Calls over several tables (tiers) accumulate into the same state.
// attnFinish(state, G, d, out: f32[G][d], lse: f32[G] or 0)   out = acc / l, lse = m + ln l
// probsFromLogits(logits, G, stride, n, lse: f32[G])           in place p = exp(logit - lse[h])
//
// Preconditions (checked by the host): 1 <= G <= MAX_GROUP; d % 8 == 0, d <= MAX_HEAD_DIM;
// vg divides d, vg % 4 == 0; 0 <= count <= PAGE_TOKENS per page; logW finite or -inf
// (an entry with logW = -inf is masked out); q finite. A head with no live entry
// finishes with out = 0 and lse = -inf.
//
// How a page is processed (both builds):
//   1. logits S[t][h] (scratch, [PAGE_TOKENS][Gp], Gp = G rounded up to 4) for t < count;
//   2. online-softmax step per head: new running max, rescale l and acc, S -> p;
//   3. acc[h] += sum_t p[t][h] v_t.
// Keys of a page are read once per group of 4 heads (from L1 after the first).
//
// SIMD build, per format:
//   f32  4 heads x 2 tokens register tile for the keys, 4 heads x 8 channels for values.
//   f16  the same tiles; binary16 is widened with integer ops only (sign-extend, shift,
//        mask: the value times 2^-112), the factor 2^112 being folded into q and p.
//   int8/int4/int2  integer dot products: per page, q_h * kScale_c is rounded to 16-bit
//        fixed point against its largest magnitude (relative error <= 2^-16 per term),
//        so a logit is sum_c qi_c * code_tc with i32x4.dot_i16x8_s (8 products per
//        instruction); the per-channel minima give one bias per head. Values likewise:
//        w = p_t * vScale_tg in 16-bit fixed point per (page, head, group), two tokens'
//        codes interleaved so that one dot_i16x8_s sums them; minima give one bias per
//        (head, group). This needs vg % 16 == 0 (the default, 32); other value groups and
//        row tails (d*bits/8 % 16 != 0) take float paths.
// Scalar build: the same math in f32 (no fixed point).
import { PAGE_TOKENS, PAYLOAD_OFFSET, FMT_F32, FMT_F16, formatBits, rowBytes, kScaleOff, kMinOff, kCodesOff, vScaleOff, vMinOff, vCodesOff } from './layout';
import { MAX_HEAD_DIM, halfToFloat, F16_TO_F32_SCALE } from './quant';

/** Largest GQA group (query heads per KV head) attendPages accepts. */
export const MAX_GROUP: i32 = 32;
/** Largest number of value groups per row (vg >= 4). */
const MAX_VALUE_GROUPS: i32 = MAX_HEAD_DIM / 4;
/** Value groups per row on the fixed-point path (vg % 16 == 0). */
const MAX_FAST_VALUE_GROUPS: i32 = MAX_HEAD_DIM / 16;
/** Full scale of the 16-bit fixed-point query and weight factors. */
const FIXED_ONE: f32 = 32767;
/** Bytes per SIMD chunk of packed codes. */
const CHUNK: i32 = 16;
/** f16 pages: |scale * q| above this would overflow once multiplied by 2^112; such calls take the exact path. */
const F16_FOLD_LIMIT: f32 = 6.0e4;

// Scratch (static, inside the module's data segment).
const SCR_S: usize = memory.data(PAGE_TOKENS * MAX_GROUP * 4);            // [t][Gp] logits, then p
const SCR_Q: usize = memory.data(MAX_GROUP * MAX_HEAD_DIM * 4);           // [Gp][d] q * scale (x 2^112 for f16)
const SCR_QS: usize = memory.data(MAX_GROUP * MAX_HEAD_DIM * 4);          // [Gp][d] q' * kScale (packed pages)
const SCR_QI: usize = memory.data(MAX_GROUP * MAX_HEAD_DIM * 2);          // [Gp][d] i16 fixed-point q' * kScale
const SCR_QF: usize = memory.data(MAX_GROUP * 4);                         // [Gp] fixed-point unit per head
const SCR_QM: usize = memory.data(MAX_GROUP * 4);                         // [Gp] sum_c q'_c kMin_c
const SCR_M: usize = memory.data(MAX_GROUP * 4);                          // [Gp] running max (padded copy)
const SCR_L: usize = memory.data(MAX_GROUP * 4);                          // [Gp] running sum (padded copy)
const SCR_KS: usize = memory.data(MAX_HEAD_DIM * 4);                      // [d] decoded key scales
const SCR_KM: usize = memory.data(MAX_HEAD_DIM * 4);                      // [d] decoded key minima
const SCR_VS: usize = memory.data(PAGE_TOKENS * MAX_VALUE_GROUPS * 4 + 16); // [t][ng] decoded value scales
const SCR_VM: usize = memory.data(PAGE_TOKENS * MAX_VALUE_GROUPS * 4 + 16); // [t][ng] decoded value minima
const SCR_W: usize = memory.data(MAX_FAST_VALUE_GROUPS * (PAGE_TOKENS / 2) * MAX_GROUP * 4); // [g][t/2][Gp] i16 pairs
const SCR_WF: usize = memory.data(MAX_VALUE_GROUPS * MAX_GROUP * 4);      // [g][Gp] fixed-point unit
const SCR_B: usize = memory.data(MAX_VALUE_GROUPS * MAX_GROUP * 4);       // [g][Gp] sum_t p * vMin
const SCR_CORR: usize = memory.data(16);                                  // one f32x4 of rescale factors

// ---------------------------------------------------------------------------------
// exp: Cephes-style range reduction and degree-6 polynomial (max error ~2 ulp on
// [-87, 88]); the scalar and SIMD versions do the same operations in the same order.
const EXP_LOG2E: f32 = 1.44269504088896341;
const EXP_C1: f32 = 0.693359375;
const EXP_C2: f32 = -2.12194440e-4;
const EXP_P0: f32 = 1.9875691500e-4;
const EXP_P1: f32 = 1.3981999507e-3;
const EXP_P2: f32 = 8.3334519073e-3;
const EXP_P3: f32 = 4.1665795894e-2;
const EXP_P4: f32 = 1.6666665459e-1;
const EXP_P5: f32 = 5.0000001201e-1;
/** Below this, exp(x) is taken as 0 (2^-126 is the smallest normal f32). */
const EXP_MIN_X: f32 = -87.33654475;
const F32_EXP_BIAS: i32 = 127;
const F32_MANT_BITS: i32 = 23;

/** exp(x) for x <= 88 (-inf and NaN -> 0). */
// @ts-ignore: decorator
@inline export function expNeg(x: f32): f32 {
  if (!(x >= EXP_MIN_X)) return 0;
  const n = nearest(x * EXP_LOG2E);
  const r = (x - n * EXP_C1) - n * EXP_C2;
  let p = EXP_P0 * r + EXP_P1;
  p = p * r + EXP_P2;
  p = p * r + EXP_P3;
  p = p * r + EXP_P4;
  p = p * r + EXP_P5;
  p = p * (r * r) + r + <f32>1.0;
  return p * reinterpret<f32>((<i32>n + F32_EXP_BIAS) << F32_MANT_BITS);
}

/** f32x4 exp, same operations as expNeg lane by lane. */
// @ts-ignore: decorator
@inline function expv(x: v128): v128 {
  const lo = f32x4.splat(EXP_MIN_X);
  const ok = f32x4.ge(x, lo);
  const xc = f32x4.max(x, lo);
  const n = f32x4.nearest(f32x4.mul(xc, f32x4.splat(EXP_LOG2E)));
  const r = f32x4.sub(f32x4.sub(xc, f32x4.mul(n, f32x4.splat(EXP_C1))), f32x4.mul(n, f32x4.splat(EXP_C2)));
  let p = f32x4.add(f32x4.mul(f32x4.splat(EXP_P0), r), f32x4.splat(EXP_P1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P4));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P5));
  p = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), f32x4.splat(1));
  const pow2 = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(F32_EXP_BIAS)), F32_MANT_BITS);
  return v128.and(f32x4.mul(p, pow2), ok);
}

// ---------------------------------------------------------------------------------
// SIMD helpers

/** Keeps the sign and the low 28 bits: binary16 bits sign-extended and shifted left by 13 become binary32 bits of x * 2^-112. */
const F16_FOLD_MASK: i32 = <i32>0x8fffffff;
const F16_SHIFT: i32 = 13;

/** binary16 lanes 0..3 of h -> f32 lanes of x * 2^-112 (exact; finite input). */
// @ts-ignore: decorator
@inline function f16LoFolded(h: v128): v128 {
  return v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(h), F16_SHIFT), i32x4.splat(F16_FOLD_MASK));
}
/** binary16 lanes 4..7 of h -> f32 lanes of x * 2^-112. */
// @ts-ignore: decorator
@inline function f16HiFolded(h: v128): v128 {
  return v128.and(i32x4.shl(i32x4.extend_high_i16x8_s(h), F16_SHIFT), i32x4.splat(F16_FOLD_MASK));
}
/** Four binary16 at p -> f32x4, exact values (finite input). */
// @ts-ignore: decorator
@inline function f16x4Exact(p: usize): v128 {
  return f32x4.mul(f16LoFolded(v128.load64_zero(p)), f32x4.splat(F16_TO_F32_SCALE));
}

/** [sum a0, sum a1, sum a2, sum a3] (f32 lanes). */
// @ts-ignore: decorator
@inline function hsum4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const t0 = f32x4.add(v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), v128.shuffle<f32>(a0, a1, 2, 6, 3, 7));
  const t1 = f32x4.add(v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), v128.shuffle<f32>(a2, a3, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(t0, t1, 0, 1, 4, 5), v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
}
/** [sum a0, sum a1, sum a2, sum a3] (i32 lanes). */
// @ts-ignore: decorator
@inline function hsum4i(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const t0 = i32x4.add(v128.shuffle<i32>(a0, a1, 0, 4, 1, 5), v128.shuffle<i32>(a0, a1, 2, 6, 3, 7));
  const t1 = i32x4.add(v128.shuffle<i32>(a2, a3, 0, 4, 1, 5), v128.shuffle<i32>(a2, a3, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(t0, t1, 0, 1, 4, 5), v128.shuffle<i32>(t0, t1, 2, 3, 6, 7));
}
// @ts-ignore: decorator
@inline function hmax(v: v128): f32 {
  const m = f32x4.max(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return max<f32>(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1));
}
// @ts-ignore: decorator
@inline function hadd(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}
/** Lane k of v in all four lanes. */
// @ts-ignore: decorator
@inline function bcast0(v: v128): v128 { return v128.shuffle<f32>(v, v, 0, 0, 0, 0); }
// @ts-ignore: decorator
@inline function bcast1(v: v128): v128 { return v128.shuffle<f32>(v, v, 1, 1, 1, 1); }
// @ts-ignore: decorator
@inline function bcast2(v: v128): v128 { return v128.shuffle<f32>(v, v, 2, 2, 2, 2); }
// @ts-ignore: decorator
@inline function bcast3(v: v128): v128 { return v128.shuffle<f32>(v, v, 3, 3, 3, 3); }

/** [a, b, c, d] from runtime i32 values. */
// @ts-ignore: decorator
@inline function i32x4From(a: i32, b: i32, c: i32, d: i32): v128 {
  return i32x4.replace_lane(i32x4.replace_lane(i32x4.replace_lane(i32x4.splat(a), 1, b), 2, c), 3, d);
}

/** 2^bits - 1. */
// @ts-ignore: decorator
@inline function codeMask(bits: i32): i32 { return (1 << bits) - 1; }

/** Codes of plane s (bits [s*bits, (s+1)*bits)) of 16 packed bytes. */
// @ts-ignore: decorator
@inline function plane(b: v128, shift: i32, mask: v128, whole: bool): v128 {
  return whole ? b : v128.and(i8x16.shr_u(b, shift), mask);
}

// ---------------------------------------------------------------------------------
// Keys -> logits, float formats (SIMD). T = f32 (f32 pages) or u16 (f16 pages, folded).

/** Load 8 channels of a key/value row (f32: two loads; f16: one load, widened). */
// @ts-ignore: decorator
@inline function rowLo<T>(p: usize): v128 {
  if (sizeof<T>() == 4) return v128.load(p);
  return f16LoFolded(v128.load(p));
}
// @ts-ignore: decorator
@inline function rowHi<T>(p: usize): v128 {
  if (sizeof<T>() == 4) return v128.load(p, 16);
  return f16HiFolded(v128.load(p));
}

/** 4 heads x 2 tokens: S[t0][hb..hb+3], S[t0+1][hb..hb+3]. */
// @ts-ignore: decorator
@inline function keysFloat4x2<T>(row0: usize, rowStride: usize, qb: usize, d: i32, logW: usize, s0: usize, sStride: usize): void {
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
  let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
  const qStride = <usize>d << 2;
  const row1 = row0 + rowStride;
  for (let c = 0; c < d; c += 8) {
    const kOff = <usize>c * sizeof<T>();
    const k0a = rowLo<T>(row0 + kOff), k0b = rowHi<T>(row0 + kOff);
    const k1a = rowLo<T>(row1 + kOff), k1b = rowHi<T>(row1 + kOff);
    let qp = qb + (<usize>c << 2);
    let qa = v128.load(qp), qbv = v128.load(qp, 16);
    a00 = f32x4.add(a00, f32x4.add(f32x4.mul(qa, k0a), f32x4.mul(qbv, k0b)));
    a01 = f32x4.add(a01, f32x4.add(f32x4.mul(qa, k1a), f32x4.mul(qbv, k1b)));
    qp += qStride; qa = v128.load(qp); qbv = v128.load(qp, 16);
    a10 = f32x4.add(a10, f32x4.add(f32x4.mul(qa, k0a), f32x4.mul(qbv, k0b)));
    a11 = f32x4.add(a11, f32x4.add(f32x4.mul(qa, k1a), f32x4.mul(qbv, k1b)));
    qp += qStride; qa = v128.load(qp); qbv = v128.load(qp, 16);
    a20 = f32x4.add(a20, f32x4.add(f32x4.mul(qa, k0a), f32x4.mul(qbv, k0b)));
    a21 = f32x4.add(a21, f32x4.add(f32x4.mul(qa, k1a), f32x4.mul(qbv, k1b)));
    qp += qStride; qa = v128.load(qp); qbv = v128.load(qp, 16);
    a30 = f32x4.add(a30, f32x4.add(f32x4.mul(qa, k0a), f32x4.mul(qbv, k0b)));
    a31 = f32x4.add(a31, f32x4.add(f32x4.mul(qa, k1a), f32x4.mul(qbv, k1b)));
  }
  v128.store(s0, f32x4.add(hsum4(a00, a10, a20, a30), v128.load32_splat(logW)));
  v128.store(s0 + sStride, f32x4.add(hsum4(a01, a11, a21, a31), v128.load32_splat(logW, 4)));
}

/** 1 head x 4 tokens: S[t0..t0+3][h]. */
// @ts-ignore: decorator
@inline function keysFloat1x4<T>(row0: usize, rowStride: usize, qh: usize, d: i32, logW: usize, s0: usize, sStride: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  const row1 = row0 + rowStride, row2 = row1 + rowStride, row3 = row2 + rowStride;
  for (let c = 0; c < d; c += 8) {
    const kOff = <usize>c * sizeof<T>();
    const qp = qh + (<usize>c << 2);
    const qa = v128.load(qp), qbv = v128.load(qp, 16);
    a0 = f32x4.add(a0, f32x4.add(f32x4.mul(qa, rowLo<T>(row0 + kOff)), f32x4.mul(qbv, rowHi<T>(row0 + kOff))));
    a1 = f32x4.add(a1, f32x4.add(f32x4.mul(qa, rowLo<T>(row1 + kOff)), f32x4.mul(qbv, rowHi<T>(row1 + kOff))));
    a2 = f32x4.add(a2, f32x4.add(f32x4.mul(qa, rowLo<T>(row2 + kOff)), f32x4.mul(qbv, rowHi<T>(row2 + kOff))));
    a3 = f32x4.add(a3, f32x4.add(f32x4.mul(qa, rowLo<T>(row3 + kOff)), f32x4.mul(qbv, rowHi<T>(row3 + kOff))));
  }
  const s = f32x4.add(hsum4(a0, a1, a2, a3), v128.load(logW));
  v128.store32_lane(s0, s, 0);
  v128.store32_lane(s0 + sStride, s, 1);
  v128.store32_lane(s0 + 2 * sStride, s, 2);
  v128.store32_lane(s0 + 3 * sStride, s, 3);
}

function pageLogitsFloatSimd<T>(page: usize, cnt: i32, d: i32, G: i32, Gp: i32): void {
  const keys = page + PAYLOAD_OFFSET;
  const rowStride = <usize>d * sizeof<T>();
  const sStride = <usize>Gp << 2;
  let hb = 0;
  for (; hb + 4 <= G; hb += 4) {
    const qb = SCR_Q + (<usize>(hb * d) << 2);
    for (let t = 0; t < cnt; t += 2) {
      keysFloat4x2<T>(keys + <usize>t * rowStride, rowStride, qb, d, page + (<usize>t << 2), SCR_S + <usize>t * sStride + (<usize>hb << 2), sStride);
    }
  }
  for (; hb < G; hb++) {
    const qh = SCR_Q + (<usize>(hb * d) << 2);
    for (let t = 0; t < cnt; t += 4) {
      keysFloat1x4<T>(keys + <usize>t * rowStride, rowStride, qh, d, page + (<usize>t << 2), SCR_S + <usize>t * sStride + (<usize>hb << 2), sStride);
    }
  }
}

// ---------------------------------------------------------------------------------
// Keys -> logits, packed formats (SIMD, 16-bit fixed point)

/** Per page: qi[h][c] = round(q'_h,c * kScale_c / unit_h), unit_h = max_c |q'_h,c kScale_c| / 32767; bias qm_h = sum_c q'_h,c kMin_c. */
function prepareKeysFixed(page: usize, d: i32, G: i32, Gp: i32): void {
  const kScale = page + kScaleOff(), kMin = page + kMinOff(d);
  for (let c = 0; c < d; c += 4) {
    v128.store(SCR_KS + (<usize>c << 2), f16x4Exact(kScale + (<usize>c << 1)));
    v128.store(SCR_KM + (<usize>c << 2), f16x4Exact(kMin + (<usize>c << 1)));
  }
  for (let h = 0; h < G; h++) {
    const qh = SCR_Q + (<usize>(h * d) << 2);
    let amax = f32x4.splat(0), qm = f32x4.splat(0);
    for (let c = 0; c < d; c += 4) {
      const o = <usize>c << 2;
      const qv = v128.load(qh + o);
      const qs = f32x4.mul(qv, v128.load(SCR_KS + o));
      v128.store(SCR_QS + o, qs);
      amax = f32x4.max(amax, f32x4.abs(qs));
      qm = f32x4.add(qm, f32x4.mul(qv, v128.load(SCR_KM + o)));
    }
    const a = hmax(amax);
    const inv = f32x4.splat(a > 0 ? FIXED_ONE / a : 0);
    store<f32>(SCR_QF + (<usize>h << 2), a / FIXED_ONE);
    store<f32>(SCR_QM + (<usize>h << 2), hadd(qm));
    const qi = SCR_QI + (<usize>(h * d) << 1);
    for (let c = 0; c < d; c += 8) {
      const o = <usize>c << 2;
      const i0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(SCR_QS + o), inv)));
      const i1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(SCR_QS + o, 16), inv)));
      v128.store(qi + (<usize>c << 1), i16x8.narrow_i32x4_s(i0, i1));
    }
  }
}

/** Integer dot of the tail bytes [j0, R) of one code row with the fixed-point query of head h. */
// @ts-ignore: decorator
@inline function tailDotFixed(row: usize, j0: i32, R: i32, P: i32, bits: i32, qi: usize): i32 {
  const mask = (1 << bits) - 1;
  let s = 0;
  for (let j = j0; j < R; j++) {
    const b = <i32>load<u8>(row + <usize>j);
    for (let p = 0; p < P; p++) s += ((b >> (p * bits)) & mask) * <i32>load<i16>(qi + (<usize>(j + p * R) << 1));
  }
  return s;
}

/** 4 heads x 2 tokens, fixed point. */
// @ts-ignore: decorator
@inline function keysFixed4x2(row0: usize, R: i32, P: i32, bits: i32, whole: bool, hb: i32, d: i32, logW: usize, s0: usize, sStride: usize): void {
  let a00 = i32x4.splat(0), a01 = i32x4.splat(0), a10 = i32x4.splat(0), a11 = i32x4.splat(0);
  let a20 = i32x4.splat(0), a21 = i32x4.splat(0), a30 = i32x4.splat(0), a31 = i32x4.splat(0);
  const row1 = row0 + <usize>R;
  const mask = i8x16.splat(<i8>codeMask(bits));
  const qStride = <usize>d << 1;
  const qBase = SCR_QI + (<usize>(hb * d) << 1);
  let j = 0;
  for (; j + CHUNK <= R; j += CHUNK) {
    const b0 = v128.load(row0 + <usize>j), b1 = v128.load(row1 + <usize>j);
    for (let p = 0; p < P; p++) {
      const c0 = plane(b0, p * bits, mask, whole), c1 = plane(b1, p * bits, mask, whole);
      const c0l = i16x8.extend_low_i8x16_u(c0), c0h = i16x8.extend_high_i8x16_u(c0);
      const c1l = i16x8.extend_low_i8x16_u(c1), c1h = i16x8.extend_high_i8x16_u(c1);
      let qp = qBase + (<usize>(j + p * R) << 1);
      let ql = v128.load(qp), qh = v128.load(qp, 16);
      a00 = i32x4.add(a00, i32x4.add(i32x4.dot_i16x8_s(c0l, ql), i32x4.dot_i16x8_s(c0h, qh)));
      a01 = i32x4.add(a01, i32x4.add(i32x4.dot_i16x8_s(c1l, ql), i32x4.dot_i16x8_s(c1h, qh)));
      qp += qStride; ql = v128.load(qp); qh = v128.load(qp, 16);
      a10 = i32x4.add(a10, i32x4.add(i32x4.dot_i16x8_s(c0l, ql), i32x4.dot_i16x8_s(c0h, qh)));
      a11 = i32x4.add(a11, i32x4.add(i32x4.dot_i16x8_s(c1l, ql), i32x4.dot_i16x8_s(c1h, qh)));
      qp += qStride; ql = v128.load(qp); qh = v128.load(qp, 16);
      a20 = i32x4.add(a20, i32x4.add(i32x4.dot_i16x8_s(c0l, ql), i32x4.dot_i16x8_s(c0h, qh)));
      a21 = i32x4.add(a21, i32x4.add(i32x4.dot_i16x8_s(c1l, ql), i32x4.dot_i16x8_s(c1h, qh)));
      qp += qStride; ql = v128.load(qp); qh = v128.load(qp, 16);
      a30 = i32x4.add(a30, i32x4.add(i32x4.dot_i16x8_s(c0l, ql), i32x4.dot_i16x8_s(c0h, qh)));
      a31 = i32x4.add(a31, i32x4.add(i32x4.dot_i16x8_s(c1l, ql), i32x4.dot_i16x8_s(c1h, qh)));
    }
  }
  let s0i = hsum4i(a00, a10, a20, a30), s1i = hsum4i(a01, a11, a21, a31);
  if (j < R) {
    s0i = i32x4.add(s0i, i32x4From(
      tailDotFixed(row0, j, R, P, bits, qBase), tailDotFixed(row0, j, R, P, bits, qBase + qStride),
      tailDotFixed(row0, j, R, P, bits, qBase + 2 * qStride), tailDotFixed(row0, j, R, P, bits, qBase + 3 * qStride)));
    s1i = i32x4.add(s1i, i32x4From(
      tailDotFixed(row1, j, R, P, bits, qBase), tailDotFixed(row1, j, R, P, bits, qBase + qStride),
      tailDotFixed(row1, j, R, P, bits, qBase + 2 * qStride), tailDotFixed(row1, j, R, P, bits, qBase + 3 * qStride)));
  }
  const unit = v128.load(SCR_QF + (<usize>hb << 2));
  const bias = v128.load(SCR_QM + (<usize>hb << 2));
  v128.store(s0, f32x4.add(f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(s0i), unit), bias), v128.load32_splat(logW)));
  v128.store(s0 + sStride, f32x4.add(f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(s1i), unit), bias), v128.load32_splat(logW, 4)));
}

/** 1 head x 4 tokens, fixed point. */
// @ts-ignore: decorator
@inline function keysFixed1x4(row0: usize, R: i32, P: i32, bits: i32, whole: bool, h: i32, d: i32, logW: usize, s0: usize, sStride: usize): void {
  let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
  const Rs = <usize>R;
  const mask = i8x16.splat(<i8>codeMask(bits));
  const qh = SCR_QI + (<usize>(h * d) << 1);
  let j = 0;
  for (; j + CHUNK <= R; j += CHUNK) {
    const r = row0 + <usize>j;
    const b0 = v128.load(r), b1 = v128.load(r + Rs), b2 = v128.load(r + 2 * Rs), b3 = v128.load(r + 3 * Rs);
    for (let p = 0; p < P; p++) {
      const qp = qh + (<usize>(j + p * R) << 1);
      const ql = v128.load(qp), qhh = v128.load(qp, 16);
      const sh = p * bits;
      const c0 = plane(b0, sh, mask, whole), c1 = plane(b1, sh, mask, whole), c2 = plane(b2, sh, mask, whole), c3 = plane(b3, sh, mask, whole);
      a0 = i32x4.add(a0, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(c0), ql), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(c0), qhh)));
      a1 = i32x4.add(a1, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(c1), ql), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(c1), qhh)));
      a2 = i32x4.add(a2, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(c2), ql), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(c2), qhh)));
      a3 = i32x4.add(a3, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(c3), ql), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(c3), qhh)));
    }
  }
  let si = hsum4i(a0, a1, a2, a3);
  if (j < R) {
    si = i32x4.add(si, i32x4From(
      tailDotFixed(row0, j, R, P, bits, qh), tailDotFixed(row0 + Rs, j, R, P, bits, qh),
      tailDotFixed(row0 + 2 * Rs, j, R, P, bits, qh), tailDotFixed(row0 + 3 * Rs, j, R, P, bits, qh)));
  }
  const unit = f32x4.splat(load<f32>(SCR_QF + (<usize>h << 2)));
  const bias = f32x4.splat(load<f32>(SCR_QM + (<usize>h << 2)));
  const s = f32x4.add(f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(si), unit), bias), v128.load(logW));
  v128.store32_lane(s0, s, 0);
  v128.store32_lane(s0 + sStride, s, 1);
  v128.store32_lane(s0 + 2 * sStride, s, 2);
  v128.store32_lane(s0 + 3 * sStride, s, 3);
}

function pageLogitsFixedSimd(page: usize, cnt: i32, d: i32, bits: i32, G: i32, Gp: i32): void {
  prepareKeysFixed(page, d, G, Gp);
  const R = rowBytes(d, bits), P = 8 / bits;
  const codes = page + kCodesOff(d);
  const sStride = <usize>Gp << 2;
  let hb = 0;
  for (; hb + 4 <= G; hb += 4) {
    const s0 = SCR_S + (<usize>hb << 2);
    if (bits == 8) {
      for (let t = 0; t < cnt; t += 2) keysFixed4x2(codes + <usize>(t * R), R, 1, 8, true, hb, d, page + (<usize>t << 2), s0 + <usize>t * sStride, sStride);
    } else {
      for (let t = 0; t < cnt; t += 2) keysFixed4x2(codes + <usize>(t * R), R, P, bits, false, hb, d, page + (<usize>t << 2), s0 + <usize>t * sStride, sStride);
    }
  }
  for (; hb < G; hb++) {
    const s0 = SCR_S + (<usize>hb << 2);
    if (bits == 8) {
      for (let t = 0; t < cnt; t += 4) keysFixed1x4(codes + <usize>(t * R), R, 1, 8, true, hb, d, page + (<usize>t << 2), s0 + <usize>t * sStride, sStride);
    } else {
      for (let t = 0; t < cnt; t += 4) keysFixed1x4(codes + <usize>(t * R), R, P, bits, false, hb, d, page + (<usize>t << 2), s0 + <usize>t * sStride, sStride);
    }
  }
}

// ---------------------------------------------------------------------------------
// Online softmax step (both builds)

/**
 * For each head: m' = max(m, max_t S[t][h]); S[t][h] <- exp(S[t][h] - m');
 * l <- l * exp(m - m') + sum_t S[t][h]; acc[h] <- acc[h] * exp(m - m').
 * A head whose running max stays -inf gets p = 0 and keeps l = 0, acc = 0.
 */
function pageSoftmax(cnt: i32, G: i32, Gp: i32, d: i32, state: usize): void {
  const sStride = <usize>Gp << 2;
  const acc0 = state + (<usize>(2 * G) << 2);
  if (ASC_FEATURE_SIMD) {
    for (let hb = 0; hb < Gp; hb += 4) {
      const col = SCR_S + (<usize>hb << 2);
      let pm = f32x4.splat(-Infinity);
      for (let t = 0; t < cnt; t++) pm = f32x4.max(pm, v128.load(col + <usize>t * sStride));
      const mOld = v128.load(SCR_M + (<usize>hb << 2));
      const mNew = f32x4.max(mOld, pm);
      let sum = f32x4.splat(0);
      for (let t = 0; t < cnt; t++) {
        const sp = col + <usize>t * sStride;
        const p = expv(f32x4.sub(v128.load(sp), mNew));
        v128.store(sp, p);
        sum = f32x4.add(sum, p);
      }
      const corr = expv(f32x4.sub(mOld, mNew));
      v128.store(SCR_L + (<usize>hb << 2), f32x4.add(f32x4.mul(v128.load(SCR_L + (<usize>hb << 2)), corr), sum));
      v128.store(SCR_M + (<usize>hb << 2), mNew);
      if (!i32x4.all_true(f32x4.eq(corr, f32x4.splat(1)))) {
        v128.store(SCR_CORR, corr);
        const hEnd = min<i32>(hb + 4, G);
        for (let h = hb; h < hEnd; h++) {
          const c = v128.load32_splat(SCR_CORR + (<usize>(h - hb) << 2));
          const a = acc0 + (<usize>(h * d) << 2);
          for (let k = 0; k < d; k += 4) v128.store(a + (<usize>k << 2), f32x4.mul(v128.load(a + (<usize>k << 2)), c));
        }
      }
    }
  } else {
    for (let h = 0; h < G; h++) {
      const col = SCR_S + (<usize>h << 2);
      let pm: f32 = -Infinity;
      for (let t = 0; t < cnt; t++) pm = max<f32>(pm, load<f32>(col + <usize>t * sStride));
      const mOld = load<f32>(SCR_M + (<usize>h << 2));
      const mNew = max<f32>(mOld, pm);
      let sum: f32 = 0;
      for (let t = 0; t < cnt; t++) {
        const sp = col + <usize>t * sStride;
        const p = expNeg(load<f32>(sp) - mNew);
        store<f32>(sp, p);
        sum += p;
      }
      const corr = expNeg(mOld - mNew);
      store<f32>(SCR_L + (<usize>h << 2), load<f32>(SCR_L + (<usize>h << 2)) * corr + sum);
      store<f32>(SCR_M + (<usize>h << 2), mNew);
      if (corr != 1) {
        const a = acc0 + (<usize>(h * d) << 2);
        for (let k = 0; k < d; k++) store<f32>(a + (<usize>k << 2), load<f32>(a + (<usize>k << 2)) * corr);
      }
    }
  }
}

// ---------------------------------------------------------------------------------
// Values, float formats (SIMD)

/** acc[hb..hb+3][c..c+7] += sum_t p[t][h] v_t[c..c+7]. */
// @ts-ignore: decorator
@inline function valuesFloat4x8<T>(vrow0: usize, rowStride: usize, cnt: i32, pcol: usize, sStride: usize, acc: usize, d: i32): void {
  const aStride = <usize>d << 2;
  let x0 = v128.load(acc), x1 = v128.load(acc, 16);
  let y0 = v128.load(acc + aStride), y1 = v128.load(acc + aStride, 16);
  let z0 = v128.load(acc + 2 * aStride), z1 = v128.load(acc + 2 * aStride, 16);
  let w0 = v128.load(acc + 3 * aStride), w1 = v128.load(acc + 3 * aStride, 16);
  for (let t = 0; t < cnt; t++) {
    const vp = vrow0 + <usize>t * rowStride;
    const va = rowLo<T>(vp), vb = rowHi<T>(vp);
    const p = v128.load(pcol + <usize>t * sStride);
    const p0 = bcast0(p), p1 = bcast1(p), p2 = bcast2(p), p3 = bcast3(p);
    x0 = f32x4.add(x0, f32x4.mul(p0, va)); x1 = f32x4.add(x1, f32x4.mul(p0, vb));
    y0 = f32x4.add(y0, f32x4.mul(p1, va)); y1 = f32x4.add(y1, f32x4.mul(p1, vb));
    z0 = f32x4.add(z0, f32x4.mul(p2, va)); z1 = f32x4.add(z1, f32x4.mul(p2, vb));
    w0 = f32x4.add(w0, f32x4.mul(p3, va)); w1 = f32x4.add(w1, f32x4.mul(p3, vb));
  }
  v128.store(acc, x0); v128.store(acc, x1, 16);
  v128.store(acc + aStride, y0); v128.store(acc + aStride, y1, 16);
  v128.store(acc + 2 * aStride, z0); v128.store(acc + 2 * aStride, z1, 16);
  v128.store(acc + 3 * aStride, w0); v128.store(acc + 3 * aStride, w1, 16);
}

/** acc[h][c..c+7] += sum_t p[t][h] v_t[c..c+7]. */
// @ts-ignore: decorator
@inline function valuesFloat1x8<T>(vrow0: usize, rowStride: usize, cnt: i32, pcol: usize, sStride: usize, acc: usize): void {
  let x0 = v128.load(acc), x1 = v128.load(acc, 16);
  for (let t = 0; t < cnt; t++) {
    const vp = vrow0 + <usize>t * rowStride;
    const p = v128.load32_splat(pcol + <usize>t * sStride);
    x0 = f32x4.add(x0, f32x4.mul(p, rowLo<T>(vp)));
    x1 = f32x4.add(x1, f32x4.mul(p, rowHi<T>(vp)));
  }
  v128.store(acc, x0); v128.store(acc, x1, 16);
}

function pageValuesFloatSimd<T>(page: usize, cnt: i32, d: i32, G: i32, Gp: i32, state: usize): void {
  const rowStride = <usize>d * sizeof<T>();
  const vals = page + PAYLOAD_OFFSET + <usize>PAGE_TOKENS * rowStride;
  const sStride = <usize>Gp << 2;
  const acc0 = state + (<usize>(2 * G) << 2);
  let hb = 0;
  for (; hb + 4 <= G; hb += 4) {
    for (let c = 0; c < d; c += 8) {
      valuesFloat4x8<T>(vals + <usize>c * sizeof<T>(), rowStride, cnt, SCR_S + (<usize>hb << 2), sStride, acc0 + (<usize>(hb * d + c) << 2), d);
    }
  }
  for (; hb < G; hb++) {
    for (let c = 0; c < d; c += 8) {
      valuesFloat1x8<T>(vals + <usize>c * sizeof<T>(), rowStride, cnt, SCR_S + (<usize>hb << 2), sStride, acc0 + (<usize>(hb * d + c) << 2));
    }
  }
}

// ---------------------------------------------------------------------------------
// Values, packed formats (SIMD, 16-bit fixed point; vg % 16 == 0)

/**
 * Per page: decode value scales/minima; per (group g, head h): unit = max_t p*scale / 32767,
 * W[g][t/2][h] = round(p_t*scale_tg/unit) | round(p_t+1*scale_t+1,g/unit) << 16,
 * B[g][h] = sum_t p_t * min_tg.
 */
function prepareValuesFixed(page: usize, cnt: i32, d: i32, vg: i32, bits: i32, G: i32, Gp: i32): void {
  const ng = d / vg;
  const vScale = page + vScaleOff(d, bits), vMin = page + vMinOff(d, bits, vg);
  const n = cnt * ng;
  for (let i = 0; i < n; i += 4) {
    v128.store(SCR_VS + (<usize>i << 2), f16x4Exact(vScale + (<usize>i << 1)));
    v128.store(SCR_VM + (<usize>i << 2), f16x4Exact(vMin + (<usize>i << 1)));
  }
  const sStride = <usize>Gp << 2;
  const pairs = (cnt + 1) >> 1;
  for (let g = 0; g < ng; g++) {
    for (let hb = 0; hb < Gp; hb += 4) {
      const col = SCR_S + (<usize>hb << 2);
      let mx = f32x4.splat(0), bias = f32x4.splat(0);
      for (let t = 0; t < cnt; t++) {
        const p = v128.load(col + <usize>t * sStride);
        const gi = <usize>(t * ng + g) << 2;
        mx = f32x4.max(mx, f32x4.mul(p, v128.load32_splat(SCR_VS + gi)));
        bias = f32x4.add(bias, f32x4.mul(p, v128.load32_splat(SCR_VM + gi)));
      }
      const gh = <usize>(g * Gp + hb) << 2;
      v128.store(SCR_B + gh, bias);
      v128.store(SCR_WF + gh, f32x4.div(mx, f32x4.splat(FIXED_ONE)));
      const pos = f32x4.gt(mx, f32x4.splat(0));
      const inv = v128.and(f32x4.div(f32x4.splat(FIXED_ONE), mx), pos);
      const wrow = SCR_W + (<usize>(g * (PAGE_TOKENS / 2) * Gp + hb) << 2);
      for (let tp = 0; tp < pairs; tp++) {
        const t = tp << 1;
        const p0 = v128.load(col + <usize>t * sStride);
        const w0 = f32x4.mul(f32x4.mul(p0, v128.load32_splat(SCR_VS + (<usize>(t * ng + g) << 2))), inv);
        let w1 = f32x4.splat(0);
        if (t + 1 < cnt) {
          const p1 = v128.load(col + <usize>(t + 1) * sStride);
          w1 = f32x4.mul(f32x4.mul(p1, v128.load32_splat(SCR_VS + (<usize>((t + 1) * ng + g) << 2))), inv);
        }
        const i0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(w0));
        const i1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(w1));
        v128.store(wrow + <usize>tp * sStride, v128.shuffle<i16>(i0, i1, 0, 8, 2, 10, 4, 12, 6, 14));
      }
    }
  }
}

/** Interleave two tokens' 16 codes and widen: four i16x8 of (code_t, code_t+1) pairs for channels 0-3, 4-7, 8-11, 12-15. */
// @ts-ignore: decorator
@inline function interleaveLo(c0: v128, c1: v128): v128 {
  return v128.shuffle<u8>(c0, c1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}
// @ts-ignore: decorator
@inline function interleaveHi(c0: v128, c1: v128): v128 {
  return v128.shuffle<u8>(c0, c1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}

/** acc[h0, h0+1][ch..ch+15] += decoded fixed-point sums of one 16-channel chunk over the page. */
// @ts-ignore: decorator
@inline function valuesFixed2x16(codes: usize, R: i32, j: i32, shift: i32, mask: v128, whole: bool, pairs: i32, wcol: usize, wStride: usize, two: bool, accA: usize, accB: usize, unitA: f32, unitB: f32): void {
  let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
  let b0 = i32x4.splat(0), b1 = i32x4.splat(0), b2 = i32x4.splat(0), b3 = i32x4.splat(0);
  const Rs = <usize>R;
  let r = codes + <usize>j;
  for (let tp = 0; tp < pairs; tp++) {
    const c0 = plane(v128.load(r), shift, mask, whole), c1 = plane(v128.load(r + Rs), shift, mask, whole);
    r += 2 * Rs;
    const il = interleaveLo(c0, c1), ih = interleaveHi(c0, c1);
    const e0 = i16x8.extend_low_i8x16_u(il), e1 = i16x8.extend_high_i8x16_u(il);
    const e2 = i16x8.extend_low_i8x16_u(ih), e3 = i16x8.extend_high_i8x16_u(ih);
    const wp = wcol + <usize>tp * wStride;
    const wa = v128.load32_splat(wp);
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(e0, wa));
    a1 = i32x4.add(a1, i32x4.dot_i16x8_s(e1, wa));
    a2 = i32x4.add(a2, i32x4.dot_i16x8_s(e2, wa));
    a3 = i32x4.add(a3, i32x4.dot_i16x8_s(e3, wa));
    if (two) {
      const wb = v128.load32_splat(wp, 4);
      b0 = i32x4.add(b0, i32x4.dot_i16x8_s(e0, wb));
      b1 = i32x4.add(b1, i32x4.dot_i16x8_s(e1, wb));
      b2 = i32x4.add(b2, i32x4.dot_i16x8_s(e2, wb));
      b3 = i32x4.add(b3, i32x4.dot_i16x8_s(e3, wb));
    }
  }
  const ua = f32x4.splat(unitA);
  v128.store(accA, f32x4.add(v128.load(accA), f32x4.mul(f32x4.convert_i32x4_s(a0), ua)));
  v128.store(accA, f32x4.add(v128.load(accA, 16), f32x4.mul(f32x4.convert_i32x4_s(a1), ua)), 16);
  v128.store(accA, f32x4.add(v128.load(accA, 32), f32x4.mul(f32x4.convert_i32x4_s(a2), ua)), 32);
  v128.store(accA, f32x4.add(v128.load(accA, 48), f32x4.mul(f32x4.convert_i32x4_s(a3), ua)), 48);
  if (two) {
    const ub = f32x4.splat(unitB);
    v128.store(accB, f32x4.add(v128.load(accB), f32x4.mul(f32x4.convert_i32x4_s(b0), ub)));
    v128.store(accB, f32x4.add(v128.load(accB, 16), f32x4.mul(f32x4.convert_i32x4_s(b1), ub)), 16);
    v128.store(accB, f32x4.add(v128.load(accB, 32), f32x4.mul(f32x4.convert_i32x4_s(b2), ub)), 32);
    v128.store(accB, f32x4.add(v128.load(accB, 48), f32x4.mul(f32x4.convert_i32x4_s(b3), ub)), 48);
  }
}

function pageValuesFixedSimd(page: usize, cnt: i32, d: i32, vg: i32, bits: i32, G: i32, Gp: i32, state: usize): void {
  prepareValuesFixed(page, cnt, d, vg, bits, G, Gp);
  const R = rowBytes(d, bits), P = 8 / bits, ng = d / vg;
  const codes = page + vCodesOff(d, bits, vg);
  const mask = i8x16.splat(<i8>codeMask(bits));
  const whole = bits == 8;
  const pairs = (cnt + 1) >> 1;
  const wStride = <usize>Gp << 2;
  const acc0 = state + (<usize>(2 * G) << 2);
  // biases: acc[h][c] += B[g(c)][h]
  for (let h = 0; h < G; h++) {
    const a = acc0 + (<usize>(h * d) << 2);
    for (let g = 0; g < ng; g++) {
      const b = v128.load32_splat(SCR_B + (<usize>(g * Gp + h) << 2));
      for (let c = g * vg; c < (g + 1) * vg; c += 4) v128.store(a + (<usize>c << 2), f32x4.add(v128.load(a + (<usize>c << 2)), b));
    }
  }
  for (let p = 0; p < P; p++) {
    let j = 0;
    for (; j + CHUNK <= R; j += CHUNK) {
      const ch = j + p * R;
      const g = ch / vg;
      const wcol = SCR_W + (<usize>(g * (PAGE_TOKENS / 2) * Gp) << 2);
      let h = 0;
      for (; h + 2 <= G; h += 2) {
        const accA = acc0 + (<usize>(h * d + ch) << 2), accB = acc0 + (<usize>((h + 1) * d + ch) << 2);
        const uA = load<f32>(SCR_WF + (<usize>(g * Gp + h) << 2)), uB = load<f32>(SCR_WF + (<usize>(g * Gp + h + 1) << 2));
        if (whole) valuesFixed2x16(codes, R, j, 0, mask, true, pairs, wcol + (<usize>h << 2), wStride, true, accA, accB, uA, uB);
        else valuesFixed2x16(codes, R, j, p * bits, mask, false, pairs, wcol + (<usize>h << 2), wStride, true, accA, accB, uA, uB);
      }
      if (h < G) {
        const accA = acc0 + (<usize>(h * d + ch) << 2);
        const uA = load<f32>(SCR_WF + (<usize>(g * Gp + h) << 2));
        if (whole) valuesFixed2x16(codes, R, j, 0, mask, true, pairs, wcol + (<usize>h << 2), wStride, false, accA, 0, uA, 0);
        else valuesFixed2x16(codes, R, j, p * bits, mask, false, pairs, wcol + (<usize>h << 2), wStride, false, accA, 0, uA, 0);
      }
    }
    // tail bytes: float, directly from p and the decoded scales
    if (j < R) {
      const sStride = <usize>Gp << 2;
      const cmask = (1 << bits) - 1;
      for (let h = 0; h < G; h++) {
        const a = acc0 + (<usize>(h * d) << 2);
        for (let t = 0; t < cnt; t++) {
          const pt = load<f32>(SCR_S + <usize>t * sStride + (<usize>h << 2));
          const row = codes + <usize>(t * R);
          for (let jj = j; jj < R; jj++) {
            const c = jj + p * R;
            const code = (<i32>load<u8>(row + <usize>jj) >> (p * bits)) & cmask;
            const ap = a + (<usize>c << 2);
            store<f32>(ap, load<f32>(ap) + pt * load<f32>(SCR_VS + (<usize>(t * ng + c / vg) << 2)) * <f32>code);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------
// Scalar paths (scalar build; SIMD build for f16 with huge queries and for vg % 16 != 0)

function pageLogitsScalar(format: i32, page: usize, cnt: i32, d: i32, G: i32, Gp: i32): void {
  const payload = page + PAYLOAD_OFFSET;
  const sStride = <usize>Gp << 2;
  if (format == FMT_F32 || format == FMT_F16) {
    const f16 = format == FMT_F16;
    for (let t = 0; t < cnt; t++) {
      const lw = load<f32>(page + (<usize>t << 2));
      for (let h = 0; h < G; h++) {
        const qh = SCR_Q + (<usize>(h * d) << 2);
        let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
        if (f16) {
          const k = payload + (<usize>(t * d) << 1);
          for (let c = 0; c < d; c += 4) {
            const qc = qh + (<usize>c << 2), kc = k + (<usize>c << 1);
            s0 += load<f32>(qc) * halfToFloat(load<u16>(kc));
            s1 += load<f32>(qc, 4) * halfToFloat(load<u16>(kc, 2));
            s2 += load<f32>(qc, 8) * halfToFloat(load<u16>(kc, 4));
            s3 += load<f32>(qc, 12) * halfToFloat(load<u16>(kc, 6));
          }
        } else {
          const k = payload + (<usize>(t * d) << 2);
          for (let c = 0; c < d; c += 4) {
            const qc = qh + (<usize>c << 2), kc = k + (<usize>c << 2);
            s0 += load<f32>(qc) * load<f32>(kc);
            s1 += load<f32>(qc, 4) * load<f32>(kc, 4);
            s2 += load<f32>(qc, 8) * load<f32>(kc, 8);
            s3 += load<f32>(qc, 12) * load<f32>(kc, 12);
          }
        }
        store<f32>(SCR_S + <usize>t * sStride + (<usize>h << 2), ((s0 + s1) + (s2 + s3)) + lw);
      }
    }
    return;
  }
  const bits = formatBits(format);
  const R = rowBytes(d, bits), P = 8 / bits, cmask = (1 << bits) - 1;
  const kScale = page + kScaleOff(), kMin = page + kMinOff(d);
  const codes = page + kCodesOff(d);
  for (let h = 0; h < G; h++) {
    const qh = SCR_Q + (<usize>(h * d) << 2);
    const qs = SCR_QS + (<usize>(h * d) << 2);
    let qm: f32 = 0;
    for (let c = 0; c < d; c++) {
      const qc = load<f32>(qh + (<usize>c << 2));
      qm += qc * halfToFloat(load<u16>(kMin + (<usize>c << 1)));
      store<f32>(qs + (<usize>c << 2), qc * halfToFloat(load<u16>(kScale + (<usize>c << 1))));
    }
    store<f32>(SCR_QM + (<usize>h << 2), qm);
  }
  for (let t = 0; t < cnt; t++) {
    const row = codes + <usize>(t * R);
    const lw = load<f32>(page + (<usize>t << 2));
    for (let h = 0; h < G; h++) {
      const qs = SCR_QS + (<usize>(h * d) << 2);
      let acc: f32 = 0;
      for (let p = 0; p < P; p++) {
        const sh = p * bits;
        const qp = qs + (<usize>(p * R) << 2);
        for (let j = 0; j < R; j++) acc += load<f32>(qp + (<usize>j << 2)) * <f32>((<i32>load<u8>(row + <usize>j) >> sh) & cmask);
      }
      store<f32>(SCR_S + <usize>t * sStride + (<usize>h << 2), (load<f32>(SCR_QM + (<usize>h << 2)) + acc) + lw);
    }
  }
}

function pageValuesScalar(format: i32, page: usize, cnt: i32, d: i32, vg: i32, G: i32, Gp: i32, state: usize): void {
  const payload = page + PAYLOAD_OFFSET;
  const sStride = <usize>Gp << 2;
  const acc0 = state + (<usize>(2 * G) << 2);
  if (format == FMT_F32 || format == FMT_F16) {
    const f16 = format == FMT_F16;
    const vb = payload + (<usize>(PAGE_TOKENS * d) << (f16 ? 1 : 2));
    for (let t = 0; t < cnt; t++) {
      for (let h = 0; h < G; h++) {
        const p = load<f32>(SCR_S + <usize>t * sStride + (<usize>h << 2));
        if (p == 0) continue;
        const a = acc0 + (<usize>(h * d) << 2);
        if (f16) {
          const v = vb + (<usize>(t * d) << 1);
          for (let c = 0; c < d; c++) {
            const ap = a + (<usize>c << 2);
            store<f32>(ap, load<f32>(ap) + p * halfToFloat(load<u16>(v + (<usize>c << 1))));
          }
        } else {
          const v = vb + (<usize>(t * d) << 2);
          for (let c = 0; c < d; c++) {
            const ap = a + (<usize>c << 2);
            store<f32>(ap, load<f32>(ap) + p * load<f32>(v + (<usize>c << 2)));
          }
        }
      }
    }
    return;
  }
  const bits = formatBits(format);
  const R = rowBytes(d, bits), P = 8 / bits, cmask = (1 << bits) - 1;
  const ng = d / vg;
  const vScale = page + vScaleOff(d, bits), vMin = page + vMinOff(d, bits, vg);
  const codes = page + vCodesOff(d, bits, vg);
  for (let t = 0; t < cnt; t++) {
    const row = codes + <usize>(t * R);
    for (let g = 0; g < ng; g++) {
      const gp = <usize>((t * ng + g) << 1);
      store<f32>(SCR_VS + (<usize>g << 2), halfToFloat(load<u16>(vScale + gp)));
      store<f32>(SCR_VM + (<usize>g << 2), halfToFloat(load<u16>(vMin + gp)));
    }
    for (let h = 0; h < G; h++) {
      const pt = load<f32>(SCR_S + <usize>t * sStride + (<usize>h << 2));
      if (pt == 0) continue;
      const a = acc0 + (<usize>(h * d) << 2);
      for (let p = 0; p < P; p++) {
        const sh = p * bits;
        for (let j = 0; j < R; j++) {
          const c = j + p * R;
          const g = c / vg;
          const ap = a + (<usize>c << 2);
          const x = load<f32>(SCR_VM + (<usize>g << 2)) + load<f32>(SCR_VS + (<usize>g << 2)) * <f32>((<i32>load<u8>(row + <usize>j) >> sh) & cmask);
          store<f32>(ap, load<f32>(ap) + pt * x);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------
// Entry points

/** Reset an attention state: m = -inf, l = 0, acc = 0 (`state: f32[2G + G*d]`). */
export function attnInit(state: usize, G: i32, d: i32): void {
  for (let h = 0; h < G; h++) {
    store<f32>(state + (<usize>h << 2), -Infinity);
    store<f32>(state + (<usize>(G + h) << 2), 0);
  }
  memory.fill(state + (<usize>(2 * G) << 2), 0, <usize>(G * d) << 2);
}

/**
 * Attend the G query heads `q: f32[G][d]` over `nPages` pages of one format (the page
 * table `table: i32[nPages][2]` of [pagePtr, count]), accumulating into `state`.
 * Optional raw logits out (see the header).
 */
export function attendPages(table: usize, nPages: i32, format: i32, d: i32, vg: i32, q: usize, G: i32, scale: f32, state: usize, logits: usize, logitsStride: i32): void {
  if (nPages <= 0) return;
  const Gp = (G + 3) & ~3;
  const sStride = <usize>Gp << 2;
  const packed = format != FMT_F32 && format != FMT_F16;
  // Running max / sum into padded scratch (lanes beyond G: -inf / 0, never written back).
  for (let h = 0; h < Gp; h++) {
    store<f32>(SCR_M + (<usize>h << 2), h < G ? load<f32>(state + (<usize>h << 2)) : -Infinity);
    store<f32>(SCR_L + (<usize>h << 2), h < G ? load<f32>(state + (<usize>(G + h) << 2)) : 0);
  }
  // q' = q * scale, times 2^112 for f16 pages on the folded SIMD path.
  let simd = ASC_FEATURE_SIMD;
  let qmul = scale;
  if (ASC_FEATURE_SIMD && format == FMT_F16) {
    let qmax: f32 = 0;
    for (let i = 0; i < G * d; i++) qmax = max<f32>(qmax, abs<f32>(load<f32>(q + (<usize>i << 2))));
    if (qmax * abs<f32>(scale) < F16_FOLD_LIMIT) qmul = scale * F16_TO_F32_SCALE;
    else simd = false;
  }
  const bits = packed ? formatBits(format) : 0;
  const fixedValues = simd && packed && vg % 16 == 0;
  for (let i = 0; i < G * d; i++) store<f32>(SCR_Q + (<usize>i << 2), load<f32>(q + (<usize>i << 2)) * qmul);
  let e0 = 0;
  for (let i = 0; i < nPages; i++) {
    const page = <usize>load<i32>(table + (<usize>i << 3));
    const cnt = load<i32>(table + (<usize>i << 3) + 4);
    if (cnt <= 0) continue;
    // 1. logits
    if (ASC_FEATURE_SIMD && simd) {
      if (format == FMT_F32) pageLogitsFloatSimd<f32>(page, cnt, d, G, Gp);
      else if (format == FMT_F16) pageLogitsFloatSimd<u16>(page, cnt, d, G, Gp);
      else pageLogitsFixedSimd(page, cnt, d, bits, G, Gp);
    } else {
      pageLogitsScalar(format, page, cnt, d, G, Gp);
    }
    if (logits) {
      for (let t = 0; t < cnt; t++) {
        for (let h = 0; h < G; h++) {
          store<f32>(logits + (<usize>(h * logitsStride + e0 + t) << 2), load<f32>(SCR_S + <usize>t * sStride + (<usize>h << 2)));
        }
      }
    }
    // 2. softmax step
    pageSoftmax(cnt, G, Gp, d, state);
    // 3. values
    if (ASC_FEATURE_SIMD && simd) {
      if (format == FMT_F32) pageValuesFloatSimd<f32>(page, cnt, d, G, Gp, state);
      else if (format == FMT_F16) {
        // fold 2^112 into p (the values are widened as x * 2^-112)
        const f = f32x4.splat(F16_TO_F32_SCALE);
        for (let t = 0; t < cnt; t++) {
          for (let hb = 0; hb < Gp; hb += 4) {
            const sp = SCR_S + <usize>t * sStride + (<usize>hb << 2);
            v128.store(sp, f32x4.mul(v128.load(sp), f));
          }
        }
        pageValuesFloatSimd<u16>(page, cnt, d, G, Gp, state);
      } else if (fixedValues) pageValuesFixedSimd(page, cnt, d, vg, bits, G, Gp, state);
      else pageValuesScalar(format, page, cnt, d, vg, G, Gp, state);
    } else {
      pageValuesScalar(format, page, cnt, d, vg, G, Gp, state);
    }
    e0 += cnt;
  }
  for (let h = 0; h < G; h++) {
    store<f32>(state + (<usize>h << 2), load<f32>(SCR_M + (<usize>h << 2)));
    store<f32>(state + (<usize>(G + h) << 2), load<f32>(SCR_L + (<usize>h << 2)));
  }
}

/** out[h] = acc[h] / l[h] (0 when l = 0); lse[h] = m[h] + ln l[h] (-inf when l = 0). */
export function attnFinish(state: usize, G: i32, d: i32, out: usize, lse: usize): void {
  for (let h = 0; h < G; h++) {
    const m = load<f32>(state + (<usize>h << 2));
    const l = load<f32>(state + (<usize>(G + h) << 2));
    const acc = state + (<usize>(2 * G + h * d) << 2);
    const o = out + (<usize>(h * d) << 2);
    const inv: f32 = l > 0 ? <f32>1.0 / l : 0;
    for (let c = 0; c < d; c++) store<f32>(o + (<usize>c << 2), load<f32>(acc + (<usize>c << 2)) * inv);
    if (lse) store<f32>(lse + (<usize>h << 2), l > 0 ? m + Mathf.log(l) : -Infinity);
  }
}

/** In place: logits[h*stride + e] = exp(logits[h*stride + e] - lse[h]) for e < n (0 when lse = -inf). */
export function probsFromLogits(logits: usize, G: i32, stride: i32, n: i32, lse: usize): void {
  for (let h = 0; h < G; h++) {
    const L = load<f32>(lse + (<usize>h << 2));
    const row = logits + (<usize>(h * stride) << 2);
    if (L == -Infinity) {
      memory.fill(row, 0, <usize>n << 2);
      continue;
    }
    let e = 0;
    if (ASC_FEATURE_SIMD) {
      const Lv = f32x4.splat(L);
      for (; e + 4 <= n; e += 4) {
        const p = row + (<usize>e << 2);
        v128.store(p, expv(f32x4.sub(v128.load(p), Lv)));
      }
    }
    for (; e < n; e++) {
      const p = row + (<usize>e << 2);
      store<f32>(p, expNeg(load<f32>(p) - L));
    }
  }
}

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
// SIMD build, per format (all register tiles read a key row once for 4 heads; the query is
// kept in a blocked copy, the 4 heads' vectors side by side, so tiles use constant offsets):
//   f32  keys: 4 heads x 2 tokens tile; values: 4 heads x 8 channels tile over the page's
//        tokens (p broadcast by splat loads). Before the strided sweeps, one load per cache
//        line pulls the page in sequentially (wasm has no prefetch instruction).
//   f16  the same tiles; binary16 is widened with integer ops only (sign-extending load,
//        shift, mask: the value times 2^-112), the factor 2^112 being folded into q and p.
//        Calls with |scale * q| >= 6e4 (the fold would overflow) take the exact scalar path.
//   int8/int4/int2  integer dot products (i32x4.dot_i16x8_s, 8 products per instruction) in
//        16-bit fixed point, code widths specialized at compile time (planes unrolled):
//        keys: per page, qi_c = round(q'_c kScale_c / unit), unit = max|q'| * max kScale / 32767,
//        logit = unit * sum_c qi_c code_tc + sum_c q'_c kMin_c (4 heads x 1 token tile);
//        values: per page, head and group, w_t = round(p_t vScale_tg / unit), unit =
//        max_t p_t * max_t vScale_tg / 32767, two tokens' codes interleaved so one dot sums
//        both (4 heads x 8 channels tile), minima give one bias per (head, group).
//        The extra error is at most unit/2 per code (ERROR_BUDGETS.kernelRel in
//        src/reference/quant.ts). Key rows with d*bits/8 % 8 != 0 (int2 at d = 80, say) use
//        scalar tails; value groups with vg % 8 != 0 use the float path.
// Scalar build: the same math in f32 (no fixed point).
import { PAGE_TOKENS, PAYLOAD_OFFSET, FMT_F32, FMT_F16, formatBits, rowBytes, kScaleOff, kMinOff, kCodesOff, vScaleOff, vMinOff, vCodesOff } from './layout';
import { MAX_HEAD_DIM, halfToFloat, F16_TO_F32_SCALE } from './quant';

/** Largest GQA group (query heads per KV head) attendPages accepts. */
export const MAX_GROUP: i32 = 32;
/** Largest number of value groups per row (vg >= 4). */
const MAX_VALUE_GROUPS: i32 = MAX_HEAD_DIM / 4;
/** Value groups per row on the fixed-point path (vg % 8 == 0). */
const MAX_FAST_VALUE_GROUPS: i32 = MAX_HEAD_DIM / 8;
/** Full scale of the 16-bit fixed-point query and weight factors. */
const FIXED_ONE: f32 = 32767;
/** Bytes per SIMD chunk of packed codes. */
const CHUNK: i32 = 16;
/** f16 pages: |scale * q| above this would overflow once multiplied by 2^112; such calls take the exact path. */
const F16_FOLD_LIMIT: f32 = 6.0e4;

// Scratch (static, inside the module's data segment).
const SCR_S: usize = memory.data(PAGE_TOKENS * MAX_GROUP * 4);            // [t][Gp] logits, then p
const SCR_Q: usize = memory.data(MAX_GROUP * MAX_HEAD_DIM * 4);           // [Gp][d] q * scale (x 2^112 for f16)
const SCR_QS: usize = memory.data(MAX_GROUP * MAX_HEAD_DIM * 4);          // [Gp][d] q' * kScale (packed pages, scalar path)
const SCR_QB: usize = memory.data(MAX_GROUP * MAX_HEAD_DIM * 4);          // q' blocked: [Gp/4][d/4][4 heads][4 lanes] (SIMD float keys)
const SCR_QN: usize = memory.data(MAX_GROUP * MAX_HEAD_DIM * 4);          // [Gp][d] q' / max|q'| * 32767 (packed pages, SIMD)
const SCR_QAMAX: usize = memory.data(MAX_GROUP * 4);                      // [Gp] max_c |q'_c|
const SCR_PMAX: usize = memory.data(MAX_GROUP * 4);                       // [Gp] max_t p of the current page
const SCR_SMAX: usize = memory.data(MAX_VALUE_GROUPS * 4 + 16);            // [ng] max_t vScale of the current page
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

/** 1.5 * 2^23: adding it leaves round-half-even(x) in the low mantissa bits (|x| < 2^22). */
const ROUND_MAGIC: f32 = 12582912.0;
const ROUND_MAGIC_BITS: i32 = 0x4b400000;

// ---------------------------------------------------------------------------------
// exp: Cephes-style range reduction (x = n ln2 + r, |r| <= ln2/2, ln2 split in two parts) and a
// degree-5 polynomial 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3) fitted for minimax relative error
// (1.05e-7 on the reduced range, i.e. about 1 ulp before f32 rounding); the scalar and SIMD
// versions do the same operations in the same order.
const EXP_LOG2E: f32 = 1.44269504088896341;
const EXP_C1: f32 = 0.693359375;
const EXP_C2: f32 = -2.12194440e-4;
const EXP_P2: f32 = 0.4999923177535617;
const EXP_P3: f32 = 0.16667114914575407;
const EXP_P4: f32 = 0.04189011970748847;
const EXP_P5: f32 = 0.008312473841724979;
/** Below this, exp(x) is taken as 0 (2^-126 is the smallest normal f32). */
const EXP_MIN_X: f32 = -87.33654475;
const F32_EXP_BIAS: i32 = 127;
const F32_MANT_BITS: i32 = 23;

/** exp(x) for x <= 88 (-inf and NaN -> 0). */
// @ts-ignore: decorator
@inline export function expNeg(x: f32): f32 {
  if (!(x >= EXP_MIN_X)) return 0;
  // n = round-half-even(x * log2 e) by the magic-number add; 2^n from the same bits
  const y = x * EXP_LOG2E + ROUND_MAGIC;
  const n = y - ROUND_MAGIC;
  const r = (x - n * EXP_C1) - n * EXP_C2;
  let p = EXP_P5 * r + EXP_P4;
  p = p * r + EXP_P3;
  p = p * r + EXP_P2;
  p = p * (r * r) + r + <f32>1.0;
  return p * reinterpret<f32>((reinterpret<i32>(y) - ROUND_MAGIC_BITS + F32_EXP_BIAS) << F32_MANT_BITS);
}

/** f32x4 exp, same operations as expNeg lane by lane. */
// @ts-ignore: decorator
@inline function expv(x: v128): v128 {
  const lo = f32x4.splat(EXP_MIN_X);
  const ok = f32x4.ge(x, lo);
  const xc = f32x4.max(x, lo);
  const y = f32x4.add(f32x4.mul(xc, f32x4.splat(EXP_LOG2E)), f32x4.splat(ROUND_MAGIC));
  const n = f32x4.sub(y, f32x4.splat(ROUND_MAGIC));
  const r = f32x4.sub(f32x4.sub(xc, f32x4.mul(n, f32x4.splat(EXP_C1))), f32x4.mul(n, f32x4.splat(EXP_C2)));
  let p = f32x4.add(f32x4.mul(f32x4.splat(EXP_P5), r), f32x4.splat(EXP_P4));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P2));
  p = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), f32x4.splat(1));
  const pow2 = i32x4.shl(i32x4.sub(y, i32x4.splat(ROUND_MAGIC_BITS - F32_EXP_BIAS)), F32_MANT_BITS);
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

/** Round each lane to the nearest integer (ties to even) as i32, for |x| < 2^22. */
// @ts-ignore: decorator
@inline function roundToInt(x: v128): v128 {
  return i32x4.sub(f32x4.add(x, f32x4.splat(ROUND_MAGIC)), i32x4.splat(ROUND_MAGIC_BITS));
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

/** 4 channels of a key/value row as f32x4 (f16: sign-extending load, shift, mask: x * 2^-112). */
// @ts-ignore: decorator
@inline function row4<T>(p: usize): v128 {
  if (sizeof<T>() == 4) return v128.load(p);
  return v128.and(i32x4.shl(v128.load16x4_s(p), F16_SHIFT), i32x4.splat(F16_FOLD_MASK));
}

/**
 * 4 heads x 2 tokens: S[t][hb..hb+3], S[t+1][hb..hb+3] (key rows read once for the 4 heads).
 * qp: the head block in SCR_QB (blocked layout: per 4 channels, the 4 heads' f32x4 side by side).
 */
// @ts-ignore: decorator
@inline function keysFloat4x2<T>(row0: usize, rowStride: usize, qp: usize, d: i32, logW: usize, s0: usize, sStride: usize): void {
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
  let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
  let k0p = row0, k1p = row0 + rowStride;
  const qEnd = qp + (<usize>d << 4);
  for (; qp < qEnd; qp += 64) {
    const k0 = row4<T>(k0p), k1 = row4<T>(k1p);
    k0p += 4 * sizeof<T>(); k1p += 4 * sizeof<T>();
    let qv = v128.load(qp);
    a00 = f32x4.add(a00, f32x4.mul(qv, k0)); a01 = f32x4.add(a01, f32x4.mul(qv, k1));
    qv = v128.load(qp, 16);
    a10 = f32x4.add(a10, f32x4.mul(qv, k0)); a11 = f32x4.add(a11, f32x4.mul(qv, k1));
    qv = v128.load(qp, 32);
    a20 = f32x4.add(a20, f32x4.mul(qv, k0)); a21 = f32x4.add(a21, f32x4.mul(qv, k1));
    qv = v128.load(qp, 48);
    a30 = f32x4.add(a30, f32x4.mul(qv, k0)); a31 = f32x4.add(a31, f32x4.mul(qv, k1));
  }
  v128.store(s0, f32x4.add(hsum4(a00, a10, a20, a30), v128.load32_splat(logW)));
  v128.store(s0 + sStride, f32x4.add(hsum4(a01, a11, a21, a31), v128.load32_splat(logW, 4)));
}

/** 1 head x 4 tokens: S[t0..t0+3][h]. qp: this head's first vector in SCR_QB (stride 64 bytes per 4 channels). */
// @ts-ignore: decorator
@inline function keysFloat1x4<T>(row0: usize, rowStride: usize, qp: usize, d: i32, logW: usize, s0: usize, sStride: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let kp = row0;
  const qEnd = qp + (<usize>d << 4);
  for (; qp < qEnd; qp += 64) {
    const qv = v128.load(qp);
    a0 = f32x4.add(a0, f32x4.mul(qv, row4<T>(kp)));
    a1 = f32x4.add(a1, f32x4.mul(qv, row4<T>(kp + rowStride)));
    a2 = f32x4.add(a2, f32x4.mul(qv, row4<T>(kp + 2 * rowStride)));
    a3 = f32x4.add(a3, f32x4.mul(qv, row4<T>(kp + 3 * rowStride)));
    kp += 4 * sizeof<T>();
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
    const qb = SCR_QB + (<usize>(hb * d) << 2);
    for (let t = 0; t < cnt; t += 2) {
      keysFloat4x2<T>(keys + <usize>t * rowStride, rowStride, qb, d, page + (<usize>t << 2), SCR_S + <usize>t * sStride + (<usize>hb << 2), sStride);
    }
  }
  for (; hb < G; hb++) {
    const qh = SCR_QB + (<usize>((hb & ~3) * d) << 2) + (<usize>(hb & 3) << 4);
    for (let t = 0; t < cnt; t += 4) {
      keysFloat1x4<T>(keys + <usize>t * rowStride, rowStride, qh, d, page + (<usize>t << 2), SCR_S + <usize>t * sStride + (<usize>hb << 2), sStride);
    }
  }
}

// ---------------------------------------------------------------------------------
// Keys -> logits, packed formats (SIMD, 16-bit fixed point)

/**
 * Per page: qi[h][c] = round(q'_h,c * kScale_c / unit_h) with unit_h = max_c |q'_h,c| * max_c kScale_c / 32767
 * (a bound on max_c |q'_h,c kScale_c|, so that one pass suffices); bias qm_h = sum_c q'_h,c kMin_c.
 * SCR_QN holds q' / max|q'| * 32767 (per call), SCR_QAMAX max|q'| per head.
 */
function prepareKeysFixed(page: usize, d: i32, G: i32): void {
  const kScale = page + kScaleOff(), kMin = page + kMinOff(d);
  let ksmax = f32x4.splat(0);
  for (let c = 0; c < d; c += 4) {
    const ks = f16x4Exact(kScale + (<usize>c << 1));
    ksmax = f32x4.max(ksmax, ks);
    v128.store(SCR_KS + (<usize>c << 2), ks);
    v128.store(SCR_KM + (<usize>c << 2), f16x4Exact(kMin + (<usize>c << 1)));
  }
  const ksMax = hmax(ksmax);
  const ksInv = f32x4.splat(ksMax > 0 ? <f32>1.0 / ksMax : 0);
  for (let c = 0; c < d; c += 4) v128.store(SCR_KS + (<usize>c << 2), f32x4.mul(v128.load(SCR_KS + (<usize>c << 2)), ksInv));
  for (let h = 0; h < G; h++) {
    const qn = SCR_QN + (<usize>(h * d) << 2);
    const qi = qiHead(h, d);
    let qm = f32x4.splat(0);
    for (let c = 0; c < d; c += 8) {
      const o = <usize>c << 2;
      const q0 = v128.load(qn + o), q1 = v128.load(qn + o, 16);
      v128.store(qi + (<usize>c << 3), i16x8.narrow_i32x4_s(roundToInt(f32x4.mul(q0, v128.load(SCR_KS + o))), roundToInt(f32x4.mul(q1, v128.load(SCR_KS + o, 16)))));
      qm = f32x4.add(qm, f32x4.add(f32x4.mul(q0, v128.load(SCR_KM + o)), f32x4.mul(q1, v128.load(SCR_KM + o, 16))));
    }
    const qa = load<f32>(SCR_QAMAX + (<usize>h << 2));
    store<f32>(SCR_QF + (<usize>h << 2), qa * ksMax / FIXED_ONE);
    store<f32>(SCR_QM + (<usize>h << 2), hadd(qm) * (qa / FIXED_ONE));
  }
}

/**
 * SCR_QI is blocked: [Gp/4][d/8][4 heads][8 x i16], so the 4 heads' 8-channel vectors of a chunk sit
 * side by side (constant offsets 0, 16, 32, 48; the next 8 channels at +64). Head h's first vector:
 */
// @ts-ignore: decorator
@inline function qiHead(h: i32, d: i32): usize {
  return SCR_QI + (<usize>((h & ~3) * d) << 1) + (<usize>(h & 3) << 4);
}
/** Address of channel c in a head's blocked fixed-point query (qi = qiHead(h, d)). */
// @ts-ignore: decorator
@inline function qiAt(qi: usize, c: i32): usize {
  return qi + (<usize>(c >> 3) << 6) + (<usize>(c & 7) << 1);
}

/**
 * Bytes of a key code row handled by 16-byte SIMD chunks: the query of plane k starts at
 * channel k*R, which must begin an 8-channel block of SCR_QI (R % 8 == 0); the rest are tails.
 */
// @ts-ignore: decorator
@inline function simdKeyBytes(R: i32): i32 {
  return (R & 7) == 0 ? R & ~(CHUNK - 1) : 0;
}

/** Integer dot of the tail bytes [j0, R) of one code row with the fixed-point query of one head. */
// @ts-ignore: decorator
@inline function tailDotFixed(row: usize, j0: i32, R: i32, P: i32, bits: i32, qi: usize): i32 {
  const mask = (1 << bits) - 1;
  let s = 0;
  for (let j = j0; j < R; j++) {
    const b = <i32>load<u8>(row + <usize>j);
    for (let p = 0; p < P; p++) s += ((b >> (p * bits)) & mask) * <i32>load<i16>(qiAt(qi, j + p * R));
  }
  return s;
}

// Compile-time specialization: code width and plane index are type parameters, so that
// every shift and mask below is a constant (the generic instances are separate functions).
/** Marker types: Bits8 / Bits4 / Bits2 select the code width. */
type Bits8 = u64;
type Bits4 = u32;
type Bits2 = u16;
/** Marker types: Plane0..3 select which `bits`-wide field of each byte. */
type Plane0 = u8;
type Plane1 = u16;
type Plane2 = u32;
type Plane3 = u64;
// @ts-ignore: decorator
@inline function bitsOf<B>(): i32 { return sizeof<B>() == 8 ? 8 : sizeof<B>() == 4 ? 4 : 2; }
// @ts-ignore: decorator
@inline function planeIndexOf<K>(): i32 { return sizeof<K>() == 1 ? 0 : sizeof<K>() == 2 ? 1 : sizeof<K>() == 4 ? 2 : 3; }

/** sum over 16 channels of code * qi for one head: codes widened (cl, ch), qi blocked at qp (+64: next 8). */
// @ts-ignore: decorator
@inline function qdot16(cl: v128, ch: v128, qp: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(cl, v128.load(qp)), i32x4.dot_i16x8_s(ch, v128.load(qp, 64)));
}

/** Plane k of 16 packed bytes: bits [k*bits, (k+1)*bits) of each byte (i16 shift + mask). */
// @ts-ignore: decorator
@inline function planeOf(b: v128, k: i32, bits: i32): v128 {
  if (bits == 8) return b;
  const m = i8x16.splat(<i8>codeMask(bits));
  if (k == 0) return v128.and(b, m);
  return v128.and(i16x8.shr_u(b, k * bits), m);
}

/** 4 heads x 1 token, fixed point: S[t][hb..hb+3]. B selects the code width (planes unrolled). */
// @ts-ignore: decorator
@inline function keysFixed4x1<B>(row: usize, R: i32, hb: i32, d: i32, logW: usize, s: usize): void {
  const bits: i32 = bitsOf<B>();
  let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
  const qb = qiHead(hb, d);
  const planeStride = <usize>R << 3; // bytes between plane k and k+1 in the blocked query
  let qp = qb;
  let rp = row;
  const jEnd = simdKeyBytes(R);
  const rEnd = row + <usize>jEnd;
  for (; rp < rEnd; rp += CHUNK) {
    const b = v128.load(rp);
    let c = planeOf(b, 0, bits);
    let cl = i16x8.extend_low_i8x16_u(c), ch = i16x8.extend_high_i8x16_u(c);
    a0 = i32x4.add(a0, qdot16(cl, ch, qp)); a1 = i32x4.add(a1, qdot16(cl, ch, qp + 16));
    a2 = i32x4.add(a2, qdot16(cl, ch, qp + 32)); a3 = i32x4.add(a3, qdot16(cl, ch, qp + 48));
    if (bits <= 4) {
      const q1 = qp + planeStride;
      c = planeOf(b, 1, bits);
      cl = i16x8.extend_low_i8x16_u(c); ch = i16x8.extend_high_i8x16_u(c);
      a0 = i32x4.add(a0, qdot16(cl, ch, q1)); a1 = i32x4.add(a1, qdot16(cl, ch, q1 + 16));
      a2 = i32x4.add(a2, qdot16(cl, ch, q1 + 32)); a3 = i32x4.add(a3, qdot16(cl, ch, q1 + 48));
    }
    if (bits == 2) {
      const q2 = qp + 2 * planeStride;
      c = planeOf(b, 2, bits);
      cl = i16x8.extend_low_i8x16_u(c); ch = i16x8.extend_high_i8x16_u(c);
      a0 = i32x4.add(a0, qdot16(cl, ch, q2)); a1 = i32x4.add(a1, qdot16(cl, ch, q2 + 16));
      a2 = i32x4.add(a2, qdot16(cl, ch, q2 + 32)); a3 = i32x4.add(a3, qdot16(cl, ch, q2 + 48));
      const q3 = qp + 3 * planeStride;
      c = planeOf(b, 3, bits);
      cl = i16x8.extend_low_i8x16_u(c); ch = i16x8.extend_high_i8x16_u(c);
      a0 = i32x4.add(a0, qdot16(cl, ch, q3)); a1 = i32x4.add(a1, qdot16(cl, ch, q3 + 16));
      a2 = i32x4.add(a2, qdot16(cl, ch, q3 + 32)); a3 = i32x4.add(a3, qdot16(cl, ch, q3 + 48));
    }
    qp += 128;
  }
  let si = hsum4i(a0, a1, a2, a3);
  const j = jEnd;
  if (j < R) {
    const P = 8 / bits;
    si = i32x4.add(si, i32x4From(
      tailDotFixed(row, j, R, P, bits, qb), tailDotFixed(row, j, R, P, bits, qb + 16),
      tailDotFixed(row, j, R, P, bits, qb + 32), tailDotFixed(row, j, R, P, bits, qb + 48)));
  }
  const unit = v128.load(SCR_QF + (<usize>hb << 2));
  const bias = v128.load(SCR_QM + (<usize>hb << 2));
  v128.store(s, f32x4.add(f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(si), unit), bias), v128.load32_splat(logW)));
}

/** 1 head x 4 tokens, fixed point: S[t..t+3][h]. */
// @ts-ignore: decorator
@inline function keysFixed1x4<B>(row0: usize, R: i32, h: i32, d: i32, logW: usize, s0: usize, sStride: usize): void {
  const bits: i32 = bitsOf<B>();
  let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
  const Rs = <usize>R;
  const P = 8 / bits;
  const qh = qiHead(h, d);
  const jEnd = simdKeyBytes(R);
  let j = 0;
  for (; j < jEnd; j += CHUNK) {
    const r = row0 + <usize>j;
    const b0 = v128.load(r), b1 = v128.load(r + Rs), b2 = v128.load(r + 2 * Rs), b3 = v128.load(r + 3 * Rs);
    for (let k = 0; k < P; k++) {
      const qp = qiAt(qh, j + k * R);
      const ql = v128.load(qp), qhh = v128.load(qp, 64);
      const m = i8x16.splat(<i8>codeMask(bits));
      const sh = k * bits;
      const c0 = bits == 8 ? b0 : v128.and(i16x8.shr_u(b0, sh), m), c1 = bits == 8 ? b1 : v128.and(i16x8.shr_u(b1, sh), m);
      const c2 = bits == 8 ? b2 : v128.and(i16x8.shr_u(b2, sh), m), c3 = bits == 8 ? b3 : v128.and(i16x8.shr_u(b3, sh), m);
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
  const sv = f32x4.add(f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(si), unit), bias), v128.load(logW));
  v128.store32_lane(s0, sv, 0);
  v128.store32_lane(s0 + sStride, sv, 1);
  v128.store32_lane(s0 + 2 * sStride, sv, 2);
  v128.store32_lane(s0 + 3 * sStride, sv, 3);
}

// @ts-ignore: decorator
function pageLogitsFixedBits<B>(page: usize, cnt: i32, d: i32, G: i32, Gp: i32): void {
  const bits: i32 = bitsOf<B>();
  const R = rowBytes(d, bits);
  const codes = page + kCodesOff(d);
  const sStride = <usize>Gp << 2;
  let hb = 0;
  for (; hb + 4 <= G; hb += 4) {
    const s0 = SCR_S + (<usize>hb << 2);
    for (let t = 0; t < cnt; t++) keysFixed4x1<B>(codes + <usize>(t * R), R, hb, d, page + (<usize>t << 2), s0 + <usize>t * sStride);
  }
  for (; hb < G; hb++) {
    const s0 = SCR_S + (<usize>hb << 2);
    for (let t = 0; t < cnt; t += 4) keysFixed1x4<B>(codes + <usize>(t * R), R, hb, d, page + (<usize>t << 2), s0 + <usize>t * sStride, sStride);
  }
}

function pageLogitsFixedSimd(page: usize, cnt: i32, d: i32, bits: i32, G: i32, Gp: i32): void {
  prepareKeysFixed(page, d, G);
  if (bits == 8) pageLogitsFixedBits<Bits8>(page, cnt, d, G, Gp);
  else if (bits == 4) pageLogitsFixedBits<Bits4>(page, cnt, d, G, Gp);
  else pageLogitsFixedBits<Bits2>(page, cnt, d, G, Gp);
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
      v128.store(SCR_PMAX + (<usize>hb << 2), expv(f32x4.sub(pm, mNew)));
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
  let t = 0;
  let vp = vrow0, pp = pcol;
  if (sizeof<T>() == 2) {
    // f16: two tokens per iteration (measured faster; for f32 the single-token loop is)
    for (; t + 2 <= cnt; t += 2) {
      let va = rowLo<T>(vp), vb = rowHi<T>(vp);
      let p = v128.load32_splat(pp);
      x0 = f32x4.add(x0, f32x4.mul(p, va)); x1 = f32x4.add(x1, f32x4.mul(p, vb));
      p = v128.load32_splat(pp, 4);
      y0 = f32x4.add(y0, f32x4.mul(p, va)); y1 = f32x4.add(y1, f32x4.mul(p, vb));
      p = v128.load32_splat(pp, 8);
      z0 = f32x4.add(z0, f32x4.mul(p, va)); z1 = f32x4.add(z1, f32x4.mul(p, vb));
      p = v128.load32_splat(pp, 12);
      w0 = f32x4.add(w0, f32x4.mul(p, va)); w1 = f32x4.add(w1, f32x4.mul(p, vb));
      vp += rowStride; pp += sStride;
      va = rowLo<T>(vp); vb = rowHi<T>(vp);
      p = v128.load32_splat(pp);
      x0 = f32x4.add(x0, f32x4.mul(p, va)); x1 = f32x4.add(x1, f32x4.mul(p, vb));
      p = v128.load32_splat(pp, 4);
      y0 = f32x4.add(y0, f32x4.mul(p, va)); y1 = f32x4.add(y1, f32x4.mul(p, vb));
      p = v128.load32_splat(pp, 8);
      z0 = f32x4.add(z0, f32x4.mul(p, va)); z1 = f32x4.add(z1, f32x4.mul(p, vb));
      p = v128.load32_splat(pp, 12);
      w0 = f32x4.add(w0, f32x4.mul(p, va)); w1 = f32x4.add(w1, f32x4.mul(p, vb));
      vp += rowStride; pp += sStride;
    }
  }
  for (; t < cnt; t++) {
    const va = rowLo<T>(vp), vb = rowHi<T>(vp);
    const p0 = v128.load32_splat(pp), p1 = v128.load32_splat(pp, 4), p2 = v128.load32_splat(pp, 8), p3 = v128.load32_splat(pp, 12);
    x0 = f32x4.add(x0, f32x4.mul(p0, va)); x1 = f32x4.add(x1, f32x4.mul(p0, vb));
    y0 = f32x4.add(y0, f32x4.mul(p1, va)); y1 = f32x4.add(y1, f32x4.mul(p1, vb));
    z0 = f32x4.add(z0, f32x4.mul(p2, va)); z1 = f32x4.add(z1, f32x4.mul(p2, vb));
    w0 = f32x4.add(w0, f32x4.mul(p3, va)); w1 = f32x4.add(w1, f32x4.mul(p3, vb));
    vp += rowStride; pp += sStride;
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
 * Per page: decode value scales/minima; per (group g, head h): unit = maxp_h * maxs_g / 32767 (a bound
 * on max_t p_t * vScale_tg: maxp_h = max_t p_t, maxs_g = max_t vScale_tg), W[g][t/2][h] = the pair
 * round(p_t * vScale_tg / unit) | round(p_t+1 * vScale_t+1,g / unit) << 16, B[g][h] = sum_t p_t * vMin_tg.
 */
function prepareValuesFixed(page: usize, cnt: i32, d: i32, vg: i32, bits: i32, G: i32, Gp: i32): void {
  const ng = d / vg;
  const vScale = page + vScaleOff(d, bits), vMin = page + vMinOff(d, bits, vg);
  const n = cnt * ng;
  for (let i = 0; i < n; i += 4) {
    v128.store(SCR_VS + (<usize>i << 2), f16x4Exact(vScale + (<usize>i << 1)));
    v128.store(SCR_VM + (<usize>i << 2), f16x4Exact(vMin + (<usize>i << 1)));
  }
  // max scale per group (scales are >= 0; the decoded tail past n is zeroed first)
  v128.store(SCR_VS + (<usize>n << 2), f32x4.splat(0));
  if ((ng & 3) == 0) {
    for (let g = 0; g < ng; g += 4) {
      let m = f32x4.splat(0);
      for (let t = 0; t < cnt; t++) m = f32x4.max(m, v128.load(SCR_VS + (<usize>(t * ng + g) << 2)));
      v128.store(SCR_SMAX + (<usize>g << 2), m);
    }
  } else if (ng <= 2) {
    // flattened vectors hold 4 / ng tokens: lane i belongs to group i % ng
    let m = f32x4.splat(0);
    for (let i = 0; i < n; i += 4) m = f32x4.max(m, v128.load(SCR_VS + (<usize>i << 2)));
    m = f32x4.max(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
    if (ng == 1) m = f32x4.max(m, v128.shuffle<f32>(m, m, 1, 0, 3, 2));
    v128.store(SCR_SMAX, m);
  } else {
    for (let g = 0; g < ng; g++) {
      let m: f32 = 0;
      for (let t = 0; t < cnt; t++) m = max<f32>(m, load<f32>(SCR_VS + (<usize>(t * ng + g) << 2)));
      store<f32>(SCR_SMAX + (<usize>g << 2), m);
    }
  }
  const sStride = <usize>Gp << 2;
  const pairs = (cnt + 1) >> 1;
  if (cnt & 1) {
    // odd count: the last pair's second token gets weight 0
    for (let hb = 0; hb < Gp; hb += 4) v128.store(SCR_S + <usize>cnt * sStride + (<usize>hb << 2), f32x4.splat(0));
    for (let g = 0; g < ng; g++) {
      store<f32>(SCR_VS + (<usize>(cnt * ng + g) << 2), 0);
      store<f32>(SCR_VM + (<usize>(cnt * ng + g) << 2), 0);
    }
  }
  const gStride = <usize>ng << 2;
  for (let hb = 0; hb < Gp; hb += 4) {
    const col = SCR_S + (<usize>hb << 2);
    const pmax = v128.load(SCR_PMAX + (<usize>hb << 2));
    const invp = v128.and(f32x4.div(f32x4.splat(FIXED_ONE), pmax), f32x4.gt(pmax, f32x4.splat(0)));
    for (let g = 0; g < ng; g++) {
      const smax = load<f32>(SCR_SMAX + (<usize>g << 2));
      // w = p * s * 32767 / (pmax * smax)
      const f = f32x4.mul(invp, f32x4.splat(smax > 0 ? <f32>1.0 / smax : 0));
      let bias = f32x4.splat(0);
      const wrow = SCR_W + (<usize>(g * (PAGE_TOKENS / 2) * Gp + hb) << 2);
      let vs = SCR_VS + (<usize>g << 2), vm = SCR_VM + (<usize>g << 2);
      let sp = col;
      for (let tp = 0; tp < pairs; tp++) {
        const p0 = v128.load(sp), p1 = v128.load(sp + sStride);
        // w + 1.5*2^23 holds round(w) in its low 16 bits (0 <= w <= 32767): the shuffle keeps just those
        const i0 = f32x4.add(f32x4.mul(f32x4.mul(p0, f), v128.load32_splat(vs)), f32x4.splat(ROUND_MAGIC));
        const i1 = f32x4.add(f32x4.mul(f32x4.mul(p1, f), v128.load32_splat(vs + gStride)), f32x4.splat(ROUND_MAGIC));
        v128.store(wrow + <usize>tp * sStride, v128.shuffle<i16>(i0, i1, 0, 8, 2, 10, 4, 12, 6, 14));
        bias = f32x4.add(bias, f32x4.add(f32x4.mul(p0, v128.load32_splat(vm)), f32x4.mul(p1, v128.load32_splat(vm + gStride))));
        sp += 2 * sStride; vs += 2 * gStride; vm += 2 * gStride;
      }
      const gh = <usize>(g * Gp + hb) << 2;
      v128.store(SCR_B + gh, bias);
      v128.store(SCR_WF + gh, f32x4.mul(pmax, f32x4.splat(smax / FIXED_ONE)));
    }
  }
}

/** Two tokens' 8 codes interleaved: bytes (code_t[c], code_t+1[c]) for c = 0..7. */
// @ts-ignore: decorator
@inline function interleave8(r0: usize, r1: usize): v128 {
  return v128.shuffle<u8>(v128.load64_zero(r0), v128.load64_zero(r1), 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}

/**
 * 4 heads x 8 channels of one plane, fixed point, over the page's token pairs:
 * acc[hb+i][ch..ch+7] += unit[i] * sum_t w[t][i] * code_t. `bits` and `k` literals.
 */
// @ts-ignore: decorator
@inline function valuesFixed4x8<B, K>(codes: usize, R: i32, j: i32, pairs: i32, wcol: usize, wStride: usize, acc: usize, aStride: usize, unitPtr: usize, biasPtr: usize): void {
  const bits: i32 = bitsOf<B>(), k: i32 = planeIndexOf<K>();
  let a0l = i32x4.splat(0), a0h = i32x4.splat(0), a1l = i32x4.splat(0), a1h = i32x4.splat(0);
  let a2l = i32x4.splat(0), a2h = i32x4.splat(0), a3l = i32x4.splat(0), a3h = i32x4.splat(0);
  const Rs = <usize>R;
  let r = codes + <usize>j;
  let wp = wcol;
  for (let tp = 0; tp < pairs; tp++) {
    const c = planeOf(interleave8(r, r + Rs), k, bits);
    r += 2 * Rs;
    const el = i16x8.extend_low_i8x16_u(c), eh = i16x8.extend_high_i8x16_u(c);
    let w = v128.load32_splat(wp);
    a0l = i32x4.add(a0l, i32x4.dot_i16x8_s(el, w)); a0h = i32x4.add(a0h, i32x4.dot_i16x8_s(eh, w));
    w = v128.load32_splat(wp, 4);
    a1l = i32x4.add(a1l, i32x4.dot_i16x8_s(el, w)); a1h = i32x4.add(a1h, i32x4.dot_i16x8_s(eh, w));
    w = v128.load32_splat(wp, 8);
    a2l = i32x4.add(a2l, i32x4.dot_i16x8_s(el, w)); a2h = i32x4.add(a2h, i32x4.dot_i16x8_s(eh, w));
    w = v128.load32_splat(wp, 12);
    a3l = i32x4.add(a3l, i32x4.dot_i16x8_s(el, w)); a3h = i32x4.add(a3h, i32x4.dot_i16x8_s(eh, w));
    wp += wStride;
  }
  // acc += unit * sum + bias (the group's sum_t p_t vMin_tg), for each of the 4 heads
  let u = v128.load32_splat(unitPtr), b = v128.load32_splat(biasPtr);
  v128.store(acc, f32x4.add(v128.load(acc), f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(a0l), u), b)));
  v128.store(acc, f32x4.add(v128.load(acc, 16), f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(a0h), u), b)), 16);
  let a = acc + aStride;
  u = v128.load32_splat(unitPtr, 4); b = v128.load32_splat(biasPtr, 4);
  v128.store(a, f32x4.add(v128.load(a), f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(a1l), u), b)));
  v128.store(a, f32x4.add(v128.load(a, 16), f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(a1h), u), b)), 16);
  a += aStride;
  u = v128.load32_splat(unitPtr, 8); b = v128.load32_splat(biasPtr, 8);
  v128.store(a, f32x4.add(v128.load(a), f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(a2l), u), b)));
  v128.store(a, f32x4.add(v128.load(a, 16), f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(a2h), u), b)), 16);
  a += aStride;
  u = v128.load32_splat(unitPtr, 12); b = v128.load32_splat(biasPtr, 12);
  v128.store(a, f32x4.add(v128.load(a), f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(a3l), u), b)));
  v128.store(a, f32x4.add(v128.load(a, 16), f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(a3h), u), b)), 16);
}

/** 1 head x 8 channels of one plane, fixed point. */
// @ts-ignore: decorator
@inline function valuesFixed1x8<B, K>(codes: usize, R: i32, j: i32, pairs: i32, wcol: usize, wStride: usize, acc: usize, unit: f32, bias: f32): void {
  const bits: i32 = bitsOf<B>(), k: i32 = planeIndexOf<K>();
  let al = i32x4.splat(0), ah = i32x4.splat(0);
  const Rs = <usize>R;
  let r = codes + <usize>j;
  let wp = wcol;
  for (let tp = 0; tp < pairs; tp++) {
    const c = planeOf(interleave8(r, r + Rs), k, bits);
    r += 2 * Rs;
    const w = v128.load32_splat(wp);
    al = i32x4.add(al, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(c), w));
    ah = i32x4.add(ah, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(c), w));
    wp += wStride;
  }
  const u = f32x4.splat(unit), b = f32x4.splat(bias);
  v128.store(acc, f32x4.add(v128.load(acc), f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(al), u), b)));
  v128.store(acc, f32x4.add(v128.load(acc, 16), f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(ah), u), b)), 16);
}

/** All 8-channel chunks of plane k. */
// @ts-ignore: decorator
function valuesFixedPlane<B, K>(codes: usize, R: i32, pairs: i32, d: i32, vg: i32, G: i32, Gp: i32, acc0: usize): void {
  const k: i32 = planeIndexOf<K>();
  const wStride = <usize>Gp << 2;
  const aStride = <usize>d << 2;
  for (let j = 0; j < R; j += 8) {
    const ch = j + k * R;
    const g = ch / vg;
    const wcol = SCR_W + (<usize>(g * (PAGE_TOKENS / 2) * Gp) << 2);
    const units = SCR_WF + (<usize>(g * Gp) << 2), biases = SCR_B + (<usize>(g * Gp) << 2);
    let h = 0;
    for (; h + 4 <= G; h += 4) {
      valuesFixed4x8<B, K>(codes, R, j, pairs, wcol + (<usize>h << 2), wStride, acc0 + (<usize>(h * d + ch) << 2), aStride, units + (<usize>h << 2), biases + (<usize>h << 2));
    }
    for (; h < G; h++) {
      valuesFixed1x8<B, K>(codes, R, j, pairs, wcol + (<usize>h << 2), wStride, acc0 + (<usize>(h * d + ch) << 2), load<f32>(units + (<usize>h << 2)), load<f32>(biases + (<usize>h << 2)));
    }
  }
}

/** Whether a page's values take the fixed-point path: 8-byte chunks that never straddle a value group. */
// @ts-ignore: decorator
@inline function fixedValuesOk(d: i32, vg: i32, bits: i32): bool {
  return (rowBytes(d, bits) & 7) == 0 && (vg & 7) == 0;
}

function pageValuesFixedSimd(page: usize, cnt: i32, d: i32, vg: i32, bits: i32, G: i32, Gp: i32, state: usize): void {
  prepareValuesFixed(page, cnt, d, vg, bits, G, Gp);
  const R = rowBytes(d, bits), ng = d / vg;
  const codes = page + vCodesOff(d, bits, vg);
  const pairs = (cnt + 1) >> 1;
  const acc0 = state + (<usize>(2 * G) << 2);
  if (bits == 8) {
    valuesFixedPlane<Bits8, Plane0>(codes, R, pairs, d, vg, G, Gp, acc0);
  } else if (bits == 4) {
    valuesFixedPlane<Bits4, Plane0>(codes, R, pairs, d, vg, G, Gp, acc0);
    valuesFixedPlane<Bits4, Plane1>(codes, R, pairs, d, vg, G, Gp, acc0);
  } else {
    valuesFixedPlane<Bits2, Plane0>(codes, R, pairs, d, vg, G, Gp, acc0);
    valuesFixedPlane<Bits2, Plane1>(codes, R, pairs, d, vg, G, Gp, acc0);
    valuesFixedPlane<Bits2, Plane2>(codes, R, pairs, d, vg, G, Gp, acc0);
    valuesFixedPlane<Bits2, Plane3>(codes, R, pairs, d, vg, G, Gp, acc0);
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
// Memory: WebAssembly has no prefetch instruction. The value tiles sweep a page's rows
// column-chunk by column-chunk (a strided pattern the hardware prefetchers follow poorly);
// one load per cache line in address order first turns that into a sequential stream, and
// the tiles then run from L1/L2. Measured on f32 and f16 pages (not on packed pages, which
// are compute-bound and lose a little from it).
const CACHE_LINE: usize = 64;
const SCR_TOUCH: usize = memory.data(16);

/** Load one word per cache line of [beg, end) (kept alive by a store to scratch). */
function touchLines(beg: usize, end: usize): void {
  let acc = 0;
  for (let p = beg; p < end; p += CACHE_LINE) acc |= load<i32>(p);
  store<i32>(SCR_TOUCH, acc);
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
  const fixedValues = simd && packed && fixedValuesOk(d, vg, bits);
  for (let i = 0; i < G * d; i++) store<f32>(SCR_Q + (<usize>i << 2), load<f32>(q + (<usize>i << 2)) * qmul);
  if (ASC_FEATURE_SIMD && simd && !packed) {
    // blocked copy: for each block of 4 heads and each 4 channels, the 4 heads' vectors side by side
    for (let h = 0; h < Gp; h++) {
      const dst = SCR_QB + (<usize>((h & ~3) * d) << 2) + (<usize>(h & 3) << 4);
      for (let c = 0; c < d; c += 4) {
        v128.store(dst + (<usize>c << 4), h < G ? v128.load(SCR_Q + (<usize>(h * d + c) << 2)) : f32x4.splat(0));
      }
    }
  }
  if (ASC_FEATURE_SIMD && simd && packed) {
    // fixed-point keys: q normalized to +-32767 once per call
    for (let h = 0; h < G; h++) {
      const qh = SCR_Q + (<usize>(h * d) << 2);
      let m: f32 = 0;
      for (let c = 0; c < d; c++) m = max<f32>(m, abs<f32>(load<f32>(qh + (<usize>c << 2))));
      store<f32>(SCR_QAMAX + (<usize>h << 2), m);
      const f: f32 = m > 0 ? FIXED_ONE / m : 0;
      for (let c = 0; c < d; c++) store<f32>(SCR_QN + (<usize>(h * d + c) << 2), load<f32>(qh + (<usize>c << 2)) * f);
    }
  }
  let e0 = 0;
  for (let i = 0; i < nPages; i++) {
    const page = <usize>load<i32>(table + (<usize>i << 3));
    const cnt = load<i32>(table + (<usize>i << 3) + 4);
    if (cnt <= 0) continue;
    // 1. logits
    if (ASC_FEATURE_SIMD && simd && format == FMT_F32) touchLines(page, page + <usize>(PAYLOAD_OFFSET + PAGE_TOKENS * d * 4));
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
    if (ASC_FEATURE_SIMD && simd && !packed) {
      const rowBytesV = format == FMT_F32 ? 4 : 2;
      const v0 = page + <usize>(PAYLOAD_OFFSET + PAGE_TOKENS * d * rowBytesV);
      touchLines(v0, v0 + <usize>(cnt * d * rowBytesV));
    }
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

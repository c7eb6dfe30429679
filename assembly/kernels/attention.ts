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
// (an entry with logW = -inf is masked out). A lane with no live entry finishes with
// out = 0 and lse = -inf.
import { PAGE_TOKENS, PAYLOAD_OFFSET, FMT_F32, FMT_F16, formatBits, rowBytes, kScaleOff, kMinOff, kCodesOff, vScaleOff, vMinOff, vCodesOff } from './layout';
import { MAX_HEAD_DIM, halfToFloat, codeAt } from './quant';

/** Largest GQA group (query heads per KV head) attendPages accepts. */
export const MAX_GROUP: i32 = 32;

// Per-page scratch (static, inside the module's data): logits then probabilities [G][PAGE_TOKENS].
const SCR_S: usize = memory.data(MAX_GROUP * PAGE_TOKENS * 4);
// q_h * kScale per channel [G][d], and sum_c q_h,c * kMin_c [G], for packed keys.
const SCR_QS: usize = memory.data(MAX_GROUP * MAX_HEAD_DIM * 4);
const SCR_QM: usize = memory.data(MAX_GROUP * 4);

// ---------------------------------------------------------------------------------
// exp: Cephes-style range reduction and degree-6 polynomial (max error ~2 ulp on
// [-87, 0]); the scalar and SIMD versions do the same operations in the same order.
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

/** exp(x) for x <= 0 (also -inf -> 0). */
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
  return p * reinterpret<f32>((<i32>n + 127) << 23);
}

// ---------------------------------------------------------------------------------

/** Reset an attention state: m = -inf, l = 0, acc = 0 (`state: f32[2G + G*d]`). */
export function attnInit(state: usize, G: i32, d: i32): void {
  for (let h = 0; h < G; h++) {
    store<f32>(state + (<usize>h << 2), -Infinity);
    store<f32>(state + (<usize>(G + h) << 2), 0);
  }
  memory.fill(state + (<usize>(2 * G) << 2), 0, <usize>(G * d) << 2);
}

/** Logits of one page into SCR_S[h][t] = scale * <q_h, k_t> + logW_t, t < cnt. */
function pageLogits(format: i32, page: usize, cnt: i32, d: i32, q: usize, G: i32, scale: f32): void {
  const payload = page + PAYLOAD_OFFSET;
  if (format == FMT_F32) {
    for (let h = 0; h < G; h++) {
      const qh = q + (<usize>(h * d) << 2);
      for (let t = 0; t < cnt; t++) {
        const k = payload + (<usize>(t * d) << 2);
        let acc: f32 = 0;
        for (let c = 0; c < d; c++) acc += load<f32>(qh + (<usize>c << 2)) * load<f32>(k + (<usize>c << 2));
        store<f32>(SCR_S + (<usize>(h * PAGE_TOKENS + t) << 2), acc);
      }
    }
  } else if (format == FMT_F16) {
    for (let h = 0; h < G; h++) {
      const qh = q + (<usize>(h * d) << 2);
      for (let t = 0; t < cnt; t++) {
        const k = payload + (<usize>(t * d) << 1);
        let acc: f32 = 0;
        for (let c = 0; c < d; c++) acc += load<f32>(qh + (<usize>c << 2)) * halfToFloat(load<u16>(k + (<usize>c << 1)));
        store<f32>(SCR_S + (<usize>(h * PAGE_TOKENS + t) << 2), acc);
      }
    }
  } else {
    const bits = formatBits(format);
    const R = rowBytes(d, bits);
    const kScale = page + kScaleOff();
    const kMin = page + kMinOff(d);
    const codes = page + kCodesOff(d);
    for (let h = 0; h < G; h++) {
      const qh = q + (<usize>(h * d) << 2);
      const qs = SCR_QS + (<usize>(h * d) << 2);
      let qm: f32 = 0;
      for (let c = 0; c < d; c++) {
        const qc = load<f32>(qh + (<usize>c << 2));
        qm += qc * halfToFloat(load<u16>(kMin + (<usize>c << 1)));
        store<f32>(qs + (<usize>c << 2), qc * halfToFloat(load<u16>(kScale + (<usize>c << 1))));
      }
      for (let t = 0; t < cnt; t++) {
        const row = codes + <usize>(t * R);
        let acc: f32 = 0;
        for (let c = 0; c < d; c++) acc += load<f32>(qs + (<usize>c << 2)) * <f32>codeAt(row, c, R, bits);
        store<f32>(SCR_S + (<usize>(h * PAGE_TOKENS + t) << 2), qm + acc);
      }
    }
  }
  for (let h = 0; h < G; h++) {
    for (let t = 0; t < cnt; t++) {
      const s = SCR_S + (<usize>(h * PAGE_TOKENS + t) << 2);
      store<f32>(s, scale * load<f32>(s) + load<f32>(page + (<usize>t << 2)));
    }
  }
}

/**
 * Online-softmax step for one page: updates m and l, rescales acc, and turns
 * SCR_S[h][t] into p = exp(logit - m_new) (0 for a head whose running max is still -inf).
 */
function pageSoftmax(cnt: i32, G: i32, d: i32, state: usize): void {
  for (let h = 0; h < G; h++) {
    const s = SCR_S + (<usize>(h * PAGE_TOKENS) << 2);
    const mPtr = state + (<usize>h << 2);
    const lPtr = state + (<usize>(G + h) << 2);
    let pm: f32 = -Infinity;
    for (let t = 0; t < cnt; t++) pm = max<f32>(pm, load<f32>(s + (<usize>t << 2)));
    const mOld = load<f32>(mPtr);
    const mNew = max<f32>(mOld, pm);
    if (mNew == -Infinity) {
      memory.fill(s, 0, <usize>cnt << 2);
      continue;
    }
    let sum: f32 = 0;
    for (let t = 0; t < cnt; t++) {
      const p = expNeg(load<f32>(s + (<usize>t << 2)) - mNew);
      store<f32>(s + (<usize>t << 2), p);
      sum += p;
    }
    const corr = expNeg(mOld - mNew);
    store<f32>(lPtr, load<f32>(lPtr) * corr + sum);
    store<f32>(mPtr, mNew);
    if (corr != 1) {
      const acc = state + (<usize>(2 * G + h * d) << 2);
      for (let c = 0; c < d; c++) store<f32>(acc + (<usize>c << 2), load<f32>(acc + (<usize>c << 2)) * corr);
    }
  }
}

/** acc[h] += sum_t p[h][t] v_t for one page. */
function pageValues(format: i32, page: usize, cnt: i32, d: i32, vg: i32, G: i32, state: usize): void {
  const payload = page + PAYLOAD_OFFSET;
  for (let h = 0; h < G; h++) {
    const acc = state + (<usize>(2 * G + h * d) << 2);
    const ps = SCR_S + (<usize>(h * PAGE_TOKENS) << 2);
    if (format == FMT_F32) {
      const vb = payload + (<usize>(PAGE_TOKENS * d) << 2);
      for (let t = 0; t < cnt; t++) {
        const p = load<f32>(ps + (<usize>t << 2));
        if (p == 0) continue;
        const v = vb + (<usize>(t * d) << 2);
        for (let c = 0; c < d; c++) {
          const a = acc + (<usize>c << 2);
          store<f32>(a, load<f32>(a) + p * load<f32>(v + (<usize>c << 2)));
        }
      }
    } else if (format == FMT_F16) {
      const vb = payload + (<usize>(PAGE_TOKENS * d) << 1);
      for (let t = 0; t < cnt; t++) {
        const p = load<f32>(ps + (<usize>t << 2));
        if (p == 0) continue;
        const v = vb + (<usize>(t * d) << 1);
        for (let c = 0; c < d; c++) {
          const a = acc + (<usize>c << 2);
          store<f32>(a, load<f32>(a) + p * halfToFloat(load<u16>(v + (<usize>c << 1))));
        }
      }
    } else {
      const bits = formatBits(format);
      const R = rowBytes(d, bits);
      const ng = d / vg;
      const vScale = page + vScaleOff(d, bits);
      const vMin = page + vMinOff(d, bits, vg);
      const codes = page + vCodesOff(d, bits, vg);
      for (let t = 0; t < cnt; t++) {
        const p = load<f32>(ps + (<usize>t << 2));
        if (p == 0) continue;
        const row = codes + <usize>(t * R);
        for (let g = 0; g < ng; g++) {
          const gp = <usize>((t * ng + g) << 1);
          const a = p * halfToFloat(load<u16>(vScale + gp));
          const b = p * halfToFloat(load<u16>(vMin + gp));
          for (let c = g * vg; c < (g + 1) * vg; c++) {
            const ap = acc + (<usize>c << 2);
            store<f32>(ap, load<f32>(ap) + (b + a * <f32>codeAt(row, c, R, bits)));
          }
        }
      }
    }
  }
}

/**
 * Attend the G query heads `q: f32[G][d]` over `nPages` pages of one format (the page
 * table `table: i32[nPages][2]` of [pagePtr, count]), accumulating into `state`.
 * Optional raw logits out (see the header).
 */
export function attendPages(table: usize, nPages: i32, format: i32, d: i32, vg: i32, q: usize, G: i32, scale: f32, state: usize, logits: usize, logitsStride: i32): void {
  let e0 = 0;
  for (let i = 0; i < nPages; i++) {
    const page = <usize>load<i32>(table + (<usize>i << 3));
    const cnt = load<i32>(table + (<usize>i << 3) + 4);
    if (cnt <= 0) continue;
    pageLogits(format, page, cnt, d, q, G, scale);
    if (logits) {
      for (let h = 0; h < G; h++) {
        memory.copy(logits + (<usize>(h * logitsStride + e0) << 2), SCR_S + (<usize>(h * PAGE_TOKENS) << 2), <usize>cnt << 2);
      }
    }
    pageSoftmax(cnt, G, d, state);
    pageValues(format, page, cnt, d, vg, G, state);
    e0 += cnt;
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
    for (let e = 0; e < n; e++) {
      const p = row + (<usize>e << 2);
      store<f32>(p, L == -Infinity ? 0 : expNeg(load<f32>(p) - L));
    }
  }
}

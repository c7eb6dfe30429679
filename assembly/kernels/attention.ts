// Decode attention over a lane's pages: online softmax (flash-decoding style), all
// G query heads of one GQA group in one pass over the keys, per-entry log-weight
// added to the logit. STUB: owned by the formats-and-attention helper.
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
export function attnInit(state: usize, G: i32, d: i32): void { unreachable(); }
export function attendPages(table: usize, nPages: i32, format: i32, d: i32, vg: i32, q: usize, G: i32, scale: f32, state: usize, logits: usize, logitsStride: i32): void { unreachable(); }
export function attnFinish(state: usize, G: i32, d: i32, out: usize, lse: usize): void { unreachable(); }
export function probsFromLogits(logits: usize, G: i32, stride: i32, n: i32, lse: usize): void { unreachable(); }

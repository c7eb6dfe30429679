// Hamming distance by popcount over packed bit rows (KVCrush, arXiv 2503.00022: each
// token carries one bit per attention head; tokens are grouped by their distance to an
// anchor bit vector).
//
// hammingRows(bits: u32[n][words], n, words, anchor: u32[words], out: i32[n])
//   out[t] = number of bits where row t differs from the anchor.
// Preconditions (checked by the host): n >= 0, words >= 0; out does not overlap bits.

/** u32 words per v128. */
// @ts-ignore: decorator
@inline const WORDS_PER_V128: i32 = 4;

/** out[t] = popcount(bits[t] XOR anchor) summed over the row's words. */
export function hammingRows(bits: usize, n: i32, words: i32, anchor: usize, out: usize): void {
  const rowBytes = <usize>words << 2;
  for (let t = 0; t < n; t++) {
    const row = bits + <usize>t * rowBytes;
    let w: i32 = 0;
    let d: i32 = 0;
    if (ASC_FEATURE_SIMD) {
      if (words >= WORDS_PER_V128) {
        // per-byte counts summed in i32 lanes; at most 32 per lane per step, so no overflow
        let acc = i32x4.splat(0);
        for (; w + WORDS_PER_V128 <= words; w += WORDS_PER_V128) {
          const x = v128.xor(v128.load(row + (<usize>w << 2)), v128.load(anchor + (<usize>w << 2)));
          const c8 = i8x16.popcnt(x);
          acc = i32x4.add(acc, i32x4.extadd_pairwise_i16x8_u(i16x8.extadd_pairwise_i8x16_u(c8)));
        }
        d = (i32x4.extract_lane(acc, 0) + i32x4.extract_lane(acc, 1)) + (i32x4.extract_lane(acc, 2) + i32x4.extract_lane(acc, 3));
      }
    }
    for (; w < words; w++) {
      d += <i32>popcnt<u32>(load<u32>(row + (<usize>w << 2)) ^ load<u32>(anchor + (<usize>w << 2)));
    }
    store<i32>(out + (<usize>t << 2), d);
  }
}

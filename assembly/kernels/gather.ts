// Gather / compact rows by an index list (how policies' plans are executed).
//
// gatherRows(src, dst, idx: i32[n], n, rowBytes): dst row i = src row idx[i].
//   src, dst must not overlap; idx[i] in [0, rows of src).
// compactRows(base, idx: i32[n], n, rowBytes): in place, row i = row idx[i];
//   idx strictly ascending (so idx[i] >= i: a row is never read after it is written,
//   and a source row never overlaps its destination).
// rowBytes >= 0, any value (not only multiples of 16); pointers need no alignment.
// Preconditions are checked by the host.

/** Bytes per v128. */
// @ts-ignore: decorator
@inline const V128_BYTES: usize = 16;
/** Bytes per unrolled SIMD step (4 x v128). */
// @ts-ignore: decorator
@inline const STEP_BYTES: usize = 64;

/** Copy `bytes` from src to dst (regions do not overlap). */
// @ts-ignore: decorator
@inline function copyRow(dst: usize, src: usize, bytes: usize): void {
  let k: usize = 0;
  if (ASC_FEATURE_SIMD) {
    for (; k + STEP_BYTES <= bytes; k += STEP_BYTES) {
      const a = v128.load(src + k), b = v128.load(src + k, 16), c = v128.load(src + k, 32), d = v128.load(src + k, 48);
      v128.store(dst + k, a); v128.store(dst + k, b, 16); v128.store(dst + k, c, 32); v128.store(dst + k, d, 48);
    }
    for (; k + V128_BYTES <= bytes; k += V128_BYTES) v128.store(dst + k, v128.load(src + k));
  } else {
    for (; k + 8 <= bytes; k += 8) store<u64>(dst + k, load<u64>(src + k));
  }
  if (k < bytes) memory.copy(dst + k, src + k, bytes - k);
}

/** dst row i = src row idx[i], for i in [0, n). */
export function gatherRows(src: usize, dst: usize, idx: usize, n: i32, rowBytes: i32): void {
  const rb = <usize>rowBytes;
  for (let i = 0; i < n; i++) {
    const j = <usize>load<i32>(idx + (<usize>i << 2));
    copyRow(dst + <usize>i * rb, src + j * rb, rb);
  }
}

/** In place: row i = row idx[i], for i in [0, n), idx strictly ascending. */
export function compactRows(base: usize, idx: usize, n: i32, rowBytes: i32): void {
  const rb = <usize>rowBytes;
  for (let i = 0; i < n; i++) {
    const j = <usize>load<i32>(idx + (<usize>i << 2));
    if (j != <usize>i) copyRow(base + <usize>i * rb, base + j * rb, rb);
  }
}

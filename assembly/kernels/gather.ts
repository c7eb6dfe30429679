// Gather / compact rows by an index list (how policies' plans are executed).
// STUB: owned by the basic-kernels helper.
// gatherRows(src, dst, idx: i32[n], n, rowBytes): dst row i = src row idx[i]. src, dst must not overlap.
// compactRows(base, idx: i32[n], n, rowBytes): in place, row i = row idx[i]; idx strictly ascending (so idx[i] >= i).
export function gatherRows(src: usize, dst: usize, idx: usize, n: i32, rowBytes: i32): void { unreachable(); }
export function compactRows(base: usize, idx: usize, n: i32, rowBytes: i32): void { unreachable(); }

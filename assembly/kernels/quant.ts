// Asymmetric group quantization in the two KIVI layouts, page pack/unpack, and the
// fused dequantize-dot / dequantize-axpy used by attention. STUB: owned by the
// formats-and-attention helper. Layout: see layout.ts.
//
// quantKeys(src: f32[n][d], n, d, bits, codes: u8[n][R], scale: f16[d], min: f16[d])
//     per channel over the n tokens (n <= PAGE_TOKENS).
// dequantKeys(codes, scale, min, n, d, bits, dst: f32[n][d])
// quantValues(src: f32[n][d], n, d, vg, bits, codes: u8[n][R], scale: f16[n][d/vg], min: f16[n][d/vg])
// dequantValues(codes, scale, min, n, d, vg, bits, dst: f32[n][d])
// qdotKeys(codes, scale, min, n, d, bits, q: f32[d], out: f32[n])         out[t] = <q, k^_t>
// qaxpyValues(codes, scale, min, n, d, vg, bits, p: f32[n], out: f32[d])  out += sum_t p[t] v^_t
// packPage(format, d, vg, count, k: f32[count][d], v: f32[count][d], logW: f32[count], pos: i32[count], page)
// unpackPage(format, d, vg, count, page, k, v, logW, pos)   any destination pointer may be 0 (skipped)
export function quantKeys(src: usize, n: i32, d: i32, bits: i32, codes: usize, scale: usize, min: usize): void { unreachable(); }
export function dequantKeys(codes: usize, scale: usize, min: usize, n: i32, d: i32, bits: i32, dst: usize): void { unreachable(); }
export function quantValues(src: usize, n: i32, d: i32, vg: i32, bits: i32, codes: usize, scale: usize, min: usize): void { unreachable(); }
export function dequantValues(codes: usize, scale: usize, min: usize, n: i32, d: i32, vg: i32, bits: i32, dst: usize): void { unreachable(); }
export function qdotKeys(codes: usize, scale: usize, min: usize, n: i32, d: i32, bits: i32, q: usize, out: usize): void { unreachable(); }
export function qaxpyValues(codes: usize, scale: usize, min: usize, n: i32, d: i32, vg: i32, bits: i32, p: usize, out: usize): void { unreachable(); }
export function packPage(format: i32, d: i32, vg: i32, count: i32, k: usize, v: usize, logW: usize, pos: usize, page: usize): void { unreachable(); }
export function unpackPage(format: i32, d: i32, vg: i32, count: i32, page: usize, k: usize, v: usize, logW: usize, pos: usize): void { unreachable(); }

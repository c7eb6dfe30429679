// IEEE binary16 <-> binary32 conversion. STUB: owned by the basic-kernels helper.
// f16ToF32(src: u16[n], dst: f32[n], n)   exact
// f32ToF16(src: f32[n], dst: u16[n], n)   round to nearest even; overflow -> Inf; NaN kept
export function f16ToF32(src: usize, dst: usize, n: i32): void { unreachable(); }
export function f32ToF16(src: usize, dst: usize, n: i32): void { unreachable(); }

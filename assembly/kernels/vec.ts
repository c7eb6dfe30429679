// Vector primitives over f32 and f16 storage. STUB: owned by the basic-kernels helper.
// dotF32(a: f32[n], b: f32[n], n): f32          sum a*b
// dotF16(a: u16[n] (f16), b: f32[n], n): f32    sum f32(a)*b
// axpyF32(alpha, x: f32[n], y: f32[n], n)       y += alpha*x
// axpyF16(alpha, x: u16[n] (f16), y: f32[n], n) y += alpha*f32(x)
// scaleF32(alpha, x: f32[n], n)                 x *= alpha (in place)
// scaleF16(alpha, x: u16[n] (f16), n)           x = f16(alpha*f32(x)) (in place)
export function dotF32(a: usize, b: usize, n: i32): f32 { unreachable(); return 0; }
export function dotF16(a: usize, b: usize, n: i32): f32 { unreachable(); return 0; }
export function axpyF32(alpha: f32, x: usize, y: usize, n: i32): void { unreachable(); }
export function axpyF16(alpha: f32, x: usize, y: usize, n: i32): void { unreachable(); }
export function scaleF32(alpha: f32, x: usize, n: i32): void { unreachable(); }
export function scaleF16(alpha: f32, x: usize, n: i32): void { unreachable(); }

// Fast Walsh-Hadamard transform. STUB: owned by the basic-kernels helper.
// fwht(x: f32[count][n], n, count): in place, orthonormal (scaled by 1/sqrt(n)), n a power of two.
// Applying it twice gives the input back.
export function fwht(x: usize, n: i32, count: i32): void { unreachable(); }

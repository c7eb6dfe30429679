/**
 * Orthonormal fast Walsh-Hadamard transform over rows of a Float32Array (in place).
 * H is symmetric and orthonormal (H·H = I), so applying it twice gives the input back,
 * and <Hq, Hk> = <q, k>: attention over rotated keys with a rotated query is unchanged,
 * and the output, a combination of rotated values, is rotated back with H. Rotation
 * spreads outlier channels over the whole head before quantization (QuaRot-style).
 */

/** Rotate `count` rows of length `n` (a power of two) starting at `offset`. */
export function fwhtRows(x: Float32Array, n: number, count: number, offset = 0): void {
  const norm = 1 / Math.sqrt(n);
  for (let r = 0; r < count; r++) {
    const b = offset + r * n;
    for (let h = 1; h < n; h <<= 1) {
      for (let i = 0; i < n; i += h << 1) {
        for (let j = b + i; j < b + i + h; j++) {
          const u = x[j], w = x[j + h];
          x[j] = u + w;
          x[j + h] = u - w;
        }
      }
    }
    for (let i = b; i < b + n; i++) x[i] *= norm;
  }
}

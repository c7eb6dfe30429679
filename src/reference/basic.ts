/**
 * Float64 TypeScript references of the basic kernels (assembly/kernels/f16.ts, vec.ts,
 * fwht.ts, gather.ts, popcount.ts). Written from the definitions, not from the kernels'
 * bit tricks, so that tests compare two independent implementations. Slow on purpose:
 * clarity first. Nothing here touches WebAssembly.
 */

/** f16 exponent bias. */
const F16_BIAS = 15;
/** f16 mantissa bits. */
const F16_MANT_BITS = 10;
/** Smallest f16 normal exponent (2^-14). */
const F16_MIN_EXP = 1 - F16_BIAS;
/** Largest finite f16 (65504). */
export const F16_MAX = (2 - 2 ** -F16_MANT_BITS) * 2 ** F16_BIAS;
/** Magnitudes at or above this round to f16 Inf (halfway between 65504 and 2^16). */
export const F16_OVERFLOW = 65520;
/** f16 bits of +Inf. */
export const F16_INF = 0x7c00;
/** f16 bits of the canonical quiet NaN. */
export const F16_NAN = 0x7e00;

/** Value of the f16 bit pattern `h` (low 16 bits), exactly, as a number. NaN patterns give NaN. */
export function f16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> F16_MANT_BITS) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** (F16_MIN_EXP - F16_MANT_BITS); // subnormal or zero
  return sign * (1 + m / 2 ** F16_MANT_BITS) * 2 ** (e - F16_BIAS);
}

/** True when the f16 bit pattern is NaN. */
export function f16IsNaN(h: number): boolean {
  return (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
}

/**
 * Nearest f16 of the number `x` (round to nearest, ties to even), as bits. |x| >= 65520 gives
 * ±Inf; NaN gives the canonical quiet NaN 0x7e00 (the kernel keeps payload bits; compare NaN
 * by `f16IsNaN`). Exact for any double input (one rounding).
 */
export function numberToF16(x: number): number {
  if (Number.isNaN(x)) return F16_NAN;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= F16_OVERFLOW) return sign | F16_INF;
  if (a === 0) return sign;
  // exponent of the binade holding a, clamped to the subnormal range
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--; // guard log2 rounding
  if (2 ** (e + 1) <= a) e++;
  e = Math.max(e, F16_MIN_EXP);
  const quantum = 2 ** (e - F16_MANT_BITS); // spacing of f16 values in this binade
  const q = a / quantum; // exact (power-of-two division)
  let k = Math.floor(q);
  const frac = q - k;
  if (frac > 0.5 || (frac === 0.5 && k % 2 === 1)) k++;
  // k * quantum is the rounded magnitude; encode it (k may be 2^11: next binade, still exact)
  const v = k * quantum;
  if (v >= 2 ** (F16_BIAS + 1)) return sign | F16_INF;
  if (v < 2 ** F16_MIN_EXP) return sign | (v / 2 ** (F16_MIN_EXP - F16_MANT_BITS)); // subnormal
  let be = Math.floor(Math.log2(v));
  if (2 ** be > v) be--;
  if (2 ** (be + 1) <= v) be++;
  const mant = v / 2 ** be - 1;
  return sign | ((be + F16_BIAS) << F16_MANT_BITS) | Math.round(mant * 2 ** F16_MANT_BITS);
}

/** Sum of a[i] * b[i] in float64. */
export function dotRef(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Sum of |a[i] * b[i]| (the scale of a dot product's rounding error). */
export function dotAbsRef(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] * b[i]);
  return s;
}

/** Decode an array of f16 bit patterns to float64 values. */
export function decodeF16Ref(h: ArrayLike<number>): Float64Array {
  const out = new Float64Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = f16ToNumber(h[i]);
  return out;
}

/** y + alpha * x in float64 (a new array). */
export function axpyRef(alpha: number, x: ArrayLike<number>, y: ArrayLike<number>): Float64Array {
  const out = new Float64Array(y.length);
  for (let i = 0; i < y.length; i++) out[i] = y[i] + alpha * x[i];
  return out;
}

/** alpha * x in float64 (a new array). */
export function scaleRef(alpha: number, x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = alpha * x[i];
  return out;
}

/** Entry (i, j) of the Sylvester Hadamard matrix: (-1)^popcount(i & j). */
export function hadamardEntry(i: number, j: number): number {
  return popcount32(i & j) & 1 ? -1 : 1;
}

/**
 * Orthonormal Walsh-Hadamard transform of `count = x.length / n` contiguous vectors of
 * length n (a power of two), in float64, by the O(n^2) matrix product H_n x / sqrt(n).
 */
export function fwhtMatrixRef(x: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(x.length);
  const s = 1 / Math.sqrt(n);
  for (let r = 0; r * n < x.length; r++) {
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (let j = 0; j < n; j++) acc += hadamardEntry(i, j) * x[r * n + j];
      out[r * n + i] = acc * s;
    }
  }
  return out;
}

/** The same transform by O(n log n) butterflies in float64. */
export function fwhtRef(x: ArrayLike<number>, n: number): Float64Array {
  const out = Float64Array.from(x);
  const s = 1 / Math.sqrt(n);
  for (let base = 0; base < out.length; base += n) {
    for (let h = 1; h < n; h *= 2) {
      for (let i = 0; i < n; i += 2 * h) {
        for (let j = i; j < i + h; j++) {
          const a = out[base + j], b = out[base + j + h];
          out[base + j] = a + b;
          out[base + j + h] = a - b;
        }
      }
    }
    for (let i = 0; i < n; i++) out[base + i] *= s;
  }
  return out;
}

/** Rows idx[i] of `src` (rows of `rowBytes` bytes), as new bytes. */
export function gatherRowsRef(src: Uint8Array, rowBytes: number, idx: ArrayLike<number>): Uint8Array {
  const dst = new Uint8Array(idx.length * rowBytes);
  for (let i = 0; i < idx.length; i++) {
    for (let b = 0; b < rowBytes; b++) dst[i * rowBytes + b] = src[idx[i] * rowBytes + b];
  }
  return dst;
}

/** `data` after compaction (row i = row idx[i], rows from idx.length on unchanged), as new bytes. */
export function compactRowsRef(data: Uint8Array, rowBytes: number, idx: ArrayLike<number>): Uint8Array {
  const out = Uint8Array.from(data);
  out.set(gatherRowsRef(data, rowBytes, idx));
  return out;
}

/** Number of set bits of a 32-bit integer. */
export function popcount32(v: number): number {
  let c = 0;
  v >>>= 0;
  while (v) { c += v & 1; v >>>= 1; }
  return c;
}

/** Hamming distance of each row of `bits` ([n][words] u32) to `anchor` ([words]). */
export function hammingRowsRef(bits: ArrayLike<number>, n: number, words: number, anchor: ArrayLike<number>): Int32Array {
  const out = new Int32Array(n);
  for (let t = 0; t < n; t++) {
    let d = 0;
    for (let w = 0; w < words; w++) d += popcount32((bits[t * words + w] ^ anchor[w]) >>> 0);
    out[t] = d;
  }
  return out;
}

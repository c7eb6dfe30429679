/**
 * Float64 TypeScript reference of the packed formats (assembly/kernels/quant.ts):
 * binary16 conversion, asymmetric group quantization in the two KIVI layouts
 * (arXiv 2402.02750: keys per channel over a page's tokens, values per token over
 * groups of `vg` channels), and page pack / unpack on plain byte arrays.
 *
 * It follows the kernel's rules exactly (f16 minimum rounded down, f16 scale rounded
 * up, codes picked with the stored f16 minimum and scale, round half to even), but
 * computes in float64, so a code can differ from the kernel's by one where the value
 * sits within f32 rounding of a half step. Tests use it, never the hot path.
 */
import { FORMAT_BITS, PAGE_TOKENS, PAYLOAD_OFFSET, pageBytes, packedOffsets, type Format } from '../formats.ts';

// ---------------------------------------------------------------------------------
// binary16

const f32Buf = new Float32Array(1);
const u32Buf = new Uint32Array(f32Buf.buffer);

/** Largest finite binary16. */
export const F16_MAX = 65504;

/** Exact binary16 bits -> number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** number -> binary16 bits: first rounded to f32 (as the kernels see it), then to nearest even. */
export function floatToHalf(x: number): number {
  f32Buf[0] = x;
  const bits = u32Buf[0];
  const f = f32Buf[0];
  const sign = (bits >>> 16) & 0x8000;
  if (Number.isNaN(f)) return 0x7e00 | sign;
  const a = Math.abs(f);
  if (a >= 65520) return sign | 0x7c00;
  // Round a / 2^e to an integer number of f16 ulps, ties to even.
  let ulpExp: number;
  if (a < 2 ** -14) ulpExp = -24;
  else ulpExp = Math.floor(Math.log2(a)) - 10;
  // guard log2 imprecision near powers of two
  while (2 ** (ulpExp + 10) > a && ulpExp > -24) ulpExp--;
  while (2 ** (ulpExp + 11) <= a) ulpExp++;
  const units = roundHalfEven(a / 2 ** ulpExp);
  const v = units * 2 ** ulpExp;
  return sign | halfBitsOfMagnitude(v);
}

function halfBitsOfMagnitude(v: number): number {
  if (v === 0) return 0;
  if (v < 2 ** -14) return Math.round(v / 2 ** -24);
  let e = Math.floor(Math.log2(v));
  if (2 ** e > v) e--;
  if (2 ** (e + 1) <= v) e++;
  if (e > 15) return 0x7c00;
  const m = Math.round((v / 2 ** e - 1) * 1024);
  return ((e + 15) << 10) | m;
}

/** Round half to even (the kernels' `nearest`). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Largest binary16 <= x, as bits. */
export function halfDown(x: number): number {
  let h = floatToHalf(x);
  if (halfToFloat(h) > x) {
    if (h & 0x8000) h += 1;
    else if (h === 0) h = 0x8001;
    else h -= 1;
  }
  return h;
}

/** Smallest binary16 >= x (x >= 0), as bits. */
export function halfUp(x: number): number {
  let h = floatToHalf(x);
  if (halfToFloat(h) < x) {
    if (h === 0x8000) h = 1;
    else if (h & 0x8000) h -= 1;
    else h += 1;
  }
  return h;
}

// ---------------------------------------------------------------------------------
// Error budgets

/**
 * Named error budgets per format, used by the tests (and quoted in docs).
 * - `attentionRel`: relative L2 error of the attention output against float64 exact
 *   attention on the unquantized data, for keys and values ~ N(0, 1), queries ~ N(0, 1)
 *   with the usual 1/sqrt(d) scale (the test distribution).
 * - `kernelRel`: relative error of the kernel against the float64 reference computed on
 *   the same stored (dequantized) values: only f32 arithmetic is left.
 * - `roundTripSteps`: max |x - x^| in units of the group's stored step (scale); the
 *   theory says 1/2 for packed formats.
 */
export const ERROR_BUDGETS: Record<Format, { attentionRel: number; kernelRel: number; roundTripSteps: number }> = {
  f32: { attentionRel: 1e-5, kernelRel: 1e-5, roundTripSteps: 0 },
  f16: { attentionRel: 2e-3, kernelRel: 1e-5, roundTripSteps: 0 },
  // packed: the SIMD kernels use 16-bit fixed point for q*kScale and p*vScale (FIXED_POINT_ONE)
  int8: { attentionRel: 2e-2, kernelRel: 3e-4, roundTripSteps: 0.5 },
  int4: { attentionRel: 0.25, kernelRel: 3e-4, roundTripSteps: 0.5 },
  int2: { attentionRel: 0.9, kernelRel: 3e-4, roundTripSteps: 0.5 },
};

/**
 * Full scale of the 16-bit fixed point the SIMD attention kernel uses on packed pages
 * (per page and head, q*kScale and p*vScale are rounded to multiples of max/32767), so
 * a logit carries at most (max_c |scale q_c kScale_c| / 32767) / 2 * sum_c code_c of
 * extra error: below f16 storage error for real data.
 */
export const FIXED_POINT_ONE = 32767;

/** Relative f32 slack on top of the half-step bound (the kernel picks codes in f32). */
export const ROUND_TRIP_F32_SLACK = 1e-5;

// ---------------------------------------------------------------------------------
// Quantization

export interface QuantGroupParams { minBits: number; scaleBits: number; min: number; scale: number }

/** The stored f16 minimum and scale of a group with minimum mn and maximum mx. */
export function groupParams(mn: number, mx: number, bits: number): QuantGroupParams {
  const levels = 2 ** bits - 1;
  const minBits = halfDown(mn);
  const min = halfToFloat(minBits);
  // The step is computed in f32 (as the kernel does) before rounding up to f16.
  const scaleBits = mx > min ? halfUp(Math.fround(Math.fround(mx - min) / levels)) : 0;
  return { minBits, scaleBits, min, scale: halfToFloat(scaleBits) };
}

/** Code of x in a group with stored (min, scale). */
export function quantizeValue(x: number, min: number, scale: number, bits: number): number {
  if (scale === 0) return 0;
  const levels = 2 ** bits - 1;
  return Math.min(levels, Math.max(0, roundHalfEven((x - min) / scale)));
}

export interface Quantized { codes: Uint8Array; scale: Uint16Array; min: Uint16Array }

/** Bytes per packed row. */
export function rowBytes(d: number, bits: number): number {
  return (d * bits) >> 3;
}

function setCode(row: Uint8Array, off: number, c: number, R: number, bits: number, code: number): void {
  const s = Math.floor(c / R);
  row[off + (c - s * R)] |= code << (s * bits);
}

/** Code of channel c in the row starting at `off`. */
export function getCode(row: Uint8Array, off: number, c: number, R: number, bits: number): number {
  const s = Math.floor(c / R);
  return (row[off + (c - s * R)] >> (s * bits)) & ((1 << bits) - 1);
}

/** Keys `src: [n][d]` per channel over the n tokens. */
export function quantKeys(src: ArrayLike<number>, n: number, d: number, bits: number): Quantized {
  const R = rowBytes(d, bits);
  const codes = new Uint8Array(n * R), scale = new Uint16Array(d), min = new Uint16Array(d);
  for (let c = 0; c < d; c++) {
    let mn = Infinity, mx = -Infinity;
    for (let t = 0; t < n; t++) { mn = Math.min(mn, src[t * d + c]); mx = Math.max(mx, src[t * d + c]); }
    const g = groupParams(mn, mx, bits);
    scale[c] = g.scaleBits; min[c] = g.minBits;
    for (let t = 0; t < n; t++) setCode(codes, t * R, c, R, bits, quantizeValue(src[t * d + c], g.min, g.scale, bits));
  }
  return { codes, scale, min };
}

/** Dequantized keys `[n][d]` in float64. */
export function dequantKeys(q: Quantized, n: number, d: number, bits: number): Float64Array {
  const R = rowBytes(d, bits);
  const out = new Float64Array(n * d);
  for (let t = 0; t < n; t++) for (let c = 0; c < d; c++) {
    out[t * d + c] = halfToFloat(q.min[c]) + halfToFloat(q.scale[c]) * getCode(q.codes, t * R, c, R, bits);
  }
  return out;
}

/** Values `src: [n][d]` per token over groups of vg channels. */
export function quantValues(src: ArrayLike<number>, n: number, d: number, vg: number, bits: number): Quantized {
  const R = rowBytes(d, bits);
  const ng = d / vg;
  const codes = new Uint8Array(n * R), scale = new Uint16Array(n * ng), min = new Uint16Array(n * ng);
  for (let t = 0; t < n; t++) for (let g = 0; g < ng; g++) {
    let mn = Infinity, mx = -Infinity;
    for (let c = g * vg; c < (g + 1) * vg; c++) { mn = Math.min(mn, src[t * d + c]); mx = Math.max(mx, src[t * d + c]); }
    const p = groupParams(mn, mx, bits);
    scale[t * ng + g] = p.scaleBits; min[t * ng + g] = p.minBits;
    for (let c = g * vg; c < (g + 1) * vg; c++) setCode(codes, t * R, c, R, bits, quantizeValue(src[t * d + c], p.min, p.scale, bits));
  }
  return { codes, scale, min };
}

/** Dequantized values `[n][d]` in float64. */
export function dequantValues(q: Quantized, n: number, d: number, vg: number, bits: number): Float64Array {
  const R = rowBytes(d, bits);
  const ng = d / vg;
  const out = new Float64Array(n * d);
  for (let t = 0; t < n; t++) for (let c = 0; c < d; c++) {
    const g = t * ng + Math.floor(c / vg);
    out[t * d + c] = halfToFloat(q.min[g]) + halfToFloat(q.scale[g]) * getCode(q.codes, t * R, c, R, bits);
  }
  return out;
}

// ---------------------------------------------------------------------------------
// Pages

/** One page's contents, decoded to float64 (keys/values `[count][d]`). */
export interface PageContents { k: Float64Array; v: Float64Array; logW: Float64Array; pos: Int32Array }

/**
 * The bytes of one page of `format` holding `count` entries (`k`, `v`: `[count][d]`),
 * laid out as assembly/kernels/layout.ts says; unused slots zero.
 */
export function packPage(format: Format, d: number, vg: number, count: number, k: ArrayLike<number>, v: ArrayLike<number>, logW: ArrayLike<number>, pos: ArrayLike<number>): Uint8Array {
  const bytes = new Uint8Array(pageBytes(format, d, vg));
  const dv = new DataView(bytes.buffer);
  for (let t = 0; t < count; t++) {
    dv.setFloat32(4 * t, logW[t], true);
    dv.setInt32(4 * PAGE_TOKENS + 4 * t, pos[t], true);
  }
  const plane = PAGE_TOKENS * d;
  if (format === 'f32') {
    for (let i = 0; i < count * d; i++) {
      dv.setFloat32(PAYLOAD_OFFSET + 4 * i, k[i], true);
      dv.setFloat32(PAYLOAD_OFFSET + 4 * (plane + i), v[i], true);
    }
  } else if (format === 'f16') {
    for (let i = 0; i < count * d; i++) {
      dv.setUint16(PAYLOAD_OFFSET + 2 * i, floatToHalf(k[i]), true);
      dv.setUint16(PAYLOAD_OFFSET + 2 * (plane + i), floatToHalf(v[i]), true);
    }
  } else if (count > 0) {
    const o = packedOffsets(format, d, vg);
    const kq = quantKeys(k, count, d, o.bits);
    const vq = quantValues(v, count, d, vg, o.bits);
    for (let c = 0; c < d; c++) {
      dv.setUint16(o.kScale + 2 * c, kq.scale[c], true);
      dv.setUint16(o.kMin + 2 * c, kq.min[c], true);
    }
    bytes.set(kq.codes, o.kCodes);
    for (let i = 0; i < count * o.ng; i++) {
      dv.setUint16(o.vScale + 2 * i, vq.scale[i], true);
      dv.setUint16(o.vMin + 2 * i, vq.min[i], true);
    }
    bytes.set(vq.codes, o.vCodes);
  }
  return bytes;
}

/** Decode one page (`bytes` from packPage or from the kernel) in float64. */
export function unpackPage(format: Format, d: number, vg: number, count: number, bytes: Uint8Array): PageContents {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const logW = new Float64Array(count);
  const pos = new Int32Array(count);
  for (let t = 0; t < count; t++) {
    logW[t] = dv.getFloat32(4 * t, true);
    pos[t] = dv.getInt32(4 * PAGE_TOKENS + 4 * t, true);
  }
  const plane = PAGE_TOKENS * d;
  const k = new Float64Array(count * d), v = new Float64Array(count * d);
  if (format === 'f32') {
    for (let i = 0; i < count * d; i++) {
      k[i] = dv.getFloat32(PAYLOAD_OFFSET + 4 * i, true);
      v[i] = dv.getFloat32(PAYLOAD_OFFSET + 4 * (plane + i), true);
    }
  } else if (format === 'f16') {
    for (let i = 0; i < count * d; i++) {
      k[i] = halfToFloat(dv.getUint16(PAYLOAD_OFFSET + 2 * i, true));
      v[i] = halfToFloat(dv.getUint16(PAYLOAD_OFFSET + 2 * (plane + i), true));
    }
  } else {
    const o = packedOffsets(format, d, vg);
    const R = o.R, bits = o.bits, ng = o.ng;
    for (let t = 0; t < count; t++) for (let c = 0; c < d; c++) {
      const ks = halfToFloat(dv.getUint16(o.kScale + 2 * c, true));
      const km = halfToFloat(dv.getUint16(o.kMin + 2 * c, true));
      k[t * d + c] = km + ks * getCode(bytes, o.kCodes + t * R, c, R, bits);
      const g = t * ng + Math.floor(c / vg);
      const vs = halfToFloat(dv.getUint16(o.vScale + 2 * g, true));
      const vm = halfToFloat(dv.getUint16(o.vMin + 2 * g, true));
      v[t * d + c] = vm + vs * getCode(bytes, o.vCodes + t * R, c, R, bits);
    }
  }
  return { k, v, logW, pos };
}

/** Bits per stored element of a format. */
export function formatBits(format: Format): number {
  return FORMAT_BITS[format];
}

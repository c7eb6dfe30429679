/**
 * Host-side page codec in TypeScript, byte-for-byte the layout of
 * `assembly/kernels/layout.ts` / `src/formats.ts` (pages of `PAGE_TOKENS` entries:
 * `logW f32[32]`, `pos i32[32]`, then the payload of the page's format).
 *
 * - `encodePage` builds a page from float keys / values the way the WASM `packPage`
 *   documents it (KIVI: keys per channel over the page's tokens, values per token over
 *   groups of `valueGroup` channels; f16 minimum rounded down, f16 scale rounded up,
 *   codes round-half-even; code packing "byte j holds channel j + s*R in bits
 *   [s*b, (s+1)*b)"). It exists so that the GPU path, its tests and `bench/webgpu.ts`
 *   can make pages without the WASM kernels; pages from `packPage` are read the same way.
 * - `decodePage` reads any page back into float64 keys / values / log-weights /
 *   positions: it is the reference that the WGSL kernels are tested against.
 * - `referenceAttention` is float64 decode attention over decoded pages.
 */
import { PAGE_TOKENS, PAYLOAD_OFFSET, FORMAT_BITS, isPacked, pageBytes, packedOffsets } from '../formats.ts';
import type { Format } from '../formats.ts';
import { halfToFloat } from '../reference/quant.ts';

export { halfToFloat };

const F16_EXP_MASK = 0x7c00;
const F16_SIGN = 0x8000;
const F16_MANT_BITS = 10;
const F16_MIN_SUBNORMAL = 2 ** -24;
const F16_MIN_NORMAL_EXP = -14;
const F16_MAX = 65504;

/** A number to IEEE binary16 (u16), round to nearest even; overflow gives Inf, NaN stays NaN. */
export function floatToHalf(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? F16_SIGN : 0;
  let a = Math.abs(x);
  if (a >= F16_MAX + 16) return sign | F16_EXP_MASK; // 65520 and above round to Inf
  if (a < 2 ** F16_MIN_NORMAL_EXP) {
    return sign | roundEven(a / F16_MIN_SUBNORMAL); // subnormal (may round up to the smallest normal)
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  const m = roundEven((a / 2 ** e - 1) * 1024);
  // m may be 1024: the carry moves into the exponent, which the bit layout does by itself
  a = ((e + 15) << F16_MANT_BITS) + m;
  return sign | a;
}

function roundEven(v: number): number {
  const f = Math.floor(v);
  const r = v - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Largest binary16 <= x (x finite, |x| <= 65504). */
export function halfDown(x: number): number {
  let h = floatToHalf(x);
  if (halfToFloat(h) > x) {
    if (h & F16_SIGN) h += 1;
    else if (h === 0) h = 0x8001;
    else h -= 1;
  }
  return h;
}

/** Smallest binary16 >= x (x finite, 0 <= x <= 65504). */
export function halfUp(x: number): number {
  let h = floatToHalf(x);
  if (halfToFloat(h) < x) {
    if (h === F16_SIGN) h = 1;
    else if (h & F16_SIGN) h -= 1;
    else h += 1;
  }
  return h;
}

/** A decoded page: float64 copies of `count` entries. */
export interface DecodedPage {
  /** `[count][headDim]` keys, dequantized. */
  k: Float64Array;
  /** `[count][headDim]` values, dequantized. */
  v: Float64Array;
  /** `[count]` log-weights. */
  logW: Float64Array;
  /** `[count]` original positions. */
  pos: Int32Array;
  count: number;
}

/**
 * Build one page (`pageBytes(format, d, vg)` bytes) from `count` entries.
 * `k`, `v`: `[count][d]`; `logW`: `[count]` (default 0); `pos`: `[count]` (default 0..count-1).
 * Unused slots stay zero. Values must be finite with |x| <= 65504 for f16 and packed formats.
 */
export function encodePage(
  format: Format, d: number, vg: number, count: number,
  k: ArrayLike<number>, v: ArrayLike<number>, logW?: ArrayLike<number>, pos?: ArrayLike<number>,
): Uint8Array {
  const bytes = new Uint8Array(pageBytes(format, d, vg));
  const dv = new DataView(bytes.buffer);
  for (let e = 0; e < count; e++) {
    dv.setFloat32(4 * e, logW ? logW[e] : 0, true);
    dv.setInt32(4 * PAGE_TOKENS + 4 * e, pos ? pos[e] : e, true);
  }
  if (format === 'f32') {
    for (let i = 0; i < count * d; i++) {
      dv.setFloat32(PAYLOAD_OFFSET + 4 * i, k[i], true);
      dv.setFloat32(PAYLOAD_OFFSET + 4 * (PAGE_TOKENS * d + i), v[i], true);
    }
    return bytes;
  }
  if (format === 'f16') {
    for (let i = 0; i < count * d; i++) {
      dv.setUint16(PAYLOAD_OFFSET + 2 * i, floatToHalf(k[i]), true);
      dv.setUint16(PAYLOAD_OFFSET + 2 * (PAGE_TOKENS * d + i), floatToHalf(v[i]), true);
    }
    return bytes;
  }
  const o = packedOffsets(format, d, vg);
  const levels = (1 << o.bits) - 1;
  const putCode = (rowOff: number, c: number, code: number) => {
    const s = Math.floor(c / o.R);
    bytes[rowOff + (c - s * o.R)] |= code << (s * o.bits);
  };
  // f32 arithmetic throughout, as the WASM kernel does, so that both give the same bytes
  const f = Math.fround;
  const params = (mn: number, mx: number): [number, number, number, number] => {
    const minH = halfDown(f(mn));
    const minF = halfToFloat(minH);
    const scaleH = f(mx) > minF ? halfUp(f(f(f(mx) - minF) / levels)) : 0;
    return [minH, scaleH, minF, halfToFloat(scaleH)];
  };
  const quant = (x: number, minF: number, scaleF: number) =>
    scaleF > 0 ? Math.min(levels, Math.max(0, roundEven(f(f(f(x) - minF) * f(1 / scaleF))))) : 0;
  // keys: per channel over the page's tokens
  for (let c = 0; c < d; c++) {
    let mn = Infinity, mx = -Infinity;
    for (let e = 0; e < count; e++) { const x = k[e * d + c]; if (x < mn) mn = x; if (x > mx) mx = x; }
    if (count === 0) { mn = 0; mx = 0; }
    const [minH, scaleH, minF, scaleF] = params(mn, mx);
    dv.setUint16(o.kScale + 2 * c, scaleH, true);
    dv.setUint16(o.kMin + 2 * c, minH, true);
    for (let e = 0; e < count; e++) putCode(o.kCodes + e * o.R, c, quant(k[e * d + c], minF, scaleF));
  }
  // values: per token over groups of vg channels
  for (let e = 0; e < count; e++) {
    for (let g = 0; g < o.ng; g++) {
      let mn = Infinity, mx = -Infinity;
      for (let c = g * vg; c < (g + 1) * vg; c++) { const x = v[e * d + c]; if (x < mn) mn = x; if (x > mx) mx = x; }
      const [minH, scaleH, minF, scaleF] = params(mn, mx);
      dv.setUint16(o.vScale + 2 * (e * o.ng + g), scaleH, true);
      dv.setUint16(o.vMin + 2 * (e * o.ng + g), minH, true);
      for (let c = g * vg; c < (g + 1) * vg; c++) putCode(o.vCodes + e * o.R, c, quant(v[e * d + c], minF, scaleF));
    }
  }
  return bytes;
}

/** Read `count` entries of a page back as float64 (the reference for every GPU kernel). */
export function decodePage(format: Format, d: number, vg: number, count: number, page: Uint8Array): DecodedPage {
  const dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const k = new Float64Array(count * d), v = new Float64Array(count * d);
  const logW = new Float64Array(count), pos = new Int32Array(count);
  for (let e = 0; e < count; e++) {
    logW[e] = dv.getFloat32(4 * e, true);
    pos[e] = dv.getInt32(4 * PAGE_TOKENS + 4 * e, true);
  }
  if (format === 'f32' || format === 'f16') {
    const w = format === 'f32' ? 4 : 2;
    for (let i = 0; i < count * d; i++) {
      const ko = PAYLOAD_OFFSET + w * i, vo = PAYLOAD_OFFSET + w * (PAGE_TOKENS * d + i);
      k[i] = w === 4 ? dv.getFloat32(ko, true) : halfToFloat(dv.getUint16(ko, true));
      v[i] = w === 4 ? dv.getFloat32(vo, true) : halfToFloat(dv.getUint16(vo, true));
    }
    return { k, v, logW, pos, count };
  }
  const o = packedOffsets(format, d, vg);
  const mask = (1 << o.bits) - 1;
  const code = (rowOff: number, c: number) => {
    const s = Math.floor(c / o.R);
    return (page[rowOff + (c - s * o.R)] >> (s * o.bits)) & mask;
  };
  for (let c = 0; c < d; c++) {
    const sc = halfToFloat(dv.getUint16(o.kScale + 2 * c, true));
    const mn = halfToFloat(dv.getUint16(o.kMin + 2 * c, true));
    for (let e = 0; e < count; e++) k[e * d + c] = mn + sc * code(o.kCodes + e * o.R, c);
  }
  for (let e = 0; e < count; e++) {
    for (let c = 0; c < d; c++) {
      const g = Math.floor(c / vg);
      const sc = halfToFloat(dv.getUint16(o.vScale + 2 * (e * o.ng + g), true));
      const mn = halfToFloat(dv.getUint16(o.vMin + 2 * (e * o.ng + g), true));
      v[e * d + c] = mn + sc * code(o.vCodes + e * o.R, c);
    }
  }
  return { k, v, logW, pos, count };
}

/** Result of attention for `lanes` lanes: `out [lanes][G][d]`, `lse [lanes][G]` (natural log). */
export interface AttentionResult {
  out: Float32Array;
  lse: Float32Array;
}

/**
 * Float64 reference decode attention over decoded pages of one lane:
 * `out[h] = sum_e softmax_e(scale * <q_h, k_e> + logW_e) v_e`, `lse[h] = log sum_e exp(logit)`.
 * `q`: `[G][d]`. A lane with no entries gives `out = 0`, `lse = -Infinity`.
 */
export function referenceAttention(pages: DecodedPage[], q: ArrayLike<number>, G: number, d: number, scale: number): { out: Float64Array; lse: Float64Array } {
  const out = new Float64Array(G * d), lse = new Float64Array(G).fill(-Infinity);
  for (let h = 0; h < G; h++) {
    const logits: number[] = [];
    for (const p of pages) {
      for (let e = 0; e < p.count; e++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += q[h * d + c] * p.k[e * d + c];
        logits.push(scale * s + p.logW[e]);
      }
    }
    if (logits.length === 0) continue;
    let m = -Infinity; // a loop, not Math.max(...logits): long lanes overflow the argument stack
    for (const x of logits) if (x > m) m = x;
    let l = 0, i = 0;
    for (const p of pages) {
      for (let e = 0; e < p.count; e++, i++) {
        const w = Math.exp(logits[i] - m);
        l += w;
        for (let c = 0; c < d; c++) out[h * d + c] += w * p.v[e * d + c];
      }
    }
    for (let c = 0; c < d; c++) out[h * d + c] /= l;
    lse[h] = m + Math.log(l);
  }
  return { out, lse };
}

/** Whether `format` stores packed codes (re-export for the GPU modules). */
export { isPacked, FORMAT_BITS };

/**
 * Storage formats and the page layout (mirror of assembly/kernels/layout.ts).
 *
 * Every lane stores its entries in pages of `PAGE_TOKENS` entries; a page has one
 * format. Exact formats (f32, f16) hold sinks, the recent window and the
 * full-precision residual; packed formats (int8/int4/int2) hold the rest, with keys
 * quantized per channel over the page's tokens and values per token over groups of
 * `valueGroup` channels (KIVI, arXiv 2402.02750). Scales and minima are f16.
 */
export const PAGE_TOKENS = 32;
export const PAYLOAD_OFFSET = 8 * PAGE_TOKENS;

export const FORMATS = ['f32', 'f16', 'int8', 'int4', 'int2'] as const;
export type Format = (typeof FORMATS)[number];
export const FORMAT_CODE: Record<Format, number> = { f32: 0, f16: 1, int8: 2, int4: 3, int2: 4 };
export const FORMAT_BITS: Record<Format, number> = { f32: 32, f16: 16, int8: 8, int4: 4, int2: 2 };
export const SUPPORTED_HEAD_DIMS = [8, 16, 32, 64, 80, 96, 128, 256] as const;

export function isPacked(f: Format): boolean {
  return f === 'int8' || f === 'int4' || f === 'int2';
}

/** Default value group: 32 channels, or the whole head when the head is smaller. */
export function defaultValueGroup(headDim: number): number {
  return Math.min(32, headDim);
}

/** Bytes of one page (see layout.ts). */
export function pageBytes(format: Format, d: number, vg: number): number {
  let n: number;
  if (format === 'f32') n = PAYLOAD_OFFSET + 2 * PAGE_TOKENS * d * 4;
  else if (format === 'f16') n = PAYLOAD_OFFSET + 2 * PAGE_TOKENS * d * 2;
  else {
    const bits = FORMAT_BITS[format];
    const R = (d * bits) >> 3;
    const ng = d / vg;
    n = PAYLOAD_OFFSET + 4 * d + PAGE_TOKENS * R + 4 * PAGE_TOKENS * ng + PAGE_TOKENS * R;
  }
  return (n + 15) & ~15;
}

/** Offsets inside an INTb page. */
export function packedOffsets(format: Format, d: number, vg: number) {
  const bits = FORMAT_BITS[format];
  const R = (d * bits) >> 3;
  const ng = d / vg;
  const kScale = PAYLOAD_OFFSET;
  const kMin = kScale + 2 * d;
  const kCodes = kMin + 2 * d;
  const vScale = kCodes + PAGE_TOKENS * R;
  const vMin = vScale + 2 * PAGE_TOKENS * ng;
  const vCodes = vMin + 2 * PAGE_TOKENS * ng;
  return { bits, R, ng, kScale, kMin, kCodes, vScale, vMin, vCodes };
}

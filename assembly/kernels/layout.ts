// Page layout shared by every kernel. Mirrored in src/formats.ts (keep in sync;
// test/formats.test.ts checks pageBytes() against the TypeScript mirror).
//
// A lane's entries live in fixed-size pages of PAGE_TOKENS entries. A page holds
// `count` <= PAGE_TOKENS valid entries (count is kept by the host in the page table,
// not in the page). Byte layout for head dim d, value group vg (ng = d / vg):
//
//   off 0                 logW  f32[PAGE_TOKENS]   per-entry log-weight added to the logit
//   off 4*PAGE_TOKENS     pos   i32[PAGE_TOKENS]   original position
//   off PAYLOAD_OFFSET    payload:
//     F32 : K f32[PAGE_TOKENS][d], then V f32[PAGE_TOKENS][d]
//     F16 : K u16[PAGE_TOKENS][d], then V u16[PAGE_TOKENS][d]   (IEEE binary16)
//     INTb (b = 8, 4, 2; R = d*b/8 bytes per row; P = 8/b codes per byte):
//       kScale f16[d], kMin f16[d]        keys: per channel over the page's tokens (KIVI)
//       kCodes u8[PAGE_TOKENS][R]
//       vScale f16[PAGE_TOKENS][ng], vMin f16[PAGE_TOKENS][ng]
//                                         values: per token over groups of vg channels
//       vCodes u8[PAGE_TOKENS][R]
//     Code packing inside a row: byte j holds channel j + s*R in bits [s*b, (s+1)*b),
//     s = 0..P-1 ("split halves/quarters": SIMD unpacks 16 bytes into 16 channels per shift).
//     Dequantized x = min + scale * code, code in [0, 2^b - 1].
//   Total size rounded up to 16 bytes.

export const PAGE_TOKENS: i32 = 32;
export const PAYLOAD_OFFSET: i32 = 8 * PAGE_TOKENS;

export const FMT_F32: i32 = 0;
export const FMT_F16: i32 = 1;
export const FMT_INT8: i32 = 2;
export const FMT_INT4: i32 = 3;
export const FMT_INT2: i32 = 4;

// @ts-ignore: decorator
@inline export function formatBits(format: i32): i32 {
  return format == FMT_F32 ? 32 : format == FMT_F16 ? 16 : format == FMT_INT8 ? 8 : format == FMT_INT4 ? 4 : 2;
}

// @ts-ignore: decorator
@inline export function rowBytes(d: i32, bits: i32): i32 {
  return (d * bits) >> 3;
}

/** Byte offsets inside an INTb page. */
// @ts-ignore: decorator
@inline export function kScaleOff(): i32 { return PAYLOAD_OFFSET; }
// @ts-ignore: decorator
@inline export function kMinOff(d: i32): i32 { return PAYLOAD_OFFSET + 2 * d; }
// @ts-ignore: decorator
@inline export function kCodesOff(d: i32): i32 { return PAYLOAD_OFFSET + 4 * d; }
// @ts-ignore: decorator
@inline export function vScaleOff(d: i32, bits: i32): i32 { return kCodesOff(d) + PAGE_TOKENS * rowBytes(d, bits); }
// @ts-ignore: decorator
@inline export function vMinOff(d: i32, bits: i32, vg: i32): i32 { return vScaleOff(d, bits) + 2 * PAGE_TOKENS * (d / vg); }
// @ts-ignore: decorator
@inline export function vCodesOff(d: i32, bits: i32, vg: i32): i32 { return vMinOff(d, bits, vg) + 2 * PAGE_TOKENS * (d / vg); }

/** Bytes of one page of `format` for head dim d and value group vg. */
export function pageBytes(format: i32, d: i32, vg: i32): i32 {
  let n: i32;
  if (format == FMT_F32) n = PAYLOAD_OFFSET + 2 * PAGE_TOKENS * d * 4;
  else if (format == FMT_F16) n = PAYLOAD_OFFSET + 2 * PAGE_TOKENS * d * 2;
  else {
    const bits = formatBits(format);
    n = vCodesOff(d, bits, vg) + PAGE_TOKENS * rowBytes(d, bits);
  }
  return (n + 15) & ~15;
}

// Model-runner kernels: the dense math of a Llama-family forward pass.
//
// Weights are row-major [rows][cols] (the Hugging Face layout of an nn.Linear weight,
// [out_features][in_features]), stored as f16 bits (u16) or f32. Activations are f32,
// token-major [n][cols]. Every sum accumulates in f32.
//
// matvecF16(w: u16[rows][cols], x: f32[cols], y: f32[rows], rows, cols, scale)   y = scale * (W x)
// matvecF32(w: f32[rows][cols], x, y, rows, cols)                                 y = W x
// matmulF16(w: u16[rows][cols], x: f32[n][cols], y: f32[n][rows], rows, cols, n, scale)
// matmulF32(w: f32[rows][cols], x, y, rows, cols, n)                              y[t] = W x[t]
//     `scale` is a power of two (the loader stores f16 weights multiplied by 2^k so that
//     none is subnormal, and passes scale = 2^-k): exact, and it keeps every f32 operand of
//     the hot loop normal — x86 cores take a microcode assist (~100+ cycles) on subnormal
//     operands, which halved f16 matvec speed with 0.13% subnormal weights (mix-27m).
//     Prefill: tiles of ROW_TILE rows x TOKEN_TILE tokens, so each weight is read once per
//     TOKEN_TILE tokens from L1/L2; f16 rows are decoded once per call, a block at a time,
//     into a static f32 scratch (CONVERT_BYTES) that every token tile then reads.
// rmsNormF32(x: f32[n][dim], weight: f32[dim], y: f32[n][dim], dim, n, eps)
//     y = weight * (x / sqrt(mean(x^2) + eps))            (y may equal x)
// ropeRotateHalfF32(x: f32[n][heads][headDim], positions: i32[n], invFreq: f32[headDim/2], n, heads, headDim)
//     in place, rotate-half convention (x_i, x_{i+d/2}) with angle = f32(invFreq[i] * pos)
// swigluF32(gate: f32[len], up: f32[len], out: f32[len], len)       out = silu(gate) * up
// addF32(y: f32[len], x: f32[len], len)                             y += x (residual)
// argmaxF32(x: f32[n], n): i32                                      first index of the maximum (NaN skipped; -1 if none)
// embedF16(table: u16[vocab][dim], ids: i32[n], n, dim, out: f32[n][dim], scale)   row gather + decode, times scale
// embedF32(table: f32[vocab][dim], ids, n, dim, out)
// attendExactF32(q: f32[qHeads][headDim], k: f32[len][kvHeads][headDim], v: same, len,
//                qHeads, kvHeads, headDim, scale, scores: f32[len], out: f32[qHeads][headDim])
//     exact softmax attention of one query token over `len` cached tokens; query head h
//     reads KV head h / (qHeads / kvHeads) (GQA).
//
// Preconditions (checked by the host): sizes >= 1 (n, len >= 1; rows, cols, dim >= 1),
// headDim even, qHeads a multiple of kvHeads, ids in range, outputs do not overlap inputs
// (except rmsNormF32's y == x), f16 weights finite (no Inf/NaN: the fast decode below maps
// them to finite garbage; the model loader rejects such files), scale a power of two.
//
// The SIMD f16 decode of weights: sign-extend the 16 bits into an i32 lane, shift left by
// 13 and clear bits 28..30; this places sign, exponent and mantissa in f32 position with
// the exponent still biased by 15; one multiply by 2^112 * scale rebiases it (exact,
// subnormals included). Four instructions per four weights.

import { f16bitsToF32 } from './f16';

/** Rows of W per prefill tile. */
// @ts-ignore: decorator
@inline const ROW_TILE: i32 = 2;
/** Tokens per prefill tile (each converted weight is used this many times). */
// @ts-ignore: decorator
@inline const TOKEN_TILE: i32 = 4;
/** Rows per matvec pass (each x load is shared by this many rows). */
// @ts-ignore: decorator
@inline const MATVEC_ROWS: i32 = 4;
/** f32 lanes in a v128. */
// @ts-ignore: decorator
@inline const LANES: i32 = 4;
/** Keeps sign (bit 31), exponent and mantissa; clears the sign copies in bits 28..30. */
// @ts-ignore: decorator
@inline const F16_SHIFTED_MASK: i32 = 0x8fffffff;
/** Mantissa bits f32 has beyond f16. */
// @ts-ignore: decorator
@inline const F16_TO_F32_SHIFT: i32 = 13;
/** 2^(127 - 15): rebiases an f16 exponent placed in f32 position. */
// @ts-ignore: decorator
@inline const F16_REBIAS: f32 = 5.192296858534828e33;

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** Four f16 weights at `p` (finite) as f32x4, times `k / 2^112` (k = splat(2^112 * scale)). SIMD build only. */
// @ts-ignore: decorator
@inline function w4(p: usize, k: v128): v128 {
  const s = i32x4.shl(v128.load16x4_s(p), F16_TO_F32_SHIFT);
  return f32x4.mul(v128.and(s, i32x4.splat(F16_SHIFTED_MASK)), k);
}

/** One finite f16 weight as f32 (scalar). */
// @ts-ignore: decorator
@inline function w1(p: usize): f32 {
  return f16bitsToF32(<u32>load<u16>(p));
}

// ---------------------------------------------------------------------------------
// f16 weights

/** Dot of one f16 weight row with x (scalar path and column tails). */
// @ts-ignore: decorator
@inline function rowDotF16Scalar(w: usize, x: usize, from: i32, cols: i32): f32 {
  let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
  let c = from;
  for (; c + LANES <= cols; c += LANES) {
    const pw = w + (<usize>c << 1), px = x + (<usize>c << 2);
    s0 += w1(pw) * load<f32>(px);
    s1 += w1(pw + 2) * load<f32>(px, 4);
    s2 += w1(pw + 4) * load<f32>(px, 8);
    s3 += w1(pw + 6) * load<f32>(px, 12);
  }
  let s = (s0 + s1) + (s2 + s3);
  for (; c < cols; c++) s += w1(w + (<usize>c << 1)) * load<f32>(x + (<usize>c << 2));
  return s;
}

/**
 * y[r] = W[r] . x for the MATVEC_ROWS rows r0, r0 + stride, r0 + 2 stride, r0 + 3 stride (SIMD).
 * With stride = rows / 4 each of the four rows comes from its own quarter of W, so the four
 * memory streams are long and sequential (rows next to each other made four interleaved
 * streams inside one 4 KiB page for 512-column matrices, which the hardware prefetchers
 * followed poorly: 3.3 vs 8 GB/s out of cache).
 */
// @ts-ignore: decorator
@inline function matvecF16Rows4(w: usize, x: usize, y: usize, r0: i32, stride: i32, cols: i32, k: v128, scale: f32): void {
  const rowBytes = <usize>cols << 1;
  const step = <usize>stride * rowBytes;
  const p0 = w + <usize>r0 * rowBytes, p1 = p0 + step, p2 = p1 + step, p3 = p2 + step;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  let c: i32 = 0;
  for (; c + 2 * LANES <= cols; c += 2 * LANES) {
    const ow = <usize>c << 1;
    const px = x + (<usize>c << 2);
    const x0 = v128.load(px), x1 = v128.load(px, 16);
    a0 = f32x4.add(a0, f32x4.mul(w4(p0 + ow, k), x0)); b0 = f32x4.add(b0, f32x4.mul(w4(p0 + ow + 8, k), x1));
    a1 = f32x4.add(a1, f32x4.mul(w4(p1 + ow, k), x0)); b1 = f32x4.add(b1, f32x4.mul(w4(p1 + ow + 8, k), x1));
    a2 = f32x4.add(a2, f32x4.mul(w4(p2 + ow, k), x0)); b2 = f32x4.add(b2, f32x4.mul(w4(p2 + ow + 8, k), x1));
    a3 = f32x4.add(a3, f32x4.mul(w4(p3 + ow, k), x0)); b3 = f32x4.add(b3, f32x4.mul(w4(p3 + ow + 8, k), x1));
  }
  for (; c + LANES <= cols; c += LANES) {
    const ow = <usize>c << 1;
    const x0 = v128.load(x + (<usize>c << 2));
    a0 = f32x4.add(a0, f32x4.mul(w4(p0 + ow, k), x0));
    a1 = f32x4.add(a1, f32x4.mul(w4(p1 + ow, k), x0));
    a2 = f32x4.add(a2, f32x4.mul(w4(p2 + ow, k), x0));
    a3 = f32x4.add(a3, f32x4.mul(w4(p3 + ow, k), x0));
  }
  let s0 = hsum(f32x4.add(a0, b0)), s1 = hsum(f32x4.add(a1, b1)), s2 = hsum(f32x4.add(a2, b2)), s3 = hsum(f32x4.add(a3, b3));
  for (; c < cols; c++) {
    const ow = <usize>c << 1;
    const xv = load<f32>(x + (<usize>c << 2)) * scale;
    s0 += w1(p0 + ow) * xv; s1 += w1(p1 + ow) * xv; s2 += w1(p2 + ow) * xv; s3 += w1(p3 + ow) * xv;
  }
  const py = y + (<usize>r0 << 2), ystep = <usize>stride << 2;
  store<f32>(py, s0); store<f32>(py + ystep, s1); store<f32>(py + 2 * ystep, s2); store<f32>(py + 3 * ystep, s3);
}

/** y[r] = W[r] . x for one row (SIMD). */
// @ts-ignore: decorator
@inline function rowDotF16Simd(p: usize, x: usize, cols: i32, k: v128, scale: f32): f32 {
  let a = f32x4.splat(0), b = f32x4.splat(0);
  let c: i32 = 0;
  for (; c + 2 * LANES <= cols; c += 2 * LANES) {
    const ow = <usize>c << 1, px = x + (<usize>c << 2);
    a = f32x4.add(a, f32x4.mul(w4(p + ow, k), v128.load(px)));
    b = f32x4.add(b, f32x4.mul(w4(p + ow + 8, k), v128.load(px, 16)));
  }
  for (; c + LANES <= cols; c += LANES) {
    a = f32x4.add(a, f32x4.mul(w4(p + (<usize>c << 1), k), v128.load(x + (<usize>c << 2))));
  }
  let s = hsum(f32x4.add(a, b));
  for (; c < cols; c++) s += w1(p + (<usize>c << 1)) * (load<f32>(x + (<usize>c << 2)) * scale);
  return s;
}

/** y = scale * (W x), W f16 [rows][cols], x f32 [cols], y f32 [rows]; scale a power of two. */
export function matvecF16(w: usize, x: usize, y: usize, rows: i32, cols: i32, scale: f32): void {
  const rowBytes = <usize>cols << 1;
  let r: i32 = 0;
  if (ASC_FEATURE_SIMD) {
    const k = f32x4.splat(F16_REBIAS * scale);
    const quarter = rows / MATVEC_ROWS;
    for (; r < quarter; r++) matvecF16Rows4(w, x, y, r, quarter, cols, k, scale);
    r = quarter * MATVEC_ROWS;
    for (; r < rows; r++) store<f32>(y + (<usize>r << 2), rowDotF16Simd(w + <usize>r * rowBytes, x, cols, k, scale));
  } else {
    for (; r < rows; r++) store<f32>(y + (<usize>r << 2), rowDotF16Scalar(w + <usize>r * rowBytes, x, 0, cols) * scale);
  }
}

/** Rows of f16 weights decoded to f32 at a time for prefill: CONVERT_BYTES / (4 * cols). */
// @ts-ignore: decorator
@inline const CONVERT_BYTES: i32 = 65536;
/** Static scratch for the decoded row block (stays in L2 while every token tile uses it). */
const CONVERT_SCRATCH: usize = memory.data(CONVERT_BYTES, 16);

/** Decode `count` f16 weights at `src` to f32 at `dst`, times scale (SIMD). */
// @ts-ignore: decorator
@inline function decodeBlock(src: usize, dst: usize, count: i32, k: v128, scale: f32): void {
  let i: i32 = 0;
  for (; i + 2 * LANES <= count; i += 2 * LANES) {
    const ps = src + (<usize>i << 1), pd = dst + (<usize>i << 2);
    v128.store(pd, w4(ps, k));
    v128.store(pd, w4(ps + 8, k), 16);
  }
  for (; i < count; i++) store<f32>(dst + (<usize>i << 2), w1(src + (<usize>i << 1)) * scale);
}

/**
 * y[t] = scale * (W x[t]) for n tokens; W f16 [rows][cols], x f32 [n][cols], y f32 [n][rows].
 * SIMD prefill: blocks of rows are decoded once into an f32 scratch (exact), then every
 * ROW_TILE x TOKEN_TILE tile runs on f32 weights — the f16 decode is paid once per block,
 * not once per token tile.
 */
export function matmulF16(w: usize, x: usize, y: usize, rows: i32, cols: i32, n: i32, scale: f32): void {
  const xBytes = <usize>cols << 2, yBytes = <usize>rows << 2;
  if (ASC_FEATURE_SIMD) {
    let block = CONVERT_BYTES / (cols << 2);
    block -= block % ROW_TILE;
    if (n >= TOKEN_TILE && block >= ROW_TILE) {
      const k = f32x4.splat(F16_REBIAS * scale);
      for (let r0: i32 = 0; r0 < rows; r0 += block) {
        const nr = min(block, rows - r0);
        decodeBlock(w + <usize>r0 * (<usize>cols << 1), CONVERT_SCRATCH, nr * cols, k, scale);
        blockF32(CONVERT_SCRATCH, x, y, r0, nr, rows, cols, n);
      }
    } else {
      for (let t: i32 = 0; t < n; t++) matvecF16(w, x + <usize>t * xBytes, y + <usize>t * yBytes, rows, cols, scale);
    }
  } else {
    const rowBytes = <usize>cols << 1;
    for (let r: i32 = 0; r < rows; r++) {
      const p = w + <usize>r * rowBytes;
      for (let t: i32 = 0; t < n; t++) {
        store<f32>(y + <usize>t * yBytes + (<usize>r << 2), rowDotF16Scalar(p, x + <usize>t * xBytes, 0, cols) * scale);
      }
    }
  }
}

// ---------------------------------------------------------------------------------
// f32 weights

// @ts-ignore: decorator
@inline function rowDotF32(p: usize, x: usize, cols: i32): f32 {
  let c: i32 = 0;
  let s: f32 = 0;
  if (ASC_FEATURE_SIMD) {
    let a = f32x4.splat(0), b = f32x4.splat(0);
    for (; c + 2 * LANES <= cols; c += 2 * LANES) {
      const o = <usize>c << 2;
      a = f32x4.add(a, f32x4.mul(v128.load(p + o), v128.load(x + o)));
      b = f32x4.add(b, f32x4.mul(v128.load(p + o, 16), v128.load(x + o, 16)));
    }
    for (; c + LANES <= cols; c += LANES) {
      const o = <usize>c << 2;
      a = f32x4.add(a, f32x4.mul(v128.load(p + o), v128.load(x + o)));
    }
    s = hsum(f32x4.add(a, b));
  } else {
    let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
    for (; c + LANES <= cols; c += LANES) {
      const o = <usize>c << 2;
      s0 += load<f32>(p + o) * load<f32>(x + o);
      s1 += load<f32>(p + o, 4) * load<f32>(x + o, 4);
      s2 += load<f32>(p + o, 8) * load<f32>(x + o, 8);
      s3 += load<f32>(p + o, 12) * load<f32>(x + o, 12);
    }
    s = (s0 + s1) + (s2 + s3);
  }
  for (; c < cols; c++) s += load<f32>(p + (<usize>c << 2)) * load<f32>(x + (<usize>c << 2));
  return s;
}

/** y = W x, W f32 [rows][cols]. */
export function matvecF32(w: usize, x: usize, y: usize, rows: i32, cols: i32): void {
  const rowBytes = <usize>cols << 2;
  for (let r: i32 = 0; r < rows; r++) store<f32>(y + (<usize>r << 2), rowDotF32(w + <usize>r * rowBytes, x, cols));
}

/**
 * One ROW_TILE x TOKEN_TILE tile over f32 weights (SIMD): rows at p0, p0 + cols; tokens at
 * q0 + j * cols (f32); results to py + j * yBytes (+4 for the second row).
 */
// @ts-ignore: decorator
@inline function tileF32(p0: usize, q0: usize, py: usize, cols: i32, yBytes: usize): void {
  const xBytes = <usize>cols << 2;
  const p1 = p0 + xBytes;
  const q1 = q0 + xBytes, q2 = q1 + xBytes, q3 = q2 + xBytes;
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
  let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
  let c: i32 = 0;
  for (; c + LANES <= cols; c += LANES) {
    const o = <usize>c << 2;
    const u = v128.load(p0 + o), v = v128.load(p1 + o);
    let xv = v128.load(q0 + o);
    a00 = f32x4.add(a00, f32x4.mul(u, xv)); a10 = f32x4.add(a10, f32x4.mul(v, xv));
    xv = v128.load(q1 + o);
    a01 = f32x4.add(a01, f32x4.mul(u, xv)); a11 = f32x4.add(a11, f32x4.mul(v, xv));
    xv = v128.load(q2 + o);
    a02 = f32x4.add(a02, f32x4.mul(u, xv)); a12 = f32x4.add(a12, f32x4.mul(v, xv));
    xv = v128.load(q3 + o);
    a03 = f32x4.add(a03, f32x4.mul(u, xv)); a13 = f32x4.add(a13, f32x4.mul(v, xv));
  }
  let s00 = hsum(a00), s01 = hsum(a01), s02 = hsum(a02), s03 = hsum(a03);
  let s10 = hsum(a10), s11 = hsum(a11), s12 = hsum(a12), s13 = hsum(a13);
  for (; c < cols; c++) {
    const o = <usize>c << 2;
    const u = load<f32>(p0 + o), v = load<f32>(p1 + o);
    let xv = load<f32>(q0 + o); s00 += u * xv; s10 += v * xv;
    xv = load<f32>(q1 + o); s01 += u * xv; s11 += v * xv;
    xv = load<f32>(q2 + o); s02 += u * xv; s12 += v * xv;
    xv = load<f32>(q3 + o); s03 += u * xv; s13 += v * xv;
  }
  store<f32>(py, s00); store<f32>(py, s10, 4);
  store<f32>(py + yBytes, s01); store<f32>(py + yBytes, s11, 4);
  store<f32>(py + 2 * yBytes, s02); store<f32>(py + 2 * yBytes, s12, 4);
  store<f32>(py + 3 * yBytes, s03); store<f32>(py + 3 * yBytes, s13, 4);
}

/**
 * y[t][r0 + i] = Wb[i] . x[t] for the `nr` f32 rows at `wb` (row stride cols) and all n tokens:
 * ROW_TILE x TOKEN_TILE tiles, then the odd row and the last n % TOKEN_TILE tokens by row dots.
 */
// @ts-ignore: decorator
@inline function blockF32(wb: usize, x: usize, y: usize, r0: i32, nr: i32, rows: i32, cols: i32, n: i32): void {
  const xBytes = <usize>cols << 2, yBytes = <usize>rows << 2;
  const tiled = ASC_FEATURE_SIMD ? n - n % TOKEN_TILE : 0;
  const pairRows = ASC_FEATURE_SIMD ? nr - nr % ROW_TILE : 0;
  if (ASC_FEATURE_SIMD) {
    for (let i: i32 = 0; i < pairRows; i += ROW_TILE) {
      const p0 = wb + <usize>i * xBytes;
      const py = y + (<usize>(r0 + i) << 2);
      for (let t: i32 = 0; t < tiled; t += TOKEN_TILE) tileF32(p0, x + <usize>t * xBytes, py + <usize>t * yBytes, cols, yBytes);
    }
  }
  for (let i: i32 = 0; i < nr; i++) {
    const p = wb + <usize>i * xBytes;
    const py = y + (<usize>(r0 + i) << 2);
    for (let t = i < pairRows ? tiled : 0; t < n; t++) store<f32>(py + <usize>t * yBytes, rowDotF32(p, x + <usize>t * xBytes, cols));
  }
}

/** y[t] = W x[t] for n tokens; W f32 [rows][cols], x f32 [n][cols], y f32 [n][rows]. */
export function matmulF32(w: usize, x: usize, y: usize, rows: i32, cols: i32, n: i32): void {
  blockF32(w, x, y, 0, rows, rows, cols, n);
}

// ---------------------------------------------------------------------------------
// Element-wise and per-token kernels

/** RMSNorm over each of n rows of length dim: y = weight * (x * rsqrt(mean(x^2) + eps)). */
export function rmsNormF32(x: usize, weight: usize, y: usize, dim: i32, n: i32, eps: f32): void {
  const rowBytes = <usize>dim << 2;
  for (let t: i32 = 0; t < n; t++) {
    const px = x + <usize>t * rowBytes, py = y + <usize>t * rowBytes;
    let i: i32 = 0;
    let ss: f32 = 0;
    if (ASC_FEATURE_SIMD) {
      let a = f32x4.splat(0);
      for (; i + LANES <= dim; i += LANES) {
        const v = v128.load(px + (<usize>i << 2));
        a = f32x4.add(a, f32x4.mul(v, v));
      }
      ss = hsum(a);
    } else {
      let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
      for (; i + LANES <= dim; i += LANES) {
        const p = px + (<usize>i << 2);
        const v0 = load<f32>(p), v1 = load<f32>(p, 4), v2 = load<f32>(p, 8), v3 = load<f32>(p, 12);
        s0 += v0 * v0; s1 += v1 * v1; s2 += v2 * v2; s3 += v3 * v3;
      }
      ss = (s0 + s1) + (s2 + s3);
    }
    for (; i < dim; i++) { const v = load<f32>(px + (<usize>i << 2)); ss += v * v; }
    const inv: f32 = <f32>1 / Mathf.sqrt(ss / <f32>dim + eps);
    for (let j: i32 = 0; j < dim; j++) {
      const o = <usize>j << 2;
      store<f32>(py + o, load<f32>(weight + o) * (load<f32>(px + o) * inv));
    }
  }
}

/**
 * RoPE, rotate-half convention (Hugging Face Llama): for each token t, head h and
 * i < headDim/2, with a = f32(invFreq[i] * positions[t]):
 *   x[i]        = x[i] cos a - x[i + d/2] sin a
 *   x[i + d/2]  = x[i + d/2] cos a + x[i] sin a
 */
export function ropeRotateHalfF32(x: usize, positions: usize, invFreq: usize, n: i32, heads: i32, headDim: i32): void {
  const half = headDim >> 1;
  const headBytes = <usize>headDim << 2;
  const halfBytes = <usize>half << 2;
  for (let t: i32 = 0; t < n; t++) {
    const pos = <f32>load<i32>(positions + (<usize>t << 2));
    const base = x + <usize>t * <usize>heads * headBytes;
    for (let i: i32 = 0; i < half; i++) {
      const angle: f32 = load<f32>(invFreq + (<usize>i << 2)) * pos;
      const c = <f32>Math.cos(<f64>angle), s = <f32>Math.sin(<f64>angle);
      for (let h: i32 = 0; h < heads; h++) {
        const p = base + <usize>h * headBytes + (<usize>i << 2);
        const x1 = load<f32>(p), x2 = load<f32>(p + halfBytes);
        store<f32>(p, x1 * c - x2 * s);
        store<f32>(p + halfBytes, x2 * c + x1 * s);
      }
    }
  }
}

/** out = silu(gate) * up, silu(g) = g / (1 + e^-g). */
export function swigluF32(gate: usize, up: usize, out: usize, len: i32): void {
  for (let i: i32 = 0; i < len; i++) {
    const o = <usize>i << 2;
    const g = load<f32>(gate + o);
    store<f32>(out + o, (g / (<f32>1 + Mathf.exp(-g))) * load<f32>(up + o));
  }
}

/** y += x (the residual stream). */
export function addF32(y: usize, x: usize, len: i32): void {
  let i: i32 = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + LANES <= len; i += LANES) {
      const o = <usize>i << 2;
      v128.store(y + o, f32x4.add(v128.load(y + o), v128.load(x + o)));
    }
  }
  for (; i < len; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(y + o) + load<f32>(x + o));
  }
}

/** Index of the first maximum of x[0..n) (NaN entries skipped); -1 when all are NaN. */
export function argmaxF32(x: usize, n: i32): i32 {
  let best: i32 = -1;
  let m: f32 = -Infinity;
  for (let i: i32 = 0; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v > m || (best < 0 && v == m)) { m = v; best = i; }
  }
  return best;
}

/** out[t] = scale * f32(table[ids[t]]): embedding lookup from f16 rows [vocab][dim]. */
export function embedF16(table: usize, ids: usize, n: i32, dim: i32, out: usize, scale: f32): void {
  for (let t: i32 = 0; t < n; t++) {
    const src = table + <usize>load<i32>(ids + (<usize>t << 2)) * (<usize>dim << 1);
    const dst = out + <usize>t * (<usize>dim << 2);
    for (let j: i32 = 0; j < dim; j++) store<f32>(dst + (<usize>j << 2), w1(src + (<usize>j << 1)) * scale);
  }
}

/** out[t] = table[ids[t]]: embedding lookup from f32 rows [vocab][dim]. */
export function embedF32(table: usize, ids: usize, n: i32, dim: i32, out: usize): void {
  const rowBytes = <usize>dim << 2;
  for (let t: i32 = 0; t < n; t++) {
    memory.copy(out + <usize>t * rowBytes, table + <usize>load<i32>(ids + (<usize>t << 2)) * rowBytes, rowBytes);
  }
}

// @ts-ignore: decorator
@inline function dotHead(a: usize, b: usize, d: i32): f32 {
  let i: i32 = 0;
  let s: f32 = 0;
  if (ASC_FEATURE_SIMD) {
    let acc = f32x4.splat(0);
    for (; i + LANES <= d; i += LANES) acc = f32x4.add(acc, f32x4.mul(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
    s = hsum(acc);
  }
  for (; i < d; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** Cephes expf: ln 2 split for the range reduction, minimax polynomial on [-ln2/2, ln2/2]. */
// @ts-ignore: decorator
@inline const LOG2E: f32 = 1.44269504088896341;
// @ts-ignore: decorator
@inline const LN2_HI: f32 = 0.693359375;
// @ts-ignore: decorator
@inline const LN2_LO: f32 = -2.12194440e-4;
// @ts-ignore: decorator
@inline const EXP_P0: f32 = 1.9875691500e-4;
// @ts-ignore: decorator
@inline const EXP_P1: f32 = 1.3981999507e-3;
// @ts-ignore: decorator
@inline const EXP_P2: f32 = 8.3334519073e-3;
// @ts-ignore: decorator
@inline const EXP_P3: f32 = 4.1665795894e-2;
// @ts-ignore: decorator
@inline const EXP_P4: f32 = 1.6666665459e-1;
// @ts-ignore: decorator
@inline const EXP_P5: f32 = 5.0000001201e-1;
/** Inputs are clamped here: e^EXP_MIN is still a normal f32 (no subnormal results). */
// @ts-ignore: decorator
@inline const EXP_MIN: f32 = -87.33654;
// @ts-ignore: decorator
@inline const EXP_MAX: f32 = 88.37626;
/** f32 exponent bias. */
// @ts-ignore: decorator
@inline const F32_BIAS: i32 = 127;
/** f32 mantissa bits. */
// @ts-ignore: decorator
@inline const F32_MANT_BITS: i32 = 23;

/** e^x for four lanes (relative error ~2 ulp; x clamped to [EXP_MIN, EXP_MAX]). SIMD build only. */
// @ts-ignore: decorator
@inline function exp4(x0: v128): v128 {
  const x = f32x4.min(f32x4.max(x0, f32x4.splat(EXP_MIN)), f32x4.splat(EXP_MAX));
  const fx = f32x4.nearest(f32x4.mul(x, f32x4.splat(LOG2E)));
  let r = f32x4.sub(x, f32x4.mul(fx, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(fx, f32x4.splat(LN2_LO)));
  let y = f32x4.add(f32x4.mul(f32x4.splat(EXP_P0), r), f32x4.splat(EXP_P1));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(EXP_P2));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(EXP_P3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(EXP_P4));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(EXP_P5));
  y = f32x4.add(f32x4.add(f32x4.mul(y, f32x4.mul(r, r)), r), f32x4.splat(1));
  const pow2 = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(fx), i32x4.splat(F32_BIAS)), F32_MANT_BITS);
  return f32x4.mul(y, pow2);
}

/** [sum a, sum b, sum c, sum d] of four f32x4. SIMD build only. */
// @ts-ignore: decorator
@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/**
 * Scores of one query head against four key tokens (SIMD; headDim a multiple of 4):
 * [q.k0, q.k1, q.k2, q.k3] * scale.
 */
// @ts-ignore: decorator
@inline function scores4(qh: usize, k0: usize, tokenBytes: usize, headDim: i32, vscale: v128): v128 {
  const k1 = k0 + tokenBytes, k2 = k1 + tokenBytes, k3 = k2 + tokenBytes;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let i: i32 = 0; i < headDim; i += LANES) {
    const o = <usize>i << 2;
    const qv = v128.load(qh + o);
    a0 = f32x4.add(a0, f32x4.mul(qv, v128.load(k0 + o)));
    a1 = f32x4.add(a1, f32x4.mul(qv, v128.load(k1 + o)));
    a2 = f32x4.add(a2, f32x4.mul(qv, v128.load(k2 + o)));
    a3 = f32x4.add(a3, f32x4.mul(qv, v128.load(k3 + o)));
  }
  return f32x4.mul(hsum4(a0, a1, a2, a3), vscale);
}

/** One query head, SIMD, headDim % 4 == 0: scores 4 tokens at a time, vector exp, 4-token value sums. */
// @ts-ignore: decorator
@inline function attendHeadSimd(qh: usize, kg: usize, vg: usize, len: i32, headDim: i32, tokenBytes: usize, scale: f32, scores: usize, oh: usize): void {
  const vscale = f32x4.splat(scale);
  let vm = f32x4.splat(-Infinity);
  let t: i32 = 0;
  for (; t + LANES <= len; t += LANES) {
    const s = scores4(qh, kg + <usize>t * tokenBytes, tokenBytes, headDim, vscale);
    v128.store(scores + (<usize>t << 2), s);
    vm = f32x4.max(vm, s);
  }
  let m = max(max(f32x4.extract_lane(vm, 0), f32x4.extract_lane(vm, 1)), max(f32x4.extract_lane(vm, 2), f32x4.extract_lane(vm, 3)));
  for (; t < len; t++) {
    const s = dotHead(qh, kg + <usize>t * tokenBytes, headDim) * scale;
    store<f32>(scores + (<usize>t << 2), s);
    if (s > m) m = s;
  }
  const mv = f32x4.splat(m);
  let vsum = f32x4.splat(0);
  t = 0;
  for (; t + LANES <= len; t += LANES) {
    const p = scores + (<usize>t << 2);
    const e = exp4(f32x4.sub(v128.load(p), mv));
    v128.store(p, e);
    vsum = f32x4.add(vsum, e);
  }
  let sum = hsum(vsum);
  for (; t < len; t++) {
    const p = scores + (<usize>t << 2);
    const e = Mathf.exp(load<f32>(p) - m);
    store<f32>(p, e);
    sum += e;
  }
  const inv: f32 = <f32>1 / sum;
  memory.fill(oh, 0, <usize>headDim << 2);
  t = 0;
  for (; t + LANES <= len; t += LANES) {
    const ps = scores + (<usize>t << 2);
    const p0 = f32x4.splat(load<f32>(ps) * inv), p1 = f32x4.splat(load<f32>(ps, 4) * inv);
    const p2 = f32x4.splat(load<f32>(ps, 8) * inv), p3 = f32x4.splat(load<f32>(ps, 12) * inv);
    const v0 = vg + <usize>t * tokenBytes, v1 = v0 + tokenBytes, v2 = v1 + tokenBytes, v3 = v2 + tokenBytes;
    for (let i: i32 = 0; i < headDim; i += LANES) {
      const o = <usize>i << 2;
      let acc = v128.load(oh + o);
      acc = f32x4.add(acc, f32x4.mul(p0, v128.load(v0 + o)));
      acc = f32x4.add(acc, f32x4.mul(p1, v128.load(v1 + o)));
      acc = f32x4.add(acc, f32x4.mul(p2, v128.load(v2 + o)));
      acc = f32x4.add(acc, f32x4.mul(p3, v128.load(v3 + o)));
      v128.store(oh + o, acc);
    }
  }
  for (; t < len; t++) {
    const pv = f32x4.splat(load<f32>(scores + (<usize>t << 2)) * inv);
    const vt = vg + <usize>t * tokenBytes;
    for (let i: i32 = 0; i < headDim; i += LANES) {
      const o = <usize>i << 2;
      v128.store(oh + o, f32x4.add(v128.load(oh + o), f32x4.mul(pv, v128.load(vt + o))));
    }
  }
}

/**
 * Exact attention of one query token: out[h] = sum_t softmax_t(scale * q[h].k[t][g]) v[t][g],
 * g = h / (qHeads / kvHeads); K and V token-major [len][kvHeads][headDim]. `scores` is
 * scratch of `len` floats. The SIMD build (headDim a multiple of 4) scores four tokens per
 * pass, exponentiates four lanes at once (Cephes polynomial, ~2 ulp) and sums values four
 * tokens at a time; the scalar build uses Mathf.exp.
 */
export function attendExactF32(q: usize, k: usize, v: usize, len: i32, qHeads: i32, kvHeads: i32, headDim: i32, scale: f32, scores: usize, out: usize): void {
  const group = qHeads / kvHeads;
  const headBytes = <usize>headDim << 2;
  const tokenBytes = <usize>kvHeads * headBytes;
  for (let h: i32 = 0; h < qHeads; h++) {
    const g = h / group;
    const qh = q + <usize>h * headBytes;
    const kg = k + <usize>g * headBytes, vg = v + <usize>g * headBytes;
    const oh = out + <usize>h * headBytes;
    if (ASC_FEATURE_SIMD) {
      if (headDim % LANES == 0) {
        attendHeadSimd(qh, kg, vg, len, headDim, tokenBytes, scale, scores, oh);
        continue;
      }
    }
    let m: f32 = -Infinity;
    for (let t: i32 = 0; t < len; t++) {
      const s = dotHead(qh, kg + <usize>t * tokenBytes, headDim) * scale;
      store<f32>(scores + (<usize>t << 2), s);
      if (s > m) m = s;
    }
    let sum: f32 = 0;
    for (let t: i32 = 0; t < len; t++) {
      const p = scores + (<usize>t << 2);
      const e = Mathf.exp(load<f32>(p) - m);
      store<f32>(p, e);
      sum += e;
    }
    const inv: f32 = <f32>1 / sum;
    memory.fill(oh, 0, headBytes);
    for (let t: i32 = 0; t < len; t++) {
      const pt = load<f32>(scores + (<usize>t << 2)) * inv;
      const vt = vg + <usize>t * tokenBytes;
      let i: i32 = 0;
      if (ASC_FEATURE_SIMD) {
        const pv = f32x4.splat(pt);
        for (; i + LANES <= headDim; i += LANES) {
          const o = <usize>i << 2;
          v128.store(oh + o, f32x4.add(v128.load(oh + o), f32x4.mul(pv, v128.load(vt + o))));
        }
      }
      for (; i < headDim; i++) {
        const o = <usize>i << 2;
        store<f32>(oh + o, load<f32>(oh + o) + pt * load<f32>(vt + o));
      }
    }
  }
}

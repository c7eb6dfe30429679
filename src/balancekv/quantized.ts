/**
 * Low-bit BalanceKV samples: the walk sees the dequantized keys and values its kept
 * tokens will be stored as, so it balances what attention will actually read.
 *
 * Layout (KIVI, arXiv 2402.02750, as the cache's packed pages; src/formats.ts): keys
 * quantized per channel over groups of PAGE_TOKENS consecutive tokens, values per token
 * over groups of `valueGroup` channels, f16 minima (rounded down) and scales (rounded up).
 * With an engine the WebAssembly kernels quantKeys/dequantKeys/quantValues/dequantValues
 * do it; without, the float64 reference (src/reference/quant.ts) does.
 *
 * Caveat: the key groups are the PAGE_TOKENS-runs of the rows as they are handed in (the
 * middle in position order, or a merge-and-reduce level-0 buffer); a cache that re-packs
 * the survivors into new pages groups the kept keys differently, so stored keys can differ
 * from what the walk saw by up to one quantization step per channel. Values are exact
 * (per token, independent of grouping).
 */
import type { Engine } from '../engine.ts';
import { EdgeKVError, argError } from '../errors.ts';
import { PAGE_TOKENS } from '../formats.ts';
import * as ref from '../reference/quant.ts';

/** Bit widths of low-bit samples (32 = f32, no quantization). */
export const SAMPLE_BITS = [32, 8, 4] as const;
/** Bits of a compressed sample: 32 (exact f32), 8 or 4. */
export type SampleBits = (typeof SAMPLE_BITS)[number];
/** Largest magnitude a packed format can hold (f16 minima and scales). */
export const QUANT_MAX_ABS = 65504;

/** Check that d, valueGroup and bits are a packable geometry; names `prefix.*` in errors. */
export function checkQuantGeometry(d: number, valueGroup: number, bits: number, prefix = 'options'): void {
  if (bits === 32) return;
  if (d % 8 !== 0) throw argError(`${prefix}.headDim`, d, 'a multiple of 8 for packed (8/4-bit) samples', 'use sampleBits: 32');
  if (!Number.isInteger(valueGroup) || valueGroup < 4 || valueGroup % 4 !== 0 || d % valueGroup !== 0) {
    throw argError(`${prefix}.valueGroup`, valueGroup, `a multiple of 4 that divides headDim = ${d}`);
  }
}

/**
 * Dequantized copies `[rows.length][d]` of the keys and values of `rows` (`[tokens][d]`
 * inputs), quantized to `bits` in the KIVI layout. Throws E_ARG for |x| > 65504.
 */
export function fakeQuantize(engine: Engine | null, keys: Float32Array, values: Float32Array, rows: Int32Array, d: number,
  bits: 8 | 4, valueGroup: number): { keys: Float32Array; values: Float32Array } {
  const n = rows.length;
  const gk = new Float32Array(n * d), gv = new Float32Array(n * d);
  for (let r = 0; r < n; r++) {
    const o = rows[r] * d;
    gk.set(keys.subarray(o, o + d), r * d);
    gv.set(values.subarray(o, o + d), r * d);
  }
  for (let i = 0; i < gk.length; i++) {
    if (!(Math.abs(gk[i]) <= QUANT_MAX_ABS) || !(Math.abs(gv[i]) <= QUANT_MAX_ABS)) {
      throw new EdgeKVError('E_ARG', `a key or value of magnitude above ${QUANT_MAX_ABS} cannot be stored in ${bits}-bit samples (f16 scales); use sampleBits: 32`, 'sampleBits');
    }
  }
  if (n === 0) return { keys: gk, values: gv };
  return engine ? wasmFakeQuant(engine, gk, gv, n, d, bits, valueGroup) : refFakeQuant(gk, gv, n, d, bits, valueGroup);
}

function refFakeQuant(k: Float32Array, v: Float32Array, n: number, d: number, bits: number, vg: number): { keys: Float32Array; values: Float32Array } {
  const keys = new Float32Array(n * d);
  for (let t0 = 0; t0 < n; t0 += PAGE_TOKENS) {
    const m = Math.min(PAGE_TOKENS, n - t0);
    const src = k.subarray(t0 * d, (t0 + m) * d);
    keys.set(ref.dequantKeys(ref.quantKeys(src, m, d, bits), m, d, bits), t0 * d);
  }
  const values = Float32Array.from(ref.dequantValues(ref.quantValues(v, n, d, vg, bits), n, d, vg, bits));
  return { keys, values };
}

function wasmFakeQuant(e: Engine, k: Float32Array, v: Float32Array, n: number, d: number, bits: number, vg: number): { keys: Float32Array; values: Float32Array } {
  const R = (d * bits) >> 3;
  const ng = d / vg;
  const ptrs: number[] = [];
  const take = (bytes: number): number => { const q = e.arena.alloc(bytes); ptrs.push(q); return q; };
  try {
    const src = take(PAGE_TOKENS * d * 4), dst = take(PAGE_TOKENS * d * 4), codes = take(PAGE_TOKENS * R);
    const scale = take(Math.max(d, PAGE_TOKENS * ng) * 2), min = take(Math.max(d, PAGE_TOKENS * ng) * 2);
    const keys = new Float32Array(n * d), values = new Float32Array(n * d);
    const K = e.kernels;
    for (let t0 = 0; t0 < n; t0 += PAGE_TOKENS) {
      const m = Math.min(PAGE_TOKENS, n - t0);
      e.f32(src, m * d).set(k.subarray(t0 * d, (t0 + m) * d));
      K.quantKeys(src, m, d, bits, codes, scale, min);
      K.dequantKeys(codes, scale, min, m, d, bits, dst);
      keys.set(e.f32(dst, m * d), t0 * d);
      e.f32(src, m * d).set(v.subarray(t0 * d, (t0 + m) * d));
      K.quantValues(src, m, d, vg, bits, codes, scale, min);
      K.dequantValues(codes, scale, min, m, d, vg, bits, dst);
      values.set(e.f32(dst, m * d), t0 * d);
    }
    return { keys, values };
  } finally {
    for (const q of ptrs) e.arena.free(q);
  }
}

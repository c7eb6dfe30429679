/**
 * Test helpers for the cache: a float64 reference attention over what a lane really
 * stores (dequantized with unpackPage), random KV, and error checks.
 */
import type { KVCache } from '../../src/cache/cache.ts';
import { mulberry32 as prng } from '../../src/model/sampling.ts';

/** Deterministic PRNG (mulberry32) for test data. */
export { prng };

/** Gaussian-ish random Float32Array (sum of uniforms), scaled. */
export function randn(n: number, rnd: () => number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rnd() + rnd() + rnd() - 1.5) * 2 * scale;
  return a;
}

/** Orthonormal WHT of a float64 row (in place). */
export function fwht64(x: Float64Array): void {
  const n = x.length;
  for (let h = 1; h < n; h <<= 1) for (let i = 0; i < n; i += h << 1) for (let j = i; j < i + h; j++) {
    const u = x[j], w = x[j + h]; x[j] = u + w; x[j + h] = u - w;
  }
  const s = 1 / Math.sqrt(n);
  for (let i = 0; i < n; i++) x[i] *= s;
}

/**
 * Float64 attention over the entries the cache stores for `layer` (unpacked from its
 * pages): out[h] = Σ softmax(scale <q_h, k_e> + logW_e) v_e, GQA by group. Returns out and lse.
 */
export function refAttend(cache: KVCache, layer: number, queries: Float32Array): { out: Float64Array; lse: Float64Array } {
  const { qHeads, kvHeads, headDim: d, scale } = cache.options;
  const G = qHeads / kvHeads;
  const out = new Float64Array(qHeads * d);
  const lse = new Float64Array(qHeads);
  for (let kh = 0; kh < kvHeads; kh++) {
    const lane = cache.lane(layer, kh);
    const K = cache.store.readRows(lane, 'k');
    const V = cache.store.readRows(lane, 'v');
    const W = cache.store.readHeader(lane, 'logW') as Float32Array;
    const n = lane.tokens;
    for (let g = 0; g < G; g++) {
      const h = kh * G + g;
      const q = Float64Array.from(queries.subarray(h * d, (h + 1) * d));
      if (cache.rotateKeys) fwht64(q);
      const logits = new Float64Array(n);
      let m = -Infinity;
      for (let e = 0; e < n; e++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += q[c] * K[e * d + c];
        logits[e] = scale * s + W[e];
        if (logits[e] > m) m = logits[e];
      }
      let l = 0;
      const acc = new Float64Array(d);
      for (let e = 0; e < n; e++) {
        const p = Math.exp(logits[e] - m);
        l += p;
        for (let c = 0; c < d; c++) acc[c] += p * V[e * d + c];
      }
      for (let c = 0; c < d; c++) acc[c] /= l;
      if (cache.rotateValues) fwht64(acc);
      out.set(acc, h * d);
      lse[h] = m + Math.log(l);
    }
  }
  return { out, lse };
}

/** Exact attention over raw (unstored) keys/values [n][d] per head, for end-to-end checks. */
export function exactAttention(q: Float32Array, K: Float32Array[], V: Float32Array[], qHeads: number, kvHeads: number, d: number, scale: number): Float64Array {
  const G = qHeads / kvHeads;
  const out = new Float64Array(qHeads * d);
  for (let h = 0; h < qHeads; h++) {
    const kh = Math.floor(h / G);
    const k = K[kh], v = V[kh];
    const n = k.length / d;
    const lg = new Float64Array(n);
    let m = -Infinity;
    for (let e = 0; e < n; e++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += q[h * d + c] * k[e * d + c];
      lg[e] = scale * s; if (lg[e] > m) m = lg[e];
    }
    let l = 0;
    for (let e = 0; e < n; e++) { const p = Math.exp(lg[e] - m); l += p; for (let c = 0; c < d; c++) out[h * d + c] += p * v[e * d + c]; }
    for (let c = 0; c < d; c++) out[h * d + c] /= l;
  }
  return out;
}

/** Max |a - b| / max(max|b|, floor). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-6): number {
  let num = 0, den = floor;
  for (let i = 0; i < b.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
  return num / den;
}

import { createEngine, type Engine } from '../../src/engine.ts';
import { refEngine } from './ref-kernels.ts';
import { EdgeKVError } from '../../src/errors.ts';

/** Kernels the cache calls. */
const CACHE_KERNELS = ['packPage', 'unpackPage', 'attnInit', 'attendPages', 'attnFinish', 'probsFromLogits', 'gatherRows', 'compactRows', 'f32ToF16'] as const;

/** Names of the cache's kernels that still trap (stubs) in `e`. */
export function missingKernels(e: Engine): string[] {
  const k = e.kernels;
  const p = e.arena.alloc(1 << 16);
  const missing: string[] = [];
  const tryIt = (name: string, f: () => void) => { try { f(); } catch { missing.push(name); } };
  tryIt('packPage', () => k.packPage(1, 8, 8, 1, p + 4096, p + 8192, p + 12288, p + 12800, p));
  tryIt('unpackPage', () => k.unpackPage(1, 8, 8, 1, p, p + 4096, p + 8192, p + 12288, p + 12800));
  tryIt('attnInit', () => k.attnInit(p + 20000, 1, 8));
  e.i32(p + 30000, 2).set([p, 1]);
  tryIt('attendPages', () => k.attendPages(p + 30000, 1, 1, 8, 8, p + 4096, 1, 1, p + 20000, 0, 0));
  tryIt('attnFinish', () => k.attnFinish(p + 20000, 1, 8, p + 24000, p + 25000));
  tryIt('probsFromLogits', () => k.probsFromLogits(p + 26000, 1, 1, 1, p + 25000));
  e.i32(p + 31000, 1).set([0]);
  tryIt('gatherRows', () => k.gatherRows(p + 4096, p + 8192, p + 31000, 1, 4));
  tryIt('compactRows', () => k.compactRows(p + 4096, p + 31000, 1, 4));
  tryIt('f32ToF16', () => k.f32ToF16(p + 4096, p + 8192, 4));
  e.arena.free(p);
  return missing.filter((m) => (CACHE_KERNELS as readonly string[]).includes(m));
}

let enginesPromise: Promise<Array<{ name: string; engine: Engine }>> | undefined;
/**
 * Engines the cache tests run on: the TypeScript reference kernels always, and the
 * real SIMD / scalar builds once their page and attention kernels are in the build
 * (until then a notice names the missing kernels).
 */
export function testEngines(): Promise<Array<{ name: string; engine: Engine }>> {
  enginesPromise ??= (async () => {
    const list = [{ name: 'ts-reference', engine: await refEngine() }];
    for (const backend of ['wasm-simd', 'wasm-scalar'] as const) {
      const engine = await createEngine({ backend });
      const missing = missingKernels(engine);
      if (missing.length) console.warn(`[cache tests] ${backend}: kernels not in the build yet (${missing.join(', ')}); running on the TypeScript reference kernels only`);
      else list.push({ name: backend, engine });
    }
    return list;
  })();
  return enginesPromise;
}

/** Run `f` and return the EdgeKVError it throws (fails if it does not throw one). */
export function catchErr(f: () => unknown): EdgeKVError {
  try { f(); } catch (e) {
    if (e instanceof EdgeKVError) return e;
    throw new Error(`expected an EdgeKVError, got ${(e as Error)?.stack ?? e}`);
  }
  throw new Error('expected an EdgeKVError, nothing was thrown');
}

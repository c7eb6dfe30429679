/**
 * The cache benchmark (`edgekv bench cache`): what a decode step costs with a
 * compressed cache against the full cache, on realistic geometries, side by side in
 * one run:
 *
 * - geometries: 30 layers × 3 KV heads × 64 (9 query heads; SmolLM2-360M-like) and
 *   8 layers × 2 KV heads × 64 (8 query heads)
 * - contexts: 4K and 16K tokens (prefilled in one append per layer)
 * - `full` in f16 (the reference) vs `streaming-llm`, `h2o`, `snapkv` at 1/8 of the
 *   full cache's bytes, each in f16 and int4 (int4 fits more tokens in the same bytes)
 *
 * Per configuration: `attendStepMs` (one query per head on every layer, no append: the
 * attention of one decode step), `decodeStepMs` (append one token + attend on every
 * layer, amortized compression included), `prefillMs` (appending the context to every
 * layer) and `compressMs` (the part of it spent in the policy's compression), the bytes
 * the cache holds and the tokens per lane. KV is random with a few large key channels
 * (the outlier channels of real keys); timings do not depend on the values.
 *
 * The library prints nothing here: it returns data. tinybench is a dev dependency and
 * is imported lazily.
 */
import { createEngine, type Engine } from '../engine.ts';
import { machine, revision, runtimeName } from './env.ts';
import { EdgeKVError } from '../errors.ts';
import type { Format } from '../formats.ts';
import type { KVCache } from '../cache/cache.ts';
import type { CacheOptions } from '../cache/options.ts';
import { mulberry32 as prng } from '../model/sampling.ts';

/** One model geometry. */
export interface BenchGeometry { name: string; layers: number; qHeads: number; kvHeads: number; headDim: number; }

export const GEOMETRIES: BenchGeometry[] = [
  { name: '30L x 3kv x 64 (9q)', layers: 30, qHeads: 9, kvHeads: 3, headDim: 64 },
  { name: '8L x 2kv x 64 (8q)', layers: 8, qHeads: 8, kvHeads: 2, headDim: 64 },
];
export const FULL_CONTEXTS = [4096, 16384];
export const QUICK_CONTEXTS = [4096];
/** Compressed caches get this fraction of the full f16 cache's bytes. */
export const BYTE_FRACTION = 1 / 8;
/** The compressed configurations (policy × precision). */
export const CONFIGS: Array<{ policy: string; precision: Format }> = [
  { policy: 'full', precision: 'f16' },
  { policy: 'streaming-llm', precision: 'f16' },
  { policy: 'h2o', precision: 'f16' },
  { policy: 'snapkv', precision: 'f16' },
  { policy: 'streaming-llm', precision: 'int4' },
  { policy: 'h2o', precision: 'int4' },
  { policy: 'snapkv', precision: 'int4' },
];
/** Decode steps timed per configuration (append + attend on every layer). */
const DECODE_STEPS = 96;
const QUICK_DECODE_STEPS = 32;
/** tinybench time per attend task, ms (full / quick). */
const TASK_TIME_MS = 500;
const QUICK_TASK_TIME_MS = 150;
const MIN_ITERATIONS = 4;
/** Outlier key channels (per head) and their scale, for realistic-looking keys. */
const OUTLIER_CHANNELS = 4;
const OUTLIER_SCALE = 8;

export interface CacheBenchOptions {
  quick?: boolean;
  contexts?: number[];
  geometries?: BenchGeometry[];
  configs?: Array<{ policy: string; precision: Format }>;
  onProgress?: (line: string) => void;
}

export interface CacheBenchRow {
  geometry: string;
  context: number;
  policy: string;
  precision: Format;
  /** Byte budget given to the cache (null for full). */
  budgetBytes: number | null;
  /** Bytes of KV pages after the prefill. */
  bytes: number;
  /** Mean entries per lane after the prefill. */
  tokensPerLane: number;
  /** One decode step's attention: one query per head on every layer, ms (mean). */
  attendStepMs: number;
  /** Append one token + attend, every layer, ms (mean over the timed steps, compression included). */
  decodeStepMs: number;
  /** Appending the context to every layer, ms. */
  prefillMs: number;
  /** Part of prefillMs spent compressing, ms. */
  compressMs: number;
  /** attendStepMs of full f16 / this. */
  attendSpeedup: number;
}

export interface CacheBenchReport {
  suite: 'cache';
  runtime: string;
  machine: { cpu: string; cores: number; arch: string };
  revision: string;
  date: string;
  backend: string;
  config: { byteFraction: number; decodeSteps: number; taskTimeMs: number };
  results: CacheBenchRow[];
}

function gaussian(n: number, rnd: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rnd(), 1e-12), v = rnd();
    const r = Math.sqrt(-2 * Math.log(u));
    a[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) a[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return a;
}

/** Keys `[kvHeads, tokens, d]` with a few large channels per head; values plain Gaussian. */
function makeKV(g: BenchGeometry, tokens: number, rnd: () => number): { K: Float32Array; V: Float32Array } {
  const d = g.headDim;
  const K = gaussian(g.kvHeads * tokens * d, rnd), V = gaussian(g.kvHeads * tokens * d, rnd);
  for (let h = 0; h < g.kvHeads; h++) {
    for (let j = 0; j < OUTLIER_CHANNELS; j++) {
      const c = Math.floor(rnd() * d);
      for (let t = 0; t < tokens; t++) K[(h * tokens + t) * d + c] *= OUTLIER_SCALE;
    }
  }
  return { K, V };
}

async function tinybench(): Promise<typeof import('tinybench')> {
  try {
    return (await import('tinybench')) as typeof import('tinybench');
  } catch {
    throw new EdgeKVError('E_BACKEND', 'the benchmarks need the dev dependency tinybench; run `npm install` in the package directory');
  }
}

/** Build a cache, prefill every layer with the same KV, and time the prefill and its compression. */
function prefill(engine: Engine, opts: CacheOptions, kv: { K: Float32Array; V: Float32Array }, window: Float32Array): { cache: KVCache; prefillMs: number; compressMs: number } {
  const cache = engine.createCache(opts);
  let compressMs = 0;
  const compress = cache.compress.bind(cache);
  cache.compress = (lane) => {
    const t0 = performance.now();
    compress(lane);
    compressMs += performance.now() - t0;
  };
  const t0 = performance.now();
  for (let l = 0; l < cache.options.layers; l++) {
    cache.observe(l, window);
    cache.append(l, kv.K, kv.V);
  }
  const prefillMs = performance.now() - t0;
  cache.compress = compress;
  return { cache, prefillMs, compressMs };
}

/** Run the cache benchmark; returns the report (prints nothing). */
export async function runCacheBench(options: CacheBenchOptions = {}): Promise<CacheBenchReport> {
  const quick = options.quick ?? false;
  const contexts = options.contexts ?? (quick ? QUICK_CONTEXTS : FULL_CONTEXTS);
  const geometries = options.geometries ?? GEOMETRIES;
  const configs = options.configs ?? CONFIGS;
  const steps = quick ? QUICK_DECODE_STEPS : DECODE_STEPS;
  const timeMs = quick ? QUICK_TASK_TIME_MS : TASK_TIME_MS;
  const progress = options.onProgress ?? (() => {});
  const tb = await tinybench();
  const engine = await createEngine();
  const results: CacheBenchRow[] = [];
  for (const g of geometries) {
    for (const ctx of contexts) {
      const rnd = prng(ctx * 31 + g.layers);
      const kv = makeKV(g, ctx, rnd);
      const window = gaussian(32 * g.qHeads * g.headDim, rnd);
      const queries = Array.from({ length: g.layers }, () => gaussian(g.qHeads * g.headDim, rnd));
      const stepKV = Array.from({ length: steps }, () => makeKV(g, 1, rnd));
      const geometry = { layers: g.layers, qHeads: g.qHeads, kvHeads: g.kvHeads, headDim: g.headDim };
      let fullBytes = 0, fullAttend = 0;
      for (const cfg of configs) {
        const isFull = cfg.policy === 'full';
        let budgetBytes: number | null = null;
        if (!isFull) {
          if (fullBytes === 0) {
            // Bytes of the full f16 cache at this context, for the 1/8 budget.
            const probe = engine.createCache({ ...geometry, policy: 'full', precision: 'f16' });
            for (let l = 0; l < g.layers; l++) probe.append(l, kv.K, kv.V);
            fullBytes = probe.stats().bytes;
            probe.dispose();
          }
          budgetBytes = Math.floor(fullBytes * BYTE_FRACTION);
        }
        const opts: CacheOptions = { ...geometry, policy: cfg.policy, precision: cfg.precision, ...(budgetBytes ? { budget: { bytes: budgetBytes } } : {}) };
        const { cache, prefillMs, compressMs } = prefill(engine, opts, kv, window);
        const st = cache.stats();
        if (isFull && cfg.precision === 'f16') fullBytes = st.bytes;
        const out = new Float32Array(g.qHeads * g.headDim);
        const bench = new tb.Bench({ time: timeMs, iterations: MIN_ITERATIONS, warmupTime: Math.min(100, timeMs / 2), warmupIterations: 2 });
        bench.add('attend', () => { for (let l = 0; l < g.layers; l++) cache.attend(l, queries[l], out); });
        await bench.run();
        const task = bench.tasks[0];
        const lat = task.result as unknown as { latency?: { mean: number }; period?: number };
        const attendStepMs = lat.latency?.mean ?? lat.period ?? NaN;
        const t0 = performance.now();
        for (let s = 0; s < steps; s++) {
          for (let l = 0; l < g.layers; l++) {
            cache.append(l, stepKV[s].K, stepKV[s].V);
            cache.attend(l, queries[l], out);
          }
        }
        const decodeStepMs = (performance.now() - t0) / steps;
        if (isFull && cfg.precision === 'f16') fullAttend = attendStepMs;
        const row: CacheBenchRow = {
          geometry: g.name, context: ctx, policy: cfg.policy, precision: cfg.precision, budgetBytes,
          bytes: st.bytes, tokensPerLane: st.tokens / st.lanes.length,
          attendStepMs, decodeStepMs, prefillMs, compressMs,
          attendSpeedup: fullAttend > 0 ? fullAttend / attendStepMs : NaN,
        };
        results.push(row);
        progress(`${g.name} ctx ${ctx} ${cfg.policy}/${cfg.precision}: attend step ${attendStepMs.toFixed(2)} ms, decode step ${decodeStepMs.toFixed(2)} ms, ${(st.bytes / 2 ** 20).toFixed(1)} MiB, ${row.tokensPerLane.toFixed(0)} tok/lane, compress ${compressMs.toFixed(0)} ms`);
        cache.dispose();
      }
    }
  }
  return {
    suite: 'cache',
    runtime: runtimeName(),
    machine: await machine(),
    revision: await revision(),
    date: new Date().toISOString(),
    backend: engine.backend,
    config: { byteFraction: BYTE_FRACTION, decodeSteps: steps, taskTimeMs: timeMs },
    results,
  };
}

/** The report as a text table. */
export function formatCacheTable(report: CacheBenchReport): string {
  const lines: string[] = [];
  lines.push(`cache decode step, ${report.backend}, ${report.runtime}, ${report.machine.cpu}, revision ${report.revision}`);
  lines.push(`compressed caches get ${(report.config.byteFraction * 100).toFixed(1)}% of the full f16 cache's bytes`);
  lines.push('');
  const head = ['geometry', 'ctx', 'policy', 'prec', 'MiB', 'tok/lane', 'attend ms', 'vs full', 'decode ms', 'prefill ms', 'compress ms'];
  const rows: string[][] = [head];
  for (const r of report.results) {
    rows.push([
      r.geometry, String(r.context), r.policy, r.precision, (r.bytes / 2 ** 20).toFixed(1), r.tokensPerLane.toFixed(0),
      r.attendStepMs.toFixed(2), Number.isFinite(r.attendSpeedup) ? `${r.attendSpeedup.toFixed(1)}x` : '-',
      r.decodeStepMs.toFixed(2), r.prefillMs.toFixed(0), r.compressMs.toFixed(0),
    ]);
  }
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) lines.push(r.map((c, i) => (i < 4 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  return lines.join('\n');
}

/**
 * Model-runner benchmark: f16 / f32 matvec bandwidth against a copy-bandwidth probe measured
 * in the same run, prefill matmul throughput, and end-to-end prefill / decode tokens/s on
 * mix-27m when it is present.
 *
 *   node --import tsx bench/matvec.ts [--quick] [--json] [--model DIR] [--no-model]
 *
 * Figures:
 * - matvec GB/s = weight bytes read per second (rows * cols * bytes per weight / time); the
 *   target is f16 matvec (wasm-simd) >= 50% of the copy bandwidth, measured on a matrix
 *   larger than the last-level cache (as decode streams the whole model once per token);
 * - copy GB/s = bytes copied per second by a 256 MiB typed-array copy (src/bench/attention.ts);
 * - matmul GFLOP/s = 2 * rows * cols * tokens / time (prefill tiles);
 * - model: prefill tokens/s over a 256-token prompt, decode tokens/s over 64 greedy steps.
 *
 * Prints a table (or one JSON document with --json) and writes the JSON to
 * bench/results/matvec.json. Timings never gate CI.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { execSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import * as tinybench from 'tinybench';
import { createEngine, type Engine } from '../src/engine.ts';
import { copyBandwidth } from '../src/bench/attention.ts';
import { loadModel, prepareF16Weights } from '../src/model/llama.ts';
import { resolveModelDir } from '../src/model/paths.ts';

/** Matrices [rows, cols]: mix-27m's projection shapes, and one larger than the L3 cache. */
const SHAPES: Array<[number, number, string]> = [
  [512, 512, 'q/o proj 512x512'],
  [1408, 512, 'gate/up 1408x512'],
  [512, 1408, 'down 512x1408'],
  [8192, 512, 'lm head 8192x512'],
  [16384, 4096, '16384x4096 (128 MiB f16, > LLC)'],
];
const QUICK_SHAPES = [SHAPES[1], SHAPES[4]];
/** Prefill tile benchmark: tokens per matmul call. */
const PREFILL_TOKENS = 64;
const TASK_MS = 400;
const QUICK_TASK_MS = 150;
const PROMPT_TOKENS = 256;
/** Rounds of (copy probe, out-of-cache f16 matvec), best of each. */
const PAIRED_ROUNDS = 3;
const DECODE_TOKENS = 64;

interface Row { impl: string; dtype: 'f16' | 'f32'; shape: string; rows: number; cols: number; tokens: number; ms: number; gbPerSec: number; gflops: number; fractionOfCopy: number }

const { values: flags } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, model: { type: 'string' }, 'no-model': { type: 'boolean', default: false } },
});
const log = (s: string): void => { if (!flags.json) console.log(s); };

async function timeMs(fn: () => void, ms: number): Promise<number> {
  const bench = new tinybench.Bench({ time: ms, iterations: 3, warmupIterations: 1, warmupTime: 0 });
  bench.add('x', fn);
  await bench.run();
  const r = bench.tasks[0].result as { latency?: { p50: number } };
  if (!r.latency) throw new Error('benchmark task failed');
  return r.latency.p50;
}

/** Random finite f16 weights, |w| < 2, about 1/16 of them subnormal (prepared as the loader does). */
function randomF16(n: number): { h: Uint16Array; scale: number } {
  const h = new Uint16Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; h[i] = (s >>> 16) & 0xbbff; }
  return { h, scale: prepareF16Weights(h) };
}

async function main(): Promise<void> {
  const simd = await createEngine({ backend: 'wasm-simd' });
  const scalar = await createEngine({ backend: 'wasm-scalar' });
  const task = flags.quick ? QUICK_TASK_MS : TASK_MS;
  // The copy probe and the out-of-cache f16 matvec alternate (best of each), so that load from
  // other processes on a shared machine hits both figures alike.
  let copyGBps = 0, bigF16GBps = 0;
  {
    const [r, c] = [SHAPES[SHAPES.length - 1][0], SHAPES[SHAPES.length - 1][1]];
    const f = randomF16(r * c);
    const w = simd.arena.alloc(r * c * 2), x = simd.arena.alloc(c * 4), y = simd.arena.alloc(r * 4);
    simd.u16(w, r * c).set(f.h);
    simd.f32(x, c).fill(0.5);
    for (let round = 0; round < PAIRED_ROUNDS; round++) {
      copyGBps = Math.max(copyGBps, await copyBandwidth(tinybench));
      const ms = await timeMs(() => simd.kernels.matvecF16(w, x, y, r, c, f.scale), task);
      bigF16GBps = Math.max(bigF16GBps, (r * c * 2) / ms / 1e6);
    }
    simd.arena.free(w); simd.arena.free(x); simd.arena.free(y);
  }
  log(`copy bandwidth: ${copyGBps.toFixed(2)} GB/s (256 MiB typed-array copy, bytes copied per second; best of ${PAIRED_ROUNDS})`);
  log(`f16 matvec, ${SHAPES[SHAPES.length - 1][2]}: ${bigF16GBps.toFixed(2)} GB/s of weights = ${(100 * bigF16GBps / copyGBps).toFixed(0)}% of copy (target >= 50%; measured alternately with the copy probe)`);
  const rows: Row[] = [];
  const shapes = flags.quick ? QUICK_SHAPES : SHAPES;
  for (const [r, c, name] of shapes) {
    for (const [impl, e] of [['wasm-simd', simd], ['wasm-scalar', scalar]] as Array<[string, Engine]>) {
      for (const dtype of ['f16', 'f32'] as const) {
        if (impl === 'wasm-scalar' && (dtype === 'f32' || r * c > 1 << 22)) continue;
        const bytesPer = dtype === 'f16' ? 2 : 4;
        const w = e.arena.alloc(r * c * bytesPer), x = e.arena.alloc(c * 4 * PREFILL_TOKENS), y = e.arena.alloc(r * 4 * PREFILL_TOKENS);
        let scale = 1;
        if (dtype === 'f16') { const f = randomF16(r * c); e.u16(w, r * c).set(f.h); scale = f.scale; }
        else e.f32(w, r * c).fill(0.01);
        e.f32(x, c * PREFILL_TOKENS).fill(0.5);
        const k = e.kernels;
        const mv = dtype === 'f16' ? () => k.matvecF16(w, x, y, r, c, scale) : () => k.matvecF32(w, x, y, r, c);
        const ms = await timeMs(mv, task);
        rows.push({ impl, dtype, shape: name, rows: r, cols: c, tokens: 1, ms, gbPerSec: (r * c * bytesPer) / ms / 1e6, gflops: (2 * r * c) / ms / 1e6, fractionOfCopy: (r * c * bytesPer) / ms / 1e6 / copyGBps });
        if (r * c <= 1 << 22 && impl === 'wasm-simd') {
          const mm = dtype === 'f16' ? () => k.matmulF16(w, x, y, r, c, PREFILL_TOKENS, scale) : () => k.matmulF32(w, x, y, r, c, PREFILL_TOKENS);
          const ms2 = await timeMs(mm, task);
          rows.push({ impl, dtype, shape: name, rows: r, cols: c, tokens: PREFILL_TOKENS, ms: ms2, gbPerSec: (r * c * bytesPer) / ms2 / 1e6, gflops: (2 * r * c * PREFILL_TOKENS) / ms2 / 1e6, fractionOfCopy: 0 });
        }
        e.arena.free(w); e.arena.free(x); e.arena.free(y);
      }
    }
  }
  log('impl         dtype shape                              tokens   ms/call   GB/s  GFLOP/s  of copy');
  for (const r of rows) {
    log(`${r.impl.padEnd(12)} ${r.dtype.padEnd(5)} ${r.shape.padEnd(34)} ${String(r.tokens).padStart(6)} ${r.ms.toFixed(3).padStart(9)} ${r.gbPerSec.toFixed(2).padStart(6)} ${r.gflops.toFixed(2).padStart(8)} ${r.tokens === 1 ? `${(100 * r.fractionOfCopy).toFixed(0)}%`.padStart(8) : ''}`);
  }
  let model: Record<string, unknown> | null = null;
  if (!flags['no-model']) {
    const where = await resolveModelDir('mix-27m', flags.model);
    if (!where.exists) log(`model: skipped (${where.dir} not found)`);
    else {
      const m = await loadModel(where.dir, { engine: simd });
      const { readFileSync } = await import('node:fs');
      const text = readFileSync(`${where.dir}/val_shared.txt`, 'utf8').slice(0, 20000);
      const ids = m.tokenizer.encode(text).slice(0, PROMPT_TOKENS);
      const g = m.generate(ids, { maxTokens: DECODE_TOKENS, stopAtEos: false });
      const decodeGBps = (m.weightBytes * g.decodeTokensPerSec) / 1e9;
      model = { dir: where.dir, weightBytes: m.weightBytes, promptTokens: ids.length, prefillTokensPerSec: g.prefillTokensPerSec, decodeTokens: g.decodeTokens, decodeTokensPerSec: g.decodeTokensPerSec, decodeWeightGBps: decodeGBps, decodeFractionOfCopy: decodeGBps / copyGBps };
      log(`mix-27m (${(m.weightBytes / 2 ** 20).toFixed(1)} MiB weights): prefill ${g.prefillTokensPerSec.toFixed(1)} tok/s (${ids.length} tokens), decode ${g.decodeTokensPerSec.toFixed(1)} tok/s (${g.decodeTokens} steps, ${decodeGBps.toFixed(2)} GB/s of weights, ${(100 * decodeGBps / copyGBps).toFixed(0)}% of copy)`);
      m.dispose();
    }
  }
  let revision = 'unknown';
  try { revision = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { /* not a checkout */ }
  const report = {
    bench: 'matvec', copyGBps, f16MatvecOutOfCacheGBps: bigF16GBps, f16MatvecFractionOfCopy: bigF16GBps / copyGBps, results: rows, model,
    runtime: `node ${process.version} (v8 ${process.versions.v8})`, revision,
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, arch: process.arch }, date: new Date().toISOString(),
  };
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(new URL('./results/matvec.json', import.meta.url), JSON.stringify(report, null, 2));
  if (flags.json) console.log(JSON.stringify(report, null, 2));
}

await main();

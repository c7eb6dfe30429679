/**
 * WebGPU decode-attention benchmark: tokens per lane x format, GPU-resident pages,
 * GB/s of KV read per call, side by side with the WebAssembly kernels on the same pages.
 *
 * Runs with nothing but a Deno binary and this repository (no npm install; only
 * build/*.wasm for the CPU comparison):
 *   deno run -A --unstable-webgpu bench/webgpu.ts [flags]
 * or in Node with the `webgpu` package:  node --import tsx bench/webgpu.ts [flags]
 *
 * Flags (defaults in brackets):
 *   --tokens 4096,16384,65536,262144   tokens per lane
 *   --formats f16,int4                 page formats
 *   --lanes 8                          KV heads attended per call (one layer)
 *   --group 4                          query heads per KV head (GQA group)
 *   --head-dim 128
 *   --splits N                         split workgroups per dispatch (WebGPUAttention.targetSplits) [1024]
 *   --variants "a;b;..."               kernel variants measured side by side, each a comma list of
 *                                      splits=N, w=1|2|4 (words per thread), rg=N (row groups),
 *                                      hpp=N (heads per pass), pf=0|1 (prefetch the next page);
 *                                      "default" = the defaults  [default]
 *   --min-ms 300                       GPU time per measurement (iterations chosen to reach it)
 *   --rounds 3                         interleaved rounds over the variants; the best is kept
 *   --cpu / --no-cpu [--cpu]           also time the WASM kernels (wasm-simd) on the same pages
 *   --peak-gbps N                      the GPU's memory bandwidth, for the fraction column
 *   --out FILE                         JSON path [bench/results/webgpu-<date>.json]
 *   --revision REV                     git revision to record (default: read from .git)
 *
 * GB/s = bytes of the pages attended (payload + scales + minima + log-weights +
 * positions) / time per call. Time per call: one command buffer holds 150 ms of
 * warm-up calls (the GPU stays busy, so its clock is up) followed by N timed calls
 * (N calls ~ min-ms / 2); with the 'timestamp-query' feature the GPU time from the start
 * of the first timed call to the end of the last is divided by N (`gpuMs`); without it,
 * per call = (T(2N) - T(N)) / N with T from submit to onSubmittedWorkDone.
 * `gpuMsMean` = wall time of the whole command buffer / calls (submit latency included).
 * All variants of a (format, tokens) group are resident together and measured in
 * `--rounds` interleaved rounds; the best round is kept. Pages are a cycle of 64
 * distinct random pages per format (content does not change the bytes read). Every row
 * checks lane 0 against the float64 reference over the same page bytes
 * (`maxRelErrVsRef`, relative to max |out|). SwiftShader / llvmpipe numbers are
 * correctness checks, never GPU performance.
 */
import { createEngine } from '../src/engine.ts';
import { FORMATS, PAGE_TOKENS, pageBytes } from '../src/formats.ts';
import type { Format } from '../src/formats.ts';
import { createWebGPUContext } from '../src/webgpu/device.ts';
import { createWebGPUAttention } from '../src/webgpu/attention.ts';
import type { WebGPUAttention } from '../src/webgpu/attention.ts';
import { WasmPagedAttention } from '../src/webgpu/backend.ts';
import { decodePage, encodePage, referenceAttention } from '../src/webgpu/pagecodec.ts';
import type { DecodedPage } from '../src/webgpu/pagecodec.ts';
import type { AttentionTuning } from '../src/webgpu/wgsl.ts';
import { args, findGpu, gitRevision, runtimeName, writeReport } from './gpu-common.ts';

/** Distinct random pages per format (cycled over the lanes). */
const DISTINCT_PAGES = 64;
/** Bytes in a GB (decimal, as bandwidth specs use). */
const GB = 1e9;
/** Known memory bandwidths (GB/s) by adapter description substring, for the fraction column. */
const KNOWN_PEAK_GBPS: Array<[RegExp, number]> = [[/H200/i, 4800], [/H100.*PCIe/i, 2000], [/H100/i, 3350], [/A100/i, 2039], [/L4\b/i, 300]];


interface Variant { name: string; splits: number; tuning: AttentionTuning }

interface Row {
  variant: string;
  format: Format;
  tokensPerLane: number;
  lanes: number;
  pagesPerLane: number;
  bytes: number;
  gpuMs: number;
  gpuMsMean: number;
  gpuGBps: number;
  maxRelErrVsRef: number;
  gpuFractionOfPeak: number | null;
  cpuMs: number | null;
  cpuGBps: number | null;
  maxAbsDiffVsCpu: number | null;
  iterations: number;
}

function parse(argv: string[]) {
  const o = { tokens: [4096, 16384, 65536, 262144], formats: ['f16', 'int4'] as Format[], lanes: 8, group: 4, headDim: 128, splits: 1024, variants: 'default', rounds: 3, minMs: 300, cpu: true, peak: null as number | null, out: '', revision: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    if (a === '--tokens') o.tokens = v().split(',').map(Number);
    else if (a === '--formats') o.formats = v().split(',') as Format[];
    else if (a === '--lanes') o.lanes = Number(v());
    else if (a === '--group') o.group = Number(v());
    else if (a === '--head-dim') o.headDim = Number(v());
    else if (a === '--splits') o.splits = Number(v());
    else if (a === '--variants') o.variants = v();
    else if (a === '--rounds') o.rounds = Number(v());
    else if (a === '--min-ms') o.minMs = Number(v());
    else if (a === '--cpu') o.cpu = true;
    else if (a === '--no-cpu') o.cpu = false;
    else if (a === '--peak-gbps') o.peak = Number(v());
    else if (a === '--out') o.out = v();
    else if (a === '--revision') o.revision = v();
    else throw new Error(`unknown flag ${a}; see the header of bench/webgpu.ts`);
  }
  for (const f of o.formats) if (!FORMATS.includes(f)) throw new Error(`--formats: ${f} is not one of ${FORMATS.join(', ')}`);
  for (const t of o.tokens) if (!Number.isInteger(t) || t < 1) throw new Error(`--tokens: ${t} is not a positive integer`);
  return o;
}

function parseVariants(spec: string, splits: number): Variant[] {
  return spec.split(';').map((name) => {
    const v: Variant = { name, splits, tuning: {} };
    if (name === 'default') return v;
    for (const kv of name.split(',')) {
      const [k, x] = kv.split('=');
      const n = Number(x);
      if (k === 'splits') v.splits = n;
      else if (k === 'w') v.tuning.wordsPerThread = n;
      else if (k === 'rg') v.tuning.rowGroups = n;
      else if (k === 'hpp') v.tuning.headsPerPass = n;
      else if (k === 'pf') v.tuning.prefetch = n !== 0;
      else throw new Error(`--variants: unknown key ${k} in "${name}"`);
    }
    return v;
  });
}

/** Largest iteration count per command buffer. */
const MAX_ITERATIONS = 20000;
/** GPU busy time right before the timed calls of each measurement (same command buffer). */
const WARMUP_MS = 150;

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s / 2 ** 32) * 2 - 1; };
}

async function main(): Promise<void> {
  const o = parse(args());
  const log = (s: string) => console.error(s);
  const { gpu, source } = await findGpu();
  const ctx = await createWebGPUContext({ gpu, onNotice: log, optionalFeatures: ['timestamp-query'] });
  let timer = 'wall clock: (T(2N) - T(N)) / N from submit to onSubmittedWorkDone';
  const desc = `${ctx.adapter.vendor} ${ctx.adapter.architecture} ${ctx.adapter.device} ${ctx.adapter.description}`.replace(/\s+/g, ' ').trim();
  const peak = o.peak ?? KNOWN_PEAK_GBPS.find(([re]) => re.test(desc))?.[1] ?? null;
  log(`adapter: ${desc} via ${source}; maxStorageBufferBindingSize ${ctx.limits.maxStorageBufferBindingSize}, maxBufferSize ${ctx.limits.maxBufferSize}${peak ? `; peak ${peak} GB/s` : ''}`);
  const d = o.headDim, G = o.group, vg = Math.min(32, d);
  const rand = rng(1);
  const engine = o.cpu ? await createEngine() : null;
  const rows: Row[] = [];
  const variants = parseVariants(o.variants, o.splits);
  for (const format of o.formats) {
    const pb = pageBytes(format, d, vg);
    const distinct: Uint8Array[] = [];
    for (let i = 0; i < DISTINCT_PAGES; i++) {
      const k = new Float32Array(PAGE_TOKENS * d).map(() => 2 * rand()), v = new Float32Array(PAGE_TOKENS * d).map(rand);
      distinct.push(encodePage(format, d, vg, PAGE_TOKENS, k, v));
    }
    for (const tokens of o.tokens) {
      const pagesPerLane = Math.ceil(tokens / PAGE_TOKENS);
      const bytes = pagesPerLane * o.lanes * pb;
      const q = new Float32Array(o.lanes * G * d).map(rand);
      const pageOf = (l: number, p: number) => distinct[(p + 7 * l) % DISTINCT_PAGES];
      const countOf = (p: number) => (p === pagesPerLane - 1 ? tokens - p * PAGE_TOKENS : PAGE_TOKENS);
      // float64 reference for lane 0
      const decoded: DecodedPage[] = [];
      for (let p = 0; p < pagesPerLane; p++) decoded.push(decodePage(format, d, vg, countOf(p), pageOf(0, p)));
      const ref = referenceAttention(decoded, q.subarray(0, G * d), G, d, 1 / Math.sqrt(d));
      let refMax = 0;
      for (const x of ref.out) refMax = Math.max(refMax, Math.abs(x));
      let cpu: { ms: number; out: Float32Array } | null = null;
      if (engine) {
        const w = new WasmPagedAttention(engine, { headDim: d, groupSize: G, valueGroup: vg });
        try {
          const wl: number[] = [];
          for (let l = 0; l < o.lanes; l++) {
            const lane = w.createLane();
            for (let p = 0; p < pagesPerLane; p++) w.writePage(lane, p, format, pageOf(l, p), countOf(p));
            wl.push(lane);
          }
          const r = w.attendSync(wl, q);
          let reps = 0;
          const t0 = performance.now();
          while (reps < 3 || performance.now() - t0 < o.minMs) { w.attendSync(wl, q); reps++; }
          cpu = { ms: (performance.now() - t0) / reps, out: r.out.slice() };
        } catch (e) {
          log(`  cpu ${format} ${tokens}: ${(e as Error).message}`);
        } finally {
          w.destroy();
        }
      }
      // every variant resident at once; measured in interleaved rounds after a GPU warm-up,
      // best round kept (a GPU that idled between groups, or a noisy neighbour, shows up as
      // a slow round, not as a slow variant)
      const runs: Array<{ variant: Variant; attn: WebGPUAttention; lanes: number[]; err: number; out: Float32Array; n: number; warmup: number; best: number; mean: number }> = [];
      try {
        for (const variant of variants) {
          const attn = await createWebGPUAttention({ context: ctx, headDim: d, groupSize: G, valueGroup: vg, targetSplits: variant.splits, tuning: variant.tuning });
          runs.push({ variant, attn, lanes: [], err: 0, out: new Float32Array(0), n: 4, warmup: 0, best: Infinity, mean: Infinity });
          const r = runs[runs.length - 1];
          await attn.reserve(format, pagesPerLane * o.lanes);
          for (let l = 0; l < o.lanes; l++) {
            const lane = attn.createLane();
            for (let p = 0; p < pagesPerLane; p++) attn.writePage(lane, p, format, pageOf(l, p), countOf(p));
            r.lanes.push(lane);
          }
          const got = await attn.attend(r.lanes, q);
          r.out = got.out;
          for (let i = 0; i < G * d; i++) r.err = Math.max(r.err, Math.abs(got.out[i] - ref.out[i]) / refMax);
          // N calls take about minMs / 2
          const span = async (n: number) => { const t = await attn.timeAttend(r.lanes, q, n); return t.gpuMs ?? t.wallMs; };
          let tn = await span(r.n);
          while (tn < o.minMs / 2 && r.n < MAX_ITERATIONS) {
            r.n = Math.min(MAX_ITERATIONS, Math.ceil(r.n * Math.min(16, Math.max(2, o.minMs / 2 / Math.max(tn, 1e-3)))));
            tn = await span(r.n);
          }
          r.warmup = Math.min(MAX_ITERATIONS, Math.ceil((r.n * WARMUP_MS) / Math.max(tn, 1e-3)));
        }
        for (let round = 0; round < o.rounds; round++) {
          for (const r of runs) {
            // one command buffer: WARMUP_MS of calls, then N timed calls (GPU timestamps)
            const t = await r.attn.timeAttend(r.lanes, q, r.n, undefined, r.warmup);
            r.mean = Math.min(r.mean, t.wallMs / (r.warmup + r.n));
            if (t.gpuMs !== null) {
              timer = 'gpu timestamps';
              r.best = Math.min(r.best, t.gpuMs / r.n);
            } else {
              const tn = (await r.attn.timeAttend(r.lanes, q, r.n)).wallMs;
              const t2n = (await r.attn.timeAttend(r.lanes, q, 2 * r.n)).wallMs;
              const slope = (t2n - tn) / r.n;
              if (slope > 0) r.best = Math.min(r.best, slope);
            }
          }
        }
      } finally {
        for (const r of runs) r.attn.destroy();
      }
      for (const r of runs) {
        const gpuMs = Number.isFinite(r.best) ? r.best : r.mean;
        const row: Row = {
          variant: r.variant.name, format, tokensPerLane: tokens, lanes: o.lanes, pagesPerLane, bytes, gpuMs, gpuMsMean: r.mean, gpuGBps: bytes / GB / (gpuMs / 1e3),
          maxRelErrVsRef: r.err, gpuFractionOfPeak: null, cpuMs: null, cpuGBps: null, maxAbsDiffVsCpu: null, iterations: r.n,
        };
        if (peak) row.gpuFractionOfPeak = row.gpuGBps / peak;
        if (cpu) {
          row.cpuMs = cpu.ms;
          row.cpuGBps = bytes / GB / (cpu.ms / 1e3);
          let diff = 0;
          for (let i = 0; i < cpu.out.length; i++) diff = Math.max(diff, Math.abs(cpu.out[i] - r.out[i]));
          row.maxAbsDiffVsCpu = diff;
        }
        rows.push(row);
        log(`${r.variant.name.padEnd(12)} ${format.padEnd(4)} ${String(tokens).padStart(7)} tok x ${o.lanes} lanes ${(bytes / 2 ** 20).toFixed(1).padStart(8)} MiB  gpu ${(row.gpuMs * 1e3).toFixed(1).padStart(8)} us (mean ${(row.gpuMsMean * 1e3).toFixed(1)}) ${row.gpuGBps.toFixed(1).padStart(7)} GB/s${row.gpuFractionOfPeak !== null ? ` (${(100 * row.gpuFractionOfPeak).toFixed(1)}%)` : ''} err ${row.maxRelErrVsRef.toExponential(1)}` +
          (row.cpuMs !== null ? `  wasm ${row.cpuMs.toFixed(3)} ms ${row.cpuGBps!.toFixed(2)} GB/s |gpu-wasm| ${row.maxAbsDiffVsCpu!.toExponential(1)}` : ''));
      }
    }
  }
  const report = {
    suite: 'webgpu-attention',
    date: new Date().toISOString(),
    runtime: runtimeName(),
    gpuSource: source,
    adapter: ctx.adapter,
    peakGBps: peak,
    limits: { maxStorageBufferBindingSize: ctx.limits.maxStorageBufferBindingSize, maxBufferSize: ctx.limits.maxBufferSize, maxComputeWorkgroupStorageSize: ctx.limits.maxComputeWorkgroupStorageSize },
    cpuThreads: (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? null,
    revision: o.revision || await gitRevision(),
    config: { headDim: d, groupSize: G, valueGroup: vg, lanes: o.lanes, targetSplits: o.splits, variants: variants.map((v) => v.name), minMs: o.minMs, rounds: o.rounds, timing: `${timer}; best of the interleaved rounds; each measurement preceded by ${WARMUP_MS} ms of calls in the same command buffer` },
    results: rows,
  };
  ctx.destroy();
  log(`wrote ${await writeReport(report, o.out, `webgpu-${report.date.slice(0, 10)}.json`)}`);
}

await main();

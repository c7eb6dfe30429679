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
 *   --cpu / --no-cpu [--cpu]           also time the WASM kernels (wasm-simd) on the same pages
 *   --peak-gbps N                      the GPU's memory bandwidth, for the fraction column
 *   --out FILE                         JSON path [bench/results/webgpu-<date>.json]
 *
 * GB/s = bytes of the pages attended (payload + scales + minima + log-weights +
 * positions) / time per call. Time per call: N and 2N calls are encoded into one command
 * buffer each (encoding not timed), submitted, and timed from submit to
 * onSubmittedWorkDone; per call = (T(2N) - T(N)) / N, which removes the fixed
 * submit/completion latency (`gpuMsMean` = T(2N) / 2N keeps it). Pages are a cycle of 64
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
import { WasmPagedAttention } from '../src/webgpu/backend.ts';
import { decodePage, encodePage, referenceAttention } from '../src/webgpu/pagecodec.ts';
import type { DecodedPage } from '../src/webgpu/pagecodec.ts';
import type { AttentionTuning } from '../src/webgpu/wgsl.ts';
import type { Gpu } from '../src/webgpu/gpu-types.ts';

/** Distinct random pages per format (cycled over the lanes). */
const DISTINCT_PAGES = 64;
/** Bytes in a GB (decimal, as bandwidth specs use). */
const GB = 1e9;
/** Known memory bandwidths (GB/s) by adapter description substring, for the fraction column. */
const KNOWN_PEAK_GBPS: Array<[RegExp, number]> = [[/H200/i, 4800], [/H100.*PCIe/i, 2000], [/H100/i, 3350], [/A100/i, 2039], [/L4\b/i, 300]];

declare const Deno: { args: string[]; version: { deno: string }; build: { os: string; arch: string } } | undefined;

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

function args(): string[] {
  if (typeof Deno !== 'undefined') return Deno.args;
  return (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
}

function parse(argv: string[]) {
  const o = { tokens: [4096, 16384, 65536, 262144], formats: ['f16', 'int4'] as Format[], lanes: 8, group: 4, headDim: 128, splits: 1024, variants: 'default', minMs: 300, cpu: true, peak: null as number | null, out: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    if (a === '--tokens') o.tokens = v().split(',').map(Number);
    else if (a === '--formats') o.formats = v().split(',') as Format[];
    else if (a === '--lanes') o.lanes = Number(v());
    else if (a === '--group') o.group = Number(v());
    else if (a === '--head-dim') o.headDim = Number(v());
    else if (a === '--splits') o.splits = Number(v());
    else if (a === '--variants') o.variants = v();
    else if (a === '--min-ms') o.minMs = Number(v());
    else if (a === '--cpu') o.cpu = true;
    else if (a === '--no-cpu') o.cpu = false;
    else if (a === '--peak-gbps') o.peak = Number(v());
    else if (a === '--out') o.out = v();
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

async function findGpu(): Promise<{ gpu: Gpu | undefined; source: string }> {
  const nav = (globalThis as { navigator?: { gpu?: Gpu } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, source: 'navigator.gpu' };
  try {
    const name = 'webgpu';
    const m = (await import(name)) as { create: (f: string[]) => Gpu };
    return { gpu: m.create([]), source: 'webgpu (Dawn, npm)' };
  } catch (e) {
    return { gpu: undefined, source: `none (${(e as Error).message.split('\n')[0]})` };
  }
}

async function gitRevision(): Promise<string> {
  try {
    const fs = await import('node:fs/promises');
    const head = (await fs.readFile(new URL('../.git/HEAD', import.meta.url), 'utf8')).trim();
    if (!head.startsWith('ref: ')) return head;
    return (await fs.readFile(new URL(`../.git/${head.slice(5)}`, import.meta.url), 'utf8')).trim();
  } catch {
    return 'unknown';
  }
}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s / 2 ** 32) * 2 - 1; };
}

async function main(): Promise<void> {
  const o = parse(args());
  const log = (s: string) => console.error(s);
  const { gpu, source } = await findGpu();
  const ctx = await createWebGPUContext({ gpu, onNotice: log });
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
      for (const variant of variants) {
        const gpuAttn = await createWebGPUAttention({ context: ctx, headDim: d, groupSize: G, valueGroup: vg, targetSplits: variant.splits, tuning: variant.tuning });
        let row: Row;
        try {
          await gpuAttn.reserve(format, pagesPerLane * o.lanes);
          const lanes: number[] = [];
          for (let l = 0; l < o.lanes; l++) {
            const lane = gpuAttn.createLane();
            for (let p = 0; p < pagesPerLane; p++) gpuAttn.writePage(lane, p, format, pageOf(l, p), countOf(p));
            lanes.push(lane);
          }
          const got = await gpuAttn.attend(lanes, q);
          let err = 0;
          for (let i = 0; i < G * d; i++) err = Math.max(err, Math.abs(got.out[i] - ref.out[i]) / refMax);
          // calibrate N so that N calls take about minMs / 2, then time N and 2N
          let n = 4, tn = await gpuAttn.timeAttend(lanes, q, n);
          while (tn < o.minMs / 2 && n < MAX_ITERATIONS) {
            n = Math.min(MAX_ITERATIONS, Math.ceil(n * Math.min(16, Math.max(2, o.minMs / 2 / Math.max(tn, 1e-3)))));
            tn = await gpuAttn.timeAttend(lanes, q, n);
          }
          const t2n = await gpuAttn.timeAttend(lanes, q, 2 * n);
          const mean = t2n / (2 * n);
          const slope = (t2n - tn) / n;
          const gpuMs = slope > 0 ? slope : mean;
          row = {
            variant: variant.name, format, tokensPerLane: tokens, lanes: o.lanes, pagesPerLane, bytes, gpuMs, gpuMsMean: mean, gpuGBps: bytes / GB / (gpuMs / 1e3),
            maxRelErrVsRef: err, gpuFractionOfPeak: null, cpuMs: null, cpuGBps: null, maxAbsDiffVsCpu: null, iterations: n,
          };
          if (peak) row.gpuFractionOfPeak = row.gpuGBps / peak;
          if (cpu) {
            row.cpuMs = cpu.ms;
            row.cpuGBps = bytes / GB / (cpu.ms / 1e3);
            let diff = 0;
            for (let i = 0; i < cpu.out.length; i++) diff = Math.max(diff, Math.abs(cpu.out[i] - got.out[i]));
            row.maxAbsDiffVsCpu = diff;
          }
        } finally {
          gpuAttn.destroy();
        }
        rows.push(row);
        log(`${variant.name.padEnd(12)} ${format.padEnd(4)} ${String(tokens).padStart(7)} tok x ${o.lanes} lanes ${(bytes / 2 ** 20).toFixed(1).padStart(8)} MiB  gpu ${(row.gpuMs * 1e3).toFixed(1).padStart(8)} us (mean ${(row.gpuMsMean * 1e3).toFixed(1)}) ${row.gpuGBps.toFixed(1).padStart(7)} GB/s${row.gpuFractionOfPeak !== null ? ` (${(100 * row.gpuFractionOfPeak).toFixed(1)}%)` : ''} err ${row.maxRelErrVsRef.toExponential(1)}` +
          (row.cpuMs !== null ? `  wasm ${row.cpuMs.toFixed(3)} ms ${row.cpuGBps!.toFixed(2)} GB/s |gpu-wasm| ${row.maxAbsDiffVsCpu!.toExponential(1)}` : ''));
      }
    }
  }
  const report = {
    suite: 'webgpu-attention',
    date: new Date().toISOString(),
    runtime: typeof Deno !== 'undefined' ? `deno ${Deno.version.deno} ${Deno.build.os}-${Deno.build.arch}` : `node ${(globalThis as unknown as { process: { version: string } }).process.version}`,
    gpuSource: source,
    adapter: ctx.adapter,
    peakGBps: peak,
    limits: { maxStorageBufferBindingSize: ctx.limits.maxStorageBufferBindingSize, maxBufferSize: ctx.limits.maxBufferSize, maxComputeWorkgroupStorageSize: ctx.limits.maxComputeWorkgroupStorageSize },
    cpuThreads: (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? null,
    revision: await gitRevision(),
    config: { headDim: d, groupSize: G, valueGroup: vg, lanes: o.lanes, targetSplits: o.splits, variants: variants.map((v) => v.name), minMs: o.minMs, timing: 'per call = (T(2N) - T(N)) / N, T from submit to onSubmittedWorkDone' },
    results: rows,
  };
  ctx.destroy();
  const fs = await import('node:fs/promises');
  const out = o.out || new URL(`./results/webgpu-${report.date.slice(0, 10)}.json`, import.meta.url);
  await fs.mkdir(new URL('./results/', import.meta.url), { recursive: true });
  await fs.writeFile(out, JSON.stringify(report, null, 2) + '\n');
  console.log(JSON.stringify(report));
  log(`wrote ${out instanceof URL ? out.pathname : out}`);
}

await main();

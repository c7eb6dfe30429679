/**
 * The attention benchmark (`edgekv bench attention`): decode attention of one GQA group
 * (G = 4 query heads over one KV head) for 1K..64K tokens, head dims 64 and 128, in every
 * storage format, side by side in one run:
 *
 * - `wasm-simd`   the kernels (assembly/kernels/attention.ts), SIMD build
 * - `wasm-scalar` the same source, scalar build
 * - `ts`          a plain TypeScript implementation of the same math over typed arrays,
 *                 written the obvious fast way (two passes: logits, then softmax-weighted
 *                 values); for f16 a 65536-entry decode table, for packed formats the same
 *                 page bytes dequantized on the fly
 *
 * plus a copy-bandwidth probe (a typed-array copy of a 256 MiB buffer, larger than the
 * last-level cache), so each figure is also a fraction of the machine's memory bandwidth.
 * `gbPerSec` counts the bytes of KV the call reads, pages counted as stored (payload,
 * scales, minima, log-weights, positions); `copyGBps` counts bytes copied per second.
 *
 * The library prints nothing here: it returns data. tinybench is a dev dependency and is
 * imported lazily.
 */
import { createEngine, type Engine } from '../engine.ts';
import { machine, revision, runtimeName } from './env.ts';
import { FORMATS, FORMAT_CODE, PAGE_TOKENS, PAYLOAD_OFFSET, packedOffsets, pageBytes, type Format } from '../formats.ts';
import { packLane, type PagedLane } from '../ops/attention.ts';
import { EdgeKVError } from '../errors.ts';
import { mulberry32 as rng } from '../model/sampling.ts';

/** Implementations measured. */
export const IMPLS = ['wasm-simd', 'wasm-scalar', 'ts'] as const;
export type Impl = (typeof IMPLS)[number];

/** Query heads per KV head in every measurement. */
export const BENCH_GROUP = 4;
/** Full grid. */
export const FULL_TOKENS = [1024, 4096, 16384, 65536];
export const FULL_HEAD_DIMS = [64, 128];
/** `--quick` grid (under a minute on a 2-core machine). */
export const QUICK_TOKENS = [4096, 16384];
export const QUICK_HEAD_DIMS = [128];
/** Copy probe size: larger than any last-level cache we expect. */
export const COPY_PROBE_BYTES = 256 * 2 ** 20;
/** Time per task in ms (full / quick). */
const TASK_TIME_MS = 400;
const QUICK_TASK_TIME_MS = 120;
/** Minimum timed iterations per task. */
const MIN_ITERATIONS = 4;
/** Warm-up per engine, format and head dim (tier-up of the WebAssembly code). */
const WARMUP_TOKENS = 2048;
const WARMUP_MS = 150;

export interface AttentionBenchOptions {
  /** Reduced grid (default false). */
  quick?: boolean;
  /** Override the token counts. */
  tokens?: number[];
  /** Override the head dims. */
  headDims?: number[];
  /** Formats (default all five). */
  formats?: Format[];
  /** Implementations (default all three). */
  impls?: Impl[];
  /** Time per task in ms. */
  timeMs?: number;
  /** Progress callback (one line per measurement). */
  onProgress?: (line: string) => void;
  /**
   * 'cpu' (default where process.cpuUsage exists): time is this process's CPU time, so that
   * other load on a shared machine does not count against long iterations (the TypeScript
   * ones) more than short ones; 'wall': performance.now().
   */
  clock?: 'cpu' | 'wall';
}

/** A ms clock of this process's CPU time, where the runtime offers one. */
function cpuClock(): (() => number) | undefined {
  const p = (globalThis as unknown as { process?: { cpuUsage?: () => { user: number; system: number } } }).process;
  if (!p || typeof p.cpuUsage !== 'function') return undefined;
  const usage = p.cpuUsage.bind(p);
  return () => { const u = usage(); return (u.user + u.system) / 1000; };
}

export interface AttentionBenchRow {
  impl: Impl;
  format: Format;
  tokens: number;
  headDim: number;
  /** Context tokens attended per second (one decode step of G query heads). */
  tokensPerSec: number;
  /** KV bytes read per second, pages as stored. */
  gbPerSec: number;
  /** gbPerSec / copyGBps. */
  fractionOfCopy: number;
  /** Median latency of one call (one decode step of G heads over `tokens` entries), ms. */
  latencyMs: number;
  /** Mean latency of one call, ms. */
  latencyMeanMs: number;
  /** KV bytes one call reads (pages as stored). */
  kvBytes: number;
}

export interface AttentionBenchReport {
  copyGBps: number;
  results: AttentionBenchRow[];
  runtime: string;
  revision: string;
  date: string;
  machine: { cpu: string; cores: number; arch: string };
  config: { group: number; tokens: number[]; headDims: number[]; formats: Format[]; quick: boolean; clock: 'cpu' | 'wall'; statistic: 'median' };
}

// ---------------------------------------------------------------------------------
// Data

function gaussian(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-12), v = r();
    const m = Math.sqrt(-2 * Math.log(u));
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

// ---------------------------------------------------------------------------------
// Plain TypeScript attention (the obvious way)

const HALF_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    t[h] = e === 0x1f ? (m ? NaN : s * Infinity) : e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

/** Softmax over `logits[h*n + e]` in place, then out[h] = sum_e p * v_e via `axpy(h, e, p)`. */
function softmaxRows(logits: Float32Array, G: number, n: number): void {
  for (let h = 0; h < G; h++) {
    const o = h * n;
    let m = -Infinity;
    for (let e = 0; e < n; e++) if (logits[o + e] > m) m = logits[o + e];
    let l = 0;
    for (let e = 0; e < n; e++) { const p = Math.exp(logits[o + e] - m); logits[o + e] = p; l += p; }
    const inv = 1 / l;
    for (let e = 0; e < n; e++) logits[o + e] *= inv;
  }
}

interface TsLane { run(q: Float32Array, out: Float32Array): void }

// The TypeScript kernels are plain top-level functions taking every array as a parameter:
// V8 optimizes them once and reuses the code for every size (closures over per-size data
// measured up to 2x slower after the first size).

/** f32 keys/values `[n][d]`: logits, softmax, weighted sum. */
export function tsAttendF32(keys: Float32Array, values: Float32Array, logW: Float32Array, n: number, d: number, G: number, scale: number, q: Float32Array, out: Float32Array, logits: Float32Array): void {
  for (let h = 0; h < G; h++) {
    const qo = h * d;
    for (let e = 0; e < n; e++) {
      const ko = e * d;
      let s = 0;
      for (let c = 0; c < d; c++) s += q[qo + c] * keys[ko + c];
      logits[h * n + e] = scale * s + logW[e];
    }
  }
  softmaxRows(logits, G, n);
  out.fill(0);
  for (let h = 0; h < G; h++) {
    const oo = h * d;
    for (let e = 0; e < n; e++) {
      const p = logits[h * n + e], vo = e * d;
      for (let c = 0; c < d; c++) out[oo + c] += p * values[vo + c];
    }
  }
}

/** f16 keys/values (binary16 bits) decoded through a 65536-entry table. */
export function tsAttendF16(keys: Uint16Array, values: Uint16Array, logW: Float32Array, n: number, d: number, G: number, scale: number, q: Float32Array, out: Float32Array, logits: Float32Array, T: Float32Array): void {
  for (let h = 0; h < G; h++) {
    const qo = h * d;
    for (let e = 0; e < n; e++) {
      const ko = e * d;
      let s = 0;
      for (let c = 0; c < d; c++) s += q[qo + c] * T[keys[ko + c]];
      logits[h * n + e] = scale * s + logW[e];
    }
  }
  softmaxRows(logits, G, n);
  out.fill(0);
  for (let h = 0; h < G; h++) {
    const oo = h * d;
    for (let e = 0; e < n; e++) {
      const p = logits[h * n + e], vo = e * d;
      for (let c = 0; c < d; c++) out[oo + c] += p * T[values[vo + c]];
    }
  }
}

/** Packed pages (the kernels' own bytes, concatenated), each code dequantized on the fly. */
export function tsAttendPacked(pages: Uint8Array, u16: Uint16Array, f32: Float32Array, stride: number, counts: number[], o: ReturnType<typeof packedOffsets>, vg: number, n: number, d: number, G: number, scale: number, q: Float32Array, out: Float32Array, logits: Float32Array, T: Float32Array): void {
  const { bits, R, ng } = o;
  const P = 8 / bits, mask = (1 << bits) - 1;
  let e0 = 0;
  for (let pg = 0; pg < counts.length; pg++) {
    const base = pg * stride, cnt = counts[pg];
    const ks = (base + o.kScale) >> 1, km = (base + o.kMin) >> 1;
    for (let h = 0; h < G; h++) {
      const qo = h * d;
      for (let t = 0; t < cnt; t++) {
        const row = base + o.kCodes + t * R;
        let s = 0;
        for (let j = 0; j < R; j++) {
          const b = pages[row + j];
          for (let k = 0; k < P; k++) {
            const c = j + k * R;
            s += q[qo + c] * (T[u16[km + c]] + T[u16[ks + c]] * ((b >> (k * bits)) & mask));
          }
        }
        logits[h * n + e0 + t] = scale * s + f32[(base >> 2) + t];
      }
    }
    e0 += cnt;
  }
  softmaxRows(logits, G, n);
  out.fill(0);
  e0 = 0;
  for (let pg = 0; pg < counts.length; pg++) {
    const base = pg * stride, cnt = counts[pg];
    for (let t = 0; t < cnt; t++) {
      const row = base + o.vCodes + t * R;
      const gs = ((base + o.vScale) >> 1) + t * ng, gm = ((base + o.vMin) >> 1) + t * ng;
      for (let h = 0; h < G; h++) {
        const p = logits[h * n + e0 + t], oo = h * d;
        for (let j = 0; j < R; j++) {
          const b = pages[row + j];
          for (let k = 0; k < P; k++) {
            const c = j + k * R, g = (c / vg) | 0;
            out[oo + c] += p * (T[u16[gm + g]] + T[u16[gs + g]] * ((b >> (k * bits)) & mask));
          }
        }
      }
    }
    e0 += cnt;
  }
}

function tsLaneF32(keys: Float32Array, values: Float32Array, logW: Float32Array, n: number, d: number, G: number, scale: number): TsLane {
  const logits = new Float32Array(G * n);
  return { run: (q, out) => tsAttendF32(keys, values, logW, n, d, G, scale, q, out, logits) };
}

function tsLaneF16(keys: Uint16Array, values: Uint16Array, logW: Float32Array, n: number, d: number, G: number, scale: number): TsLane {
  const logits = new Float32Array(G * n);
  return { run: (q, out) => tsAttendF16(keys, values, logW, n, d, G, scale, q, out, logits, HALF_TABLE) };
}

function tsLanePacked(format: Format, pages: Uint8Array, nPages: number, counts: number[], n: number, d: number, vg: number, G: number, scale: number): TsLane {
  const o = packedOffsets(format, d, vg);
  const stride = pageBytes(format, d, vg);
  const u16 = new Uint16Array(pages.buffer, pages.byteOffset, pages.byteLength >> 1);
  const f32 = new Float32Array(pages.buffer, pages.byteOffset, pages.byteLength >> 2);
  const logits = new Float32Array(G * n);
  const used = counts.slice(0, nPages);
  return { run: (q, out) => tsAttendPacked(pages, u16, f32, stride, used, o, vg, n, d, G, scale, q, out, logits, HALF_TABLE) };
}

// ---------------------------------------------------------------------------------
// WASM lanes

interface WasmRun { run(): void; output(): Float32Array; free(): void }

function wasmRunner(e: Engine, lane: PagedLane, q: Float32Array, G: number, d: number, scale: number): WasmRun {
  const state = e.arena.alloc(4 * (2 * G + G * d));
  const qp = e.copyIn(q);
  const out = e.arena.alloc(4 * G * d);
  const lse = e.arena.alloc(4 * G);
  const k = e.kernels;
  const table = lane.table, nPages = lane.pageCount, fmt = FORMAT_CODE[lane.format], vg = lane.valueGroup;
  return {
    run() {
      k.attnInit(state, G, d);
      k.attendPages(table, nPages, fmt, d, vg, qp, G, scale, state, 0, 0);
      k.attnFinish(state, G, d, out, lse);
    },
    output: () => e.f32(out, G * d).slice(),
    free() { for (const p of [state, qp, out, lse]) e.arena.free(p); },
  };
}

/** Relative L2 difference of two outputs. */
function relDiff(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/** Implementations must agree (same math; packed SIMD pages differ by the 16-bit fixed point only). */
const AGREEMENT_TOLERANCE = 1e-3;

// ---------------------------------------------------------------------------------

type TinyBench = typeof import('tinybench');

async function loadTinybench(): Promise<TinyBench> {
  try {
    return (await import('tinybench')) as TinyBench;
  } catch {
    throw new EdgeKVError('E_BACKEND', 'the benchmarks need the dev dependency tinybench; run `npm install` in the package directory');
  }
}

/**
 * Latency of one call in ms: the median of tinybench's samples (robust to the time slices a
 * shared machine takes away), and the mean.
 */
async function measure(tb: TinyBench, fn: () => void, timeMs: number, now: (() => number) | undefined): Promise<{ median: number; mean: number }> {
  const bench = new tb.Bench({ time: timeMs, iterations: MIN_ITERATIONS, warmupTime: Math.min(100, timeMs / 2), warmupIterations: 2, ...(now ? { now } : {}) });
  bench.add('x', fn);
  await bench.run();
  const r = bench.tasks[0].result as { state: string; latency?: { mean: number; p50: number }; error?: Error };
  if (r.state !== 'completed' || !r.latency) throw new Error(`benchmark task failed: ${r.error?.message ?? r.state}`);
  return { median: r.latency.p50, mean: r.latency.mean };
}

/** Copy bandwidth: bytes copied per second over a 256 MiB typed-array copy (best of several). */
export async function copyBandwidth(tb: TinyBench, bytes = COPY_PROBE_BYTES, now?: () => number): Promise<number> {
  const src = new Uint8Array(bytes), dst = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 4096) src[i] = i & 0xff; // touch every page
  dst.set(src);
  const bench = new tb.Bench({ time: 500, iterations: 5, warmupIterations: 1, warmupTime: 0, ...(now ? { now } : {}) });
  bench.add('copy', () => { dst.set(src); });
  await bench.run();
  const r = bench.tasks[0].result as { state: string; latency?: { min: number; p50: number } };
  if (!r.latency) throw new Error('copy probe failed');
  return bytes / (r.latency.p50 / 1000) / 1e9;
}

/** Run the attention benchmark and return the report (prints nothing). */
export async function runAttentionBench(options: AttentionBenchOptions = {}): Promise<AttentionBenchReport> {
  const tb = await loadTinybench();
  const quick = !!options.quick;
  const tokensList = options.tokens ?? (quick ? QUICK_TOKENS : FULL_TOKENS);
  const headDims = options.headDims ?? (quick ? QUICK_HEAD_DIMS : FULL_HEAD_DIMS);
  const formats = options.formats ?? [...FORMATS];
  const impls = options.impls ?? [...IMPLS];
  const timeMs = options.timeMs ?? (quick ? QUICK_TASK_TIME_MS : TASK_TIME_MS);
  const progress = options.onProgress ?? (() => {});
  const G = BENCH_GROUP;

  const clock = options.clock ?? (cpuClock() ? 'cpu' : 'wall');
  const now = clock === 'cpu' ? cpuClock() : undefined;
  if (clock === 'cpu' && !now) throw new EdgeKVError('E_ARG', 'options.clock = "cpu" needs process.cpuUsage (Node, Bun); use "wall"', 'options.clock');
  const copyGBps = await copyBandwidth(tb, COPY_PROBE_BYTES, now);
  progress(`copy bandwidth: ${copyGBps.toFixed(2)} GB/s`);
  const engines: Partial<Record<Impl, Engine>> = {};
  if (impls.includes('wasm-simd')) engines['wasm-simd'] = await createEngine({ backend: 'wasm-simd' });
  if (impls.includes('wasm-scalar')) engines['wasm-scalar'] = await createEngine({ backend: 'wasm-scalar' });

  // Warm-up: V8 compiles WebAssembly with a baseline tier first and optimizes hot functions in
  // the background; run every format's kernels for a while so that no measurement sees the
  // baseline code.
  for (const e of Object.values(engines)) {
    if (!e) continue;
    for (const d of headDims) {
      const n = WARMUP_TOKENS;
      const keys = gaussian(n * d, 1), values = gaussian(n * d, 2);
      const q = gaussian(G * d, 3);
      for (const format of formats) {
        const lane = packLane(e, { format, headDim: d, valueGroup: Math.min(32, d), keys, values });
        const r = wasmRunner(e, lane, q, G, d, 1 / Math.sqrt(d));
        const t0 = performance.now();
        while (performance.now() - t0 < WARMUP_MS) r.run();
        r.free();
        lane.dispose();
      }
    }
  }

  const results: AttentionBenchRow[] = [];
  for (const d of headDims) {
    const vg = Math.min(32, d);
    const scale = 1 / Math.sqrt(d);
    const q = gaussian(G * d, 7 + d);
    const out = new Float32Array(G * d);
    for (const n of tokensList) {
      const keys = gaussian(n * d, n + d), values = gaussian(n * d, n + d + 1);
      const logW = new Float32Array(n);
      for (const format of formats) {
        const nPages = Math.ceil(n / PAGE_TOKENS);
        const kvBytes = nPages * pageBytes(format, d, vg);
        const lanes: Partial<Record<Impl, PagedLane>> = {};
        for (const impl of ['wasm-simd', 'wasm-scalar'] as const) {
          const e = engines[impl];
          if (e) lanes[impl] = packLane(e, { format, headDim: d, valueGroup: vg, keys, values, logWeights: logW });
        }
        let first: Float32Array | undefined;
        for (const impl of impls) {
          let fn: () => void;
          let getOutput: () => Float32Array;
          let cleanup = (): void => {};
          if (impl === 'ts') {
            let lane: TsLane;
            if (format === 'f32') lane = tsLaneF32(keys, values, logW, n, d, G, scale);
            else {
              // the TS version reads the same stored bytes as the kernels
              const src = lanes['wasm-simd'] ?? lanes['wasm-scalar'] ?? packLane(engines['wasm-simd'] ?? (engines['wasm-simd'] = await createEngine({ backend: 'wasm-simd' })), { format, headDim: d, valueGroup: vg, keys, values, logWeights: logW });
              const e = src.engine;
              const pb = pageBytes(format, d, vg);
              const table = e.i32(src.table, 2 * nPages).slice();
              const counts = Array.from({ length: nPages }, (_, i) => table[2 * i + 1]);
              const bytes = new Uint8Array(nPages * pb);
              for (let i = 0; i < nPages; i++) bytes.set(e.u8(table[2 * i], pb), i * pb);
              if (format === 'f16') {
                const kh = new Uint16Array(n * d), vh = new Uint16Array(n * d);
                const u16 = new Uint16Array(bytes.buffer);
                for (let i = 0; i < nPages; i++) {
                  const base = (i * pb + PAYLOAD_OFFSET) / 2;
                  const c = counts[i] * d;
                  kh.set(u16.subarray(base, base + c), i * PAGE_TOKENS * d);
                  vh.set(u16.subarray(base + PAGE_TOKENS * d, base + PAGE_TOKENS * d + c), i * PAGE_TOKENS * d);
                }
                lane = tsLaneF16(kh, vh, logW, n, d, G, scale);
              } else {
                lane = tsLanePacked(format, bytes, nPages, counts, n, d, vg, G, scale);
              }
            }
            fn = () => lane.run(q, out);
            getOutput = () => out.slice();
          } else {
            const e = engines[impl]!;
            const r = wasmRunner(e, lanes[impl]!, q, G, d, scale);
            fn = () => r.run();
            getOutput = () => r.output();
            cleanup = () => r.free();
          }
          fn();
          const result = getOutput();
          if (!first) first = result;
          else if (!(relDiff(result, first) <= AGREEMENT_TOLERANCE)) {
            throw new Error(`${impl} ${format} n=${n} d=${d} disagrees with ${impls[0]} (relative difference ${relDiff(result, first)})`);
          }
          const lat = await measure(tb, fn, timeMs, now);
          cleanup();
          const ms = lat.median;
          const row: AttentionBenchRow = {
            impl, format, tokens: n, headDim: d,
            tokensPerSec: n / (ms / 1000),
            gbPerSec: kvBytes / (ms / 1000) / 1e9,
            fractionOfCopy: 0,
            latencyMs: ms,
            latencyMeanMs: lat.mean,
            kvBytes,
          };
          row.fractionOfCopy = row.gbPerSec / copyGBps;
          results.push(row);
          progress(`${impl.padEnd(11)} ${format.padEnd(4)} d=${String(d).padEnd(3)} n=${String(n).padEnd(6)} ${(row.tokensPerSec / 1e6).toFixed(2).padStart(8)} Mtok/s ${row.gbPerSec.toFixed(2).padStart(7)} GB/s`);
        }
        for (const l of Object.values(lanes)) l?.dispose();
      }
    }
  }
  return {
    copyGBps,
    results,
    runtime: runtimeName(),
    revision: await revision(),
    date: new Date().toISOString(),
    machine: await machine(),
    config: { group: G, tokens: tokensList, headDims, formats, quick, clock, statistic: 'median' },
  };
}

/** A readable table of a report (one row per format x tokens x head dim, impls side by side). */
export function formatAttentionTable(report: AttentionBenchReport): string {
  const lines: string[] = [];
  lines.push(`decode attention, GQA group ${report.config.group}, ${report.runtime}, ${report.machine.cpu}, revision ${report.revision}`);
  lines.push(`copy bandwidth ${report.copyGBps.toFixed(2)} GB/s (256 MiB typed-array copy, bytes copied per second); ${report.config.clock === 'cpu' ? 'process CPU time' : 'wall time'}, median per call`);
  lines.push('');
  const head = ['format', 'd', 'tokens', 'simd Mtok/s', 'simd GB/s', '% copy', 'scalar Mtok/s', 'ts Mtok/s', 'simd/ts', 'simd/scalar'];
  const rows: string[][] = [head];
  const key = (r: AttentionBenchRow) => `${r.format}|${r.headDim}|${r.tokens}`;
  const groups = new Map<string, Partial<Record<Impl, AttentionBenchRow>>>();
  for (const r of report.results) {
    const g = groups.get(key(r)) ?? {};
    g[r.impl] = r;
    groups.set(key(r), g);
  }
  const f = (x: number | undefined, digits = 2) => (x === undefined ? '-' : x.toFixed(digits));
  for (const g of groups.values()) {
    const any = (g['wasm-simd'] ?? g['wasm-scalar'] ?? g.ts)!;
    const s = g['wasm-simd'], sc = g['wasm-scalar'], t = g.ts;
    rows.push([
      any.format, String(any.headDim), String(any.tokens),
      f(s && s.tokensPerSec / 1e6), f(s?.gbPerSec), s ? `${(100 * s.fractionOfCopy).toFixed(0)}%` : '-',
      f(sc && sc.tokensPerSec / 1e6), f(t && t.tokensPerSec / 1e6),
      s && t ? `${(s.tokensPerSec / t.tokensPerSec).toFixed(1)}x` : '-',
      s && sc ? `${(s.tokensPerSec / sc.tokensPerSec).toFixed(1)}x` : '-',
    ]);
  }
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) lines.push(r.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  return lines.join('\n');
}

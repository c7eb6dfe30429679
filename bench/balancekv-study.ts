/**
 * BalanceKV on synthetic clustered KV: relative attention-output error against uniform
 * sampling at compression 1/2 .. 1/16, paired over the paper's 10 seeds (arXiv 2502.07861,
 * Fig. 1 protocol: error ||ô - o|| / ||o|| of future queries, identical sinks, window and
 * kept count for both methods), with a study of gamma, temp, B, c0, centring, beta, mass
 * correction and the streaming mode in every regime. Real-model evidence comes later from the eval harness.
 *
 *   node --import tsx bench/balancekv-study.ts [--quick] [--json] [--regime I]
 *
 * --regime I runs only regime I (0-based) and writes balancekv-study-rI.json (to run the
 * regimes as parallel processes).
 *
 * Per (regime, seed): n = 4096 tokens, d = 64, sinks 32, window 32, 64 future queries.
 * Uniform keeps the same number of middle tokens, uniformly without replacement, with
 * weight n_mid / kept; sinks and window exact. Prints markdown tables and writes
 * bench/results/balancekv-study.json.
 */
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { createEngine } from '../src/engine.ts';
import { compressOneShot } from '../src/balancekv/compress.ts';
import type { WalkOptions } from '../src/balancekv/params.ts';
import { weightedAttention } from '../src/balancekv/reference.ts';
import { BalanceKVLane } from '../src/balancekv/streaming.ts';
import { clusteredKV, uniformSample, type ClusteredKVOptions, type SyntheticKV } from '../src/balancekv/synthetic.ts';
import { WasmWalker } from '../src/balancekv/walk.ts';

/** The seeds of the authors' single-layer notebook. */
const SEEDS = [42, 7, 8, 17, 98, 64, 27, 32, 81, 44];
const N = 4096, D = 64, SINKS = 32, WINDOW = 32, QUERIES = 64;
const LEVELS = [1, 2, 3, 4];

const { values: flags } = parseArgs({ options: { quick: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, regime: { type: 'string' } } });
const log = (s: string): void => { if (!flags.json) console.log(s); };
const seeds = flags.quick ? SEEDS.slice(0, 3) : SEEDS;

/** Synthetic regimes (see src/balancekv/synthetic.ts). */
const REGIMES: Array<{ name: string; data: Partial<ClusteredKVOptions> }> = [
  { name: 'broad attention (query norm 4)', data: { queryNorm: 4, valueNoise: 1 } },
  { name: 'peaked attention (query norm 10)', data: { queryNorm: 10, valueNoise: 2 } },
  { name: 'LLM-like norms (|k| ~ 14, |q| 15, |v| ~ 3)', data: { queryNorm: 15, valueNoise: 2 } },
];

/** Variants studied on the first regime; 'default' is the authors' LongBench setting. */
const VARIANTS: Array<{ name: string; walk: WalkOptions; stream?: boolean }> = [
  { name: 'default (gamma 4, temp 1, B 128)', walk: {} },
  { name: 'temp 0.1', walk: { temp: 0.1 } },
  { name: 'B 64', walk: { blockSize: 64 } },
  { name: 'B 256', walk: { blockSize: 256 } },
  { name: 'gamma 0.25', walk: { gamma: 0.25 } },
  { name: 'gamma 0 (random halving)', walk: { gamma: 0 } },
  { name: 'gamma 0 + mass correction', walk: { gamma: 0, massCorrection: true } },
  { name: 'c0 = 4 (~ mean |v|^2)', walk: { c0: 4 } },
  { name: 'centre real tokens', walk: { center: 'real' } },
  { name: 'no centring', walk: { center: 'none' } },
  { name: 'beta auto', walk: { beta: 'auto' } },
  { name: 'mass correction', walk: { massCorrection: true } },
  { name: 'stream mode (merge-and-reduce)', walk: {}, stream: true },
];

interface Exact { o: Float64Array; norm: Float64Array }

function exactOutputs(kv: SyntheticKV): Exact {
  const all = Int32Array.from({ length: kv.n }, (_, i) => i);
  const o = new Float64Array(kv.nq * kv.d), norm = new Float64Array(kv.nq);
  const out = new Float64Array(kv.d);
  for (let q = 0; q < kv.nq; q++) {
    weightedAttention(kv.queries.subarray(q * kv.d, (q + 1) * kv.d), kv.keys, kv.values, kv.d, all, null, out);
    o.set(out, q * kv.d);
    norm[q] = Math.max(Math.hypot(...out), 1e-8);
  }
  return { o, norm };
}

function relError(kv: SyntheticKV, ex: Exact, rows: Int32Array, logW: ArrayLike<number>): number {
  const out = new Float64Array(kv.d);
  let s = 0;
  for (let q = 0; q < kv.nq; q++) {
    weightedAttention(kv.queries.subarray(q * kv.d, (q + 1) * kv.d), kv.keys, kv.values, kv.d, rows, logW, out);
    let e = 0;
    for (let c = 0; c < kv.d; c++) e += (out[c] - ex.o[q * kv.d + c]) ** 2;
    s += Math.sqrt(e) / ex.norm[q];
  }
  return s / kv.nq;
}

const exactRange = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** Entries of a compressed middle plus exact sinks and window. */
function withExact(middleRows: ArrayLike<number>, middleLogW: ArrayLike<number>): { rows: Int32Array; logW: Float64Array } {
  const rows = Int32Array.from([...exactRange(0, SINKS), ...Array.from(middleRows), ...exactRange(N - WINDOW, N)]);
  const logW = Float64Array.from([...new Array(SINKS).fill(0), ...Array.from(middleLogW), ...new Array(WINDOW).fill(0)]);
  return { rows, logW };
}

const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
const std = (a: number[]): number => { const m = mean(a); return Math.sqrt(a.reduce((x, y) => x + (y - m) ** 2, 0) / Math.max(1, a.length - 1)); };

interface Cell { regime: string; variant: string; levels: number; ratio: string; kept: number; balancekv: number[]; uniform: number[]; ms: number[] }

async function main(): Promise<void> {
  const engine = await createEngine();
  const walker = new WasmWalker(engine);
  const middle = Int32Array.from(exactRange(SINKS, N - WINDOW));
  const cells: Cell[] = [];
  const only = flags.regime === undefined ? null : Number(flags.regime);
  for (let ri = 0; ri < REGIMES.length; ri++) {
    if (only !== null && ri !== only) continue;
    const regime = REGIMES[ri];
    const variants = VARIANTS;
    for (const seed of seeds) {
      const kv = clusteredKV({ n: N, d: D, seed, queries: QUERIES, ...regime.data });
      const ex = exactOutputs(kv);
      for (const T of LEVELS) {
        for (const v of variants) {
          let rows: Int32Array, logW: Float64Array, kept: number;
          const t0 = performance.now();
          if (v.stream) {
            const lane = new BalanceKVLane(walker, { headDim: D, levels: T, sinkTokens: SINKS, windowTokens: WINDOW, seed, ...v.walk });
            lane.append(kv.keys, kv.values);
            const e = lane.entries();
            rows = e.positions; logW = Float64Array.from(e.logWeights); kept = e.tiers.compressed;
          } else {
            const r = compressOneShot(walker, kv, middle, { levels: T, seed, ...v.walk });
            ({ rows, logW } = withExact(r.indices, r.logWeights)); kept = r.indices.length;
          }
          const ms = performance.now() - t0;
          const u = uniformSample(middle, kept, seed);
          const ue = withExact(u.indices, Array.from(u.weights, Math.log));
          let cell = cells.find((c) => c.regime === regime.name && c.variant === v.name && c.levels === T);
          if (!cell) { cell = { regime: regime.name, variant: v.name, levels: T, ratio: `1/${2 ** T}`, kept, balancekv: [], uniform: [], ms: [] }; cells.push(cell); }
          cell.balancekv.push(relError(kv, ex, rows, logW));
          cell.uniform.push(relError(kv, ex, ue.rows, ue.logW));
          cell.ms.push(ms);
        }
      }
    }
  }
  const summary = cells.map((c) => {
    const diff = c.balancekv.map((b, i) => b - c.uniform[i]);
    return {
      regime: c.regime, variant: c.variant, ratio: c.ratio, levels: c.levels, keptMiddle: c.kept,
      balancekv: { mean: mean(c.balancekv), std: std(c.balancekv) }, uniform: { mean: mean(c.uniform), std: std(c.uniform) },
      pairedDiff: { mean: mean(diff), std: std(diff) }, wins: diff.filter((x) => x < 0).length, seeds: diff.length,
      reduction: 1 - mean(c.balancekv) / mean(c.uniform), msPerCompression: mean(c.ms),
      perSeed: { balancekv: c.balancekv, uniform: c.uniform },
    };
  });
  for (const regime of REGIMES.filter((_, i) => only === null || i === only)) {
    log(`\n### ${regime.name}\n`);
    log('| variant | ratio | BalanceKV err (mean ± std) | uniform err | paired diff | wins | reduction |');
    log('|---|---|---|---|---|---|---|');
    for (const s of summary.filter((x) => x.regime === regime.name)) {
      log(`| ${s.variant} | ${s.ratio} | ${s.balancekv.mean.toFixed(4)} ± ${s.balancekv.std.toFixed(4)} | ${s.uniform.mean.toFixed(4)} ± ${s.uniform.std.toFixed(4)} | ${s.pairedDiff.mean.toFixed(4)} ± ${s.pairedDiff.std.toFixed(4)} | ${s.wins}/${s.seeds} | ${(100 * s.reduction).toFixed(1)}% |`);
    }
  }
  let revision = 'unknown';
  try { revision = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { /* not a checkout */ }
  const report = {
    bench: 'balancekv-study', setup: { n: N, d: D, sinks: SINKS, window: WINDOW, queries: QUERIES, seeds, regimes: REGIMES },
    summary, runtime: `node ${process.version}`, revision,
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, arch: process.arch }, date: new Date().toISOString(),
  };
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(new URL(`./results/balancekv-study${only === null ? '' : `-r${only}`}.json`, import.meta.url), JSON.stringify(report, null, 2));
  if (flags.json) console.log(JSON.stringify(report, null, 2));
}

await main();

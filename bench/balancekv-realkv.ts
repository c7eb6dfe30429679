/**
 * A first look at BalanceKV on real KV: the paper's single-layer protocol (arXiv
 * 2502.07861 Fig. 1) on keys/values/queries captured from ../shared/models/mix-27m.
 * For each text window, layer and KV head, the prefix of P = N - F tokens is compressed
 * (sinks and window exact, the middle by T halvings; uniform sampling of the same kept
 * count as the baseline) and the relative error ||ô - o|| / ||o|| of the F future queries
 * (all query heads of the group) is measured against exact attention over the prefix.
 * The complete evidence (perplexity, needles, all layers) is the eval harness's job.
 *
 *   node --import tsx bench/balancekv-realkv.ts [--tokens 2048] [--future 256] [--windows 5] [--layers 0,4,7]
 *   node --import tsx bench/balancekv-realkv.ts --share [--tokens 2048]
 *
 * --share instead times the model's prefill of one prompt (exact attention) against one-shot
 * BalanceKV compression (T = 2, wasm-simd) of every lane (layers x KV heads) of that prompt:
 * the compression's share of prefill time (issue 5 target: <= 5%).
 *
 * Writes bench/results/balancekv-realkv.json and prints a markdown table.
 */
import { execSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createEngine } from '../src/engine.ts';
import { compressOneShot } from '../src/balancekv/compress.ts';
import type { WalkOptions } from '../src/balancekv/params.ts';
import { weightedAttention } from '../src/balancekv/reference.ts';
import { uniformSample } from '../src/balancekv/synthetic.ts';
import { WasmWalker } from '../src/balancekv/walk.ts';
import { captureKV, textWindow, type EvalContext } from '../src/eval/harness.ts';
import { loadModel } from '../src/model/llama.ts';
import { missingModelMessage, resolveModelDir } from '../src/model/paths.ts';

const SINKS = 32, WINDOW = 32;
const LEVELS = [1, 2, 3, 4];
const VARIANTS: Array<{ name: string; walk: WalkOptions }> = [
  { name: 'default (gamma 4, temp 1, B 128)', walk: {} },
  { name: 'temp 0.1', walk: { temp: 0.1 } },
  { name: 'B 256', walk: { blockSize: 256 } },
];

const { values: flags } = parseArgs({
  options: { tokens: { type: 'string', default: '2048' }, future: { type: 'string', default: '256' }, windows: { type: 'string', default: '5' }, layers: { type: 'string', default: '0,4,7' }, model: { type: 'string' }, wasm: { type: 'string' }, share: { type: 'boolean', default: false } },
});

async function main(): Promise<void> {
  // --wasm FILE: a SIMD build to load instead of build/edgekv.simd.wasm
  const engine = await createEngine(flags.wasm ? { wasm: { simd: new URL(`file://${flags.wasm}`), scalar: new URL(`file://${flags.wasm}`) } } : {});
  const resolved = await resolveModelDir(undefined, flags.model);
  if (!resolved.exists) throw new Error(missingModelMessage(resolved));
  const dir = resolved.dir;
  const model = await loadModel(dir, { engine });
  const text = readFileSync(`${dir}/val_shared.txt`, 'utf8');
  const ctx = { model, text, options: {} } as unknown as EvalContext;
  const c = model.config, d = c.headDim, G = c.qHeads / c.kvHeads, kvDim = c.kvHeads * d, qDim = c.qHeads * d;
  if (flags.share) {
    const n = Number(flags.tokens);
    const ids = textWindow(ctx, 0, n);
    const att = model.createExactAttention({ initialCapacity: n + 8 });
    const t0 = performance.now();
    model.forward(ids, att);
    const prefillMs = performance.now() - t0;
    att.dispose();
    const cap = captureKV(model, ids, Array.from({ length: c.layers }, (_, i) => i));
    const w = new WasmWalker(engine);
    const mid = Int32Array.from({ length: n - SINKS - WINDOW }, (_, i) => SINKS + i);
    const lanes: Array<{ keys: Float32Array; values: Float32Array; d: number }> = [];
    for (let l = 0; l < c.layers; l++) for (let h = 0; h < c.kvHeads; h++) {
      const keys = new Float32Array(n * d), values = new Float32Array(n * d);
      for (let t = 0; t < n; t++) {
        keys.set(cap.keys[l].subarray(t * kvDim + h * d, t * kvDim + h * d + d), t * d);
        values.set(cap.values[l].subarray(t * kvDim + h * d, t * kvDim + h * d + d), t * d);
      }
      lanes.push({ keys, values, d });
    }
    compressOneShot(w, lanes[0], mid, { levels: 2 }); // warm-up
    const t1 = performance.now();
    for (const lane of lanes) compressOneShot(w, lane, mid, { levels: 2 });
    const compressMs = performance.now() - t1;
    console.log(JSON.stringify({ tokens: n, lanes: lanes.length, prefillMs, prefillTokensPerSec: n / (prefillMs / 1e3), compressMs, compressTokensPerSecPerLane: (lanes.length * mid.length) / (compressMs / 1e3), share: compressMs / prefillMs }));
    return;
  }
  const N = Number(flags.tokens), F = Number(flags.future), P = N - F, windows = Number(flags.windows);
  const layers = flags.layers.split(',').map(Number);
  const walker = new WasmWalker(engine);
  const middle = Int32Array.from({ length: P - SINKS - WINDOW }, (_, i) => SINKS + i);
  const exactRows = [...Array.from({ length: SINKS }, (_, i) => i), ...Array.from({ length: WINDOW }, (_, i) => P - WINDOW + i)];
  type Key = string;
  const acc = new Map<Key, { bkv: number[]; uni: number[] }>();
  for (let w = 0; w < windows; w++) {
    const ids = textWindow(ctx, w, N);
    const cap = captureKV(model, ids, layers);
    for (let li = 0; li < layers.length; li++) {
      for (let h = 0; h < c.kvHeads; h++) {
        // one lane: [P][d] keys and values of KV head h
        const keys = new Float32Array(P * d), values = new Float32Array(P * d);
        for (let t = 0; t < P; t++) {
          keys.set(cap.keys[li].subarray(t * kvDim + h * d, t * kvDim + h * d + d), t * d);
          values.set(cap.values[li].subarray(t * kvDim + h * d, t * kvDim + h * d + d), t * d);
        }
        const all = Int32Array.from({ length: P }, (_, i) => i);
        const queries: Float32Array[] = [], exact: Float64Array[] = [];
        for (let f = 0; f < F; f++) for (let g = 0; g < G; g++) {
          const qh = h * G + g;
          const q = cap.queries[li].subarray((P + f) * qDim + qh * d, (P + f) * qDim + qh * d + d);
          const o = new Float64Array(d);
          weightedAttention(q, keys, values, d, all, null, o);
          queries.push(q); exact.push(o);
        }
        const err = (rows: Int32Array, logW: ArrayLike<number>): number => {
          const out = new Float64Array(d);
          let s = 0;
          for (let i = 0; i < queries.length; i++) {
            weightedAttention(queries[i], keys, values, d, rows, logW, out);
            let num = 0, den = 0;
            for (let x = 0; x < d; x++) { num += (out[x] - exact[i][x]) ** 2; den += exact[i][x] ** 2; }
            s += Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-8);
          }
          return s / queries.length;
        };
        for (const T of LEVELS) {
          for (const v of VARIANTS) {
            const r = compressOneShot(walker, { keys, values, d }, middle, { levels: T, seed: w, stream: li * c.kvHeads + h, ...v.walk });
            const u = uniformSample(middle, r.indices.length, w * 31 + h);
            const rows = Int32Array.from([...exactRows, ...r.indices]);
            const lw = Float64Array.from([...exactRows.map(() => 0), ...Array.from(r.logWeights)]);
            const urows = Int32Array.from([...exactRows, ...u.indices]);
            const ulw = Float64Array.from([...exactRows.map(() => 0), ...Array.from(u.weights, Math.log)]);
            const key = `${layers[li]}|${v.name}|${T}`;
            if (!acc.has(key)) acc.set(key, { bkv: [], uni: [] });
            acc.get(key)!.bkv.push(err(rows, lw));
            acc.get(key)!.uni.push(err(urows, ulw));
          }
        }
      }
    }
    console.error(`window ${w + 1}/${windows} done`);
  }
  const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
  const summary = [...acc.entries()].map(([k, v]) => {
    const [layer, variant, T] = k.split('|');
    const wins = v.bkv.filter((x, i) => x < v.uni[i]).length;
    return { layer: Number(layer), variant, ratio: `1/${2 ** Number(T)}`, balancekv: mean(v.bkv), uniform: mean(v.uni), wins, pairs: v.bkv.length, reduction: 1 - mean(v.bkv) / mean(v.uni) };
  });
  console.log(`mix-27m, N = ${N} tokens, ${F} future queries, sinks ${SINKS}, window ${WINDOW}, ${windows} text windows x ${c.kvHeads} KV heads (pairs)\n`);
  console.log('| layer | variant | ratio | BalanceKV err | uniform err | wins | reduction |');
  console.log('|---|---|---|---|---|---|---|');
  for (const s of summary) console.log(`| ${s.layer} | ${s.variant} | ${s.ratio} | ${s.balancekv.toFixed(4)} | ${s.uniform.toFixed(4)} | ${s.wins}/${s.pairs} | ${(100 * s.reduction).toFixed(1)}% |`);
  let revision = 'unknown';
  try { revision = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { /* not a checkout */ }
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(new URL('./results/balancekv-realkv.json', import.meta.url), JSON.stringify({ bench: 'balancekv-realkv', setup: { model: dir, N, F, sinks: SINKS, window: WINDOW, windows, layers }, summary, revision, date: new Date().toISOString() }, null, 2));
}

await main();

/**
 * Model-runner decode on WebGPU: tokens/s of the same model over the same prompt with
 * (a) the sync WASM `generate`, (b) `generateAsync` without a GPU (the async path's own cost)
 * and (c) `generateAsync` after `useWebGPU` (single-token projections on the GPU), measured in
 * one run in interleaved rounds (best round kept), plus the time of one call of each
 * projection group (Q/K/V, O, gate/up, down, LM head: one submit + read-back on the GPU, one
 * kernel call on WASM) on random f16 weights of the model's shapes.
 *
 *   node --import tsx bench/runner-gpu.ts [flags]                 (the `webgpu` npm package)
 *   deno run -A --unstable-webgpu bench/runner-gpu.ts [flags]     (navigator.gpu)
 *
 * Node on a machine without a GPU needs Chromium's SwiftShader:
 * VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json. SwiftShader / llvmpipe numbers
 * are smoke numbers, never GPU performance.
 *
 * Flags (defaults in brackets):
 *   --model DIR     model directory [$EDGEKV_MODELS_DIR/mix-27m, else ../shared/models/mix-27m]
 *   --tokens N      greedy tokens generated per measurement [32]
 *   --rounds N      interleaved rounds over the three paths; the best is kept [3]
 *   --min-ms N      time per projection measurement [200]
 *   --json          print one JSON document (runtime, machine, revision, adapter, results)
 *   --out FILE      also write that JSON to FILE
 *
 * decode tokens/s = (generated tokens - 1) / time of the decode loop (`GenerateResult`); the
 * prompt's prefill runs on the WASM kernels in every path and is not counted. The greedy
 * tokens of each path are compared with the sync WASM path's: f16 checkpoints give the same
 * logits up to summation order; f32 / bf16 ones run on the GPU with weights rounded to f16,
 * so a long continuation may part at a near-tie.
 */
import { createEngine, type Engine } from '../src/engine.ts';
import { loadModel, type GenerateResult, type LlamaModel } from '../src/model/llama.ts';
import { missingModelMessage, resolveModelDir } from '../src/model/paths.ts';
import { mulberry32 } from '../src/model/sampling.ts';
import { machine, revision, runtimeName } from '../src/bench/env.ts';
import { createWebGPUContext, type WebGPUContext } from '../src/webgpu/device.ts';
import { createWebGPUMatvecGroup } from '../src/webgpu/matvec.ts';
import { floatToHalf } from '../src/webgpu/pagecodec.ts';
import { findGpu } from './gpu-common.ts';

const PROMPT = 'Once upon a time, in a small village by the sea, there lived';
/** Untimed calls before each projection measurement. */
const WARMUP_CALLS = 3;

declare const Deno: { args: string[] } | undefined;

interface PathRow {
  path: string;
  decodeTokensPerSec: number;
  msPerToken: number;
  vsWasm: number;
  /** Index of the first generated token that differs from the sync WASM path's, or null. */
  firstDifference: number | null;
}
interface ProjectionRow { name: string; rows: number[]; cols: number; perToken: number; wasmMs: number; gpuMs: number | null }

function args(): string[] {
  if (typeof Deno !== 'undefined') return Deno.args;
  return (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
}

function parse(argv: string[]) {
  const o = { model: '', tokens: 32, rounds: 3, minMs: 200, json: false, out: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    if (a === '--model') o.model = v();
    else if (a === '--tokens') o.tokens = Number(v());
    else if (a === '--rounds') o.rounds = Number(v());
    else if (a === '--min-ms') o.minMs = Number(v());
    else if (a === '--json') o.json = true;
    else if (a === '--out') o.out = v();
    else throw new Error(`unknown flag ${a}; see the header of bench/runner-gpu.ts`);
  }
  for (const k of ['tokens', 'rounds', 'minMs'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`--${k === 'minMs' ? 'min-ms' : k}: ${o[k]} is not a positive integer`);
  }
  return o;
}

function now(): number {
  return performance.now();
}

/** Milliseconds per call of `f`, over at least `minMs` after a warm-up. */
async function perCall(minMs: number, f: () => unknown): Promise<number> {
  for (let i = 0; i < WARMUP_CALLS; i++) await f();
  let n = 0;
  const t0 = now();
  let t = t0;
  while (t - t0 < minMs) { await f(); n++; t = now(); }
  return (t - t0) / n;
}

/** Projection groups of one layer (as the runner submits them) and the LM head. */
function projectionShapes(m: LlamaModel): Array<{ name: string; rows: number[]; cols: number; perToken: number }> {
  const c = m.config, qDim = c.qHeads * c.headDim, kvDim = c.kvHeads * c.headDim;
  return [
    { name: 'q/k/v', rows: [qDim, kvDim, kvDim], cols: c.hiddenSize, perToken: c.layers },
    { name: 'o', rows: [c.hiddenSize], cols: qDim, perToken: c.layers },
    { name: 'gate/up', rows: [c.intermediateSize, c.intermediateSize], cols: c.hiddenSize, perToken: c.layers },
    { name: 'down', rows: [c.hiddenSize], cols: c.intermediateSize, perToken: c.layers },
    { name: 'lm head', rows: [c.vocabSize], cols: c.hiddenSize, perToken: 1 },
  ];
}

/** One call of each projection group on random f16 weights: WASM kernel(s) and GPU round trip. */
async function measureProjections(engine: Engine, m: LlamaModel, ctx: WebGPUContext | null, minMs: number): Promise<ProjectionRow[]> {
  const rand = mulberry32(7);
  const out: ProjectionRow[] = [];
  for (const s of projectionShapes(m)) {
    const total = s.rows.reduce((a, b) => a + b, 0);
    const halves = Uint16Array.from({ length: total * s.cols }, () => floatToHalf(rand() * 2 - 1));
    const x = Float32Array.from({ length: s.cols }, () => rand() * 2 - 1);
    // WASM: the runner calls one matvec per matrix; rows stacked, the same bytes are read
    const a = engine.arena;
    const w = a.alloc(halves.byteLength), xp = a.alloc(x.byteLength), yp = a.alloc(4 * total);
    engine.u16(w, halves.length).set(halves);
    engine.f32(xp, x.length).set(x);
    const wasmMs = await perCall(minMs, () => {
      for (let i = 0, r0 = 0; i < s.rows.length; r0 += s.rows[i++]) engine.kernels.matvecF16(w + 2 * r0 * s.cols, xp, yp + 4 * r0, s.rows[i], s.cols, 1);
    });
    for (const p of [w, xp, yp]) a.free(p);
    let gpuMs: number | null = null;
    if (ctx) {
      let off = 0;
      const matrices = s.rows.map((rows) => ({ rows, weights: halves.subarray(off * s.cols, (off += rows) * s.cols) }));
      const mv = await createWebGPUMatvecGroup({ context: ctx, cols: s.cols, matrices });
      const y = new Float32Array(total);
      gpuMs = await perCall(minMs, () => mv.run(x, y));
      mv.destroy();
    }
    out.push({ ...s, wasmMs, gpuMs });
  }
  return out;
}

const fmt = (v: number | null, d = 3): string => (v === null ? '-' : v >= 100 ? v.toFixed(0) : v.toPrecision(d));

async function main(): Promise<void> {
  const o = parse(args());
  const log = (s: string) => console.error(s);
  const resolved = await resolveModelDir(undefined, o.model || undefined);
  if (!resolved.exists) throw new Error(missingModelMessage(resolved));
  const engine = await createEngine();
  const model = await loadModel(resolved.dir, { engine });
  const prompt = model.tokenizer.encode(PROMPT);
  const { gpu, source } = await findGpu();
  let ctx: WebGPUContext | null = null, noGpu = '';
  try {
    ctx = await createWebGPUContext({ gpu, onNotice: log });
    await model.useWebGPU(ctx, { onNotice: log });
  } catch (e) {
    noGpu = (e as Error).message;
    log(`no GPU path: ${noGpu}`);
  }
  const adapter = ctx ? `${ctx.adapter.vendor} ${ctx.adapter.architecture} ${ctx.adapter.device} ${ctx.adapter.description}`.replace(/\s+/g, ' ').trim() : null;
  log(`model ${resolved.dir} (${Object.entries(model.fileDTypes).map(([k, v]) => `${v} ${k}`).join(', ')}), prompt ${prompt.length} tokens, ${o.tokens} generated; GPU: ${adapter ?? 'none'} via ${source}`);

  const gen = { maxTokens: o.tokens, stopAtEos: false };
  const paths: Array<{ path: string; run: () => Promise<GenerateResult> | GenerateResult }> = [
    { path: 'wasm: generate (sync)', run: () => model.generate(prompt, gen) },
    { path: 'wasm: generateAsync', run: () => { model.releaseWebGPU(); return model.generateAsync(prompt, gen); } },
  ];
  // the upload (once per round, outside the decode timing) toggles the GPU path on and off
  if (ctx) paths.push({ path: 'webgpu matvec: generateAsync', run: async () => { await model.useWebGPU(ctx!, { onNotice: log }); return model.generateAsync(prompt, gen); } });
  const best = new Map<string, GenerateResult>();
  for (let r = 0; r < o.rounds; r++) {
    for (const p of paths) {
      const res = await p.run();
      const prev = best.get(p.path);
      if (!prev || res.decodeTokensPerSec > prev.decodeTokensPerSec) best.set(p.path, res);
    }
  }
  const wasm = best.get(paths[0].path)!;
  const rows: PathRow[] = paths.map((p) => {
    const r = best.get(p.path)!;
    const at = r.generated.findIndex((id, i) => id !== wasm.generated[i]);
    return { path: p.path, decodeTokensPerSec: r.decodeTokensPerSec, msPerToken: 1000 / r.decodeTokensPerSec, vsWasm: r.decodeTokensPerSec / wasm.decodeTokensPerSec, firstDifference: at < 0 ? null : at };
  });
  model.releaseWebGPU();
  const projections = await measureProjections(engine, model, ctx, o.minMs);

  const report = {
    bench: 'runner-gpu',
    date: new Date().toISOString(),
    runtime: runtimeName(),
    machine: await machine(),
    revision: await revision(),
    gpu: { adapter, source, error: noGpu || null },
    model: { dir: resolved.dir, dtypes: model.fileDTypes, config: model.config },
    config: { promptTokens: prompt.length, generatedTokens: o.tokens, rounds: o.rounds, minMs: o.minMs },
    paths: rows,
    projections,
  };
  if (o.out) {
    const fs = await import('node:fs/promises');
    await fs.writeFile(o.out, JSON.stringify(report, null, 2) + '\n');
    log(`wrote ${o.out}`);
  }
  if (o.json) {
    console.log(JSON.stringify(report));
  } else {
    const lines = ['| path | decode tokens/s | ms / token | vs wasm sync | greedy tokens vs wasm sync |', '|---|---|---|---|---|'];
    for (const r of rows) {
      const same = r.firstDifference === null ? `all ${o.tokens} identical` : `first difference at token ${r.firstDifference}`;
      lines.push(`| ${r.path} | ${fmt(r.decodeTokensPerSec)} | ${fmt(r.msPerToken)} | ${r.vsWasm.toFixed(2)}x | ${same} |`);
    }
    lines.push('');
    lines.push('| projection (one call) | rows x cols | calls / token | wasm ms | gpu ms (submit + read-back) |', '|---|---|---|---|---|');
    let wasmTok = 0, gpuTok = 0;
    for (const p of projections) {
      lines.push(`| ${p.name} | ${p.rows.join('+')} x ${p.cols} | ${p.perToken} | ${fmt(p.wasmMs)} | ${fmt(p.gpuMs)} |`);
      wasmTok += p.perToken * p.wasmMs;
      gpuTok += p.perToken * (p.gpuMs ?? 0);
    }
    lines.push(`| all projections of one token | | | ${fmt(wasmTok)} | ${ctx ? fmt(gpuTok) : '-'} |`);
    console.log(lines.join('\n'));
  }
  model.dispose();
  ctx?.destroy();
}

await main();

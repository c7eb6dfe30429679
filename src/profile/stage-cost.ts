/**
 * What a composition stage (e.g. KVCrush) costs, as a share of the model's decode steps:
 * run a text through the model with a compressed cache, time every `Stage.apply` call
 * and the base policy's scoring, and compare with the whole forward time. The paper
 * reports KVCrush below 0.5% of total inference latency (arXiv 2503.00022).
 *
 * Usage (from the repository): `node --import tsx src/profile/stage-cost.ts
 * [--tokens 2048] [--ratio 0.125] [--policy snapkv+kvcrush] [--seed 0]`; prints JSON.
 */
import type { Engine } from '../engine.ts';
import { createCache } from '../cache/cache.ts';
import type { LlamaModel } from '../model/llama.ts';
import type { AttentionBackend } from '../model/types.ts';
import type { Policy } from '../policies/types.ts';
import { fullF16Bytes } from './profile.ts';

/** Timings of one run (milliseconds). */
export interface StageCost {
  policy: string;
  tokens: number;
  budgetBytes: number;
  /** The whole forward over the text (every token is one decode step of the runner). */
  totalMs: number;
  /** Σ over compressions of the base policy's `score`. */
  scoreMs: number;
  /** Σ over compressions of every stage's `apply`. */
  stageMs: number;
  compressions: number;
  /** stageMs / totalMs. */
  stageShare: number;
  /** Mean wall time of one decode step (totalMs / tokens). */
  stepMs: number;
}

function now(): number { return typeof performance !== 'undefined' ? performance.now() : Date.now(); }

/** Run `ids` through `model` with a `policy` cache of `ratio` × the full f16 bytes, timing score and stages. */
export function measureStageCost(engine: Engine, model: LlamaModel, ids: number[], policy: string | ({ name: string } & Record<string, unknown>), ratio: number, sinkTokens = 4, windowTokens = 64): StageCost {
  const c = model.config;
  const budgetBytes = Math.floor(fullF16Bytes(model, ids.length) * ratio);
  const cache = createCache(engine, { layers: c.layers, qHeads: c.qHeads, kvHeads: c.kvHeads, headDim: c.headDim, policy, budget: { bytes: budgetBytes }, sinkTokens, windowTokens });
  const p = cache.policy as Policy & { score?: Policy['score']; stages?: Policy['stages'] };
  let scoreMs = 0, stageMs = 0, compressions = 0;
  const score = p.score!;
  (p as { score: Policy['score'] }).score = (ctx, out) => { const t = now(); score.call(p, ctx, out); scoreMs += now() - t; compressions++; };
  for (const st of p.stages ?? []) {
    const apply = st.apply;
    (st as { apply: typeof apply }).apply = (ctx, s, m, k) => { const t = now(); apply.call(st, ctx, s, m, k); stageMs += now() - t; };
  }
  const t0 = now();
  try { model.forward(ids, cache as unknown as AttentionBackend); } finally { cache.dispose(); }
  const totalMs = now() - t0;
  return { policy: typeof policy === 'string' ? policy : policy.name, tokens: ids.length, budgetBytes, totalMs, scoreMs, stageMs, compressions, stageShare: stageMs / totalMs, stepMs: totalMs / ids.length };
}

const isMain = typeof process !== 'undefined' && process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  const { parseArgs } = await import('node:util');
  const fs = await import('node:fs');
  const { createEngine } = await import('../engine.ts');
  const { loadModel } = await import('../model/llama.ts');
  const { resolveModelDir } = await import('../model/paths.ts');
  const { textWindow } = await import('../eval/harness.ts');
  const { values: v } = parseArgs({ options: { tokens: { type: 'string', default: '2048' }, ratio: { type: 'string', default: '0.125' }, policy: { type: 'string', default: 'snapkv+kvcrush' }, seed: { type: 'string', default: '0' }, model: { type: 'string' } } });
  const r = await resolveModelDir(undefined, v.model);
  const engine = await createEngine();
  const model = await loadModel(r.dir, { engine });
  const text = fs.readFileSync(`${r.dir}/val_shared.txt`, 'utf8');
  const ids = textWindow({ engine, model, text, options: {} as never }, Number(v.seed), Number(v.tokens));
  const out = [];
  for (const pol of v.policy!.split(',')) out.push(measureStageCost(engine, model, ids, pol, Number(v.ratio)));
  console.log(JSON.stringify({ model: r.dir, results: out }, null, 1));
}

/**
 * Speed of the `balancekv` cache policy inside the model runner (issue 5, "Speed"): for one
 * prompt of ../shared/models/mix-27m, the runner's prefill (per layer and token: append,
 * compress when over the cap, attend) through an edgekv cache, timing every compression
 * (`cache.compress`: the policy's plan, i.e. the walk, plus the cache's execution of the
 * plan) in the same run. Two prefills: streaming (`model.forward` through the cache:
 * append and attend token by token, compressing whenever a lane is over its cap) and
 * one-shot (`prefillOneShot`: exact prompt, then one append per layer, one compression per
 * lane: the papers' setting), with BalanceKV variants (mode 'prefill', γ = 0, B = 32, 64,
 * 256) for the cost side of the parameter study. Reported: the compressions' share of
 * that prefill's wall time (target <= 5%) and the compression throughput in tokens per
 * second per lane (prompt tokens / compression time of one lane); `uniform` runs beside it
 * as the cheapest sampler.
 *
 *   node --import tsx bench/balancekv-cache.ts [--tokens 2048] [--ratios 0.25,0.125] [--backend wasm-simd|wasm-scalar]
 *
 * Writes bench/results/balancekv-cache.json and prints a markdown table.
 */
import { execSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { createEngine } from '../src/engine.ts';
import { fullCacheBytes, textWindow, type EvalContext } from '../src/eval/harness.ts';
import { prefillOneShot } from '../src/model/prefill.ts';
import { loadModel } from '../src/model/llama.ts';
import { missingModelMessage, resolveModelDir } from '../src/model/paths.ts';
import type { AttentionBackend } from '../src/model/types.ts';
import type { KVCache } from '../src/cache/cache.ts';
import type { BalanceKVPolicy } from '../src/policies/balancekv.ts';

const { values: flags } = parseArgs({
  options: {
    tokens: { type: 'string', default: '2048' }, ratios: { type: 'string', default: '0.25,0.125' }, model: { type: 'string' },
    backend: { type: 'string', default: 'wasm-simd' }, out: { type: 'string', default: 'bench/results/balancekv-cache.json' },
  },
});

/** Wrap `cache.compress` to accumulate its wall time (ms) and calls. */
function timeCompressions(cache: KVCache): { ms: number; calls: number } {
  const acc = { ms: 0, calls: 0 };
  const orig = cache.compress.bind(cache);
  cache.compress = (lane) => { const t0 = performance.now(); try { orig(lane); } finally { acc.ms += performance.now() - t0; acc.calls++; } };
  return acc;
}

async function main(): Promise<void> {
  const engine = await createEngine({ backend: flags.backend as 'wasm-simd' | 'wasm-scalar' });
  const resolved = await resolveModelDir(undefined, flags.model);
  if (!resolved.exists) throw new Error(missingModelMessage(resolved));
  const model = await loadModel(resolved.dir, { engine });
  const text = readFileSync(`${resolved.dir}/val_shared.txt`, 'utf8');
  const ctx = { model, text, options: {} } as unknown as EvalContext;
  const c = model.config, d = c.headDim, N = Number(flags.tokens), lanes = c.layers * c.kvHeads;
  const ids = textWindow(ctx, 0, N);
  const cacheOpts = (policy: unknown, ratio: number) => ({
    layers: c.layers, qHeads: c.qHeads, kvHeads: c.kvHeads, headDim: d, policy: policy as never,
    budget: { bytes: Math.floor(fullCacheBytes(model, N) * ratio) }, precision: 'f16' as const, sinkTokens: 4, windowTokens: 64, seed: 0,
  });
  // Warm-up: JIT and WASM tiers.
  { const w = engine.createCache(cacheOpts('balancekv', 0.25)); model.forward(ids.slice(0, 256), w as unknown as AttentionBackend); w.dispose(); }

  const rows: Record<string, unknown>[] = [];
  const exact = model.createExactAttention({ initialCapacity: N + 8 });
  let t0 = performance.now();
  model.forward(ids, exact);
  const exactMs = performance.now() - t0;
  exact.dispose();
  rows.push({ mode: 'exact attention (no cache)', policy: 'exact', ratio: 1, prefillMs: exactMs });
  const run = (mode: 'stream' | 'oneshot', policy: string | Record<string, unknown>, ratio: number) => {
    const cache = engine.createCache(cacheOpts(policy, ratio));
    const acc = timeCompressions(cache);
    t0 = performance.now();
    if (mode === 'stream') model.forward(ids, cache as unknown as AttentionBackend);
    else prefillOneShot(model, ids, cache);
    const prefillMs = performance.now() - t0;
    const st = (cache.policy as Partial<BalanceKVPolicy>).stats;
    rows.push({
      mode: mode === 'stream' ? 'stream (model.forward through the cache)' : 'one-shot (prefillOneShot: one append per layer)',
      policy: typeof policy === 'string' ? policy : JSON.stringify(policy), ratio, prefillMs, compressMs: acc.ms, compressions: acc.calls,
      planMs: st?.ms, walked: st?.walked, halvings: st?.halvings, saturatedShare: st ? st.saturated / Math.max(1, st.walked) : undefined,
      share: acc.ms / prefillMs, tokensPerSecPerLane: (N * lanes) / (acc.ms / 1e3),
    });
    cache.dispose();
  };
  for (const ratio of flags.ratios.split(',').map(Number)) {
    for (const policy of ['uniform', 'balancekv']) run('stream', policy, ratio);
    for (const policy of ['uniform', 'balancekv', { name: 'balancekv', mode: 'prefill' }, { name: 'balancekv', gamma: 0 },
      { name: 'balancekv', blockSize: 32 }, { name: 'balancekv', blockSize: 64 }, { name: 'balancekv', blockSize: 256 }]) run('oneshot', policy, ratio);
  }
  let revision = 'unknown';
  try { revision = execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim(); } catch { /* not a checkout */ }
  const doc = {
    bench: 'balancekv-cache', tokens: N, lanes, backend: engine.backend, revision, node: process.version,
    cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadavg: os.loadavg(), date: new Date().toISOString(), rows,
  };
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(flags.out, JSON.stringify(doc, null, 1));
  const f = (x: unknown, p = 1) => (typeof x === 'number' ? x.toFixed(p) : '');
  console.log(`| prefill | policy | budget | prefill ms | compression ms | share of prefill | tokens/s per lane | plan ms (walk) | entries walked | saturated steps |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |`);
  for (const r of rows) {
    console.log(`| ${r.mode} | ${r.policy} | ${r.ratio === 1 ? '' : `1/${Math.round(1 / (r.ratio as number))}`} | ${f(r.prefillMs, 0)} | ${f(r.compressMs, 0)} | ${typeof r.share === 'number' ? `${(100 * r.share).toFixed(2)}%` : ''} | ${typeof r.tokensPerSecPerLane === 'number' ? Math.round(r.tokensPerSecPerLane as number).toLocaleString('en') : ''} | ${f(r.planMs, 0)} | ${r.walked ?? ''} | ${typeof r.saturatedShare === 'number' ? `${(100 * (r.saturatedShare as number)).toFixed(0)}%` : ''} |`);
  }
}

await main();

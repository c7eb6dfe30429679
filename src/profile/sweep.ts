/**
 * Option sweeps that `edgekv eval` cannot express (it takes policy names, not options):
 * perplexity and KL against the full cache for policy specs given as JSON, at equal
 * bytes, on the same text windows as `edgekv eval --task ppl` (same seeds, same scored
 * positions). Used for the KVCrush anchor / bits / rho sweep in docs/results/kvcrush.md.
 *
 * `node --import tsx src/profile/sweep.ts '{"specs":[{"name":"snapkv"},{"name":"snapkv+kvcrush","kvcrush":{"anchor":"random"}}],"ratios":[0.125],"seeds":2}'`
 *
 * Spec fields besides the policy's own: `precision`, `planner`, `hadamard` (cache
 * options; a planner's `profile` may be a JSON file name). Other keys of the argument: `tokens` (2048), `window` (64), `sink` (4),
 * `precision` (f16), `model` (directory). Prints one line per run and the mean KL / ppl
 * per spec; `--json` as a second argument prints JSON instead.
 */
import fs from 'node:fs';
import { createEngine } from '../engine.ts';
import { loadModel } from '../model/llama.ts';
import { resolveModelDir } from '../model/paths.ts';
import { createCache } from '../cache/cache.ts';
import { fullCacheBytes, textWindow } from '../eval/harness.ts';
import { klDivergence, nll } from '../eval/metrics.ts';
import type { AttentionBackend } from '../model/types.ts';

const arg = JSON.parse(process.argv[2] ?? '{}');
const asJson = process.argv[3] === '--json';
const { specs, ratios, seeds = 1, tokens = 2048, window = 64, sink = 4, precision = 'f16' } = arg;
const r = await resolveModelDir(undefined, arg.model);
const engine = await createEngine();
const model = await loadModel(r.dir, { engine });
const text = fs.readFileSync(`${r.dir}/val_shared.txt`, 'utf8');
const ctx = { engine, model, text, options: {} as never };
const c = model.config, V = c.vocabSize, N = tokens, from = Math.floor(N / 2), M = N - 1 - from;
const profileCache = new Map<string, unknown>();
function profiles(file: string): unknown {
  if (!profileCache.has(file)) profileCache.set(file, JSON.parse(fs.readFileSync(file, 'utf8')));
  return profileCache.get(file);
}
const rows: { spec: string; ratio: number; seed: number; kl: number; ppl: number; bytes: number }[] = [];
for (let seed = 0; seed < seeds; seed++) {
  const ids = textWindow(ctx, seed, N);
  const ref = new Float32Array(M * V);
  const exact = model.createExactAttention({ initialCapacity: N + 8 });
  model.forward(ids, exact, { onLogits: (i, l) => { if (i >= from && i < N - 1) ref.set(l, (i - from) * V); } });
  exact.dispose();
  for (const spec of specs) for (const ratio of ratios) {
    const { precision: p = precision, planner: plannerSpec, hadamard, ...policy } = spec;
    // A planner's profile may be given as a file name: { name: 'baklava', profile: 'docs/results/baklava-profile.json' }.
    const planner = plannerSpec && typeof plannerSpec.profile === 'string' ? { ...plannerSpec, profile: profiles(plannerSpec.profile) } : plannerSpec;
    const cache = createCache(engine, {
      layers: c.layers, qHeads: c.qHeads, kvHeads: c.kvHeads, headDim: c.headDim, policy,
      budget: { bytes: Math.floor(fullCacheBytes(model, N) * ratio) }, precision: p, sinkTokens: sink, windowTokens: window, seed,
      ...(planner ? { planner } : {}), ...(hadamard ? { hadamard } : {}),
    });
    let kl = 0, nl = 0;
    model.forward(ids, cache as unknown as AttentionBackend, {
      onLogits: (i, l) => { if (i < from || i >= N - 1) return; kl += klDivergence(ref, (i - from) * V, l, 0, V); nl += nll(l, 0, V, ids[i + 1]); },
    });
    const row = { spec: JSON.stringify(spec), ratio, seed, kl: kl / M, ppl: Math.exp(nl / M), bytes: cache.stats().bytes };
    cache.dispose();
    rows.push(row);
    if (!asJson) console.log(`${row.spec} ratio ${ratio} seed ${seed}: kl ${row.kl.toFixed(5)} ppl ${row.ppl.toFixed(4)} bytes ${row.bytes}`);
  }
}
const means = new Map<string, { kl: number; ppl: number; n: number }>();
for (const x of rows) {
  const k = `${x.spec} ratio ${x.ratio}`;
  const m = means.get(k) ?? { kl: 0, ppl: 0, n: 0 };
  m.kl += x.kl; m.ppl += x.ppl; m.n++;
  means.set(k, m);
}
if (asJson) console.log(JSON.stringify({ argument: arg, rows }, null, 1));
else for (const [k, m] of means) console.log(`mean ${k}: kl ${(m.kl / m.n).toFixed(5)} ppl ${(m.ppl / m.n).toFixed(4)} (n ${m.n})`);

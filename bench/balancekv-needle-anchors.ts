/**
 * How often the needle variant's outlier test (the authors' `balanced_walk_needle_detection`:
 * a key is an outlier when its mean inner product with its block of B keys is <= 0; anchors
 * are its ±25 neighbours) fires on real keys: one needle prompt of the eval's needle task
 * (depth 0.5) through ../shared/models/mix-27m, anchors counted per lane (layer × KV head).
 *
 *   node --import tsx bench/balancekv-needle-anchors.ts
 */
import { readFileSync } from 'node:fs';
import { createEngine } from '../src/engine.ts';
import { loadModel } from '../src/model/llama.ts';
import { resolveModelDir } from '../src/model/paths.ts';
import { captureKV } from '../src/eval/harness.ts';
import { makeNeedle, needlePrompt } from '../src/eval/needle.ts';
import { SplitMix } from '../src/eval/rng.ts';
import { needleAnchors } from '../src/balancekv/needle.ts';
const engine = await createEngine();
const r = await resolveModelDir(undefined, undefined);
const model = await loadModel(r.dir, { engine });
const text = readFileSync(`${r.dir}/val_shared.txt`, 'utf8');
const needle = makeNeedle(new SplitMix(5));
const prompt = needlePrompt(text.slice(0, 7000), needle, 0.5);
const ids = model.tokenizer.encode(prompt);
console.log('tokens', ids.length, 'needle', JSON.stringify(needle));
const c = model.config, d = c.headDim, kvDim = c.kvHeads * d;
const cap = captureKV(model, ids, Array.from({ length: c.layers }, (_, i) => i));
for (let l = 0; l < c.layers; l++) for (let h = 0; h < c.kvHeads; h++) {
  const n = ids.length; const K = new Float32Array(n * d);
  for (let t = 0; t < n; t++) K.set(cap.keys[l].subarray(t * kvDim + h * d, t * kvDim + h * d + d), t * d);
  const a = needleAnchors(K, n, d, 128, 25);
  let cnt = 0; for (const x of a) cnt += x;
  console.log(`layer ${l} head ${h}: anchors ${cnt}/${n}`);
}

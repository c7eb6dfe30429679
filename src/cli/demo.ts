/**
 * `edgekv demo`: the main job. Loads the default model (../shared/models/mix-27m, or
 * --model DIR), builds a long prompt from its validation text with a `[ref NAME = VALUE]`
 * line early on and `[ask NAME] =` at the end, and generates
 *   1. with the full (exact) cache — the reference;
 *   2. with a compressed cache (default: snapkv, int4 middle tier, 1/8 of the full
 *      f16 cache's bytes); the prompt enters it in one append after an exact prefill
 *      (`prefillOneShot`), or token by token with --stream.
 * Prints memory (compressed vs full, in bytes), prefill/decode tokens/s, whether the
 * needle was retrieved, and the KL divergence of the compressed run's next-token
 * distributions against the full run's on the same tokens (teacher-forced).
 */
import { parseArgs } from 'node:util';
import { createEngine } from '../engine.ts';
import { EdgeKVError, checkInt, checkNum, checkOneOf } from '../errors.ts';
import { FORMATS, type Format } from '../formats.ts';
import { loadModel } from '../model/llama.ts';
import { DEFAULT_MODEL_NAME, missingModelMessage, resolveModelDir } from '../model/paths.ts';
import type { AttentionBackend } from '../model/types.ts';
import { createCache } from '../cache/cache.ts';
import { fullCacheBytes } from '../eval/harness.ts';
import { argmax, klDivergence } from '../eval/metrics.ts';
import { makeNeedle, needleHit, needlePrompt } from '../eval/needle.ts';
import { SplitMix } from '../eval/rng.ts';
import { prefillOneShot } from '../model/prefill.ts';
import { createWebGPUContext } from '../webgpu/device.ts';
import { findGpu } from '../webgpu/find.ts';

const HELP = `usage: edgekv demo [--model DIR] [--policy snapkv] [--precision int4] [--ratio 0.125]
                   [--tokens 1536] [--max-tokens 48] [--sink 4] [--window 32] [--seed 1] [--stream] [--json]
                   [--webgpu]

The prompt goes into the compressed cache in one append after an exact prefill (the
papers' setting); --stream appends it token by token, compressing as it arrives.

Generates with a compressed cache and with the full cache; prints memory, speed and KL.
--webgpu repeats the compressed run with attention (cache.useWebGPU) and the decode
matvecs (model.useWebGPU) on a WebGPU device (Node: the optional "webgpu" package) and
compares its tokens and speed with the WASM run.`;

function now(): number { return performance.now(); }

/** `n` greedy tokens from `logits`; `step(token, i)` feeds token `i` and gives the next logits. */
async function greedy(logits: Float32Array, n: number, V: number, step: (token: number, i: number) => Float32Array | Promise<Float32Array>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const next = argmax(logits, 0, V);
    out.push(next);
    if (i < n - 1) logits = await step(next, i);
  }
  return out;
}

export const command = {
  describe: 'generate with a compressed cache; print memory, quality (KL vs full) and speed',
  async run(argv: string[]): Promise<number> {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        options: {
          model: { type: 'string' }, policy: { type: 'string', default: 'snapkv' }, precision: { type: 'string', default: 'int4' },
          ratio: { type: 'string', default: '0.125' }, tokens: { type: 'string', default: '1536' }, 'max-tokens': { type: 'string', default: '48' },
          sink: { type: 'string', default: '4' }, window: { type: 'string', default: '32' }, seed: { type: 'string', default: '1' },
          json: { type: 'boolean', default: false }, webgpu: { type: 'boolean', default: false }, stream: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
        },
      });
    } catch (e) {
      throw new EdgeKVError('E_ARG', `${(e as Error).message}\n${HELP}`);
    }
    const v = parsed.values;
    if (v.help) { console.log(HELP); return 0; }
    const precision = checkOneOf('--precision', v.precision, FORMATS) as Format;
    const ratio = checkNum('--ratio', Number(v.ratio), 1e-4, 1);
    const tokens = checkInt('--tokens', Number(v.tokens), 64, 1 << 20);
    const maxTokens = checkInt('--max-tokens', Number(v['max-tokens']), 1, 4096);
    const sinkTokens = checkInt('--sink', Number(v.sink), 0, 4096);
    const windowTokens = checkInt('--window', Number(v.window), 0, 1 << 16);
    const seed = checkInt('--seed', Number(v.seed), 0, 2 ** 31);
    const r = await resolveModelDir(DEFAULT_MODEL_NAME, v.model);
    if (!r.exists) throw new EdgeKVError('E_MODEL', missingModelMessage(r), 'model');
    const log = (s: string) => { if (!v.json) console.log(s); };

    const engine = await createEngine();
    const model = await loadModel(r.dir, { engine });
    const c = model.config, V = c.vocabSize;
    if (tokens + maxTokens > c.maxPositions) throw new EdgeKVError('E_ARG', `--tokens ${tokens} + --max-tokens ${maxTokens} exceeds the model's context ${c.maxPositions}`, '--tokens');

    // Prompt: validation text (or a built-in text when the model has none) with a needle.
    const fs = await import('node:fs');
    const path = await import('node:path');
    const textFile = path.join(r.dir, 'val_shared.txt');
    const text = fs.existsSync(textFile) ? fs.readFileSync(textFile, 'utf8') : 'The quick brown fox jumps over the lazy dog.\n'.repeat(2000);
    const rng = new SplitMix(seed);
    const needle = makeNeedle(rng);
    const docs = text.split('\n<|doc|>\n');
    let hay = '';
    for (let i = rng.int(docs.length); hay.length < tokens * 5; i = (i + 1) % docs.length) hay += docs[i] + '\n';
    let chars = tokens * 4, ids: number[] = [];
    for (let t = 0; t < 8; t++) {
      ids = model.tokenizer.encode(needlePrompt(hay.slice(0, chars), needle, 0.15));
      if (ids.length <= tokens) break;
      chars = Math.floor(chars * (tokens / ids.length) * 0.98);
    }
    log(`edgekv demo — model ${r.dir} (${c.layers} layers, ${c.qHeads} query / ${c.kvHeads} KV heads, head dim ${c.headDim}), ${engine.backend}`);
    log(`prompt: ${ids.length} tokens of validation text; needle "[ref ${needle.name} = ${needle.value}]" at 15% depth, question at the end\n`);

    // 1. Full cache: greedy generation, logits at every generated step.
    const full = model.createExactAttention({ initialCapacity: ids.length + maxTokens + 8 });
    const refLogits = new Float32Array(maxTokens * V);
    const gen: number[] = [];
    let t0 = now();
    let logits = model.forward(ids, full);
    const fullPrefillMs = now() - t0;
    t0 = now();
    for (let i = 0; i < maxTokens; i++) {
      refLogits.set(logits, i * V);
      const next = argmax(logits, 0, V);
      gen.push(next);
      if (i < maxTokens - 1) logits = model.forward([next], full);
    }
    const fullDecodeMs = now() - t0;
    full.dispose();
    const fullBytes = fullCacheBytes(model, ids.length + maxTokens);

    // 2. Compressed cache: its own greedy generation (speed, answer) ...
    const budgetBytes = Math.floor(fullBytes * ratio);
    const mk = () => createCache(engine, {
      layers: c.layers, qHeads: c.qHeads, kvHeads: c.kvHeads, headDim: c.headDim,
      policy: v.policy, precision, budget: { bytes: budgetBytes }, sinkTokens, windowTokens, seed,
    });
    const cache = mk();
    t0 = now();
    logits = v.stream ? model.forward(ids, cache as unknown as AttentionBackend) : prefillOneShot(model, ids, cache);
    const prefillMs = now() - t0;
    t0 = now();
    const own = await greedy(logits, maxTokens, V, (next, i) => model.forward([next], cache as unknown as AttentionBackend, { startPosition: ids.length + i }));
    const decodeMs = now() - t0;
    const st = cache.stats();
    cache.dispose();
    // ... and teacher-forced on the full run's tokens, for KL and top-1 agreement.
    const tf = mk();
    let kl = 0, agree = 0;
    logits = v.stream ? model.forward(ids, tf as unknown as AttentionBackend) : prefillOneShot(model, ids, tf);
    for (let i = 0; i < maxTokens; i++) {
      kl += klDivergence(refLogits, i * V, logits, 0, V);
      if (argmax(logits, 0, V) === gen[i]) agree++;
      if (i < maxTokens - 1) logits = model.forward([gen[i]], tf as unknown as AttentionBackend, { startPosition: ids.length + i });
    }
    tf.dispose();
    kl /= maxTokens;

    // 3. Optional: the same compressed run with attention and decode matvecs on WebGPU.
    let gpuRun: { adapter: string; backend: string; decodeTokensPerSec: number; sameTokens: number; fallback: string | null } | null = null;
    let gpuMissing: string | null = null;
    const ctx = v.webgpu ? await findGpu().then((gpu) => createWebGPUContext({ gpu, onNotice: (m) => console.error(`[edgekv] ${m}`) })).catch((e: Error) => {
      if (!(e instanceof EdgeKVError) || e.code !== 'E_BACKEND') throw e;
      gpuMissing = e.message;
      return null;
    }) : null;
    if (ctx) {
      const notices: string[] = [];
      const gc = mk();
      const backend = await gc.useWebGPU({ context: ctx, onNotice: (m) => notices.push(m) });
      await model.useWebGPU(ctx);
      logits = v.stream ? await model.forwardAsync(ids, gc as unknown as AttentionBackend) : prefillOneShot(model, ids, gc);
      t0 = now();
      const gen2 = await greedy(logits, maxTokens, V, (next, i) => model.forwardAsync([next], gc as unknown as AttentionBackend, { startPosition: ids.length + i }));
      const ms = now() - t0;
      let same = 0;
      while (same < maxTokens && gen2[same] === own[same]) same++;
      gpuRun = {
        adapter: [ctx.adapter.vendor, ctx.adapter.architecture, ctx.adapter.description].filter(Boolean).join(' ') || 'adapter',
        backend, decodeTokensPerSec: (maxTokens - 1) / (ms / 1000), sameTokens: same, fallback: notices.length ? notices.join('; ') : null,
      };
      gc.dispose();
      model.releaseWebGPU();
      ctx.destroy();
    }

    const fullText = model.tokenizer.decode(gen), ownText = model.tokenizer.decode(own);
    const firstLine = (s: string) => s.split('\n')[0];
    const result = {
      model: r.dir, backend: engine.backend, promptTokens: ids.length, generated: maxTokens,
      policy: v.policy, precision, ratio, sinkTokens, windowTokens,
      needle: { ...needle, full: needleHit(firstLine(fullText), needle), compressed: needleHit(firstLine(ownText), needle) },
      memory: { fullF16Bytes: fullBytes, budgetBytes, compressedBytes: st.bytes, fraction: st.bytes / fullBytes, compressedTokens: st.tokens, fullTokens: (ids.length + maxTokens - 1) * c.layers * c.kvHeads },
      speed: {
        full: { prefillTokensPerSec: ids.length / (fullPrefillMs / 1000), decodeTokensPerSec: (maxTokens - 1) / (fullDecodeMs / 1000) },
        compressed: { prefillTokensPerSec: ids.length / (prefillMs / 1000), decodeTokensPerSec: (maxTokens - 1) / (decodeMs / 1000) },
      },
      quality: { klNatsPerToken: kl, top1Agreement: agree / maxTokens },
      webgpu: gpuRun ?? (gpuMissing ? { unavailable: gpuMissing } : null),
      text: { full: fullText, compressed: ownText },
    };
    if (v.json) { console.log(JSON.stringify(result, null, 2)); model.dispose(); return 0; }
    const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;
    log(`full cache   : answer ${JSON.stringify(firstLine(fullText))} → ${result.needle.full ? 'retrieved' : 'missed'}`);
    log(`compressed   : answer ${JSON.stringify(firstLine(ownText))} → ${result.needle.compressed ? 'retrieved' : 'missed'}`);
    log('');
    log(`memory       : ${kib(st.bytes)} compressed (${v.policy}, ${v.stream ? 'streaming' : 'one-shot'} prefill, ${precision} middle tier, sinks ${sinkTokens} + window ${windowTokens} exact f16) vs ${kib(fullBytes)} full f16 cache → ${(100 * st.bytes / fullBytes).toFixed(1)}% (budget ${kib(budgetBytes)}); ${st.tokens} of ${result.memory.fullTokens} lane entries kept`);
    log(`quality      : KL(full ‖ compressed) = ${kl.toFixed(4)} nats/token over ${maxTokens} generated tokens (teacher-forced); top-1 agreement ${(100 * agree / maxTokens).toFixed(0)}%`);
    log(`speed        : compressed prefill ${result.speed.compressed.prefillTokensPerSec.toFixed(0)} tok/s, decode ${result.speed.compressed.decodeTokensPerSec.toFixed(1)} tok/s | full prefill ${result.speed.full.prefillTokensPerSec.toFixed(0)} tok/s, decode ${result.speed.full.decodeTokensPerSec.toFixed(1)} tok/s`);
    if (gpuMissing) log(`webgpu       : not run (${gpuMissing})`);
    if (gpuRun) {
      log(`webgpu       : ${gpuRun.adapter}; attention on ${gpuRun.backend}, decode matvecs on webgpu: decode ${gpuRun.decodeTokensPerSec.toFixed(1)} tok/s; first ${gpuRun.sameTokens} of ${maxTokens} greedy tokens identical to the WASM run${gpuRun.fallback ? ` (notices: ${gpuRun.fallback})` : ''}`);
    }
    log(`\ncompressed continuation:\n${ownText}`);
    model.dispose();
    return 0;
  },
};

/**
 * The runner's async path and its WebGPU matvecs: `forwardAsync` / `generateAsync` without a
 * GPU are `forward` / `generate` exactly (also with an `attendAsync` backend); with
 * `useWebGPU` the decode logits match the WASM kernels within a stated tolerance (tiny random
 * models, f16 and f32 weights, split weight blocks; stories260K when present), greedy tokens
 * are identical, a device destroyed mid-generation gives one notice and the same
 * continuation, and bad inputs to `useWebGPU` are typed errors. The GPU tests skip with the
 * printed reason when there is no adapter.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createEngine } from '../../src/engine.ts';
import { EdgeKVError } from '../../src/errors.ts';
import { loadModel, type LlamaModel } from '../../src/model/llama.ts';
import type { AttentionBackend } from '../../src/model/types.ts';
import type { ExactAttention } from '../../src/model/exact-attention.ts';
import { createWebGPUContext } from '../../src/webgpu/device.ts';
import { gpuEnv } from '../webgpu/gpu-env.ts';
import { safetensorsBytes, sharedModel, writeTinyModel } from './fixtures.ts';

/**
 * GPU vs WASM decode logits, max |diff| / max |logit|, when the checkpoint is f16: both sides
 * multiply the same f16 weights by the same f32 activations with f32 accumulation; only the
 * summation order differs (measured: about 1e-7 on the tiny model).
 */
const GPU_F16_REL_TOL = 1e-5;
/**
 * The same for f32 checkpoints: the GPU holds the weights rounded to f16 (relative step
 * 2^-11), the WASM kernels the f32 originals (measured: about 1e-3 on the tiny model and
 * stories260K).
 */
const GPU_F32_REL_TOL = 1e-2;
const PROMPT = [1, 3, 8, 3, 6, 11, 4, 5];
const DECODE = [7, 9, 10, 2, 0, 6, 4];

const engine = createEngine();
const stories = await sharedModel('stories260K');
const env = await gpuEnv();

function relDiff(a: Float32Array, b: Float32Array): number {
  assert.is(a.length, b.length);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return d / m;
}

async function rejects(p: () => unknown, code: string, ...fragments: string[]): Promise<EdgeKVError> {
  try {
    await p();
  } catch (e) {
    assert.instance(e, EdgeKVError, String(e));
    assert.is((e as EdgeKVError).code, code, (e as Error).message);
    for (const f of fragments) assert.ok((e as Error).message.includes(f), `${(e as Error).message} lacks ${f}`);
    return e as EdgeKVError;
  }
  return assert.unreachable(`should throw ${code}`) as never;
}

/** An attention backend with `attendAsync` (resolving on a later task), counting its calls. */
function asyncAttention(model: LlamaModel): AttentionBackend & { asyncCalls: number; inner: ExactAttention } {
  const inner = model.createExactAttention();
  const b = {
    asyncCalls: 0,
    inner,
    append: inner.append.bind(inner),
    attend: (): Float32Array => assert.unreachable('the async path must use attendAsync') as never,
    attendAsync: async (layer: number, q: Float32Array, out?: Float32Array): Promise<Float32Array> => {
      b.asyncCalls++;
      const r = inner.attend(layer, q, new Float32Array(q.length));
      await new Promise((resolve) => setTimeout(resolve, 0));
      out?.set(r);
      return out ?? r;
    },
    reset: inner.reset.bind(inner),
  };
  return b;
}

/**
 * Prefill `PROMPT` then decode `DECODE` one token at a time with `forward` on one attention
 * and `forwardAsync` on another; returns the largest relative logit difference of the steps.
 */
async function decodeDiff(model: LlamaModel, prompt = PROMPT, steps = DECODE): Promise<number> {
  const a = model.createExactAttention(), b = model.createExactAttention();
  let worst = relDiff(await model.forwardAsync(prompt, b), model.forward(prompt, a));
  for (const t of steps) worst = Math.max(worst, relDiff(await model.forwardAsync([t], b), model.forward([t], a)));
  a.dispose();
  b.dispose();
  return worst;
}

test('forwardAsync / generateAsync without a GPU equal forward / generate exactly', async () => {
  const { dir } = writeTinyModel({ dtype: 'F16', seed: 3 });
  const model = await loadModel(dir, { engine: await engine, maxChunk: 3 });
  assert.is(model.webgpu, null);
  const ids = [...PROMPT, ...DECODE];
  const a = model.createExactAttention(), b = model.createExactAttention();
  assert.equal(await model.forwardAsync(ids, b, { allLogits: true }), model.forward(ids, a, { allLogits: true }));
  for (const t of [5, 6]) assert.equal(await model.forwardAsync([t], b), model.forward([t], a));
  assert.is(model.positionOf(b), model.positionOf(a));
  const seen: number[][] = [[], []];
  const sync = model.generate('ab c', { maxTokens: 12, stopAtEos: false, onToken: (id) => seen[0].push(id) });
  const asy = await model.generateAsync('ab c', { maxTokens: 12, stopAtEos: false, onToken: (id) => seen[1].push(id) });
  assert.equal(asy.ids, sync.ids);
  assert.equal(seen[1], seen[0]);
  assert.is(asy.text, sync.text);
  assert.is(asy.stoppedBy, sync.stoppedBy);
  assert.equal(Object.keys(asy).sort(), Object.keys(sync).sort());
  assert.ok(asy.decodeTokens === 11 && asy.decodeMs >= 0 && asy.prefillTokensPerSec > 0);
  const sampled = [model.generate([1, 4], { maxTokens: 10, temperature: 0.9, seed: 7 }), await model.generateAsync([1, 4], { maxTokens: 10, temperature: 0.9, seed: 7 })];
  assert.equal(sampled[1].ids, sampled[0].ids);
  a.dispose();
  b.dispose();
  model.dispose();
});

test('the async path awaits attendAsync when the backend has it (same logits)', async () => {
  const { dir } = writeTinyModel({ dtype: 'F32', seed: 4 });
  const model = await loadModel(dir, { engine: await engine, maxChunk: 4 });
  const ref = model.createExactAttention();
  const att = asyncAttention(model);
  const ids = [...PROMPT, ...DECODE];
  assert.equal(await model.forwardAsync(ids, att, { allLogits: true }), model.forward(ids, ref, { allLogits: true }));
  assert.is(att.asyncCalls, ids.length * model.config.layers);
  const r = await model.generateAsync([1, 5], { maxTokens: 6, stopAtEos: false, attention: att });
  model.resetAttention(ref);
  model.forward(ids, ref);
  assert.equal(r.ids, model.generate([1, 5], { maxTokens: 6, stopAtEos: false, attention: ref }).ids);
  ref.dispose();
  att.inner.dispose();
  model.dispose();
});

test('async calls validate like the sync ones and own the model while in flight', async () => {
  const { dir } = writeTinyModel({ dtype: 'F16', seed: 5 });
  const model = await loadModel(dir, { engine: await engine });
  const att = model.createExactAttention();
  await rejects(() => model.forwardAsync([], att), 'E_ARG', 'tokens');
  await rejects(() => model.forwardAsync([99], att), 'E_ARG', 'tokens[0]', '[0, 11]');
  await rejects(() => model.forwardAsync([1], att, { allLogit: true } as never), 'E_ARG', 'allLogit');
  await rejects(() => model.generateAsync([], {}), 'E_ARG', 'prompt');
  await rejects(() => model.generateAsync('ab', { maxTokens: -1 }), 'E_ARG', 'maxTokens');
  assert.is(model.positionOf(att), 0, 'a rejected call changes nothing');
  const slow = asyncAttention(model);
  const inFlight = model.forwardAsync([1, 2, 3], slow);
  await rejects(() => model.forwardAsync([1], att), 'E_STATE', 'forwardAsync is still running');
  await rejects(() => model.forward([1], att), 'E_STATE', 'await it first');
  await rejects(() => model.generate('ab'), 'E_STATE');
  await rejects(() => model.dispose(), 'E_STATE', 'dispose');
  await inFlight;
  assert.equal(model.forward([4], att).length, 12);
  slow.inner.dispose();
  att.dispose();
  model.dispose();
});

if (!env.gpu) {
  console.log(`  gpu-runner WebGPU tests skipped: ${env.reason}`);
  test.skip('runner on WebGPU (no adapter)', () => {});
} else {
  const gpu = env.gpu;

  for (const dtype of ['F16', 'F32', 'BF16'] as const) {
    test(`forwardAsync with the GPU matvec matches forward: ${dtype} weights`, async () => {
      const tol = dtype === 'F16' ? GPU_F16_REL_TOL : GPU_F32_REL_TOL;
      const { dir } = writeTinyModel({ dtype, tie: dtype !== 'F32', seed: 11 });
      const model = await loadModel(dir, { engine: await engine, maxChunk: 3 });
      const ctx = await createWebGPUContext({ gpu, onNotice: () => {} });
      await model.useWebGPU(ctx);
      assert.is(model.webgpu, ctx);
      const err = await decodeDiff(model);
      console.log(`    ${dtype} tiny model: GPU vs WASM decode logits, max |diff| / max |logit| = ${err.toExponential(2)} (tolerance ${tol})`);
      assert.ok(err <= tol, `${err}`);
      assert.ok(err > 0 || dtype === 'F16', 'the f16 rounding of f32 weights shows');
      // split weight blocks compute the same rows the same way
      const whole = model.createExactAttention(), split = model.createExactAttention();
      await model.forwardAsync(PROMPT, whole);
      const y1 = await model.forwardAsync([7], whole);
      await model.useWebGPU(ctx, { maxBlockBytes: 3 * 2 * 38 });
      await model.forwardAsync(PROMPT, split);
      assert.equal(await model.forwardAsync([7], split), y1);
      model.releaseWebGPU();
      assert.is(model.webgpu, null);
      const again = model.createExactAttention();
      await model.forwardAsync(PROMPT, again);
      model.resetAttention(whole);
      model.forward(PROMPT, whole);
      assert.equal(await model.forwardAsync([7], again), model.forward([7], whole), 'after releaseWebGPU: WASM exactly');
      for (const a of [whole, split, again]) a.dispose();
      model.dispose();
      ctx.destroy();
    });
  }

  test('a device destroyed mid-generation: one notice, then the same continuation on WASM', async () => {
    const { dir } = writeTinyModel({ dtype: 'F16', seed: 12 });
    const model = await loadModel(dir, { engine: await engine });
    const want = model.generate([1, 4, 8], { maxTokens: 20, stopAtEos: false });
    const ctx = await createWebGPUContext({ gpu, onNotice: () => {} });
    const notices: string[] = [];
    await model.useWebGPU(ctx, { onNotice: (m) => notices.push(m) });
    const got = await model.generateAsync([1, 4, 8], {
      maxTokens: 20, stopAtEos: false,
      onToken: (_id, i) => { if (i === 5) ctx.device.destroy(); },
    });
    assert.equal(got.ids, want.ids);
    assert.is(notices.length, 1, notices.join('\n'));
    assert.ok(notices[0].includes('continues on the WASM kernels'), notices[0]);
    assert.is(model.webgpu, null);
    const a = model.createExactAttention(), b = model.createExactAttention();
    assert.equal(await model.forwardAsync([1, 4], b), model.forward([1, 4], a));
    assert.equal(await model.forwardAsync([8], b), model.forward([8], a));
    assert.is(notices.length, 1, 'noticed once');
    await ctx.device.lost; // some runtimes report the loss a task later
    await rejects(() => model.useWebGPU(ctx), 'E_BACKEND', 'lost');
    a.dispose();
    b.dispose();
    model.dispose();
  });

  test('a context destroyed between calls: noticed once by the next call, nothing lost', async () => {
    const { dir } = writeTinyModel({ dtype: 'F16', seed: 13 });
    const model = await loadModel(dir, { engine: await engine });
    const ctx = await createWebGPUContext({ gpu, onNotice: () => {} });
    const notices: string[] = [];
    await model.useWebGPU(ctx, { onNotice: (m) => notices.push(m) });
    const a = model.createExactAttention(), b = model.createExactAttention();
    await model.forwardAsync([1, 4, 8], b);
    model.forward([1, 4, 8], a);
    ctx.destroy();
    assert.is(model.webgpu, null);
    assert.equal(await model.forwardAsync([5], b), model.forward([5], a));
    assert.is(notices.length, 1);
    a.dispose();
    b.dispose();
    model.dispose();
  });

  test('useWebGPU rejects bad inputs with typed errors and changes nothing', async () => {
    const { dir, tensors } = writeTinyModel({ dtype: 'F32', seed: 14 });
    const model = await loadModel(dir, { engine: await engine });
    const ctx = await createWebGPUContext({ gpu, onNotice: () => {} });
    await rejects(() => model.useWebGPU({} as never), 'E_ARG', 'context', 'WebGPUContext');
    await rejects(() => model.useWebGPU(undefined as never), 'E_ARG', 'context');
    await rejects(() => model.useWebGPU(ctx, { notice: () => {} } as never), 'E_ARG', 'options.notice');
    await rejects(() => model.useWebGPU(ctx, { onNotice: 'warn' as never }), 'E_ARG', 'options.onNotice');
    await rejects(() => model.useWebGPU(ctx, { maxBlockBytes: 1 }), 'E_ARG', 'options.maxBlockBytes');
    await rejects(() => model.useWebGPU(ctx, { maxBlockBytes: 2 ** 52 }), 'E_ARG', 'options.maxBlockBytes');
    const e = await rejects(() => model.useWebGPU(ctx, { maxBlockBytes: 40 }), 'E_UNSUPPORTED', 'self_attn.q_proj.weight', '40 bytes');
    assert.is(e.argument, 'model.layers.0.self_attn.q_proj.weight');
    assert.is(model.webgpu, null, 'a rejected call changes nothing');
    // an f32 weight outside the f16 range
    const down = tensors.find((t) => t.name === 'model.layers.1.mlp.down_proj.weight')!;
    new Float32Array(down.data.buffer, down.data.byteOffset, down.data.byteLength / 4)[3 * 37 + 5] = -1e5;
    writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors));
    const big = await loadModel(dir, { engine: await engine });
    await model.useWebGPU(ctx);
    const e2 = await rejects(() => big.useWebGPU(ctx), 'E_UNSUPPORTED', '"model.layers.1.mlp.down_proj.weight"', '-100000', 'row 3, column 5', '[-65504, 65504]');
    assert.is(e2.argument, 'model.layers.1.mlp.down_proj.weight');
    assert.is(big.webgpu, null);
    big.dispose();
    // the same model uploaded again replaces the previous upload; a failed replacement keeps it
    await rejects(() => model.useWebGPU(ctx, { maxBlockBytes: 40 }), 'E_UNSUPPORTED');
    assert.is(model.webgpu, ctx);
    const att = model.createExactAttention();
    const inFlight = model.forwardAsync([1], att);
    await rejects(() => model.useWebGPU(ctx), 'E_STATE', 'forwardAsync is still running');
    assert.throws(() => model.releaseWebGPU(), (x: unknown) => x instanceof EdgeKVError && x.code === 'E_STATE');
    await inFlight;
    ctx.destroy();
    await rejects(() => model.useWebGPU(ctx), 'E_STATE', 'destroyed');
    att.dispose();
    model.dispose();
    await rejects(() => model.useWebGPU(ctx), 'E_STATE', 'disposed');
  });

  (stories ? test : test.skip)('stories260K: GPU decode logits within tolerance, 20 greedy tokens identical to generate', async () => {
    const model = await loadModel(stories!, { engine: await engine });
    const ctx = await createWebGPUContext({ gpu, onNotice: () => {} });
    await model.useWebGPU(ctx);
    const prompt = model.tokenizer.encode('Once upon a time, there was a little girl', { addSpecialTokens: true });
    const err = await decodeDiff(model, prompt, [263, 300, 113, 4, 301, 88]);
    console.log(`    stories260K (f32 checkpoint, f16 on the GPU): max |diff| / max |logit| = ${err.toExponential(2)} (tolerance ${GPU_F32_REL_TOL})`);
    assert.ok(err <= GPU_F32_REL_TOL, `${err}`);
    const want = model.generate('Once upon a time', { maxTokens: 20, stopAtEos: false });
    const got = await model.generateAsync('Once upon a time', { maxTokens: 20, stopAtEos: false });
    assert.equal(got.generated, want.generated, `${got.text} vs ${want.text}`);
    assert.is(got.decodeTokens, 19);
    model.dispose();
    ctx.destroy();
  });
}

test.run();

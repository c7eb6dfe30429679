/**
 * The runner on a tiny random checkpoint written here (odd sizes: SIMD tails everywhere),
 * against a float64 reference forward pass: f32 / f16 / bf16 weights, tied and separate LM
 * head, SIMD and scalar builds, chunking, prefill == token-by-token decode, the
 * AttentionBackend contract, generation, config validation and damaged weights.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createEngine, type Engine } from '../../src/engine.ts';
import { EdgeKVError } from '../../src/errors.ts';
import { loadModel, shiftF16Exponents } from '../../src/model/llama.ts';
import { f16ToNumber } from '../../src/reference/basic.ts';
import { parseLlamaConfig } from '../../src/model/config.ts';
import { ExactAttention } from '../../src/model/exact-attention.ts';
import { Sampler, topK } from '../../src/model/sampling.ts';
import type { AttentionBackend } from '../../src/model/types.ts';
import { referenceForward, safetensorsBytes, writeTinyModel, TINY } from './fixtures.ts';

/** f32 forward vs float64 reference on the tiny model (logits of magnitude ~1-10). */
const TINY_LOGIT_TOL = 2e-4;
const IDS = [1, 3, 8, 3, 6, 11, 4, 5, 7, 9, 10, 2, 0, 6];

const engines: Promise<Engine[]> = Promise.all([createEngine({ backend: 'wasm-simd' }), createEngine({ backend: 'wasm-scalar' })]);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.is(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function rejects(p: Promise<unknown> | (() => unknown), code: string, ...fragments: string[]): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.instance(e, EdgeKVError, String(e));
    assert.is((e as EdgeKVError).code, code, (e as Error).message);
    for (const f of fragments) assert.ok((e as Error).message.includes(f), `${(e as Error).message} lacks ${f}`);
    return;
  }
  assert.unreachable(`should throw ${code}`);
}

for (const dtype of ['F32', 'F16', 'BF16'] as const) {
  for (const tie of [true, false]) {
    test(`forward matches the float64 reference: ${dtype} weights, ${tie ? 'tied' : 'separate'} LM head, SIMD and scalar`, async () => {
      const { dir, weights } = writeTinyModel({ dtype, tie, seed: dtype.length + (tie ? 10 : 20) });
      const want = referenceForward(weights, IDS);
      for (const engine of await engines) {
        const model = await loadModel(dir, { engine, maxChunk: 5 });
        assert.is(model.config.vocabSize, TINY.vocab);
        const att = model.createExactAttention({ initialCapacity: 3 });
        const all = model.forward(IDS, att, { allLogits: true });
        const err = maxDiff(all, want);
        assert.ok(err <= TINY_LOGIT_TOL, `${engine.backend}: max |logit diff| ${err}`);
        // the last-token form agrees with the last row
        model.resetAttention(att);
        const last = model.forward(IDS, att);
        assert.ok(maxDiff(last, all.subarray((IDS.length - 1) * TINY.vocab)) <= 1e-6);
        att.dispose();
        model.dispose();
      }
    });
  }
}

test('shiftF16Exponents multiplies every finite f16 by 2^k exactly (subnormals become normal)', () => {
  for (const k of [1, 5, 10]) {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i).filter((h) => ((h >> 10) & 0x1f) + k <= 30 && ((h >> 10) & 0x1f) !== 0x1f);
    const shifted = all.slice();
    shiftF16Exponents(shifted, k);
    for (let i = 0; i < all.length; i++) {
      const want = f16ToNumber(all[i]) * 2 ** k;
      if (!Object.is(f16ToNumber(shifted[i]), want)) assert.unreachable(`k=${k} h=0x${all[i].toString(16)}: got ${f16ToNumber(shifted[i])}, want ${want}`);
      if (k === 10 && (all[i] & 0x7fff) !== 0) assert.ok((shifted[i] & 0x7c00) !== 0, 'normal after a shift by 10');
    }
  }
});

test('f16 checkpoints with subnormal weights load shifted and still match the reference', async () => {
  const { dir, weights, tensors } = writeTinyModel({ dtype: 'F16', seed: 12 });
  // make ~10% of one matrix subnormal, in the file and in the reference weights
  const t = tensors.find((x) => x.name === 'model.layers.0.mlp.up_proj.weight')!;
  const h = new Uint16Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 2);
  const ref = weights.layers[0].up as Uint16Array;
  for (let i = 0; i < h.length; i += 10) { h[i] = (h[i] & 0x8000) | (i % 1023) + 1; ref[i] = h[i]; }
  writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors));
  const want = referenceForward(weights, IDS);
  for (const engine of await engines) {
    const model = await loadModel(dir, { engine });
    const err = maxDiff(model.forward(IDS, model.createExactAttention(), { allLogits: true }), want);
    assert.ok(err <= TINY_LOGIT_TOL, `${engine.backend}: ${err}`);
    model.dispose();
  }
});

test('prefill in chunks == one chunk == token-by-token decode; positions continue per backend', async () => {
  const { dir } = writeTinyModel({ dtype: 'F16', seed: 3 });
  const [engine] = await engines;
  const big = await loadModel(dir, { engine, maxChunk: 64 });
  const small = await loadModel(dir, { engine, maxChunk: 4 });
  const a1 = big.createExactAttention(), a2 = small.createExactAttention(), a3 = small.createExactAttention();
  const ref = big.forward(IDS, a1, { allLogits: true });
  const chunked = small.forward(IDS, a2, { allLogits: true });
  assert.ok(maxDiff(ref, chunked) <= 1e-5);
  const steps = new Float32Array(IDS.length * TINY.vocab);
  for (let i = 0; i < IDS.length; i++) steps.set(small.forward([IDS[i]], a3), i * TINY.vocab);
  assert.ok(maxDiff(ref, steps) <= 1e-5, `decode vs prefill ${maxDiff(ref, steps)}`);
  assert.is(small.positionOf(a3), IDS.length);
  assert.is(a3.length(0), IDS.length);
  // onLogits sees every token, in order
  const seen: number[] = [];
  small.forward(IDS, small.createExactAttention(), { onLogits: (i, l) => { seen.push(i); assert.is(l.length, TINY.vocab); } });
  assert.equal(seen, IDS.map((_, i) => i));
});

test('the runner drives any AttentionBackend: append then attend, per layer and token, with positions', async () => {
  const { dir } = writeTinyModel({ dtype: 'F32', seed: 4 });
  const [engine] = await engines;
  const model = await loadModel(dir, { engine });
  const exact = model.createExactAttention();
  const calls: string[] = [];
  // A backend written in plain JS on top of the exact one (copies, as a user's cache would).
  const wrapped: AttentionBackend = {
    append(layer, keys, values, positions) {
      calls.push(`a${layer}:${positions?.[0]}`);
      assert.is(keys.length, TINY.kvHeads * TINY.headDim);
      exact.append(layer, keys.slice(), values.slice(), positions?.slice());
    },
    attend(layer, queries) {
      calls.push(`q${layer}`);
      return exact.attend(layer, queries.slice()); // returns a fresh array (not `out`)
    },
  };
  const ref = model.forward([1, 4, 5], model.createExactAttention());
  const got = model.forward([1, 4, 5], wrapped);
  assert.ok(maxDiff(ref, got) <= 1e-6);
  assert.equal(calls.slice(0, 6), ['a0:0', 'q0', 'a0:1', 'q0', 'a0:2', 'q0']);
  assert.is(calls.length, 2 * 3 * TINY.layers);
  const bad: AttentionBackend = { append() {}, attend: () => new Float32Array(3) };
  await rejects(() => model.forward([1], bad), 'E_STATE', 'attention.attend');
});

test('ExactAttention validates its input and changes nothing on rejection', async () => {
  const [engine] = await engines;
  const g = { layers: 2, qHeads: 4, kvHeads: 2, headDim: 6 };
  const att = new ExactAttention(engine, g, { initialCapacity: 1 });
  await rejects(() => att.attend(0, new Float32Array(24)), 'E_STATE', 'nothing has been appended');
  await rejects(() => att.append(2, new Float32Array(12), new Float32Array(12)), 'E_ARG', 'layer');
  await rejects(() => att.append(0, new Float32Array(11), new Float32Array(11)), 'E_SHAPE', 'keys');
  await rejects(() => att.append(0, new Float32Array(12), new Float32Array(24)), 'E_SHAPE', 'values');
  await rejects(() => att.append(0, new Float32Array(12), new Float32Array(12), new Int32Array(2)), 'E_SHAPE', 'positions');
  const nan = new Float32Array(12); nan[5] = NaN;
  await rejects(() => att.append(0, nan, new Float32Array(12)), 'E_NONFINITE', 'keys[5]');
  assert.is(att.length(0), 0);
  // multi-token append in [kvHeads, tokens, headDim] layout equals token-by-token
  const k = Float32Array.from({ length: 2 * 3 * 6 }, (_, i) => Math.sin(i)), v = Float32Array.from(k, (x) => x * 2);
  att.append(0, k, v);
  const other = new ExactAttention(engine, g, { initialCapacity: 1 });
  for (let t = 0; t < 3; t++) {
    const kt = new Float32Array(12), vt = new Float32Array(12);
    for (let h = 0; h < 2; h++) { kt.set(k.subarray((h * 3 + t) * 6, (h * 3 + t + 1) * 6), h * 6); vt.set(v.subarray((h * 3 + t) * 6, (h * 3 + t + 1) * 6), h * 6); }
    other.append(0, kt, vt);
  }
  const q = Float32Array.from({ length: 24 }, (_, i) => Math.cos(i));
  assert.ok(maxDiff(att.attend(0, q), other.attend(0, q)) <= 1e-7);
  await rejects(() => att.attend(0, new Float32Array(23)), 'E_SHAPE', 'queries');
  assert.is(att.bytes, 3 * 2 * 12 * 4);
  att.reset();
  assert.is(att.length(0), 0);
  att.dispose(); other.dispose();
  await rejects(() => att.append(0, k, v), 'E_STATE', 'disposed');
});

test('forward rejects bad tokens and options', async () => {
  const { dir } = writeTinyModel({ seed: 5 });
  const [engine] = await engines;
  const model = await loadModel(dir, { engine });
  const att = model.createExactAttention();
  await rejects(() => model.forward([], att), 'E_ARG', 'tokens');
  await rejects(() => model.forward([TINY.vocab], att), 'E_ARG', 'tokens[0]');
  await rejects(() => model.forward([1.5], att), 'E_ARG', 'tokens[0]');
  await rejects(() => model.forward([1], att, { allLogit: true } as never), 'E_ARG', 'allLogit');
  await rejects(() => model.forward([1], {} as never), 'E_ARG', 'attention');
  await rejects(() => model.forward([1], att, { logitsOut: new Float32Array(3) }), 'E_ARG', 'logitsOut');
  assert.is(model.positionOf(att), 0);
  model.dispose();
  await rejects(() => model.forward([1], att), 'E_STATE', 'disposed');
});

test('generate: greedy equals repeated argmax; seeded sampling is reproducible; eos stops', async () => {
  const { dir, weights } = writeTinyModel({ dtype: 'F32', seed: 6 });
  const [engine] = await engines;
  const model = await loadModel(dir, { engine });
  const g = model.generate([1, 4], { maxTokens: 6, stopAtEos: false });
  const ids = [1, 4];
  for (let i = 0; i < 6; i++) {
    const l = referenceForward(weights, ids).subarray((ids.length - 1) * TINY.vocab);
    ids.push(topK(l, 1)[0]);
  }
  assert.equal(g.ids, ids);
  assert.is(g.generated.length, 6);
  assert.is(g.promptTokens, 2);
  assert.ok(g.prefillTokensPerSec > 0 && g.decodeTokensPerSec > 0);
  const s1 = model.generate('ab', { maxTokens: 8, temperature: 1.5, topK: 5, seed: 42, stopAtEos: false });
  const s2 = model.generate('ab', { maxTokens: 8, temperature: 1.5, topK: 5, seed: 42, stopAtEos: false });
  assert.equal(s1.ids, s2.ids);
  const eos = model.generate([1, 4], { maxTokens: 50, eosTokenIds: [g.generated[2]] });
  assert.is(eos.stoppedBy, 'eos');
  assert.is(eos.generated.length, g.generated.indexOf(g.generated[2]) + 1);
  await rejects(() => model.generate('ab', { temperature: -1 }), 'E_ARG', 'temperature');
  await rejects(() => model.generate('ab', { maxTokens: 2.5 }), 'E_ARG', 'maxTokens');
});

test('Sampler: top-k restricts the support, temperature 0 is argmax', () => {
  const logits = [0, 5, 1, 4, 3];
  assert.equal(topK(logits, 3), [1, 3, 4]);
  assert.is(new Sampler().next(logits), 1);
  const s = new Sampler({ temperature: 10, topK: 2, seed: 1 });
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(s.next(logits));
  assert.equal([...seen].sort(), [1, 3]);
});

test('config.json: unsupported architectures and malformed fields are named', async () => {
  const base = writeTinyModel({ seed: 7 }).config;
  const cases: Array<[Record<string, unknown>, string, string]> = [
    [{ model_type: 'gpt2' }, 'E_UNSUPPORTED', '"model_type"'],
    [{ architectures: ['MistralForCausalLM'] }, 'E_UNSUPPORTED', '"architectures"'],
    [{ attention_bias: true }, 'E_UNSUPPORTED', '"attention_bias"'],
    [{ hidden_act: 'gelu' }, 'E_UNSUPPORTED', '"hidden_act"'],
    [{ rope_scaling: { rope_type: 'llama3', factor: 8 } }, 'E_UNSUPPORTED', '"rope_scaling"'],
    [{ hidden_size: 0 }, 'E_MODEL', '"hidden_size"'],
    [{ num_key_value_heads: 3 }, 'E_MODEL', '"num_key_value_heads"'],
    [{ head_dim: 5 }, 'E_MODEL', '"head_dim"'],
    [{ eos_token_id: 'x' }, 'E_MODEL', '"eos_token_id"'],
  ];
  for (const [patch, code, frag] of cases) {
    await rejects(() => parseLlamaConfig(JSON.stringify({ ...base, ...patch }), '/m/config.json'), code, '/m/config.json', frag);
  }
  await rejects(() => parseLlamaConfig('{', '/m/config.json'), 'E_MODEL', 'not valid JSON');
  const c = parseLlamaConfig(JSON.stringify({ ...base, hidden_size: 24, num_key_value_heads: undefined, head_dim: undefined, rope_theta: undefined }));
  assert.is(c.kvHeads, c.qHeads);
  assert.is(c.headDim, Math.floor(c.hiddenSize / c.qHeads));
  assert.is(c.ropeTheta, 10000);
});

test('loadModel: missing files, missing or misshaped tensors, non-finite weights — E_MODEL naming file and field', async () => {
  const [engine] = await engines;
  const before = engine.arena.bytesInUse;
  const { dir, tensors } = writeTinyModel({ dtype: 'F16', seed: 8 });
  const write = (ts: typeof tensors): void => writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(ts));
  write(tensors.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight'));
  await rejects(loadModel(dir, { engine }), 'E_MODEL', '"model.layers.1.mlp.up_proj.weight"', 'missing');
  write(tensors.map((t) => (t.name === 'model.norm.weight' ? { ...t, shape: [2, TINY.hidden / 2] } : t)));
  await rejects(loadModel(dir, { engine }), 'E_MODEL', '"model.norm.weight"', 'config.json implies');
  const nan = tensors.map((t) => (t.name === 'model.layers.0.self_attn.k_proj.weight' ? { ...t, data: Uint8Array.from(t.data, (b, i) => (i === 7 ? 0x7e : b)) } : t));
  write(nan);
  await rejects(loadModel(dir, { engine }), 'E_MODEL', '"model.layers.0.self_attn.k_proj.weight"', 'non-finite');
  assert.is(engine.arena.bytesInUse, before, 'a failed load gives its memory back');
  const untied = writeTinyModel({ tie: false, seed: 9 });
  writeFileSync(join(untied.dir, 'model.safetensors'), safetensorsBytes(untied.tensors.filter((t) => t.name !== 'lm_head.weight')));
  await rejects(loadModel(untied.dir, { engine }), 'E_MODEL', 'lm_head.weight');
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": 3}');
  await rejects(loadModel(dir, { engine }), 'E_MODEL', 'tokenizer.json');
  await rejects(loadModel(join(dir, 'nope'), { engine }), 'E_MODEL', 'config.json', 'is missing');
  await rejects(loadModel(dir, { engine, maxChunk: 0 }), 'E_ARG', 'maxChunk');
});

test('an edgekv cache (policy full, f32 and f16) drops in as the AttentionBackend', async () => {
  const g = { ...TINY, headDim: 8, hidden: 24 };
  const { dir, weights } = writeTinyModel({ dtype: 'F32', seed: 13, g });
  const [engine] = await engines;
  const model = await loadModel(dir, { engine, maxChunk: 5 });
  const want = referenceForward(weights, IDS);
  const exact = model.forward(IDS, model.createExactAttention(), { allLogits: true });
  for (const precision of ['f32', 'f16'] as const) {
    const cache = engine.createCache({ layers: g.layers, qHeads: g.qHeads, kvHeads: g.kvHeads, headDim: g.headDim, policy: 'full', precision, exactPrecision: precision });
    const got = model.forward(IDS, cache, { allLogits: true });
    const tol = precision === 'f32' ? TINY_LOGIT_TOL : 2e-2;
    assert.ok(maxDiff(got, want) <= tol, `${precision}: ${maxDiff(got, want)}`);
    if (precision === 'f32') assert.ok(maxDiff(got, exact) <= 1e-4);
    cache.dispose();
  }
});

test.run();

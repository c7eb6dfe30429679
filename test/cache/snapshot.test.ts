import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine } from '../../src/engine.ts';
import { loadCache, crc32 } from '../../src/cache/snapshot.ts';
import type { KVCache } from '../../src/cache/cache.ts';
import type { CacheOptions } from '../../src/cache/options.ts';
import { EdgeKVError } from '../../src/errors.ts';
import { catchErr, prng, randn } from './helpers.ts';

const simd = await createEngine({ backend: 'wasm-simd' });
const scalar = await createEngine({ backend: 'wasm-scalar' });

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One decode step on every layer with inputs from `rnd`; returns the attend outputs. */
function step(c: KVCache, rnd: () => number): Float32Array[] {
  const { layers, kvHeads, qHeads, headDim: d } = c.options;
  const outs: Float32Array[] = [];
  for (let l = 0; l < layers; l++) {
    c.append(l, randn(kvHeads * d, rnd), randn(kvHeads * d, rnd));
    outs.push(c.attend(l, randn(qHeads * d, rnd)));
  }
  return outs;
}

function build(opts: CacheOptions, seed: number, steps: number): KVCache {
  const rnd = prng(seed);
  const c = simd.createCache(opts);
  const { layers, kvHeads, qHeads, headDim: d } = c.options;
  for (let l = 0; l < layers; l++) {
    c.observe(l, randn(2 * qHeads * d, rnd));
    c.append(l, randn(kvHeads * 70 * d, rnd), randn(kvHeads * 70 * d, rnd));
  }
  for (let s = 0; s < steps; s++) step(c, rnd);
  return c;
}

const r = suite('snapshots: round trip');

r('save / load is bit-exact and the restored cache evolves exactly like the original for 200 steps', () => {
  const configs: CacheOptions[] = [
    { layers: 2, qHeads: 4, kvHeads: 2, headDim: 16, policy: 'h2o', budget: { tokens: 60 }, precision: 'int4', windowTokens: 8, slack: 8 },
    { layers: 2, qHeads: 4, kvHeads: 2, headDim: 16, policy: { name: 'snapkv', window: 4 }, budget: { bytes: 40000 }, planner: 'pyramid', precision: 'int8', hadamard: true, windowTokens: 8 },
    { layers: 2, qHeads: 2, kvHeads: 1, headDim: 8, policy: 'uniform', budget: { tokens: 50 }, precision: 'int2', seed: 42, windowTokens: 4, slack: 5 },
    { layers: 1, qHeads: 2, kvHeads: 2, headDim: 32, policy: 'full', precision: 'f16', exactPrecision: 'f32' },
    { layers: 2, qHeads: 2, kvHeads: 1, headDim: 16, policy: 'tova', planner: [40, { tokens: 70, precision: 'int4' }], windowTokens: 4 },
  ];
  for (const [i, opts] of configs.entries()) {
    const a = build(opts, i, 30);
    const bytes = a.save();
    const b = loadCache(simd, bytes);
    assert.ok(equalBytes(b.save(), bytes), `config ${i}: save(load(x)) == x`);
    assert.equal(b.options, a.options);
    const ra = prng(1000 + i), rb = prng(1000 + i);
    for (let s = 0; s < 200; s++) {
      const oa = step(a, ra), ob = step(b, rb);
      for (let l = 0; l < oa.length; l++) assert.ok(equalBytes(new Uint8Array(oa[l].buffer), new Uint8Array(ob[l].buffer)), `config ${i} step ${s} layer ${l}: identical attention`);
    }
    assert.ok(equalBytes(a.save(), b.save()), `config ${i}: identical after 200 more steps`);
    // Another backend reads the same bytes and writes them back unchanged.
    const c = loadCache(scalar, a.save());
    assert.ok(equalBytes(c.save(), a.save()), `config ${i}: wasm-scalar round trip`);
    a.dispose(); b.dispose(); c.dispose();
  }
});

r('loadCache refuses a snapshot of another geometry, foreign bytes and bad arguments', () => {
  const a = build({ layers: 2, qHeads: 4, kvHeads: 2, headDim: 16, policy: 'h2o', budget: { tokens: 60 }, windowTokens: 8 }, 1, 3);
  const bytes = a.save();
  assert.is(loadCache(simd, bytes, { expect: { layers: 2, headDim: 16 } }).options.layers, 2);
  const e = catchErr(() => loadCache(simd, bytes, { expect: { headDim: 64 } }));
  assert.is(e.code, 'E_SNAPSHOT');
  assert.match(e.message, /headDim is 16, expected 64/);
  assert.is(catchErr(() => loadCache(simd, bytes, { expect: { heads: 2 } as never })).code, 'E_ARG');
  assert.is(catchErr(() => loadCache(simd, bytes, { strict: true } as never)).code, 'E_ARG');
  assert.is(catchErr(() => loadCache(simd, new Float32Array(8) as never)).code, 'E_ARG');
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 1, 2, 3, 4, 5, 6]);
  assert.match(catchErr(() => loadCache(simd, png)).message, /magic/);
  assert.match(catchErr(() => loadCache(simd, new Uint8Array(0))).message, /too short/);
  const v2 = bytes.slice(); v2[4] = 2;
  assert.match(catchErr(() => loadCache(simd, v2)).message, /version 2/);
});

const f = suite('snapshots: fuzz');

f('2000 mutated / truncated snapshots: always E_SNAPSHOT or an identical, consistent cache; nothing leaks', () => {
  const a = build({ layers: 2, qHeads: 2, kvHeads: 1, headDim: 8, policy: { name: 'snapkv', window: 2 }, budget: { tokens: 48 }, precision: 'int4', windowTokens: 8, slack: 4 }, 7, 20);
  // h2o state as well: a second source snapshot with per-entry state.
  const a2 = build({ layers: 1, qHeads: 2, kvHeads: 1, headDim: 8, policy: 'h2o', budget: { tokens: 40 }, precision: 'f16', windowTokens: 4, slack: 4 }, 8, 20);
  const sources = [a.save(), a2.save()];
  const rnd = prng(12345);
  const before = simd.arena.bytesInUse;
  const counts = { rejected: 0, loaded: 0 };
  const fixCrc = (b: Uint8Array) => { new DataView(b.buffer).setUint32(b.length - 4, crc32(b.subarray(0, b.length - 4)), true); };
  const headerLen = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset).getUint32(8, true);
  for (let i = 0; i < 2000; i++) {
    const src = sources[i % 2];
    let m: Uint8Array;
    const kind = i % 5;
    if (kind === 0) {
      m = src.slice(0, Math.floor(rnd() * src.length)); // truncated
    } else if (kind === 1 || kind === 2) {
      m = src.slice();
      const flips = 1 + Math.floor(rnd() * 4);
      for (let j = 0; j < flips; j++) m[Math.floor(rnd() * m.length)] ^= 1 + Math.floor(rnd() * 255);
      if (kind === 2) fixCrc(m); // checksum fixed: the structure checks must catch it
    } else if (kind === 3) {
      // Edit one number of the JSON header, keep the lengths and checksum consistent.
      const hl = headerLen(src);
      const text = new TextDecoder().decode(src.subarray(12, 12 + hl));
      const nums = [...text.matchAll(/-?\d+(\.\d+)?(e-?\d+)?/g)];
      const pick = nums[Math.floor(rnd() * nums.length)];
      const choices = ['0', '-1', '1', '2', '31', '32', '33', '1e9', '0.5', 'null', '"x"', '[]', String(Number(pick[0]) + 1), String(Number(pick[0]) - 1)];
      const edited = text.slice(0, pick.index!) + choices[Math.floor(rnd() * choices.length)] + text.slice(pick.index! + pick[0].length);
      const eb = new TextEncoder().encode(edited);
      m = new Uint8Array(src.length - hl + eb.length);
      m.set(src.subarray(0, 12)); m.set(eb, 12); m.set(src.subarray(12 + hl), 12 + eb.length);
      new DataView(m.buffer).setUint32(8, eb.length, true);
      fixCrc(m);
    } else {
      // Extra or missing bytes in the body with a valid checksum.
      const at = 12 + Math.floor(rnd() * (src.length - 16));
      m = rnd() < 0.5
        ? new Uint8Array([...src.subarray(0, at), 0, 0, 0, 0, ...src.subarray(at)])
        : new Uint8Array([...src.subarray(0, at), ...src.subarray(at + 1 + Math.floor(rnd() * 8))]);
      fixCrc(m);
    }
    let c: KVCache | undefined;
    try {
      c = loadCache(simd, m);
    } catch (e) {
      assert.ok(e instanceof EdgeKVError, `mutation ${i}: ${(e as Error).stack}`);
      assert.is((e as EdgeKVError).code, 'E_SNAPSHOT', `mutation ${i}: ${(e as Error).message}`);
      assert.ok((e as Error).message.startsWith('snapshot rejected: '));
      assert.is(simd.arena.bytesInUse, before, `mutation ${i}: a rejected load frees everything`);
      counts.rejected++;
      continue;
    }
    // Accepted: it must be exactly what the bytes say, and work.
    counts.loaded++;
    assert.ok(equalBytes(c.save(), m), `mutation ${i}: accepted bytes round-trip exactly`);
    const st = c.stats();
    for (let l = 0; l < c.options.layers; l++) {
      if (c.lane(l, 0).tokens === 0) continue;
      const out = c.attend(l, randn(c.options.qHeads * c.options.headDim, rnd));
      assert.ok(out.every(Number.isFinite), `mutation ${i}: finite attention`);
    }
    assert.ok(st.lanes.every((l) => l.tokens <= l.cap));
    c.dispose();
  }
  assert.ok(counts.rejected > 1500, `most mutations rejected (${counts.rejected})`);
  assert.is(simd.arena.bytesInUse, before);
});

r.run();
f.run();

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine } from '../../src/engine.ts';
import { laneBytesBound } from '../../src/budget/types.ts';
import { loadCache } from '../../src/cache/snapshot.ts';
import { Rng } from '../../src/cache/rng.ts';
import { hammingRows } from '../../src/ops/basic.ts';
import { topK } from '../../src/policies/selector.ts';
import {
  KVCRUSH_ANCHORS, blockBits, kthLargest, createKVCrush, evenlySpacedRanks, hammingJS, makeAnchor, representatives, topHalfBits,
  type KVCrushConfig,
} from '../../src/policies/kvcrush.ts';
import type { PolicyContext } from '../../src/policies/types.ts';
import { catchErr, prng, randn } from '../cache/helpers.ts';

const engine = await createEngine({ backend: 'wasm-simd' });
const scalar = await createEngine({ backend: 'wasm-scalar' });

const BASE: KVCrushConfig = { rho: 0.25, anchor: 'alternate', bits: 'heads', window: 8, granularity: 'token', blockTokens: 4 };

/**
 * A fake lane context: `E` evictable entries (no sinks / window), a GQA group of `G`
 * heads whose window attention is `probs` `[rows][E]` (rows = queries × G).
 */
function fakeCtx(E: number, G: number, probs: Float32Array | null, rng = new Rng(1), hamming = true): PolicyContext {
  const rows = probs ? probs.length / E : 0;
  return {
    geometry: { layers: 1, qHeads: G, kvHeads: 1, headDim: 8, groupSize: G },
    layer: 0, kvHead: 0, tokens: E, evictStart: 0, evictable: E,
    entryState: new Float64Array(0), rng,
    positions: () => Int32Array.from({ length: E }, (_, i) => i),
    keys: () => new Float32Array(E * 8),
    logWeights: () => new Float32Array(E),
    windowQueries: () => ({ queries: new Float32Array((rows / G) * G * 8), count: rows / G }),
    attention: (_q, r) => { assert.is(r, rows); return probs!; },
    ...(hamming ? { hamming: (b: Uint32Array, w: number, a: Uint32Array) => hammingRows(engine, b, w, a) } : {}),
  };
}

function count(mask: Uint8Array): number { let n = 0; for (const x of mask) n += x; return n; }

const u = suite('kvcrush: building blocks');

u('top-half bits: one bit per row, floor(n/2) set per row, ties to the higher index', () => {
  const vals = Float64Array.from([5, 1, 3, 3, 0, 9, /* row 1 */ 0, 0, 0, 0, 0, 0]);
  const r = topHalfBits(vals, 2, 6);
  assert.is(r.words, 1);
  const b0 = Array.from(r.bits, (x) => x & 1), b1 = Array.from(r.bits, (x) => (x >> 1) & 1);
  assert.equal(b0, [1, 0, 0, 1, 0, 1]); // 9, 5, then the later of the two 3s
  assert.equal(b1, [0, 0, 0, 1, 1, 1]); // all equal: the three latest
  const wide = topHalfBits(new Float64Array(40 * 3), 40, 3); // 40 rows -> 2 words
  assert.is(wide.words, 2);
});

u('quickselect: k-th largest equals the sorted answer, bits equal the selector\'s top half (ties included)', () => {
  const rnd = prng(21);
  for (const n of [1, 2, 3, 7, 8, 9, 63, 64, 65, 257]) {
    for (const ties of [false, true]) {
      const row = Float64Array.from({ length: n }, () => (ties ? Math.floor(rnd() * 4) : rnd()));
      const sorted = Array.from(row).sort((a, b) => b - a);
      for (const k of [1, Math.max(1, n >> 1), n]) assert.is(kthLargest(row.slice(), n, k), sorted[k - 1], `n ${n} k ${k}`);
      const mask = topK(row, n >> 1);
      const r = topHalfBits(row, 1, n);
      assert.equal(Array.from(r.bits, (x) => x & 1), Array.from(mask), `n ${n} ties ${ties}`);
    }
  }
});

u('block rows concatenate their entries\' vectors, the last block zero-padded', () => {
  const tok = { bits: Uint32Array.from([0b01, 0b10, 0b11, 0b00, 0b01]), units: 5, words: 1, nbits: 2 };
  const b = blockBits(tok, 2);
  assert.is(b.units, 3);
  assert.is(b.nbits, 4);
  assert.equal(Array.from(b.bits), [0b1001, 0b0011, 0b0001]);
});

u('every anchor: zeros, ones, alternate, mean (majority), random (seeded, tail bits clear)', () => {
  const rows = { bits: Uint32Array.from([0b0111, 0b0101, 0b0001, 0b1000]), units: 4, words: 1, nbits: 4 };
  const never = () => { throw new Error('no random bits wanted'); };
  assert.equal(Array.from(makeAnchor('zeros', rows, never)), [0]);
  assert.equal(Array.from(makeAnchor('ones', rows, never)), [0b1111]);
  assert.equal(Array.from(makeAnchor('alternate', rows, never)), [0b1010]);
  // bit0: 3 of 4 -> 1; bit1: 1 of 4 -> 0; bit2: 2 of 4 (not more than half) -> 0; bit3: 1 -> 0
  assert.equal(Array.from(makeAnchor('mean', rows, never)), [0b0001]);
  const r1 = makeAnchor('random', { ...rows, nbits: 37, words: 2, bits: new Uint32Array(8) }, () => 0xffffffff);
  assert.equal(Array.from(r1), [0xffffffff, 0b11111]);
  const a = new Rng(7), b = new Rng(7);
  assert.equal(makeAnchor('random', rows, () => a.nextU32()), makeAnchor('random', rows, () => b.nextU32()));
  assert.equal(KVCRUSH_ANCHORS.length, 5);
});

u('hamming: WASM kernel (SIMD and scalar) equals the TypeScript popcount', () => {
  const rnd = prng(3);
  for (const words of [1, 3, 4, 5, 9]) {
    const n = 37;
    const bits = Uint32Array.from({ length: n * words }, () => Math.floor(rnd() * 2 ** 32));
    const anchor = Uint32Array.from({ length: words }, () => Math.floor(rnd() * 2 ** 32));
    const ref = hammingJS(bits, words, anchor);
    assert.equal(hammingRows(engine, bits, words, anchor), ref);
    assert.equal(hammingRows(scalar, bits, words, anchor), ref);
  }
});

u('evenly spaced ranks: both ends, one per bucket, m >= n takes all', () => {
  assert.equal(Array.from(evenlySpacedRanks(10, 4)), [0, 3, 6, 9]);
  assert.equal(Array.from(evenlySpacedRanks(7, 1)), [0]);
  assert.equal(Array.from(evenlySpacedRanks(3, 5)), [0, 1, 2]);
  assert.equal(Array.from(evenlySpacedRanks(100, 7)), [0, 16, 33, 49, 66, 82, 99]);
});

u('representatives: sorted by distance (ties by index), taken at evenly spaced ranks, only eligible units', () => {
  const dist = Int32Array.from([3, 0, 2, 0, 1, 5, 2, 4]);
  // eligible: all but unit 1 -> order by (distance, index): 3(0) 4(1) 2(2) 6(2) 0(3) 7(4) 5(5)
  const reps = representatives(dist, Int32Array.from([0, 2, 3, 4, 5, 6, 7]), 3);
  // ranks 0, 3, 6 -> units 3, 6, 5
  assert.equal(Array.from(reps), [3, 5, 6]);
});

const s = suite('kvcrush: the stage');

s('constructed lane: importance keeps keep - rho*keep, the representatives are the paper\'s', () => {
  // 12 entries, group of 2 heads, one window query. Head 0 prefers the first half,
  // head 1 the even entries. Bits per entry (h1 h0): entries 0..5 have h0 = 1.
  const E = 12, G = 2;
  const probs = new Float32Array(G * E);
  for (let i = 0; i < E; i++) { probs[i] = i < 6 ? 1 - i * 0.01 : 0.001 * i; probs[E + i] = i % 2 === 0 ? 0.5 + 0.01 * i : 0.01 * i; }
  const scores = Float64Array.from({ length: E }, (_, i) => 100 - i); // base prefers early entries
  const keep = 8; // rho 0.25 -> 2 representatives, 6 by importance (entries 0..5)
  const ctx = fakeCtx(E, G, probs);
  const mask = topK(scores, keep);
  createKVCrush({ ...BASE, anchor: 'zeros' }).apply(ctx, scores, mask, keep);
  assert.is(count(mask), keep);
  for (let i = 0; i < 6; i++) assert.is(mask[i], 1, `importance entry ${i}`);
  // Evicted 6..11; head bits: h0 = 0 for all; h1 (top half of head 1 = even entries
  // 0,2,4,6,8,10) -> distances to zeros: 6:1 7:0 8:1 9:0 10:1 11:0.
  // Sorted: 7 9 11 6 8 10; ranks 0 and 5 -> entries 7 and 10.
  assert.equal(Array.from(mask.subarray(6)), [0, 1, 0, 0, 1, 0]);
  // With anchor 'ones' distances flip: sorted 6 8 10 7 9 11 -> entries 6 and 11.
  const m2 = topK(scores, keep);
  createKVCrush({ ...BASE, anchor: 'ones' }).apply(fakeCtx(E, G, probs, new Rng(1), false), scores, m2, keep);
  assert.equal(Array.from(m2.subarray(6)), [1, 0, 0, 0, 0, 1]);
});

s('bits: queries (one bit per query and head) and score (OpenVINO) sources', () => {
  const E = 10, G = 1;
  // two queries of one head: query 0 likes entries 0..4, query 1 likes odd entries
  const probs = new Float32Array(2 * E);
  for (let i = 0; i < E; i++) { probs[i] = i < 5 ? 1 : 0; probs[E + i] = i % 2 ? 1 : 0; }
  const scores = Float64Array.from({ length: E }, (_, i) => E - i);
  const keep = 4; // 1 representative, importance keeps 0,1,2
  const mq = topK(scores, keep);
  createKVCrush({ ...BASE, bits: 'queries', anchor: 'zeros', rho: 0.25 }).apply(fakeCtx(E, G, probs), scores, mq, keep);
  assert.is(count(mq), keep);
  // evicted 3..9, bits (q1 q0): 3:11 4:01 5:10 6:00 7:10 8:00 9:10 -> zeros: 6 (0) first, rank 0 only
  assert.equal(Array.from(mq), [1, 1, 1, 0, 0, 0, 1, 0, 0, 0]);
  // score bits: top half of scores = entries 0..4 -> evicted 3, 4 have bit 1; with 'ones' the closest is 3
  const ms = topK(scores, keep);
  createKVCrush({ ...BASE, bits: 'score', anchor: 'ones' }).apply(fakeCtx(E, G, null), scores, ms, keep);
  assert.equal(Array.from(ms), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
});

s('block granularity: whole blocks by summed score, representative blocks, remainder to the best entries', () => {
  const E = 20, P = 4; // 5 blocks
  const scores = Float64Array.from([9, 9, 9, 9, 0, 0, 0, 1, 5, 5, 5, 5, 0, 0, 0, 0, 0, 2, 0, 0]);
  const keep = 10; // rho 0.5 -> 1 representative block (floor(5/4)); importance floor((10-4)/4) = 1 block
  const mask = topK(scores, keep);
  createKVCrush({ ...BASE, bits: 'score', granularity: 'block', blockTokens: P, rho: 0.5, anchor: 'zeros' }).apply(fakeCtx(E, 1, null), scores, mask, keep);
  assert.is(count(mask), keep);
  for (let i = 0; i < 4; i++) assert.is(mask[i], 1, 'importance block 0');
  // top half of 20 by score (ties later): 0-3, 8-11, 7, 17, then the latest zeros 19, 18.
  // Block vectors: b1 (4-7) = 0001, b2 = 1111, b3 (12-15) = 0000, b4 (16-19) = 0111.
  // zeros anchor, eligible 1..4 sorted by distance: b3(0) b1(1) b4(3) b2(4); rank 0 -> block 3.
  for (let i = 12; i < 16; i++) assert.is(mask[i], 1, 'representative block 3');
  // remaining 2 entries: best remaining scores 8, 9 (5, ties to the later: 11, 10)
  assert.is(mask[10] + mask[11], 2);
  // keep smaller than a block: the base selection stands
  const m2 = topK(scores, 3);
  const before = Array.from(m2);
  createKVCrush({ ...BASE, bits: 'score', granularity: 'block', blockTokens: P }).apply(fakeCtx(E, 1, null), scores, m2, 3);
  assert.equal(Array.from(m2), before);
});

s('rho = 0 is the base policy; so is keep < 1 / rho; keep >= evictable changes nothing', () => {
  const E = 16, scores = Float64Array.from({ length: E }, (_, i) => (i * 7) % 5);
  const m = topK(scores, 6), before = Array.from(m);
  createKVCrush({ ...BASE, rho: 0 }).apply(fakeCtx(E, 1, null), scores, m, 6);
  assert.equal(Array.from(m), before);
  const few = topK(scores, 3), fewBefore = Array.from(few); // rho 0.25 * 3 < 1: no representative
  createKVCrush(BASE).apply(fakeCtx(E, 1, null), scores, few, 3);
  assert.equal(Array.from(few), fewBefore);
  const all = topK(scores, E);
  createKVCrush(BASE).apply(fakeCtx(E, 1, null), scores, all, E);
  assert.is(count(all), E);
});

const c = suite('kvcrush: in the cache');

c('snapkv+kvcrush and h2o+kvcrush: same budget as the base, every anchor and granularity, sinks and window kept', () => {
  const d = 16, qHeads = 4, kvHeads = 2, rnd = prng(11);
  for (const base of ['snapkv', 'h2o']) for (const anchor of KVCRUSH_ANCHORS) for (const granularity of ['token', 'block'] as const) {
    const opts = { layers: 2, qHeads, kvHeads, headDim: d, budget: { tokens: 80 }, sinkTokens: 4, windowTokens: 8, slack: 8, precision: 'int4' as const };
    const plain = engine.createCache({ ...opts, policy: base });
    const crush = engine.createCache({ ...opts, policy: { name: `${base}+kvcrush`, kvcrush: { anchor, granularity, blockTokens: 8 } } });
    for (let t = 0; t < 200; t++) {
      for (let l = 0; l < 2; l++) {
        const k = randn(kvHeads * d, rnd), v = randn(kvHeads * d, rnd), q = randn(qHeads * d, rnd);
        for (const x of [plain, crush]) { x.append(l, k, v); x.attend(l, q); }
      }
    }
    const a = plain.stats(), b = crush.stats();
    for (let i = 0; i < a.lanes.length; i++) {
      assert.is(b.lanes[i].tokens, a.lanes[i].tokens, `${base}/${anchor}/${granularity}: same entries as the base`);
      assert.ok(b.lanes[i].tokens <= b.lanes[i].cap);
      assert.ok(b.lanes[i].bytes <= laneBytesBound(b.lanes[i].cap, 'int4', crush.options), 'bytes within the lane bound');
      const pos = crush.store.readHeader(crush.lane(b.lanes[i].layer, b.lanes[i].kvHead), 'pos');
      for (let j = 0; j < 4; j++) assert.is(pos[j], j, 'sinks');
      for (let j = 0; j < 8; j++) assert.is(pos[pos.length - 1 - j], 199 - j, 'window');
    }
    plain.dispose(); crush.dispose();
  }
});

c('the stage asks for a query window (merged with the base\'s), options are validated', () => {
  const g = { layers: 1, qHeads: 4, kvHeads: 1, headDim: 16, budget: { tokens: 64 } };
  const h = engine.createCache({ ...g, policy: 'h2o+kvcrush' });
  assert.is(h.policy.needs.queryWindow, 8);
  assert.ok(h.policy.needs.attendProbs);
  const sn = engine.createCache({ ...g, policy: { name: 'snapkv+kvcrush', kvcrush: { window: 48 } } });
  assert.is(sn.policy.needs.queryWindow, 48);
  const sc = engine.createCache({ ...g, policy: { name: 'h2o+kvcrush', kvcrush: { bits: 'score' } } });
  assert.is(sc.policy.needs.queryWindow ?? 0, 0);
  assert.equal(h.options.policy.kvcrush, { rho: 0.25, anchor: 'mean', bits: 'queries', window: 8, granularity: 'token', blockTokens: 16 });
  for (const [kv, field] of [[{ rho: 0.95 }, 'rho'], [{ rho: -0.1 }, 'rho'], [{ anchor: 'median' }, 'anchor'], [{ bits: 'all' }, 'bits'], [{ granularity: 'page' }, 'granularity'], [{ window: 0 }, 'window'], [{ blockTokens: 0 }, 'blockTokens'], [{ seed: 1 }, 'seed']] as const) {
    const e = catchErr(() => engine.createCache({ ...g, policy: { name: 'snapkv+kvcrush', kvcrush: kv } }));
    assert.is(e.code, 'E_ARG', JSON.stringify(kv));
    assert.ok(e.message.includes(`kvcrush.${field}`), e.message);
  }
  assert.is(catchErr(() => engine.createCache({ ...g, policy: 'uniform+kvcrush' })).code, 'E_ARG'); // a sampler, not a scorer
});

c('snapshots: a kvcrush cache (random anchor) restores and continues identically', () => {
  const d = 16, rnd = prng(5);
  const opts = { layers: 1, qHeads: 4, kvHeads: 2, headDim: d, budget: { tokens: 64 }, windowTokens: 8, slack: 8, policy: { name: 'snapkv+kvcrush', kvcrush: { anchor: 'random' } } };
  const a = engine.createCache(opts);
  const step = (x: typeof a, k: Float32Array, v: Float32Array, q: Float32Array) => { x.append(0, k, v); return x.attend(0, q); };
  for (let t = 0; t < 150; t++) step(a, randn(2 * d, rnd), randn(2 * d, rnd), randn(4 * d, rnd));
  const b = loadCache(engine, a.save());
  for (let t = 0; t < 100; t++) {
    const k = randn(2 * d, rnd), v = randn(2 * d, rnd), q = randn(4 * d, rnd);
    assert.equal(step(b, k, v, q), step(a, k, v, q));
  }
  assert.equal(Array.from(b.store.readHeader(b.lane(0, 1), 'pos')), Array.from(a.store.readHeader(a.lane(0, 1), 'pos')));
});

u.run();
s.run();
c.run();

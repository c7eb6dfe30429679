import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine } from '../../src/engine.ts';
import { laneBytesBound } from '../../src/budget/types.ts';
import { prng, randn } from './helpers.ts';

/** Tokens streamed through the lane. */
const SOAK_TOKENS = 1_000_000;
/** Largest chunk appended at once (prefill-sized); most chunks are single decode tokens or small. */
const MAX_CHUNK = 4096;

test(`soak: ${SOAK_TOKENS} tokens through one lane with a fixed budget; memory stays flat`, async () => {
  const e = await createEngine({ backend: 'wasm-simd' });
  const d = 8, rnd = prng(2024);
  const c = e.createCache({ layers: 1, qHeads: 2, kvHeads: 1, headDim: d, policy: 'h2o', precision: 'int4', budget: { tokens: 512 }, windowTokens: 32, slack: 64 });
  const bound = laneBytesBound(512, 'int4', c.options);
  // Pre-generated pools of KV rows (generating 1M random rows would dominate the time).
  const pool = randn(MAX_CHUNK * d, rnd), poolV = randn(MAX_CHUNK * d, rnd, 2);
  const q = randn(2 * d, rnd);
  let fed = 0, chunks = 0;
  let warmInUse = -1, warmReserved = -1, maxInUse = 0;
  while (fed < SOAK_TOKENS) {
    const r = rnd();
    // 1 in 200 chunks is a big prefill-like append; the rest are decode-sized.
    const n = Math.min(SOAK_TOKENS - fed, r < 0.005 ? MAX_CHUNK : r < 0.5 ? 1 + Math.floor(rnd() * 16) : 256 + Math.floor(rnd() * 768));
    const off = Math.floor(rnd() * (MAX_CHUNK - n + 1)) * d;
    c.append(0, pool.subarray(off, off + n * d), poolV.subarray(off, off + n * d));
    const out = c.attend(0, q);
    if (!Number.isFinite(out[0])) assert.unreachable(`non-finite attention after ${fed} tokens`);
    fed += n; chunks++;
    const lane = c.lane(0, 0);
    if (lane.tokens > 512) assert.unreachable(`lane holds ${lane.tokens} > 512 after ${fed} tokens`);
    if (fed >= 100_000 && warmInUse < 0) {
      // Warm: scratch buffers have met the largest chunk at least once by now.
      warmInUse = e.arena.bytesInUse; warmReserved = e.arena.bytesReserved;
    }
    if (warmInUse >= 0) maxInUse = Math.max(maxInUse, e.arena.bytesInUse);
  }
  const st = c.stats();
  assert.is(st.appended[0], SOAK_TOKENS);
  assert.ok(st.bytes <= bound, `lane bytes ${st.bytes} <= ${bound}`);
  assert.ok(maxInUse <= warmInUse + bound, `arena in use stays flat: max ${maxInUse} vs warm ${warmInUse} (+ one lane bound ${bound})`);
  assert.is(e.arena.bytesReserved, warmReserved, 'no new memory reserved after warm-up');
  const pos = c.store.readHeader(c.lane(0, 0), 'pos');
  assert.equal(Array.from(pos.subarray(0, 4)), [0, 1, 2, 3], 'sinks survive a million tokens');
  assert.is(pos[pos.length - 1], SOAK_TOKENS - 1);
  assert.ok(chunks > 1000);
  c.dispose();
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine } from '../../src/engine.ts';
import { loadModel } from '../../src/model/llama.ts';
import { profileModel } from '../../src/profile/profile.ts';
import { validateProfile } from '../../src/profile/schema.ts';
import { writeTinyModel, rng } from '../model/fixtures.ts';
import { catchErr } from '../cache/helpers.ts';

const engine = await createEngine({ backend: 'wasm-simd' });
const G = { vocab: 12, hidden: 32, inter: 40, layers: 2, qHeads: 4, kvHeads: 2, headDim: 8 };
const { dir } = writeTinyModel({ g: G, seed: 5 });
const model = await loadModel(dir, { engine });
const r = rng(1);
const ids = Array.from({ length: 160 }, () => 3 + Math.floor(r() * 9));
const small = { sinkTokens: 4, windowTokens: 16, window: 8, ratio: 0.5, curvePoints: 16 };

test('profile pass on a tiny model: a valid profile of its geometry, every part filled, usable by both planners', () => {
  const messages: string[] = [];
  const p = profileModel(engine, model, ids, { ...small, onProgress: (m) => messages.push(m), source: 'tiny' });
  assert.equal(validateProfile(JSON.parse(JSON.stringify(p)), { layers: 2, qHeads: 4, kvHeads: 2, headDim: 8 }), p);
  assert.is(p.heads.query.length, 2);
  for (const row of p.heads.query) for (const x of row) assert.ok(x >= 0 && x <= 2);
  // GQA aggregation: kv head importance = mean of its group's query heads
  for (let l = 0; l < 2; l++) for (let h = 0; h < 2; h++) {
    assert.ok(Math.abs(p.heads.kv[l][h] - (p.heads.query[l][2 * h] + p.heads.query[l][2 * h + 1]) / 2) < 1e-12);
  }
  assert.ok(p.layers.sensitivity.every((x) => x >= 0));
  assert.is(p.search.candidates.length, 7);
  assert.is(p.search.candidates[0].family, 'uniform');
  const best = p.search.candidates[p.search.best];
  for (const c of p.search.candidates) assert.ok(best.ppl <= c.ppl);
  assert.ok(Math.abs(p.weights.reduce((a, b) => a + b, 0) / 4 - 1) < 1e-9);
  assert.ok(messages.some((m) => m.startsWith('search')));
  for (const name of ['baklava', 'adakv'] as const) {
    const c = engine.createCache({ layers: 2, qHeads: 4, kvHeads: 2, headDim: 8, budget: { tokens: 60 }, sinkTokens: 4, windowTokens: 16, planner: { name, profile: p } });
    assert.is(c.lanes.reduce((a, l) => a + l.cap, 0), 240);
    c.dispose();
    const e = catchErr(() => engine.createCache({ layers: 2, qHeads: 8, kvHeads: 2, headDim: 8, budget: { tokens: 60 }, planner: { name, profile: p } }));
    assert.ok(e.message.includes('another model'), e.message);
  }
});

test('profile pass: bad options', () => {
  assert.is(catchErr(() => profileModel(engine, model, ids, { ...small, ratio: 0.01 })).code, 'E_BUDGET');
  assert.is(catchErr(() => profileModel(engine, model, ids.slice(0, 20), small)).code, 'E_ARG');
  assert.is(catchErr(() => profileModel(engine, model, ids, { ...small, ratio: 2 })).code, 'E_ARG');
  assert.is(catchErr(() => profileModel(engine, model, ids, { ...small, alphas: [1.5] })).code, 'E_ARG');
});

test.run();

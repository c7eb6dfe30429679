import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine } from '../../src/engine.ts';
import { loadCache } from '../../src/cache/snapshot.ts';
import { laneBytesBound, type PlannerInput } from '../../src/budget/types.ts';
import { uniformPlanner } from '../../src/budget/uniform.ts';
import { BAKLAVA_DEFAULT_FLOOR, baklavaWeights, laneImportance, rankPercentile, weightedPlanner } from '../../src/budget/baklava.ts';
import { adakvShares, adakvWeights } from '../../src/budget/adakv.ts';
import { chooseFormat, quantizedTable } from '../../src/budget/quantized.ts';
import { PROFILE_FORMAT, validateProfile, type Profile } from '../../src/profile/schema.ts';
import { pageBytes } from '../../src/formats.ts';
import { catchErr, prng, randn } from '../cache/helpers.ts';

const engine = await createEngine({ backend: 'wasm-simd' });

const GEO = { layers: 3, qHeads: 4, kvHeads: 2, headDim: 16 };

/** A synthetic, valid profile for GEO: lane l*2+h gets importance growing with l and h. */
function makeProfile(geo = GEO): Profile {
  const { layers: L, qHeads: Hq, kvHeads: H, headDim } = geo;
  const Q = 8;
  const fractions = Array.from({ length: Q }, (_, j) => (j + 1) / Q);
  return {
    format: PROFILE_FORMAT, version: 1,
    model: { layers: L, qHeads: Hq, kvHeads: H, headDim, source: 'synthetic' },
    calibration: { tokens: 512, ratio: 0.125, policy: 'snapkv', window: 32, text: 't.txt', seed: 1000 },
    heads: {
      query: Array.from({ length: L }, (_, l) => Array.from({ length: Hq }, (_, h) => 0.2 + 0.05 * l + 0.01 * h)),
      kv: Array.from({ length: L }, (_, l) => Array.from({ length: H }, (_, h) => 0.2 + 0.05 * l + 0.02 * h)),
    },
    layers: { sensitivity: Array.from({ length: L }, (_, l) => 0.01 * (l + 1)), headMean: Array.from({ length: L }, () => 0.3) },
    // head 0 concentrated (steep curve: a few entries score high), head 1 flat
    curves: { fractions, scores: Array.from({ length: L }, () => [fractions.map((f) => 8 * Math.exp(-8 * f)), fractions.map(() => 1)]) },
    search: { metric: 'ppl', candidates: [{ family: 'uniform', alpha: 0, floor: 0.25, ppl: 3, kl: 0.1 }, { family: 'both', alpha: 1, floor: 0.25, ppl: 2.9, kl: 0.09 }], best: 1 },
    weights: Array.from({ length: L * H }, (_, i) => 0.5 + i / (L * H - 1)),
  };
}

function input(budget: PlannerInput['budget'], over: Partial<PlannerInput> = {}): PlannerInput {
  return { layers: 3, kvHeads: 2, headDim: 16, valueGroup: 16, budget, precision: 'f16', exactPrecision: 'f16', sinkTokens: 4, windowTokens: 16, ...over };
}

const w = suite('budget: weighted allocation (BaKlaVa family)');

w('rank percentiles with ties; weights clamp, renormalise to mean 1, alpha 0 is uniform', () => {
  assert.equal(rankPercentile([3, 1, 2, 2]), [1, 0, 0.5, 0.5]);
  assert.equal(rankPercentile([7]), [0.5]);
  const imp = [0.1, 0.5, 0.3, 0.9, 0.2];
  assert.equal(baklavaWeights(imp, 0), [1, 1, 1, 1, 1]);
  const wt = baklavaWeights(imp, 1, BAKLAVA_DEFAULT_FLOOR);
  assert.ok(Math.abs(wt.reduce((a, b) => a + b, 0) / wt.length - 1) < 1e-12);
  // order follows importance
  const order = [0, 4, 2, 1, 3];
  for (let i = 1; i < order.length; i++) assert.ok(wt[order[i]] > wt[order[i - 1]]);
  // before renormalisation the extremes are clamped to floor and 2 - floor: ratio (2-f)/f
  assert.ok(Math.abs(wt[3] / wt[0] - (2 - BAKLAVA_DEFAULT_FLOOR) / BAKLAVA_DEFAULT_FLOOR) < 1e-9);
  const p = makeProfile();
  assert.equal(laneImportance(p, 'uniform'), new Array(6).fill(1));
  const both = laneImportance(p, 'both');
  assert.ok(both[5] > both[0]);
});

w('all-ones weights reproduce the uniform planner (tokens and bytes)', () => {
  for (const budget of [{ tokens: 100 }, { bytes: 6 * 5 * pageBytes('f16', 16, 16) }, { bytes: 50_000 }, { bytes: 123_457 }]) {
    for (const precision of ['f16', 'int4', 'int2'] as const) {
      const inp = input(budget, { precision });
      assert.equal(weightedPlanner(inp, new Array(6).fill(1)).map((p) => p.tokens), uniformPlanner(inp).map((p) => p.tokens), JSON.stringify(budget) + precision);
    }
  }
});

w('tokens: exact total, every lane keeps sinks + window, more weight more tokens', () => {
  const weights = [0.25, 0.5, 1, 1, 1.5, 1.75];
  const plans = weightedPlanner(input({ tokens: 100 }), weights);
  assert.is(plans.reduce((a, p) => a + p.tokens, 0), 600);
  for (let i = 1; i < 6; i++) assert.ok(plans[i].tokens >= plans[i - 1].tokens);
  assert.ok(plans[0].tokens >= 20);
});

w('bytes: never more than the uniform plan takes, the leftover is less than any lane\'s next page', () => {
  const rnd = prng(9);
  for (let trial = 0; trial < 40; trial++) {
    const precision = (['f16', 'int8', 'int4', 'int2'] as const)[trial % 4];
    const bytes = 20_000 + Math.floor(rnd() * 200_000);
    const inp = input({ bytes }, { precision });
    const uniform = uniformPlanner(inp).reduce((a, p) => a + laneBytesBound(p.tokens, precision, inp), 0);
    const weights = Array.from({ length: 6 }, () => 0.25 + 1.5 * rnd());
    const plans = weightedPlanner(inp, weights);
    const used = plans.map((p) => laneBytesBound(p.tokens, precision, inp));
    const total = used.reduce((a, b) => a + b, 0);
    assert.ok(total <= uniform && uniform <= bytes, `trial ${trial}: ${total} > ${uniform}`);
    const left = uniform - total;
    for (let i = 0; i < 6; i++) if (plans[i].tokens > 0) assert.ok(laneBytesBound(plans[i].tokens + 1, precision, inp) - used[i] > left, `trial ${trial}: lane ${i} could still grow`);
  }
});

const b = suite('budget: baklava planner');

b('ragged caps from the profile; lanes really hold different bytes; the cache stays within budget; snapshots keep the plan', () => {
  const profile = makeProfile();
  const rnd = prng(3);
  const budget = { bytes: 6 * 6 * pageBytes('f16', 16, 16) };
  const opts = { ...GEO, budget, policy: 'snapkv', sinkTokens: 4, windowTokens: 16, slack: 8, planner: { name: 'baklava' as const, profile } };
  const c = engine.createCache(opts);
  const caps = c.lanes.map((l) => l.cap);
  assert.ok(new Set(caps).size > 1, `ragged caps ${caps}`);
  for (let i = 1; i < 6; i++) assert.ok(caps[i] >= caps[i - 1], 'weights grow with the lane index');
  for (let l = 0; l < 3; l++) c.append(l, randn(2 * 400 * 16, rnd), randn(2 * 400 * 16, rnd));
  const st = c.stats();
  assert.ok(st.bytes <= budget.bytes);
  const bytes = st.lanes.map((x) => x.bytes);
  assert.ok(bytes[5] > bytes[0], `memory follows the caps: ${bytes}`);
  for (const x of st.lanes) assert.ok(x.tokens <= x.cap);
  const uni = engine.createCache({ ...opts, planner: 'uniform' });
  for (let l = 0; l < 3; l++) uni.append(l, randn(2 * 400 * 16, rnd), randn(2 * 400 * 16, rnd));
  assert.ok(Math.abs(uni.stats().bytes - st.bytes) <= 6 * pageBytes('f16', 16, 16), 'same total memory as uniform, within a page per lane');
  const r = loadCache(engine, c.save());
  assert.equal(r.lanes.map((l) => l.cap), caps);
  assert.is(r.options.planner.name, 'baklava');
  // explicit family / alpha recompute the weights from the importances
  const u = engine.createCache({ ...opts, planner: { name: 'baklava', profile, family: 'uniform' } });
  assert.equal(u.lanes.map((l) => l.cap), uni.lanes.map((l) => l.cap));
  for (const x of [c, uni, r, u]) x.dispose();
});

b('bad input: no profile, foreign geometry, malformed fields, unknown keys, budgets below sinks + window', () => {
  const profile = makeProfile();
  const base = { ...GEO, budget: { tokens: 64 }, policy: 'snapkv', sinkTokens: 4, windowTokens: 16 };
  const err = (planner: unknown) => catchErr(() => engine.createCache({ ...base, planner } as never));
  assert.is(err('baklava').code, 'E_ARG');
  assert.ok(err({ name: 'baklava' }).message.includes('profile'));
  const foreign = err({ name: 'baklava', profile: makeProfile({ layers: 4, qHeads: 4, kvHeads: 2, headDim: 16 }) });
  assert.is(foreign.code, 'E_ARG');
  assert.ok(foreign.message.includes('4 layers') && foreign.message.includes('3 layers'), foreign.message);
  assert.ok(err({ name: 'baklava', profile, beta: 2 }).message.includes('beta'));
  assert.ok(err({ name: 'baklava', profile, alpha: 2 }).message.includes('alpha'));
  const low = catchErr(() => engine.createCache({ ...base, budget: { bytes: 6 * pageBytes('f16', 16, 16) }, planner: { name: 'baklava', profile } }));
  assert.is(low.code, 'E_BUDGET');
  const damage: [string, (p: any) => void][] = [
    ['format', (p) => { p.format = 'other'; }],
    ['version', (p) => { p.version = 2; }],
    ['model', (p) => { delete p.model; }],
    ['model.qHeads', (p) => { p.model.qHeads = 3; }],
    ['heads.kv[1]', (p) => { p.heads.kv[1] = [0.1]; }],
    ['heads.query[0][2]', (p) => { p.heads.query[0][2] = NaN; }],
    ['layers.sensitivity', (p) => { p.layers.sensitivity = 'x'; }],
    ['curves.fractions[1]', (p) => { p.curves.fractions[1] = 0.01; }],
    ['curves.scores[0][1][3]', (p) => { p.curves.scores[0][1][3] = 5; }],
    ['search.best', (p) => { p.search.best = 7; }],
    ['search.candidates[0].family', (p) => { p.search.candidates[0].family = 'magic'; }],
    ['weights', (p) => { p.weights.pop(); }],
    ['weights[2]', (p) => { p.weights[2] = 0; }],
    ['calibration.tokens', (p) => { p.calibration.tokens = -1; }],
  ];
  for (const [field, f] of damage) {
    const p = JSON.parse(JSON.stringify(profile));
    f(p);
    const e = catchErr(() => validateProfile(p, GEO));
    assert.is(e.code, 'E_ARG', field);
    assert.ok(e.message.includes(field), `${field}: ${e.message}`);
    assert.is(err({ name: 'baklava', profile: p }).code, 'E_ARG');
  }
  // fuzz: random mutations never crash, only validate or throw E_ARG
  const rnd = prng(77);
  const text = JSON.stringify(profile);
  for (let i = 0; i < 300; i++) {
    const chars = text.split('');
    for (let k = 0; k < 3; k++) chars[Math.floor(rnd() * chars.length)] = '0123456789,:[]{}"-.e'[Math.floor(rnd() * 20)];
    let parsed: unknown;
    try { parsed = JSON.parse(chars.join('')); } catch { continue; }
    try { validateProfile(parsed, GEO); } catch (e) { assert.is((e as { code?: string }).code, 'E_ARG'); }
  }
  assert.equal(validateProfile(JSON.parse(text), GEO), profile);
});

const a = suite('budget: adakv planner');

a('water level: fraction above a level, shares sum to H x, safeguard respected, a concentrated head wins at small budgets', () => {
  // two heads, quarters: the top-k over both curves at x = 0.5 (total 1, safeguard 0):
  // values 4 (A), 3 (B), 2 (A), 2.5 (B) ... -> A gets 0.5, B 0.5; at x = 0.25: A 4, B 3 -> 0.25 each
  const fr = [0.25, 0.5, 0.75, 1];
  assert.equal(adakvShares(fr, [[4, 2, 1, 0.5], [3, 2.5, 0.2, 0.1]], 0.5, 0), [0.5, 0.5]);
  assert.equal(adakvShares(fr, [[4, 2, 1, 0.5], [3, 0.1, 0.1, 0.1]], 0.5, 0), [0.75, 0.25]);
  assert.equal(adakvShares(fr, [[4, 2, 1, 0.5], [3, 0.1, 0.1, 0.1]], 0.5, 1), [0.5, 0.5]);
  // partial segment: x = 0.3 -> total 0.6: A 0.25 (4), B 0.25 (3), A 0.1 of (2)
  const part = adakvShares(fr, [[4, 2, 1, 0.5], [3, 0.1, 0.1, 0.1]], 0.3, 0);
  assert.ok(Math.abs(part[0] - 0.35) < 1e-12 && Math.abs(part[1] - 0.25) < 1e-12, `${part}`);
  const p = makeProfile();
  for (const x of [0.05, 0.1, 0.25, 0.5]) {
    const s = adakvShares(p.curves.fractions, p.curves.scores[0], x, 0.2);
    assert.ok(Math.abs(s[0] + s[1] - 2 * x) < 1e-9, `x ${x}: ${s}`);
    assert.ok(s[0] >= 0.2 * x - 1e-12 && s[1] >= 0.2 * x - 1e-12);
    if (x <= 0.1) assert.ok(s[0] > s[1], `the head whose top entries score highest wins at x ${x}: ${s}`);
  }
  assert.equal(adakvShares(p.curves.fractions, p.curves.scores[0], 1, 0.2), [1, 1]);
  const wt = adakvWeights(p, 0.1, 0.2);
  for (let l = 0; l < 3; l++) assert.ok(Math.abs(wt[2 * l] + wt[2 * l + 1] - 2) < 1e-9);
  const full = adakvShares(p.curves.fractions, p.curves.scores[0], 0.1, 1);
  assert.ok(Math.abs(full[0] - 0.1) < 1e-9 && Math.abs(full[1] - 0.1) < 1e-9, 'safeguard 1 is uniform');
});

a('in a cache: per-layer totals kept, the concentrated head gets the larger cap; bad options', () => {
  const profile = makeProfile();
  const opts = { ...GEO, budget: { tokens: 80 }, policy: 'snapkv', sinkTokens: 4, windowTokens: 16, planner: { name: 'adakv' as const, profile } };
  const c = engine.createCache(opts);
  const caps = c.lanes.map((l) => l.cap);
  for (let l = 0; l < 3; l++) {
    assert.is(caps[2 * l] + caps[2 * l + 1], 160);
    assert.ok(caps[2 * l] > caps[2 * l + 1], `layer ${l}: ${caps}`);
  }
  assert.equal(c.options.planner, { name: 'adakv', profile, safeguard: 0.2, contextTokens: 512 });
  const err = (planner: unknown) => catchErr(() => engine.createCache({ ...opts, planner } as never));
  assert.ok(err({ name: 'adakv', profile, safeguard: 1.5 }).message.includes('safeguard'));
  assert.ok(err({ name: 'adakv' }).message.includes('profile'));
  assert.ok(err({ name: 'adakv', profile: { ...profile, model: { ...profile.model, headDim: 32 } } }).message.includes('another model'));
  c.dispose();
});

const q = suite('budget: quantized planner');

q('table: tokens per lane at equal bytes with scale / min overhead counted', () => {
  const inp = input({ bytes: 0 }, { headDim: 64, valueGroup: 32, sinkTokens: 4, windowTokens: 32 });
  const rows = quantizedTable(100 * pageBytes('f16', 64, 32), inp);
  const by = Object.fromEntries(rows.map((r) => [r.format, r]));
  assert.ok(by.int4.tokens > 2.8 * by.f16.tokens && by.int4.tokens < 4 * by.f16.tokens, `int4 ${by.int4.tokens} vs f16 ${by.f16.tokens}`);
  assert.ok(by.int4.effectiveBits > 4 && by.int4.effectiveBits < 6, `${by.int4.effectiveBits}`);
  assert.ok(by.int8.tokens > by.f16.tokens && by.int2.tokens > by.int4.tokens);
  assert.is(by.f16.effectiveBits, (8 * pageBytes('f16', 64, 32)) / 32 / 128);
});

q('rule: lowest bits by default, the highest precision that holds contextTokens, null below the floor', () => {
  const inp = input({ bytes: 0 });
  const share = 8 * pageBytes('f16', 16, 16);
  assert.is(chooseFormat(share, inp, ['f16', 'int8', 'int4'])!.precision, 'int4');
  const t16 = chooseFormat(share, inp, ['f16'])!.tokens;
  assert.is(chooseFormat(share, inp, ['f16', 'int8', 'int4'], t16)!.precision, 'f16');
  assert.is(chooseFormat(share, inp, ['f16', 'int8', 'int4'], t16 + 1)!.precision, 'int8');
  assert.is(chooseFormat(share, inp, ['int4', 'int2'], 1e6)!.precision, 'int2');
  assert.is(chooseFormat(100, inp, ['f16', 'int2']), null);
});

q('with snapkv in a cache: lanes int4 within the byte budget; errors name the budget and the formats', () => {
  const rnd = prng(2);
  const budget = { bytes: 6 * 8 * pageBytes('f16', 16, 16) };
  const base = { ...GEO, budget, policy: 'snapkv', sinkTokens: 4, windowTokens: 16, slack: 8 };
  const c = engine.createCache({ ...base, planner: 'quantized' });
  const f = engine.createCache({ ...base, precision: 'f16' });
  assert.ok(c.lanes.every((l) => l.mid.format === 'int4'));
  assert.ok(c.lanes[0].cap > 2 * f.lanes[0].cap, `${c.lanes[0].cap} vs ${f.lanes[0].cap}`);
  for (let l = 0; l < 3; l++) c.append(l, randn(2 * 600 * 16, rnd), randn(2 * 600 * 16, rnd));
  assert.ok(c.stats().bytes <= budget.bytes);
  assert.is(c.stats().lanes[0].precision, 'int4');
  const e = catchErr(() => engine.createCache({ ...base, budget: { bytes: 3000 }, planner: 'quantized' }));
  assert.is(e.code, 'E_BUDGET');
  assert.ok(e.message.includes('any precision') && e.message.includes('int4'), e.message);
  assert.is(catchErr(() => engine.createCache({ ...base, planner: { name: 'quantized', formats: ['int3'] } } as never)).code, 'E_ARG');
  assert.is(catchErr(() => engine.createCache({ ...base, planner: { name: 'quantized', formats: [] } } as never)).code, 'E_ARG');
  const p = engine.createCache({ ...base, planner: { name: 'quantized', contextTokens: 60 } });
  assert.ok(p.lanes.every((l) => l.mid.format === 'f16'), 'the whole context fits at 16 bits: no quantization');
  const r = loadCache(engine, c.save());
  assert.equal(r.lanes.map((l) => [l.cap, l.mid.format]), c.lanes.map((l) => [l.cap, l.mid.format]));
  for (const x of [c, f, p, r]) x.dispose();
});

w.run();
b.run();
a.run();
q.run();

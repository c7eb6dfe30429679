/**
 * Decode attention kernels (attnInit / attendPages / attnFinish / probsFromLogits):
 * SIMD build vs scalar build vs the float64 reference, over pages of every format,
 * entry counts around the page and SIMD tile edges, head dims 8 / 64 / 128, GQA
 * groups 1 and 4; logits, probabilities and log-sum-exp outputs; tier merges and
 * log-weights.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine, type Engine } from '../../src/engine.ts';
import { FORMATS, FORMAT_CODE, PAGE_TOKENS, pageBytes, packedOffsets, type Format } from '../../src/formats.ts';
import { ERROR_BUDGETS, FIXED_POINT_ONE, halfToFloat } from '../../src/reference/quant.ts';
import * as refAttn from '../../src/reference/attention.ts';
import { attend, packLane } from '../../src/ops/attention.ts';
import { EdgeKVError } from '../../src/errors.ts';
import { rng, gauss } from './random.ts';

const test = suite('kernels/attention');

let engines: Engine[] = [];
test.before(async () => {
  engines = [await createEngine({ backend: 'wasm-simd' }), await createEngine({ backend: 'wasm-scalar' })];
});

interface Entries { k: Float32Array; v: Float32Array; logW: Float32Array; n: number }

function entries(seed: number, n: number, d: number, weighted = true): Entries {
  const r = rng(seed);
  const k = gauss(r, n * d, 1, 0.2);
  const v = gauss(r, n * d);
  const logW = new Float32Array(n).map(() => (weighted && r() < 0.25 ? Math.log(1 + Math.floor(r() * 6)) : 0));
  return { k, v, logW, n };
}

/** Page fill: full pages, or a ragged fill (0..32 entries, empty pages included). */
function pageCounts(n: number, ragged: boolean, seed: number): number[] {
  const counts: number[] = [];
  const r = rng(seed);
  let left = n;
  while (left > 0) {
    const c = ragged ? Math.min(left, Math.floor(r() * (PAGE_TOKENS + 1))) : Math.min(left, PAGE_TOKENS);
    counts.push(c);
    left -= c;
  }
  if (ragged) counts.splice(Math.floor(counts.length / 2), 0, 0);
  return counts;
}

/** A lane's pages in one engine: pointers, counts and a page table. */
class Lane {
  pages: number[] = [];
  table = 0;
  constructor(readonly e: Engine, readonly format: Format, readonly d: number, readonly vg: number, readonly counts: number[], data: Entries, first = 0) {
    const bytes = pageBytes(format, d, vg);
    const kp = e.arena.alloc(PAGE_TOKENS * d * 4), vp = e.arena.alloc(PAGE_TOKENS * d * 4);
    const wp = e.arena.alloc(PAGE_TOKENS * 4), pp = e.arena.alloc(PAGE_TOKENS * 4);
    let at = first;
    for (const c of counts) {
      const page = e.arena.alloc(bytes);
      e.f32(kp, c * d).set(data.k.subarray(at * d, (at + c) * d));
      e.f32(vp, c * d).set(data.v.subarray(at * d, (at + c) * d));
      e.f32(wp, c).set(data.logW.subarray(at, at + c));
      e.i32(pp, c).set(Int32Array.from({ length: c }, (_, i) => at + i));
      e.kernels.packPage(FORMAT_CODE[format], d, vg, c, kp, vp, wp, pp, page);
      this.pages.push(page);
      at += c;
    }
    e.arena.free(kp); e.arena.free(vp); e.arena.free(wp); e.arena.free(pp);
    this.table = e.arena.alloc(8 * Math.max(1, counts.length));
    const t = e.i32(this.table, 2 * counts.length);
    counts.forEach((c, i) => { t[2 * i] = this.pages[i]; t[2 * i + 1] = c; });
  }
  get n(): number { return this.counts.reduce((a, b) => a + b, 0); }
  pageBytes(): Uint8Array[] {
    const b = pageBytes(this.format, this.d, this.vg);
    return this.pages.map((p) => this.e.u8(p, b).slice());
  }
  free(): void {
    for (const p of this.pages) this.e.arena.free(p);
    this.e.arena.free(this.table);
  }
}

interface KernelResult { out: Float32Array; lse: Float32Array; logits: Float32Array; probs: Float32Array }

/** Attend over several lanes (tiers) into one state; logits/probabilities over all entries. */
function runAttention(e: Engine, lanes: Lane[], q: Float32Array, G: number, d: number, scale: number, stride?: number): KernelResult {
  const n = lanes.reduce((a, l) => a + l.n, 0);
  const S = stride ?? n + 3;
  const state = e.arena.alloc(4 * (2 * G + G * d));
  const qp = e.arena.alloc(4 * G * d);
  const lg = e.arena.alloc(4 * Math.max(1, G * S));
  const out = e.arena.alloc(4 * G * d), lse = e.arena.alloc(4 * G);
  e.f32(qp, G * d).set(q);
  e.f32(lg, G * S).fill(NaN);
  e.kernels.attnInit(state, G, d);
  let off = 0;
  for (const l of lanes) {
    e.kernels.attendPages(l.table, l.counts.length, FORMAT_CODE[l.format], d, l.vg, qp, G, scale, state, lg + 4 * off, S);
    off += l.n;
  }
  e.kernels.attnFinish(state, G, d, out, lse);
  const logitsAll = e.f32(lg, G * S).slice();
  const logits = new Float32Array(G * n);
  for (let h = 0; h < G; h++) logits.set(logitsAll.subarray(h * S, h * S + n), h * n);
  // the stride gap must be untouched
  for (let h = 0; h < G; h++) for (let j = n; j < S; j++) assert.ok(Number.isNaN(logitsAll[h * S + j]), 'logits written past n');
  e.kernels.probsFromLogits(lg, G, S, n, lse);
  const probsAll = e.f32(lg, G * S);
  const probs = new Float32Array(G * n);
  for (let h = 0; h < G; h++) probs.set(probsAll.subarray(h * S, h * S + n), h * n);
  const r = { out: e.f32(out, G * d).slice(), lse: e.f32(lse, G).slice(), logits, probs };
  for (const p of [state, qp, lg, out, lse]) e.arena.free(p);
  return r;
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}
function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Per-logit tolerance of the kernels against the float64 reference on the stored values:
 * f32 rounding (a few ulps of the sum of |terms|), plus, for packed pages, the bound of
 * the 16-bit fixed-point query (FIXED_POINT_ONE): half a unit per code,
 * unit = max_c |scale q_c| * max_c kScale_c / 32767, times sum_c code_tc.
 */
function logitTolerance(format: Format, d: number, vg: number, pages: Uint8Array[], counts: number[], q: Float32Array, G: number, scale: number): Float64Array {
  const { k, logW, n } = refAttn.concatPages(format, d, vg, pages, counts);
  const tol = new Float64Array(G * n);
  const packed = format === 'int8' || format === 'int4' || format === 'int2';
  let e = 0;
  for (let pg = 0; pg < pages.length; pg++) {
    const dv = new DataView(pages[pg].buffer, pages[pg].byteOffset);
    const ks = new Float64Array(d), km = new Float64Array(d);
    if (packed) {
      const o = packedOffsets(format, d, vg);
      for (let c = 0; c < d; c++) { ks[c] = halfToFloat(dv.getUint16(o.kScale + 2 * c, true)); km[c] = halfToFloat(dv.getUint16(o.kMin + 2 * c, true)); }
    }
    for (let h = 0; h < G; h++) {
      // the kernel's unit: max_c |scale q_c| * max_c kScale_c / 32767 (a bound on max_c |scale q_c kScale_c|)
      let qa = 0, ksMax = 0;
      if (packed) for (let c = 0; c < d; c++) { qa = Math.max(qa, Math.abs(scale * q[h * d + c])); ksMax = Math.max(ksMax, ks[c]); }
      const unit = (qa * ksMax) / FIXED_POINT_ONE;
      for (let t = 0; t < counts[pg]; t++) {
        const i = e + t;
        let terms = Math.abs(logW[i]) + 1, codes = 0;
        for (let c = 0; c < d; c++) {
          terms += Math.abs(scale * q[h * d + c] * k[i * d + c]);
          if (packed && ks[c] > 0) codes += Math.round((k[i * d + c] - km[c]) / ks[c]);
        }
        tol[h * n + i] = 4e-6 * terms + (unit / 2) * codes * 1.001;
      }
    }
    e += counts[pg];
  }
  return tol;
}

/** Kernel vs the float64 reference on the same stored values, and vs exact attention within the format budget. */
function checkCase(format: Format, d: number, G: number, n: number, ragged: boolean, sharp = false, valueGroup?: number, qScale = 1): void {
  const vg = valueGroup ?? Math.min(32, d);
  const seed = n * 131 + d * 7 + G + FORMAT_CODE[format] * 1000 + (ragged ? 5 : 0);
  const data = entries(seed, n, d);
  const q = gauss(rng(seed + 1), G * d, qScale);
  const scale = (sharp ? 4 : 1) / Math.sqrt(d) / qScale;
  const counts = pageCounts(n, ragged, seed);
  const what = `${format} d=${d} vg=${vg} G=${G} n=${n}${ragged ? ' ragged' : ''}${sharp ? ' sharp' : ''}${qScale !== 1 ? ` q x${qScale}` : ''}`;
  const results: KernelResult[] = [];
  let stored: refAttn.AttentionResult | undefined;
  let tol: Float64Array = new Float64Array(0);
  for (const e of engines) {
    const lane = new Lane(e, format, d, vg, counts, data);
    if (!stored) {
      stored = refAttn.attentionOverPages(format, d, vg, lane.pageBytes(), counts, q, G, scale);
      tol = logitTolerance(format, d, vg, lane.pageBytes(), counts, q, G, scale);
    }
    results.push(runAttention(e, [lane], q, G, d, scale));
    lane.free();
  }
  const exact = refAttn.attention(q, G, d, data.k, data.v, data.logW, n, scale);
  const budget = ERROR_BUDGETS[format];
  for (let i = 0; i < results.length; i++) {
    const r = results[i], name = `${engines[i].backend} ${what}`;
    // logits: absolute error relative to the size of the terms summed
    for (let j = 0; j < G * n; j++) {
      assert.ok(Math.abs(r.logits[j] - stored!.logits[j]) <= tol[j], `${name}: logit ${j} = ${r.logits[j]} vs ${stored!.logits[j]} (tolerance ${tol[j]})`);
    }
    let maxTol = 0;
    for (const t of tol) maxTol = Math.max(maxTol, t);
    assert.ok(maxAbs(r.lse, stored!.lse) <= maxTol + 1e-6 * Math.max(...Array.from(stored!.lse, Math.abs)), `${name}: lse off by ${maxAbs(r.lse, stored!.lse)}`);
    assert.ok(maxAbs(r.probs, stored!.probs) <= 1e-5 + 2 * maxTol, `${name}: probabilities off by ${maxAbs(r.probs, stored!.probs)}`);
    const kErr = relErr(r.out, stored!.out);
    assert.ok(kErr <= budget.kernelRel * (sharp ? 4 : 1) * Math.max(1, Math.log2(n) / 4), `${name}: kernel vs float64 on stored values rel ${kErr}`);
    const aErr = relErr(r.out, exact.out);
    if (process.env.EDGEKV_PRINT_ERRORS) console.log(`${name}: rel err vs exact ${aErr.toExponential(2)}, vs stored ${kErr.toExponential(2)}`);
    // the budget is stated for the standard distribution (scale 1/sqrt(d)), not for a sharpened softmax
    if (!sharp) assert.ok(aErr <= budget.attentionRel, `${name}: vs exact attention rel ${aErr} > budget ${budget.attentionRel}`);
    for (let h = 0; h < G; h++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += r.probs[h * n + j];
      assert.ok(Math.abs(s - 1) <= 1e-4, `${name}: probabilities of head ${h} sum to ${s}`);
    }
  }
  assert.ok(relErr(results[0].out, results[1].out) <= budget.kernelRel * 2, `${what}: SIMD vs scalar`);
}

const COUNTS = [1, 2, 3, 7, 8, 9, 31, 32, 33, 63, 64, 65, 1023];

for (const format of FORMATS) {
  test(`attendPages ${format}: counts ${COUNTS.join(',')} x head dims 64, 128 x G 1, 4`, () => {
    for (const d of [64, 128]) for (const G of [1, 4]) for (const n of COUNTS) {
      if (n === 1023 && G === 1 && d === 64) continue; // covered by the other three
      checkCase(format, d, G, n, false);
    }
  });
  test(`attendPages ${format}: head dim 8, ragged page fills, sharp softmax`, () => {
    for (const n of [1, 2, 9, 33, 65]) checkCase(format, 8, 4, n, false);
    for (const n of [7, 64, 200]) checkCase(format, 64, 4, n, true);
    for (const n of [3, 65]) checkCase(format, 128, 4, n, false, true);
    checkCase(format, 64, 3, 40, false); // odd group
    checkCase(format, 8, 4, 1023 * PAGE_TOKENS - 5, false); // 1023 pages, the last one partial
  });
}

test('other head dims, value groups and GQA groups: row tails, remainder heads, fallback paths', () => {
  for (const format of FORMATS) {
    checkCase(format, 80, 5, 70, false, false, 16);   // R % 16 != 0 (int4/int2 key tails), one remainder head
    checkCase(format, 96, 8, 65, true, false, 32);    // two head blocks, ragged
    checkCase(format, 64, 2, 33, false, false, 8);    // vg = 8: 8-channel chunks at group edges
    checkCase(format, 64, 4, 40, false, false, 4);    // vg = 4: packed values on the float path
    checkCase(format, 128, 1, 100, false, false, 64); // one head, wide groups
    checkCase(format, 256, 4, 64, false, false, 32);  // the largest head dim
    checkCase(format, 16, 6, 45, false, false, 16);   // small head dim: all tails
  }
});

test('f16 pages with |scale * q| beyond the folded range take the exact path', () => {
  // scale * q reaches ~1e5: the 2^112 fold would overflow, so the kernel must use exact widening
  checkCase('f16', 64, 4, 50, false, false, 32, 3e6);
  checkCase('f32', 64, 4, 50, false, false, 32, 3e6);
});

test('exp: probabilities from logits over [-87, 1] within 4e-7 relative of Math.exp; -inf -> 0', () => {
  const n = 2000;
  const logits = new Float32Array(n).map((_, i) => -87 + (88 * i) / (n - 1));
  logits[7] = -Infinity;
  for (const e of engines) {
    const lp = e.arena.alloc(4 * n), lse = e.arena.alloc(16);
    e.f32(lp, n).set(logits);
    e.f32(lse, 1)[0] = 0;
    e.kernels.probsFromLogits(lp, 1, n, n, lse);
    const p = e.f32(lp, n);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      if (i === 7) { assert.is(p[i], 0); continue; }
      const want = Math.exp(logits[i]);
      worst = Math.max(worst, Math.abs(p[i] - want) / want);
    }
    assert.ok(worst <= 4e-7, `${e.backend}: exp relative error ${worst}`);
    e.arena.free(lp); e.arena.free(lse);
  }
});

test('two tiers in one state == one call over all entries; lse merge of two calls == one call', () => {
  const d = 64, G = 4, vg = 32, n1 = 70, n2 = 45;
  const data = entries(99, n1 + n2, d);
  const q = gauss(rng(100), G * d);
  const scale = 1 / Math.sqrt(d);
  for (const e of engines) {
    for (const [f1, f2] of [['f32', 'f32'], ['f16', 'int4'], ['int8', 'int2']] as [Format, Format][]) {
      const a = new Lane(e, f1, d, vg, pageCounts(n1, false, 1), data, 0);
      const b = new Lane(e, f2, d, vg, pageCounts(n2, true, 2), data, n1);
      const both = runAttention(e, [a, b], q, G, d, scale);
      const ra = runAttention(e, [a], q, G, d, scale), rb = runAttention(e, [b], q, G, d, scale);
      // reference over the stored values of both tiers
      const sa = refAttn.concatPages(f1, d, vg, a.pageBytes(), a.counts), sb = refAttn.concatPages(f2, d, vg, b.pageBytes(), b.counts);
      const k = new Float64Array([...sa.k, ...sb.k]), v = new Float64Array([...sa.v, ...sb.v]), w = new Float64Array([...sa.logW, ...sb.logW]);
      const want = refAttn.attention(q, G, d, k, v, w, n1 + n2, scale);
      const what = `${e.backend} ${f1}+${f2}`;
      assert.ok(relErr(both.out, want.out) <= Math.max(ERROR_BUDGETS[f1].kernelRel, ERROR_BUDGETS[f2].kernelRel), `${what}: two tiers vs reference ${relErr(both.out, want.out)}`);
      assert.ok(maxAbs(both.lse, want.lse) <= 5e-4, `${what}: lse`);
      assert.ok(maxAbs(both.probs, want.probs) <= 5e-5, `${what}: probabilities over both tiers`);
      const merged = refAttn.mergePartials(ra, rb, G, d);
      assert.ok(relErr(merged.out, both.out) <= 2e-5, `${what}: merged partials == one call`);
      assert.ok(maxAbs(merged.lse, both.lse) <= 1e-4, `${what}: merged lse`);
      a.free(); b.free();
    }
  }
});

test('log-weights: an entry with logW = ln 2 behaves as two copies; -inf masks an entry', () => {
  const d = 128, G = 4, vg = 32, n = 37;
  const base = entries(5, n, d, false);
  const q = gauss(rng(6), G * d);
  const scale = 1 / Math.sqrt(d);
  // lane A: entry 10 duplicated (n + 1 entries); lane B: entry 10 once with logW = ln 2
  const dup: Entries = { k: new Float32Array((n + 1) * d), v: new Float32Array((n + 1) * d), logW: new Float32Array(n + 1), n: n + 1 };
  dup.k.set(base.k); dup.v.set(base.v);
  dup.k.set(base.k.subarray(10 * d, 11 * d), n * d); dup.v.set(base.v.subarray(10 * d, 11 * d), n * d);
  const weighted: Entries = { ...base, logW: new Float32Array(n) };
  weighted.logW[10] = Math.LN2;
  // lane C: lane A plus 5 masked entries with huge keys
  const masked: Entries = { k: new Float32Array((n + 6) * d), v: new Float32Array((n + 6) * d), logW: new Float32Array(n + 6), n: n + 6 };
  masked.k.set(dup.k); masked.v.set(dup.v);
  for (let i = n + 1; i < n + 6; i++) { masked.logW[i] = -Infinity; masked.k.fill(50, i * d, (i + 1) * d); masked.v.fill(1e4, i * d, (i + 1) * d); }
  for (const e of engines) for (const format of ['f32', 'f16'] as Format[]) {
    const la = new Lane(e, format, d, vg, pageCounts(n + 1, false, 0), dup);
    const lb = new Lane(e, format, d, vg, pageCounts(n, false, 0), weighted);
    const lc = new Lane(e, format, d, vg, pageCounts(n + 6, true, 3), masked);
    const ra = runAttention(e, [la], q, G, d, scale), rb = runAttention(e, [lb], q, G, d, scale), rc = runAttention(e, [lc], q, G, d, scale);
    assert.ok(relErr(rb.out, ra.out) <= 1e-6, `${e.backend} ${format}: ln 2 weight == duplicate`);
    assert.ok(maxAbs(rb.lse, ra.lse) <= 1e-5, `${e.backend} ${format}: lse`);
    assert.ok(relErr(rc.out, ra.out) <= 1e-6, `${e.backend} ${format}: masked entries ignored`);
    for (let h = 0; h < G; h++) for (let i = n + 1; i < n + 6; i++) assert.is(rc.probs[h * (n + 6) + i], 0);
    la.free(); lb.free(); lc.free();
  }
});

test('empty and fully masked lanes finish with out = 0 and lse = -inf', () => {
  const d = 64, G = 4, vg = 32;
  const q = gauss(rng(1), G * d);
  for (const e of engines) for (const format of FORMATS) {
    const empty = new Lane(e, format, d, vg, [], { k: new Float32Array(0), v: new Float32Array(0), logW: new Float32Array(0), n: 0 });
    const r0 = runAttention(e, [empty], q, G, d, 0.125);
    assert.ok(r0.out.every((x) => x === 0), 'empty: out 0');
    assert.ok(r0.lse.every((x) => x === -Infinity), 'empty: lse -inf');
    const data = entries(3, 9, d);
    data.logW.fill(-Infinity);
    const masked = new Lane(e, format, d, vg, [0, 9, 0], data);
    const r1 = runAttention(e, [masked], q, G, d, 0.125);
    assert.ok(r1.out.every((x) => x === 0), `${format} masked: out 0`);
    assert.ok(r1.lse.every((x) => x === -Infinity), `${format} masked: lse -inf`);
    assert.ok(r1.probs.every((x) => x === 0), `${format} masked: probabilities 0`);
    assert.ok(r1.logits.every((x) => x === -Infinity), `${format} masked: logits -inf`);
    // a masked tier followed by a live one
    const live = new Lane(e, format, d, vg, [5], entries(4, 5, d));
    const r2 = runAttention(e, [masked, live], q, G, d, 0.125), r3 = runAttention(e, [live], q, G, d, 0.125);
    assert.ok(relErr(r2.out, r3.out) <= 1e-6 && maxAbs(r2.lse, r3.lse) <= 1e-6, `${format}: masked tier first`);
    empty.free(); masked.free(); live.free();
  }
});

test('large logits do not overflow (running max)', () => {
  const d = 64, G = 1, vg = 32, n = 100;
  const data = entries(11, n, d);
  for (let i = 0; i < n * d; i++) data.k[i] *= 40;
  data.logW[50] = 80;
  const q = gauss(rng(12), G * d);
  for (const e of engines) for (const format of FORMATS) {
    const lane = new Lane(e, format, d, vg, pageCounts(n, false, 0), data);
    const r = runAttention(e, [lane], q, G, d, 1);
    const want = refAttn.attentionOverPages(format, d, vg, lane.pageBytes(), lane.counts, q, G, 1);
    assert.ok(r.out.every(Number.isFinite), `${format}: finite`);
    const tol = logitTolerance(format, d, vg, lane.pageBytes(), lane.counts, q, G, 1);
    assert.ok(relErr(r.out, want.out) <= 10 * ERROR_BUDGETS[format].kernelRel + Math.max(...tol), `${e.backend} ${format}: ${relErr(r.out, want.out)}`);
    assert.ok(Math.abs(r.lse[0] - want.lse[0]) <= Math.max(...tol) + 1e-6 * Math.abs(want.lse[0]), `${format}: lse ${r.lse[0]} vs ${want.lse[0]}`);
    lane.free();
  }
});

test('ops: packLane + attend match the reference; read() returns the stored entries', () => {
  const d = 64, G = 4, n = 77;
  const data = entries(21, n, d);
  const q = gauss(rng(22), G * d);
  for (const e of engines) for (const format of FORMATS) {
    const before = e.arena.bytesInUse;
    const lane = packLane(e, { format, headDim: d, keys: data.k, values: data.v, logWeights: data.logW });
    assert.is(lane.length, n);
    assert.is(lane.bytes, Math.ceil(n / PAGE_TOKENS) * pageBytes(format, d, 32));
    const r = attend(e, lane, q, { lse: true, logits: true, probabilities: true });
    const back = lane.read();
    assert.equal(Array.from(back.positions), Array.from({ length: n }, (_, i) => i));
    const want = refAttn.attention(q, G, d, back.keys, back.values, back.logWeights, n, 1 / Math.sqrt(d));
    assert.ok(relErr(r.out, want.out) <= ERROR_BUDGETS[format].kernelRel, `${format}: out`);
    assert.ok(maxAbs(r.lse!, want.lse) <= 5e-4, `${format}: lse`);
    assert.ok(maxAbs(r.logits!, want.logits) <= 5e-4, `${format}: logits`);
    assert.ok(maxAbs(r.probabilities!, want.probs) <= 5e-5, `${format}: probabilities`);
    const exact = refAttn.attention(q, G, d, data.k, data.v, data.logW, n, 1 / Math.sqrt(d));
    assert.ok(relErr(r.out, exact.out) <= ERROR_BUDGETS[format].attentionRel, `${format}: budget`);
    // two tiers through the wrapper
    const half = 40;
    const t1 = packLane(e, { format: 'f16', headDim: d, keys: data.k.subarray(0, half * d), values: data.v.subarray(0, half * d), logWeights: data.logW.subarray(0, half) });
    const t2 = packLane(e, { format, headDim: d, keys: data.k.subarray(half * d), values: data.v.subarray(half * d), logWeights: data.logW.subarray(half) });
    const r2 = attend(e, [t1, t2], q, { probabilities: true });
    assert.ok(relErr(r2.out, exact.out) <= Math.max(ERROR_BUDGETS.f16.attentionRel, ERROR_BUDGETS[format].attentionRel), `${format}: tiers`);
    assert.is(r2.probabilities!.length, G * n);
    lane.dispose(); t1.dispose(); t2.dispose(); lane.dispose();
    assert.is(e.arena.bytesInUse, before, 'every byte given back');
  }
});

test('ops: bad input throws EdgeKVError naming the argument, and changes nothing', () => {
  const e = engines[0];
  const d = 64;
  const k = new Float32Array(3 * d), v = new Float32Array(3 * d);
  const good = { format: 'int4' as Format, headDim: d, keys: k, values: v };
  const before = e.arena.bytesInUse;
  const bad: [string, unknown, string][] = [
    ['format', { ...good, format: 'int3' }, 'options.format'],
    ['headDim', { ...good, headDim: 60 }, 'options.headDim'],
    ['headDim big', { ...good, headDim: 512 }, 'options.headDim'],
    ['valueGroup', { ...good, valueGroup: 24 }, 'options.valueGroup'],
    ['keys shape', { ...good, keys: new Float32Array(3 * d + 1) }, 'options.keys'],
    ['values shape', { ...good, values: new Float32Array(2 * d) }, 'options.values'],
    ['keys NaN', { ...good, keys: Float32Array.from(k).fill(NaN, 5, 6) }, 'options.keys'],
    ['f16 range', { ...good, values: Float32Array.from(v).fill(1e5, 7, 8) }, 'options.values[7]'],
    ['logW NaN', { ...good, logWeights: new Float32Array([0, NaN, 0]) }, 'options.logWeights'],
    ['logW +inf', { ...good, logWeights: new Float32Array([0, Infinity, 0]) }, 'options.logWeights'],
    ['positions', { ...good, positions: new Int32Array(2) }, 'options.positions'],
    ['unknown option', { ...good, fromat: 'f16' }, 'options.fromat'],
    ['keys type', { ...good, keys: [1, 2] }, 'options.keys'],
  ];
  for (const [name, opts, arg] of bad) {
    try {
      packLane(e, opts as never);
      assert.unreachable(name);
    } catch (err) {
      assert.instance(err, EdgeKVError, name);
      assert.is((err as EdgeKVError).argument, arg, name);
    }
  }
  // f32 accepts large values
  packLane(e, { ...good, format: 'f32', values: Float32Array.from(v).fill(1e5, 7, 8) }).dispose();
  const lane = packLane(e, good);
  const q = new Float32Array(4 * d);
  const badAttend: [string, () => unknown, string][] = [
    ['queries shape', () => attend(e, lane, new Float32Array(d + 1)), 'queries'],
    ['queries empty', () => attend(e, lane, new Float32Array(0)), 'queries'],
    ['group too big', () => attend(e, lane, new Float32Array(33 * d)), 'queries'],
    ['queries inf', () => attend(e, lane, new Float32Array(d).fill(Infinity)), 'queries'],
    ['scale', () => attend(e, lane, q, { scale: NaN }), 'options.scale'],
    ['out', () => attend(e, lane, q, { out: new Float32Array(3) }), 'options.out'],
    ['lse flag', () => attend(e, lane, q, { lse: 1 as never }), 'options.lse'],
    ['no lanes', () => attend(e, [], q), 'lanes'],
    ['not a lane', () => attend(e, [{}] as never, q), 'lanes[0]'],
    ['engine', () => attend({} as never, lane, q), 'engine'],
    ['option', () => attend(e, lane, q, { sclae: 1 } as never), 'options.sclae'],
  ];
  for (const [name, fn, arg] of badAttend) {
    try {
      fn();
      assert.unreachable(name);
    } catch (err) {
      assert.instance(err, EdgeKVError, name);
      assert.is((err as EdgeKVError).argument, arg, name);
    }
  }
  const other = packLane(e, { ...good, headDim: 128, keys: new Float32Array(128), values: new Float32Array(128) });
  assert.throws(() => attend(e, [lane, other], q), (err: unknown) => err instanceof EdgeKVError && err.code === 'E_SHAPE');
  other.dispose();
  lane.dispose();
  assert.throws(() => attend(e, lane, q), (err: unknown) => err instanceof EdgeKVError && err.code === 'E_STATE');
  assert.is(e.arena.bytesInUse, before);
});

test.run();

/**
 * The evaluation harness behind `edgekv eval`: perplexity / KL against the full cache,
 * needle retrieval, and attention-output error on real captured KV, for a list of
 * policies x budgets x precisions at EQUAL BYTES.
 *
 * Equal bytes: a budget is a fraction `ratio` of the bytes that the full cache would
 * hold in f16 for the same context (every lane, every page byte: payload, scales,
 * minima, positions, log-weights). Each configuration gets that many bytes
 * (`budget: { bytes }`), whatever its precision; the cache's planner turns them into
 * tokens per lane. The reference ("full") is exact f32 attention (`ExactAttention`).
 */
import type { Engine } from '../engine.ts';
import { EdgeKVError } from '../errors.ts';
import { PAGE_TOKENS, pageBytes, type Format } from '../formats.ts';
import type { LlamaModel } from '../model/llama.ts';
import type { AttentionBackend } from '../model/types.ts';
import { createCache } from '../cache/cache.ts';
import { klDivergence, nll, argmax } from './metrics.ts';
import { makeNeedle, needleHit, needlePrompt } from './needle.ts';
import { SplitMix } from './rng.ts';
import { prefillOneShot } from '../model/prefill.ts';
import { Progress } from './progress.ts';
import type { EvalOptions } from './options.ts';

/** One result row (the JSON schema of `edgekv eval --json`). */
export interface EvalRow {
  task: 'ppl' | 'needle' | 'attn-error';
  policy: string;
  precision: Format | 'f32-exact';
  ratio: number;
  budgetBytes: number;
  /** Bytes the cache really held at the end of the run (stats().bytes). */
  usedBytes: number;
  seed: number;
  tokens: number;
  ppl?: number;
  kl?: number;
  top1?: number;
  accuracy?: number;
  depth?: number;
  relError?: number;
  layer?: number;
  perHead?: number[];
  seconds: number;
}

export interface EvalContext {
  engine: Engine;
  model: LlamaModel;
  text: string;
  options: EvalOptions;
}

/** Bytes of the full f16 cache of `tokens` tokens for `layers` layers of the model. */
export function fullCacheBytes(model: LlamaModel, tokens: number, layers = model.config.layers): number {
  const c = model.config;
  const vg = c.headDim % 32 === 0 ? 32 : c.headDim % 16 === 0 ? 16 : 8;
  return layers * c.kvHeads * Math.ceil(tokens / PAGE_TOKENS) * pageBytes('f16', c.headDim, vg);
}

/** A configuration of the sweep. */
export interface Config { policy: string; precision: Format; ratio: number }

export function configs(o: EvalOptions): Config[] {
  const out: Config[] = [];
  for (const policy of o.policies) {
    if (policy === 'full') {
      for (const precision of o.precisions) out.push({ policy, precision, ratio: 1 });
      continue;
    }
    for (const precision of o.precisions) for (const ratio of o.ratios) out.push({ policy, precision, ratio });
  }
  return out;
}

/**
 * A policy named on the command line, with options: `name` or `name:key=value:key=value`
 * (e.g. `balancekv:gamma=0:temp=0.1`); values are numbers, true/false, or strings.
 */
export function policySpec(s: string): string | ({ name: string } & Record<string, unknown>) {
  const [name, ...opts] = s.split(':');
  if (opts.length === 0) return s;
  const spec: { name: string } & Record<string, unknown> = { name };
  for (const kv of opts) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new EdgeKVError('E_ARG', `--policies ${s}: option ${JSON.stringify(kv)} is not key=value (write name:key=value:key=value)`, '--policies');
    const k = kv.slice(0, eq), v = kv.slice(eq + 1);
    spec[k] = v === 'true' ? true : v === 'false' ? false : v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return spec;
}

/** A cache for one configuration (1 layer for attn-error, all layers otherwise). */
export function cacheFor(ctx: EvalContext, cfg: Config, budgetBytes: number, seed: number, layers = ctx.model.config.layers) {
  const c = ctx.model.config, o = ctx.options;
  return createCache(ctx.engine, {
    layers, qHeads: c.qHeads, kvHeads: c.kvHeads, headDim: c.headDim,
    ...(cfg.policy === 'full' ? { policy: 'full' } : { policy: policySpec(cfg.policy), budget: { bytes: Math.floor(budgetBytes) } }),
    precision: cfg.precision,
    sinkTokens: o.sinkTokens,
    windowTokens: o.windowTokens,
    planner: o.planner as 'uniform' | 'pyramid',
    hadamard: o.hadamard,
    seed,
  });
}

/** Token ids of a seeded window of the text: `count` tokens starting at a document boundary. */
export function textWindow(ctx: EvalContext, seed: number, count: number): number[] {
  const docs = ctx.text.split('\n<|doc|>\n');
  const rng = new SplitMix(seed * 7919 + 17);
  const tok = ctx.model.tokenizer;
  // Start at a random document; concatenate following documents until long enough.
  for (let attempt = 0; attempt < 50; attempt++) {
    let i = rng.int(docs.length);
    let s = '';
    while (s.length < count * 6 && i < docs.length) s += (s ? '\n<|doc|>\n' : '') + docs[i++];
    const ids = tok.encode(s.slice(0, count * 8));
    if (ids.length >= count) return ids.slice(0, count);
  }
  throw new EdgeKVError('E_ARG', `the text is too short for --tokens ${count}`, '--tokens');
}

function haystackText(ctx: EvalContext, seed: number, chars: number): string {
  const docs = ctx.text.split('\n<|doc|>\n');
  const rng = new SplitMix(seed * 104729 + 3);
  let i = rng.int(docs.length), s = '';
  while (s.length < chars) { s += (s ? '\n' : '') + docs[i % docs.length]; i++; }
  return s.slice(0, chars);
}

function now(): number { return typeof performance !== 'undefined' ? performance.now() : Date.now(); }

function runFull(model: LlamaModel, ids: number[], onLogits: (i: number, l: Float32Array) => void): void {
  const att = model.createExactAttention({ initialCapacity: ids.length + 8 });
  try { model.forward(ids, att, { onLogits }); } finally { att.dispose(); }
}

/** --task ppl: teacher-forced perplexity and KL vs the full cache. */
export function evalPpl(ctx: EvalContext): EvalRow[] {
  const { model, options: o } = ctx;
  const V = model.config.vocabSize;
  const N = o.tokens, from = Math.floor(N * o.evalFrom), M = N - 1 - from;
  const cfgs = configs(o);
  const rows: EvalRow[] = [];
  const prog = new Progress(o.seeds * (cfgs.length + 1), 'eval ppl', o.progress);
  const fullBytes = fullCacheBytes(model, N);
  for (let seed = o.seedStart; seed < o.seedStart + o.seeds; seed++) {
    const ids = textWindow(ctx, seed, N);
    const ref = new Float32Array(M * V);
    let t0 = now();
    let refNll = 0;
    runFull(model, ids, (i, l) => {
      if (i >= from && i < N - 1) { ref.set(l, (i - from) * V); refNll += nll(l, 0, V, ids[i + 1]); }
    });
    if (!o.noReference) rows.push({ task: 'ppl', policy: 'exact', precision: 'f32-exact', ratio: 1, budgetBytes: fullBytes, usedBytes: fullCacheBytes(model, N) * 2, seed, tokens: N, ppl: Math.exp(refNll / M), kl: 0, top1: 1, seconds: (now() - t0) / 1000 });
    prog.tick(`seed ${seed} exact`);
    for (const cfg of cfgs) {
      t0 = now();
      const budget = fullBytes * cfg.ratio;
      const cache = cacheFor(ctx, cfg, budget, seed);
      let sNll = 0, sKl = 0, agree = 0;
      try {
        model.forward(ids, cache as unknown as AttentionBackend, {
          onLogits: (i, l) => {
            if (i < from || i >= N - 1) return;
            const off = (i - from) * V;
            sNll += nll(l, 0, V, ids[i + 1]);
            sKl += klDivergence(ref, off, l, 0, V);
            if (argmax(ref, off, V) === argmax(l, 0, V)) agree++;
          },
        });
        rows.push({
          task: 'ppl', policy: cfg.policy, precision: cfg.precision, ratio: cfg.ratio, budgetBytes: Math.floor(budget),
          usedBytes: cache.stats().bytes, seed, tokens: N, ppl: Math.exp(sNll / M), kl: sKl / M, top1: agree / M,
          seconds: (now() - t0) / 1000,
        });
      } finally { cache.dispose(); }
      prog.tick(`${cfg.policy} ${cfg.precision} ${cfg.ratio}`);
    }
  }
  return rows;
}

/** Greedy continuation of a prompt through `attention`; stops at a newline or after `max` tokens. */
function greedyAnswer(model: LlamaModel, ids: number[], attention: AttentionBackend, max: number, oneshot = false): string {
  const V = model.config.vocabSize;
  let logits = oneshot ? prefillOneShot(model, ids, attention) : model.forward(ids, attention);
  const out: number[] = [];
  let pos = ids.length;
  for (let i = 0; i < max; i++) {
    const next = argmax(logits, 0, V);
    out.push(next);
    const text = model.tokenizer.decode(out);
    if (text.includes('\n') || model.eosTokenIds.includes(next)) break;
    logits = model.forward([next], attention, { startPosition: pos++ });
  }
  return model.tokenizer.decode(out).split('\n')[0];
}

/** --task needle: greedy exact-match retrieval over depths x context lengths. */
export function evalNeedle(ctx: EvalContext): EvalRow[] {
  const { model, options: o } = ctx;
  const cfgs = configs(o);
  const rows: EvalRow[] = [];
  const prog = new Progress(o.contexts.length * o.seeds * o.depths.length * (cfgs.length + (o.noReference ? 0 : 1)), 'eval needle', o.progress);
  for (const L of o.contexts) {
    const fullBytes = fullCacheBytes(model, L);
    for (let seed = o.seedStart; seed < o.seedStart + o.seeds; seed++) {
      for (const depth of o.depths) {
        const rng = new SplitMix(seed * 31337 + Math.round(depth * 1000) + L);
        const needle = makeNeedle(rng);
        let chars = L * 4;
        let ids: number[] = [];
        for (let tries = 0; tries < 8; tries++) {
          ids = model.tokenizer.encode(needlePrompt(haystackText(ctx, seed + Math.round(depth * 100), chars), needle, depth));
          if (ids.length <= L) break;
          chars = Math.floor(chars * (L / ids.length) * 0.98);
        }
        const run = (policy: string, precision: Format | 'f32-exact', ratio: number, make: () => AttentionBackend & { dispose(): void; stats?: () => { bytes: number } }) => {
          const t0 = now();
          const att = make();
          try {
            const ans = greedyAnswer(model, ids, att, 12, o.prefill === 'oneshot' && policy !== 'exact');
            rows.push({
              task: 'needle', policy, precision, ratio, budgetBytes: Math.floor(fullBytes * ratio), usedBytes: att.stats ? att.stats().bytes : fullBytes * 2,
              seed, tokens: ids.length, depth, accuracy: needleHit(ans, needle) ? 1 : 0, seconds: (now() - t0) / 1000,
            });
          } finally { att.dispose(); }
          prog.tick(`${policy} ${precision} ${ratio} L=${L} d=${depth}`);
        };
        if (!o.noReference) run('exact', 'f32-exact', 1, () => model.createExactAttention({ initialCapacity: ids.length + 16 }));
        for (const cfg of cfgs) run(cfg.policy, cfg.precision, cfg.ratio, () => cacheFor(ctx, cfg, fullBytes * cfg.ratio, seed) as never);
      }
    }
  }
  return rows;
}

/** Captured keys / values / queries of some layers: [tokens][heads*headDim] each. */
export interface Capture { layers: number[]; keys: Float32Array[]; values: Float32Array[]; queries: Float32Array[]; tokens: number }

/** Run the model over `ids` with exact attention and record the chosen layers' K, V (post-RoPE) and Q. */
export function captureKV(model: LlamaModel, ids: number[], layers: number[]): Capture {
  const c = model.config, kvDim = c.kvHeads * c.headDim, qDim = c.qHeads * c.headDim, T = ids.length;
  const cap: Capture = { layers, tokens: T, keys: layers.map(() => new Float32Array(T * kvDim)), values: layers.map(() => new Float32Array(T * kvDim)), queries: layers.map(() => new Float32Array(T * qDim)) };
  const nK = new Array(c.layers).fill(0), nQ = new Array(c.layers).fill(0);
  const exact = model.createExactAttention({ initialCapacity: T + 8 });
  const spy: AttentionBackend = {
    append(layer, k, v, pos) {
      const li = layers.indexOf(layer);
      if (li >= 0) {
        const toks = k.length / kvDim;
        // keys arrive as [kvHeads, tokens, headDim]; store [tokens][kvHeads*headDim]
        for (let t = 0; t < toks; t++) for (let h = 0; h < c.kvHeads; h++) {
          const src = (h * toks + t) * c.headDim, dst = (nK[layer] + t) * kvDim + h * c.headDim;
          cap.keys[li].set(k.subarray(src, src + c.headDim), dst);
          cap.values[li].set(v.subarray(src, src + c.headDim), dst);
        }
        nK[layer] += toks;
      }
      exact.append(layer, k, v, pos);
    },
    attend(layer, q, out) {
      const li = layers.indexOf(layer);
      if (li >= 0) { cap.queries[li].set(q, nQ[layer] * qDim); nQ[layer]++; }
      return exact.attend(layer, q, out);
    },
  };
  try { model.forward(ids, spy); } finally { exact.dispose(); }
  return cap;
}

/** Exact float64 attention of one query [qHeads*d] over the first `n` captured tokens. */
export function exactAttention64(model: LlamaModel, cap: Capture, li: number, q: Float32Array, n: number): Float64Array {
  const c = model.config, d = c.headDim, G = c.qHeads / c.kvHeads, kvDim = c.kvHeads * d;
  const out = new Float64Array(c.qHeads * d);
  const K = cap.keys[li], Vv = cap.values[li], scale = 1 / Math.sqrt(d);
  const logit = new Float64Array(n);
  for (let h = 0; h < c.qHeads; h++) {
    const kvh = Math.floor(h / G);
    let m = -Infinity;
    for (let t = 0; t < n; t++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += q[h * d + i] * K[t * kvDim + kvh * d + i];
      logit[t] = s * scale;
      if (logit[t] > m) m = logit[t];
    }
    let z = 0;
    for (let t = 0; t < n; t++) { const w = Math.exp(logit[t] - m); z += w; for (let i = 0; i < d; i++) out[h * d + i] += w * Vv[t * kvDim + kvh * d + i]; }
    for (let i = 0; i < d; i++) out[h * d + i] /= z;
  }
  return out;
}

/**
 * --task attn-error: relative error ||o^ - o|| / ||o|| of the attention output for
 * the last `futureQueries` queries against exact attention over the prefix, after the
 * prefix was streamed through a compressed 1-layer cache (append + attend per token,
 * so observing policies see the real queries). Mean over heads and queries.
 */
export function evalAttnError(ctx: EvalContext): EvalRow[] {
  const { model, options: o } = ctx;
  const c = model.config, d = c.headDim, kvDim = c.kvHeads * d, qDim = c.qHeads * d;
  const layers = o.layers ?? [0, Math.floor(c.layers / 2), c.layers - 1];
  for (const l of layers) if (l < 0 || l >= c.layers) throw new EdgeKVError('E_ARG', `--layers ${l} is out of range [0, ${c.layers - 1}]`, '--layers');
  const N = o.tokens, F = Math.min(o.futureQueries, N - 1), P = N - F;
  const cfgs = configs(o).filter((x) => x.policy !== 'full');
  const rows: EvalRow[] = [];
  const prog = new Progress(o.seeds * layers.length * cfgs.length, 'eval attn-error', o.progress);
  const fullBytes = fullCacheBytes(model, P, 1);
  for (let seed = o.seedStart; seed < o.seedStart + o.seeds; seed++) {
    const ids = textWindow(ctx, seed, N);
    const cap = captureKV(model, ids, layers);
    for (let li = 0; li < layers.length; li++) {
      const exact: Float64Array[] = [];
      for (let f = 0; f < F; f++) exact.push(exactAttention64(model, cap, li, cap.queries[li].subarray((P + f) * qDim, (P + f + 1) * qDim), P));
      for (const cfg of cfgs) {
        const t0 = now();
        const cache = cacheFor(ctx, cfg, fullBytes * cfg.ratio, seed, 1);
        try {
          const kBuf = new Float32Array(kvDim), vBuf = new Float32Array(kvDim), out = new Float32Array(qDim);
          if (o.prefill === 'oneshot') {
            // The papers' setting: observe the prompt's last queries, append the whole prefix once.
            const W = Math.min(32, P);
            cache.observe(0, cap.queries[li].slice((P - W) * qDim, P * qDim));
            const K = new Float32Array(P * kvDim), Vv = new Float32Array(P * kvDim);
            for (let t = 0; t < P; t++) for (let h = 0; h < c.kvHeads; h++) {
              K.set(cap.keys[li].subarray(t * kvDim + h * d, t * kvDim + (h + 1) * d), (h * P + t) * d);
              Vv.set(cap.values[li].subarray(t * kvDim + h * d, t * kvDim + (h + 1) * d), (h * P + t) * d);
            }
            cache.append(0, K, Vv);
          }
          for (let t = 0; o.prefill === 'stream' && t < P; t++) {
            // captured rows are [kvHeads*d] = [kvHeads, 1, d]: already the append layout for one token
            kBuf.set(cap.keys[li].subarray(t * kvDim, (t + 1) * kvDim));
            vBuf.set(cap.values[li].subarray(t * kvDim, (t + 1) * kvDim));
            cache.append(0, kBuf, vBuf);
            cache.attend(0, cap.queries[li].subarray(t * qDim, (t + 1) * qDim), out);
          }
          const perHead = new Array(c.qHeads).fill(0);
          for (let f = 0; f < F; f++) {
            cache.attend(0, cap.queries[li].subarray((P + f) * qDim, (P + f + 1) * qDim), out);
            const ex = exact[f];
            for (let h = 0; h < c.qHeads; h++) {
              let num = 0, den = 0;
              for (let i = 0; i < d; i++) { const e = ex[h * d + i]; num += (out[h * d + i] - e) ** 2; den += e * e; }
              perHead[h] += Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-8) / F;
            }
          }
          rows.push({
            task: 'attn-error', policy: cfg.policy, precision: cfg.precision, ratio: cfg.ratio, budgetBytes: Math.floor(fullBytes * cfg.ratio),
            usedBytes: cache.stats().bytes, seed, tokens: N, layer: layers[li], relError: perHead.reduce((a, b) => a + b, 0) / c.qHeads,
            perHead, seconds: (now() - t0) / 1000,
          });
        } finally { cache.dispose(); }
        prog.tick(`L${layers[li]} ${cfg.policy} ${cfg.precision} ${cfg.ratio}`);
      }
    }
  }
  return rows;
}

/**
 * `verifyModel(dir)`: checks the runner against the model directory's `reference.json`
 * (values computed by transformers / float64 numpy, see each model's SOURCE.md):
 *
 * - tokenizer: `encode(text)` equals the reference ids exactly (and decodes back);
 * - logits: every reference logit within `LOGIT_ABS_TOL` (absolute), and our argmax equal
 *   to the reference's top-1 unless the two are within that tolerance (a tie);
 * - mean NLL over a prompt (teacher-forced) within `NLL_ABS_TOL` nats;
 * - greedy continuations: identical ids; a divergence is accepted only at a near-tie
 *   (our logits for the two tokens within `2 * LOGIT_ABS_TOL`), and reported as such.
 *
 * Tolerances. SOURCE.md reports a float32 runner within 3.0e-5 (max abs logit) of
 * transformers; this runner also computes in f32 (f16 weights decoded exactly), with another
 * summation order. 1e-3 absolute on logits (|logit| reaches ~24) leaves a 30x margin over
 * that while still catching any real error (a wrong RoPE, norm or GQA mapping moves logits
 * by > 0.1). The mean NLL is an average of log-softmax values, held to the same 1e-3.
 */
import { EdgeKVError } from '../errors.ts';
import type { Engine } from '../engine.ts';
import { loadModel, type LlamaModel } from './llama.ts';
import { modelFiles, type ModelFiles } from './paths.ts';
import { argmax } from './sampling.ts';

/** Absolute tolerance on logits against the reference. */
export const LOGIT_ABS_TOL = 1e-3;
/** Absolute tolerance on a mean negative log-likelihood (nats / token). */
export const NLL_ABS_TOL = 1e-3;
/** Logit margin under which two tokens count as tied for greedy decoding. */
export const GREEDY_TIE_TOL = 2 * LOGIT_ABS_TOL;

/** One check of the report. */
export interface VerifyCheck {
  /** e.g. `tokenizer "Once upon a time"`, `nll kernel_c`. */
  name: string;
  ok: boolean;
  /** One line: what was compared and how it came out. */
  detail: string;
  /** The measured error, where there is one. */
  error?: number;
  tolerance?: number;
}

/** What `verifyModel` returns. */
export interface VerifyReport {
  model: string;
  ok: boolean;
  checks: VerifyCheck[];
  tolerances: { logitAbs: number; nllAbs: number; greedyTie: number };
  /** Prefill and decode rates seen during the checks (tokens/s). */
  speed: { prefillTokensPerSec: number; decodeTokensPerSec: number };
  backend: string;
  seconds: number;
}

/** Options of `verifyModel`. */
export interface VerifyOptions {
  /** Engine to run on (default: `createEngine()`). */
  engine?: Engine;
  /** An already loaded model of this directory (skips loading). */
  model?: LlamaModel;
  /** Compare at most this many greedy tokens per sample (default: all the reference has). */
  greedyTokens?: number;
  /** Use at most this many of the reference's prompts for logits / NLL (default: all). */
  prompts?: number;
}

interface RefPrompt { source?: string; text: string; ids: number[]; mean_nll?: number; last4?: Array<{ pos: number; top5_ids: number[]; top5_logits: number[] }> }
interface Reference {
  tokenizer_cases?: Array<{ text: string; ids: number[] }>;
  greedy?: { prompt: string; ids: number[]; text?: string };
  logits_last_position?: { prompt_ids: number[]; logits: number[] };
  perplexity?: { text: string; window_tokens: number; mean_nll_nats: number };
  prompts?: RefPrompt[];
  samples?: Record<string, { prompt: string; greedy_ids: number[]; text?: string }>;
}

function short(s: string, n = 40): string {
  const j = JSON.stringify(s);
  return j.length > n ? `${j.slice(0, n - 4)}..."` : j;
}

function sameIds(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function logSoftmaxAt(l: Float32Array, id: number): number {
  let m = -Infinity;
  for (let i = 0; i < l.length; i++) if (l[i] > m) m = l[i];
  let s = 0;
  for (let i = 0; i < l.length; i++) s += Math.exp(l[i] - m);
  return l[id] - m - Math.log(s);
}

/**
 * Run every check `reference.json` supports against the model in `source` and return the
 * report (prints nothing). Throws `E_MODEL` when reference.json is missing or unreadable.
 */
export async function verifyModel(source: string | URL | ModelFiles, options: VerifyOptions = {}): Promise<VerifyReport> {
  const t0 = performance.now();
  const files = modelFiles(source);
  const refBytes = await files.read('reference.json');
  if (refBytes === null) throw new EdgeKVError('E_MODEL', `${files.describe('reference.json')} is missing: verify-model compares the runner with a model's reference.json`, 'reference.json');
  let ref: Reference;
  try { ref = JSON.parse(new TextDecoder().decode(refBytes)) as Reference; } catch (e) {
    throw new EdgeKVError('E_MODEL', `${files.describe('reference.json')}: not valid JSON (${(e as Error).message})`, 'reference.json');
  }
  const known = ['tokenizer_cases', 'greedy', 'logits_last_position', 'perplexity', 'prompts', 'samples'] as const;
  if (!known.some((k) => ref[k] !== undefined)) {
    throw new EdgeKVError('E_MODEL', `${files.describe('reference.json')}: none of the sections ${known.join(', ')} is present`, 'reference.json');
  }
  const model = options.model ?? (await loadModel(files, { engine: options.engine }));
  const tok = model.tokenizer;
  const checks: VerifyCheck[] = [];
  let prefillTokens = 0, prefillMs = 0, decodeTokens = 0, decodeMs = 0;

  const checkTokenizer = (text: string, want: number[], name: string): void => {
    const got = tok.encode(text);
    const at = sameIds(got, want);
    const back = tok.decode(got, { skipSpecialTokens: true });
    const roundTrip = back === text || tok.decode(got) === text;
    checks.push({
      name: `tokenizer ${name}`,
      ok: at < 0 && roundTrip,
      detail: at < 0
        ? `${want.length} ids identical${roundTrip ? ', decodes back' : `, but decodes to ${short(back)}`}`
        : `ids differ at ${at}: got ${got.slice(at, at + 5).join(',')} want ${want.slice(at, at + 5).join(',')}`,
    });
  };

  /** Teacher-forced pass: mean NLL of ids[1:] and the logits at `positions`. */
  const teacherForced = (ids: number[], positions: number[]): { nll: number; at: Map<number, Float32Array> } => {
    const att = model.createExactAttention({ initialCapacity: ids.length });
    const at = new Map<number, Float32Array>();
    let sum = 0;
    const t = performance.now();
    try {
      model.forward(ids, att, {
        onLogits: (i, l) => {
          if (positions.includes(i)) at.set(i, l.slice());
          if (i + 1 < ids.length) sum -= logSoftmaxAt(l, ids[i + 1]);
        },
      });
    } finally { att.dispose(); }
    prefillMs += performance.now() - t; prefillTokens += ids.length;
    return { nll: sum / (ids.length - 1), at };
  };

  const checkGreedy = (name: string, promptIds: number[], want: number[], text: string | undefined, textIncludesPrompt: boolean): void => {
    const n = Math.min(want.length, options.greedyTokens ?? want.length);
    const att = model.createExactAttention({ initialCapacity: promptIds.length + n });
    const got: number[] = [];
    let divergedAt = -1, margin = 0;
    const logits = new Float32Array(model.config.vocabSize);
    try {
      let t = performance.now();
      model.forward(promptIds, att, { logitsOut: logits });
      prefillMs += performance.now() - t; prefillTokens += promptIds.length;
      t = performance.now();
      for (let i = 0; i < n; i++) {
        const next = argmax(logits);
        got.push(next);
        if (next !== want[i]) { divergedAt = i; margin = logits[next] - logits[want[i]]; break; }
        if (i + 1 < n) model.forward([next], att, { logitsOut: logits });
      }
      decodeMs += performance.now() - t; decodeTokens += Math.max(0, got.length - 1);
    } finally { att.dispose(); }
    const truncated = n < want.length;
    if (divergedAt < 0) {
      let textOk = true, textNote = '';
      if (text !== undefined) {
        const decoded = textIncludesPrompt ? tok.decode([...promptIds, ...got], { skipSpecialTokens: true }) : tok.decode(got);
        textOk = truncated ? text.startsWith(decoded.replace(/\ufffd+$/, '')) : decoded === text;
        textNote = textOk ? ', text identical' : `, but text differs: ${short(decoded)} vs ${short(text)}`;
      }
      checks.push({ name: `greedy ${name}`, ok: textOk, detail: `${n}${truncated ? ` of ${want.length}` : ''} tokens identical${textNote}` });
    } else {
      const tie = margin <= GREEDY_TIE_TOL;
      checks.push({
        name: `greedy ${name}`,
        ok: tie,
        error: margin,
        tolerance: GREEDY_TIE_TOL,
        detail: tie
          ? `identical for ${divergedAt} tokens, then a near-tie (logit margin ${margin.toExponential(2)}) picked ${got[divergedAt]} instead of ${want[divergedAt]}`
          : `differs at token ${divergedAt}: got ${got[divergedAt]}, want ${want[divergedAt]} (our logit margin ${margin.toFixed(4)})`,
      });
    }
  };

  for (const c of ref.tokenizer_cases ?? []) checkTokenizer(c.text, c.ids, short(c.text));

  const prompts = (ref.prompts ?? []).slice(0, options.prompts ?? Infinity);
  for (const [pi, p] of prompts.entries()) {
    const name = p.source ?? `prompt ${pi}`;
    checkTokenizer(p.text, p.ids, name);
    const last = p.last4 ?? [];
    const { nll, at } = teacherForced(p.ids, last.map((x) => x.pos));
    if (p.mean_nll !== undefined) {
      const err = Math.abs(nll - p.mean_nll);
      checks.push({ name: `nll ${name}`, ok: err <= NLL_ABS_TOL, error: err, tolerance: NLL_ABS_TOL, detail: `mean NLL ${nll.toFixed(6)} vs ${p.mean_nll.toFixed(6)} over ${p.ids.length - 1} tokens` });
    }
    for (const x of last) {
      const l = at.get(x.pos);
      if (!l) { checks.push({ name: `top5 ${name} @${x.pos}`, ok: false, detail: `position ${x.pos} is beyond the prompt (${p.ids.length} tokens)` }); continue; }
      let err = 0;
      x.top5_ids.forEach((id, j) => { err = Math.max(err, Math.abs(l[id] - x.top5_logits[j])); });
      const top = argmax(l);
      const topOk = top === x.top5_ids[0] || l[top] - l[x.top5_ids[0]] <= LOGIT_ABS_TOL;
      checks.push({
        name: `top5 ${name} @${x.pos}`, ok: err <= LOGIT_ABS_TOL && topOk, error: err, tolerance: LOGIT_ABS_TOL,
        detail: `max |logit diff| ${err.toExponential(2)} over the reference top-5; our top-1 ${top}${topOk ? '' : ` != ${x.top5_ids[0]}`}`,
      });
    }
  }

  if (ref.logits_last_position) {
    const { prompt_ids: ids, logits: want } = ref.logits_last_position;
    const att = model.createExactAttention({ initialCapacity: ids.length });
    let got: Float32Array;
    try { got = model.forward(ids, att); } finally { att.dispose(); }
    let err = 0;
    for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
    const lenOk = want.length === got.length;
    checks.push({ name: 'logits last position', ok: lenOk && err <= LOGIT_ABS_TOL, error: err, tolerance: LOGIT_ABS_TOL, detail: `max |logit diff| ${err.toExponential(2)} over ${want.length} logits${lenOk ? '' : ` (vocab ${got.length} != ${want.length})`}` });
  }

  if (ref.perplexity) {
    const p = ref.perplexity;
    const ids = tok.encode(p.text).slice(0, p.window_tokens);
    const { nll } = teacherForced(ids, []);
    const err = Math.abs(nll - p.mean_nll_nats);
    checks.push({ name: 'nll perplexity window', ok: err <= NLL_ABS_TOL, error: err, tolerance: NLL_ABS_TOL, detail: `mean NLL ${nll.toFixed(6)} vs ${p.mean_nll_nats.toFixed(6)} over ${ids.length - 1} tokens (ppl ${Math.exp(nll).toFixed(2)})` });
  }

  if (ref.greedy) {
    const g = ref.greedy;
    const promptIds = tok.encode(g.prompt);
    const at = sameIds(promptIds, g.ids.slice(0, promptIds.length));
    if (at >= 0) checks.push({ name: 'greedy prompt ids', ok: false, detail: `the prompt encodes differently from the reference at ${at}` });
    else checkGreedy(short(g.prompt, 24), promptIds, g.ids.slice(promptIds.length), g.text, true);
  }

  for (const [name, s] of Object.entries(ref.samples ?? {})) {
    checkGreedy(name, tok.encode(s.prompt), s.greedy_ids, s.text, false);
  }

  return {
    model: files.location,
    ok: checks.every((c) => c.ok),
    checks,
    tolerances: { logitAbs: LOGIT_ABS_TOL, nllAbs: NLL_ABS_TOL, greedyTie: GREEDY_TIE_TOL },
    speed: {
      prefillTokensPerSec: prefillMs > 0 ? (prefillTokens * 1000) / prefillMs : 0,
      decodeTokensPerSec: decodeMs > 0 ? (decodeTokens * 1000) / decodeMs : 0,
    },
    backend: model.engine.backend,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The report as text lines (one per check, then a summary). */
export function formatVerifyReport(r: VerifyReport): string {
  const lines = [`verify-model ${r.model} (${r.backend})`];
  for (const c of r.checks) lines.push(`  ${c.ok ? 'PASS' : 'FAIL'}  ${c.name}: ${c.detail}`);
  const failed = r.checks.filter((c) => !c.ok).length;
  lines.push(`tolerances: logits ${r.tolerances.logitAbs} abs, mean NLL ${r.tolerances.nllAbs} nats, greedy tie margin ${r.tolerances.greedyTie}`);
  lines.push(`speed: prefill ${r.speed.prefillTokensPerSec.toFixed(1)} tok/s, decode ${r.speed.decodeTokensPerSec.toFixed(1)} tok/s`);
  lines.push(`${r.ok ? 'OK' : 'MISMATCH'}: ${r.checks.length - failed} passed, ${failed} failed in ${r.seconds.toFixed(1)} s`);
  return lines.join('\n');
}

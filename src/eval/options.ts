/**
 * `edgekv eval` options: parsed, validated, with defaults. Flag names are fixed by
 * issue 4: --model --text --task --policies --ratios --precisions --tokens --seeds --json.
 */
import { parseArgs } from 'node:util';
import { EdgeKVError, argError } from '../errors.ts';
import { FORMATS, type Format } from '../formats.ts';

export const TASKS = ['ppl', 'needle', 'attn-error'] as const;
export type Task = (typeof TASKS)[number];

export interface EvalOptions {
  task: Task;
  model?: string;
  text?: string;
  /** Policy specs; a composition is written `base+stage` (e.g. `snapkv+kvcrush`). */
  policies: string[];
  ratios: number[];
  precisions: Format[];
  tokens: number;
  seeds: number;
  /** First seed (seeds are seedStart .. seedStart + seeds - 1); lets a sweep be split over processes. */
  seedStart: number;
  json: boolean;
  out?: string;
  sinkTokens: number;
  windowTokens: number;
  /** needle: depths in [0, 1]. */
  depths: number[];
  /** needle: context lengths (tokens); default [--tokens]. */
  contexts: number[];
  /** attn-error: layers to report (default: first, middle, last). */
  layers?: number[];
  /** attn-error: number of future queries evaluated. */
  futureQueries: number;
  /** ppl: evaluate positions from this fraction of the context on. */
  evalFrom: number;
  planner: string;
  hadamard: boolean;
  progress: boolean;
  /** needle: skip the exact-attention reference rows (when another process of a split sweep runs them). */
  noReference: boolean;
  /** needle / attn-error: 'oneshot' (default: exact prompt, then one append per layer, compress once) or 'stream' (token by token). */
  prefill: 'oneshot' | 'stream';
  title?: string;
}

function list(s: string | undefined, name: string): string[] {
  if (s === undefined) return [];
  const parts = s.split(',').map((x) => x.trim()).filter(Boolean);
  if (parts.length === 0) throw argError(name, s, 'a comma-separated list');
  return parts;
}

function numList(s: string | undefined, name: string, lo: number, hi: number, dflt: number[]): number[] {
  if (s === undefined) return dflt;
  return list(s, name).map((p) => {
    let v: number;
    const frac = /^1\/(\d+)$/.exec(p);
    v = frac ? 1 / Number(frac[1]) : Number(p);
    if (!Number.isFinite(v) || v < lo || v > hi) throw argError(name, p, `numbers in [${lo}, ${hi}] (fractions like 1/8 allowed)`);
    return v;
  });
}

function int(s: string | undefined, name: string, lo: number, hi: number, dflt: number): number {
  if (s === undefined) return dflt;
  const v = Number(s);
  if (!Number.isInteger(v) || v < lo || v > hi) throw argError(name, s, `an integer in [${lo}, ${hi}]`);
  return v;
}

export const EVAL_HELP = `usage: edgekv eval --task ppl|needle|attn-error [flags]

  --model DIR          model directory (default ../shared/models/mix-27m)
  --text FILE          text (default DIR/val_shared.txt)
  --task T             ppl | needle | attn-error
  --policies a,b       policies (compositions as base+stage), default full,streaming-llm,h2o,snapkv,tova,knorm,uniform
                       options as name:key=value:key=value (e.g. balancekv:gamma=0:temp=0.1)
  --ratios 0.5,0.25    budgets as fractions of the full f16 cache's bytes (default 1/2,1/4,1/8,1/16)
  --precisions f16     compressed-tier formats (f32,f16,int8,int4,int2; default f16)
  --tokens N           context length (default 2048)
  --seeds N            seeds (text windows / needles / samplers) (default 3)
  --seed-start N       first seed (default 0; split a sweep over processes, merge with edgekv eval-report)
  --sink N --window N  exact sink and recent-window tokens (default 4, 32)
  --depths 0.1,0.5     needle depths (default 0.1,0.3,0.5,0.7,0.9)
  --contexts 2048,4000 needle context lengths (default --tokens)
  --layers 0,4,7       attn-error layers (default first, middle, last)
  --future N           attn-error future queries (default 128)
  --planner P          budget planner: uniform | pyramid | quantized | baklava:PROFILE.json | adakv:PROFILE.json (default uniform)
  --hadamard           rotate before quantizing
  --out FILE.json      also write JSON (+ .svg plots and .md table beside it)
  --title S            plot title
  --json               one JSON document on stdout
  --prefill MODE       needle/attn-error: oneshot (exact prompt, one append per layer: the papers' setting)
                       or stream (token by token, compressing as the prompt arrives) (default oneshot)
  --no-reference       ppl/needle: no exact-attention rows in the output (split sweeps)
  --no-progress        no progress output on stderr`;

export function parseEvalArgs(argv: string[]): EvalOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        model: { type: 'string' }, text: { type: 'string' }, task: { type: 'string' },
        policies: { type: 'string' }, ratios: { type: 'string' }, precisions: { type: 'string' },
        tokens: { type: 'string' }, seeds: { type: 'string' }, 'seed-start': { type: 'string' }, json: { type: 'boolean' },
        out: { type: 'string' }, sink: { type: 'string' }, window: { type: 'string' },
        depths: { type: 'string' }, contexts: { type: 'string' }, layers: { type: 'string' },
        future: { type: 'string' }, planner: { type: 'string' }, hadamard: { type: 'boolean' },
        'no-progress': { type: 'boolean' }, 'no-reference': { type: 'boolean' }, prefill: { type: 'string' }, title: { type: 'string' }, 'eval-from': { type: 'string' },
      },
    });
  } catch (e) {
    throw new EdgeKVError('E_ARG', `edgekv eval: ${(e as Error).message}\n${EVAL_HELP}`);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v.task === undefined) throw argError('--task', undefined, TASKS.join(' | '));
  if (!TASKS.includes(v.task as Task)) throw argError('--task', v.task, TASKS.join(' | '));
  const precisions = list(v.precisions ?? 'f16', '--precisions');
  for (const p of precisions) if (!FORMATS.includes(p as Format)) throw argError('--precisions', p, FORMATS.join(', '));
  const tokens = int(v.tokens, '--tokens', 64, 1 << 20, 2048);
  return {
    task: v.task as Task,
    model: v.model,
    text: v.text,
    policies: list(v.policies ?? 'full,streaming-llm,h2o,snapkv,tova,knorm,uniform', '--policies'),
    ratios: numList(v.ratios, '--ratios', 1e-4, 1, [1 / 2, 1 / 4, 1 / 8, 1 / 16]),
    precisions: precisions as Format[],
    tokens,
    seeds: int(v.seeds, '--seeds', 1, 1000, 3),
    seedStart: int(v['seed-start'], '--seed-start', 0, 1 << 20, 0),
    json: !!v.json,
    out: v.out,
    sinkTokens: int(v.sink, '--sink', 0, 1 << 16, 4),
    windowTokens: int(v.window, '--window', 0, 1 << 16, 32),
    depths: numList(v.depths, '--depths', 0, 1, [0.1, 0.3, 0.5, 0.7, 0.9]),
    contexts: v.contexts ? numList(v.contexts, '--contexts', 64, 1 << 20, []).map(Math.round) : [tokens],
    layers: v.layers ? numList(v.layers, '--layers', 0, 1024, []).map(Math.round) : undefined,
    futureQueries: int(v.future, '--future', 1, 1 << 16, 128),
    evalFrom: v['eval-from'] ? numList(v['eval-from'], '--eval-from', 0, 0.99, [])[0] : 0.5,
    planner: v.planner ?? 'uniform',
    hadamard: !!v.hadamard,
    progress: !v['no-progress'],
    noReference: !!v['no-reference'],
    prefill: v.prefill === undefined ? 'oneshot' : (['oneshot', 'stream'].includes(v.prefill) ? v.prefill as 'oneshot' | 'stream' : (() => { throw argError('--prefill', v.prefill, 'oneshot | stream'); })()),
    title: v.title,
  };
}

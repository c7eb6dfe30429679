/**
 * `config.json` of a Hugging Face Llama-family checkpoint (`LlamaForCausalLM`), read and
 * validated. Fields absent from the file take transformers' `LlamaConfig` defaults
 * (num_key_value_heads = num_attention_heads, head_dim = hidden_size / heads,
 * rope_theta 10000, rms_norm_eps 1e-6, tie_word_embeddings false). What this runner
 * cannot run (another architecture, biases, RoPE scaling, another activation) is
 * refused with `E_UNSUPPORTED` naming the field; a malformed file with `E_MODEL`.
 */
import { EdgeKVError } from '../errors.ts';

/** The validated geometry and hyper-parameters the runner uses. */
export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  qHeads: number;
  kvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  /** End-of-sequence ids (config's `eos_token_id`, a number or a list). */
  eosTokenIds: number[];
  /** The raw JSON, for fields the runner does not use. */
  raw: Record<string, unknown>;
}

/** Model types whose HF implementation is the Llama forward pass this runner computes. */
export const SUPPORTED_MODEL_TYPES = ['llama'] as const;
/** transformers' LlamaConfig defaults. */
const DEFAULT_ROPE_THETA = 10000;
const DEFAULT_RMS_EPS = 1e-6;
const DEFAULT_MAX_POSITIONS = 2048;

function bad(file: string, field: string, msg: string): never {
  throw new EdgeKVError('E_MODEL', `${file}: field "${field}" ${msg}`, field);
}
function unsupported(file: string, field: string, msg: string): never {
  throw new EdgeKVError('E_UNSUPPORTED', `${file}: field "${field}" ${msg}`, field);
}

function posInt(raw: Record<string, unknown>, file: string, field: string, dflt?: number): number {
  const v = raw[field] ?? dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) bad(file, field, `must be a positive integer, got ${JSON.stringify(raw[field])}`);
  return v;
}

function posNum(raw: Record<string, unknown>, file: string, field: string, dflt: number): number {
  const v = raw[field] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) bad(file, field, `must be a positive number, got ${JSON.stringify(raw[field])}`);
  return v;
}

/** Parse and validate `config.json` text; `file` names it in errors. */
export function parseLlamaConfig(text: string, file = 'config.json'): LlamaConfig {
  let raw: unknown;
  try { raw = JSON.parse(text); } catch (e) { throw new EdgeKVError('E_MODEL', `${file}: not valid JSON (${(e as Error).message})`, file); }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new EdgeKVError('E_MODEL', `${file}: must be a JSON object`, file);
  const c = raw as Record<string, unknown>;
  const modelType = c.model_type;
  if (!(SUPPORTED_MODEL_TYPES as readonly unknown[]).includes(modelType)) {
    unsupported(file, 'model_type', `= ${JSON.stringify(modelType)} is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')}; the runner computes the Llama forward pass)`);
  }
  const arch = c.architectures;
  if (arch !== undefined && (!Array.isArray(arch) || !arch.includes('LlamaForCausalLM'))) {
    unsupported(file, 'architectures', `= ${JSON.stringify(arch)}: only LlamaForCausalLM is supported`);
  }
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') unsupported(file, 'hidden_act', `= ${JSON.stringify(act)}: only "silu" (SwiGLU) is supported`);
  for (const f of ['attention_bias', 'mlp_bias'] as const) {
    if (c[f] !== undefined && c[f] !== false) unsupported(file, f, `= ${JSON.stringify(c[f])}: biases are not supported`);
  }
  const scaling = c.rope_scaling ?? null;
  const ropeParams = (c.rope_parameters ?? null) as Record<string, unknown> | null;
  const ropeType = scaling && typeof scaling === 'object' ? ((scaling as Record<string, unknown>).rope_type ?? (scaling as Record<string, unknown>).type) : ropeParams?.rope_type;
  if (scaling !== null && ropeType !== 'default') unsupported(file, 'rope_scaling', `= ${JSON.stringify(scaling)}: RoPE scaling is not supported (only the default RoPE)`);
  if (ropeParams && ropeParams.rope_type !== undefined && ropeParams.rope_type !== 'default') {
    unsupported(file, 'rope_parameters.rope_type', `= ${JSON.stringify(ropeParams.rope_type)}: only "default" RoPE is supported`);
  }
  const hiddenSize = posInt(c, file, 'hidden_size');
  const qHeads = posInt(c, file, 'num_attention_heads');
  const kvHeads = posInt(c, file, 'num_key_value_heads', qHeads);
  if (qHeads % kvHeads !== 0) bad(file, 'num_key_value_heads', `= ${kvHeads} must divide num_attention_heads = ${qHeads}`);
  const headDim = posInt(c, file, 'head_dim', Math.floor(hiddenSize / qHeads));
  if (headDim % 2 !== 0) bad(file, 'head_dim', `= ${headDim} must be even (RoPE rotates pairs)`);
  const ropeTheta = posNum(c, file, 'rope_theta', typeof ropeParams?.rope_theta === 'number' ? ropeParams.rope_theta : DEFAULT_ROPE_THETA);
  const eos = c.eos_token_id;
  let eosTokenIds: number[] = [];
  if (typeof eos === 'number') eosTokenIds = [eos];
  else if (Array.isArray(eos) && eos.every((x) => typeof x === 'number')) eosTokenIds = eos as number[];
  else if (eos !== undefined && eos !== null) bad(file, 'eos_token_id', `must be an integer or a list of integers, got ${JSON.stringify(eos)}`);
  const bos = c.bos_token_id;
  if (bos !== undefined && bos !== null && typeof bos !== 'number') bad(file, 'bos_token_id', `must be an integer, got ${JSON.stringify(bos)}`);
  const tie = c.tie_word_embeddings ?? false;
  if (typeof tie !== 'boolean') bad(file, 'tie_word_embeddings', `must be true or false, got ${JSON.stringify(tie)}`);
  return {
    vocabSize: posInt(c, file, 'vocab_size'),
    hiddenSize,
    intermediateSize: posInt(c, file, 'intermediate_size'),
    layers: posInt(c, file, 'num_hidden_layers'),
    qHeads,
    kvHeads,
    headDim,
    rmsNormEps: posNum(c, file, 'rms_norm_eps', DEFAULT_RMS_EPS),
    ropeTheta,
    maxPositions: posInt(c, file, 'max_position_embeddings', DEFAULT_MAX_POSITIONS),
    tieWordEmbeddings: tie,
    bosTokenId: typeof bos === 'number' ? bos : null,
    eosTokenIds,
    raw: c,
  };
}

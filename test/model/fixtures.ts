/**
 * Test fixtures for the model runner: safetensors files built from scratch, a tiny random
 * Llama checkpoint written to a temp directory, and a float64 reference forward pass over
 * the kernels' references (src/reference/matmul.ts).
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { numberToF16 } from '../../src/reference/basic.ts';
import {
  attendExactRef, embedRef, matmulRef, rmsNormRef, ropeInvFreq, ropeRef, swigluRef, type RefWeights,
} from '../../src/reference/matmul.ts';
import { resolveModelDir } from '../../src/model/paths.ts';
import { mulberry32 as rng } from '../../src/model/sampling.ts';
/** Deterministic PRNG (mulberry32). */
export { rng };

export type FixtureDType = 'F32' | 'F16' | 'BF16';

export interface FixtureTensor {
  name: string;
  dtype: FixtureDType | string;
  shape: number[];
  data: Uint8Array;
}

/** Bytes of a safetensors file holding `tensors` in order. */
export function safetensorsBytes(tensors: FixtureTensor[], metadata: Record<string, string> = { format: 'pt' }): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let p = 8 + hb.length;
  for (const t of tensors) { out.set(t.data, p); p += t.data.byteLength; }
  return out;
}

/** bf16 bits of x (round to nearest even). */
export function numberToBF16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Value of bf16 bits. */
export function bf16ToNumber(h: number): number {
  const u = new Uint32Array([h << 16]);
  return new Float32Array(u.buffer)[0];
}

/** A tensor of `values` stored as `dtype`; also returns the stored values for references. */
export function encodeTensor(name: string, dtype: FixtureDType, shape: number[], values: ArrayLike<number>): { tensor: FixtureTensor; ref: RefWeights } {
  if (dtype === 'F32') {
    const a = Float32Array.from(values);
    return { tensor: { name, dtype, shape, data: new Uint8Array(a.buffer) }, ref: a };
  }
  if (dtype === 'F16') {
    const a = Uint16Array.from(values, numberToF16);
    return { tensor: { name, dtype, shape, data: new Uint8Array(a.buffer) }, ref: a };
  }
  const a = Uint16Array.from(values, numberToBF16);
  return { tensor: { name, dtype, shape, data: new Uint8Array(a.buffer) }, ref: Float32Array.from(a, bf16ToNumber) };
}

/** Geometry of the tiny test model (odd sizes on purpose: SIMD tails everywhere). */
export interface TinyGeometry {
  vocab: number; hidden: number; inter: number; layers: number; qHeads: number; kvHeads: number; headDim: number;
}
export const TINY: TinyGeometry = { vocab: 12, hidden: 22, inter: 37, layers: 2, qHeads: 4, kvHeads: 2, headDim: 6 };

/** A tiny SentencePiece-style tokenizer.json over the letters a, b, c. */
export function tinyTokenizerJson(): Record<string, unknown> {
  const vocab = ['<unk>', '<s>', '</s>', '\u2581', 'a', 'b', 'c', '\u2581a', 'ab', '\u2581ab', 'bc', 'abc'];
  return {
    version: '1.0',
    added_tokens: [0, 1, 2].map((id) => ({ id, content: vocab[id], special: true, lstrip: false, rstrip: false, normalized: false, single_word: false })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null,
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', unk_token: '<unk>', fuse_unk: true, byte_fallback: false, vocab: Object.fromEntries(vocab.map((t, i) => [t, i])), merges: ['a b', '\u2581 a', '\u2581a b', 'b c', 'ab c'] },
  };
}

/** Weights of a tiny model as the reference sees them (decoded values). */
export interface TinyWeights {
  g: TinyGeometry;
  embed: RefWeights;
  lmHead: RefWeights;
  norm: Float64Array;
  layers: Array<{ ln1: Float64Array; ln2: Float64Array; q: RefWeights; k: RefWeights; v: RefWeights; o: RefWeights; gate: RefWeights; up: RefWeights; down: RefWeights }>;
  theta: number;
  eps: number;
}

/**
 * Write a tiny random Llama checkpoint into a new temp directory. Returns the directory,
 * the weights (for the reference forward) and the tensors (for damage tests).
 */
export function writeTinyModel(options: { dtype?: FixtureDType; tie?: boolean; seed?: number; g?: TinyGeometry } = {}): { dir: string; weights: TinyWeights; tensors: FixtureTensor[]; config: Record<string, unknown> } {
  const g = options.g ?? TINY;
  const dtype = options.dtype ?? 'F16';
  const tie = options.tie ?? true;
  const r = rng(options.seed ?? 1);
  const tensors: FixtureTensor[] = [];
  const mat = (name: string, rows: number, cols: number, scale: number): RefWeights => {
    const vals = Array.from({ length: rows * cols }, () => (r() * 2 - 1) * scale);
    const e = encodeTensor(name, dtype, [rows, cols], vals);
    tensors.push(e.tensor);
    return e.ref;
  };
  const vec = (name: string, len: number): Float64Array => {
    const vals = Array.from({ length: len }, () => 0.5 + r());
    const e = encodeTensor(name, dtype, [len], vals);
    tensors.push(e.tensor);
    const ref = e.ref;
    return Float64Array.from({ length: len }, (_, i) => (ref instanceof Uint16Array && dtype === 'F16' ? decodeF16(ref[i]) : (ref as Float32Array)[i]));
  };
  const qDim = g.qHeads * g.headDim, kvDim = g.kvHeads * g.headDim;
  const embed = mat('model.embed_tokens.weight', g.vocab, g.hidden, 1);
  const layers: TinyWeights['layers'] = [];
  for (let l = 0; l < g.layers; l++) {
    const p = `model.layers.${l}.`;
    layers.push({
      ln1: vec(`${p}input_layernorm.weight`, g.hidden),
      q: mat(`${p}self_attn.q_proj.weight`, qDim, g.hidden, 0.5),
      k: mat(`${p}self_attn.k_proj.weight`, kvDim, g.hidden, 0.5),
      v: mat(`${p}self_attn.v_proj.weight`, kvDim, g.hidden, 0.5),
      o: mat(`${p}self_attn.o_proj.weight`, g.hidden, qDim, 0.3),
      ln2: vec(`${p}post_attention_layernorm.weight`, g.hidden),
      gate: mat(`${p}mlp.gate_proj.weight`, g.inter, g.hidden, 0.4),
      up: mat(`${p}mlp.up_proj.weight`, g.inter, g.hidden, 0.4),
      down: mat(`${p}mlp.down_proj.weight`, g.hidden, g.inter, 0.3),
    });
  }
  const norm = vec('model.norm.weight', g.hidden);
  const lmHead = tie ? embed : mat('lm_head.weight', g.vocab, g.hidden, 0.5);
  const dir = mkdtempSync(join(tmpdir(), 'edgekv-tiny-'));
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: g.vocab, hidden_size: g.hidden,
    intermediate_size: g.inter, num_hidden_layers: g.layers, num_attention_heads: g.qHeads, num_key_value_heads: g.kvHeads,
    head_dim: g.headDim, hidden_act: 'silu', max_position_embeddings: 64, rms_norm_eps: 1e-5, rope_theta: 10000,
    tie_word_embeddings: tie, bos_token_id: 1, eos_token_id: 2, attention_bias: false, mlp_bias: false,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
  writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors));
  return { dir, weights: { g, embed, lmHead, norm, layers, theta: 10000, eps: 1e-5 }, tensors, config };
}

function decodeF16(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Float64 forward pass of the tiny model: logits of every token `[n][vocab]`. */
export function referenceForward(w: TinyWeights, ids: number[]): Float64Array {
  const { g } = w;
  const n = ids.length;
  const qDim = g.qHeads * g.headDim, kvDim = g.kvHeads * g.headDim;
  const inv = ropeInvFreq(w.theta, g.headDim);
  const pos = ids.map((_, i) => i);
  let h = embedRef(w.embed, ids, g.hidden);
  for (const L of w.layers) {
    const x = rmsNormRef(h, L.ln1, g.hidden, n, w.eps);
    const q = ropeRef(matmulRef(L.q, x, qDim, g.hidden, n), pos, inv, n, g.qHeads, g.headDim);
    const k = ropeRef(matmulRef(L.k, x, kvDim, g.hidden, n), pos, inv, n, g.kvHeads, g.headDim);
    const v = matmulRef(L.v, x, kvDim, g.hidden, n);
    const att = new Float64Array(n * qDim);
    for (let t = 0; t < n; t++) {
      att.set(attendExactRef(q.subarray(t * qDim, (t + 1) * qDim), k, v, t + 1, g.qHeads, g.kvHeads, g.headDim, 1 / Math.sqrt(g.headDim)), t * qDim);
    }
    const o = matmulRef(L.o, att, g.hidden, qDim, n);
    h = h.map((a, i) => a + o[i]);
    const x2 = rmsNormRef(h, L.ln2, g.hidden, n, w.eps);
    const act = swigluRef(matmulRef(L.gate, x2, g.inter, g.hidden, n), matmulRef(L.up, x2, g.inter, g.hidden, n));
    const d = matmulRef(L.down, act, g.hidden, g.inter, n);
    h = h.map((a, i) => a + d[i]);
  }
  return matmulRef(w.lmHead, rmsNormRef(h, w.norm, g.hidden, n, w.eps), g.vocab, g.hidden, n);
}

/** The shared model `name` when present, else null (tests then skip with a printed reason). */
export async function sharedModel(name: string): Promise<string | null> {
  const r = await resolveModelDir(name);
  if (r.exists && existsSync(join(r.dir, 'reference.json'))) return r.dir;
  console.log(`  (skipping ${name} tests: ${r.dir} not found; set EDGEKV_MODELS_DIR or place the models at ../shared/models)`);
  return null;
}

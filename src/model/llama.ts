/**
 * Llama-family runner on edgekv's own WASM kernels (`assembly/kernels/matmul.ts`).
 *
 * `await loadModel(dir, { engine })` reads a Hugging Face checkpoint directory
 * (`config.json`, `model.safetensors` or sharded safetensors, `tokenizer.json`) into the
 * engine's arena and returns a `LlamaModel`. Weight storage in WASM memory:
 * - F16 tensors stay f16 (2 bytes per weight, decoded to f32 inside the matvec), each
 *   matrix multiplied by 2^k (k <= 10, exact) so that no weight is an f16 subnormal, with
 *   `scale = 2^-k` applied by the kernels: subnormal operands cost x86 cores a microcode
 *   assist each, which halved decode speed on mix-27m (0.13% of its weights are subnormal);
 * - F32 tensors stay f32;
 * - BF16 tensors are converted to f32 at load (exact; twice the memory of the file);
 * - norm weights are always f32. Non-finite weights are refused (`E_MODEL`).
 *
 * `model.forward(tokens, attention)` runs layer-major over a chunk of tokens: per layer,
 * Q, K, V of the whole chunk with the prefill matmul, RoPE, then for each token in order
 * `attention.append(layer, k_t, v_t, [pos])` followed by `attention.attend(layer, q_t, out)`
 * — exactly how a runtime drives an edgekv cache — then the output projection and the
 * SwiGLU MLP for the whole chunk. All scratch is allocated once per model (for
 * `maxChunk` tokens); the hot path allocates nothing in WASM memory.
 *
 * `forwardAsync` / `generateAsync` are the same computation (one step-by-step core drives
 * both: a generator that yields only where the async path awaits): they await
 * `attention.attendAsync` when the backend has it, and after `await model.useWebGPU(context)`
 * they run the projections of single-token forwards (decode) on the GPU with `WebGPUMatvec`
 * (f16 weights uploaded once; Q/K/V and gate/up one submit each); multi-token chunks
 * (prefill) stay on the WASM kernels. If the GPU goes away, the next call says so once and
 * continues on the WASM kernels (the weights never leave WASM memory).
 *
 * Numerics follow transformers' `LlamaForCausalLM` in float32: RMSNorm
 * `w * (x * rsqrt(mean(x^2) + eps))`, rotate-half RoPE with f32 angles, softmax attention
 * with scale 1/sqrt(headDim), `down(silu(gate(x)) * up(x))`, tied or separate LM head.
 */
import { createEngine, type Engine } from '../engine.ts';
import { EdgeKVError, argError, checkInt, checkKeys } from '../errors.ts';
import type { KernelExports } from '../wasm.ts';
import { parseLlamaConfig, type LlamaConfig } from './config.ts';
import { ExactAttention, type ExactAttentionOptions } from './exact-attention.ts';
import { modelFiles, type ModelFiles } from './paths.ts';
import { readCheckpoint, requireShape, requireTensor, type Checkpoint, type TensorInfo } from './safetensors.ts';
import { Sampler, type SamplingOptions } from './sampling.ts';
import { Tokenizer } from './tokenizer.ts';
import type { AttentionBackend } from './types.ts';
import { ropeInvFreq } from '../reference/matmul.ts';
import { WebGPUContext } from '../webgpu/device.ts';
import { createWebGPUMatvecGroup, type MatvecMatrix, type WebGPUMatvec } from '../webgpu/matvec.ts';

const F32_BYTES = 4;
const F16_BYTES = 2;
const I32_BYTES = 4;
/** f16 exponent field all ones: Inf or NaN. */
const F16_EXP_MASK = 0x7c00;
/** f16 exponent field of the largest finite values. */
const F16_MAX_EXP = 30;
/** Shifting f16 exponents by 10 makes every subnormal (m * 2^-24, m >= 1) normal. */
const F16_SUBNORMAL_SHIFT = 10;
/** f32 exponent field all ones (upper 16 bits of bf16 / f32 bits). */
const BF16_EXP_MASK = 0x7f80;
/** Largest finite f16. */
const F16_MAX = 65504;
/** Tokens per forward chunk (scratch is sized for this). */
export const DEFAULT_MAX_CHUNK = 64;

/** How one weight matrix is stored in WASM memory. */
export type WeightStorage = 'f16' | 'f32';

/** A weight matrix `[rows][cols]` in the arena. */
export interface Weight {
  /** The checkpoint tensor (for errors). */
  name: string;
  ptr: number;
  rows: number;
  cols: number;
  storage: WeightStorage;
  /** f16 only: the stored values are the weights times 1/scale (scale = 2^-k). */
  scale: number;
}

interface LayerWeights {
  ln1: number; // f32 [hidden]
  ln2: number;
  q: Weight; k: Weight; v: Weight; o: Weight;
  gate: Weight; up: Weight; down: Weight;
}

/** Options of `loadModel`. */
export interface LoadModelOptions {
  /** The engine whose kernels and memory the model uses; default: `createEngine()`. */
  engine?: Engine;
  /** Largest number of tokens per forward chunk (scratch size). Default 64. */
  maxChunk?: number;
}

const LOAD_OPTIONS = ['engine', 'maxChunk'] as const;
const FORWARD_OPTIONS = ['allLogits', 'onLogits', 'startPosition', 'logitsOut'] as const;
const GENERATE_OPTIONS = ['maxTokens', 'temperature', 'topK', 'seed', 'stopAtEos', 'eosTokenIds', 'attention', 'onToken', 'addSpecialTokens'] as const;
const WEBGPU_OPTIONS = ['onNotice', 'maxBlockBytes'] as const;

/**
 * Matrices that read the same scratch input, computed together (one GPU submit and read-back
 * when on the GPU). Scratch is token-major: input `[n][cols]`, each output `[n][rows]`.
 */
interface Projection {
  /** Input scratch pointer. */
  x: number;
  cols: number;
  weights: Weight[];
  /** Output scratch pointer of each matrix. */
  outs: number[];
  /** The GPU copy used by single-token async forwards, or null. */
  gpu: WebGPUMatvec | null;
  /** Read-back target `[sum of rows]` while on the GPU. */
  result: Float32Array | null;
}

/** A layer's projection groups, in the order they run. */
const LAYER_PROJECTIONS = ['qkv', 'o', 'gateUp', 'down'] as const;
type LayerProjections = Record<(typeof LAYER_PROJECTIONS)[number], Projection>;

/** The GPU side of `useWebGPU`. */
interface GpuState {
  context: WebGPUContext;
  notice: (message: string) => void;
  matvecs: WebGPUMatvec[];
}

/**
 * The steps of a forward / generate: a generator that yields only the promises the async path
 * awaits (`attendAsync`, GPU matvecs) and receives their results; with `async = false` it
 * never yields and runs to completion in one `next()`.
 */
type Steps<T> = Generator<Promise<unknown>, T, unknown>;

/** Options of `useWebGPU`. */
export interface UseWebGPUOptions {
  /** Called once when the GPU stops working (device lost, context destroyed). Default: `console.warn`. */
  onNotice?: (message: string) => void;
  /**
   * Largest f16 weight block bound to one dispatch (bytes); larger matrices are split by rows.
   * Default and maximum: the device's `maxStorageBufferBindingSize`.
   */
  maxBlockBytes?: number;
}

/** Options of `forward`. */
export interface ForwardOptions {
  /**
   * Return the logits of every token `[tokens][vocab]` (teacher-forced perplexity / KL)
   * instead of only the last token's `[vocab]`. Default false.
   */
  allLogits?: boolean;
  /**
   * Called with each token's logits `[vocab]` as soon as its chunk is done (a view into WASM
   * memory, valid only during the call). Lets long evaluations avoid a `[tokens][vocab]` array.
   */
  onLogits?: (index: number, logits: Float32Array) => void;
  /**
   * Position of `tokens[0]`. Default: the number of tokens this model has already sent
   * through this `attention` object (0 for a fresh one; see `resetAttention`).
   */
  startPosition?: number;
  /** Write the last token's logits here instead of a new array (`[vocab]`). */
  logitsOut?: Float32Array;
}

/** Options of `generate`. */
export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate after the prompt. Default 64. */
  maxTokens?: number;
  /** Stop when an end-of-sequence id is produced (it is kept in the output). Default true. */
  stopAtEos?: boolean;
  /** End-of-sequence ids; default: generation_config.json's, else config.json's `eos_token_id`. */
  eosTokenIds?: number[];
  /** The attention backend (e.g. an edgekv cache); default: a fresh `ExactAttention`, disposed after. */
  attention?: AttentionBackend;
  /** Called after each generated token. */
  onToken?: (id: number, index: number) => void;
  /** When the prompt is text: add the tokenizer's specials (BOS). Default true. */
  addSpecialTokens?: boolean;
}

/** What `generate` returns. */
export interface GenerateResult {
  /** Prompt ids followed by generated ids. */
  ids: number[];
  /** Generated ids only. */
  generated: number[];
  /** Decoded generated text. */
  text: string;
  promptTokens: number;
  /** Wall time of the prefill forward (ms) and its rate. */
  prefillMs: number;
  prefillTokensPerSec: number;
  /** Decode steps (one forward of one token each) and their rate. */
  decodeTokens: number;
  decodeMs: number;
  decodeTokensPerSec: number;
  stoppedBy: 'eos' | 'maxTokens' | 'context';
}

function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}

/** A loaded Llama-family model bound to one engine. */
export class LlamaModel {
  readonly config: LlamaConfig;
  readonly tokenizer: Tokenizer;
  readonly engine: Engine;
  /** Where the model came from. */
  readonly location: string;
  /** Bytes of weights held in WASM memory. */
  readonly weightBytes: number;
  /** Tokens per forward chunk. */
  readonly maxChunk: number;
  /** End-of-sequence ids used by `generate` by default. */
  readonly eosTokenIds: number[];
  /** The checkpoint's dtypes as read, e.g. `{ F16: 65 }`. */
  readonly fileDTypes: Record<string, number>;

  private readonly k: KernelExports;
  private readonly layers: LayerWeights[];
  private readonly embed: Weight;
  private readonly lmHead: Weight;
  private readonly finalNorm: number;
  private readonly invFreq: number;
  private readonly owned: number[];
  private readonly positions = new WeakMap<AttentionBackend, number>();
  private readonly posOne = new Int32Array(1);
  /** Views of scratch handed to the attention backend, re-made only after memory grows. */
  private readonly views = new Map<number, Float32Array>();
  private viewsBuffer: ArrayBufferLike | null = null;
  // scratch (floats unless noted), sized for maxChunk tokens
  private readonly sH: number; private readonly sX: number; private readonly sQ: number;
  private readonly sK: number; private readonly sV: number; private readonly sA: number;
  private readonly sO: number; private readonly sG: number; private readonly sU: number;
  private readonly sIds: number; private readonly sPos: number; private readonly sLogits: number;
  private readonly projections: LayerProjections[];
  private readonly head: Projection;
  /** Every projection: the layers' in order, then the LM head. */
  private readonly allProjections: Projection[];
  private gpu: GpuState | null = null;
  /** The async call in flight (`forwardAsync`, `generateAsync`, `useWebGPU`): it owns the scratch. */
  private asyncCall: string | null = null;
  private disposed = false;

  /** @internal use `loadModel`. */
  constructor(args: {
    config: LlamaConfig; tokenizer: Tokenizer; engine: Engine; location: string; maxChunk: number;
    eosTokenIds: number[]; layers: LayerWeights[]; embed: Weight; lmHead: Weight; finalNorm: number;
    owned: number[]; weightBytes: number; fileDTypes: Record<string, number>;
  }) {
    this.config = args.config;
    this.tokenizer = args.tokenizer;
    this.engine = args.engine;
    this.k = args.engine.kernels;
    this.location = args.location;
    this.maxChunk = args.maxChunk;
    this.eosTokenIds = args.eosTokenIds;
    this.layers = args.layers;
    this.embed = args.embed;
    this.lmHead = args.lmHead;
    this.finalNorm = args.finalNorm;
    this.owned = args.owned;
    this.weightBytes = args.weightBytes;
    this.fileDTypes = args.fileDTypes;
    const c = this.config, C = this.maxChunk, a = this.engine.arena;
    const alloc = (bytes: number): number => { const p = a.alloc(bytes); this.owned.push(p); return p; };
    const qDim = c.qHeads * c.headDim, kvDim = c.kvHeads * c.headDim;
    this.sH = alloc(C * c.hiddenSize * F32_BYTES);
    this.sX = alloc(C * c.hiddenSize * F32_BYTES);
    this.sQ = alloc(C * qDim * F32_BYTES);
    this.sK = alloc(C * kvDim * F32_BYTES);
    this.sV = alloc(C * kvDim * F32_BYTES);
    this.sA = alloc(C * qDim * F32_BYTES);
    this.sO = alloc(C * c.hiddenSize * F32_BYTES);
    this.sG = alloc(C * c.intermediateSize * F32_BYTES);
    this.sU = alloc(C * c.intermediateSize * F32_BYTES);
    this.sIds = alloc(C * I32_BYTES);
    this.sPos = alloc(C * I32_BYTES);
    this.sLogits = alloc(C * c.vocabSize * F32_BYTES);
    const inv = ropeInvFreq(c.ropeTheta, c.headDim);
    this.invFreq = alloc(inv.byteLength);
    this.engine.f32(this.invFreq, inv.length).set(inv);
    const proj = (x: number, cols: number, weights: Weight[], outs: number[]): Projection => ({ x, cols, weights, outs, gpu: null, result: null });
    this.projections = this.layers.map((L) => ({
      qkv: proj(this.sX, c.hiddenSize, [L.q, L.k, L.v], [this.sQ, this.sK, this.sV]),
      o: proj(this.sA, qDim, [L.o], [this.sO]),
      gateUp: proj(this.sX, c.hiddenSize, [L.gate, L.up], [this.sG, this.sU]),
      down: proj(this.sG, c.intermediateSize, [L.down], [this.sO]),
    }));
    this.head = proj(this.sX, c.hiddenSize, [this.lmHead], [this.sLogits]);
    this.allProjections = [...this.projections.flatMap((P) => LAYER_PROJECTIONS.map((key) => P[key])), this.head];
  }

  /**
   * The WebGPU context whose GPU computes the single-token projections of `forwardAsync` /
   * `generateAsync` (see `useWebGPU`), or null when every matvec runs on the WASM kernels.
   */
  get webgpu(): WebGPUContext | null {
    return this.gpu !== null && gpuProblem(this.gpu.context) === null ? this.gpu.context : null;
  }

  /** A fresh exact (uncompressed) attention backend for this model's geometry. */
  createExactAttention(options: ExactAttentionOptions = {}): ExactAttention {
    const c = this.config;
    return new ExactAttention(this.engine, { layers: c.layers, qHeads: c.qHeads, kvHeads: c.kvHeads, headDim: c.headDim }, options);
  }

  /** Reset `attention` (when it can) and this model's position count for it. */
  resetAttention(attention: AttentionBackend): void {
    attention.reset?.();
    this.positions.delete(attention);
  }

  /** Position the next token sent through `attention` will get. */
  positionOf(attention: AttentionBackend): number {
    return this.positions.get(attention) ?? 0;
  }

  /**
   * Run `tokens` through the model, appending their keys and values to `attention` and
   * attending with each token's queries. Returns the last token's logits `[vocab]`, or with
   * `allLogits` every token's `[tokens][vocab]`. Always on the WASM kernels.
   */
  forward(tokens: ArrayLike<number>, attention: AttentionBackend, options: ForwardOptions = {}): Float32Array {
    return this.drive('forward', this.forwardSteps(tokens, attention, options, false));
  }

  /**
   * `forward`, asynchronously: same validation, options and result. Awaits
   * `attention.attendAsync` when the backend has it (else calls `attend`); after `useWebGPU`,
   * a single-token call (decode) computes its projections and LM head on the GPU, a longer
   * one (prefill) stays on the WASM kernels. One async call at a time per model: the others
   * (sync ones included) throw `E_STATE` until it settles.
   */
  forwardAsync(tokens: ArrayLike<number>, attention: AttentionBackend, options: ForwardOptions = {}): Promise<Float32Array> {
    return this.driveAsync('forwardAsync', () => this.forwardSteps(tokens, attention, options, true));
  }

  /** Run sync steps (they never yield). */
  private drive<T>(what: string, steps: Steps<T>): T {
    this.checkIdle(what);
    const r = steps.next();
    if (!r.done) throw new EdgeKVError('E_STATE', `${what}: internal error: a synchronous step waited`);
    return r.value;
  }

  /** Run steps, awaiting what they yield; a rejection is thrown into them (their `finally` runs). */
  private async driveAsync<T>(what: string, start: () => Steps<T>): Promise<T> {
    this.checkIdle(what);
    this.asyncCall = what;
    try {
      if (this.gpu !== null) {
        const problem = gpuProblem(this.gpu.context);
        if (problem !== null) this.dropWebGPU(problem);
      }
      const steps = start();
      let r = steps.next();
      while (!r.done) {
        let value: unknown;
        try {
          value = await r.value;
        } catch (e) {
          r = steps.throw(e);
          continue;
        }
        r = steps.next(value);
      }
      return r.value;
    } finally {
      this.asyncCall = null;
    }
  }

  private *forwardSteps(tokens: ArrayLike<number>, attention: AttentionBackend, options: ForwardOptions, async: boolean): Steps<Float32Array> {
    this.checkLive();
    if (options === null || typeof options !== 'object') throw argError('options', options, 'an object');
    checkKeys('options', options, FORWARD_OPTIONS);
    const c = this.config;
    if (!tokens || typeof tokens.length !== 'number' || tokens.length < 1) throw argError('tokens', tokens, 'a non-empty array of token ids');
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (!Number.isInteger(t) || t < 0 || t >= c.vocabSize) throw argError(`tokens[${i}]`, t, `an integer token id in [0, ${c.vocabSize - 1}]`);
    }
    if (!attention || typeof attention.append !== 'function' || typeof attention.attend !== 'function') {
      throw argError('attention', attention, 'an AttentionBackend (append, attend), e.g. model.createExactAttention() or an edgekv cache');
    }
    const start = options.startPosition ?? this.positions.get(attention) ?? 0;
    checkInt('options.startPosition', start, 0, 2 ** 31 - 1 - tokens.length);
    const n = tokens.length;
    if (options.logitsOut !== undefined && (!(options.logitsOut instanceof Float32Array) || options.logitsOut.length !== c.vocabSize)) {
      throw argError('options.logitsOut', options.logitsOut, `a Float32Array of length vocab = ${c.vocabSize}`);
    }
    if (options.onLogits !== undefined && typeof options.onLogits !== 'function') throw argError('options.onLogits', options.onLogits, 'a function');
    const all = options.allLogits === true;
    const result = all ? new Float32Array(n * c.vocabSize) : (options.logitsOut ?? new Float32Array(c.vocabSize));
    for (let off = 0; off < n; off += this.maxChunk) {
      const m = Math.min(this.maxChunk, n - off);
      const last = off + m === n;
      const wantAll = all || options.onLogits !== undefined;
      yield* this.chunkSteps(tokens, off, m, start + off, attention, wantAll, async);
      this.positions.set(attention, start + off + m);
      if (wantAll) {
        const view = this.engine.f32(this.sLogits, m * c.vocabSize);
        if (all) result.set(view, off * c.vocabSize);
        if (options.onLogits) {
          for (let t = 0; t < m; t++) options.onLogits(off + t, this.engine.f32(this.sLogits + t * c.vocabSize * F32_BYTES, c.vocabSize));
        }
        if (last && !all) result.set(this.engine.f32(this.sLogits + (m - 1) * c.vocabSize * F32_BYTES, c.vocabSize));
      } else if (last) {
        result.set(this.engine.f32(this.sLogits, c.vocabSize));
      }
    }
    return result;
  }

  /**
   * One chunk of m <= maxChunk tokens at positions pos0 ... pos0 + m - 1. With `async`, awaits
   * `attendAsync` when the backend has it and, for m = 1, runs the projections on the GPU.
   */
  private *chunkSteps(tokens: ArrayLike<number>, off: number, m: number, pos0: number, attention: AttentionBackend, allLogits: boolean, async: boolean): Steps<void> {
    const c = this.config, k = this.k, e = this.engine;
    const hidden = c.hiddenSize, inter = c.intermediateSize;
    const qDim = c.qHeads * c.headDim, kvDim = c.kvHeads * c.headDim;
    const onGpu = async && m === 1;
    const attendAsync = async && typeof attention.attendAsync === 'function';
    const ids = e.i32(this.sIds, m), pos = e.i32(this.sPos, m);
    for (let t = 0; t < m; t++) { ids[t] = tokens[off + t]; pos[t] = pos0 + t; }
    if (this.embed.storage === 'f16') k.embedF16(this.embed.ptr, this.sIds, m, hidden, this.sH, this.embed.scale);
    else k.embedF32(this.embed.ptr, this.sIds, m, hidden, this.sH);
    const eps = c.rmsNormEps;
    for (let l = 0; l < this.layers.length; l++) {
      const L = this.layers[l], P = this.projections[l];
      k.rmsNormF32(this.sH, L.ln1, this.sX, hidden, m, eps);
      if (onGpu && P.qkv.gpu) yield this.gpuProject(P.qkv); else this.wasmProject(P.qkv, m);
      k.ropeRotateHalfF32(this.sQ, this.sPos, this.invFreq, m, c.qHeads, c.headDim);
      k.ropeRotateHalfF32(this.sK, this.sPos, this.invFreq, m, c.kvHeads, c.headDim);
      for (let t = 0; t < m; t++) {
        this.posOne[0] = pos0 + t;
        // Views are taken right before each call: append may grow memory (detaching old views).
        attention.append(l, this.view(this.sK + t * kvDim * F32_BYTES, kvDim), this.view(this.sV + t * kvDim * F32_BYTES, kvDim), this.posOne);
        const out = this.view(this.sA + t * qDim * F32_BYTES, qDim);
        const q = this.view(this.sQ + t * qDim * F32_BYTES, qDim);
        const res = attendAsync ? (yield attention.attendAsync!(l, q, out)) as Float32Array : attention.attend(l, q, out);
        if (res !== out) {
          if (!(res instanceof Float32Array) || res.length !== qDim) {
            throw new EdgeKVError('E_STATE', `attention.${attendAsync ? 'attendAsync' : 'attend'}(layer ${l}) returned ${res instanceof Float32Array ? `length ${res.length}` : String(res)}; expected a Float32Array of length qHeads * headDim = ${qDim}`, 'attention');
          }
          this.view(this.sA + t * qDim * F32_BYTES, qDim).set(res);
        }
      }
      if (onGpu && P.o.gpu) yield this.gpuProject(P.o); else this.wasmProject(P.o, m);
      k.addF32(this.sH, this.sO, m * hidden);
      k.rmsNormF32(this.sH, L.ln2, this.sX, hidden, m, eps);
      if (onGpu && P.gateUp.gpu) yield this.gpuProject(P.gateUp); else this.wasmProject(P.gateUp, m);
      k.swigluF32(this.sG, this.sU, this.sG, m * inter);
      if (onGpu && P.down.gpu) yield this.gpuProject(P.down); else this.wasmProject(P.down, m);
      k.addF32(this.sH, this.sO, m * hidden);
    }
    if (allLogits) {
      k.rmsNormF32(this.sH, this.finalNorm, this.sX, hidden, m, eps);
    } else {
      const lastH = this.sH + (m - 1) * hidden * F32_BYTES;
      k.rmsNormF32(lastH, this.finalNorm, this.sX, hidden, 1, eps);
    }
    if (onGpu && this.head.gpu) yield this.gpuProject(this.head); else this.wasmProject(this.head, allLogits ? m : 1);
  }

  /** A cached f32 view of `len` floats at `ptr` (scratch offsets repeat every chunk / token). */
  private view(ptr: number, len: number): Float32Array {
    const buf = this.engine.memory.buffer;
    if (buf !== this.viewsBuffer) { this.views.clear(); this.viewsBuffer = buf; }
    let v = this.views.get(ptr);
    if (v === undefined || v.length !== len) { v = new Float32Array(buf, ptr, len); this.views.set(ptr, v); }
    return v;
  }

  /** `p`'s matrices over `n` tokens on the WASM kernels. */
  private wasmProject(p: Projection, n: number): void {
    for (let i = 0; i < p.weights.length; i++) this.matmul(p.weights[i], p.x, p.outs[i], n);
  }

  /**
   * `p`'s matrices for one token on the GPU (one submit, one read-back), results copied into
   * the output scratch. A non-finite input (WGSL leaves NaN / Inf arithmetic undefined) is
   * computed on the WASM kernels; a GPU failure drops the GPU (one notice) and computes this
   * and every later projection on the WASM kernels.
   */
  private async gpuProject(p: Projection): Promise<void> {
    try {
      const y = await p.gpu!.run(this.view(p.x, p.cols), p.result!);
      for (let i = 0, off = 0; i < p.weights.length; i++) {
        const rows = p.weights[i].rows;
        this.engine.f32(p.outs[i], rows).set(y.subarray(off, off + rows));
        off += rows;
      }
    } catch (e) {
      if (!(e instanceof EdgeKVError)) throw e;
      if (e.code === 'E_BACKEND' || e.code === 'E_STATE') this.dropWebGPU(e.message);
      else if (e.code !== 'E_NONFINITE') throw e;
      this.wasmProject(p, 1);
    }
  }

  private matmul(w: Weight, x: number, y: number, n: number): void {
    const k = this.k;
    if (w.storage === 'f16') {
      if (n === 1) k.matvecF16(w.ptr, x, y, w.rows, w.cols, w.scale);
      else k.matmulF16(w.ptr, x, y, w.rows, w.cols, n, w.scale);
    } else if (n === 1) k.matvecF32(w.ptr, x, y, w.rows, w.cols);
    else k.matmulF32(w.ptr, x, y, w.rows, w.cols, n);
  }

  /**
   * Generate from `prompt` (text, or token ids): one prefill forward over the prompt, then
   * one forward per new token. Greedy by default; `temperature` / `topK` / `seed` sample.
   * Prefill and decode speeds are measured separately.
   */
  generate(prompt: string | ArrayLike<number>, options: GenerateOptions = {}): GenerateResult {
    return this.drive('generate', this.generateSteps(prompt, options, false));
  }

  /**
   * `generate`, asynchronously: same options, sampling and result (timings included), every
   * forward through `forwardAsync`'s path (decode on the GPU after `useWebGPU`, prefill on the
   * WASM kernels; `attendAsync` awaited when the attention backend has it).
   */
  generateAsync(prompt: string | ArrayLike<number>, options: GenerateOptions = {}): Promise<GenerateResult> {
    return this.driveAsync('generateAsync', () => this.generateSteps(prompt, options, true));
  }

  private *generateSteps(prompt: string | ArrayLike<number>, options: GenerateOptions, async: boolean): Steps<GenerateResult> {
    this.checkLive();
    if (options === null || typeof options !== 'object') throw argError('options', options, 'an object');
    checkKeys('options', options, GENERATE_OPTIONS);
    const maxTokens = checkInt('maxTokens', options.maxTokens ?? 64, 0, 1 << 24);
    const sampler = new Sampler(options);
    const promptIds = typeof prompt === 'string'
      ? this.tokenizer.encode(prompt, { addSpecialTokens: options.addSpecialTokens !== false })
      : Array.from(prompt);
    if (promptIds.length === 0) throw argError('prompt', prompt, 'a non-empty prompt (text that encodes to at least one token, or token ids)');
    const eos = options.eosTokenIds ?? this.eosTokenIds;
    const stopAtEos = options.stopAtEos !== false;
    const ownAttention = options.attention === undefined;
    const attention = options.attention ?? this.createExactAttention({ initialCapacity: Math.max(16, promptIds.length + maxTokens) });
    const start = ownAttention ? 0 : this.positionOf(attention);
    const logits = new Float32Array(this.config.vocabSize);
    const generated: number[] = [];
    let stoppedBy: GenerateResult['stoppedBy'] = 'maxTokens';
    let prefillMs = 0, decodeMs = 0;
    try {
      let t0 = now();
      yield* this.forwardSteps(promptIds, attention, { startPosition: start, logitsOut: logits }, async);
      prefillMs = now() - t0;
      let pos = start + promptIds.length;
      t0 = now();
      for (let i = 0; i < maxTokens; i++) {
        const next = sampler.next(logits);
        generated.push(next);
        options.onToken?.(next, i);
        if (stopAtEos && eos.includes(next)) { stoppedBy = 'eos'; break; }
        if (i === maxTokens - 1) break;
        if (pos >= this.config.maxPositions) { stoppedBy = 'context'; break; }
        yield* this.forwardSteps([next], attention, { startPosition: pos, logitsOut: logits }, async);
        pos++;
      }
      decodeMs = now() - t0;
    } finally {
      if (ownAttention) (attention as ExactAttention).dispose();
    }
    const decodeTokens = Math.max(0, generated.length - 1);
    return {
      ids: [...promptIds, ...generated],
      generated,
      text: this.tokenizer.decode(generated),
      promptTokens: promptIds.length,
      prefillMs,
      prefillTokensPerSec: prefillMs > 0 ? (promptIds.length * 1000) / prefillMs : Infinity,
      decodeTokens,
      decodeMs,
      decodeTokensPerSec: decodeMs > 0 ? (decodeTokens * 1000) / decodeMs : Infinity,
      stoppedBy,
    };
  }

  /**
   * Upload every projection (Q, K, V, O, gate, up, down of each layer, and the LM head) to the
   * GPU of `context` as f16, once, for the single-token forwards of `forwardAsync` /
   * `generateAsync`. f16 weights go as stored (with their power-of-two `scale`, so the GPU
   * computes the WASM kernels' y up to summation order); f32 weights (f32 / bf16 checkpoints)
   * are rounded to f16 (`E_UNSUPPORTED` naming the tensor when a value is outside the f16
   * range). A matrix larger than the device's `maxStorageBufferBindingSize` is split by rows.
   * The weights stay in WASM memory: sync calls and prefill use them, and so does every call
   * after the GPU is lost. Calling it again replaces the previous upload; a rejected call
   * changes nothing. `context` stays the caller's (`releaseWebGPU` / `dispose` free only the
   * buffers made here).
   */
  async useWebGPU(context: WebGPUContext, options: UseWebGPUOptions = {}): Promise<void> {
    this.checkLive();
    this.checkIdle('useWebGPU');
    if (!(context instanceof WebGPUContext)) throw argError('context', context, 'a WebGPUContext (await createWebGPUContext({ gpu }))');
    if (options === null || typeof options !== 'object') throw argError('options', options, 'an object');
    checkKeys('options', options, WEBGPU_OPTIONS);
    if (options.onNotice !== undefined && typeof options.onNotice !== 'function') throw argError('options.onNotice', options.onNotice, 'a function (message: string) => void');
    context.check('useWebGPU');
    const notice = options.onNotice ?? ((m: string) => console.warn(`[edgekv] ${m}`));
    this.asyncCall = 'useWebGPU';
    const matvecs: WebGPUMatvec[] = []; // one per entry of allProjections
    try {
      for (const p of this.allProjections) {
        // one projection's f16 copies at a time: the transient JS memory is one group's weights
        const matrices: MatvecMatrix[] = p.weights.map((w) => ({ rows: w.rows, name: w.name, ...this.f16Weights(w) }));
        matvecs.push(await createWebGPUMatvecGroup({ context, cols: p.cols, matrices, maxBlockBytes: options.maxBlockBytes }));
      }
      this.checkLive();
    } catch (e) {
      for (const mv of matvecs) mv.destroy();
      throw e;
    } finally {
      this.asyncCall = null;
    }
    this.releaseGpu();
    this.allProjections.forEach((p, i) => { p.gpu = matvecs[i]; p.result = new Float32Array(matvecs[i].rows); });
    this.gpu = { context, notice, matvecs };
  }

  /** Free the GPU buffers of `useWebGPU` (not the context); every matvec runs on the WASM kernels again. */
  releaseWebGPU(): void {
    this.checkIdle('releaseWebGPU');
    this.releaseGpu();
  }

  /** The binary16 copy of `w` for the GPU and the scale its outputs need. */
  private f16Weights(w: Weight): { weights: Uint16Array; scale: number } {
    const n = w.rows * w.cols;
    if (w.storage === 'f16') return { weights: this.engine.u16(w.ptr, n).slice(), scale: w.scale };
    const tmp = this.engine.arena.alloc(n * F16_BYTES);
    let h: Uint16Array;
    try {
      this.k.f32ToF16(w.ptr, tmp, n);
      h = this.engine.u16(tmp, n).slice();
    } finally {
      this.engine.arena.free(tmp);
    }
    const bad = firstNonFiniteF16(h); // the weights are finite (checked at load): this is overflow
    if (bad >= 0) {
      const v = this.engine.f32(w.ptr, n)[bad];
      throw new EdgeKVError('E_UNSUPPORTED', `useWebGPU: tensor ${JSON.stringify(w.name)} holds ${v} at row ${Math.floor(bad / w.cols)}, column ${bad % w.cols}, outside the f16 range [-${F16_MAX}, ${F16_MAX}] of the WebGPU matvec; run this model on the WASM kernels (do not call useWebGPU)`, w.name);
    }
    return { weights: h, scale: prepareF16Weights(h) };
  }

  /** Stop using the GPU after a failure: one notice, then the WASM kernels. */
  private dropWebGPU(reason: string): void {
    const g = this.gpu;
    if (g === null) return;
    this.releaseGpu();
    g.notice(`the model's WebGPU matvecs stopped (${reason}); ${this.location} continues on the WASM kernels`);
  }

  private releaseGpu(): void {
    if (this.gpu === null) return;
    for (const mv of this.gpu.matvecs) mv.destroy();
    for (const p of this.allProjections) { p.gpu = null; p.result = null; }
    this.gpu = null;
  }

  /** Give the weights, scratch and GPU buffers back (`E_STATE` while an async call is in flight). */
  dispose(): void {
    if (this.disposed) return;
    this.checkIdle('dispose');
    this.disposed = true;
    this.releaseGpu();
    for (const p of this.owned) this.engine.arena.free(p);
    this.owned.length = 0;
  }

  private checkLive(): void {
    if (this.disposed) throw new EdgeKVError('E_STATE', 'this model was disposed', 'model');
  }

  /** Throws `E_STATE` while an async call owns the scratch. */
  private checkIdle(what: string): void {
    if (this.asyncCall !== null) {
      throw new EdgeKVError('E_STATE', `${what}: ${this.asyncCall} is still running on this model (it owns the model's scratch memory); await it first`, 'model');
    }
  }
}

/** Why `context` cannot run kernels (lost, destroyed), or null when it can. */
function gpuProblem(context: WebGPUContext): string | null {
  try {
    context.check('matvec');
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * Multiply f16 bit patterns by 2^k in place, exactly (exponent add; subnormals renormalized).
 * Precondition: every value finite and k <= 30 - (largest exponent field).
 */
export function shiftF16Exponents(h: Uint16Array, k: number): void {
  for (let i = 0; i < h.length; i++) {
    const v = h[i];
    const e = (v >> 10) & 0x1f;
    if (e !== 0) { h[i] = v + (k << 10); continue; }
    const m = v & 0x3ff;
    if (m === 0) continue; // ±0
    const sign = v & 0x8000;
    const top = 31 - Math.clz32(m); // m = 2^top * 1.f
    const eNew = top + k - 9; // exponent field of m * 2^(k - 24)
    h[i] = eNew >= 1 ? sign | (eNew << 10) | ((m << (10 - top)) & 0x3ff) : sign | (m << k);
  }
}

/** Index of the first Inf / NaN f16 bit pattern, or -1. */
export function firstNonFiniteF16(h: Uint16Array): number {
  for (let i = 0; i < h.length; i++) if ((h[i] & F16_EXP_MASK) === F16_EXP_MASK) return i;
  return -1;
}

/**
 * Make finite f16 weights subnormal-free for the kernels: when any is subnormal, multiply all
 * by 2^k in place (k = 10, or less when the largest exponent leaves less room) and return the
 * kernels' `scale` = 2^-k; else leave them and return 1.
 */
export function prepareF16Weights(h: Uint16Array): number {
  let eMax = 0, hasSubnormal = false;
  for (let i = 0; i < h.length; i++) {
    const e = (h[i] & F16_EXP_MASK) >> 10;
    if (e > eMax) eMax = e;
    else if (e === 0 && (h[i] & 0x3ff) !== 0) hasSubnormal = true;
  }
  const k = hasSubnormal ? Math.min(F16_SUBNORMAL_SHIFT, F16_MAX_EXP - eMax) : 0;
  if (k > 0) shiftF16Exponents(h, k);
  return 2 ** -k;
}

/** Copy a tensor into the arena in its runner storage; returns the pointer. */
function upload(engine: Engine, t: TensorInfo, asF32: boolean, owned: number[]): { ptr: number; storage: WeightStorage; bytes: number; scale: number } {
  const n = t.size;
  const src = t.data;
  const finiteErr = (i: number): never => {
    throw new EdgeKVError('E_MODEL', `${t.file}: tensor ${JSON.stringify(t.name)} holds a non-finite value (Inf or NaN) at element ${i}: the weights are damaged`, t.name);
  };
  // Aligned copy of the raw bytes (file offsets need not be aligned).
  const u16 = (): Uint16Array => {
    const a = new Uint16Array(n);
    new Uint8Array(a.buffer).set(src);
    return a;
  };
  if (t.dtype === 'F16' && !asF32) {
    const h = u16();
    const bad = firstNonFiniteF16(h);
    if (bad >= 0) finiteErr(bad);
    const scale = prepareF16Weights(h);
    const ptr = engine.arena.alloc(n * F16_BYTES);
    owned.push(ptr);
    engine.u16(ptr, n).set(h);
    return { ptr, storage: 'f16', bytes: n * F16_BYTES, scale };
  }
  const ptr = engine.arena.alloc(n * F32_BYTES);
  owned.push(ptr);
  const dst = engine.f32(ptr, n);
  if (t.dtype === 'F32') {
    new Uint8Array(dst.buffer, dst.byteOffset, n * F32_BYTES).set(src);
    for (let i = 0; i < n; i++) if (!Number.isFinite(dst[i])) finiteErr(i);
  } else if (t.dtype === 'BF16') {
    const h = u16();
    const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
    for (let i = 0; i < n; i++) {
      if ((h[i] & BF16_EXP_MASK) === BF16_EXP_MASK) finiteErr(i);
      bits[i] = h[i] << 16;
    }
  } else {
    const h = u16();
    const tmp = engine.arena.alloc(n * F16_BYTES);
    engine.u16(tmp, n).set(h);
    for (let i = 0; i < n; i++) if ((h[i] & F16_EXP_MASK) === F16_EXP_MASK) { engine.arena.free(tmp); finiteErr(i); }
    engine.kernels.f16ToF32(tmp, ptr, n);
    engine.arena.free(tmp);
  }
  return { ptr, storage: 'f32', bytes: n * F32_BYTES, scale: 1 };
}

async function readText(files: ModelFiles, name: string, required: boolean): Promise<string | null> {
  const b = await files.read(name);
  if (b === null) {
    if (required) throw new EdgeKVError('E_MODEL', `${files.describe(name)} is missing: a model directory needs config.json, tokenizer.json and model.safetensors (or model.safetensors.index.json with its shards)`, files.describe(name));
    return null;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    throw new EdgeKVError('E_MODEL', `${files.describe(name)}: not valid UTF-8 text`, files.describe(name));
  }
}

/**
 * Load a Llama-family checkpoint directory (path, URL or `ModelFiles`) onto an engine.
 * Errors: `E_MODEL` (missing or damaged files, naming file and field), `E_UNSUPPORTED`
 * (another architecture, biases, RoPE scaling ...).
 */
export async function loadModel(source: string | URL | ModelFiles, options: LoadModelOptions = {}): Promise<LlamaModel> {
  if (options === null || typeof options !== 'object') throw argError('options', options, 'an object');
  checkKeys('options', options, LOAD_OPTIONS);
  const maxChunk = checkInt('options.maxChunk', options.maxChunk ?? DEFAULT_MAX_CHUNK, 1, 4096);
  const files = modelFiles(source);
  const configText = (await readText(files, 'config.json', true))!;
  const config = parseLlamaConfig(configText, files.describe('config.json'));
  const tokText = (await readText(files, 'tokenizer.json', true))!;
  const tokenizer = Tokenizer.fromJSON(tokText, files.describe('tokenizer.json'));
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new EdgeKVError('E_MODEL', `${files.describe('tokenizer.json')}: ${tokenizer.vocabSize} token ids but config.json's vocab_size is ${config.vocabSize}`, 'vocab_size');
  }
  let eosTokenIds = config.eosTokenIds;
  const gen = await readText(files, 'generation_config.json', false);
  if (gen !== null) {
    try {
      const g = JSON.parse(gen) as { eos_token_id?: unknown };
      if (typeof g.eos_token_id === 'number') eosTokenIds = [g.eos_token_id];
      else if (Array.isArray(g.eos_token_id) && g.eos_token_id.every((x) => Number.isInteger(x))) eosTokenIds = g.eos_token_id as number[];
    } catch {
      throw new EdgeKVError('E_MODEL', `${files.describe('generation_config.json')}: not valid JSON`, 'generation_config.json');
    }
  }
  const ck: Checkpoint = await readCheckpoint(files);
  const engine = options.engine ?? (await createEngine());
  const owned: number[] = [];
  let weightBytes = 0;
  const fileDTypes: Record<string, number> = {};
  for (const t of ck.tensors.values()) fileDTypes[t.dtype] = (fileDTypes[t.dtype] ?? 0) + 1;
  const c = config;
  const qDim = c.qHeads * c.headDim, kvDim = c.kvHeads * c.headDim;
  try {
    const get = (name: string, shape: number[]): TensorInfo => {
      const t = requireTensor(ck, name, files.location);
      requireShape(t, shape);
      return t;
    };
    const matrix = (name: string, rows: number, cols: number): Weight => {
      const u = upload(engine, get(name, [rows, cols]), false, owned);
      weightBytes += u.bytes;
      return { name, ptr: u.ptr, rows, cols, storage: u.storage, scale: u.scale };
    };
    const vector = (name: string, len: number): number => {
      const u = upload(engine, get(name, [len]), true, owned);
      weightBytes += u.bytes;
      return u.ptr;
    };
    const embed = matrix('model.embed_tokens.weight', c.vocabSize, c.hiddenSize);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < c.layers; l++) {
      const p = `model.layers.${l}.`;
      layers.push({
        ln1: vector(`${p}input_layernorm.weight`, c.hiddenSize),
        ln2: vector(`${p}post_attention_layernorm.weight`, c.hiddenSize),
        q: matrix(`${p}self_attn.q_proj.weight`, qDim, c.hiddenSize),
        k: matrix(`${p}self_attn.k_proj.weight`, kvDim, c.hiddenSize),
        v: matrix(`${p}self_attn.v_proj.weight`, kvDim, c.hiddenSize),
        o: matrix(`${p}self_attn.o_proj.weight`, c.hiddenSize, qDim),
        gate: matrix(`${p}mlp.gate_proj.weight`, c.intermediateSize, c.hiddenSize),
        up: matrix(`${p}mlp.up_proj.weight`, c.intermediateSize, c.hiddenSize),
        down: matrix(`${p}mlp.down_proj.weight`, c.hiddenSize, c.intermediateSize),
      });
    }
    const finalNorm = vector('model.norm.weight', c.hiddenSize);
    let lmHead = embed;
    if (!c.tieWordEmbeddings) {
      if (!ck.tensors.has('lm_head.weight')) {
        throw new EdgeKVError('E_MODEL', `${files.location}: config.json says tie_word_embeddings = false but the checkpoint has no "lm_head.weight" (${ck.files.join(', ')})`, 'lm_head.weight');
      }
      lmHead = matrix('lm_head.weight', c.vocabSize, c.hiddenSize);
    }
    return new LlamaModel({ config, tokenizer, engine, location: files.location, maxChunk, eosTokenIds, layers, embed, lmHead, finalNorm, owned, weightBytes, fileDTypes });
  } catch (e) {
    for (const p of owned) engine.arena.free(p);
    throw e;
  }
}

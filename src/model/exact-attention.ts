/**
 * `ExactAttention`: the uncompressed attention backend — every appended key and value is
 * kept in f32 and each `attend` computes exact causal softmax attention over all of them
 * with the WASM kernel `attendExactF32` (GQA: query head h reads KV head
 * h / (qHeads / kvHeads); scale 1/sqrt(headDim), as Hugging Face Llama).
 *
 * Storage per layer: token-major `[capacity][kvHeads][headDim]` f32 for K and for V, in the
 * engine's arena, doubled when full. Queries and outputs that already live in the same
 * engine's memory are used in place (no copy).
 */
import type { Engine } from '../engine.ts';
import { EdgeKVError, argError, checkInt, shapeError } from '../errors.ts';
import type { AttentionBackend, AttentionGeometry } from './types.ts';

/** Tokens of room a layer starts with. */
export const DEFAULT_INITIAL_CAPACITY = 256;
const F32_BYTES = 4;

/** Options of `ExactAttention`. */
export interface ExactAttentionOptions {
  /** Tokens each layer can hold before its buffers grow (doubling). Default 256. */
  initialCapacity?: number;
  /** Softmax scale; default 1 / sqrt(headDim). */
  scale?: number;
}

/** Exact (uncompressed) causal attention over every appended token; see the file header. */
export class ExactAttention implements AttentionBackend {
  readonly geometry: AttentionGeometry;
  private readonly engine: Engine;
  private readonly scale: number;
  private readonly kPtr: number[];
  private readonly vPtr: number[];
  private readonly len: number[];
  private capacity: number;
  private scores: number;
  private qScratch: number;
  private outScratch: number;
  private disposed = false;

  constructor(engine: Engine, geometry: AttentionGeometry, options: ExactAttentionOptions = {}) {
    const { layers, qHeads, kvHeads, headDim } = geometry;
    checkInt('geometry.layers', layers, 1, 1 << 16);
    checkInt('geometry.kvHeads', kvHeads, 1, 1 << 12);
    checkInt('geometry.qHeads', qHeads, 1, 1 << 12);
    checkInt('geometry.headDim', headDim, 1, 1 << 12);
    if (qHeads % kvHeads !== 0) throw argError('geometry.qHeads', qHeads, `a multiple of kvHeads = ${kvHeads}`);
    this.capacity = checkInt('options.initialCapacity', options.initialCapacity ?? DEFAULT_INITIAL_CAPACITY, 1, 1 << 24);
    this.scale = options.scale ?? 1 / Math.sqrt(headDim);
    if (!Number.isFinite(this.scale) || this.scale <= 0) throw argError('options.scale', options.scale, 'a positive finite number');
    this.engine = engine;
    this.geometry = { layers, qHeads, kvHeads, headDim };
    const bytes = this.capacity * kvHeads * headDim * F32_BYTES;
    this.kPtr = []; this.vPtr = []; this.len = [];
    for (let l = 0; l < layers; l++) {
      this.kPtr.push(engine.arena.alloc(bytes));
      this.vPtr.push(engine.arena.alloc(bytes));
      this.len.push(0);
    }
    this.scores = engine.arena.alloc(this.capacity * F32_BYTES);
    this.qScratch = engine.arena.alloc(qHeads * headDim * F32_BYTES);
    this.outScratch = engine.arena.alloc(qHeads * headDim * F32_BYTES);
  }

  /** Tokens stored for `layer`. */
  length(layer: number): number {
    checkInt('layer', layer, 0, this.geometry.layers - 1);
    return this.len[layer];
  }

  /** Bytes of KV held (both K and V, all layers, tokens stored — not capacity). */
  get bytes(): number {
    const { kvHeads, headDim } = this.geometry;
    return this.len.reduce((a, n) => a + 2 * n * kvHeads * headDim * F32_BYTES, 0);
  }

  append(layer: number, keys: Float32Array, values: Float32Array, positions?: Int32Array): void {
    this.checkLive();
    const { layers, kvHeads, headDim } = this.geometry;
    checkInt('layer', layer, 0, layers - 1);
    const row = kvHeads * headDim;
    if (!(keys instanceof Float32Array)) throw argError('keys', keys, `a Float32Array [kvHeads=${kvHeads}, tokens, headDim=${headDim}]`);
    if (!(values instanceof Float32Array)) throw argError('values', values, `a Float32Array [kvHeads=${kvHeads}, tokens, headDim=${headDim}]`);
    if (keys.length === 0 || keys.length % row !== 0) throw shapeError('keys', `length ${keys.length}`, `a positive multiple of kvHeads * headDim = ${row}`);
    if (values.length !== keys.length) throw shapeError('values', `length ${values.length}`, `length ${keys.length} (as keys)`);
    const tokens = keys.length / row;
    if (positions !== undefined) {
      if (!(positions instanceof Int32Array)) throw argError('positions', positions, `an Int32Array of length ${tokens}`);
      if (positions.length !== tokens) throw shapeError('positions', `length ${positions.length}`, `length ${tokens} (tokens)`);
    }
    for (let i = 0; i < keys.length; i++) {
      if (!Number.isFinite(keys[i]) || !Number.isFinite(values[i])) {
        const which = Number.isFinite(keys[i]) ? 'values' : 'keys';
        throw new EdgeKVError('E_NONFINITE', `${which}[${i}] = ${which === 'keys' ? keys[i] : values[i]} is not finite; keys and values must be finite numbers`, which);
      }
    }
    const need = this.len[layer] + tokens;
    if (need > this.capacity) {
      // Growing memory detaches views of it: re-make the caller's views when they were ones.
      const mem = this.engine.memory.buffer;
      const kOff = keys.buffer === mem ? keys.byteOffset : -1, vOff = values.buffer === mem ? values.byteOffset : -1;
      this.grow(need);
      if (kOff >= 0) keys = this.engine.f32(kOff, tokens * row);
      if (vOff >= 0) values = this.engine.f32(vOff, tokens * row);
    }
    const base = this.len[layer] * row;
    const k = this.engine.f32(this.kPtr[layer] + base * F32_BYTES, tokens * row);
    const v = this.engine.f32(this.vPtr[layer] + base * F32_BYTES, tokens * row);
    if (tokens === 1) {
      k.set(keys); v.set(values);
    } else {
      // [kvHeads, tokens, headDim] -> token-major [tokens, kvHeads, headDim]
      for (let h = 0; h < kvHeads; h++) {
        for (let t = 0; t < tokens; t++) {
          const src = (h * tokens + t) * headDim, dst = (t * kvHeads + h) * headDim;
          k.set(keys.subarray(src, src + headDim), dst);
          v.set(values.subarray(src, src + headDim), dst);
        }
      }
    }
    this.len[layer] = need;
  }

  attend(layer: number, queries: Float32Array, out?: Float32Array): Float32Array {
    this.checkLive();
    const { layers, qHeads, kvHeads, headDim } = this.geometry;
    checkInt('layer', layer, 0, layers - 1);
    const qLen = qHeads * headDim;
    if (!(queries instanceof Float32Array)) throw argError('queries', queries, `a Float32Array [qHeads=${qHeads}, headDim=${headDim}]`);
    if (queries.length !== qLen) throw shapeError('queries', `length ${queries.length}`, `length qHeads * headDim = ${qLen}`);
    if (out !== undefined && (!(out instanceof Float32Array) || out.length !== qLen)) throw shapeError('out', out instanceof Float32Array ? `length ${out.length}` : String(out), `a Float32Array of length ${qLen}`);
    for (let i = 0; i < qLen; i++) {
      if (!Number.isFinite(queries[i])) throw new EdgeKVError('E_NONFINITE', `queries[${i}] = ${queries[i]} is not finite`, 'queries');
    }
    const len = this.len[layer];
    if (len === 0) throw new EdgeKVError('E_STATE', `attend(layer = ${layer}): nothing has been appended to this layer yet; append the token's keys and values first`, 'layer');
    const mem = this.engine.memory.buffer;
    let q: number;
    if (queries.buffer === mem) q = queries.byteOffset;
    else { this.engine.f32(this.qScratch, qLen).set(queries); q = this.qScratch; }
    const direct = out !== undefined && out.buffer === mem && out.byteOffset % F32_BYTES === 0;
    const o = direct ? out!.byteOffset : this.outScratch;
    this.engine.kernels.attendExactF32(q, this.kPtr[layer], this.vPtr[layer], len, qHeads, kvHeads, headDim, this.scale, this.scores, o);
    if (direct) return out!;
    const res = out ?? new Float32Array(qLen);
    res.set(this.engine.f32(o, qLen));
    return res;
  }

  reset(): void {
    this.checkLive();
    this.len.fill(0);
  }

  /** Give every buffer back to the arena. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const a = this.engine.arena;
    for (const p of [...this.kPtr, ...this.vPtr, this.scores, this.qScratch, this.outScratch]) a.free(p);
  }

  private checkLive(): void {
    if (this.disposed) throw new EdgeKVError('E_STATE', 'this ExactAttention was disposed', 'attention');
  }

  private grow(need: number): void {
    let cap = this.capacity;
    while (cap < need) cap *= 2;
    const { layers, kvHeads, headDim } = this.geometry;
    const rowBytes = kvHeads * headDim * F32_BYTES;
    const a = this.engine.arena;
    // Allocate everything first: if memory cannot grow, nothing has changed.
    const fresh: number[] = [];
    try {
      for (let i = 0; i < 2 * layers + 1; i++) fresh.push(a.alloc(i < 2 * layers ? cap * rowBytes : cap * F32_BYTES));
    } catch (e) {
      for (const p of fresh) a.free(p);
      throw e;
    }
    const u8 = this.engine.u8(0, this.engine.memory.buffer.byteLength);
    for (let l = 0; l < layers; l++) {
      const used = this.len[l] * rowBytes;
      u8.copyWithin(fresh[2 * l], this.kPtr[l], this.kPtr[l] + used);
      u8.copyWithin(fresh[2 * l + 1], this.vPtr[l], this.vPtr[l] + used);
      a.free(this.kPtr[l]); a.free(this.vPtr[l]);
      this.kPtr[l] = fresh[2 * l]; this.vPtr[l] = fresh[2 * l + 1];
    }
    a.free(this.scores);
    this.scores = fresh[2 * layers];
    this.capacity = cap;
  }
}

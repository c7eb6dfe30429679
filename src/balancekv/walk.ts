/**
 * Host wrapper of the BalanceKV walk kernel (assembly/kernels/walk.ts): a `BlockWalker`
 * that runs each halving pass's blocks in WebAssembly (SIMD or scalar build, whichever
 * the engine loaded).
 *
 * Two ways in:
 * - `walkSigns(input, req, p)`: plain `Float32Array` keys/values `[tokens][d]`; the rows of
 *   `req.order` are gathered into WASM memory once per pass (O(n*d), against the walk's
 *   O(n*B*d)), walked, and freed.
 * - `walkResident(rows, req, p)`: rows already resident in WASM memory (e.g. f32 pages of
 *   a cache lane): one byte address per token for its key row and its value row.
 * Both are allocation-balanced: every arena block taken is given back before returning.
 * Inputs are trusted (the compressor validates at its boundary).
 */
import type { Engine } from '../engine.ts';
import { EdgeKVError } from '../errors.ts';
import { walkFlags, type WalkParams } from './params.ts';
import type { BlockWalker, WalkInput, WalkRequest, WalkSigns } from './types.ts';

const F32_BYTES = 4;
const U32_BYTES = 4;

/** Token rows resident in WASM memory: byte addresses of each token's f32[d] key and value. */
export interface ResidentRows {
  /** Byte address of token t's key row, for every token the request may name. */
  readonly keyAddr: Uint32Array;
  /** Byte address of token t's value row. */
  readonly valueAddr: Uint32Array;
  readonly d: number;
}

/** The WebAssembly walk backend. */
export class WasmWalker implements BlockWalker {
  readonly name: string;
  readonly engine: Engine;
  constructor(engine: Engine) {
    this.engine = engine;
    this.name = engine.backend;
  }

  walkSigns(input: WalkInput, req: WalkRequest, p: WalkParams): WalkSigns {
    const n = req.order.length, d = input.d;
    if (n === 0) return { signs: new Int8Array(0), saturated: 0 };
    const e = this.engine, ar = e.arena;
    const rowBytes = d * F32_BYTES;
    const tokens = input.keys.length / d;
    // Copy the whole input when the pass visits at least half of it (one memcpy), else
    // gather the visited rows (no per-row allocation either way).
    const whole = 2 * n >= tokens;
    const rowsIn = whole ? tokens : n;
    const kPtr = ar.alloc(rowsIn * rowBytes);
    let vPtr = 0;
    try {
      vPtr = ar.alloc(rowsIn * rowBytes);
      const kv = e.f32(kPtr, rowsIn * d), vv = e.f32(vPtr, rowsIn * d);
      const keyAddr = new Uint32Array(rowsIn), valueAddr = new Uint32Array(rowsIn);
      for (let r = 0; r < rowsIn; r++) { keyAddr[r] = kPtr + r * rowBytes; valueAddr[r] = vPtr + r * rowBytes; }
      if (whole) {
        kv.set(input.keys);
        vv.set(input.values);
        return this.walkResident({ keyAddr, valueAddr, d }, req, p);
      }
      const ks = input.keys, vs = input.values;
      for (let r = 0; r < n; r++) {
        const o = req.order[r] * d, q = r * d;
        for (let c = 0; c < d; c++) { kv[q + c] = ks[o + c]; vv[q + c] = vs[o + c]; }
      }
      const seq = new Int32Array(n);
      for (let r = 0; r < n; r++) seq[r] = r;
      return this.walkResident({ keyAddr, valueAddr, d }, { ...req, order: seq }, p);
    } finally {
      ar.free(kPtr);
      if (vPtr) ar.free(vPtr);
    }
  }

  /** Walk with rows resident in WASM memory (`req.order` indexes `rows.keyAddr`/`valueAddr`). */
  walkResident(rows: ResidentRows, req: WalkRequest, p: WalkParams): WalkSigns {
    const n = req.order.length, d = rows.d, B = p.blockSize;
    if (n === 0) return { signs: new Int8Array(0), saturated: 0 };
    const e = this.engine, ar = e.arena, k = e.kernels;
    const ptrs: number[] = [];
    const take = (bytes: number): number => { const q = ar.alloc(bytes); ptrs.push(q); return q; };
    try {
      const tabK = take(n * U32_BYTES), tabV = take(n * U32_BYTES), wts = take(n * F32_BYTES);
      const anc = req.anchors ? take(n) : 0;
      const scratch = take(k.walkScratchBytes(B, d));
      const out = take(n);
      const tk = new Uint32Array(e.memory.buffer, tabK, n), tv = new Uint32Array(e.memory.buffer, tabV, n);
      for (let r = 0; r < n; r++) { tk[r] = rows.keyAddr[req.order[r]]; tv[r] = rows.valueAddr[req.order[r]]; }
      const w = e.f32(wts, n);
      if (req.weights) w.set(req.weights); else w.fill(1);
      if (req.anchors) e.u8(anc, n).set(req.anchors);
      const flags = walkFlags(p);
      const scale = p.temp / Math.sqrt(d);
      const beta = p.beta === 'auto' ? 0 : p.beta;
      let saturated = 0;
      for (let b0 = 0; b0 < n; b0 += B) {
        const len = Math.min(B, n - b0);
        saturated += k.walkBlock(tabK + b0 * U32_BYTES, tabV + b0 * U32_BYTES, wts + b0 * F32_BYTES, anc ? anc + b0 : 0,
          len, B, d, flags, scale, beta, p.logGamma, p.c0, req.rngKey | 0, b0, scratch, out + b0);
      }
      const signs = new Int8Array(n);
      signs.set(new Int8Array(e.memory.buffer, out, n));
      return { signs, saturated };
    } finally {
      for (const q of ptrs) ar.free(q);
    }
  }
}

/**
 * The kernel rows of one block as the kernel computes them (tests and benches):
 * A[i][j] = f32(temp/sqrt(d)) * <k̄_i,k̄_j> and W[i][j] = <ṽ_i,ṽ_j> + c0, `[n][n]`.
 */
export function wasmGram(engine: Engine, keys: Float32Array, values: Float32Array, d: number, weights: Float32Array | null,
  n: number, p: WalkParams): { A: Float32Array; W: Float32Array } {
  if (n < 1 || n > p.blockSize) throw new EdgeKVError('E_ARG', `wasmGram: n = ${n} must be in [1, blockSize = ${p.blockSize}]`, 'n');
  const e = engine, ar = e.arena, k = e.kernels;
  const ptrs: number[] = [];
  const take = (bytes: number): number => { const q = ar.alloc(bytes); ptrs.push(q); return q; };
  try {
    const rowBytes = d * F32_BYTES;
    const kp = take(n * rowBytes), vp = take(n * rowBytes), tk = take(n * U32_BYTES), tv = take(n * U32_BYTES);
    const wp = weights ? take(n * F32_BYTES) : 0;
    const scratch = take(k.walkScratchBytes(p.blockSize, d));
    const oa = take(n * n * F32_BYTES), ow = take(n * n * F32_BYTES);
    e.f32(kp, n * d).set(keys.subarray(0, n * d));
    e.f32(vp, n * d).set(values.subarray(0, n * d));
    const a = new Uint32Array(e.memory.buffer, tk, n), b = new Uint32Array(e.memory.buffer, tv, n);
    for (let r = 0; r < n; r++) { a[r] = kp + r * rowBytes; b[r] = vp + r * rowBytes; }
    if (weights) e.f32(wp, n).set(weights.subarray(0, n));
    k.walkGram(tk, tv, wp, n, p.blockSize, d, walkFlags(p), p.temp / Math.sqrt(d), p.c0, scratch, oa, ow);
    return { A: e.f32(oa, n * n).slice(), W: e.f32(ow, n * n).slice() };
  } finally {
    for (const q of ptrs) ar.free(q);
  }
}

/** The kernel's f32 exp polynomial applied to min(x, 0) (tests). */
export function wasmExp(engine: Engine, x: Float32Array): Float32Array {
  const n = x.length;
  const src = engine.copyIn(x);
  const dst = engine.arena.alloc(Math.max(1, n) * F32_BYTES);
  try {
    engine.kernels.walkExp(src, dst, n);
    return engine.f32(dst, n).slice();
  } finally {
    engine.arena.free(src);
    engine.arena.free(dst);
  }
}

/** The kernel's uniforms for counters indexBase .. indexBase+n-1 under rngKey (tests). */
export function wasmUniforms(engine: Engine, rngKey: number, indexBase: number, n: number): Float32Array {
  const dst = engine.arena.alloc(Math.max(1, n) * F32_BYTES);
  try {
    engine.kernels.walkRandom(rngKey | 0, indexBase | 0, n, dst);
    return engine.f32(dst, n).slice();
  } finally {
    engine.arena.free(dst);
  }
}

/**
 * The streaming KV cache: what a runtime talks to.
 *
 * ```ts
 * const cache = engine.createCache({ layers: 30, qHeads: 9, kvHeads: 3, headDim: 64,
 *   budget: { tokens: 512 }, policy: 'snapkv', precision: 'int4' });
 * cache.append(layer, keys, values);          // [kvHeads, tokens, headDim] each
 * const out = cache.attend(layer, queries);   // [qHeads, headDim] -> [qHeads, headDim]
 * ```
 *
 * Every lane (layer × KV head) is a ragged stream of pages in WASM memory (see
 * lane.ts): exact sinks, a compressed middle, an exact tail (residual + recent window).
 * A lane over its cap is compressed to cap − slack by the active policy; the selector
 * or the sampler decides, the cache executes (compact / gather / re-pack in WASM).
 * Every public call validates all of its input before it changes anything.
 */
import type { Engine } from '../engine.ts';
import { EdgeKVError, argError, checkF32, checkInt, checkKeys, shapeError } from '../errors.ts';
import { FORMAT_CODE, FORMATS, PAGE_TOKENS, type Format } from '../formats.ts';
import { sparePages, type LanePlan } from '../budget/types.ts';
import { select } from '../policies/selector.ts';
import type { CacheGeometry, Plan, Policy, PolicyContext } from '../policies/types.ts';
import { hammingRows } from '../ops/basic.ts';
import { fwhtRows } from './hadamard.ts';
import { Lane, PageStore, Scratch, Tier, planError, type RepackSource } from './lane.ts';
import { F16_MAX, MAX_GROUP, laneTarget, resolveOptions, type CacheOptions, type ResolvedOptions } from './options.ts';
import { Rng } from './rng.ts';
import { saveCache } from './snapshot.ts';
import { GpuMirror, type MirrorStats } from './gpu.ts';
import { createWebGPUAttention, type WebGPUAttention } from '../webgpu/attention.ts';
import type { WebGPUContext } from '../webgpu/device.ts';
import type { Gpu, GpuDevice } from '../webgpu/gpu-types.ts';

/** Largest position an entry may have (positions are stored as i32). */
export const MAX_POSITION = 2 ** 31 - 1;

/** Options of `attend`. */
export interface AttendOptions {
  /** Receives the log-sum-exp of each query head's logits, `[qHeads]` (to merge partial results exactly). */
  lse?: Float32Array;
}

/** Options of `cache.useWebGPU()`. */
export interface CacheWebGPUOptions {
  /** An existing WebGPU context (shared with the model runner, say); the cache does not destroy it. */
  context?: WebGPUContext;
  /** Otherwise: the `GPU` object (default `navigator.gpu`; Node: `create([])` of the `webgpu` package) ... */
  gpu?: Gpu;
  /** ... or an existing device. */
  device?: GpuDevice;
  /** Split workgroups per dispatch (see `WebGPUAttentionOptions.targetSplits`). */
  targetSplits?: number;
  /** Cap of one GPU page-pool buffer in bytes (lowered to the device's limits). */
  chunkBytes?: number;
  /** One line per degradation (no adapter, device lost, GPU out of memory); default `console.warn`. */
  onNotice?: (message: string) => void;
}
const USE_WEBGPU_OPTIONS = ['context', 'gpu', 'device', 'targetSplits', 'chunkBytes', 'onNotice'] as const;

/** Where `attendAsync` runs: the GPU mirror, or the engine's WASM build. */
export type CacheBackend = 'webgpu' | 'wasm-simd' | 'wasm-scalar';

/** What `stats()` reports for one lane. */
export interface LaneStats {
  layer: number;
  kvHead: number;
  /** Entries held (sinks + middle + tail). */
  tokens: number;
  /** Hard cap on entries (Infinity: none). */
  cap: number;
  /** Format of the lane's compressed middle. */
  precision: Format;
  /** Bytes of the pages the lane holds (arena block sizes). */
  bytes: number;
  /** Pages by format. */
  pages: Record<Format, number>;
  /** Entries by tier. */
  sinks: number;
  middle: number;
  tail: number;
}

/** What `stats()` reports for the cache. */
export interface CacheStats {
  lanes: LaneStats[];
  /** Σ lane tokens. */
  tokens: number;
  /** Σ lane bytes: every byte of every KV page (payload, scales, minima, positions, log-weights). */
  bytes: number;
  /** Same as `bytes` (the name the README uses). */
  totalBytes: number;
  /** Pages by format over all lanes. */
  pages: Record<Format, number>;
  /** Arena bytes of scratch buffers (staging, page tables, logits), not KV. */
  overheadBytes: number;
  /** Tokens appended per layer so far (next default position). */
  appended: number[];
  /** Where `attendAsync` runs now. */
  backend: CacheBackend;
  /** The WebGPU mirror's residency and upload counters (null unless `useWebGPU` is active). */
  webgpu: MirrorStats | null;
}

/** Ring of the last `size` queries of one layer, `[size][qHeads][headDim]`. */
export interface QueryRing { buf: Float32Array; count: number; next: number; }

function emptyPages(): Record<Format, number> {
  return { f32: 0, f16: 0, int8: 0, int4: 0, int2: 0 };
}

/**
 * A streaming, compressed KV cache. Create it with `engine.createCache(options)` or
 * `createCache(engine, options)`; restore one with `loadCache(engine, bytes)`.
 */
export class KVCache {
  /** The resolved options (defaults filled in). */
  readonly options: Readonly<ResolvedOptions>;
  readonly geometry: Readonly<CacheGeometry>;
  /** @internal */ readonly engine: Engine;
  /** @internal */ readonly policy: Policy;
  /** @internal */ readonly lanes: Lane[];
  /** @internal */ readonly store: PageStore;
  /** @internal */ readonly scratch: Scratch;
  /** @internal */ rng: Rng;
  /** @internal next default position per layer */ readonly nextPos: number[];
  /** @internal query rings per layer (policies with needs.queryWindow) */ readonly rings: QueryRing[] | null;
  private disposed = false;
  /** GPU copy of the pages while `useWebGPU` is active. */
  private mirror: GpuMirror | null = null;
  private notice: (m: string) => void = (m) => console.warn(`[edgekv] ${m}`);
  /** Whether any tier stores f16 numbers (f16 pages, or f16 scales / minima of packed pages). */
  private readonly storesF16: boolean;
  /** Stored keys / values are Hadamard-rotated (options.hadamard). @internal */
  readonly rotateKeys: boolean;
  readonly rotateValues: boolean;

  /** @internal use engine.createCache() */
  constructor(engine: Engine, resolved: ResolvedOptions, policy: Policy, plans: LanePlan[], geometry: CacheGeometry) {
    this.engine = engine;
    this.options = Object.freeze(resolved);
    this.geometry = Object.freeze(geometry);
    this.policy = policy;
    this.scratch = new Scratch(engine);
    this.store = new PageStore(engine, this.scratch, resolved.headDim, resolved.valueGroup);
    this.rng = new Rng(resolved.seed);
    this.lanes = [];
    for (let l = 0; l < resolved.layers; l++) {
      for (let h = 0; h < resolved.kvHeads; h++) {
        const p = plans[l * resolved.kvHeads + h];
        this.lanes.push(new Lane(l, h, resolved.exactPrecision, p.precision, p.tokens, laneTarget(p.tokens, resolved), policy.entryStateWidth));
      }
    }
    this.nextPos = new Array(resolved.layers).fill(0);
    this.rotateKeys = resolved.hadamard === true || resolved.hadamard === 'keys';
    this.rotateValues = resolved.hadamard === true || resolved.hadamard === 'values';
    this.storesF16 = resolved.exactPrecision !== 'f32' || this.lanes.some((l) => l.mid.format !== 'f32');
    const w = policy.needs.queryWindow ?? 0;
    this.rings = w > 0
      ? Array.from({ length: resolved.layers }, () => ({ buf: new Float32Array(w * resolved.qHeads * resolved.headDim), count: 0, next: 0 }))
      : null;
  }

  /** Lane of (layer, kvHead). */
  lane(layer: number, kvHead: number): Lane { return this.lanes[layer * this.options.kvHeads + kvHead]; }

  private alive(): void {
    if (this.disposed) throw new EdgeKVError('E_STATE', 'this cache was disposed; create a new one', 'cache');
  }

  private checkLayer(layer: unknown): number {
    return checkInt('layer', layer, 0, this.options.layers - 1);
  }

  /**
   * Append entries to every KV head of `layer`: one token (decoding) or many (prefill).
   * `keys`, `values`: Float32Array `[kvHeads, tokens, headDim]`, finite. `positions`:
   * `[tokens]` strictly increasing integers after the layer's last position (default:
   * continue from it). Lanes over their cap are then compressed. A rejected call
   * changes nothing.
   */
  append(layer: number, keys: Float32Array, values: Float32Array, positions?: Int32Array | ArrayLike<number>): void {
    this.alive();
    const { kvHeads, headDim: d } = this.options;
    layer = this.checkLayer(layer);
    if (!(keys instanceof Float32Array)) throw argError('keys', keys, `a Float32Array [kvHeads = ${kvHeads}, tokens, headDim = ${d}]`);
    if (keys.length === 0 || keys.length % (kvHeads * d) !== 0) {
      throw shapeError('keys', `length ${keys.length}`, `a positive multiple of kvHeads * headDim = ${kvHeads * d} ([kvHeads, tokens, headDim])`);
    }
    const T = keys.length / (kvHeads * d);
    checkF32('keys', keys, keys.length);
    checkF32('values', values, keys.length);
    let pos: Int32Array;
    const start = this.nextPos[layer];
    if (positions === undefined) {
      if (start + T - 1 > MAX_POSITION) throw new EdgeKVError('E_ARG', `layer ${layer} would pass position ${MAX_POSITION}; positions are 31-bit`, 'positions');
      pos = new Int32Array(T);
      for (let i = 0; i < T; i++) pos[i] = start + i;
    } else {
      if (positions === null || typeof positions !== 'object' || typeof (positions as ArrayLike<number>).length !== 'number') {
        throw argError('positions', positions, `an Int32Array or number[] of ${T} positions`);
      }
      if (positions.length !== T) throw shapeError('positions', `length ${positions.length}`, `length ${T} (one position per token)`);
      pos = new Int32Array(T);
      let prev = start - 1;
      for (let i = 0; i < T; i++) {
        const p = positions[i];
        if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > MAX_POSITION) {
          throw argError(`positions[${i}]`, p, `an integer in [0, ${MAX_POSITION}]`);
        }
        if (p <= prev) {
          throw new EdgeKVError('E_ARG', `positions[${i}] = ${p} is out of order: positions must increase strictly and continue after layer ${layer}'s last position ${start - 1}`, 'positions');
        }
        pos[i] = p; prev = p;
      }
    }
    // Hard caps of a policy that never evicts.
    if (!this.policy.evicts) {
      for (let h = 0; h < kvHeads; h++) {
        const lane = this.lane(layer, h);
        if (lane.tokens + T > lane.cap) {
          throw new EdgeKVError('E_BUDGET', `append would put ${lane.tokens + T} entries in lane (layer ${layer}, kvHead ${h}), over its cap of ${lane.cap}; policy ${JSON.stringify(this.policy.name)} never evicts: choose an evicting policy or raise the budget`, 'keys');
        }
      }
    }

    // Stage the rows in WASM scratch (not cache state), rotated when hadamard is on,
    // and check them against the f16 range when any tier keeps f16 numbers.
    const e = this.engine;
    const R = kvHeads * T;
    const st = this.store.rows('append', R);
    e.f32(st.k, R * d).set(keys);
    e.f32(st.v, R * d).set(values);
    if (this.rotateKeys) e.kernels.fwht(st.k, d, R);
    if (this.rotateValues) e.kernels.fwht(st.v, d, R);
    if (this.storesF16) {
      for (const [name, ptr] of [['keys', st.k], ['values', st.v]] as const) {
        const a = e.f32(ptr, R * d);
        for (let i = 0; i < a.length; i++) {
          if (Math.abs(a[i]) > F16_MAX) {
            throw new EdgeKVError('E_ARG', `${name}[${i}]${(name === 'keys' ? this.rotateKeys : this.rotateValues) ? ' (after the Hadamard rotation)' : ''} = ${a[i]} is outside the f16 range ±${F16_MAX}; this cache stores f16 numbers (exactPrecision / precision / packed scales): use f32 tiers or rescale`, name);
          }
        }
      }
    }
    e.f32(st.w, R).fill(0);
    const pv = e.i32(st.p, R);
    for (let h = 0; h < kvHeads; h++) pv.set(pos, h * T);

    // Reserve every page this append needs, so that running out of memory rejects the
    // call before anything changes.
    const pool: number[] = [];
    try {
      for (let h = 0; h < kvHeads; h++) {
        const lane = this.lane(layer, h);
        const nS = Math.min(Math.max(0, this.options.sinkTokens - lane.sinks.entries), T);
        const need = this.store.pagesNeeded(lane.sinks, nS) + this.store.pagesNeeded(lane.tail, T - nS);
        for (let i = 0; i < need; i++) pool.push(this.store.alloc(this.options.exactPrecision));
      }
    } catch (err) {
      for (const p of pool) this.store.free(p);
      throw err;
    }

    for (let h = 0; h < kvHeads; h++) {
      const lane = this.lane(layer, h);
      const before = lane.tokens;
      const nS = Math.min(Math.max(0, this.options.sinkTokens - lane.sinks.entries), T);
      this.store.appendExact(lane.sinks, st, h * T, nS, pool);
      this.store.appendExact(lane.tail, st, h * T + nS, T - nS, pool);
      lane.ensureState(before + T);
      lane.state.fill(0, before * lane.stateWidth, (before + T) * lane.stateWidth);
    }
    for (const p of pool) this.store.free(p);
    this.nextPos[layer] = pos[T - 1] + 1;

    // The entries are stored; compression and migration may still need pages. If
    // memory runs out there, every lane stays valid (see execute / densify / migrate)
    // and the next append retries; the caller learns it with E_OOM.
    let oom: EdgeKVError | null = null;
    for (let h = 0; h < kvHeads; h++) {
      const lane = this.lane(layer, h);
      try {
        if (this.policy.evicts && lane.tokens > lane.cap) this.compress(lane);
        this.migrate(lane);
      } catch (err) {
        if (!(err instanceof EdgeKVError) || err.code !== 'E_OOM') throw err;
        oom ??= err;
      }
    }
    if (oom) {
      throw new EdgeKVError('E_OOM', `append stored the entries of layer ${layer}, but compressing them ran out of memory (${oom.message}); the cache is valid but may be over its cap until a later append compresses it`, 'keys');
    }
  }

  /**
   * Record queries `[n, qHeads, headDim]` for observation-window policies (SnapKV,
   * TOVA) without attending: e.g. the last prompt queries before a prefill `append`.
   * A no-op for policies that do not watch queries (input is still validated).
   */
  observe(layer: number, queries: Float32Array): void {
    this.alive();
    layer = this.checkLayer(layer);
    const row = this.options.qHeads * this.options.headDim;
    if (!(queries instanceof Float32Array)) throw argError('queries', queries, `a Float32Array [n, qHeads = ${this.options.qHeads}, headDim = ${this.options.headDim}]`);
    if (queries.length === 0 || queries.length % row !== 0) throw shapeError('queries', `length ${queries.length}`, `a positive multiple of qHeads * headDim = ${row}`);
    checkF32('queries', queries, queries.length);
    for (let i = 0; i < queries.length / row; i++) this.pushQuery(layer, queries, i * row);
  }

  private pushQuery(layer: number, q: Float32Array, offset: number): void {
    if (!this.rings) return;
    const ring = this.rings[layer];
    const row = this.options.qHeads * this.options.headDim;
    const size = ring.buf.length / row;
    ring.buf.set(q.subarray(offset, offset + row), ring.next * row);
    ring.next = (ring.next + 1) % size;
    ring.count = Math.min(size, ring.count + 1);
  }

  /**
   * Decode attention of one query per query head over `layer`'s cache: `queries`
   * `[qHeads, headDim]` → `[qHeads, headDim]` (written into `out` when given). Query
   * head h reads KV head floor(h / (qHeads / kvHeads)); logits are
   * `scale * <q, k> + logWeight`. `options.lse` receives the log-sum-exp per head.
   */
  attend(layer: number, queries: Float32Array, out?: Float32Array, options?: AttendOptions): Float32Array {
    const a = this.checkAttend(layer, queries, out, options);
    return this.attendWasm(a.layer, queries, a.result, a.lse);
  }

  /**
   * `attend` on the GPU when `useWebGPU` is active (and on the WASM kernels otherwise):
   * same arguments, same result within float tolerance. Before the GPU runs, the pages of
   * `layer` written since the last call are uploaded (about one page per lane per decode
   * step). If the GPU fails (device lost, out of GPU memory) it notices once, drops the
   * GPU copy and answers from the WASM kernels: the cache's own pages are never lost.
   * Policies that observe attention probabilities every step (`h2o`, `tova`) attend on
   * the WASM kernels (the GPU kernels return no probabilities). Do not change the cache
   * while a call is pending.
   */
  async attendAsync(layer: number, queries: Float32Array, out?: Float32Array, options?: AttendOptions): Promise<Float32Array> {
    const a = this.checkAttend(layer, queries, out, options);
    const mirror = this.mirror;
    if (!mirror) return this.attendWasm(a.layer, queries, a.result, a.lse);
    const { qHeads, kvHeads, headDim: d } = this.options;
    let res;
    try {
      const ids = mirror.sync(Array.from({ length: kvHeads }, (_, h) => ({ lane: this.lane(a.layer, h), index: a.layer * kvHeads + h })));
      let q = queries;
      if (this.rotateKeys) { q = queries.slice(0, qHeads * d); fwhtRows(q, d, qHeads); }
      res = await mirror.attention.attend(ids, q, this.options.scale);
    } catch (err) {
      if (!(err instanceof EdgeKVError) || (err.code !== 'E_BACKEND' && err.code !== 'E_OOM')) throw err;
      if (this.mirror === mirror) this.dropMirror(`the WebGPU attention failed (${err.message})`);
      return this.attendWasm(a.layer, queries, a.result, a.lse);
    }
    this.pushQuery(a.layer, queries, 0);
    if (this.rotateValues) fwhtRows(res.out, d, qHeads);
    a.result.set(res.out);
    if (a.lse) a.lse.set(res.lse);
    return a.result;
  }

  /**
   * Keep a copy of every page on a WebGPU device and run `attendAsync` there. The pages
   * in WebAssembly memory stay the cache's own (policies compress them there); the GPU
   * copy follows them page by page. Resolves to where `attendAsync` will run: `'webgpu'`,
   * or the WASM backend's name when WebGPU is unavailable here, the geometry does not fit
   * the device, or the policy observes attention probabilities (one notice says why).
   */
  async useWebGPU(options: CacheWebGPUOptions = {}): Promise<CacheBackend> {
    this.alive();
    if (options === null || typeof options !== 'object') throw argError('options', options, '{ context?, gpu?, device?, targetSplits?, chunkBytes?, onNotice? }');
    checkKeys('options', options, USE_WEBGPU_OPTIONS);
    if (options.onNotice !== undefined && typeof options.onNotice !== 'function') throw argError('options.onNotice', options.onNotice, 'a function (message: string) => void');
    const notice = options.onNotice ?? this.notice;
    if (this.mirror) return 'webgpu';
    if (this.policy.needs.attendProbs === true && this.policy.observe !== undefined) {
      notice(`policy ${JSON.stringify(this.policy.name)} observes attention probabilities at every step, which the WebGPU kernels do not return; attention stays on ${this.engine.backend}`);
      return this.engine.backend;
    }
    const { headDim, valueGroup } = this.options;
    let attention: WebGPUAttention;
    try {
      attention = await createWebGPUAttention({
        context: options.context, gpu: options.gpu, device: options.device,
        headDim, groupSize: this.geometry.groupSize, valueGroup,
        targetSplits: options.targetSplits, chunkBytes: options.chunkBytes,
        // the cache reports a loss itself, once, with what happens next
        onNotice: () => {},
      });
    } catch (err) {
      if (!(err instanceof EdgeKVError) || (err.code !== 'E_BACKEND' && err.code !== 'E_UNSUPPORTED')) throw err;
      notice(`WebGPU is not used: ${err.message}; attention stays on ${this.engine.backend}`);
      return this.engine.backend;
    }
    if (this.disposed) { attention.destroy(); this.alive(); }
    this.notice = notice;
    const mirror = new GpuMirror(attention, options.context === undefined, this.engine, this.store, this.lanes.length);
    this.mirror = mirror;
    mirror.unwatchLoss = attention.context.onLost((info) => {
      if (this.mirror === mirror) this.dropMirror(`the WebGPU device was lost (${info.reason}${info.message ? `: ${info.message}` : ''})`);
    });
    this.store.watcher = mirror;
    return 'webgpu';
  }

  /** Stop using the GPU: free its copy of the pages; `attendAsync` runs on WASM again. */
  releaseWebGPU(): void {
    if (!this.mirror) return;
    const m = this.mirror;
    this.mirror = null;
    this.store.watcher = null;
    m.destroy();
  }

  /** Where `attendAsync` runs now. */
  get backend(): CacheBackend { return this.mirror ? 'webgpu' : this.engine.backend; }

  private dropMirror(why: string): void {
    this.notice(`${why}; attention continues on ${this.engine.backend} from the cache's own pages (nothing lost)`);
    this.releaseWebGPU();
  }

  private checkAttend(layer: number, queries: Float32Array, out?: Float32Array, options?: AttendOptions): { layer: number; result: Float32Array; lse: Float32Array | undefined } {
    this.alive();
    const { qHeads, kvHeads, headDim: d } = this.options;
    layer = this.checkLayer(layer);
    checkF32('queries', queries, qHeads * d);
    if (out !== undefined) checkF32('out', out, qHeads * d, false);
    let lseOut: Float32Array | undefined;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw argError('options', options, '{ lse?: Float32Array }');
      for (const k of Object.keys(options)) if (k !== 'lse') throw new EdgeKVError('E_ARG', `options.${k} is not an attend option; known: lse`, `options.${k}`);
      if (options.lse !== undefined) lseOut = checkF32('options.lse', options.lse, qHeads, false);
    }
    for (let h = 0; h < kvHeads; h++) {
      if (this.lane(layer, h).tokens === 0) throw new EdgeKVError('E_STATE', `layer ${layer} holds no entries yet; append keys and values before attend`, 'layer');
    }
    return { layer, result: out ?? new Float32Array(qHeads * d), lse: lseOut };
  }

  private attendWasm(layer: number, queries: Float32Array, result: Float32Array, lseOut: Float32Array | undefined): Float32Array {
    const { kvHeads, headDim: d } = this.options;
    const G = this.geometry.groupSize;
    const observing = this.policy.needs.attendProbs === true && this.policy.observe !== undefined;
    let maxPages = 0, maxTokens = 0;
    for (let h = 0; h < kvHeads; h++) {
      const lane = this.lane(layer, h);
      for (const t of lane.tiers) maxPages = Math.max(maxPages, t.pages);
      maxTokens = Math.max(maxTokens, lane.tokens);
    }
    const s = this.scratch;
    const qPtr = s.get('q', G * d * 4);
    const statePtr = s.get('state', G * (d + 2) * 4);
    const outPtr = s.get('out', G * d * 4);
    const lsePtr = s.get('lse', G * 4);
    s.get('table', maxPages * 8);
    const logitsPtr = observing ? s.get('logits', G * maxTokens * 4) : 0;
    this.pushQuery(layer, queries, 0);

    const e = this.engine, k = e.kernels;
    for (let h = 0; h < kvHeads; h++) {
      const lane = this.lane(layer, h);
      const n = lane.tokens;
      e.f32(qPtr, G * d).set(queries.subarray(h * G * d, (h + 1) * G * d));
      if (this.rotateKeys) k.fwht(qPtr, d, G);
      k.attnInit(statePtr, G, d);
      this.attendTiers(lane, qPtr, G, statePtr, logitsPtr, n);
      k.attnFinish(statePtr, G, d, outPtr, lsePtr);
      if (this.rotateValues) k.fwht(outPtr, d, G);
      result.set(e.f32(outPtr, G * d), h * G * d);
      if (lseOut) lseOut.set(e.f32(lsePtr, G), h * G);
      if (observing) {
        k.probsFromLogits(logitsPtr, G, n, n, lsePtr);
        this.policy.observe!(this.context(lane), e.f32(logitsPtr, G * n), n);
      }
    }
    return result;
  }

  /** One attendPages call per non-empty tier; logits (when wanted) in entry order, row stride `stride`. */
  private attendTiers(lane: Lane, qPtr: number, G: number, statePtr: number, logitsPtr: number, stride: number): void {
    const e = this.engine, k = e.kernels, { headDim: d, valueGroup: vg, scale } = this.options;
    const tablePtr = this.scratch.get('table', 8 * Math.max(lane.sinks.pages, lane.mid.pages, lane.tail.pages, 1));
    let off = 0;
    for (const t of lane.tiers) {
      if (t.pages === 0) continue;
      const tab = e.i32(tablePtr, 2 * t.pages);
      for (let i = 0; i < t.pages; i++) { tab[2 * i] = t.ptrs[i]; tab[2 * i + 1] = t.counts[i]; }
      k.attendPages(tablePtr, t.pages, FORMAT_CODE[t.format], d, vg, qPtr, G, scale, statePtr, logitsPtr ? logitsPtr + 4 * off : 0, stride);
      off += t.entries;
    }
  }

  /**
   * Attention probabilities `[rows][tokens]` of `queries` (`[rows][headDim]`, storage
   * basis) over every entry of `lane`, computed up to MAX_GROUP rows per kernel call.
   */
  private attention(lane: Lane, queries: Float32Array, rows: number): Float32Array {
    const e = this.engine, k = e.kernels, d = this.options.headDim;
    const n = lane.tokens;
    // As many query rows per kernel call as it takes: each pass over the keys serves them all.
    const chunk = Math.min(MAX_GROUP, rows);
    const result = new Float32Array(rows * n);
    const s = this.scratch;
    const qPtr = s.get('aq', chunk * d * 4);
    const statePtr = s.get('astate', chunk * (d + 2) * 4);
    const outPtr = s.get('aout', chunk * d * 4);
    const lsePtr = s.get('alse', chunk * 4);
    const logitsPtr = s.get('alogits', chunk * n * 4);
    s.get('table', 8 * Math.max(lane.sinks.pages, lane.mid.pages, lane.tail.pages, 1));
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const g = Math.min(chunk, rows - r0);
      e.f32(qPtr, g * d).set(queries.subarray(r0 * d, (r0 + g) * d));
      k.attnInit(statePtr, g, d);
      this.attendTiers(lane, qPtr, g, statePtr, logitsPtr, n);
      k.attnFinish(statePtr, g, d, outPtr, lsePtr);
      k.probsFromLogits(logitsPtr, g, n, n, lsePtr);
      result.set(e.f32(logitsPtr, g * n), r0 * n);
    }
    return result;
  }

  /** The policy's view of a lane. */
  private context(lane: Lane): PolicyContext {
    const s = lane.sinks.entries;
    const n = lane.tokens;
    const w = Math.min(this.options.windowTokens, n - s);
    const self = this;
    return {
      geometry: this.geometry,
      layer: lane.layer,
      kvHead: lane.kvHead,
      tokens: n,
      evictStart: s,
      evictable: n - s - w,
      entryState: lane.state,
      rng: this.rng,
      positions: () => this.store.readHeader(lane, 'pos') as Int32Array,
      keys: () => this.store.readRows(lane, 'k'),
      values: () => this.store.readRows(lane, 'v'),
      rows: (which, entries) => this.store.readSelected(lane, which === 'keys' ? 'k' : 'v', entries),
      engine: this.engine,
      logWeights: () => this.store.readHeader(lane, 'logW') as Float32Array,
      windowQueries() { return self.windowQueries(lane); },
      attention: (q, rows) => this.attention(lane, q, rows),
      hamming: (bits, words, anchor) => hammingRows(this.engine, bits, words, anchor),
    };
  }

  private windowQueries(lane: Lane): { queries: Float32Array; count: number } {
    const { qHeads, headDim: d } = this.options;
    const G = this.geometry.groupSize;
    if (!this.rings) return { queries: new Float32Array(0), count: 0 };
    const ring = this.rings[lane.layer];
    const size = ring.buf.length / (qHeads * d);
    const out = new Float32Array(ring.count * G * d);
    for (let j = 0; j < ring.count; j++) {
      const slot = (ring.next - ring.count + j + size) % size;
      const src = slot * qHeads * d + lane.kvHead * G * d;
      out.set(ring.buf.subarray(src, src + G * d), j * G * d);
    }
    if (this.rotateKeys) fwhtRows(out, d, ring.count * G);
    return { queries: out, count: ring.count };
  }

  /** Compress a lane over its cap down to its target. @internal */
  compress(lane: Lane): void {
    const s = lane.sinks.entries;
    const n = lane.tokens;
    const w = Math.min(this.options.windowTokens, n - s);
    const E = n - s - w;
    const keepN = Math.max(0, lane.target - s - w);
    if (E <= keepN) return;
    const ctx = this.context(lane);
    let plan: Plan;
    if (this.policy.plan) {
      plan = this.policy.plan(ctx, keepN);
    } else if (this.policy.score) {
      const scores = new Float64Array(E);
      this.policy.score(ctx, scores);
      plan = select(ctx, scores, keepN, this.policy.stages);
    } else {
      throw new EdgeKVError('E_STATE', `policy ${this.policy.name} evicts but has neither score() nor plan()`);
    }
    this.checkPlan(plan, E, keepN);
    this.execute(lane, plan, s, w, E);
  }

  private checkPlan(plan: Plan, E: number, keepN: number): void {
    const name = this.policy.name;
    if (!plan || !(plan.keep instanceof Int32Array)) throw planError(name, 'keep must be an Int32Array');
    if (plan.keep.length > keepN) throw planError(name, `keeps ${plan.keep.length} entries, more than ${keepN}`);
    let prev = -1;
    for (const i of plan.keep) {
      if (i <= prev || i >= E) throw planError(name, `keep must be strictly ascending indices in [0, ${E})`);
      prev = i;
    }
    if (plan.logWeightAdd !== undefined) {
      if (!(plan.logWeightAdd instanceof Float32Array) || plan.logWeightAdd.length !== plan.keep.length) throw planError(name, 'logWeightAdd must be a Float32Array as long as keep');
      for (const x of plan.logWeightAdd) if (!Number.isFinite(x)) throw planError(name, 'logWeightAdd must be finite');
    }
  }

  /**
   * Execute a plan on a lane. Order matters for failure safety: the only step that
   * needs new pages before anything changes is the tail rebuild, so it runs first (an
   * E_OOM there leaves the lane untouched); log-weights, state and the in-place middle
   * compaction allocate nothing; merging middle pages allocates each run's new pages
   * before freeing the old ones, so an E_OOM there leaves a valid lane that merely holds
   * more pages than its allowance.
   */
  private execute(lane: Lane, plan: Plan, s: number, w: number, E: number): void {
    const store = this.store;
    const mid = lane.mid, tail = lane.tail;
    const m = mid.entries;
    const n = lane.tokens;
    const r = E - m; // residual: evictable entries in the tail
    const keepMask = new Uint8Array(E);
    for (const i of plan.keep) keepMask[i] = 1;

    // 1. Tail: rebuild densely from the kept residual entries and the window (lossless:
    //    exact pages). newTailIndex[t] = row of residual entry t in the rebuilt tail.
    let residualDropped = false;
    for (let t = 0; t < r; t++) if (!keepMask[m + t]) { residualDropped = true; break; }
    let built: { ptrs: number[]; counts: number[] } | null = null;
    if (residualDropped) {
      const sources: RepackSource[] = [];
      let t0 = 0;
      for (let p = 0; p < tail.pages; p++) {
        const c = tail.counts[p];
        const rows: number[] = [];
        for (let x = 0; x < c; x++) {
          const t = t0 + x;
          if (t >= r || keepMask[m + t]) rows.push(x);
        }
        t0 += c;
        sources.push({ ptr: tail.ptrs[p], format: tail.format, count: c, rows: Int32Array.from(rows) });
      }
      built = store.repack(sources, tail.format);
    }

    // 2. Log-weights of kept entries, written into their pages (no re-packing). Tail
    //    pages are dense before and after the rebuild, so row t is page t >> 5, slot t & 31.
    if (plan.logWeightAdd) {
      const add = plan.logWeightAdd;
      const tailPtrs = built ? built.ptrs : tail.ptrs;
      let page = 0, pageStart = 0, keptResidual = 0;
      for (let j = 0; j < plan.keep.length; j++) {
        const i = plan.keep[j];
        if (i < m) {
          if (add[j] === 0) continue;
          while (i >= pageStart + mid.counts[page]) { pageStart += mid.counts[page]; page++; }
          store.addLogWeight(mid.ptrs[page], i - pageStart, add[j]);
        } else {
          const t = built ? keptResidual++ : i - m;
          if (add[j] !== 0) store.addLogWeight(tailPtrs[Math.floor(t / PAGE_TOKENS)], t % PAGE_TOKENS, add[j]);
        }
      }
    }
    if (built) {
      store.clearTier(tail);
      tail.ptrs.push(...built.ptrs);
      tail.counts.push(...built.counts);
      tail.entries = built.counts.reduce((a, b) => a + b, 0);
    }

    // 3. Per-entry state: [sinks | kept | window].
    const W = lane.stateWidth;
    if (W > 0) {
      const st = lane.state;
      let dst = s * W;
      for (let i = 0; i < E; i++) {
        if (!keepMask[i]) continue;
        const src = (s + i) * W;
        if (src !== dst) st.copyWithin(dst, src, src + W);
        dst += W;
      }
      st.copyWithin(dst, (n - w) * W, n * W);
    }

    // 4. Middle: compact each page in place (no re-quantization), free empty pages,
    //    then merge runs of adjacent pages past the spare allowance.
    if (m > 0) {
      const ptrs: number[] = [], counts: number[] = [];
      let at = 0;
      for (let p = 0; p < mid.pages; p++) {
        const c = mid.counts[p];
        const rows: number[] = [];
        for (let x = 0; x < c; x++) if (keepMask[at + x]) rows.push(x);
        at += c;
        if (rows.length === 0) { store.free(mid.ptrs[p]); continue; }
        if (rows.length < c) store.compactPage(mid.ptrs[p], mid.format, c, Int32Array.from(rows));
        ptrs.push(mid.ptrs[p]); counts.push(rows.length);
      }
      mid.ptrs.length = 0; mid.ptrs.push(...ptrs);
      mid.counts.length = 0; mid.counts.push(...counts);
      mid.entries = counts.reduce((a, b) => a + b, 0);
      this.densify(mid);
    }
  }

  /**
   * Merge runs of adjacent pages of `tier` until it holds at most ceil(entries /
   * PAGE_TOKENS) pages plus the spare allowance (packed tiers, `sparePages`). Each step
   * re-packs the run with the fewest entries that frees a page, so re-quantization
   * touches as few entries as possible; order is preserved.
   */
  private densify(tier: Tier): void {
    for (;;) {
      const P = tier.pages;
      const dense = Math.ceil(tier.entries / PAGE_TOKENS);
      if (P <= dense + sparePages(dense, tier.format)) return;
      // Smallest-sum run [i, j) whose free space is at least one page (two pointers).
      let best = -1, bestJ = -1, bestSum = Infinity;
      let j = 0, free = 0, sum = 0;
      for (let i = 0; i < P; i++) {
        if (j < i) { j = i; free = 0; sum = 0; }
        while (j < P && free < PAGE_TOKENS) { free += PAGE_TOKENS - tier.counts[j]; sum += tier.counts[j]; j++; }
        if (free < PAGE_TOKENS) break;
        if (sum < bestSum) { bestSum = sum; best = i; bestJ = j; }
        free -= PAGE_TOKENS - tier.counts[i]; sum -= tier.counts[i];
      }
      if (best < 0) return; // unreachable: the whole tier is such a run
      const sources: RepackSource[] = [];
      for (let p = best; p < bestJ; p++) sources.push({ ptr: tier.ptrs[p], format: tier.format, count: tier.counts[p], rows: null });
      const built = this.store.repack(sources, tier.format);
      for (const src of sources) this.store.free(src.ptr);
      tier.ptrs.splice(best, bestJ - best, ...built.ptrs);
      tier.counts.splice(best, bestJ - best, ...built.counts);
    }
  }

  /** Move whole pages from the tail (beyond the window) into the compressed middle. @internal */
  migrate(lane: Lane): void {
    const tail = lane.tail, mid = lane.mid;
    while (tail.entries - this.options.windowTokens >= PAGE_TOKENS) {
      const ptr = tail.ptrs[0], c = tail.counts[0];
      if (c !== PAGE_TOKENS) throw new EdgeKVError('E_STATE', 'internal: tail page not full at migration');
      let moved = ptr;
      if (mid.format !== tail.format) {
        const rows = this.store.rows('mig', PAGE_TOKENS);
        this.store.unpack(ptr, tail.format, c, rows, 0);
        moved = this.store.pack(mid.format, rows, 0, c);
        this.store.free(ptr);
      }
      tail.ptrs.shift(); tail.counts.shift(); tail.entries -= c;
      mid.ptrs.push(moved); mid.counts.push(c); mid.entries += c;
    }
  }

  /** Per-lane and total entries and bytes; `bytes` equals the arena bytes of the cache's KV pages. */
  stats(): CacheStats {
    this.alive();
    const lanes: LaneStats[] = [];
    const pages = emptyPages();
    let tokens = 0, bytes = 0;
    for (const lane of this.lanes) {
      const lp = emptyPages();
      let lb = 0;
      for (const t of lane.tiers) {
        lp[t.format] += t.pages;
        lb += t.pages * this.store.pageBytes(t.format);
      }
      for (const f of FORMATS) pages[f] += lp[f];
      lanes.push({
        layer: lane.layer, kvHead: lane.kvHead, tokens: lane.tokens, cap: lane.cap, precision: lane.mid.format,
        bytes: lb, pages: lp, sinks: lane.sinks.entries, middle: lane.mid.entries, tail: lane.tail.entries,
      });
      tokens += lane.tokens;
      bytes += lb;
    }
    return {
      lanes, tokens, bytes, totalBytes: bytes, pages, overheadBytes: this.scratch.bytes, appended: [...this.nextPos],
      backend: this.backend, webgpu: this.mirror ? this.mirror.stats() : null,
    };
  }

  /**
   * A versioned, checksummed byte image of the whole cache (options, policy state,
   * RNG, every lane's pages); `loadCache(engine, bytes)` restores it bit-exactly.
   */
  save(): Uint8Array {
    this.alive();
    return saveCache(this);
  }

  /** Drop every entry (pages go back to the arena); options, caps and seed stay. */
  reset(): void {
    this.alive();
    for (const lane of this.lanes) {
      for (const t of lane.tiers) this.store.clearTier(t);
      lane.state.fill(0);
    }
    this.nextPos.fill(0);
    if (this.rings) for (const r of this.rings) { r.buf.fill(0); r.count = 0; r.next = 0; }
    this.rng = new Rng(this.options.seed);
  }

  /** Free everything this cache holds in WASM memory; later calls throw E_STATE. */
  dispose(): void {
    if (this.disposed) return;
    this.releaseWebGPU();
    this.reset();
    this.scratch.freeAll();
    this.disposed = true;
  }

  /** Whether `dispose()` was called. */
  get isDisposed(): boolean { return this.disposed; }
}

/** Validate `options` and create a cache on `engine` (same as `engine.createCache(options)`). */
export function createCache(engine: Engine, options: CacheOptions): KVCache {
  const { resolved, policy, plans, geometry } = resolveOptions(options);
  return new KVCache(engine, resolved, policy, plans, geometry);
}


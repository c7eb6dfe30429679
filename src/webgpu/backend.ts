/**
 * Paged decode attention behind one interface, on any backend, chosen by priority.
 *
 * | backend       | priority | where the pages live                  |
 * |---------------|----------|---------------------------------------|
 * | `wasm-simd`   | 100      | WebAssembly memory (the engine arena) |
 * | `wasm-scalar` | 50       | WebAssembly memory                    |
 * | `webgpu`      | 10       | GPU buffers (`WebGPUAttention`)       |
 * | `reference`   | 0        | JS heap, float64 math (tests only)    |
 *
 * `'auto'` takes the highest-priority backend that loads, so WebGPU is used only when
 * asked for. Asking for `'webgpu'` where there is no WebGPU or no adapter (or the
 * geometry does not fit the device) falls back to the WASM kernels with one notice.
 * Every backend takes the same page bytes (layout of `src/formats.ts`) and returns
 * the same results within float tolerance.
 *
 * Device loss: with `keepHostCopy: true` the WebGPU backend also keeps every page in
 * WebAssembly memory, and after a loss it notices once and continues there (results
 * unchanged within tolerance); without it, a call after a loss throws `E_BACKEND`
 * because the only copy of the pages was on the GPU.
 */
import { createEngine, Engine } from '../engine.ts';
import type { EngineOptions } from '../engine.ts';
import { EdgeKVError, argError, checkF32, checkInt, checkKeys, checkNum, checkOneOf, shapeError } from '../errors.ts';
import { FORMATS, FORMAT_CODE, PAGE_TOKENS, pageBytes } from '../formats.ts';
import type { Format } from '../formats.ts';
import { createWebGPUAttention, validateShape, WebGPUAttention } from './attention.ts';
import type { WebGPUAttentionOptions } from './attention.ts';
import { decodePage, referenceAttention } from './pagecodec.ts';
import type { AttentionResult, DecodedPage } from './pagecodec.ts';
import type { WebGPUContext } from './device.ts';
import type { Gpu, GpuDevice } from './gpu-types.ts';

/** Names of the paged-attention backends. */
export type PagedBackendName = 'wasm-simd' | 'wasm-scalar' | 'webgpu' | 'reference';

/** The registry: one row per backend, highest priority first. */
export const PAGED_BACKENDS: ReadonlyArray<{ readonly name: PagedBackendName; readonly priority: number; readonly description: string }> = Object.freeze([
  Object.freeze({ name: 'wasm-simd' as const, priority: 100, description: 'WebAssembly SIMD kernels, pages in linear memory' }),
  Object.freeze({ name: 'wasm-scalar' as const, priority: 50, description: 'WebAssembly scalar kernels (engines without SIMD)' }),
  Object.freeze({ name: 'webgpu' as const, priority: 10, description: 'WGSL split-K kernels, pages resident in GPU buffers' }),
  Object.freeze({ name: 'reference' as const, priority: 0, description: 'float64 TypeScript (tests)' }),
]);

/** Decode attention over paged lanes; every backend implements it. */
export interface PagedAttention {
  readonly backend: PagedBackendName;
  readonly headDim: number;
  readonly groupSize: number;
  readonly valueGroup: number;
  /** Bytes of pages held by live lanes. */
  readonly bytesResident: number;
  /** New empty lane; returns its id. */
  createLane(): number;
  /** Store page `index` of `lane` (`index == pageCount` appends); `bytes` in the layout of `src/formats.ts`; `count` 1..32. */
  writePage(lane: number, index: number, format: Format, bytes: Uint8Array, count: number): void;
  /** Keep the first `pages` pages. */
  truncate(lane: number, pages: number): void;
  freeLane(lane: number): void;
  pageCount(lane: number): number;
  entryCount(lane: number): number;
  /** `q`: `[lanes][groupSize][headDim]`; returns `out [lanes][G][d]`, `lse [lanes][G]`. Default scale `1/sqrt(headDim)`. */
  attend(lanes: readonly number[], q: Float32Array, scale?: number): Promise<AttentionResult>;
  destroy(): void;
}

/** Options of `createPagedAttention`. */
export interface PagedAttentionOptions {
  /** `'auto'` (default: best WASM build), or a backend by name. */
  backend?: 'auto' | PagedBackendName;
  headDim: number;
  groupSize: number;
  valueGroup?: number;
  /** WASM engine to use (default: `createEngine` with the matching backend). */
  engine?: Engine;
  /** Passed to `createEngine` when no engine is given. */
  wasm?: EngineOptions['wasm'];
  /** WebGPU: the GPU object (Node: `create([])` from the `webgpu` package), default `navigator.gpu`. */
  gpu?: Gpu;
  /** WebGPU: an existing device. */
  device?: GpuDevice;
  /** WebGPU: an existing context. */
  context?: WebGPUContext;
  /** WebGPU: also keep every page in WebAssembly memory so that a device loss falls back without losing anything (default false). */
  keepHostCopy?: boolean;
  /** WebGPU: pool chunk cap and splits per lane (see `WebGPUAttentionOptions`). */
  chunkBytes?: number;
  targetSplits?: number;
  /** Called with one line when the choice degrades (no adapter, device lost). Default `console.warn`. */
  onNotice?: (message: string) => void;
}

const PAGED_OPTIONS = ['backend', 'headDim', 'groupSize', 'valueGroup', 'engine', 'wasm', 'gpu', 'device', 'context', 'keepHostCopy', 'chunkBytes', 'targetSplits', 'onNotice'] as const;

interface HostLane { pages: Array<{ format: Format; ptr: number; count: number }> }

/** Pages in WebAssembly memory, attention by the engine's `attendPages` kernel. */
export class WasmPagedAttention implements PagedAttention {
  readonly engine: Engine;
  readonly headDim: number;
  readonly groupSize: number;
  readonly valueGroup: number;
  private readonly lanes = new Map<number, HostLane>();
  private nextLane = 1;
  private destroyed = false;

  constructor(engine: Engine, shape: { headDim: number; groupSize: number; valueGroup: number }) {
    this.engine = engine;
    this.headDim = shape.headDim;
    this.groupSize = shape.groupSize;
    this.valueGroup = shape.valueGroup;
  }

  get backend(): PagedBackendName { return this.engine.backend; }

  get bytesResident(): number {
    let n = 0;
    for (const l of this.lanes.values()) for (const p of l.pages) n += pageBytes(p.format, this.headDim, this.valueGroup);
    return n;
  }

  createLane(): number {
    this.live('createLane');
    const id = this.nextLane++;
    this.lanes.set(id, { pages: [] });
    return id;
  }

  writePage(lane: number, index: number, format: Format, bytes: Uint8Array, count: number): void {
    const l = this.lane('lane', lane);
    checkPageArgs(l.pages.length, index, format, bytes, count, this.headDim, this.valueGroup);
    const old = l.pages[index];
    let ptr: number;
    if (old && old.format === format) ptr = old.ptr;
    else {
      ptr = this.engine.arena.alloc(bytes.length); // may throw E_OOM: nothing changed yet
      if (old) this.engine.arena.free(old.ptr);
    }
    this.engine.u8(ptr, bytes.length).set(bytes);
    l.pages[index] = { format, ptr, count };
  }

  truncate(lane: number, pages: number): void {
    const l = this.lane('lane', lane);
    checkInt('pages', pages, 0, l.pages.length);
    for (const p of l.pages.splice(pages)) this.engine.arena.free(p.ptr);
  }

  freeLane(lane: number): void {
    const l = this.lane('lane', lane);
    for (const p of l.pages) this.engine.arena.free(p.ptr);
    this.lanes.delete(lane);
  }

  pageCount(lane: number): number { return this.lane('lane', lane).pages.length; }

  entryCount(lane: number): number {
    let n = 0;
    for (const p of this.lane('lane', lane).pages) n += p.count;
    return n;
  }

  /** Synchronous form of `attend`. */
  attendSync(lanes: readonly number[], q: Float32Array, scale?: number): AttentionResult {
    const ls = checkAttendArgs(this, lanes, q);
    const sc = scale === undefined ? 1 / Math.sqrt(this.headDim) : checkNum('scale', scale, Number.MIN_VALUE, 1e6);
    const e = this.engine, k = e.kernels, G = this.groupSize, d = this.headDim;
    const maxPages = Math.max(1, ...ls.map((l) => l.pages.length));
    const stateBytes = 4 * (2 * G + G * d);
    const state = e.arena.alloc(stateBytes);
    const qp = e.arena.alloc(4 * G * d), outp = e.arena.alloc(4 * G * d), lsep = e.arena.alloc(4 * G);
    const table = e.arena.alloc(8 * maxPages);
    const out = new Float32Array(ls.length * G * d), lse = new Float32Array(ls.length * G);
    try {
      ls.forEach((l, li) => {
        e.f32(qp, G * d).set(q.subarray(li * G * d, (li + 1) * G * d));
        k.attnInit(state, G, d);
        // runs of consecutive pages of one format: one attendPages call each
        for (let i = 0; i < l.pages.length;) {
          const f = l.pages[i].format;
          let j = i;
          const t = e.i32(table, 2 * l.pages.length);
          for (; j < l.pages.length && l.pages[j].format === f; j++) {
            t[2 * (j - i)] = l.pages[j].ptr;
            t[2 * (j - i) + 1] = l.pages[j].count;
          }
          k.attendPages(table, j - i, FORMAT_CODE[f], d, this.valueGroup, qp, G, sc, state, 0, 0);
          i = j;
        }
        k.attnFinish(state, G, d, outp, lsep);
        out.set(e.f32(outp, G * d), li * G * d);
        lse.set(e.f32(lsep, G), li * G);
      });
    } finally {
      for (const p of [state, qp, outp, lsep, table]) e.arena.free(p);
    }
    return { out, lse };
  }

  attend(lanes: readonly number[], q: Float32Array, scale?: number): Promise<AttentionResult> {
    try {
      return Promise.resolve(this.attendSync(lanes, q, scale));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    for (const id of [...this.lanes.keys()]) this.freeLane(id);
    this.destroyed = true;
  }

  /** @internal */
  lane(name: string, id: number): HostLane {
    this.live(name);
    const l = this.lanes.get(id);
    if (!l) throw argError(name, id, 'the id of a live lane from createLane()');
    return l;
  }

  private live(what: string): void {
    if (this.destroyed) throw new EdgeKVError('E_STATE', `${what}: this paged attention was destroyed`);
  }
}

/** Float64 TypeScript backend over decoded pages (slow; for tests and as ground truth). */
export class ReferencePagedAttention implements PagedAttention {
  readonly backend = 'reference' as const;
  readonly headDim: number;
  readonly groupSize: number;
  readonly valueGroup: number;
  private readonly lanes = new Map<number, { pages: Array<{ format: Format; decoded: DecodedPage }> }>();
  private nextLane = 1;

  constructor(shape: { headDim: number; groupSize: number; valueGroup: number }) {
    this.headDim = shape.headDim;
    this.groupSize = shape.groupSize;
    this.valueGroup = shape.valueGroup;
  }

  get bytesResident(): number {
    let n = 0;
    for (const l of this.lanes.values()) for (const p of l.pages) n += pageBytes(p.format, this.headDim, this.valueGroup);
    return n;
  }

  createLane(): number { const id = this.nextLane++; this.lanes.set(id, { pages: [] }); return id; }

  writePage(lane: number, index: number, format: Format, bytes: Uint8Array, count: number): void {
    const l = this.get(lane);
    checkPageArgs(l.pages.length, index, format, bytes, count, this.headDim, this.valueGroup);
    l.pages[index] = { format, decoded: decodePage(format, this.headDim, this.valueGroup, count, bytes) };
  }

  truncate(lane: number, pages: number): void {
    const l = this.get(lane);
    checkInt('pages', pages, 0, l.pages.length);
    l.pages.length = pages;
  }

  freeLane(lane: number): void { this.get(lane); this.lanes.delete(lane); }
  pageCount(lane: number): number { return this.get(lane).pages.length; }
  entryCount(lane: number): number { return this.get(lane).pages.reduce((a, p) => a + p.decoded.count, 0); }

  attend(lanes: readonly number[], q: Float32Array, scale?: number): Promise<AttentionResult> {
    try {
      if (!Array.isArray(lanes) || lanes.length === 0) throw argError('lanes', lanes, 'a non-empty array of lane ids');
      const ls = lanes.map((id, i) => { const l = this.lanes.get(id); if (!l) throw argError(`lanes[${i}]`, id, 'the id of a live lane from createLane()'); return l; });
      const G = this.groupSize, d = this.headDim;
      checkF32('q', q, ls.length * G * d);
      const sc = scale === undefined ? 1 / Math.sqrt(d) : checkNum('scale', scale, Number.MIN_VALUE, 1e6);
      const out = new Float32Array(ls.length * G * d), lse = new Float32Array(ls.length * G);
      ls.forEach((l, li) => {
        const r = referenceAttention(l.pages.map((p) => p.decoded), q.subarray(li * G * d, (li + 1) * G * d), G, d, sc);
        out.set(r.out, li * G * d);
        lse.set(r.lse, li * G);
      });
      return Promise.resolve({ out, lse });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  destroy(): void { this.lanes.clear(); }

  private get(id: number) {
    const l = this.lanes.get(id);
    if (!l) throw argError('lane', id, 'the id of a live lane from createLane()');
    return l;
  }
}

/**
 * WebGPU attention that also keeps every page in WebAssembly memory; after a device
 * loss it notices once and serves every call from the WASM copy.
 */
export class MirroredPagedAttention implements PagedAttention {
  readonly gpu: WebGPUAttention;
  readonly host: WasmPagedAttention;
  private readonly ids = new Map<number, [number, number]>();
  private nextLane = 1;
  private fellBack = false;
  private readonly notice: (m: string) => void;

  constructor(gpu: WebGPUAttention, host: WasmPagedAttention, notice: (m: string) => void) {
    this.gpu = gpu;
    this.host = host;
    this.notice = notice;
  }

  /** `'webgpu'` until a device loss, then the WASM backend's name. */
  get backend(): PagedBackendName { return this.onGpu ? 'webgpu' : this.host.backend; }
  get headDim(): number { return this.host.headDim; }
  get groupSize(): number { return this.host.groupSize; }
  get valueGroup(): number { return this.host.valueGroup; }
  get bytesResident(): number { return this.host.bytesResident; }

  private get onGpu(): boolean {
    if (!this.fellBack && this.gpu.context.isLost) this.fallBack('the WebGPU device was lost');
    return !this.fellBack;
  }

  private fallBack(why: string): void {
    this.fellBack = true;
    this.notice(`${why}; continuing on the WebAssembly kernels (${this.host.backend}) from the host copy of the pages`);
  }

  /** Run `f` on the GPU side unless fallen back; a GPU failure (E_BACKEND, E_OOM) switches to the host copy. */
  private onGpuSide(f: () => void): void {
    if (!this.onGpu) return;
    try {
      f();
    } catch (e) {
      if (!(e instanceof EdgeKVError) || (e.code !== 'E_BACKEND' && e.code !== 'E_OOM')) throw e;
      this.fallBack(`the WebGPU backend failed (${e.message})`);
    }
  }

  createLane(): number {
    const h = this.host.createLane();
    let g = -1;
    this.onGpuSide(() => { g = this.gpu.createLane(); });
    const id = this.nextLane++;
    this.ids.set(id, [h, g]);
    return id;
  }

  private pair(id: number): [number, number] {
    const p = this.ids.get(id);
    if (!p) throw argError('lane', id, 'the id of a live lane from createLane()');
    return p;
  }

  writePage(lane: number, index: number, format: Format, bytes: Uint8Array, count: number): void {
    const [h, g] = this.pair(lane);
    this.host.writePage(h, index, format, bytes, count); // validates; throws before anything changes
    this.onGpuSide(() => this.gpu.writePage(g, index, format, bytes, count));
  }

  truncate(lane: number, pages: number): void {
    const [h, g] = this.pair(lane);
    this.host.truncate(h, pages);
    this.onGpuSide(() => this.gpu.truncate(g, pages));
  }

  freeLane(lane: number): void {
    const [h, g] = this.pair(lane);
    this.host.freeLane(h);
    this.onGpuSide(() => this.gpu.freeLane(g));
    this.ids.delete(lane);
  }

  pageCount(lane: number): number { return this.host.pageCount(this.pair(lane)[0]); }
  entryCount(lane: number): number { return this.host.entryCount(this.pair(lane)[0]); }

  async attend(lanes: readonly number[], q: Float32Array, scale?: number): Promise<AttentionResult> {
    if (!Array.isArray(lanes) || lanes.length === 0) throw argError('lanes', lanes, 'a non-empty array of lane ids');
    const pairs = lanes.map((id) => this.pair(id));
    if (this.onGpu) {
      try {
        return await this.gpu.attend(pairs.map((p) => p[1]), q, scale);
      } catch (e) {
        if (!(e instanceof EdgeKVError) || (e.code !== 'E_BACKEND' && e.code !== 'E_OOM')) throw e;
        if (!this.fellBack) this.fallBack(this.gpu.context.isLost ? 'the WebGPU device was lost' : `the WebGPU backend failed (${e.message})`);
      }
    }
    return this.host.attend(pairs.map((p) => p[0]), q, scale);
  }

  destroy(): void {
    this.host.destroy();
    this.gpu.destroy();
  }
}

function checkPageArgs(pages: number, index: number, format: Format, bytes: Uint8Array, count: number, d: number, vg: number): void {
  checkInt('index', index, 0, pages);
  checkOneOf('format', format, FORMATS);
  const pb = pageBytes(format, d, vg);
  if (!(bytes instanceof Uint8Array)) throw argError('bytes', bytes, `a Uint8Array of ${pb} bytes (one ${format} page)`);
  if (bytes.length !== pb) throw shapeError('bytes', `${bytes.length} bytes`, `${pb} bytes: one ${format} page for headDim ${d}, valueGroup ${vg}`);
  checkInt('count', count, 1, PAGE_TOKENS);
}

function checkAttendArgs(w: WasmPagedAttention, lanes: readonly number[], q: Float32Array): HostLane[] {
  if (!Array.isArray(lanes) || lanes.length === 0) throw argError('lanes', lanes, 'a non-empty array of lane ids');
  const ls = lanes.map((id, i) => w.lane(`lanes[${i}]`, id));
  checkF32('q', q, ls.length * w.groupSize * w.headDim);
  return ls;
}

/**
 * Create paged attention on the backend `options.backend` asks for (see the table at
 * the top of this file). `'webgpu'` without WebGPU falls back to WASM with one notice.
 */
export async function createPagedAttention(options: PagedAttentionOptions): Promise<PagedAttention> {
  if (options === null || typeof options !== 'object') throw new EdgeKVError('E_ARG', `options must be an object, got ${options}`, 'options');
  checkKeys('options', options, PAGED_OPTIONS);
  const want = checkOneOf('options.backend', options.backend ?? 'auto', ['auto', 'wasm-simd', 'wasm-scalar', 'webgpu', 'reference'] as const);
  const shape = validateShape(options);
  const notice = options.onNotice ?? ((m: string) => console.warn(`[edgekv] ${m}`));
  if (options.engine !== undefined && !(options.engine instanceof Engine)) throw argError('options.engine', options.engine, 'an Engine from createEngine()');
  if (options.keepHostCopy !== undefined && typeof options.keepHostCopy !== 'boolean') throw argError('options.keepHostCopy', options.keepHostCopy, 'true or false');
  if (want === 'reference') return new ReferencePagedAttention(shape);
  const wasmEngine = async (): Promise<Engine> => {
    if (options.engine) return options.engine;
    const backend = want === 'wasm-simd' || want === 'wasm-scalar' ? want : 'auto';
    return createEngine({ backend, wasm: options.wasm, onNotice: notice });
  };
  if (want === 'webgpu') {
    try {
      const gpuOptions: WebGPUAttentionOptions = { ...shape, gpu: options.gpu, device: options.device, context: options.context, chunkBytes: options.chunkBytes, targetSplits: options.targetSplits, onNotice: notice };
      for (const k of Object.keys(gpuOptions) as Array<keyof WebGPUAttentionOptions>) if (gpuOptions[k] === undefined) delete gpuOptions[k];
      const gpu = await createWebGPUAttention(gpuOptions);
      if (!options.keepHostCopy) return gpu;
      return new MirroredPagedAttention(gpu, new WasmPagedAttention(await wasmEngine(), shape), notice);
    } catch (e) {
      if (!(e instanceof EdgeKVError) || (e.code !== 'E_BACKEND' && e.code !== 'E_UNSUPPORTED')) throw e;
      const engine = await wasmEngine();
      notice(`webgpu backend unavailable (${e.message}); using ${engine.backend}`);
      return new WasmPagedAttention(engine, shape);
    }
  }
  return new WasmPagedAttention(await wasmEngine(), shape);
}

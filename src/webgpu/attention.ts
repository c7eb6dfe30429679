/**
 * `WebGPUAttention`: decode attention over GPU-resident lanes of pages.
 *
 * KV stays on the GPU. Each format has a page pool: a few large storage buffers
 * ("chunks", each at most the device's binding limit) cut into fixed page slots.
 * `writePage` copies one page into one slot with `queue.writeBuffer`; nothing else
 * is uploaded. A chunk that fills grows by doubling with a GPU-side copy
 * (`copyBufferToBuffer`), and past the chunk cap a new chunk is added. Per call only
 * the queries (and, when a lane's pages changed since the last call over the same
 * lanes, its page table: 8 bytes per page, like FlashInfer's `plan`) are written.
 *
 * `attend(lanes, q)` runs split-K decode attention (see `wgsl.ts`) over each lane's
 * pages in page order, with the lane's G query heads, and returns `out [lanes][G][d]`
 * and `lse [lanes][G]`, in one submit and one read-back.
 */
import { EdgeKVError, argError, checkF32, checkInt, checkKeys, checkNum, checkOneOf, shapeError } from '../errors.ts';
import { FORMATS, PAGE_TOKENS, SUPPORTED_HEAD_DIMS, defaultValueGroup, pageBytes } from '../formats.ts';
import type { Format } from '../formats.ts';
import { BufferUsage, MAP_MODE_READ, SHADER_STAGE_COMPUTE } from './gpu-types.ts';
import type { GpuBindGroupLayout, GpuBuffer, GpuComputePipeline, GpuDevice, GpuError, GpuPassTimestampWrites, GpuQuerySet } from './gpu-types.ts';
import { WebGPUContext, createWebGPUContext } from './device.ts';
import type { WebGPUContextOptions } from './device.ts';
import { PARAMS_STRIDE, WORKGROUP_SIZE, MAX_HEADS_PER_PASS, attentionLayout, attentionShader, attentionWorkgroupBytes, mergeLayout, mergeShader, partialStride } from './wgsl.ts';
import type { AttentionTuning } from './wgsl.ts';
import type { AttentionResult } from './pagecodec.ts';

/** Position of each format in `FORMATS` (numeric dispatch-group keys). */
const FORMAT_INDEX = Object.fromEntries(FORMATS.map((f, i) => [f, i])) as Record<Format, number>;

/** Largest GQA group (query heads per KV head) accepted. */
export const MAX_GROUP_SIZE = 32;
/**
 * Default cap of one pool chunk (bytes); lowered to the device's binding limit. Each
 * (format, chunk) is one dispatch per call, so large chunks keep the dispatch count low.
 */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024 * 1024;
/** Page slots a new chunk starts with (it doubles as it fills). */
export const INITIAL_CHUNK_PAGES = 64;
/**
 * Default cap of split workgroups per dispatch (one dispatch per format and pool chunk,
 * over all lanes of the call). A dispatch of P pages gets
 * `min(targetSplits, max(MIN_SPLITS, ceil(P / PAGES_PER_SPLIT)))` splits, i.e. runs of
 * `ceil(P / splits)` pages, each lane's run list cut separately. Measured on an H100
 * (bench/webgpu.ts): 256 splits are best up to ~4K pages, 1024 from 16K pages on.
 */
export const DEFAULT_TARGET_SPLITS = 1024;
/** Fewest splits per dispatch (when it has that many pages): enough workgroups to fill a large GPU. */
export const MIN_SPLITS = 256;
/** Pages per split beyond which more splits are made (up to targetSplits). */
export const PAGES_PER_SPLIT = 16;
/** The merge kernel writes an lse at or below this for a head without live entries. */
const NO_ENTRY_LSE = -1e38;
/** Bytes of the two resolved timestamps of `timeAttend`. */
const TIMESTAMP_BYTES = 16;
/** Page-table caches kept (one per distinct lane list, e.g. one per layer). */
const PLAN_CACHE_SIZE = 256;

export interface WebGPUAttentionOptions extends WebGPUContextOptions {
  /** Share an existing context (device) instead of creating one. */
  context?: WebGPUContext;
  /** Head dimension d; one of `SUPPORTED_HEAD_DIMS`. */
  headDim: number;
  /** Query heads per KV head (GQA group size G), 1..32 (the WASM kernels' limit too). */
  groupSize: number;
  /** Channels per value quantization group of packed pages; default: the largest of 32, 16, 8 dividing headDim. */
  valueGroup?: number;
  /** Cap of one pool chunk in bytes; default 256 MiB, lowered to the device's limits. */
  chunkBytes?: number;
  /**
   * Most split workgroups per dispatch (all lanes of a call together; one dispatch per
   * format and pool chunk); default 1024. A dispatch of P pages gets
   * `min(targetSplits, max(256, ceil(P / 16)))` splits. More splits: more parallelism,
   * more partial records to merge.
   */
  targetSplits?: number;
  /** Kernel layout knobs (benchmarks); defaults are chosen per shape. */
  tuning?: AttentionTuning;
}

const ATTENTION_OPTIONS = ['gpu', 'device', 'powerPreference', 'onNotice', 'context', 'headDim', 'groupSize', 'valueGroup', 'chunkBytes', 'targetSplits', 'tuning'] as const;
const TUNING_OPTIONS = ['wordsPerThread', 'rowGroups', 'headsPerPass', 'prefetch'] as const;

interface Slot { format: Format; chunk: number; index: number; count: number; shared: boolean; freed: boolean }

/**
 * A page stored on the GPU by `createPage`, owned by the caller and placed in lanes with
 * `setLanePages` (one page may serve in any number of lanes). Opaque.
 */
export interface GpuPage { readonly format: Format; readonly count: number; /** Set by `freePage`. */ readonly freed: boolean }
interface Lane { pages: Slot[]; version: number }

class PagePool {
  readonly format: Format;
  readonly pageBytes: number;
  readonly maxPages: number;
  chunks: GpuBuffer[] = [];
  capacity: number[] = [];
  used: number[] = [];
  free: Array<[number, number]> = [];
  constructor(format: Format, pb: number, maxPages: number) {
    this.format = format;
    this.pageBytes = pb;
    this.maxPages = maxPages;
  }
  get allocatedBytes(): number {
    let n = 0;
    for (const c of this.capacity) n += c * this.pageBytes;
    return n;
  }
}

interface Dispatch { format: Format; chunk: number; splitOffset: number; numSplits: number }

/** Layouts and compiled pipelines shared by every WebGPUAttention on one device (keyed by shape). */
interface KernelCache { attnLayout: GpuBindGroupLayout; mergeLayout: GpuBindGroupLayout; pipelines: Map<string, Promise<GpuComputePipeline>> }
const kernelCaches = new WeakMap<GpuDevice, KernelCache>();

function kernelCache(device: GpuDevice): KernelCache {
  let c = kernelCaches.get(device);
  if (c) return c;
  const ro = { type: 'read-only-storage' as const };
  const attnLayout = device.createBindGroupLayout({
    label: 'edgekv-attention',
    entries: [
      { binding: 0, visibility: SHADER_STAGE_COMPUTE, buffer: ro },
      { binding: 1, visibility: SHADER_STAGE_COMPUTE, buffer: ro },
      { binding: 2, visibility: SHADER_STAGE_COMPUTE, buffer: ro },
      { binding: 3, visibility: SHADER_STAGE_COMPUTE, buffer: { type: 'storage' } },
      { binding: 4, visibility: SHADER_STAGE_COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
    ],
  });
  const mergeLayout = device.createBindGroupLayout({
    label: 'edgekv-merge',
    entries: [
      { binding: 0, visibility: SHADER_STAGE_COMPUTE, buffer: ro },
      { binding: 1, visibility: SHADER_STAGE_COMPUTE, buffer: ro },
      { binding: 2, visibility: SHADER_STAGE_COMPUTE, buffer: { type: 'storage' } },
      { binding: 3, visibility: SHADER_STAGE_COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
    ],
  });
  c = { attnLayout, mergeLayout, pipelines: new Map() };
  kernelCaches.set(device, c);
  return c;
}
interface Plan {
  versions: number[];
  /** `countEpoch` the entry counts in `data` correspond to. */
  epoch: number;
  /** The table as uploaded, and the slot of each (index, count) entry from word `entryStart`. */
  data: Uint32Array;
  slots: Slot[];
  entryStart: number;
  buffer: GpuBuffer; dispatches: Dispatch[]; mplanOffset: number; numPartials: number; bytes: number }

/** Validated options for the constructor. */
interface Shape { headDim: number; groupSize: number; valueGroup: number; chunkBytes: number; targetSplits: number; tuning: AttentionTuning }

/** Decode attention over GPU-resident paged lanes. Create with `createWebGPUAttention`. */
export class WebGPUAttention {
  readonly context: WebGPUContext;
  readonly headDim: number;
  readonly groupSize: number;
  readonly valueGroup: number;
  readonly targetSplits: number;
  /** Kernel layout knobs in use (empty: defaults per shape). */
  readonly tuning: Readonly<AttentionTuning>;
  private readonly device: GpuDevice;
  private readonly ownsContext: boolean;
  private readonly chunkBytes: number;
  private readonly pools = new Map<Format, PagePool>();
  private readonly lanes = new Map<number, Lane>();
  private nextLane = 1;
  private readonly pipelines: Map<string, Promise<GpuComputePipeline>>;
  private readonly attnLayout: GpuBindGroupLayout;
  private readonly mergeLayout: GpuBindGroupLayout;
  private readonly plans = new Map<string, Plan>();
  /** Bytes of live pages from `createPage`. */
  private sharedBytes = 0;
  /** Bumped when a shared page's count changes (cached plans hold counts). */
  private countEpoch = 0;
  private scratch: Record<'q' | 'partials' | 'result' | 'staging' | 'params', GpuBuffer | null> = { q: null, partials: null, result: null, staging: null, params: null };
  private pendingErrors: Array<Promise<GpuError | null>> = [];
  private failed: EdgeKVError | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  private destroyed = false;

  /** @internal use `createWebGPUAttention`. */
  constructor(context: WebGPUContext, shape: Shape, ownsContext: boolean) {
    this.context = context;
    this.device = context.device;
    this.headDim = shape.headDim;
    this.groupSize = shape.groupSize;
    this.valueGroup = shape.valueGroup;
    this.targetSplits = shape.targetSplits;
    this.tuning = Object.freeze({ ...shape.tuning });
    this.ownsContext = ownsContext;
    const lim = context.limits;
    this.chunkBytes = Math.min(shape.chunkBytes, lim.maxStorageBufferBindingSize, lim.maxBufferSize);
    for (const f of FORMATS) {
      const pb = pageBytes(f, this.headDim, this.valueGroup);
      const shapeF = { format: f, headDim: this.headDim, valueGroup: this.valueGroup, groupSize: this.groupSize };
      const need = attentionWorkgroupBytes(shapeF, this.tuning);
      const threads = attentionLayout(shapeF, this.tuning).WG;
      if (threads > lim.maxComputeInvocationsPerWorkgroup || threads > lim.maxComputeWorkgroupSizeX) {
        throw new EdgeKVError('E_UNSUPPORTED', `webgpu attention with headDim = ${this.headDim} (${f}) needs workgroups of ${threads} threads; this device allows ${Math.min(lim.maxComputeInvocationsPerWorkgroup, lim.maxComputeWorkgroupSizeX)}. Use the wasm-simd backend for this geometry`, 'headDim');
      }
      if (need > lim.maxComputeWorkgroupStorageSize) {
        throw new EdgeKVError('E_UNSUPPORTED', `webgpu attention with headDim = ${this.headDim} and groupSize = ${this.groupSize} needs ${need} bytes of workgroup memory; this device allows ${lim.maxComputeWorkgroupStorageSize}. Use the wasm-simd backend for this geometry`, 'groupSize');
      }
      const maxPages = Math.floor(this.chunkBytes / pb);
      if (maxPages < 1) throw new EdgeKVError('E_UNSUPPORTED', `a ${f} page (${pb} bytes) exceeds the device's buffer limit (${this.chunkBytes} bytes)`, 'chunkBytes');
      this.pools.set(f, new PagePool(f, pb, maxPages));
    }
    const cache = kernelCache(this.device);
    this.attnLayout = cache.attnLayout;
    this.mergeLayout = cache.mergeLayout;
    this.pipelines = cache.pipelines;
  }

  /** Name of this backend in the registry. */
  get backend(): 'webgpu' { return 'webgpu'; }

  /** Bytes of pages currently held: lanes' own pages (`writePage`) plus live `createPage` pages. */
  get bytesResident(): number {
    let n = 0;
    for (const lane of this.lanes.values()) for (const s of lane.pages) if (!s.shared) n += this.pools.get(s.format)!.pageBytes;
    return n + this.sharedBytes;
  }

  /** Bytes of GPU memory held by the page pools (>= bytesResident). */
  get poolBytes(): number {
    let n = 0;
    for (const p of this.pools.values()) n += p.allocatedBytes;
    return n;
  }

  /** Create an empty lane; returns its id. */
  createLane(): number {
    this.check('createLane');
    const id = this.nextLane++;
    this.lanes.set(id, { pages: [], version: 0 });
    return id;
  }

  /** Pages in a lane. */
  pageCount(lane: number): number {
    return this.lane('pageCount', lane).pages.length;
  }

  /** Entries in a lane (sum of its pages' counts). */
  entryCount(lane: number): number {
    let n = 0;
    for (const s of this.lane('entryCount', lane).pages) n += s.count;
    return n;
  }

  /**
   * Store one page at `index` of `lane` (`index == pageCount` appends; a smaller index
   * replaces that page). `bytes`: exactly `pageBytes(format, headDim, valueGroup)` bytes
   * in the layout of `src/formats.ts` (e.g. from the WASM `packPage`); `count`: valid
   * entries, 1..32. Only this page is written to the GPU.
   */
  writePage(lane: number, index: number, format: Format, bytes: Uint8Array, count: number): void {
    const l = this.lane('writePage', lane);
    checkInt('index', index, 0, l.pages.length);
    checkOneOf('format', format, FORMATS);
    const pool = this.pools.get(format)!;
    if (!(bytes instanceof Uint8Array)) throw argError('bytes', bytes, `a Uint8Array of ${pool.pageBytes} bytes (one ${format} page)`);
    if (bytes.length !== pool.pageBytes) throw shapeError('bytes', `${bytes.length} bytes`, `${pool.pageBytes} bytes: one ${format} page for headDim ${this.headDim}, valueGroup ${this.valueGroup}`);
    checkInt('count', count, 1, PAGE_TOKENS);
    let slot = index < l.pages.length ? l.pages[index] : undefined;
    if (slot && (slot.format !== format || slot.shared)) {
      this.release(slot);
      slot = undefined;
    }
    if (!slot) {
      const [chunk, idx] = this.allocate(pool);
      slot = { format, chunk, index: idx, count, shared: false, freed: false };
      if (index < l.pages.length) l.pages[index] = slot;
      else l.pages.push(slot);
    }
    slot.count = count;
    this.device.queue.writeBuffer(pool.chunks[slot.chunk], slot.index * pool.pageBytes, bytes);
    l.version++;
  }

  /**
   * Store one page that the caller owns, outside any lane: place it in lanes with
   * `setLanePages`, rewrite it with `updatePage`, release it with `freePage`. `bytes` and
   * `count` as for `writePage`. Only this page is written to the GPU.
   */
  createPage(format: Format, bytes: Uint8Array, count: number): GpuPage {
    this.check('createPage');
    checkOneOf('format', format, FORMATS);
    const pool = this.pools.get(format)!;
    this.checkPageBytes(pool, bytes, count);
    const [chunk, index] = this.allocate(pool);
    const slot: Slot = { format, chunk, index, count, shared: true, freed: false };
    this.sharedBytes += pool.pageBytes;
    this.device.queue.writeBuffer(pool.chunks[chunk], index * pool.pageBytes, bytes);
    return slot;
  }

  /**
   * Rewrite a page from `createPage` in place (same format). Lanes holding it see the
   * new contents and count on their next `attend`.
   */
  updatePage(page: GpuPage, bytes: Uint8Array, count: number): void {
    this.check('updatePage');
    const slot = this.sharedSlot('page', page);
    const pool = this.pools.get(slot.format)!;
    this.checkPageBytes(pool, bytes, count);
    if (slot.count !== count) { slot.count = count; this.countEpoch++; }
    this.device.queue.writeBuffer(pool.chunks[slot.chunk], slot.index * pool.pageBytes, bytes);
  }

  /** Release a page from `createPage`; it must no longer be in any lane used by `attend`. */
  freePage(page: GpuPage): void {
    const slot = this.sharedSlot('page', page);
    slot.freed = true;
    this.sharedBytes -= this.pools.get(slot.format)!.pageBytes;
    this.release(slot);
  }

  /**
   * Make `pages` (from `createPage`, in entry order) the contents of `lane`. Pages the
   * lane stored with `writePage` are released; the shared pages stay the caller's.
   * Only the lane's page table changes (8 bytes per page on the next `attend`).
   */
  setLanePages(lane: number, pages: readonly GpuPage[]): void {
    const l = this.lane('setLanePages', lane);
    if (!Array.isArray(pages)) throw argError('pages', pages, 'an array of pages from createPage()');
    const slots = pages.slice() as Slot[];
    // the name is built only for a page that fails (setLanePages runs per decode step)
    for (let i = 0; i < slots.length; i++) if (!this.isLiveShared(slots[i])) this.sharedSlot(`pages[${i}]`, slots[i]);
    for (const s of l.pages) if (!s.shared) this.release(s);
    l.pages = slots;
    l.version++;
  }

  /** Keep the first `pages` pages of `lane`, free the rest. */
  truncate(lane: number, pages: number): void {
    const l = this.lane('truncate', lane);
    checkInt('pages', pages, 0, l.pages.length);
    for (const s of l.pages.splice(pages)) if (!s.shared) this.release(s);
    l.version++;
  }

  /** Free a lane and its pages. */
  freeLane(lane: number): void {
    const l = this.lane('freeLane', lane);
    for (const s of l.pages) if (!s.shared) this.release(s);
    this.lanes.delete(lane);
  }

  /**
   * Pre-allocate room for `pages` more pages of `format`; rejects with `E_OOM` when the
   * GPU cannot hold them (nothing stored is lost).
   */
  async reserve(format: Format, pages: number): Promise<void> {
    this.check('reserve');
    checkOneOf('format', format, FORMATS);
    checkInt('pages', pages, 0, 2 ** 31 - 1);
    const pool = this.pools.get(format)!;
    let room = pool.free.length;
    for (let c = 0; c < pool.chunks.length; c++) room += pool.capacity[c] - pool.used[c];
    let need = pages - room;
    const last = pool.chunks.length - 1;
    if (need > 0 && last >= 0 && pool.capacity[last] < pool.maxPages) {
      const grow = Math.min(pool.maxPages, pool.capacity[last] + need);
      need -= grow - pool.capacity[last];
      this.growChunk(pool, last, grow);
    }
    while (need > 0) {
      const cap = Math.min(pool.maxPages, need);
      this.addChunk(pool, cap);
      need -= cap;
    }
    await this.flushErrors('reserve');
  }

  /**
   * Attention for several lanes in one submit. `lanes`: lane ids (a lane may repeat);
   * `q`: `[lanes.length][groupSize][headDim]` f32, finite; `scale`: logit scale, default
   * `1/sqrt(headDim)`. Returns `out [lanes][G][d]` and `lse [lanes][G]` (natural log;
   * -Infinity for a lane without entries, whose `out` is 0).
   */
  attend(lanes: readonly number[], q: Float32Array, scale?: number): Promise<AttentionResult> {
    this.check('attend');
    if (!Array.isArray(lanes) || lanes.length === 0) throw argError('lanes', lanes, 'a non-empty array of lane ids');
    for (let i = 0; i < lanes.length; i++) this.lane(`lanes[${i}]`, lanes[i]);
    const G = this.groupSize, d = this.headDim;
    checkF32('q', q, lanes.length * G * d);
    const sc = scale === undefined ? 1 / Math.sqrt(d) : checkNum('scale', scale, Number.MIN_VALUE, 1e6);
    const run = this.tail.then(() => this.run(lanes.slice(), q, sc, 1, true) as Promise<AttentionResult>);
    this.tail = run.catch(() => {});
    return run as Promise<AttentionResult>;
  }

  /**
   * Benchmark hook: encode `warmup + iterations` attention calls into one command buffer
   * (no read-back), submit it and return, for the `iterations` timed calls together, the
   * wall time from submit to completion in milliseconds (`wallMs`, all calls, encoding
   * not timed) and, where the device has the `'timestamp-query'` feature, the GPU time
   * from the start of the first timed call to the end of the last (`gpuMs`, else null).
   * The warm-up calls keep the GPU busy (and its clock up) right before the timed ones.
   */
  async timeAttend(lanes: readonly number[], q: Float32Array, iterations: number, scale?: number, warmup = 0): Promise<{ wallMs: number; gpuMs: number | null }> {
    await this.attend(lanes, q, scale);
    checkInt('iterations', iterations, 1, 1e6);
    checkInt('warmup', warmup, 0, 1e6);
    const sc = scale === undefined ? 1 / Math.sqrt(this.headDim) : scale;
    const run = this.tail.then(async () => (await this.run(lanes.slice(), q, sc, iterations, false, warmup)) as { wallMs: number; gpuMs: number | null });
    this.tail = run.catch(() => {});
    return run;
  }

  /**
   * Compile the kernels of `formats` (default: all) now, concurrently, instead of on the
   * first `attend` that needs them. Rejects with `E_BACKEND` if a kernel does not compile.
   */
  async warmUp(formats: readonly Format[] = FORMATS): Promise<void> {
    this.check('warmUp');
    for (const f of formats) checkOneOf('formats[]', f, FORMATS);
    await Promise.all([...formats, 'merge' as const].map((f) => this.pipeline(f)));
  }

  /** Release every GPU buffer (and the device if this object created it). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.pools.values()) for (const c of p.chunks) c.destroy();
    for (const p of this.plans.values()) p.buffer.destroy();
    for (const b of Object.values(this.scratch)) b?.destroy();
    if (this.timing) { this.timing.querySet.destroy(); this.timing.resolve.destroy(); this.timing.read.destroy(); }
    this.lanes.clear();
    if (this.ownsContext) this.context.destroy();
  }

  // ---------------------------------------------------------------------------

  private check(what: string): void {
    if (this.destroyed) throw new EdgeKVError('E_STATE', `${what}: this WebGPUAttention was destroyed`);
    this.context.check(what);
    if (this.failed) throw this.failed;
  }

  private lane(what: string, id: number): Lane {
    this.check(what);
    const l = this.lanes.get(id);
    if (!l) throw argError(what === 'pageCount' || what === 'entryCount' || what === 'writePage' || what === 'truncate' || what === 'freeLane' ? 'lane' : what, id, 'the id of a live lane from createLane()');
    return l;
  }

  private allocate(pool: PagePool): [number, number] {
    const f = pool.free.pop();
    if (f) return f;
    const last = pool.chunks.length - 1;
    if (last >= 0 && pool.used[last] < pool.capacity[last]) return [last, pool.used[last]++];
    if (last >= 0 && pool.capacity[last] < pool.maxPages) {
      this.growChunk(pool, last, Math.min(pool.maxPages, pool.capacity[last] * 2));
      return [last, pool.used[last]++];
    }
    this.addChunk(pool, Math.min(pool.maxPages, INITIAL_CHUNK_PAGES));
    const c = pool.chunks.length - 1;
    return [c, pool.used[c]++];
  }

  private checkPageBytes(pool: PagePool, bytes: Uint8Array, count: number): void {
    if (!(bytes instanceof Uint8Array)) throw argError('bytes', bytes, `a Uint8Array of ${pool.pageBytes} bytes (one ${pool.format} page)`);
    if (bytes.length !== pool.pageBytes) throw shapeError('bytes', `${bytes.length} bytes`, `${pool.pageBytes} bytes: one ${pool.format} page for headDim ${this.headDim}, valueGroup ${this.valueGroup}`);
    checkInt('count', count, 1, PAGE_TOKENS);
  }

  private sharedSlot(name: string, page: GpuPage): Slot {
    if (!this.isLiveShared(page)) throw argError(name, page, 'a live page from this object\'s createPage()');
    return page as Slot;
  }

  private isLiveShared(page: unknown): boolean {
    const s = page as Slot;
    return !!s && typeof s === 'object' && s.shared === true && !s.freed && this.pools.has(s.format);
  }

  private release(s: Slot): void {
    this.pools.get(s.format)!.free.push([s.chunk, s.index]);
  }

  private createTracked(size: number, usage: number, label: string): GpuBuffer {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    const b = this.device.createBuffer({ size, usage, label });
    this.pendingErrors.push(this.device.popErrorScope(), this.device.popErrorScope());
    return b;
  }

  private addChunk(pool: PagePool, pages: number): void {
    const b = this.createTracked(pages * pool.pageBytes, BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC, `edgekv-pool-${pool.format}`);
    pool.chunks.push(b);
    pool.capacity.push(pages);
    pool.used.push(0);
  }

  private growChunk(pool: PagePool, c: number, pages: number): void {
    const old = pool.chunks[c];
    const b = this.createTracked(pages * pool.pageBytes, BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC, `edgekv-pool-${pool.format}`);
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(old, 0, b, 0, pool.used[c] * pool.pageBytes);
    this.device.queue.submit([enc.finish()]);
    old.destroy();
    pool.chunks[c] = b;
    pool.capacity[c] = pages;
  }

  private async flushErrors(what: string): Promise<void> {
    if (this.pendingErrors.length === 0) return;
    const errs = await Promise.all(this.pendingErrors.splice(0));
    const e = errs.find((x) => x);
    if (e) {
      // a pool buffer could not be created: the pages written into it are not on the GPU
      this.failed = new EdgeKVError('E_OOM', `${what}: the GPU could not allocate a page pool buffer (${e.message}); the pages written since the last successful call are not resident. Free lanes, lower the budget, or use the wasm-simd backend`, 'device');
      throw this.failed;
    }
  }

  private scratchBuffer(name: 'q' | 'partials' | 'result' | 'staging' | 'params', size: number, usage: number): GpuBuffer {
    const cur = this.scratch[name];
    if (cur && cur.size >= size) return cur;
    cur?.destroy();
    const limit = name === 'staging' || name === 'params' ? this.context.limits.maxBufferSize : this.context.limits.maxStorageBufferBindingSize;
    if (size > limit) {
      throw new EdgeKVError('E_UNSUPPORTED', `attend: the ${name} buffer would need ${size} bytes, over this device's limit of ${limit}; attend fewer lanes per call or raise targetSplits' granularity`, name);
    }
    const b = this.createTracked(Math.max(size, 256), usage, `edgekv-${name}`);
    this.scratch[name] = b;
    return b;
  }

  private pipeline(format: Format | 'merge'): Promise<GpuComputePipeline> {
    const key = format === 'merge' ? `merge/${this.headDim}/${this.groupSize}` : `${format}/${this.headDim}/${this.valueGroup}/${this.groupSize}/${JSON.stringify(this.tuning)}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const code = format === 'merge' ? mergeShader(this.groupSize, this.headDim)
        : attentionShader({ format, headDim: this.headDim, valueGroup: this.valueGroup, groupSize: this.groupSize }, this.tuning);
      p = (async () => {
        this.device.pushErrorScope('validation');
        let pipe: GpuComputePipeline | null = null, thrown: unknown = null;
        try {
          const module = this.device.createShaderModule({ code, label: `edgekv-${format}` });
          const layout = this.device.createPipelineLayout({ bindGroupLayouts: [format === 'merge' ? this.mergeLayout : this.attnLayout] });
          const desc = { layout, compute: { module, entryPoint: 'main' }, label: `edgekv-${format}` };
          pipe = this.device.createComputePipelineAsync ? await this.device.createComputePipelineAsync(desc) : this.device.createComputePipeline(desc);
        } catch (e) {
          thrown = e;
        }
        const err = await this.device.popErrorScope();
        if (err || thrown || !pipe) {
          throw new EdgeKVError('E_BACKEND', `WGSL pipeline "${format}" (headDim ${this.headDim}, groupSize ${this.groupSize}) failed to compile: ${err?.message ?? (thrown as Error)?.message ?? 'unknown error'}`);
        }
        return pipe;
      })();
      this.pipelines.set(key, p);
      p.catch(() => this.pipelines.delete(key));
    }
    return p;
  }

  private plan(lanes: number[]): Plan {
    const key = lanes.join(',');
    const versions = lanes.map((id) => this.lanes.get(id)!.version);
    const cached = this.plans.get(key);
    if (cached && cached.versions.every((v, i) => v === versions[i])) {
      if (cached.epoch !== this.countEpoch) this.patchCounts(cached);
      return cached;
    }
    // group each lane's pages by (format, chunk): one dispatch per group. A group's runs are
    // `ceil(groupPages / splits)` pages long (splits: see DEFAULT_TARGET_SPLITS), so every
    // dispatch has about that many workgroups whatever the lane count; partials lane-major.
    type Group = { format: Format; chunk: number; splits: number[]; slots: Slot[]; pages: number; per: number };
    const groups = new Map<number, Group>();
    const laneGroups: Array<Map<number, Slot[]>> = [];
    for (const id of lanes) {
      const byGroup = new Map<number, Slot[]>();
      let lastKey = -1, arr: Slot[] = [], g: Group | undefined;
      for (const s of this.lanes.get(id)!.pages) {
        const k = FORMAT_INDEX[s.format] + FORMATS.length * s.chunk;
        if (k !== lastKey) { // pages of a lane come in long runs of one (format, chunk)
          lastKey = k;
          let a = byGroup.get(k);
          if (!a) byGroup.set(k, (a = []));
          arr = a;
          g = groups.get(k);
          if (!g) groups.set(k, (g = { format: s.format, chunk: s.chunk, splits: [], slots: [], pages: 0, per: 1 }));
        }
        arr.push(s);
        g!.pages++;
      }
      laneGroups.push(byGroup);
    }
    for (const g of groups.values()) {
      const splits = Math.min(this.targetSplits, Math.max(MIN_SPLITS, Math.ceil(g.pages / PAGES_PER_SPLIT)));
      g.per = Math.max(1, Math.ceil(g.pages / splits));
    }
    const mplan: number[] = [];
    let partial = 0;
    for (let li = 0; li < lanes.length; li++) {
      const first = partial;
      for (const [k, slots] of laneGroups[li]) {
        const g = groups.get(k)!;
        for (let i = 0; i < slots.length; i += g.per) {
          const n = Math.min(g.per, slots.length - i);
          g.splits.push(li, g.slots.length, n, partial++);
          for (let j = i; j < i + n; j++) g.slots.push(slots[j]);
        }
      }
      mplan.push(first, partial - first);
    }
    // layout: [splits of every group][entries (slot index, count) of every group][mplan]
    let words = 0, totalSlots = 0;
    for (const g of groups.values()) { words += g.splits.length; totalSlots += g.slots.length; }
    const entryStart = words;
    words += 2 * totalSlots;
    const mplanOffset = words;
    words += mplan.length;
    const data = new Uint32Array(Math.max(words, 4));
    const slots: Slot[] = new Array(totalSlots);
    const dispatches: Dispatch[] = [];
    let off = 0, base = entryStart, at = 0;
    for (const g of groups.values()) {
      for (let i = 0; i < g.splits.length; i += 4) {
        data[off + i] = g.splits[i];
        data[off + i + 1] = base + 2 * g.splits[i + 1];
        data[off + i + 2] = g.splits[i + 2];
        data[off + i + 3] = g.splits[i + 3];
      }
      for (const s of g.slots) {
        data[base++] = s.index;
        data[base++] = s.count;
        slots[at++] = s;
      }
      dispatches.push({ format: g.format, chunk: g.chunk, splitOffset: off, numSplits: g.splits.length / 4 });
      off += g.splits.length;
    }
    data.set(mplan, mplanOffset);
    const bytes = data.byteLength;
    if (bytes > this.context.limits.maxStorageBufferBindingSize) {
      throw new EdgeKVError('E_UNSUPPORTED', `attend: the page table for these lanes needs ${bytes} bytes, over this device's limit; attend fewer lanes per call`, 'lanes');
    }
    let buffer: GpuBuffer;
    if (cached && cached.buffer.size >= bytes) buffer = cached.buffer;
    else {
      cached?.buffer.destroy();
      buffer = this.createTracked(Math.max(256, bytes * (cached ? 2 : 1)), BufferUsage.STORAGE | BufferUsage.COPY_DST, 'edgekv-plan');
    }
    this.device.queue.writeBuffer(buffer, 0, data);
    const plan: Plan = { versions, epoch: this.countEpoch, buffer, data, slots, entryStart, dispatches, mplanOffset, numPartials: partial, bytes };
    this.plans.delete(key);
    this.plans.set(key, plan);
    if (this.plans.size > PLAN_CACHE_SIZE) {
      const [oldKey, old] = this.plans.entries().next().value as [string, Plan];
      old.buffer.destroy();
      this.plans.delete(oldKey);
    }
    return plan;
  }

  /**
   * Same pages, some counts changed (`updatePage`): rewrite just those entries of the
   * plan's table (a decode step grows one page per lane), not the whole plan.
   */
  private patchCounts(plan: Plan): void {
    const { data, slots, entryStart } = plan;
    let lo = -1, hi = -1;
    for (let i = 0; i < slots.length; i++) {
      const w = entryStart + 2 * i + 1, c = slots[i].count;
      if (data[w] !== c) {
        data[w] = c;
        if (lo < 0) lo = w;
        hi = w;
      }
    }
    if (lo >= 0) this.device.queue.writeBuffer(plan.buffer, 4 * lo, data, lo, hi - lo + 1);
    plan.epoch = this.countEpoch;
  }

  private timing: { querySet: GpuQuerySet; resolve: GpuBuffer; read: GpuBuffer } | null = null;

  /** Query set and buffers of the benchmark timer (created once). */
  private timer(): { querySet: GpuQuerySet; resolve: GpuBuffer; read: GpuBuffer } {
    if (!this.timing) {
      this.timing = {
        querySet: this.device.createQuerySet({ type: 'timestamp', count: 2, label: 'edgekv-timer' }),
        resolve: this.device.createBuffer({ size: 256, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC, label: 'edgekv-timer-resolve' }),
        read: this.device.createBuffer({ size: 256, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'edgekv-timer-read' }),
      };
    }
    return this.timing;
  }

  private grid(n: number): [number, number] {
    const maxX = this.context.limits.maxComputeWorkgroupsPerDimension;
    const x = Math.min(n, maxX);
    return [Math.max(1, x), Math.max(1, Math.ceil(n / Math.max(1, x)))];
  }

  private async run(lanes: number[], q: Float32Array, scale: number, iterations: number, readBack: boolean, warmup = 0): Promise<AttentionResult | { wallMs: number; gpuMs: number | null }> {
    this.check('attend');
    const G = this.groupSize, d = this.headDim;
    const plan = this.plan(lanes);
    const formats = [...new Set(plan.dispatches.map((x) => x.format))];
    const kinds: Array<Format | 'merge'> = [...formats, 'merge'];
    const compiled = await Promise.all(kinds.map((f) => this.pipeline(f)));
    const pipes = new Map<Format | 'merge', GpuComputePipeline>(kinds.map((f, i) => [f, compiled[i]]));
    this.check('attend');
    const dev = this.device;
    const outFloats = lanes.length * G * d, lseFloats = lanes.length * G;
    const resultBytes = 4 * (outFloats + lseFloats);
    const qb = this.scratchBuffer('q', q.byteLength, BufferUsage.STORAGE | BufferUsage.COPY_DST);
    const pb = this.scratchBuffer('partials', 4 * Math.max(1, plan.numPartials) * partialStride(G, d), BufferUsage.STORAGE);
    const rb = this.scratchBuffer('result', resultBytes, BufferUsage.STORAGE | BufferUsage.COPY_SRC);
    const params = this.scratchBuffer('params', PARAMS_STRIDE * (plan.dispatches.length + 1), BufferUsage.UNIFORM | BufferUsage.COPY_DST);
    const staging = readBack ? this.scratchBuffer('staging', resultBytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST) : null;
    await this.flushErrors('attend');
    dev.queue.writeBuffer(qb, 0, q);
    const pdata = new ArrayBuffer(PARAMS_STRIDE * (plan.dispatches.length + 1));
    const pu = new Uint32Array(pdata), pf = new Float32Array(pdata);
    const grids: Array<[number, number, number]> = [];
    plan.dispatches.forEach((x, i) => {
      const o = (i * PARAMS_STRIDE) / 4;
      const g = this.grid(x.numSplits);
      const headBlocks = attentionLayout({ format: x.format, headDim: d, valueGroup: this.valueGroup, groupSize: G }, this.tuning).HB;
      grids.push([g[0], g[1], headBlocks]);
      pu[o] = x.splitOffset; pu[o + 1] = x.numSplits; pf[o + 2] = scale; pu[o + 3] = g[0];
    });
    const mo = (plan.dispatches.length * PARAMS_STRIDE) / 4;
    const mg = this.grid(lanes.length * G * mergeLayout(d).NCH);
    pu[mo] = lanes.length; pu[mo + 1] = mg[0]; pu[mo + 2] = outFloats; pu[mo + 3] = plan.mplanOffset;
    dev.queue.writeBuffer(params, 0, pdata);
    const planBinding = { buffer: plan.buffer, offset: 0, size: Math.max(16, plan.bytes) };
    const paramsBinding = { buffer: params, offset: 0, size: 16 };
    const groups = plan.dispatches.map((x) => dev.createBindGroup({
      layout: this.attnLayout,
      entries: [
        { binding: 0, resource: { buffer: this.pools.get(x.format)!.chunks[x.chunk] } },
        { binding: 1, resource: planBinding },
        { binding: 2, resource: { buffer: qb, offset: 0, size: q.byteLength } },
        { binding: 3, resource: { buffer: pb } },
        { binding: 4, resource: paramsBinding },
      ],
    }));
    const mergeGroup = dev.createBindGroup({
      layout: this.mergeLayout,
      entries: [
        { binding: 0, resource: { buffer: pb } },
        { binding: 1, resource: { buffer: plan.buffer, offset: 0, size: Math.max(16, plan.bytes) } },
        { binding: 2, resource: { buffer: rb, offset: 0, size: resultBytes } },
        { binding: 3, resource: paramsBinding },
      ],
    });
    dev.pushErrorScope('validation');
    const enc = dev.createCommandEncoder({ label: 'edgekv-attend' });
    const timer = !readBack && dev.features.has('timestamp-query') ? this.timer() : null;
    const total = warmup + iterations;
    for (let it = 0; it < total; it++) {
      let pass;
      if (timer && (it === warmup || it === total - 1)) {
        const tw: GpuPassTimestampWrites = { querySet: timer.querySet };
        if (it === warmup) tw.beginningOfPassWriteIndex = 0;
        if (it === total - 1) tw.endOfPassWriteIndex = 1;
        pass = enc.beginComputePass({ timestampWrites: tw });
      } else pass = enc.beginComputePass();
      plan.dispatches.forEach((x, i) => {
        pass.setPipeline(pipes.get(x.format)!);
        pass.setBindGroup(0, groups[i], [i * PARAMS_STRIDE]);
        pass.dispatchWorkgroups(grids[i][0], grids[i][1], grids[i][2]);
      });
      pass.setPipeline(pipes.get('merge')!);
      pass.setBindGroup(0, mergeGroup, [mo * 4]);
      pass.dispatchWorkgroups(mg[0], mg[1]);
      pass.end();
    }
    if (staging) enc.copyBufferToBuffer(rb, 0, staging, 0, resultBytes);
    if (timer) {
      enc.resolveQuerySet(timer.querySet, 0, 2, timer.resolve, 0);
      enc.copyBufferToBuffer(timer.resolve, 0, timer.read, 0, TIMESTAMP_BYTES);
    }
    const commands = enc.finish();
    const t0 = performance.now();
    dev.queue.submit([commands]);
    const verr = dev.popErrorScope();
    if (!staging) {
      await dev.queue.onSubmittedWorkDone();
      const wallMs = performance.now() - t0;
      const e = await verr;
      if (e) throw new EdgeKVError('E_BACKEND', `attend: WebGPU validation error: ${e.message}`);
      this.check('attend');
      let gpuMs: number | null = null;
      if (timer) {
        await timer.read.mapAsync(MAP_MODE_READ, 0, TIMESTAMP_BYTES);
        const ts = new BigInt64Array(timer.read.getMappedRange(0, TIMESTAMP_BYTES).slice(0));
        timer.read.unmap();
        gpuMs = Number(ts[1] - ts[0]) / 1e6;
      }
      return { wallMs, gpuMs };
    }
    try {
      await staging.mapAsync(MAP_MODE_READ, 0, resultBytes);
    } catch (e) {
      this.check('attend');
      throw new EdgeKVError('E_BACKEND', `attend: reading the result back failed: ${(e as Error).message}`);
    }
    const e = await verr;
    if (e) { staging.unmap(); throw new EdgeKVError('E_BACKEND', `attend: WebGPU validation error: ${e.message}`); }
    const all = new Float32Array(staging.getMappedRange(0, resultBytes).slice(0));
    staging.unmap();
    const out = all.subarray(0, outFloats);
    const lse = all.subarray(outFloats, outFloats + lseFloats);
    for (let i = 0; i < lse.length; i++) if (lse[i] <= NO_ENTRY_LSE) lse[i] = -Infinity;
    return { out, lse };
  }
}

/**
 * Create a WebGPU attention backend. Throws `E_BACKEND` when WebGPU or an adapter is
 * missing (the registry in `backend.ts` turns that into a fallback with one notice),
 * `E_UNSUPPORTED` for a geometry the device cannot run, `E_ARG` for bad options.
 */
export async function createWebGPUAttention(options: WebGPUAttentionOptions): Promise<WebGPUAttention> {
  if (options === null || typeof options !== 'object') throw new EdgeKVError('E_ARG', `options must be an object, got ${options}`, 'options');
  checkKeys('options', options, ATTENTION_OPTIONS);
  const shape = validateShape(options);
  const chunkBytes = options.chunkBytes === undefined ? DEFAULT_CHUNK_BYTES : checkInt('options.chunkBytes', options.chunkBytes, 4096, 2 ** 53 - 1);
  const targetSplits = options.targetSplits === undefined ? DEFAULT_TARGET_SPLITS : checkInt('options.targetSplits', options.targetSplits, 1, 65535);
  const tuning = validateTuning(options.tuning);
  const own = !options.context;
  const ctx = options.context ?? await createWebGPUContext({ gpu: options.gpu, device: options.device, powerPreference: options.powerPreference, onNotice: options.onNotice });
  try {
    return new WebGPUAttention(ctx, { ...shape, chunkBytes, targetSplits, tuning }, own);
  } catch (e) {
    if (own) ctx.destroy();
    throw e;
  }
}

function validateTuning(t: AttentionTuning | undefined): AttentionTuning {
  if (t === undefined) return {};
  if (t === null || typeof t !== 'object') throw argError('options.tuning', t, 'an object { wordsPerThread?, rowGroups?, headsPerPass?, prefetch? }');
  checkKeys('options.tuning', t, TUNING_OPTIONS);
  const out: AttentionTuning = {};
  if (t.wordsPerThread !== undefined) out.wordsPerThread = checkOneOf('options.tuning.wordsPerThread', t.wordsPerThread, [1, 2, 4]);
  if (t.rowGroups !== undefined) out.rowGroups = checkOneOf('options.tuning.rowGroups', t.rowGroups, [1, 2, 4, 8, 16, 32]);
  if (t.headsPerPass !== undefined) out.headsPerPass = checkInt('options.tuning.headsPerPass', t.headsPerPass, 1, MAX_HEADS_PER_PASS);
  if (t.prefetch !== undefined) {
    if (typeof t.prefetch !== 'boolean') throw argError('options.tuning.prefetch', t.prefetch, 'true or false');
    out.prefetch = t.prefetch;
  }
  return out;
}

/** Default value group: the largest of 32, 16, 8 dividing headDim (as the cache does), e.g. 16 for headDim 80. */
export function defaultGroup(headDim: number): number {
  return VALUE_GROUP_CHOICES.find((g) => g <= headDim && headDim % g === 0) ?? defaultValueGroup(headDim);
}
/** Candidates for the default value group, best first. */
const VALUE_GROUP_CHOICES = [32, 16, 8];

/** Check headDim / groupSize / valueGroup; shared with the WASM paged backend. */
export function validateShape(options: { headDim: number; groupSize: number; valueGroup?: number }): { headDim: number; groupSize: number; valueGroup: number } {
  const headDim = checkOneOf('options.headDim', options.headDim, SUPPORTED_HEAD_DIMS as unknown as number[]);
  const groupSize = checkInt('options.groupSize', options.groupSize, 1, MAX_GROUP_SIZE);
  const valueGroup = options.valueGroup === undefined ? defaultGroup(headDim) : checkInt('options.valueGroup', options.valueGroup, 4, headDim);
  if (headDim % valueGroup !== 0 || valueGroup % 4 !== 0) {
    throw argError('options.valueGroup', valueGroup, `a multiple of 4 that divides headDim = ${headDim}`);
  }
  return { headDim, groupSize, valueGroup };
}

export { WORKGROUP_SIZE };

/**
 * `WebGPUMatvec`: `y = scale * W x` with W in IEEE binary16 resident on the GPU (uploaded
 * once), x and y f32 — the model runner's projections on a GPU device.
 *
 * One `WebGPUMatvec` holds one or more matrices that share the input x (a layer's Q, K
 * and V projections; gate and up): `run(x)` computes all of them in one submit with one
 * read-back and returns their outputs concatenated, `[sum of rows]`. Each matrix is cut
 * by rows into blocks of at most `maxBlockBytes` (default: the device's
 * `maxStorageBufferBindingSize`), one storage buffer and one dispatch per block, all in
 * the same compute pass; an odd column count is padded with a zero column on the GPU.
 * Each matrix has its own `scale`, applied to its f32 sums: weights stored multiplied by
 * 2^k (the runner's subnormal-free f16, `prepareF16Weights`) give exactly the WASM
 * kernels' `y` up to summation order.
 *
 * Create with `createWebGPUMatvec` (one matrix) or `createWebGPUMatvecGroup` (several);
 * the compiled kernel is shared by every matvec on a device.
 */
import { EdgeKVError, argError, checkF32, checkInt, checkKeys, shapeError } from '../errors.ts';
import { BufferUsage, MAP_MODE_READ, SHADER_STAGE_COMPUTE } from './gpu-types.ts';
import type { GpuBindGroup, GpuBuffer, GpuComputePipeline, GpuDevice } from './gpu-types.ts';
import { createWebGPUContext, WebGPUContext } from './device.ts';
import type { WebGPUContextOptions } from './device.ts';
import { matvecShader, PARAMS_STRIDE } from './wgsl.ts';

/** One matrix of a `WebGPUMatvec`. */
export interface MatvecMatrix {
  /** Output size (rows of W). */
  rows: number;
  /** W as binary16 bit patterns, row-major `[rows][cols]`; copied to the GPU at creation. */
  weights: Uint16Array;
  /** Multiplier of this matrix's outputs (`y = scale * W x`); finite, > 0. Default 1. */
  scale?: number;
  /** Name used in errors (e.g. the checkpoint tensor); default `matrices[i]`. */
  name?: string;
}

/** Options of `createWebGPUMatvecGroup`. */
export interface WebGPUMatvecGroupOptions extends WebGPUContextOptions {
  /** Context to create the buffers on; default: a new one (destroyed with the matvec). */
  context?: WebGPUContext;
  /** Input size (columns of every matrix). */
  cols: number;
  /** The matrices, at least one; their outputs are concatenated in this order. */
  matrices: MatvecMatrix[];
  /**
   * Largest weight block bound to one dispatch, in bytes; larger matrices are split by rows.
   * Default and maximum: the device's `maxStorageBufferBindingSize` (and `maxBufferSize`).
   */
  maxBlockBytes?: number;
}

/** Options of `createWebGPUMatvec` (one matrix). */
export interface WebGPUMatvecOptions extends WebGPUContextOptions {
  context?: WebGPUContext;
  /** Output size (rows of W). */
  rows: number;
  /** Input size (columns of W). */
  cols: number;
  /** W as binary16 bit patterns, row-major `[rows][cols]`. */
  weights: Uint16Array;
  /** Multiplier of the outputs; default 1. */
  scale?: number;
  /** See `WebGPUMatvecGroupOptions.maxBlockBytes`. */
  maxBlockBytes?: number;
}

const CONTEXT_KEYS = ['gpu', 'device', 'powerPreference', 'onNotice', 'optionalFeatures', 'context', 'maxBlockBytes'] as const;
const MATVEC_OPTIONS = [...CONTEXT_KEYS, 'rows', 'cols', 'weights', 'scale'] as const;
const GROUP_OPTIONS = [...CONTEXT_KEYS, 'cols', 'matrices'] as const;
const MATRIX_KEYS = ['rows', 'weights', 'scale', 'name'] as const;
/** Largest rows / cols accepted (2^24). */
const MAX_DIM = 1 << 24;
const F32_BYTES = 4;
const F16_BYTES = 2;
/** Bytes of one block's parameter record (`Params` in `matvecShader`). */
const PARAMS_BYTES = 32;

/** One dispatch: a row block of one matrix. */
interface Block {
  w: GpuBuffer;
  group: GpuBindGroup;
  grid: [number, number];
}

/** The compiled kernel, one per device. */
const pipelines = new WeakMap<GpuDevice, Promise<GpuComputePipeline>>();

async function compile(dev: GpuDevice): Promise<GpuComputePipeline> {
  dev.pushErrorScope('validation');
  const module = dev.createShaderModule({ code: matvecShader(), label: 'edgekv-matvec' });
  const ro = { type: 'read-only-storage' as const };
  const layout = dev.createBindGroupLayout({
    label: 'edgekv-matvec',
    entries: [
      { binding: 0, visibility: SHADER_STAGE_COMPUTE, buffer: ro },
      { binding: 1, visibility: SHADER_STAGE_COMPUTE, buffer: ro },
      { binding: 2, visibility: SHADER_STAGE_COMPUTE, buffer: { type: 'storage' } },
      { binding: 3, visibility: SHADER_STAGE_COMPUTE, buffer: { type: 'uniform' } },
    ],
  });
  const pipeline = dev.createComputePipeline({ layout: dev.createPipelineLayout({ bindGroupLayouts: [layout] }), compute: { module, entryPoint: 'main' }, label: 'edgekv-matvec' });
  const err = await dev.popErrorScope();
  if (err) throw new EdgeKVError('E_BACKEND', `WGSL matvec failed to compile: ${err.message}`);
  return pipeline;
}

function pipelineFor(dev: GpuDevice): Promise<GpuComputePipeline> {
  let p = pipelines.get(dev);
  if (!p) {
    p = compile(dev);
    pipelines.set(dev, p);
    p.catch(() => pipelines.delete(dev));
  }
  return p;
}

/** f16-weight matrix-vector products on the GPU. Create with `createWebGPUMatvec` / `createWebGPUMatvecGroup`. */
export class WebGPUMatvec {
  readonly context: WebGPUContext;
  /** Output size: the rows of all matrices. */
  readonly rows: number;
  /** Input size. */
  readonly cols: number;
  /** Rows of each matrix, in output order. */
  readonly matrixRows: readonly number[];
  /** Dispatches per `run` (row blocks over all matrices). */
  readonly blocks: number;
  /** Bytes of f16 weights on the GPU (odd column counts padded). */
  readonly weightBytes: number;
  private readonly x: GpuBuffer;
  private readonly y: GpuBuffer;
  private readonly staging: GpuBuffer;
  private readonly params: GpuBuffer;
  private readonly pipeline: GpuComputePipeline;
  private readonly parts: Block[] = [];
  private readonly ownsContext: boolean;
  private tail: Promise<unknown> = Promise.resolve();
  private destroyed = false;

  /** @internal use `createWebGPUMatvec` / `createWebGPUMatvecGroup` (they validate). */
  constructor(ctx: WebGPUContext, cols: number, matrices: MatvecMatrix[], blockRows: number[], pipeline: GpuComputePipeline, owns: boolean) {
    this.context = ctx;
    this.cols = cols;
    this.pipeline = pipeline;
    this.ownsContext = owns;
    this.matrixRows = Object.freeze(matrices.map((m) => m.rows));
    this.rows = this.matrixRows.reduce((a, b) => a + b, 0);
    const dev = ctx.device;
    const stride = cols + (cols & 1); // padded columns: two f16 per u32 word
    this.x = dev.createBuffer({ size: F32_BYTES * stride, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST, label: 'edgekv-matvec-x' });
    this.y = dev.createBuffer({ size: F32_BYTES * this.rows, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC, label: 'edgekv-matvec-y' });
    this.staging = dev.createBuffer({ size: F32_BYTES * this.rows, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'edgekv-matvec-read' });
    const nBlocks = matrices.reduce((n, m, i) => n + Math.ceil(m.rows / blockRows[i]), 0);
    this.params = dev.createBuffer({ size: PARAMS_STRIDE * nBlocks, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST, label: 'edgekv-matvec-params' });
    const maxX = ctx.limits.maxComputeWorkgroupsPerDimension;
    const record = new ArrayBuffer(PARAMS_BYTES);
    const u32 = new Uint32Array(record), f32 = new Float32Array(record);
    let yOffset = 0, bytes = 0;
    for (let i = 0; i < matrices.length; i++) {
      const m = matrices[i];
      for (let r0 = 0; r0 < m.rows; r0 += blockRows[i]) {
        const rows = Math.min(blockRows[i], m.rows - r0);
        let data = m.weights.subarray(r0 * cols, (r0 + rows) * cols);
        if (stride !== cols) {
          const padded = new Uint16Array(rows * stride);
          for (let r = 0; r < rows; r++) padded.set(data.subarray(r * cols, (r + 1) * cols), r * stride);
          data = padded;
        }
        const w = dev.createBuffer({ size: data.byteLength, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST, label: `edgekv-matvec-w-${m.name ?? i}` });
        dev.queue.writeBuffer(w, 0, data);
        bytes += data.byteLength;
        const gx = Math.min(rows, maxX);
        u32[0] = rows; u32[1] = stride; u32[2] = gx; u32[3] = yOffset + r0; f32[4] = m.scale ?? 1;
        const offset = PARAMS_STRIDE * this.parts.length;
        dev.queue.writeBuffer(this.params, offset, record);
        const group = dev.createBindGroup({
          layout: pipeline.getBindGroupLayout(0),
          label: 'edgekv-matvec',
          entries: [
            { binding: 0, resource: { buffer: w } },
            { binding: 1, resource: { buffer: this.x } },
            { binding: 2, resource: { buffer: this.y } },
            { binding: 3, resource: { buffer: this.params, offset, size: PARAMS_BYTES } },
          ],
        });
        this.parts.push({ w, group, grid: [gx, Math.ceil(rows / gx)] });
      }
      yOffset += m.rows;
    }
    this.blocks = this.parts.length;
    this.weightBytes = bytes;
  }

  /**
   * `y = [scale_0 W_0 x; scale_1 W_1 x; ...]`, `[rows]`; `x`: f32 `[cols]`, finite (WGSL leaves
   * arithmetic on NaN / Inf undefined). Written to `out` (`[rows]`, kept valid until the promise
   * settles) when given, else to a new array. `x` is copied at the call; calls queue in order.
   * Rejects with `E_BACKEND` when the device is lost, `E_STATE` after `destroy()`.
   */
  run(x: Float32Array, out?: Float32Array): Promise<Float32Array> {
    if (this.destroyed) throw new EdgeKVError('E_STATE', 'run: this WebGPUMatvec was destroyed');
    this.context.check('matvec');
    checkF32('x', x, this.cols);
    if (out !== undefined) checkF32('out', out, this.rows, false);
    const input = x.slice();
    const job = this.tail.then(async () => {
      if (this.destroyed) throw new EdgeKVError('E_STATE', 'run: this WebGPUMatvec was destroyed while the call was queued');
      this.context.check('matvec');
      const dev = this.context.device;
      dev.queue.writeBuffer(this.x, 0, input);
      const enc = dev.createCommandEncoder({ label: 'edgekv-matvec' });
      const pass = enc.beginComputePass();
      pass.setPipeline(this.pipeline);
      for (const b of this.parts) {
        pass.setBindGroup(0, b.group);
        pass.dispatchWorkgroups(b.grid[0], b.grid[1]);
      }
      pass.end();
      enc.copyBufferToBuffer(this.y, 0, this.staging, 0, F32_BYTES * this.rows);
      dev.queue.submit([enc.finish()]);
      try {
        await this.staging.mapAsync(MAP_MODE_READ);
      } catch (e) {
        this.context.check('matvec');
        throw new EdgeKVError('E_BACKEND', `matvec: read-back failed: ${(e as Error).message}`, 'device');
      }
      const y = out ?? new Float32Array(this.rows);
      y.set(new Float32Array(this.staging.getMappedRange(), 0, this.rows));
      this.staging.unmap();
      // A device lost while mapping may resolve the map with stale data: never return that.
      this.context.check('matvec');
      return y;
    });
    this.tail = job.catch(() => {});
    return job;
  }

  /** Free the GPU buffers (and the context, when this matvec created it). Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of this.parts) b.w.destroy();
    for (const b of [this.x, this.y, this.staging, this.params]) b.destroy();
    if (this.ownsContext) this.context.destroy();
  }
}

function checkScale(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw argError(name, v, 'a finite number > 0 (the multiplier of this matrix\'s outputs)');
  return v;
}

/**
 * Upload several matrices that share the input (same `cols`) and compile the kernel (once per
 * device). Errors: `E_ARG` / `E_SHAPE` on bad options, `E_UNSUPPORTED` naming the matrix
 * when one row does not fit a block or the outputs exceed the device's binding limit.
 */
export async function createWebGPUMatvecGroup(options: WebGPUMatvecGroupOptions): Promise<WebGPUMatvec> {
  if (options === null || typeof options !== 'object') throw argError('options', options, 'an object');
  checkKeys('options', options, GROUP_OPTIONS);
  const cols = checkInt('options.cols', options.cols, 1, MAX_DIM);
  if (!Array.isArray(options.matrices) || options.matrices.length === 0) throw argError('options.matrices', options.matrices, 'a non-empty array of { rows, weights, scale?, name? }');
  let totalRows = 0;
  const matrices = options.matrices.map((m, i): MatvecMatrix => {
    const at = `options.matrices[${i}]`;
    if (m === null || typeof m !== 'object') throw argError(at, m, 'an object { rows, weights, scale?, name? }');
    checkKeys(at, m, MATRIX_KEYS);
    const rows = checkInt(`${at}.rows`, m.rows, 1, MAX_DIM);
    if (!(m.weights instanceof Uint16Array)) throw argError(`${at}.weights`, m.weights, `a Uint16Array of rows * cols = ${rows * cols} binary16 values`);
    if (m.weights.length !== rows * cols) throw shapeError(`${at}.weights`, `length ${m.weights.length}`, `rows * cols = ${rows} * ${cols} = ${rows * cols}`);
    if (m.name !== undefined && typeof m.name !== 'string') throw argError(`${at}.name`, m.name, 'a string');
    totalRows += rows;
    return { rows, weights: m.weights, scale: checkScale(`${at}.scale`, m.scale ?? 1), name: m.name ?? at };
  });
  if (totalRows > MAX_DIM) throw argError('options.matrices', `${totalRows} rows in all`, `at most ${MAX_DIM} rows in all`);
  if (options.context !== undefined && !(options.context instanceof WebGPUContext)) throw argError('options.context', options.context, 'a WebGPUContext (createWebGPUContext)');
  const own = !options.context;
  const ctx = options.context ?? await createWebGPUContext({ gpu: options.gpu, device: options.device, powerPreference: options.powerPreference, onNotice: options.onNotice, optionalFeatures: options.optionalFeatures });
  try {
    ctx.check('matvec');
    const limit = Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
    const maxBlockBytes = options.maxBlockBytes === undefined ? limit : checkInt('options.maxBlockBytes', options.maxBlockBytes, F32_BYTES, limit);
    const rowBytes = F16_BYTES * (cols + (cols & 1));
    const blockRows = matrices.map((m) => {
      const n = Math.floor(maxBlockBytes / rowBytes);
      if (n < 1) {
        throw new EdgeKVError('E_UNSUPPORTED', `matvec: one row of ${JSON.stringify(m.name)} (${cols} f16 weights, ${rowBytes} bytes) exceeds the weight block limit of ${maxBlockBytes} bytes (device maxStorageBufferBindingSize ${ctx.limits.maxStorageBufferBindingSize}); keep this matrix on the WASM kernels`, m.name);
      }
      return Math.min(n, m.rows);
    });
    if (F32_BYTES * totalRows > limit) {
      throw new EdgeKVError('E_UNSUPPORTED', `matvec: ${totalRows} outputs (${F32_BYTES * totalRows} bytes) exceed this device's storage binding limit (${limit} bytes); use fewer matrices per group or the WASM kernels`, 'matrices');
    }
    const pipeline = await pipelineFor(ctx.device);
    ctx.device.pushErrorScope('out-of-memory');
    const mv = new WebGPUMatvec(ctx, cols, matrices, blockRows, pipeline, own);
    const oom = await ctx.device.popErrorScope();
    if (oom) {
      mv.destroy();
      throw new EdgeKVError('E_BACKEND', `matvec: the GPU is out of memory for ${matrices.map((m) => m.name).join(', ')} (${mv.weightBytes} bytes of f16 weights): ${oom.message}`, 'matrices');
    }
    return mv;
  } catch (e) {
    if (own) ctx.destroy();
    throw e;
  }
}

/** Upload one matrix `W [rows][cols]` and compile the kernel (once per device); see `createWebGPUMatvecGroup`. */
export async function createWebGPUMatvec(options: WebGPUMatvecOptions): Promise<WebGPUMatvec> {
  if (options === null || typeof options !== 'object') throw argError('options', options, 'an object');
  checkKeys('options', options, MATVEC_OPTIONS);
  const { rows, weights, scale, ...rest } = options;
  checkInt('options.rows', rows, 1, MAX_DIM);
  const cols = checkInt('options.cols', options.cols, 1, MAX_DIM);
  if (!(weights instanceof Uint16Array)) throw argError('options.weights', weights, `a Uint16Array of rows * cols = ${rows * cols} binary16 values`);
  if (weights.length !== rows * cols) throw shapeError('options.weights', `length ${weights.length}`, `rows * cols = ${rows} * ${cols} = ${rows * cols}`);
  if (scale !== undefined) checkScale('options.scale', scale);
  return createWebGPUMatvecGroup({ ...rest, matrices: [{ rows, weights, scale, name: 'weights' }] });
}

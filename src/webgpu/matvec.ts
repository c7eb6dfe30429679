/**
 * `WebGPUMatvec`: `y = W x` with W in IEEE binary16 resident on the GPU (uploaded
 * once), x and y f32, for the model runner's projections on a GPU device.
 */
import { EdgeKVError, argError, checkF32, checkInt, checkKeys } from '../errors.ts';
import { BufferUsage, MAP_MODE_READ, SHADER_STAGE_COMPUTE } from './gpu-types.ts';
import type { GpuBindGroup, GpuBuffer, GpuComputePipeline } from './gpu-types.ts';
import { createWebGPUContext, WebGPUContext } from './device.ts';
import type { WebGPUContextOptions } from './device.ts';
import { matvecShader } from './wgsl.ts';

export interface WebGPUMatvecOptions extends WebGPUContextOptions {
  context?: WebGPUContext;
  /** Output size (rows of W). */
  rows: number;
  /** Input size (columns of W); even. */
  cols: number;
  /** W as binary16 bit patterns, row-major `[rows][cols]`. */
  weights: Uint16Array;
}

const MATVEC_OPTIONS = ['gpu', 'device', 'powerPreference', 'onNotice', 'context', 'rows', 'cols', 'weights'] as const;
/** Largest rows / cols accepted (2^24). */
const MAX_DIM = 1 << 24;

/** f16-weight matrix-vector product on the GPU. Create with `createWebGPUMatvec`. */
export class WebGPUMatvec {
  readonly context: WebGPUContext;
  readonly rows: number;
  readonly cols: number;
  private readonly w: GpuBuffer;
  private readonly x: GpuBuffer;
  private readonly y: GpuBuffer;
  private readonly staging: GpuBuffer;
  private readonly params: GpuBuffer;
  private readonly pipeline: GpuComputePipeline;
  private readonly group: GpuBindGroup;
  private readonly grid: [number, number];
  private readonly ownsContext: boolean;
  private tail: Promise<unknown> = Promise.resolve();
  private destroyed = false;

  /** @internal use `createWebGPUMatvec`. */
  constructor(ctx: WebGPUContext, rows: number, cols: number, weights: Uint16Array, pipeline: GpuComputePipeline, owns: boolean) {
    this.context = ctx;
    this.rows = rows;
    this.cols = cols;
    this.pipeline = pipeline;
    this.ownsContext = owns;
    const dev = ctx.device;
    this.w = dev.createBuffer({ size: weights.byteLength, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST, label: 'edgekv-matvec-w' });
    dev.queue.writeBuffer(this.w, 0, weights);
    this.x = dev.createBuffer({ size: 4 * cols, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST, label: 'edgekv-matvec-x' });
    this.y = dev.createBuffer({ size: 4 * rows, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC, label: 'edgekv-matvec-y' });
    this.staging = dev.createBuffer({ size: 4 * rows, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'edgekv-matvec-read' });
    this.params = dev.createBuffer({ size: 16, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST, label: 'edgekv-matvec-params' });
    const maxX = ctx.limits.maxComputeWorkgroupsPerDimension;
    this.grid = [Math.min(rows, maxX), Math.ceil(rows / Math.min(rows, maxX))];
    dev.queue.writeBuffer(this.params, 0, new Uint32Array([rows, cols, this.grid[0], 0]));
    this.group = dev.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: this.w } },
        { binding: 1, resource: { buffer: this.x } },
        { binding: 2, resource: { buffer: this.y } },
        { binding: 3, resource: { buffer: this.params } },
      ],
    });
  }

  /** `y[rows] = W x`; `x`: f32 `[cols]`, finite. */
  run(x: Float32Array): Promise<Float32Array> {
    if (this.destroyed) throw new EdgeKVError('E_STATE', 'run: this WebGPUMatvec was destroyed');
    this.context.check('matvec');
    checkF32('x', x, this.cols);
    const job = this.tail.then(async () => {
      const dev = this.context.device;
      dev.queue.writeBuffer(this.x, 0, x);
      const enc = dev.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(this.pipeline);
      pass.setBindGroup(0, this.group);
      pass.dispatchWorkgroups(this.grid[0], this.grid[1]);
      pass.end();
      enc.copyBufferToBuffer(this.y, 0, this.staging, 0, 4 * this.rows);
      dev.queue.submit([enc.finish()]);
      try {
        await this.staging.mapAsync(MAP_MODE_READ);
      } catch (e) {
        this.context.check('matvec');
        throw new EdgeKVError('E_BACKEND', `matvec: read-back failed: ${(e as Error).message}`);
      }
      const y = new Float32Array(this.staging.getMappedRange().slice(0));
      this.staging.unmap();
      return y;
    });
    this.tail = job.catch(() => {});
    return job;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of [this.w, this.x, this.y, this.staging, this.params]) b.destroy();
    if (this.ownsContext) this.context.destroy();
  }
}

/** Upload `weights` once and compile the kernel. `E_UNSUPPORTED` when W exceeds the device's binding limit. */
export async function createWebGPUMatvec(options: WebGPUMatvecOptions): Promise<WebGPUMatvec> {
  if (options === null || typeof options !== 'object') throw new EdgeKVError('E_ARG', `options must be an object, got ${options}`, 'options');
  checkKeys('options', options, MATVEC_OPTIONS);
  const rows = checkInt('options.rows', options.rows, 1, MAX_DIM);
  const cols = checkInt('options.cols', options.cols, 2, MAX_DIM);
  if (cols % 2 !== 0) throw argError('options.cols', cols, 'an even number (two f16 weights per 32-bit word)');
  if (!(options.weights instanceof Uint16Array)) throw argError('options.weights', options.weights, `a Uint16Array of ${rows * cols} binary16 values`);
  if (options.weights.length !== rows * cols) throw new EdgeKVError('E_SHAPE', `options.weights has length ${options.weights.length}; expected rows * cols = ${rows * cols}`, 'options.weights');
  const own = !options.context;
  const ctx = options.context ?? await createWebGPUContext({ gpu: options.gpu, device: options.device, powerPreference: options.powerPreference, onNotice: options.onNotice });
  try {
    const bytes = 2 * rows * cols;
    if (bytes > ctx.limits.maxStorageBufferBindingSize) {
      throw new EdgeKVError('E_UNSUPPORTED', `matvec weights of ${bytes} bytes exceed this device's storage binding limit (${ctx.limits.maxStorageBufferBindingSize}); split W by rows or use the WASM kernels`, 'weights');
    }
    const dev = ctx.device;
    dev.pushErrorScope('validation');
    const module = dev.createShaderModule({ code: matvecShader(), label: 'edgekv-matvec' });
    const ro = { type: 'read-only-storage' as const };
    const layout = dev.createBindGroupLayout({
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
    return new WebGPUMatvec(ctx, rows, cols, options.weights, pipeline, own);
  } catch (e) {
    if (own) ctx.destroy();
    throw e;
  }
}

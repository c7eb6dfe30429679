/**
 * WebGPU adapter / device setup shared by the WebGPU kernels.
 *
 * `createWebGPUContext()` finds `navigator.gpu` (browsers, Deno with
 * `--unstable-webgpu`) or takes `options.gpu` (Node: `create([])` from the `webgpu`
 * package), asks for a high-performance adapter and a device whose storage-buffer
 * limits are raised to what the adapter allows, and watches `device.lost`. After a
 * loss every call on the context throws `E_BACKEND` (the GPU copy of the KV is gone).
 */
import { EdgeKVError, checkKeys, checkOneOf } from '../errors.ts';
import type { Gpu, GpuAdapter, GpuDevice, GpuDeviceLostInfo, GpuLimits } from './gpu-types.ts';

/** Limits raised to the adapter's maximum when edgekv creates the device. */
const RAISED_LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize'] as const;

export interface WebGPUContextOptions {
  /** The `GPU` object; default `globalThis.navigator.gpu`. In Node pass `create([])` from the `webgpu` package. */
  gpu?: Gpu;
  /** Use this device instead of requesting one (the caller keeps ownership; `destroy()` will not destroy it). */
  device?: GpuDevice;
  /** Adapter preference; default `'high-performance'`. */
  powerPreference?: 'high-performance' | 'low-power';
  /** Called once per event worth knowing (device lost). Default: `console.warn`. */
  onNotice?: (message: string) => void;
  /** Device features requested when the adapter has them (e.g. `'timestamp-query'` for benchmarks); default none. */
  optionalFeatures?: string[];
}

const CONTEXT_OPTIONS = ['gpu', 'device', 'powerPreference', 'onNotice', 'optionalFeatures'] as const;

/** Description of the adapter, for reports (`bench/webgpu.ts` writes it to JSON). */
export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

/** One WebGPU device plus its state; share one context between several kernels. */
export class WebGPUContext {
  readonly device: GpuDevice;
  readonly adapter: AdapterDescription;
  /** The device's limits (after raising). */
  readonly limits: GpuLimits;
  /** Set when the device was lost; every later call throws `E_BACKEND`. */
  lostInfo: GpuDeviceLostInfo | null = null;
  private readonly ownsDevice: boolean;
  private destroyed = false;
  private readonly lostListeners: Array<(info: GpuDeviceLostInfo) => void> = [];

  constructor(device: GpuDevice, adapter: AdapterDescription, ownsDevice: boolean, notice: (m: string) => void) {
    this.device = device;
    this.adapter = adapter;
    this.limits = device.limits;
    this.ownsDevice = ownsDevice;
    device.lost.then((info) => {
      this.lostInfo = info ?? { reason: 'unknown', message: '' };
      if (!this.destroyed) notice(`the WebGPU device was lost (${this.lostInfo.reason}${this.lostInfo.message ? `: ${this.lostInfo.message}` : ''}); GPU-resident KV is gone`);
      for (const f of this.lostListeners) f(this.lostInfo);
    }, () => {});
  }

  /** Register a callback for device loss (called once); returns a function that unregisters it. */
  onLost(f: (info: GpuDeviceLostInfo) => void): () => void {
    if (this.lostInfo) { f(this.lostInfo); return () => {}; }
    this.lostListeners.push(f);
    return () => {
      const i = this.lostListeners.indexOf(f);
      if (i >= 0) this.lostListeners.splice(i, 1);
    };
  }

  /** Throws `E_STATE` after `destroy()` and `E_BACKEND` after a device loss. */
  check(what: string): void {
    if (this.destroyed) throw new EdgeKVError('E_STATE', `${what}: the WebGPU context was destroyed`);
    if (this.lostInfo) {
      throw new EdgeKVError('E_BACKEND', `${what}: the WebGPU device was lost (reason "${this.lostInfo.reason}"${this.lostInfo.message ? `: ${this.lostInfo.message}` : ''}); the KV held on the GPU is gone. Create a new context and upload the lanes again, or use the wasm-simd backend`, 'device');
    }
  }

  get isLost(): boolean { return this.lostInfo !== null; }

  /** Release the device (if this context created it). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.ownsDevice) this.device.destroy();
  }
}

function describe(adapter: GpuAdapter): AdapterDescription {
  const i = adapter.info ?? {};
  return { vendor: i.vendor ?? '', architecture: i.architecture ?? '', device: i.device ?? '', description: i.description ?? '' };
}

/** The runtime's `navigator.gpu`, or undefined. */
export function defaultGpu(): Gpu | undefined {
  const nav = (globalThis as { navigator?: { gpu?: Gpu } }).navigator;
  return nav?.gpu ?? undefined;
}

/**
 * Create a WebGPU context. Throws `E_BACKEND` (with the reason and the fix) when the
 * runtime has no WebGPU or no adapter; callers that can fall back catch it.
 */
export async function createWebGPUContext(options: WebGPUContextOptions = {}): Promise<WebGPUContext> {
  if (options === null || typeof options !== 'object') throw new EdgeKVError('E_ARG', `options must be an object, got ${options}`, 'options');
  checkKeys('options', options, CONTEXT_OPTIONS);
  const notice = options.onNotice ?? ((m: string) => console.warn(`[edgekv] ${m}`));
  if (options.device) {
    const d = options.device;
    if (typeof d.createBuffer !== 'function' || !d.queue) throw new EdgeKVError('E_ARG', 'options.device is not a GPUDevice', 'device');
    return new WebGPUContext(d, { vendor: '', architecture: '', device: '', description: 'caller-provided device' }, false, notice);
  }
  const pref = checkOneOf('options.powerPreference', options.powerPreference ?? 'high-performance', ['high-performance', 'low-power'] as const);
  const gpu = options.gpu ?? defaultGpu();
  if (!gpu || typeof gpu.requestAdapter !== 'function') {
    throw new EdgeKVError('E_BACKEND', 'WebGPU is not available: navigator.gpu is undefined (browsers: a secure context with WebGPU enabled; Deno: --unstable-webgpu; Node: pass options.gpu = create([]) from the "webgpu" package)', 'gpu');
  }
  let adapter: GpuAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: pref });
  } catch (e) {
    throw new EdgeKVError('E_BACKEND', `WebGPU: requestAdapter failed: ${(e as Error).message}`, 'gpu');
  }
  if (!adapter) {
    throw new EdgeKVError('E_BACKEND', 'WebGPU: no adapter (no GPU, or no driver the runtime accepts; Node + "webgpu" on a machine without a GPU needs VK_ICD_FILENAMES pointing at SwiftShader)', 'gpu');
  }
  const requiredLimits: Record<string, number> = {};
  for (const k of RAISED_LIMITS) {
    const v = adapter.limits[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  let device: GpuDevice;
  try {
    const requiredFeatures = (options.optionalFeatures ?? []).filter((f) => typeof f === 'string' && adapter!.features.has(f));
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'edgekv' });
  } catch (e) {
    throw new EdgeKVError('E_BACKEND', `WebGPU: requestDevice failed: ${(e as Error).message}`, 'gpu');
  }
  return new WebGPUContext(device, describe(adapter), true, notice);
}

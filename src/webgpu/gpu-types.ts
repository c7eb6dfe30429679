/**
 * The small part of the WebGPU API that edgekv uses, as structural types.
 *
 * TypeScript's DOM library does not declare WebGPU, and edgekv takes no runtime or
 * type dependency for it: any object with these members works (the browser's
 * `navigator.gpu`, Deno's, the `webgpu` npm package's `create([])`). A real
 * `GPUDevice` from `@webgpu/types` is assignable to `GpuDevice`.
 */

/** `GPUBufferUsage` flag values (fixed by the WebGPU specification). */
export const BufferUsage = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  INDEX: 0x0010,
  VERTEX: 0x0020,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
  INDIRECT: 0x0100,
  QUERY_RESOLVE: 0x0200,
} as const;

/** `GPUMapMode.READ`. */
export const MAP_MODE_READ = 0x0001;

export interface GpuLimits {
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxStorageBuffersPerShaderStage: number;
  readonly minUniformBufferOffsetAlignment: number;
  readonly minStorageBufferOffsetAlignment: number;
  readonly [name: string]: unknown;
}

export interface GpuAdapterInfo {
  readonly vendor?: string;
  readonly architecture?: string;
  readonly device?: string;
  readonly description?: string;
}

export interface Gpu {
  requestAdapter(options?: { powerPreference?: 'low-power' | 'high-performance'; forceFallbackAdapter?: boolean }): Promise<GpuAdapter | null>;
}

export interface GpuAdapter {
  readonly limits: GpuLimits;
  readonly features: { has(name: string): boolean };
  readonly info?: GpuAdapterInfo;
  requestDevice(descriptor?: { requiredLimits?: Record<string, number>; requiredFeatures?: string[]; label?: string }): Promise<GpuDevice>;
}

export interface GpuBuffer {
  readonly size: number;
  mapAsync(mode: number, offset?: number, size?: number): Promise<void>;
  getMappedRange(offset?: number, size?: number): ArrayBuffer;
  unmap(): void;
  destroy(): void;
}

export interface GpuDeviceLostInfo {
  readonly reason: string;
  readonly message: string;
}

export interface GpuError {
  readonly message: string;
}

export interface GpuShaderModule {
  getCompilationInfo?(): Promise<{ messages: ReadonlyArray<{ type: string; message: string; lineNum: number; linePos: number }> }>;
}

export interface GpuBindGroupLayout { readonly __brand?: 'GpuBindGroupLayout' }
export interface GpuBindGroup { readonly __brand?: 'GpuBindGroup' }
export interface GpuPipelineLayout { readonly __brand?: 'GpuPipelineLayout' }

export interface GpuComputePipeline {
  getBindGroupLayout(index: number): GpuBindGroupLayout;
}

export interface GpuComputePass {
  setPipeline(pipeline: GpuComputePipeline): void;
  setBindGroup(index: number, group: GpuBindGroup, dynamicOffsets?: number[]): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
  end(): void;
}

export interface GpuCommandBuffer { readonly __brand?: 'GpuCommandBuffer' }

export interface GpuQuerySet { destroy(): void }

/** Timestamps written at the start and/or end of a pass (feature 'timestamp-query'). */
export interface GpuPassTimestampWrites {
  querySet: GpuQuerySet;
  beginningOfPassWriteIndex?: number;
  endOfPassWriteIndex?: number;
}

export interface GpuCommandEncoder {
  beginComputePass(descriptor?: { label?: string; timestampWrites?: GpuPassTimestampWrites }): GpuComputePass;
  copyBufferToBuffer(src: GpuBuffer, srcOffset: number, dst: GpuBuffer, dstOffset: number, size: number): void;
  resolveQuerySet(querySet: GpuQuerySet, firstQuery: number, queryCount: number, destination: GpuBuffer, destinationOffset: number): void;
  finish(): GpuCommandBuffer;
}

export interface GpuQueue {
  writeBuffer(buffer: GpuBuffer, offset: number, data: ArrayBufferView | ArrayBuffer, dataOffset?: number, size?: number): void;
  submit(buffers: GpuCommandBuffer[]): void;
  onSubmittedWorkDone(): Promise<void>;
}

export interface GpuBindGroupEntry {
  binding: number;
  resource: { buffer: GpuBuffer; offset?: number; size?: number };
}

export interface GpuDevice {
  readonly limits: GpuLimits;
  readonly features: { has(name: string): boolean };
  readonly queue: GpuQueue;
  readonly lost: Promise<GpuDeviceLostInfo>;
  createBuffer(descriptor: { size: number; usage: number; mappedAtCreation?: boolean; label?: string }): GpuBuffer;
  createShaderModule(descriptor: { code: string; label?: string }): GpuShaderModule;
  createBindGroupLayout(descriptor: { entries: Array<{ binding: number; visibility: number; buffer: { type: 'uniform' | 'storage' | 'read-only-storage'; hasDynamicOffset?: boolean } }>; label?: string }): GpuBindGroupLayout;
  createPipelineLayout(descriptor: { bindGroupLayouts: GpuBindGroupLayout[]; label?: string }): GpuPipelineLayout;
  createComputePipeline(descriptor: { layout: GpuPipelineLayout | 'auto'; compute: { module: GpuShaderModule; entryPoint: string }; label?: string }): GpuComputePipeline;
  createComputePipelineAsync?(descriptor: { layout: GpuPipelineLayout | 'auto'; compute: { module: GpuShaderModule; entryPoint: string }; label?: string }): Promise<GpuComputePipeline>;
  createBindGroup(descriptor: { layout: GpuBindGroupLayout; entries: GpuBindGroupEntry[]; label?: string }): GpuBindGroup;
  createCommandEncoder(descriptor?: { label?: string }): GpuCommandEncoder;
  createQuerySet(descriptor: { type: 'timestamp'; count: number; label?: string }): GpuQuerySet;
  pushErrorScope(filter: 'validation' | 'out-of-memory' | 'internal'): void;
  popErrorScope(): Promise<GpuError | null>;
  destroy(): void;
}

/** `GPUShaderStage.COMPUTE`. */
export const SHADER_STAGE_COMPUTE = 0x4;

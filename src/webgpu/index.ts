/**
 * The WebGPU backend: decode attention over GPU-resident paged lanes, an f16 matvec,
 * the backend registry with fallback, and the TypeScript page codec.
 */
export { createWebGPUContext, WebGPUContext, defaultGpu } from './device.ts';
export type { WebGPUContextOptions, AdapterDescription } from './device.ts';
export { createWebGPUAttention, WebGPUAttention, MAX_GROUP_SIZE, DEFAULT_TARGET_SPLITS, DEFAULT_CHUNK_BYTES, MIN_SPLITS, PAGES_PER_SPLIT } from './attention.ts';
export type { WebGPUAttentionOptions, GpuPage } from './attention.ts';
export { createWebGPUMatvec, createWebGPUMatvecGroup, WebGPUMatvec } from './matvec.ts';
export type { WebGPUMatvecOptions, WebGPUMatvecGroupOptions, MatvecMatrix } from './matvec.ts';
export { findGpu } from './find.ts';
export { createPagedAttention, PAGED_BACKENDS, WasmPagedAttention, ReferencePagedAttention, MirroredPagedAttention } from './backend.ts';
export type { PagedAttention, PagedAttentionOptions, PagedBackendName } from './backend.ts';
export { encodePage, decodePage, referenceAttention, halfToFloat, floatToHalf } from './pagecodec.ts';
export type { DecodedPage, AttentionResult } from './pagecodec.ts';
export type { Gpu, GpuDevice, GpuAdapter } from './gpu-types.ts';

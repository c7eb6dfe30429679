/** edgekv: KV-cache compression for language models on edge CPUs, browsers and edge workers. */
export { createEngine, detectSimd, Engine } from './engine.ts';
export type { EngineOptions, BackendName, WasmSource } from './engine.ts';
export { EdgeKVError } from './errors.ts';
export type { EdgeKVErrorCode } from './errors.ts';
export { FORMATS, PAGE_TOKENS, pageBytes } from './formats.ts';
/** Validated wrappers over the basic kernels (f16 encode/decode, dot, axpy, scale, fwht, gather/compact, Hamming rows). */
export * as ops from './ops/basic.ts';
/** Validated decode attention over paged KV in any storage format (packLane, attend, PagedLane). */
export * as attention from './ops/attention.ts';
export type { Format } from './formats.ts';
export { KVCache, createCache } from './cache/cache.ts';
export { loadCache, SNAPSHOT_VERSION } from './cache/snapshot.ts';
export type { LoadOptions } from './cache/snapshot.ts';
export type { AttendOptions, CacheStats, LaneStats, CacheBackend, CacheWebGPUOptions } from './cache/cache.ts';
export type { MirrorStats } from './cache/gpu.ts';
export type { CacheOptions, LaneBudget, ResolvedOptions } from './cache/options.ts';
export { registerPolicy, registerStage, policyNames } from './policies/registry.ts';
export type { Policy, PolicyFactory, PolicyContext, Plan, Stage, StageFactory } from './policies/types.ts';
export { createWebGPUAttention, WebGPUAttention, createWebGPUContext, WebGPUContext, createWebGPUMatvec, createWebGPUMatvecGroup, WebGPUMatvec, findGpu, createPagedAttention, PAGED_BACKENDS, encodePage, decodePage } from './webgpu/index.ts';
export type { WebGPUAttentionOptions, WebGPUContextOptions, WebGPUMatvecOptions, WebGPUMatvecGroupOptions, MatvecMatrix, GpuPage, PagedAttention, PagedAttentionOptions, PagedBackendName, AttentionResult } from './webgpu/index.ts';
/** Llama-family model runner on the WASM kernels (safetensors, tokenizer.json, forward, generate, verify). */
export { loadModel, LlamaModel } from './model/llama.ts';
export type { LoadModelOptions, ForwardOptions, GenerateOptions, GenerateResult, UseWebGPUOptions } from './model/llama.ts';
export { ExactAttention } from './model/exact-attention.ts';
export type { AttentionBackend, AttentionGeometry } from './model/types.ts';
export { Tokenizer } from './model/tokenizer.ts';
export { verifyModel } from './model/verify.ts';
export { modelFiles, resolveModelDir } from './model/paths.ts';
export type { ModelFiles } from './model/paths.ts';
export { profileModel } from './profile/profile.ts';
export { validateProfile } from './profile/schema.ts';
export type { Profile } from './profile/schema.ts';
export { quantizedTable } from './budget/quantized.ts';

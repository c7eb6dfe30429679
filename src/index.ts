/** edgekv: KV-cache compression for language models on edge CPUs, browsers and edge workers. */
export { createEngine, detectSimd, Engine } from './engine.ts';
export type { EngineOptions, BackendName, WasmSource } from './engine.ts';
export { EdgeKVError } from './errors.ts';
export type { EdgeKVErrorCode } from './errors.ts';
export { FORMATS, PAGE_TOKENS, pageBytes } from './formats.ts';
export type { Format } from './formats.ts';

// Every kernel export, one list (tests and benches iterate src/kernels.ts's catalogue).
// One source, two builds: `--target simd` and `--target scalar` (ASC_FEATURE_SIMD).
export { pageBytes } from './kernels/layout';
export { f16ToF32, f32ToF16 } from './kernels/f16';
export { dotF32, dotF16, axpyF32, axpyF16, scaleF32, scaleF16 } from './kernels/vec';
export { fwht } from './kernels/fwht';
export { gatherRows, compactRows } from './kernels/gather';
export { hammingRows } from './kernels/popcount';
export { quantKeys, dequantKeys, quantValues, dequantValues, qdotKeys, qaxpyValues, packPage, unpackPage } from './kernels/quant';
export { attnInit, attendPages, attnFinish, probsFromLogits } from './kernels/attention';
export * from './kernels/matmul';
export { walkBlock, walkGram, walkExp, walkRandom, walkScratchBytes } from './kernels/walk';

/** First byte the host's arena may use (after static data). */
export function heapBase(): usize { return __heap_base; }
/** 1 in the SIMD build, 0 in the scalar build. */
export function hasSimd(): i32 { return ASC_FEATURE_SIMD ? 1 : 0; }

/**
 * The raw WebAssembly exports (pointers are byte offsets into `memory`). The host
 * validates everything before calling these; kernels assume valid input.
 * Keep in step with assembly/index.ts.
 */
export interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  hasSimd(): number;
  pageBytes(format: number, d: number, vg: number): number;
  f16ToF32(src: number, dst: number, n: number): void;
  f32ToF16(src: number, dst: number, n: number): void;
  dotF32(a: number, b: number, n: number): number;
  dotF16(a: number, b: number, n: number): number;
  axpyF32(alpha: number, x: number, y: number, n: number): void;
  axpyF16(alpha: number, x: number, y: number, n: number): void;
  scaleF32(alpha: number, x: number, n: number): void;
  scaleF16(alpha: number, x: number, n: number): void;
  fwht(x: number, n: number, count: number): void;
  gatherRows(src: number, dst: number, idx: number, n: number, rowBytes: number): void;
  compactRows(base: number, idx: number, n: number, rowBytes: number): void;
  hammingRows(bits: number, n: number, words: number, anchor: number, out: number): void;
  quantKeys(src: number, n: number, d: number, bits: number, codes: number, scale: number, min: number): void;
  dequantKeys(codes: number, scale: number, min: number, n: number, d: number, bits: number, dst: number): void;
  quantValues(src: number, n: number, d: number, vg: number, bits: number, codes: number, scale: number, min: number): void;
  dequantValues(codes: number, scale: number, min: number, n: number, d: number, vg: number, bits: number, dst: number): void;
  qdotKeys(codes: number, scale: number, min: number, n: number, d: number, bits: number, q: number, out: number): void;
  qaxpyValues(codes: number, scale: number, min: number, n: number, d: number, vg: number, bits: number, p: number, out: number): void;
  packPage(format: number, d: number, vg: number, count: number, k: number, v: number, logW: number, pos: number, page: number): void;
  unpackPage(format: number, d: number, vg: number, count: number, page: number, k: number, v: number, logW: number, pos: number): void;
  attnInit(state: number, G: number, d: number): void;
  attendPages(table: number, nPages: number, format: number, d: number, vg: number, q: number, G: number, scale: number, state: number, logits: number, logitsStride: number): void;
  attnFinish(state: number, G: number, d: number, out: number, lse: number): void;
  probsFromLogits(logits: number, G: number, stride: number, n: number, lse: number): void;
  // Model runner (assembly/kernels/matmul.ts): weights [rows][cols] f16 bits or f32; activations f32 [n][cols].
  matvecF16(w: number, x: number, y: number, rows: number, cols: number, scale: number): void;
  matvecF32(w: number, x: number, y: number, rows: number, cols: number): void;
  matmulF16(w: number, x: number, y: number, rows: number, cols: number, n: number, scale: number): void;
  matmulF32(w: number, x: number, y: number, rows: number, cols: number, n: number): void;
  rmsNormF32(x: number, weight: number, y: number, dim: number, n: number, eps: number): void;
  ropeRotateHalfF32(x: number, positions: number, invFreq: number, n: number, heads: number, headDim: number): void;
  swigluF32(gate: number, up: number, out: number, len: number): void;
  addF32(y: number, x: number, len: number): void;
  argmaxF32(x: number, n: number): number;
  embedF16(table: number, ids: number, n: number, dim: number, out: number, scale: number): void;
  embedF32(table: number, ids: number, n: number, dim: number, out: number): void;
  attendExactF32(q: number, k: number, v: number, len: number, qHeads: number, kvHeads: number, headDim: number, scale: number, scores: number, out: number): void;
  // BalanceKV walk (assembly/kernels/walk.ts; host wrapper src/balancekv/walk.ts)
  walkScratchBytes(B: number, d: number): number;
  walkBlock(kRows: number, vRows: number, wts: number, anchors: number, n: number, B: number, d: number, flags: number, scale: number, beta: number, logGamma: number, c0: number, rngKey: number, indexBase: number, scratch: number, signs: number): number;
  walkGram(kRows: number, vRows: number, wts: number, n: number, B: number, d: number, flags: number, scale: number, c0: number, scratch: number, outA: number, outW: number): void;
  walkExp(src: number, dst: number, n: number): void;
  walkRandom(rngKey: number, indexBase: number, n: number, dst: number): void;
  // Further kernels (model runner, walk, popcount) are added by their files.
  [name: string]: unknown;
}

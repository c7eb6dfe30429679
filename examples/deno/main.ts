// edgekv in Deno: a compressed cache fed with synthetic keys / values, decode
// attention on the WASM kernels, and the same pages attended on WebGPU when Deno
// finds an adapter. Run from the repository root (needs build/*.wasm):
//   deno run -A --unstable-webgpu examples/deno/main.ts [tokens]
import { createEngine, createCache, PAGE_TOKENS } from '../../src/index.ts';
import { createPagedAttention, encodePage } from '../../src/webgpu/index.ts';

const TOKENS = Number(Deno.args[0] ?? 2048);
const geometry = { layers: 1, qHeads: 8, kvHeads: 2, headDim: 64 };
const { qHeads: Q, kvHeads: H, headDim: d } = geometry;
let seed = 1;
const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32 - 0.5; };

// 1. a cache under a budget: 256 tokens per lane in int4, SnapKV
const engine = await createEngine();
const cache = createCache(engine, { ...geometry, budget: { tokens: 256 }, policy: 'snapkv', precision: 'int4' });
const step = new Float32Array(H * d);
const q = new Float32Array(Q * d);
let t0 = performance.now();
for (let t = 0; t < TOKENS; t++) {
  cache.append(0, step.map(rand), step.map(rand));
  if (t % 64 === 63) cache.attend(0, q.map(rand));
}
const s = cache.stats();
console.log(`cache: ${TOKENS} tokens appended in ${(performance.now() - t0).toFixed(0)} ms; ${s.tokens} entries kept, ${s.bytes} bytes (int4 pages: ${s.pages.int4}, f16 pages: ${s.pages.f16})`);
cache.dispose();

// 2. the same int4 pages on the WASM kernels and on WebGPU
const G = Q / H;
const pages: Uint8Array[] = [];
for (let at = 0; at < TOKENS; at += PAGE_TOKENS) {
  const k = new Float32Array(PAGE_TOKENS * d).map(rand), v = new Float32Array(PAGE_TOKENS * d).map(rand);
  pages.push(encodePage('int4', d, 32, PAGE_TOKENS, k, v));
}
const query = new Float32Array(G * d).map(rand);
for (const backend of ['wasm-simd', 'webgpu'] as const) {
  const notices: string[] = [];
  const attn = await createPagedAttention({ backend, headDim: d, groupSize: G, onNotice: (m) => notices.push(m) });
  const lane = attn.createLane();
  pages.forEach((p, i) => attn.writePage(lane, i, 'int4', p, PAGE_TOKENS));
  await attn.attend([lane], query);
  t0 = performance.now();
  const reps = 20;
  let r;
  for (let i = 0; i < reps; i++) r = await attn.attend([lane], query);
  const ms = (performance.now() - t0) / reps;
  console.log(`${attn.backend.padEnd(9)} ${pages.length} int4 pages: ${ms.toFixed(3)} ms per call, out[0] = ${r!.out[0].toFixed(6)}, lse[0] = ${r!.lse[0].toFixed(6)}${notices.length ? ` (${notices.join('; ')})` : ''}`);
  attn.destroy();
}

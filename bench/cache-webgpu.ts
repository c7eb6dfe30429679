/**
 * Decode steps of an edgekv cache with attention on WebGPU (`cache.useWebGPU()` +
 * `attendAsync`), side by side in one run with:
 *   - `wasm`     the same cache attending on the WASM kernels (`attend`), and
 *   - `reupload` the GPU kernels fed by re-sending the layer's whole cache every step
 *                (what keeping the KV resident avoids).
 * One step = append one token's keys and values to one layer (all KV heads) + attend
 * with its queries; the cache starts with `tokens` entries per lane (random).
 *
 *   deno run -A --unstable-webgpu bench/cache-webgpu.ts [flags]
 *   node --import tsx bench/cache-webgpu.ts [flags]        (Node: the `webgpu` package)
 *
 * Flags: --tokens 4096,16384,65536  --precisions f16,int4  --kv-heads 8  --q-heads 32
 *        --head-dim 128  --steps 64  --out FILE
 *
 * The wasm and gpu paths are timed in one loop, step by step; the re-upload path in a loop
 * of its own afterwards (steps / 4, at least 4).
 * Columns: ms per step (median), KV bytes attended per step, bytes uploaded per
 * step (GPU paths), and |gpu - wasm| / max|wasm| of the last step's output. Times include
 * everything a runtime waits for: the upload, the submit and the read-back of the
 * result. SwiftShader / llvmpipe numbers check correctness, not GPU speed.
 */
import { createEngine } from '../src/engine.ts';
import type { Format } from '../src/formats.ts';
import { createWebGPUContext } from '../src/webgpu/device.ts';
import { createWebGPUAttention } from '../src/webgpu/attention.ts';
import { mulberry32 } from '../src/model/sampling.ts';
import { args, findGpu, gitRevision, runtimeName, writeReport } from './gpu-common.ts';

function parse(argv: string[]) {
  const o = { tokens: [4096, 16384, 65536], precisions: ['f16', 'int4'] as Format[], kvHeads: 8, qHeads: 32, headDim: 128, steps: 64, out: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    if (a === '--tokens') o.tokens = v().split(',').map(Number);
    else if (a === '--precisions') o.precisions = v().split(',') as Format[];
    else if (a === '--kv-heads') o.kvHeads = Number(v());
    else if (a === '--q-heads') o.qHeads = Number(v());
    else if (a === '--head-dim') o.headDim = Number(v());
    else if (a === '--steps') o.steps = Number(v());
    else if (a === '--out') o.out = v();
    else throw new Error(`unknown flag ${a}; see the header of bench/cache-webgpu.ts`);
  }
  return o;
}

const log = (m: string) => console.error(m);
const now = () => performance.now();
function median(a: number[]): number { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; }

async function main(): Promise<void> {
  const o = parse(args());
  const engine = await createEngine();
  const { gpu, source } = await findGpu();
  const ctx = await createWebGPUContext({ gpu, onNotice: log });
  log(`adapter: ${JSON.stringify(ctx.adapter)} via ${source}; cpu: ${engine.backend}`);
  const { kvHeads, qHeads, headDim: d } = o;
  const rows = [];
  for (const precision of o.precisions) {
    for (const tokens of o.tokens) {
      const rnd = mulberry32(tokens + precision.length);
      const randn = (n: number, s = 1) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = (rnd() + rnd() + rnd() - 1.5) * 2 * s; return a; };
      const cache = engine.createCache({ layers: 1, qHeads, kvHeads, headDim: d, policy: 'full', precision, windowTokens: 32 });
      // one random chunk appended again and again (content does not change the bytes read)
      const chunk = Math.min(4096, tokens), ck = randn(kvHeads * chunk * d), cv = randn(kvHeads * chunk * d, 0.5);
      for (let t = 0; t < tokens; t += chunk) {
        const n = Math.min(chunk, tokens - t);
        cache.append(0, n === chunk ? ck : ck.subarray(0, kvHeads * n * d), n === chunk ? cv : cv.subarray(0, kvHeads * n * d));
      }
      await cache.useWebGPU({ context: ctx });
      const q = randn(qHeads * d, 0.3);
      await cache.attendAsync(0, q); // first upload of every page, kernel compilation
      const kvBytes = cache.stats().bytes;
      const step = () => cache.append(0, randn(kvHeads * d), randn(kvHeads * d, 0.5));
      // the alternative: the same GPU kernels, every page re-sent each step
      const naive = await createWebGPUAttention({ context: ctx, headDim: d, groupSize: qHeads / kvHeads });
      const naiveLanes = Array.from({ length: kvHeads }, () => naive.createLane());
      const reupload = async () => {
        let bytes = 0;
        for (let h = 0; h < kvHeads; h++) {
          const lane = cache.lane(0, h);
          let i = 0;
          for (const t of lane.tiers) {
            const pb = cache.store.pageBytes(t.format);
            for (let p = 0; p < t.pages; p++, i++) { naive.writePage(naiveLanes[h], i, t.format, engine.u8(t.ptrs[p], pb), t.counts[p]); bytes += pb; }
          }
          if (naive.pageCount(naiveLanes[h]) > i) naive.truncate(naiveLanes[h], i);
        }
        return { bytes, res: await naive.attend(naiveLanes, q) };
      };
      await reupload();
      const times = { wasm: [] as number[], gpu: [] as number[], reupload: [] as number[] };
      let uploadedGpu = 0, uploadedNaive = 0, err = 0;
      // wasm and gpu interleaved step by step; the re-upload path in its own loop after
      // (its hundreds of MB of staging per step would otherwise slow the next GPU call)
      for (let s = 0; s < o.steps; s++) {
        step();
        let t0 = now();
        const cpu = cache.attend(0, q);
        times.wasm.push(now() - t0);
        const before = cache.stats().webgpu!.uploadedBytes;
        t0 = now();
        const g = await cache.attendAsync(0, q);
        times.gpu.push(now() - t0);
        uploadedGpu += cache.stats().webgpu!.uploadedBytes - before;
        if (s === o.steps - 1) {
          let m = 0, e = 0;
          for (let i = 0; i < cpu.length; i++) { m = Math.max(m, Math.abs(cpu[i])); e = Math.max(e, Math.abs(g[i] - cpu[i])); }
          err = e / m;
        }
      }
      const naiveSteps = Math.max(4, Math.ceil(o.steps / 4));
      for (let s = 0; s < naiveSteps; s++) {
        step();
        const t0 = now();
        const r = await reupload();
        times.reupload.push(now() - t0);
        uploadedNaive += r.bytes;
      }
      const row = {
        precision, tokensPerLane: tokens, lanes: kvHeads, kvBytes,
        wasmMs: median(times.wasm), gpuMs: median(times.gpu), reuploadMs: median(times.reupload),
        gpuUploadBytesPerStep: uploadedGpu / o.steps, reuploadBytesPerStep: uploadedNaive / naiveSteps,
        gpuVsWasm: median(times.wasm) / median(times.gpu), gpuVsReupload: median(times.reupload) / median(times.gpu),
        maxRelDiffGpuVsWasm: err,
      };
      rows.push(row);
      log(`${precision.padEnd(4)} ${String(tokens).padStart(7)} tok x ${kvHeads} lanes ${(kvBytes / 2 ** 20).toFixed(1).padStart(7)} MiB | wasm ${row.wasmMs.toFixed(2)} ms | gpu ${row.gpuMs.toFixed(2)} ms (uploads ${(row.gpuUploadBytesPerStep / 1024).toFixed(1)} KiB/step) | re-upload ${row.reuploadMs.toFixed(2)} ms (${(row.reuploadBytesPerStep / 2 ** 20).toFixed(1)} MiB/step) | gpu ${row.gpuVsWasm.toFixed(1)}x wasm, ${row.gpuVsReupload.toFixed(1)}x re-upload | diff ${err.toExponential(1)}`);
      naive.destroy();
      cache.dispose();
    }
  }
  const report = {
    suite: 'cache-webgpu', date: new Date().toISOString(), runtime: runtimeName(), gpuSource: source, adapter: ctx.adapter,
    revision: await gitRevision(), cpuBackend: engine.backend,
    config: { kvHeads, qHeads, headDim: d, steps: o.steps, policy: 'full', timing: 'median per step; wall clock incl. upload, submit and read-back' },
    results: rows,
  };
  ctx.destroy();
  log(`wrote ${await writeReport(report, o.out, `cache-webgpu-${report.date.slice(0, 10)}.json`)}`);
}

await main();

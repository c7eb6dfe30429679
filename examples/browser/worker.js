// edgekv demo worker: loads the model once per URL, runs generation with an edgekv
// cache (policy / budget / precision from the page) and reports tokens as they come.
// The handler is installed synchronously (a message may arrive while the imports load).
const DIST = new URL('/dist/', self.location.href);
const modules = Promise.all([
  import(new URL('index.js', DIST).href),
  import(new URL('model/llama.js', DIST).href),
  import(new URL('formats.js', DIST).href),
]);

let loaded = null; // { url, model }

self.onmessage = async ({ data: job }) => {
  if (job.type !== 'generate') return;
  try {
    const [{ createCache, createWebGPUContext }, { loadModel }, { pageBytes, PAGE_TOKENS }] = await modules;
    if (!loaded || loaded.url !== job.modelUrl) {
      self.postMessage({ type: 'status', text: `loading ${job.modelUrl}` });
      loaded = { url: job.modelUrl, model: await loadModel(new URL(job.modelUrl)) };
    }
    const model = loaded.model;
    const c = model.config;
    const geometry = { layers: c.layers, qHeads: c.qHeads, kvHeads: c.kvHeads, headDim: c.headDim };
    const cache = job.policy === 'full'
      ? createCache(model.engine, { ...geometry, policy: 'full' })
      : createCache(model.engine, { ...geometry, policy: job.policy, budget: { tokens: job.budget }, precision: job.precision });
    // Attention (and the decode matvecs) on WebGPU when asked for and available; otherwise
    // the WASM kernels, with the reason shown as the status.
    let ctx = null, backend = model.engine.backend;
    if (job.backend === 'webgpu') {
      const notice = (text) => self.postMessage({ type: 'status', text });
      ctx = await createWebGPUContext({ onNotice: notice }).catch((e) => { notice(`WebGPU not used: ${e.message}`); return null; });
      if (ctx) {
        backend = await cache.useWebGPU({ context: ctx, onNotice: notice });
        await model.useWebGPU(ctx, { onNotice: notice });
      }
    }
    const lanes = c.layers * c.kvHeads;
    const fullBytes = (tokens) => Math.ceil(tokens / PAGE_TOKENS) * lanes * pageBytes('f16', c.headDim, Math.min(32, c.headDim));
    const t0 = performance.now();
    const ids = [];
    const promptIds = model.tokenizer.encode(job.prompt);
    const text = () => model.tokenizer.decode(promptIds.concat(ids), { skipSpecialTokens: true });
    self.postMessage({ type: 'status', text: `generating (attention on ${backend})` });
    const r = await model.generateAsync(promptIds, {
      maxTokens: job.maxTokens,
      attention: cache,
      onToken: (id, i) => {
        ids.push(id);
        if (i % 4 !== 0) return;
        const st = cache.stats();
        self.postMessage({
          type: 'token',
          text: text(),
          bytes: st.bytes,
          fullBytes: fullBytes(st.appended[0]),
          tokensPerSec: (ids.length / (performance.now() - t0)) * 1000,
        });
      },
    });
    const st = cache.stats();
    self.postMessage({ type: 'token', text: text(), bytes: st.bytes, fullBytes: fullBytes(st.appended[0]), tokensPerSec: r.decodeTokensPerSec });
    self.postMessage({ type: 'done', generated: r.generated, bytes: st.bytes, tokensPerSec: r.decodeTokensPerSec, stoppedBy: r.stoppedBy, backend: cache.backend });
    cache.dispose();
    if (ctx) { model.releaseWebGPU(); ctx.destroy(); }
  } catch (e) {
    self.postMessage({ type: 'error', message: e && e.message ? e.message : String(e) });
  }
};

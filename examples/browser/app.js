// edgekv browser demo (main thread): environment, attention self-check on both
// backends, and generation in a module worker (worker.js) with live memory, tokens/s
// and a quality-vs-memory chart. Served by `npx edgekv serve-demo`.
const DIST = new URL('/dist/', location.href);
const edgekv = await import(new URL('index.js', DIST).href);
const gpuMod = await import(new URL('webgpu/index.js', DIST).href);
const { FORMATS, PAGE_TOKENS, detectSimd, policyNames } = edgekv;
const { createPagedAttention, createWebGPUAttention, encodePage, decodePage, referenceAttention } = gpuMod;

const $ = (id) => document.getElementById(id);
const fmtBytes = (b) => (b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(2)} MiB` : `${(b / 1024).toFixed(1)} KiB`);

/**
 * Largest |backend - float64| accepted by the self-check, relative to max |out| (and
 * absolute on the lse): f32 math over the same page bytes; the WASM SIMD kernels round
 * packed pages' q*scale and p*scale to 16-bit fixed point, hence the looser bound there.
 */
export const SELF_TEST_TOLERANCE = { exact: 1e-5, wasmPacked: 2e-4 };
const tolerance = (backend, format) =>
  backend.startsWith('wasm') && format.startsWith('int') ? SELF_TEST_TOLERANCE.wasmPacked : SELF_TEST_TOLERANCE.exact;

async function describeEnv() {
  const parts = [`WebAssembly SIMD: ${detectSimd() ? 'yes' : 'no (scalar kernels)'}`];
  if (!navigator.gpu) parts.push('WebGPU: not available');
  else {
    const a = await navigator.gpu.requestAdapter().catch(() => null);
    parts.push(a ? `WebGPU: ${[a.info?.vendor, a.info?.architecture, a.info?.description].filter(Boolean).join(' ') || 'adapter found'}` : 'WebGPU: no adapter');
  }
  $('env').textContent = parts.join(' · ');
}

function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s / 2 ** 32) * 2 - 1; };
}

/**
 * Attention over random lanes in every format on wasm and webgpu, each against the
 * float64 reference over the same page bytes. Returns `{ simd, webgpu, webgpuError, rows }`;
 * rows: `{ format, backend, error, tolerance, ms }`. Used by the page and by test/browser.
 */
export async function selfTest({ formats = FORMATS, headDim = 64, groupSize = 4, tokens = 3 * PAGE_TOKENS + 7, seed = 1 } = {}) {
  const rand = rng(seed);
  const d = headDim, G = groupSize, vg = Math.min(32, d);
  const backends = [await createPagedAttention({ backend: 'auto', headDim: d, groupSize: G })];
  const result = { simd: detectSimd(), webgpu: false, webgpuError: null, rows: [] };
  try {
    backends.push(await createWebGPUAttention({ headDim: d, groupSize: G }));
    result.webgpu = true;
  } catch (e) {
    result.webgpuError = e.message;
  }
  for (const format of formats) {
    const pages = [];
    for (let at = 0; at < tokens; at += PAGE_TOKENS) {
      const c = Math.min(PAGE_TOKENS, tokens - at);
      const k = Float32Array.from({ length: c * d }, () => 2 * rand());
      const v = Float32Array.from({ length: c * d }, rand);
      const w = Float32Array.from({ length: c }, () => 0.5 * rand());
      pages.push({ bytes: encodePage(format, d, vg, c, k, v, w), count: c });
    }
    const q = Float32Array.from({ length: G * d }, rand);
    const ref = referenceAttention(pages.map((p) => decodePage(format, d, vg, p.count, p.bytes)), q, G, d, 1 / Math.sqrt(d));
    let mag = 0;
    for (const x of ref.out) mag = Math.max(mag, Math.abs(x));
    for (const b of backends) {
      const lane = b.createLane();
      pages.forEach((p, i) => b.writePage(lane, i, format, p.bytes, p.count));
      const t0 = performance.now();
      const r = await b.attend([lane], q);
      const ms = performance.now() - t0;
      let err = 0;
      for (let i = 0; i < ref.out.length; i++) err = Math.max(err, Math.abs(r.out[i] - ref.out[i]) / mag);
      for (let h = 0; h < G; h++) err = Math.max(err, Math.abs(r.lse[h] - ref.lse[h]));
      result.rows.push({ format, backend: b.backend, error: err, tolerance: tolerance(b.backend, format), ms });
      b.freeLane(lane);
    }
  }
  for (const b of backends) b.destroy();
  return result;
}
globalThis.edgekvSelfTest = selfTest;

async function runSelfTest() {
  const tbody = $('check-table').querySelector('tbody');
  tbody.innerHTML = '<tr><td colspan="4">running…</td></tr>';
  const r = await selfTest();
  tbody.innerHTML = '';
  for (const row of r.rows) {
    const tr = document.createElement('tr');
    const ok = row.error <= row.tolerance ? '✓' : '✗';
    for (const t of [row.format, row.backend, `${row.error.toExponential(2)} ${ok}`, row.ms.toFixed(1)]) {
      const td = document.createElement('td');
      td.textContent = t;
      tr.append(td);
    }
    tbody.append(tr);
  }
  if (!r.webgpu) {
    const tr = document.createElement('tr');
    tr.innerHTML = '<td colspan="4"></td>';
    tr.firstChild.textContent = `webgpu: ${r.webgpuError}`;
    tbody.append(tr);
  }
}

// ---- generation (worker) and the quality-vs-memory chart -----------------------------

const runs = []; // { label, bytes, agreement }
let baseline = null; // { prompt, modelUrl, ids }
let worker = null;

function drawChart() {
  const svg = $('chart');
  const W = 480, H = 260, L = 50, B = 30, T = 10, R = 10;
  const pts = runs.filter((r) => r.agreement !== null);
  const maxX = Math.max(1, ...pts.map((p) => p.bytes));
  const x = (b) => L + (b / maxX) * (W - L - R);
  const y = (a) => H - B - a * (H - B - T);
  let s = `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#999"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#999"/>`;
  s += `<text x="${(W + L) / 2}" y="${H - 5}" font-size="11" text-anchor="middle">KV bytes (max ${fmtBytes(maxX)})</text>`;
  s += `<text x="12" y="${(H - B) / 2}" font-size="11" transform="rotate(-90 12 ${(H - B) / 2})" text-anchor="middle">tokens matching full cache</text>`;
  for (const a of [0, 0.5, 1]) s += `<text x="${L - 6}" y="${y(a) + 4}" font-size="10" text-anchor="end">${a * 100}%</text>`;
  for (const p of pts) {
    s += `<circle cx="${x(p.bytes)}" cy="${y(p.agreement)}" r="4" fill="#3167d6"><title>${p.label}</title></circle>`;
    s += `<text x="${x(p.bytes) + 6}" y="${y(p.agreement) - 6}" font-size="9">${p.label}</text>`;
  }
  svg.innerHTML = s;
}

function generate(ev) {
  ev.preventDefault();
  const job = {
    type: 'generate',
    modelUrl: new URL($('model-url').value, location.href).href,
    policy: $('policy').value,
    budget: Number($('budget').value),
    precision: $('precision').value,
    backend: $('backend').value,
    maxTokens: Number($('max-tokens').value),
    prompt: $('prompt').value,
  };
  worker ??= new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  $('run').disabled = true;
  $('output').textContent = '';
  $('status').textContent = 'loading model…';
  worker.onmessage = ({ data: m }) => {
    if (m.type === 'status') $('status').textContent = m.text;
    else if (m.type === 'token') {
      $('output').textContent = m.text;
      $('mem').textContent = fmtBytes(m.bytes);
      $('mem-full').textContent = fmtBytes(m.fullBytes);
      $('tps').textContent = m.tokensPerSec.toFixed(1);
    } else if (m.type === 'done') {
      $('run').disabled = false;
      $('status').textContent = `done (${m.stoppedBy}; attention on ${m.backend})`;
      $('tps').textContent = m.tokensPerSec.toFixed(1);
      const same = baseline && baseline.prompt === job.prompt && baseline.modelUrl === job.modelUrl;
      if (job.policy === 'full') baseline = { prompt: job.prompt, modelUrl: job.modelUrl, ids: m.generated };
      let agreement = null;
      if (job.policy === 'full') agreement = 1;
      else if (same) {
        let k = 0;
        const n = Math.min(baseline.ids.length, m.generated.length);
        for (let i = 0; i < n; i++) if (baseline.ids[i] === m.generated[i]) k++;
        agreement = n ? k / n : null;
      }
      runs.push({ label: job.policy === 'full' ? 'full' : `${job.policy} ${job.budget} ${job.precision}`, bytes: m.bytes, agreement });
      drawChart();
    } else if (m.type === 'error') {
      $('run').disabled = false;
      $('status').textContent = `error: ${m.message}`;
    }
  };
  worker.postMessage(job);
}

await describeEnv();
const known = new Set(policyNames());
for (const opt of [...$('policy').options]) if (!known.has(opt.value)) opt.remove();
$('self-test').addEventListener('click', () => { void runSelfTest(); });
$('gen-form').addEventListener('submit', generate);
drawChart();
document.documentElement.dataset.ready = '1';

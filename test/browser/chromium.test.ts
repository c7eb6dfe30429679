/**
 * Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core): the demo
 * page, served by `serve-demo` on 127.0.0.1, imports the built package (dist/ +
 * build/*.wasm) and runs attention on the WASM and WebGPU (SwiftShader) backends
 * against a float64 reference; with the shared tiny model present, it also generates a
 * few tokens through the page's worker. Skips, with the reason, when Chromium,
 * playwright-core or the build is missing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemoServer } from '../../src/cli/serve-demo.ts';

/** Debian's chromium (apt-get install -y chromium). */
export const CHROMIUM = process.env.EDGEKV_CHROMIUM ?? '/usr/bin/chromium';
/** Flags: quiet, offline, WebGPU on SwiftShader. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu'];
/** Loosest tolerance the page's self-check may claim (WASM SIMD packed pages: 16-bit fixed point). */
const MAX_TOLERANCE = 2e-4;
/** Wall-clock cap of one page action. */
const STEP_MS = 60_000;

const root = resolve(fileURLToPath(new URL('../../', import.meta.url)));
const tinyModel = resolve(root, '..', 'shared', 'models', 'stories260K');

async function why(): Promise<string | null> {
  // an integration test of external tools: once, under Node (test/runtimes.sh runs every file under Deno and Bun too)
  const rt = globalThis as { Deno?: unknown; Bun?: unknown };
  if (rt.Deno || rt.Bun) return `runs under Node only (this is ${rt.Deno ? 'Deno' : 'Bun'})`;
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (apt-get install -y chromium, see .ci/install-system.sh)`;
  try {
    await import('playwright-core');
  } catch {
    return 'playwright-core is not installed';
  }
  for (const f of ['dist/index.js', 'dist/webgpu/index.js', 'build/edgekv.simd.wasm', 'build/edgekv.scalar.wasm']) {
    if (!existsSync(resolve(root, f))) return `${f} is missing (npm run build)`;
  }
  return null;
}

const reason = await why();
if (reason) {
  console.log(`  chromium test skipped: ${reason}`);
  test.skip('chromium: demo page on wasm and webgpu', () => {});
} else {
  test('chromium: the demo page imports the package and runs attention on wasm and webgpu', async () => {
    const { chromium } = await import('playwright-core');
    const server = await startDemoServer({ port: 0, modelDir: existsSync(tinyModel) ? tinyModel : undefined });
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const errors: string[] = [];
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(STEP_MS);
      page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
      page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource: .* 404/.test(m.text())) errors.push(`console: ${m.text()}`); });
      // the model loader probes optional files (model.safetensors.index.json ...): 404s under /models/ are expected
      page.on('response', (res) => { if (res.status() >= 400 && !new URL(res.url()).pathname.startsWith('/models/')) errors.push(`HTTP ${res.status()} ${res.url()}`); });
      await page.goto(server.url);
      await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
      assert.equal(errors, [], 'no errors while loading');
      type Row = { format: string; backend: string; error: number; tolerance: number; ms: number };
      const r = (await page.evaluate(() => (globalThis as unknown as { edgekvSelfTest: (o: object) => Promise<unknown> }).edgekvSelfTest({}))) as
        { simd: boolean; webgpu: boolean; webgpuError: string | null; rows: Row[] };
      assert.ok(r.simd, 'Chromium runs WebAssembly SIMD');
      assert.ok(r.webgpu, `WebGPU in Chromium (SwiftShader): ${r.webgpuError}`);
      const backends = new Set(r.rows.map((x) => x.backend));
      assert.equal([...backends].sort(), ['wasm-simd', 'webgpu']);
      assert.is(r.rows.length, 10, 'five formats on two backends');
      for (const row of r.rows) {
        assert.ok(row.tolerance <= MAX_TOLERANCE && (row.backend === 'webgpu' ? row.tolerance <= 1e-5 : true), `${row.format} on ${row.backend}: tolerance ${row.tolerance}`);
        assert.ok(row.error <= row.tolerance, `${row.format} on ${row.backend}: error ${row.error} > ${row.tolerance}`);
      }

      if (existsSync(tinyModel)) {
        await page.fill('#prompt', 'Once upon a time');
        await page.fill('#max-tokens', '8');
        await page.selectOption('#policy', 'full');
        await page.click('#run');
        await page.waitForFunction(() => /^done|^error/.test(document.getElementById('status')!.textContent ?? ''));
        const status = await page.textContent('#status');
        assert.match(status ?? '', /^done/, `generation in the page's worker: ${status}`);
        const out = (await page.textContent('#output')) ?? '';
        assert.ok(out.startsWith('Once upon a time') && out.length > 'Once upon a time'.length, `generated text: ${JSON.stringify(out)}`);
        // the same page with a compressed cache and attention + decode matvecs on WebGPU
        await page.selectOption('#policy', 'snapkv');
        await page.fill('#budget', '40');
        await page.selectOption('#precision', 'int4');
        await page.selectOption('#backend', 'webgpu');
        await page.click('#run');
        await page.waitForFunction(() => /^done|^error/.test(document.getElementById('status')!.textContent ?? ''));
        const gpuStatus = (await page.textContent('#status')) ?? '';
        assert.match(gpuStatus, /^done .*attention on webgpu/, `generation on WebGPU in the page's worker: ${gpuStatus}`);
        const gpuOut = (await page.textContent('#output')) ?? '';
        assert.ok(gpuOut.startsWith('Once upon a time') && gpuOut.length > 'Once upon a time'.length, `generated text: ${JSON.stringify(gpuOut)}`);
      } else {
        console.log(`  chromium: generation step skipped (${tinyModel} missing)`);
      }
      assert.equal(errors, [], 'no page errors');
    } finally {
      await browser.close();
      await server.close();
    }
  });
}
test.run();

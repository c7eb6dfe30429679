/**
 * Package checks: what `npm pack` ships (no tests, sources, models, build leftovers),
 * sizes reported, and a smoke test of the packed tarball installed offline in a
 * scratch directory: import the package, run a compressed cache, save / load a
 * snapshot, run the `edgekv` binary and its `serve-demo` (the page and application/wasm).
 * Skips, with the reason, when dist/ or build/*.wasm is missing (run `npm run build`).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('../', import.meta.url)));
/** Regression guards, far above today's sizes (reported on every run). */
const MAX_TARBALL_BYTES = 2 << 20;
const MAX_WASM_BYTES = 512 << 10;
/** Paths that must be in the tarball. */
const REQUIRED = ['package.json', 'README.md', 'bin/edgekv.js', 'dist/index.js', 'dist/index.d.ts', 'build/edgekv.simd.wasm', 'build/edgekv.scalar.wasm', 'examples/browser/index.html', 'dist/webgpu/index.js', 'dist/cli/serve-demo.js'];
/** What may ship: built JS + declarations, the two .wasm, the CLI shim, the demo page, the README. */
const ALLOWED = [/^dist\/.+\.(js|d\.ts)$/, /^build\/edgekv\.(simd|scalar)\.wasm$/, /^bin\/edgekv\.js$/, /^examples\/browser\/[\w.-]+\.(html|js|css|md)$/, /^(package\.json|README\.md|LICENSE)$/];
/** Never: tests, sources, text builds, models, data, results, maps, scratch. */
const FORBIDDEN = [/(^|\/)test\//, /\.test\./, /^src\//, /^assembly\//, /\.wat$/, /\.safetensors$/, /\.tmp/, /bench\/results/, /\.map$/, /\.tsbuildinfo$/, /\.tgz$/, /(^|\/)node_modules\//, /\.DS_Store$/];

interface PackFile { path: string; size: number }
interface Pack { filename: string; size: number; unpackedSize: number; files: PackFile[] }

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const quiet = { cwd: root, encoding: 'utf8' as const, stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'] };

function why(): string | null {
  // an integration test of external tools: once, under Node (test/runtimes.sh runs every file under Deno and Bun too)
  const rt = globalThis as { Deno?: unknown; Bun?: unknown };
  if (rt.Deno || rt.Bun) return `runs under Node only (this is ${rt.Deno ? 'Deno' : 'Bun'})`;
  for (const f of ['dist/index.js', 'build/edgekv.simd.wasm', 'build/edgekv.scalar.wasm']) {
    if (!existsSync(resolve(root, f))) return `${f} is missing (npm run build)`;
  }
  try {
    execFileSync(npm, ['--version'], quiet);
  } catch {
    return 'npm is not on PATH (this check runs under Node only)';
  }
  return null;
}

const reason = why();
if (reason) {
  console.log(`  package checks skipped: ${reason}`);
  test.skip('npm pack contents and tarball smoke test', () => {});
} else {
  let pack: Pack;

  test('npm pack ships only the built package, with every file it needs; sizes reported', () => {
    pack = (JSON.parse(execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], quiet)) as Pack[])[0];
    const paths = pack.files.map((f) => f.path);
    for (const r of REQUIRED) assert.ok(paths.includes(r), `${r} is in the tarball`);
    for (const p of paths) {
      assert.ok(ALLOWED.some((re) => re.test(p)), `${p} is expected in the tarball`);
      assert.not.ok(FORBIDDEN.some((re) => re.test(p)), `${p} must not ship`);
    }
    // build leftovers: every dist module has a source
    for (const p of paths.filter((x) => x.startsWith('dist/') && x.endsWith('.js'))) {
      const src = resolve(root, 'src', p.slice('dist/'.length).replace(/\.js$/, '.ts'));
      assert.ok(existsSync(src), `${p} has no source (${src}): a stale build leftover; rebuild dist/ from scratch`);
    }
    const size = (pred: (p: string) => boolean) => pack.files.filter((f) => pred(f.path)).reduce((a, f) => a + f.size, 0);
    const simd = size((p) => p === 'build/edgekv.simd.wasm'), scalar = size((p) => p === 'build/edgekv.scalar.wasm');
    const js = size((p) => p.startsWith('dist/') && p.endsWith('.js'));
    const dts = size((p) => p.endsWith('.d.ts'));
    console.log(`  package: tarball ${(pack.size / 1024).toFixed(1)} KiB, unpacked ${(pack.unpackedSize / 1024).toFixed(1)} KiB, ${pack.files.length} files; ` +
      `dist JS ${(js / 1024).toFixed(1)} KiB, .d.ts ${(dts / 1024).toFixed(1)} KiB, wasm simd ${(simd / 1024).toFixed(1)} KiB, scalar ${(scalar / 1024).toFixed(1)} KiB`);
    assert.ok(pack.size < MAX_TARBALL_BYTES, `tarball ${pack.size} bytes < ${MAX_TARBALL_BYTES}`);
    assert.ok(simd < MAX_WASM_BYTES && scalar < MAX_WASM_BYTES, 'wasm sizes');
  });

  test('the packed tarball installs offline in a scratch project, imports, runs, and serves the demo', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgekv-pack-'));
    try {
      execFileSync(npm, ['pack', '--ignore-scripts', '--pack-destination', dir], quiet);
      const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
      assert.ok(tgz, 'tarball written');
      const app = join(dir, 'app');
      execFileSync('mkdir', ['-p', app]);
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
      execFileSync(npm, ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--no-package-lock', join(dir, tgz!)], { ...quiet, cwd: app });
      writeFileSync(join(app, 'smoke.mjs'), `
        import { createEngine, createCache, loadCache, FORMATS, createPagedAttention, encodePage } from 'edgekv';
        const engine = await createEngine();
        const cache = createCache(engine, { layers: 1, qHeads: 4, kvHeads: 2, headDim: 32, budget: { tokens: 48 }, policy: 'h2o', precision: 'int4' });
        let s = 1; const r = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
        for (let t = 0; t < 100; t++) cache.append(0, Float32Array.from({ length: 64 }, r), Float32Array.from({ length: 64 }, r));
        const q = Float32Array.from({ length: 128 }, r);
        const out = cache.attend(0, q);
        const copy = loadCache(engine, cache.save());
        const out2 = copy.attend(0, q);
        const paged = await createPagedAttention({ headDim: 32, groupSize: 2 });
        const lane = paged.createLane();
        paged.writePage(lane, 0, 'f16', encodePage('f16', 32, 32, 3, new Float32Array(96).fill(0.5), new Float32Array(96).fill(0.25)), 3);
        const a = await paged.attend([lane], new Float32Array(64).fill(0.1));
        console.log(JSON.stringify({ backend: engine.backend, formats: FORMATS.length, tokens: cache.stats().tokens, same: out.every((x, i) => x === out2[i]), paged: a.out[0], wasm: import.meta.resolve('edgekv/wasm/simd') }));
      `);
      const res = JSON.parse(execFileSync(process.execPath, ['smoke.mjs'], { ...quiet, cwd: app })) as Record<string, unknown>;
      assert.is(res.backend, 'wasm-simd');
      assert.is(res.formats, 5);
      assert.ok((res.tokens as number) < 200, 'compressed');
      assert.is(res.same, true, 'snapshot round trip from the installed package');
      assert.ok(Math.abs((res.paged as number) - 0.25) < 1e-3, 'paged attention over constant values');
      assert.match(res.wasm as string, /node_modules\/edgekv\/build\/edgekv\.simd\.wasm$/);
      // the CLI and the offline demo server from the installed package
      const bin = join(app, 'node_modules', '.bin', 'edgekv');
      assert.match(execFileSync(bin, ['--help'], { ...quiet, cwd: app }), /serve-demo/);
      const server = spawn(bin, ['serve-demo', '--port', '0'], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] });
      try {
        const url = await new Promise<string>((ok, fail) => {
          let text = '';
          const timer = setTimeout(() => fail(new Error(`serve-demo printed no URL: ${text}`)), 20_000);
          server.stdout.on('data', (b: Buffer) => {
            text += b.toString();
            const m = /http:\/\/127\.0\.0\.1:\d+\//.exec(text);
            if (m) { clearTimeout(timer); ok(m[0]); }
          });
          server.on('exit', (code) => { clearTimeout(timer); fail(new Error(`serve-demo exited ${code}: ${text}`)); });
        });
        const page = await fetch(url);
        assert.is(page.status, 200);
        assert.match(await page.text(), /edgekv demo/);
        const wasm = await fetch(new URL('build/edgekv.simd.wasm', url));
        assert.is(wasm.headers.get('content-type'), 'application/wasm');
        assert.ok(WebAssembly.validate(new Uint8Array(await wasm.arrayBuffer())), 'valid wasm served');
        assert.is((await fetch(new URL('dist/index.js', url))).status, 200);
        assert.is((await fetch(new URL('../package.json', new URL('dist/', url)))).status, 404, 'nothing outside the served folders');
      } finally {
        server.kill('SIGTERM');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
test.run();

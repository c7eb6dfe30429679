/**
 * The edge worker (examples/worker) in workerd through Miniflare: one compressed cache
 * per conversation kept across requests as snapshots in a KV binding; results equal a
 * cache driven directly in Node; damaged, truncated, foreign and garbage snapshots are
 * refused with a 4xx and no state is lost. Skips, with the reason, when Miniflare /
 * workerd, the build or the cache snapshot API is missing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('../../', import.meta.url)));
/** Outputs of the worker and of the Node cache run the same WASM kernels on the same data: equal up to this. */
const SAME_TOL = 1e-6;
const TOKENS_PER_STEP = 24;
const STEPS = 4;

async function why(): Promise<string | null> {
  // an integration test of external tools: once, under Node (test/runtimes.sh runs every file under Deno and Bun too)
  const rt = globalThis as { Deno?: unknown; Bun?: unknown };
  if (rt.Deno || rt.Bun) return `runs under Node only (this is ${rt.Deno ? 'Deno' : 'Bun'})`;
  try {
    await import('miniflare');
  } catch {
    return 'miniflare is not installed';
  }
  for (const f of ['dist/index.js', 'build/edgekv.simd.wasm', 'build/edgekv.scalar.wasm']) {
    if (!existsSync(resolve(root, f))) return `${f} is missing (npm run build)`;
  }
  if (!readFileSync(resolve(root, 'dist/index.js'), 'utf8').includes('loadCache')) return 'the cache snapshot API (loadCache) is not in dist/ yet (npm run build)';
  return null;
}

const reason = await why();
if (reason) {
  console.log(`  worker test skipped: ${reason}`);
  test.skip('workerd: conversations through snapshots', () => {});
} else {
  test('workerd: one cache per conversation across requests; damaged snapshots refused with 4xx, nothing lost', async () => {
    const { Miniflare } = await import('miniflare');
    const { ROOT, workerModules } = (await import(new URL('../../examples/worker/modules.mjs', import.meta.url).href)) as { ROOT: string; workerModules: () => Array<{ type: 'ESModule' | 'CompiledWasm'; path: string }> };
    const { CACHE_OPTIONS } = (await import(new URL('../../examples/worker/options.js', import.meta.url).href)) as { CACHE_OPTIONS: { layers: number; qHeads: number; kvHeads: number; headDim: number } };
    const { createEngine, createCache, loadCache } = await import('../../src/index.ts');
    const { layers: L, qHeads: Q, kvHeads: H, headDim: d } = CACHE_OPTIONS;
    const mf = new Miniflare({ modules: workerModules(), modulesRoot: ROOT, compatibilityDate: '2025-01-01', kvNamespaces: ['CACHES'] });
    try {
      await mf.ready;
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      type Json = Record<string, any>;
      const call = async (method: string, path: string, body?: string | Uint8Array): Promise<{ status: number; body: Json; bytes: Uint8Array }> => {
        const r = await mf.dispatchFetch(`http://localhost${path}`, { method, body });
        const type = r.headers.get('content-type') ?? '';
        if (type.includes('json')) return { status: r.status, body: (await r.json()) as Json, bytes: new Uint8Array(0) };
        return { status: r.status, body: {}, bytes: new Uint8Array(await r.arrayBuffer()) };
      };
      // local twin: the same cache driven directly
      const engine = await createEngine();
      const twins = new Map<string, ReturnType<typeof createCache>>();
      let seed = 5;
      const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32 - 0.5; };
      const stepBoth = async (id: string) => {
        const keys = Array.from({ length: TOKENS_PER_STEP }, () => Array.from({ length: L * H * d }, rand));
        const values = Array.from({ length: TOKENS_PER_STEP }, () => Array.from({ length: L * H * d }, rand));
        const queries = Array.from({ length: L * Q * d }, rand);
        const r = await call('POST', `/c/${id}/step`, JSON.stringify({ keys, values, queries }));
        assert.is(r.status, 200, JSON.stringify(r.body));
        let twin = twins.get(id);
        if (!twin) twins.set(id, (twin = createCache(engine, CACHE_OPTIONS as never)));
        for (let l = 0; l < L; l++) {
          const k = new Float32Array(H * TOKENS_PER_STEP * d), v = new Float32Array(H * TOKENS_PER_STEP * d);
          for (let t = 0; t < TOKENS_PER_STEP; t++) for (let h = 0; h < H; h++) for (let c = 0; c < d; c++) {
            k[(h * TOKENS_PER_STEP + t) * d + c] = keys[t][(l * H + h) * d + c];
            v[(h * TOKENS_PER_STEP + t) * d + c] = values[t][(l * H + h) * d + c];
          }
          twin.append(l, k, v);
        }
        const out = r.body.out as number[];
        for (let l = 0; l < L; l++) {
          const ref = twin.attend(l, Float32Array.from(queries.slice(l * Q * d, (l + 1) * Q * d)));
          for (let i = 0; i < Q * d; i++) assert.ok(Math.abs(out[l * Q * d + i] - ref[i]) <= SAME_TOL, `${id} layer ${l}: ${out[l * Q * d + i]} vs ${ref[i]}`);
        }
        assert.is(r.body.tokens, twin.stats().tokens);
        assert.is(r.body.bytes, twin.stats().bytes);
        return r.body;
      };
      // two conversations, interleaved, past the budget (compression runs)
      for (let s = 0; s < STEPS; s++) { await stepBoth('alice'); await stepBoth('bob'); }
      const alice = await call('GET', '/c/alice');
      assert.is(alice.status, 200);
      assert.is(alice.body.appended, STEPS * TOKENS_PER_STEP);
      assert.ok((alice.body.tokens as number) < L * H * STEPS * TOKENS_PER_STEP, 'the budget compressed the cache');
      const snap = await call('GET', '/c/alice/snapshot');
      assert.is(snap.status, 200);
      const good = snap.bytes;
      assert.equal(good, twins.get('alice')!.save(), 'the stored snapshot equals the Node twin\'s, byte for byte');

      // damaged uploads: refused with 422, alice unchanged
      const flipped = good.slice(); flipped[Math.floor(good.length / 2)] ^= 0x10;
      const other = createCache(engine, { layers: 1, qHeads: 2, kvHeads: 1, headDim: 32 });
      other.append(0, new Float32Array(32).fill(0.5), new Float32Array(32).fill(0.25));
      const cases: Array<[string, Uint8Array]> = [
        ['one flipped bit', flipped],
        ['truncated', good.subarray(0, good.length - 100)],
        ['another geometry', other.save()],
        ['not a snapshot', new TextEncoder().encode('hello, worker')],
        ['empty', new Uint8Array(0)],
      ];
      other.dispose();
      for (const [what, bytes] of cases) {
        const r = await call('PUT', '/c/alice/snapshot', bytes);
        assert.is(r.status, 422, `${what}: ${JSON.stringify(r.body)}`);
        assert.is(r.body.code, 'E_SNAPSHOT', what);
        const after = await call('GET', '/c/alice/snapshot');
        assert.equal(after.bytes, good, `${what}: stored state untouched`);
      }
      // a damaged stored snapshot: the step is refused (409) and the stored bytes are kept
      const kv = (await mf.getKVNamespace('CACHES')) as unknown as { put(k: string, v: Uint8Array): Promise<void>; get(k: string, type: 'arrayBuffer'): Promise<ArrayBuffer | null> };
      await kv.put('carol', flipped);
      const rc = await call('POST', '/c/carol/step', JSON.stringify({ keys: [new Array(L * H * d).fill(0)], values: [new Array(L * H * d).fill(0)] }));
      assert.is(rc.status, 409, JSON.stringify(rc.body));
      assert.equal(new Uint8Array((await kv.get('carol', 'arrayBuffer'))!), flipped, 'nothing overwritten');
      // alice goes on exactly where she was
      await stepBoth('alice');
      // a good snapshot restores a conversation elsewhere
      const put = await call('PUT', '/c/dave/snapshot', good);
      assert.is(put.status, 200, JSON.stringify(put.body));
      const dave = loadCache(engine, good);
      assert.is(put.body.tokens, dave.stats().tokens);
      dave.dispose();
      // bad requests
      assert.is((await call('POST', '/c/alice/step', 'not json')).status, 400);
      assert.is((await call('POST', '/c/alice/step', JSON.stringify({ keys: [[1, 2]], values: [[1, 2]] }))).status, 400);
      assert.is((await call('GET', '/c/nobody')).status, 404);
      for (const t of twins.values()) t.dispose();
    } finally {
      await mf.dispose();
    }
  });
}
test.run();

// Serve the edge worker locally on http://127.0.0.1:8787/ with Miniflare (workerd),
// an in-memory KV namespace CACHES. Usage: node examples/worker/serve.mjs [port]
import { Miniflare } from 'miniflare';
import { ROOT, workerModules } from './modules.mjs';

const port = Number(process.argv[2] ?? 8787);
const mf = new Miniflare({
  modules: workerModules(),
  modulesRoot: ROOT,
  compatibilityDate: '2025-01-01',
  kvNamespaces: ['CACHES'],
  host: '127.0.0.1',
  port,
});
const url = await mf.ready;
console.log(`edgekv worker: ${url.href}  (POST /c/<id>/step, GET /c/<id>, GET|PUT /c/<id>/snapshot; Ctrl-C to stop)`);
const stop = async () => { await mf.dispose(); process.exit(0); };
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

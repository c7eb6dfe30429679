// edgekv edge worker: one compressed KV cache per conversation, kept between requests
// as a snapshot (cache.save() bytes) in a KV namespace binding (CACHES).
//
//   POST /c/<id>/step      {"keys": [[...]], "values": [[...]], "queries": [...]?}
//                          keys/values: one row per new token, [layers][kvHeads][headDim]
//                          flattened; queries (optional): [layers][qHeads][headDim]
//                          -> {"tokens", "bytes", "appended", "out"?: [layers][qHeads][headDim]}
//   GET  /c/<id>           -> stats {"tokens", "bytes", "appended", "pages"}
//   GET  /c/<id>/snapshot  -> the snapshot bytes (application/octet-stream)
//   PUT  /c/<id>/snapshot  <- snapshot bytes; validated with loadCache before it replaces
//                          anything: a damaged, truncated or foreign image gets 422 and
//                          the stored conversation is untouched
//   DELETE /c/<id>         -> forget the conversation
//
// The WASM kernels come in as compiled modules (workers may not compile WebAssembly
// from bytes at run time); the geometry / budget / policy are in options.js.
import { createEngine, createCache, loadCache, EdgeKVError } from '../../dist/index.js';
import simd from '../../build/edgekv.simd.wasm';
import scalar from '../../build/edgekv.scalar.wasm';
import { CACHE_OPTIONS, GEOMETRY } from './options.js';


/** Largest request body accepted (bytes). */
const MAX_BODY = 8 << 20;
/** Largest snapshot accepted by PUT (bytes). */
const MAX_SNAPSHOT = 64 << 20;

let enginePromise = null;
function engine() {
  enginePromise ??= createEngine({ wasm: { simd, scalar }, onNotice: (m) => console.log(`[edgekv] ${m}`) });
  return enginePromise;
}

const json = (status, body) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
const fail = (status, message, code) => json(status, { error: message, code });

function stats(cache) {
  const s = cache.stats();
  return { tokens: s.tokens, bytes: s.bytes, appended: s.appended[0], pages: s.pages };
}

async function open(env, id, e) {
  const bytes = await env.CACHES.get(id, 'arrayBuffer');
  return bytes ? loadCache(e, new Uint8Array(bytes), { expect: GEOMETRY }) : createCache(e, CACHE_OPTIONS);
}

/** Rows [tokens][layers][kvHeads][headDim] -> per layer [kvHeads][tokens][headDim]. */
function layerBlock(rows, layer, name) {
  const { layers, kvHeads, headDim: d } = CACHE_OPTIONS;
  const width = layers * kvHeads * d;
  const T = rows.length;
  const out = new Float32Array(kvHeads * T * d);
  for (let t = 0; t < T; t++) {
    const row = rows[t];
    if (!Array.isArray(row) || row.length !== width) throw new EdgeKVError('E_SHAPE', `${name}[${t}] must be an array of layers * kvHeads * headDim = ${width} numbers`, name);
    for (let h = 0; h < kvHeads; h++) for (let c = 0; c < d; c++) out[(h * T + t) * d + c] = row[(layer * kvHeads + h) * d + c];
  }
  return out;
}

async function step(request, env, id) {
  const text = await request.text();
  if (text.length > MAX_BODY) return fail(413, `body over ${MAX_BODY} bytes`, 'E_ARG');
  let body;
  try { body = JSON.parse(text); } catch { return fail(400, 'body is not JSON', 'E_ARG'); }
  const { keys, values, queries } = body ?? {};
  if (!Array.isArray(keys) || !Array.isArray(values) || keys.length !== values.length || keys.length === 0) {
    return fail(400, 'keys and values must be non-empty arrays of the same length (one row per token)', 'E_SHAPE');
  }
  const e = await engine();
  const cache = await open(env, id, e); // a stored snapshot that does not load: E_SNAPSHOT -> 409, nothing written
  try {
    const { layers, qHeads, headDim: d } = CACHE_OPTIONS;
    const blocks = [];
    for (let l = 0; l < layers; l++) blocks.push([layerBlock(keys, l, 'keys'), layerBlock(values, l, 'values')]);
    let q = null;
    if (queries !== undefined) {
      if (!Array.isArray(queries) || queries.length !== layers * qHeads * d) return fail(400, `queries must be an array of layers * qHeads * headDim = ${layers * qHeads * d} numbers`, 'E_SHAPE');
      q = Float32Array.from(queries);
    }
    for (let l = 0; l < layers; l++) cache.append(l, blocks[l][0], blocks[l][1]);
    const result = stats(cache);
    if (q) {
      const out = new Float32Array(layers * qHeads * d);
      for (let l = 0; l < layers; l++) cache.attend(l, q.subarray(l * qHeads * d, (l + 1) * qHeads * d), out.subarray(l * qHeads * d, (l + 1) * qHeads * d));
      result.out = Array.from(out);
    }
    await env.CACHES.put(id, cache.save()); // only now does the stored state change
    return json(200, result);
  } finally {
    cache.dispose();
  }
}

async function putSnapshot(request, env, id) {
  const bytes = new Uint8Array(await request.arrayBuffer());
  if (bytes.length > MAX_SNAPSHOT) return fail(413, `snapshot over ${MAX_SNAPSHOT} bytes`, 'E_SNAPSHOT');
  const e = await engine();
  const cache = loadCache(e, bytes, { expect: GEOMETRY }); // throws E_SNAPSHOT before anything is stored
  try {
    await env.CACHES.put(id, bytes);
    return json(200, stats(cache));
  } finally {
    cache.dispose();
  }
}

/** HTTP status of an EdgeKVError. */
function statusOf(err, stored) {
  if (err.code === 'E_SNAPSHOT') return stored ? 409 : 422; // damaged stored state vs a rejected upload
  if (err.code === 'E_OOM' || err.code === 'E_BACKEND') return 503;
  return 400;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const m = /^\/c\/([A-Za-z0-9_-]{1,128})(\/step|\/snapshot)?$/.exec(url.pathname);
    if (!m) return fail(404, 'routes: POST /c/<id>/step, GET /c/<id>, GET|PUT /c/<id>/snapshot, DELETE /c/<id>', 'E_ARG');
    const [, id, sub] = m;
    const method = request.method;
    try {
      if (sub === '/step' && method === 'POST') return await step(request, env, id);
      if (sub === '/snapshot' && method === 'PUT') return await putSnapshot(request, env, id);
      if (sub === '/snapshot' && method === 'GET') {
        const bytes = await env.CACHES.get(id, 'arrayBuffer');
        return bytes ? new Response(bytes, { headers: { 'content-type': 'application/octet-stream' } }) : fail(404, `no conversation ${id}`, 'E_ARG');
      }
      if (!sub && method === 'GET') {
        const bytes = await env.CACHES.get(id, 'arrayBuffer');
        if (!bytes) return fail(404, `no conversation ${id}`, 'E_ARG');
        const cache = loadCache(await engine(), new Uint8Array(bytes), { expect: GEOMETRY });
        try { return json(200, stats(cache)); } finally { cache.dispose(); }
      }
      if (!sub && method === 'DELETE') { await env.CACHES.delete(id); return json(200, { deleted: id }); }
      return fail(405, `${method} ${url.pathname} is not a route`, 'E_ARG');
    } catch (err) {
      if (err instanceof EdgeKVError) return fail(statusOf(err, sub !== '/snapshot' || method !== 'PUT'), err.message, err.code);
      throw err;
    }
  },
};

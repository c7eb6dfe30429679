// The module list of the edge worker for Miniflare / workerd: worker.js, every dist/
// module it reaches through static relative imports, and the two .wasm builds as
// compiled modules. (Miniflare's own import scan stops at the engine's guarded dynamic
// `import(spec)` for node:fs, which only runs outside workers.)
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository / package root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The worker's entry module. */
export const WORKER = resolve(ROOT, 'examples', 'worker', 'worker.js');

const STATIC_IMPORT = /(?:^|[;\s])(?:import|export)\s*(?:[^'";]*?\sfrom\s*)?['"](\.{1,2}\/[^'"]+)['"]/g;

/** `[{ type, path }]` for `new Miniflare({ modules, modulesRoot: ROOT })`. */
export function workerModules(entry = WORKER) {
  const seen = new Set();
  const out = [];
  const visit = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    if (file.endsWith('.wasm')) { out.push({ type: 'CompiledWasm', path: file }); return; }
    out.push({ type: 'ESModule', path: file });
    const code = readFileSync(file, 'utf8');
    for (const m of code.matchAll(STATIC_IMPORT)) visit(resolve(dirname(file), m[1]));
  };
  visit(entry);
  return out;
}

/** Names of the modules relative to ROOT (for messages). */
export function moduleNames(mods) {
  return mods.map((m) => relative(ROOT, m.path));
}

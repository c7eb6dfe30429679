/**
 * `edgekv serve-demo [--port N] [--models DIR]`: a small static server on 127.0.0.1
 * for the browser demo, so that it works offline.
 *
 * | URL            | served from                                  |
 * |----------------|----------------------------------------------|
 * | `/`, `/*`      | `examples/browser/` (the demo page)          |
 * | `/dist/*`      | `dist/` (the built package)                  |
 * | `/build/*.wasm`| `build/` as `application/wasm`               |
 * | `/models/*`    | `--models DIR` (e.g. a Hugging Face model folder), when given |
 *
 * GET and HEAD only; paths are confined to those folders. Prints the URL and serves
 * until interrupted.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EdgeKVError, argError, checkInt } from '../errors.ts';

/** Default port of `serve-demo`. */
export const DEFAULT_DEMO_PORT = 8321;
/** The only interface the demo server listens on. */
export const DEMO_HOST = '127.0.0.1';

/** Content types by extension; `.wasm` must be `application/wasm` for streaming compilation. */
export const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.wasm': 'application/wasm',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.ico': 'image/x-icon',
};

export interface DemoServerOptions {
  /** TCP port; 0 picks a free one. Default 8321. */
  port?: number;
  /** Package root holding `examples/browser`, `dist`, `build`; default: this package. */
  root?: string;
  /** Folder served under `/models/` (optional). */
  modelDir?: string;
}

export interface DemoServer {
  /** `http://127.0.0.1:<port>/` */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** The package root: two levels above this file (src/cli or dist/cli). */
export function packageRoot(): string {
  return resolve(fileURLToPath(new URL('../../', import.meta.url)));
}

/** Map a request path to a file inside one of the served folders, or null. */
export function resolveDemoPath(root: string, modelDir: string | undefined, urlPath: string): string | null {
  let path: string;
  try {
    path = decodeURIComponent(urlPath.split('?')[0].split('#')[0]);
  } catch {
    return null;
  }
  if (path.includes('\0')) return null;
  let base: string, rest: string;
  if (path.startsWith('/dist/')) { base = resolve(root, 'dist'); rest = path.slice('/dist/'.length); }
  else if (path.startsWith('/build/')) {
    if (!path.endsWith('.wasm')) return null;
    base = resolve(root, 'build'); rest = path.slice('/build/'.length);
  } else if (path.startsWith('/models/')) {
    if (!modelDir) return null;
    base = resolve(modelDir); rest = path.slice('/models/'.length);
  } else {
    base = resolve(root, 'examples', 'browser');
    rest = path === '/' ? 'index.html' : path.slice(1);
  }
  const file = resolve(base, rest);
  if (file !== base && !file.startsWith(base + sep)) return null; // no escaping the folder
  if (!existsSync(file)) return null;
  const st = statSync(file);
  if (st.isDirectory()) {
    const index = resolve(file, 'index.html');
    return existsSync(index) ? index : null;
  }
  return st.isFile() ? file : null;
}

/** Start the demo server (used by the command and by the Chromium test). */
export function startDemoServer(options: DemoServerOptions = {}): Promise<DemoServer> {
  const port = options.port === undefined ? DEFAULT_DEMO_PORT : checkInt('port', options.port, 0, 65535);
  const root = resolve(options.root ?? packageRoot());
  if (!existsSync(resolve(root, 'examples', 'browser', 'index.html'))) {
    throw new EdgeKVError('E_ARG', `no demo page at ${resolve(root, 'examples', 'browser', 'index.html')}`, 'root');
  }
  if (options.modelDir !== undefined && !(existsSync(options.modelDir) && statSync(options.modelDir).isDirectory())) {
    throw argError('--models', options.modelDir, 'an existing folder (e.g. one holding config.json, model.safetensors, tokenizer.json)');
  }
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const file = resolveDemoPath(root, options.modelDir, req.url ?? '/');
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    const size = statSync(file).size;
    res.writeHead(200, {
      'content-type': MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': String(size),
      'cache-control': 'no-cache',
    });
    if (req.method === 'HEAD') { res.end(); return; }
    createReadStream(file).on('error', () => res.destroy()).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      fail(new EdgeKVError('E_ARG', `cannot listen on ${DEMO_HOST}:${port}: ${e.code ?? e.message}${e.code === 'EADDRINUSE' ? ' (use --port N)' : ''}`, 'port'));
    });
    server.listen(port, DEMO_HOST, () => {
      const addr = server.address();
      const p = typeof addr === 'object' && addr ? addr.port : port;
      ok({
        url: `http://${DEMO_HOST}:${p}/`,
        port: p,
        close: () => new Promise<void>((done) => { server.closeAllConnections?.(); server.close(() => done()); }),
      });
    });
  });
}

function usage(): string {
  return [
    'usage: edgekv serve-demo [--port N] [--models DIR]',
    '',
    `Serves the browser demo (examples/browser), dist/ and build/*.wasm on http://${DEMO_HOST}:${DEFAULT_DEMO_PORT}/.`,
    '  --port N       port (default 8321; 0 = any free port)',
    '  --models DIR   also serve DIR under /models/ (a model folder the page can load offline)',
  ].join('\n');
}

export const command = {
  describe: 'serve the browser demo on 127.0.0.1 (offline)',
  async run(argv: string[]): Promise<number> {
    const opts: DemoServerOptions = {};
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === '--help' || a === '-h') { console.log(usage()); return 0; }
      if (a === '--port') opts.port = Number(argv[++i]);
      else if (a === '--models') opts.modelDir = argv[++i];
      else { console.error(`edgekv serve-demo: unknown flag ${JSON.stringify(a)}\n${usage()}`); return 2; }
    }
    const root = packageRoot();
    if (!existsSync(resolve(root, 'dist', 'index.js'))) {
      console.error('edgekv serve-demo: dist/ is missing; run `npm run build` first');
      return 2;
    }
    const s = await startDemoServer(opts);
    console.log(`edgekv demo: ${s.url}  (Ctrl-C to stop)`);
    await new Promise<void>((done) => {
      const stop = () => { void s.close().then(done); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  },
};

/**
 * Where model files come from: a directory on disk (Node, Deno, Bun), a base URL
 * (browsers, workers), or any object that can read a file by name. The runner never
 * assumes `fs` or `fetch`; `modelFiles()` picks one from what it is given.
 *
 * Default model directory (`resolveModelDir`): the `--model DIR` flag / option, else
 * the environment variable `EDGEKV_MODELS_DIR` (a folder holding one subfolder per
 * model), else `<repo root>/../shared/models/<name>`.
 */
import { EdgeKVError } from '../errors.ts';

/** Reads the files of one model directory by name (`config.json`, shards, ...). */
export interface ModelFiles {
  /** Human-readable location (a directory path or a URL) used in error messages. */
  readonly location: string;
  /** Bytes of `name`, or `null` when the file does not exist. Other failures throw. */
  read(name: string): Promise<Uint8Array | null>;
  /** Full path / URL of `name`, for messages. */
  describe(name: string): string;
}

/** Environment variable naming a folder with one subfolder per model. */
export const MODELS_DIR_ENV = 'EDGEKV_MODELS_DIR';
/** The shared models' folder relative to the repository root. */
export const SHARED_MODELS_RELATIVE = '../shared/models';
/** The project's default evaluation model. */
export const DEFAULT_MODEL_NAME = 'mix-27m';

function isNodeLike(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

function joinPath(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

/** Files of a directory on disk (needs `node:fs`: Node, Deno, Bun). */
export function dirFiles(dir: string): ModelFiles {
  return {
    location: dir,
    describe: (name) => joinPath(dir, name),
    async read(name: string): Promise<Uint8Array | null> {
      const spec = 'node:fs/promises';
      const fs = (await import(/* @vite-ignore */ spec)) as typeof import('node:fs/promises');
      try {
        const b = await fs.readFile(joinPath(dir, name));
        return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return null;
        throw new EdgeKVError('E_MODEL', `${joinPath(dir, name)}: cannot be read (${(e as Error).message})`, joinPath(dir, name));
      }
    },
  };
}

/** Files under a base URL, fetched (HTTP 404 = absent). */
export function urlFiles(base: URL | string): ModelFiles {
  const root = new URL(String(base).endsWith('/') ? String(base) : `${base}/`);
  return {
    location: root.href,
    describe: (name) => new URL(name, root).href,
    async read(name: string): Promise<Uint8Array | null> {
      const url = new URL(name, root);
      if (url.protocol === 'file:' && isNodeLike()) {
        const spec = 'node:url';
        const { fileURLToPath } = (await import(/* @vite-ignore */ spec)) as typeof import('node:url');
        return dirFiles(fileURLToPath(root)).read(name);
      }
      let res: Response;
      try {
        res = await fetch(url);
      } catch (e) {
        throw new EdgeKVError('E_MODEL', `${url.href}: cannot be fetched (${(e as Error).message})`, url.href);
      }
      if (res.status === 404) return null;
      if (!res.ok) throw new EdgeKVError('E_MODEL', `${url.href}: HTTP ${res.status}`, url.href);
      return new Uint8Array(await res.arrayBuffer());
    },
  };
}

/** A `ModelFiles` from a directory path, a URL, or an existing `ModelFiles`. */
export function modelFiles(source: string | URL | ModelFiles): ModelFiles {
  if (typeof source === 'string') {
    if (/^(https?|file):\/\//.test(source)) return urlFiles(source);
    return dirFiles(source);
  }
  if (source instanceof URL) return urlFiles(source);
  if (source && typeof source === 'object' && typeof source.read === 'function') return source;
  throw new EdgeKVError('E_ARG', `model = ${String(source)} is not allowed: expected a directory path, a URL or a ModelFiles object`, 'model');
}

/** Repository root (the folder above `src/`), from this module's URL. */
export function repoRoot(): string {
  const url = new URL('../../', import.meta.url);
  return decodeURIComponent(url.pathname).replace(/\/$/, '');
}

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env?.[name];
}

/** Where a model directory was looked for, and whether it is there. */
export interface ResolvedModelDir {
  /** The directory. */
  dir: string;
  /** Which rule chose it: the explicit option, the environment variable, or the default. */
  via: 'option' | 'env' | 'default';
  /** Whether `dir/config.json` exists. */
  exists: boolean;
}

/**
 * Resolve a model directory: `explicit` (the `--model DIR` flag) when given, else
 * `$EDGEKV_MODELS_DIR/<name>`, else `<repo root>/../shared/models/<name>`.
 */
export async function resolveModelDir(name: string = DEFAULT_MODEL_NAME, explicit?: string): Promise<ResolvedModelDir> {
  let dir: string, via: ResolvedModelDir['via'];
  if (explicit) { dir = explicit; via = 'option'; }
  else if (env(MODELS_DIR_ENV)) { dir = joinPath(env(MODELS_DIR_ENV)!, name); via = 'env'; }
  else { dir = decodeURIComponent(new URL(`${SHARED_MODELS_RELATIVE}/${name}`, `file://${repoRoot()}/`).pathname); via = 'default'; }
  let exists = false;
  try {
    const spec = 'node:fs';
    const fs = (await import(/* @vite-ignore */ spec)) as typeof import('node:fs');
    exists = fs.existsSync(joinPath(dir, 'config.json'));
  } catch { exists = false; }
  return { dir, via, exists };
}

/** One line saying which model directory is missing and how to point at another. */
export function missingModelMessage(r: ResolvedModelDir): string {
  const how = r.via === 'option' ? 'given with --model' : r.via === 'env' ? `from $${MODELS_DIR_ENV}` : `the default (<repo>/${SHARED_MODELS_RELATIVE})`;
  return `model directory ${r.dir} (${how}) has no config.json; pass --model DIR or set ${MODELS_DIR_ENV} to a folder holding the model`;
}

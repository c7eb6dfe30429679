/**
 * `createEngine()`: loads the WebAssembly kernels once, in any runtime, and owns the
 * linear memory and its arena.
 *
 * - Node >= 20, Deno 2, Bun: the `.wasm` next to the package (`build/`) is read with
 *   `node:fs` when the URL is a `file:` URL, else fetched.
 * - Browsers: fetched from `new URL('../build/…', import.meta.url)` (bundlers that
 *   understand that pattern copy the file), or pass `wasm` yourself.
 * - Cloudflare-style workers: pass the imported `WebAssembly.Module`
 *   (`import simd from 'edgekv/wasm/simd'`) as `wasm`.
 *
 * SIMD support is detected once with `WebAssembly.validate`; without it the scalar
 * build is used and `onNotice` is told so once. The modules import nothing.
 */
import { Arena } from './arena.ts';
import { EdgeKVError, argError, checkKeys, checkOneOf } from './errors.ts';
import type { KernelExports } from './wasm.ts';
import { createCache as createCacheOn, type KVCache } from './cache/cache.ts';
import type { CacheOptions } from './cache/options.ts';

export type WasmSource = WebAssembly.Module | ArrayBuffer | ArrayBufferView | URL | string;
export type BackendName = 'wasm-simd' | 'wasm-scalar';

export interface EngineOptions {
  /** 'auto' (default): wasm-simd when the runtime validates SIMD, else wasm-scalar. */
  backend?: 'auto' | BackendName;
  /** Where the kernels come from; default: the package's own `build/*.wasm`. */
  wasm?: WasmSource | { simd?: WasmSource; scalar?: WasmSource };
  /** Called once with a human-readable line when the engine degrades (e.g. no SIMD). Default: console.warn. */
  onNotice?: (message: string) => void;
}

const ENGINE_OPTIONS = ['backend', 'wasm', 'onNotice'] as const;

// A minimal module whose only function returns a v128 constant: validates iff SIMD is supported.
const SIMD_PROBE = new Uint8Array([
  0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 5, 1, 0x60, 0, 1, 0x7b, 3, 2, 1, 0,
  0x0a, 0x16, 1, 0x14, 0, 0xfd, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b,
]);

let simdSupported: boolean | undefined;
/** Whether this runtime runs WebAssembly SIMD (checked once). */
export function detectSimd(): boolean {
  if (simdSupported === undefined) {
    try { simdSupported = WebAssembly.validate(SIMD_PROBE); } catch { simdSupported = false; }
  }
  return simdSupported;
}

function isWasmSource(v: unknown): v is WasmSource {
  return v instanceof WebAssembly.Module || typeof v === 'string' || v instanceof URL || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}

const moduleCache = new Map<string, Promise<WebAssembly.Module>>();

function defaultUrl(kind: 'simd' | 'scalar'): URL {
  return new URL(`../build/edgekv.${kind}.wasm`, import.meta.url);
}

async function readUrl(url: URL): Promise<ArrayBuffer | Uint8Array> {
  if (url.protocol === 'file:') {
    const spec = 'node:fs/promises';
    const fs = (await import(/* @vite-ignore */ spec)) as typeof import('node:fs/promises');
    return fs.readFile(url);
  }
  if (typeof fetch !== 'function') {
    throw new EdgeKVError('E_BACKEND', `cannot load ${url.href}: this runtime has no fetch; pass options.wasm (a WebAssembly.Module or the .wasm bytes)`, 'wasm');
  }
  const res = await fetch(url);
  if (!res.ok) throw new EdgeKVError('E_BACKEND', `cannot load ${url.href}: HTTP ${res.status}; pass options.wasm or serve the file as application/wasm`, 'wasm');
  return res.arrayBuffer();
}

async function compile(src: WasmSource): Promise<WebAssembly.Module> {
  if (src instanceof WebAssembly.Module) return src;
  if (typeof src === 'string' || src instanceof URL) {
    const url = typeof src === 'string' ? new URL(src, import.meta.url) : src;
    const key = url.href;
    let p = moduleCache.get(key);
    if (!p) {
      p = readUrl(url).then((b) => WebAssembly.compile(b as BufferSource));
      moduleCache.set(key, p);
      p.catch(() => moduleCache.delete(key));
    }
    return p;
  }
  return WebAssembly.compile(src as BufferSource);
}

/** Views over WebAssembly memory that survive `memory.grow`. */
export class Engine {
  readonly backend: BackendName;
  readonly simd: boolean;
  readonly kernels: KernelExports;
  readonly memory: WebAssembly.Memory;
  readonly arena: Arena;

  constructor(backend: BackendName, instance: WebAssembly.Instance) {
    this.backend = backend;
    this.kernels = instance.exports as unknown as KernelExports;
    this.memory = this.kernels.memory;
    this.simd = this.kernels.hasSimd() === 1;
    this.arena = new Arena(this.memory, this.kernels.heapBase());
  }

  f32(ptr: number, len: number): Float32Array { return new Float32Array(this.memory.buffer, ptr, len); }
  u16(ptr: number, len: number): Uint16Array { return new Uint16Array(this.memory.buffer, ptr, len); }
  i32(ptr: number, len: number): Int32Array { return new Int32Array(this.memory.buffer, ptr, len); }
  u8(ptr: number, len: number): Uint8Array { return new Uint8Array(this.memory.buffer, ptr, len); }

  /** Create a streaming KV cache in this engine's memory (options: src/cache/options.ts, docs/cache.md). */
  createCache(options: CacheOptions): KVCache {
    return createCacheOn(this, options);
  }

  /** Allocate and copy `data` in; returns the pointer (free it with `arena.free`). */
  copyIn(data: Float32Array | Int32Array | Uint16Array | Uint8Array): number {
    const ptr = this.arena.alloc(data.byteLength);
    new Uint8Array(this.memory.buffer, ptr, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return ptr;
  }
}

/**
 * Create an engine. Zero configuration in Node, Deno, Bun and browsers; in workers
 * pass `wasm`. Throws `E_BACKEND` listing every failure when nothing loads.
 */
export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  if (options === null || typeof options !== 'object') throw new EdgeKVError('E_ARG', `options must be an object, got ${options}`, 'options');
  checkKeys('options', options, ENGINE_OPTIONS);
  const want = checkOneOf('options.backend', options.backend ?? 'auto', ['auto', 'wasm-simd', 'wasm-scalar'] as const);
  if (options.onNotice !== undefined && typeof options.onNotice !== 'function') throw argError('options.onNotice', options.onNotice, 'a function (message: string) => void');
  const notice = options.onNotice ?? ((m: string) => console.warn(`[edgekv] ${m}`));
  const simd = detectSimd();
  let order: BackendName[];
  if (want === 'auto') {
    order = simd ? ['wasm-simd', 'wasm-scalar'] : ['wasm-scalar'];
    if (!simd) notice('WebAssembly SIMD is not available in this runtime; using the scalar kernels (about 4-6x slower).');
  } else {
    if (want === 'wasm-simd' && !simd) {
      throw new EdgeKVError('E_BACKEND', 'options.backend = "wasm-simd" but this runtime does not support WebAssembly SIMD; use "auto" or "wasm-scalar"', 'backend');
    }
    order = [want];
  }
  const w = options.wasm;
  const single = w !== undefined && isWasmSource(w);
  if (w !== undefined && !single) {
    if (w === null || typeof w !== 'object') {
      throw argError('options.wasm', w, 'a WebAssembly.Module, the .wasm bytes (ArrayBuffer, Uint8Array), a URL or URL string, or { simd, scalar } of those');
    }
    checkKeys('options.wasm', w, ['simd', 'scalar']);
    for (const k of ['simd', 'scalar'] as const) {
      const s = (w as Record<string, unknown>)[k];
      if (s !== undefined && !isWasmSource(s)) throw argError(`options.wasm.${k}`, s, 'a WebAssembly.Module, the .wasm bytes, a URL or a URL string');
    }
  }
  // One module given: it is whichever build it is (its hasSimd() says); try it once.
  if (single && want === 'auto') order = [order[0]];
  const sources = (kind: 'simd' | 'scalar'): WasmSource => {
    if (w === undefined) return defaultUrl(kind);
    if (single) return w as WasmSource;
    const s = (w as { simd?: WasmSource; scalar?: WasmSource })[kind];
    if (s === undefined) throw new EdgeKVError('E_BACKEND', `options.wasm.${kind} was not given`, `wasm.${kind}`);
    return s;
  };
  const failures: string[] = [];
  for (const name of order) {
    try {
      const mod = await compile(sources(name === 'wasm-simd' ? 'simd' : 'scalar'));
      const instance = await WebAssembly.instantiate(mod, {});
      const ex = instance.exports as Partial<KernelExports>;
      if (!(ex.memory instanceof WebAssembly.Memory) || typeof ex.hasSimd !== 'function' || typeof ex.heapBase !== 'function') {
        throw new Error('not an edgekv kernel module (it lacks the memory, hasSimd or heapBase export)');
      }
      const built: BackendName = ex.hasSimd() === 1 ? 'wasm-simd' : 'wasm-scalar';
      if (built !== name && !(single && want === 'auto')) {
        throw new Error(`options.wasm${single ? '' : name === 'wasm-simd' ? '.simd' : '.scalar'} is the ${built} build, not the ${name} build`);
      }
      const engine = new Engine(built, instance);
      if (name === 'wasm-scalar' && want === 'auto' && simd) notice(`the SIMD kernels failed to load (${failures.join('; ')}); using the scalar kernels.`);
      return engine;
    } catch (e) {
      failures.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new EdgeKVError('E_BACKEND', `no backend could be created:\n  ${failures.join('\n  ')}`);
}

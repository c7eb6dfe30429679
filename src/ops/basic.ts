/**
 * Validated, user-facing wrappers over the basic kernels (f16 conversion, dot, axpy,
 * scale, fast Walsh-Hadamard transform, gather / compact, Hamming distances).
 *
 * Each takes plain typed arrays (f16 data as `Uint16Array` of IEEE binary16 bits), checks
 * every precondition — types, lengths, finite values, powers of two, index ranges — and
 * throws an `EdgeKVError` before any WebAssembly call or allocation, so a rejected call
 * changes nothing. Then it copies the inputs into the engine's arena, runs the kernel,
 * copies the result out and frees what it allocated.
 *
 * These are for convenience and tests: the copies cost more than the kernels. Hot paths
 * (the cache, attention) keep their data resident in WebAssembly memory and call
 * `engine.kernels` directly.
 */
import { Engine } from '../engine.ts';
import { EdgeKVError, argError, checkF32, checkInt, checkNum, shapeError } from '../errors.ts';

/** Largest element count one call accepts (what 32-bit WebAssembly memory can hold as f32). */
export const MAX_ELEMENTS = 2 ** 28;
/** Largest transform length `fwht` accepts. */
export const MAX_FWHT_LENGTH = 2 ** 24;
/** Magnitudes at or above this round to f16 Infinity. */
const F16_OVERFLOW = 65520;
/** f16 exponent field: all ones means Inf or NaN. */
const F16_EXP_MASK = 0x7c00;
/** Largest finite f32: scalars cross into WebAssembly as f32. */
const F32_MAX = 3.4028234663852886e38;

/** Typed arrays the row operations accept. */
export type RowArray = Float32Array | Float64Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array;

/** Options of `encodeF16`. */
export interface EncodeF16Options {
  /**
   * Default false: NaN, ±Infinity and magnitudes that would round to f16 Infinity
   * (|x| >= 65520) are rejected. true: they are encoded (NaN stays NaN, overflow gives ±Inf).
   */
  allowNonFinite?: boolean;
}

function checkEngine(engine: unknown): Engine {
  if (!(engine instanceof Engine)) throw argError('engine', engine, 'an Engine from createEngine()');
  return engine;
}

function checkU16(name: string, v: unknown, len?: number): Uint16Array {
  if (!(v instanceof Uint16Array)) throw argError(name, v, `a Uint16Array of f16 bits${len === undefined ? '' : ` of length ${len}`}`);
  if (len !== undefined && v.length !== len) throw shapeError(name, `length ${v.length}`, `length ${len}`);
  if (v.length > MAX_ELEMENTS) throw shapeError(name, `length ${v.length}`, `at most ${MAX_ELEMENTS} elements`);
  return v;
}

function checkF32Any(name: string, v: unknown, finite = true): Float32Array {
  if (!(v instanceof Float32Array)) throw argError(name, v, 'a Float32Array');
  if (v.length > MAX_ELEMENTS) throw shapeError(name, `length ${v.length}`, `at most ${MAX_ELEMENTS} elements`);
  return checkF32(name, v, v.length, finite);
}

/** Reject f16 Inf / NaN patterns (data the kernels would compute with must be finite). */
function checkF16Finite(name: string, h: Uint16Array): void {
  for (let i = 0; i < h.length; i++) {
    if ((h[i] & F16_EXP_MASK) === F16_EXP_MASK) {
      throw new EdgeKVError('E_NONFINITE', `${name}[${i}] = 0x${h[i].toString(16)} is an f16 ${h[i] & 0x3ff ? 'NaN' : 'Infinity'}; only finite values are allowed`, name);
    }
  }
}

function bytesOf(a: RowArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Allocate, run, free: `fn` gets `put(array)` (allocate and copy in) / `put(null, bytes)`
 * (allocate only); every pointer is freed afterwards, even when something throws.
 */
function withScratch<R>(engine: Engine, fn: (put: (a: RowArray | null, bytes?: number) => number) => R): R {
  const ptrs: number[] = [];
  const put = (a: RowArray | null, bytes = 0): number => {
    const size = a ? a.byteLength : bytes;
    const p = engine.arena.alloc(size);
    ptrs.push(p);
    if (a) engine.u8(p, size).set(bytesOf(a));
    return p;
  };
  try {
    return fn(put);
  } finally {
    for (const p of ptrs) engine.arena.free(p);
  }
}

/**
 * Encode f32 values as IEEE binary16 (round to nearest, ties to even; results below 2^-14
 * become f16 subnormals). `x`: any length; `out` (optional): a Uint16Array of the same length.
 * Returns `out` (or a new array). See `EncodeF16Options` for NaN / Inf / overflow.
 */
export function encodeF16(engine: Engine, x: Float32Array, out?: Uint16Array, options: EncodeF16Options = {}): Uint16Array {
  checkEngine(engine);
  const allow = options?.allowNonFinite ?? false;
  if (typeof allow !== 'boolean') throw argError('options.allowNonFinite', allow, 'true or false');
  checkF32Any('x', x, !allow);
  if (out !== undefined) checkU16('out', out, x.length);
  if (!allow) {
    for (let i = 0; i < x.length; i++) {
      if (Math.abs(x[i]) >= F16_OVERFLOW) {
        throw argError(`x[${i}]`, x[i], `a magnitude below ${F16_OVERFLOW} (the f16 range; 65504 is the largest f16)`, 'scale the data down, or pass { allowNonFinite: true } to get ±Infinity');
      }
    }
  }
  const dst = out ?? new Uint16Array(x.length);
  withScratch(engine, (put) => {
    const s = put(x), d = put(null, 2 * x.length);
    engine.kernels.f32ToF16(s, d, x.length);
    dst.set(engine.u16(d, x.length));
  });
  return dst;
}

/** Decode IEEE binary16 bits to f32, exactly (every bit pattern, Inf and NaN included). */
export function decodeF16(engine: Engine, h: Uint16Array, out?: Float32Array): Float32Array {
  checkEngine(engine);
  checkU16('h', h);
  if (out !== undefined) checkF32('out', out, h.length, false);
  const dst = out ?? new Float32Array(h.length);
  withScratch(engine, (put) => {
    const s = put(h), d = put(null, 4 * h.length);
    engine.kernels.f16ToF32(s, d, h.length);
    dst.set(engine.f32(d, h.length));
  });
  return dst;
}

/** Dot product of two finite f32 vectors of equal length (f32 accumulation). */
export function dotF32(engine: Engine, a: Float32Array, b: Float32Array): number {
  checkEngine(engine);
  checkF32Any('a', a);
  checkF32('b', b, a.length);
  return withScratch(engine, (put) => engine.kernels.dotF32(put(a), put(b), a.length));
}

/** Dot product of a finite f16 vector `a` (Uint16Array bits) with a finite f32 vector `b`. */
export function dotF16(engine: Engine, a: Uint16Array, b: Float32Array): number {
  checkEngine(engine);
  checkU16('a', a);
  checkF16Finite('a', a);
  checkF32('b', b, a.length);
  return withScratch(engine, (put) => engine.kernels.dotF16(put(a), put(b), a.length));
}

/** y += alpha * x over f32, in place (returns y). alpha, x and y finite; equal lengths. */
export function axpyF32(engine: Engine, alpha: number, x: Float32Array, y: Float32Array): Float32Array {
  checkEngine(engine);
  checkNum('alpha', alpha, -F32_MAX, F32_MAX);
  checkF32Any('x', x);
  checkF32('y', y, x.length);
  withScratch(engine, (put) => {
    const py = put(y);
    engine.kernels.axpyF32(alpha, put(x), py, x.length);
    y.set(engine.f32(py, y.length));
  });
  return y;
}

/** y += alpha * f32(x) with x in f16 storage (Uint16Array bits), y f32, in place (returns y). */
export function axpyF16(engine: Engine, alpha: number, x: Uint16Array, y: Float32Array): Float32Array {
  checkEngine(engine);
  checkNum('alpha', alpha, -F32_MAX, F32_MAX);
  checkU16('x', x);
  checkF16Finite('x', x);
  checkF32('y', y, x.length);
  withScratch(engine, (put) => {
    const py = put(y);
    engine.kernels.axpyF16(alpha, put(x), py, x.length);
    y.set(engine.f32(py, y.length));
  });
  return y;
}

/** x *= alpha over f32, in place (returns x). alpha and x finite. */
export function scaleF32(engine: Engine, alpha: number, x: Float32Array): Float32Array {
  checkEngine(engine);
  checkNum('alpha', alpha, -F32_MAX, F32_MAX);
  checkF32Any('x', x);
  withScratch(engine, (put) => {
    const p = put(x);
    engine.kernels.scaleF32(alpha, p, x.length);
    x.set(engine.f32(p, x.length));
  });
  return x;
}

/**
 * x = f16(alpha * f32(x)) over f16 storage (Uint16Array bits), in place (returns x).
 * alpha and x finite; a product that would round to f16 Infinity is rejected.
 */
export function scaleF16(engine: Engine, alpha: number, x: Uint16Array): Uint16Array {
  checkEngine(engine);
  checkNum('alpha', alpha, -F32_MAX, F32_MAX);
  checkU16('x', x);
  checkF16Finite('x', x);
  const fa = Math.fround(alpha);
  let maxAbs = 0;
  let at = -1;
  for (let i = 0; i < x.length; i++) {
    const v = Math.abs(f16Value(x[i]));
    if (v > maxAbs) { maxAbs = v; at = i; }
  }
  if (at >= 0 && Math.abs(Math.fround(fa * maxAbs)) >= F16_OVERFLOW) {
    throw argError('alpha', alpha, `|alpha| < ${F16_OVERFLOW / maxAbs} here (x[${at}] = ${f16Value(x[at])}; products must stay below ${F16_OVERFLOW}, the f16 range)`);
  }
  withScratch(engine, (put) => {
    const p = put(x);
    engine.kernels.scaleF16(fa, p, x.length);
    x.set(engine.u16(p, x.length));
  });
  return x;
}

/** Value of f16 bits (finite patterns only; used for range checks). */
function f16Value(h: number): number {
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
}

/**
 * Orthonormal fast Walsh-Hadamard transform, in place (returns x): each of the
 * `x.length / n` contiguous vectors of length `n` becomes H_n v / sqrt(n). `n` a power of
 * two in [1, 2^24]; `x.length` a multiple of n; x finite. Applying it twice gives x back
 * (to f32 rounding).
 */
export function fwht(engine: Engine, x: Float32Array, n: number): Float32Array {
  checkEngine(engine);
  checkInt('n', n, 1, MAX_FWHT_LENGTH);
  if ((n & (n - 1)) !== 0) throw argError('n', n, 'a power of two (1, 2, 4, ..., 2^24)', 'pad each vector with zeros to the next power of two');
  checkF32Any('x', x);
  if (x.length % n !== 0) throw shapeError('x', `length ${x.length}`, `a multiple of n = ${n} ([count, n])`);
  withScratch(engine, (put) => {
    const p = put(x);
    engine.kernels.fwht(p, n, x.length / n);
    x.set(engine.f32(p, x.length));
  });
  return x;
}

function checkRows(name: string, data: unknown, rowLength: number): number {
  const ok = data instanceof Float32Array || data instanceof Float64Array || data instanceof Int32Array || data instanceof Uint32Array
    || data instanceof Int16Array || data instanceof Uint16Array || data instanceof Int8Array || data instanceof Uint8Array;
  if (!ok) throw argError(name, data, 'a typed array (Float32Array, Float64Array, Int32Array, Uint32Array, Int16Array, Uint16Array, Int8Array or Uint8Array)');
  const a = data as RowArray;
  if (a.length > MAX_ELEMENTS) throw shapeError(name, `length ${a.length}`, `at most ${MAX_ELEMENTS} elements`);
  if (a.length % rowLength !== 0) throw shapeError(name, `length ${a.length}`, `a multiple of rowLength = ${rowLength} ([rows, rowLength])`);
  return a.length / rowLength;
}

function checkIndexList(name: string, idx: unknown, rows: number, ascending: boolean): Int32Array {
  if (!(idx instanceof Int32Array) && !Array.isArray(idx)) throw argError(name, idx, 'an Int32Array or an array of row indices');
  const list = idx as ArrayLike<unknown>;
  if (list.length > MAX_ELEMENTS) throw shapeError(name, `length ${list.length}`, `at most ${MAX_ELEMENTS} indices`);
  const out = new Int32Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= rows) {
      throw argError(`${name}[${i}]`, v, rows > 0 ? `an integer row index in [0, ${rows - 1}]` : 'nothing (the source has no rows)');
    }
    if (ascending && i > 0 && v <= out[i - 1]) {
      throw argError(`${name}[${i}]`, v, `an index greater than ${name}[${i - 1}] = ${out[i - 1]} (indices must be strictly ascending)`);
    }
    out[i] = v;
  }
  return out;
}

/**
 * Gather rows: returns a new array of the same type whose row i is row idx[i] of `src`
 * (`src` is `[rows, rowLength]`; `idx` any order, repeats allowed, each in [0, rows)).
 */
export function gatherRows<T extends RowArray>(engine: Engine, src: T, rowLength: number, idx: Int32Array | number[]): T {
  checkEngine(engine);
  checkInt('rowLength', rowLength, 1, MAX_ELEMENTS);
  const rows = checkRows('src', src, rowLength);
  const list = checkIndexList('idx', idx, rows, false);
  const Ctor = src.constructor as new (n: number) => T;
  const dst = new Ctor(list.length * rowLength);
  const rowBytes = rowLength * src.BYTES_PER_ELEMENT;
  withScratch(engine, (put) => {
    const ps = put(src), pi = put(list), pd = put(null, dst.byteLength);
    engine.kernels.gatherRows(ps, pd, pi, list.length, rowBytes);
    bytesOf(dst).set(engine.u8(pd, dst.byteLength));
  });
  return dst;
}

/**
 * Compact rows in place: row i of `data` becomes row idx[i] (`idx` strictly ascending, each
 * in [0, rows)). Returns the first `idx.length` rows as a subarray of `data`; the rows after
 * them are left as they were.
 */
export function compactRows<T extends RowArray>(engine: Engine, data: T, rowLength: number, idx: Int32Array | number[]): T {
  checkEngine(engine);
  checkInt('rowLength', rowLength, 1, MAX_ELEMENTS);
  const rows = checkRows('data', data, rowLength);
  const list = checkIndexList('idx', idx, rows, true);
  const rowBytes = rowLength * data.BYTES_PER_ELEMENT;
  withScratch(engine, (put) => {
    const pd = put(data), pi = put(list);
    engine.kernels.compactRows(pd, pi, list.length, rowBytes);
    bytesOf(data).set(engine.u8(pd, data.byteLength));
  });
  return data.subarray(0, list.length * rowLength) as T;
}

/**
 * Hamming distance of each packed bit row to an anchor (KVCrush, arXiv 2503.00022):
 * `bits` is `[n, words]` u32, `anchor` `[words]`; returns `Int32Array(n)`.
 */
export function hammingRows(engine: Engine, bits: Uint32Array, words: number, anchor: Uint32Array): Int32Array {
  checkEngine(engine);
  checkInt('words', words, 1, MAX_ELEMENTS);
  if (!(bits instanceof Uint32Array)) throw argError('bits', bits, 'a Uint32Array of packed bit rows [n, words]');
  if (bits.length % words !== 0) throw shapeError('bits', `length ${bits.length}`, `a multiple of words = ${words} ([n, words])`);
  if (!(anchor instanceof Uint32Array)) throw argError('anchor', anchor, `a Uint32Array of length ${words}`);
  if (anchor.length !== words) throw shapeError('anchor', `length ${anchor.length}`, `length ${words} (= words)`);
  const n = bits.length / words;
  const out = new Int32Array(n);
  withScratch(engine, (put) => {
    const pb = put(bits), pa = put(anchor), po = put(null, 4 * n);
    engine.kernels.hammingRows(pb, n, words, pa, po);
    out.set(engine.i32(po, n));
  });
  return out;
}

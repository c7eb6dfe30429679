/**
 * Validated, user-facing decode attention over paged KV (the kernels of
 * assembly/kernels/quant.ts and attention.ts).
 *
 * - `packLane(engine, {format, headDim, keys, values, ...})` stores one lane's entries
 *   in pages of `PAGE_TOKENS` entries inside the engine's WebAssembly memory, in f32,
 *   f16 or packed int8/int4/int2 (KIVI layouts, arXiv 2402.02750: keys quantized per
 *   channel over a page's tokens, values per token over groups of `valueGroup` channels,
 *   f16 scales and minima).
 * - `attend(engine, lanes, queries, options)` runs decode attention of the G query heads
 *   of one GQA group over one or several lanes (tiers) in one online-softmax pass, with
 *   each entry's log-weight added to its logit; optional log-sum-exp, raw logits and
 *   probabilities out.
 *
 * Every argument is checked before anything is allocated or any kernel runs; a rejected
 * call throws an `EdgeKVError` and changes nothing. The cache (src/cache/) calls the
 * kernels directly on its own pages; this module is the standalone entry point and the
 * one the attention benchmark uses to build its lanes.
 */
import { Engine } from '../engine.ts';
import { EdgeKVError, argError, checkInt, checkKeys, checkNum, checkOneOf, shapeError } from '../errors.ts';
import { FORMATS, FORMAT_CODE, PAGE_TOKENS, defaultValueGroup, pageBytes, type Format } from '../formats.ts';

/** Largest GQA group (query heads per KV head) the kernels accept (assembly MAX_GROUP). */
export const MAX_GROUP = 32;
/** Largest head dim the kernels accept (assembly MAX_HEAD_DIM). */
export const MAX_HEAD_DIM = 256;
/** Head dims must be a multiple of this (SIMD tiles of 8 channels). */
export const HEAD_DIM_MULTIPLE = 8;
/** Value groups must be a multiple of this (SIMD vectors of 4 channels never straddle groups). */
export const VALUE_GROUP_MULTIPLE = 4;
/** Largest finite binary16: f16 pages, scales and minima cannot hold more. */
export const F16_MAX = 65504;
/** Most entries one lane built by `packLane` may hold. */
export const MAX_LANE_ENTRIES = 1 << 24;
/** Bytes of one page-table row: [pagePtr i32, count i32]. */
const TABLE_ROW_BYTES = 8;

/** Options of `packLane`. */
export interface PackLaneOptions {
  /** Storage format: 'f32' | 'f16' | 'int8' | 'int4' | 'int2'. */
  format: Format;
  /** Head dim d: a multiple of 8 in [8, 256]. */
  headDim: number;
  /** Keys `[n][headDim]` (post-RoPE), finite; |x| <= 65504 unless format is 'f32'. */
  keys: Float32Array;
  /** Values `[n][headDim]`, same rules as keys. */
  values: Float32Array;
  /** Log-weights `[n]` added to the logits (default 0: exact tokens); finite or -Infinity (masked). */
  logWeights?: Float32Array;
  /** Original positions `[n]` (default 0, 1, ..., n-1). */
  positions?: Int32Array;
  /** Channels per value quantization group (packed formats): divides headDim, multiple of 4. Default min(32, headDim). */
  valueGroup?: number;
}

const PACK_OPTIONS = ['format', 'headDim', 'keys', 'values', 'logWeights', 'positions', 'valueGroup'] as const;

/** Options of `attend`. */
export interface AttendOptions {
  /** Logit scale (default 1/sqrt(headDim)). */
  scale?: number;
  /** Write the output here (`[G][headDim]`) instead of a new array. */
  out?: Float32Array;
  /** Return the log-sum-exp per head (default false). */
  lse?: boolean;
  /** Return the raw logits `[G][n]` over all entries of all lanes, in order (default false). */
  logits?: boolean;
  /** Return the attention probabilities `[G][n]` (default false). */
  probabilities?: boolean;
}

const ATTEND_OPTIONS = ['scale', 'out', 'lse', 'logits', 'probabilities'] as const;

/** What `attend` returns. */
export interface AttendResult {
  /** `[G][headDim]` attention output (0 for a head with no live entry). */
  out: Float32Array;
  /** `[G]` log-sum-exp of the logits (-Infinity with no live entry), when asked for. */
  lse?: Float32Array;
  /** `[G][n]` raw logits scale*<q, k> + logW, when asked for. */
  logits?: Float32Array;
  /** `[G][n]` softmax probabilities, when asked for. */
  probabilities?: Float32Array;
}

/** One lane's entries stored in pages in WebAssembly memory. Free it with `dispose()`. */
export class PagedLane {
  readonly engine: Engine;
  readonly format: Format;
  readonly headDim: number;
  readonly valueGroup: number;
  /** Entries held. */
  readonly length: number;
  private pages: number[];
  private counts: number[];
  private tablePtr: number;
  private disposed = false;

  /** @internal use `packLane`. */
  constructor(engine: Engine, format: Format, headDim: number, valueGroup: number, pages: number[], counts: number[], tablePtr: number) {
    this.engine = engine;
    this.format = format;
    this.headDim = headDim;
    this.valueGroup = valueGroup;
    this.pages = pages;
    this.counts = counts;
    this.tablePtr = tablePtr;
    this.length = counts.reduce((a, b) => a + b, 0);
  }

  /** Number of pages. */
  get pageCount(): number { return this.pages.length; }
  /** Bytes this lane holds in WebAssembly memory, pages as stored (payload, scales, minima, positions, log-weights). */
  get bytes(): number { return this.pages.length * pageBytes(this.format, this.headDim, this.valueGroup); }
  /** Whether `dispose()` was called. */
  get isDisposed(): boolean { return this.disposed; }
  /** @internal page table pointer: i32 pairs [pagePtr, count]. */
  get table(): number { this.checkLive('lane'); return this.tablePtr; }

  /** Read the entries back (keys/values dequantized to f32). */
  read(): { keys: Float32Array; values: Float32Array; logWeights: Float32Array; positions: Int32Array } {
    this.checkLive('lane');
    const e = this.engine, d = this.headDim, n = this.length;
    const keys = new Float32Array(n * d), values = new Float32Array(n * d);
    const logWeights = new Float32Array(n), positions = new Int32Array(n);
    const tmp = e.arena.alloc((2 * PAGE_TOKENS * d + 2 * PAGE_TOKENS) * 4);
    try {
      const kp = tmp, vp = kp + PAGE_TOKENS * d * 4, wp = vp + PAGE_TOKENS * d * 4, pp = wp + PAGE_TOKENS * 4;
      let at = 0;
      for (let i = 0; i < this.pages.length; i++) {
        const c = this.counts[i];
        e.kernels.unpackPage(FORMAT_CODE[this.format], d, this.valueGroup, c, this.pages[i], kp, vp, wp, pp);
        keys.set(e.f32(kp, c * d), at * d);
        values.set(e.f32(vp, c * d), at * d);
        logWeights.set(e.f32(wp, c), at);
        positions.set(e.i32(pp, c), at);
        at += c;
      }
    } finally {
      e.arena.free(tmp);
    }
    return { keys, values, logWeights, positions };
  }

  /** Give the pages back to the arena. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const p of this.pages) this.engine.arena.free(p);
    this.engine.arena.free(this.tablePtr);
    this.pages = [];
  }

  /** @internal */
  checkLive(name: string): void {
    if (this.disposed) throw new EdgeKVError('E_STATE', `${name} was disposed; pack it again with packLane()`, name);
  }
}

function checkEngine(engine: unknown): Engine {
  if (!(engine instanceof Engine)) throw argError('engine', engine, 'an Engine from createEngine()');
  return engine;
}

/** Check a Float32Array of `len` finite values with |x| <= limit. */
function checkData(name: string, v: unknown, len: number, limit: number): Float32Array {
  if (!(v instanceof Float32Array)) throw argError(name, v, `a Float32Array of length ${len}`);
  if (v.length !== len) throw shapeError(name, `length ${v.length}`, `length ${len}`);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (!Number.isFinite(x)) throw new EdgeKVError('E_NONFINITE', `${name}[${i}] = ${x} is not finite; keys, values and queries must be finite numbers`, name);
    if (Math.abs(x) > limit) throw argError(`${name}[${i}]`, x, `a magnitude <= ${limit} (the f16 range used by this format's storage)`, 'use format "f32", or rescale the data');
  }
  return v;
}

/**
 * Store one lane's entries in pages of `options.format` (see `PackLaneOptions`).
 * Returns a `PagedLane` living in `engine`'s memory.
 */
export function packLane(engine: Engine, options: PackLaneOptions): PagedLane {
  const e = checkEngine(engine);
  if (options === null || typeof options !== 'object') throw argError('options', options, 'an object');
  checkKeys('options', options, PACK_OPTIONS);
  const format = checkOneOf('options.format', options.format, FORMATS);
  const d = checkInt('options.headDim', options.headDim, HEAD_DIM_MULTIPLE, MAX_HEAD_DIM);
  if (d % HEAD_DIM_MULTIPLE !== 0) throw new EdgeKVError('E_UNSUPPORTED', `options.headDim = ${d} is not supported: expected a multiple of ${HEAD_DIM_MULTIPLE} in [${HEAD_DIM_MULTIPLE}, ${MAX_HEAD_DIM}]`, 'options.headDim');
  const vg = options.valueGroup === undefined ? defaultValueGroup(d) : checkInt('options.valueGroup', options.valueGroup, VALUE_GROUP_MULTIPLE, d);
  if (d % vg !== 0 || vg % VALUE_GROUP_MULTIPLE !== 0) {
    throw argError('options.valueGroup', vg, `a multiple of ${VALUE_GROUP_MULTIPLE} that divides headDim = ${d}`);
  }
  if (!(options.keys instanceof Float32Array)) throw argError('options.keys', options.keys, `a Float32Array of [n][${d}]`);
  if (options.keys.length % d !== 0) throw shapeError('options.keys', `length ${options.keys.length}`, `a multiple of headDim = ${d} ([n][headDim])`);
  const n = options.keys.length / d;
  if (n > MAX_LANE_ENTRIES) throw shapeError('options.keys', `${n} entries`, `at most ${MAX_LANE_ENTRIES}`);
  const limit = format === 'f32' ? Number.MAX_VALUE : F16_MAX;
  checkData('options.keys', options.keys, n * d, limit);
  checkData('options.values', options.values, n * d, limit);
  const logW = options.logWeights ?? new Float32Array(n);
  if (!(logW instanceof Float32Array)) throw argError('options.logWeights', logW, `a Float32Array of length ${n}`);
  if (logW.length !== n) throw shapeError('options.logWeights', `length ${logW.length}`, `length ${n} (one per entry)`);
  for (let i = 0; i < n; i++) {
    if (!(Number.isFinite(logW[i]) || logW[i] === -Infinity)) {
      throw new EdgeKVError('E_NONFINITE', `options.logWeights[${i}] = ${logW[i]} is not allowed: expected a finite number or -Infinity (masked)`, 'options.logWeights');
    }
  }
  const pos = options.positions ?? Int32Array.from({ length: n }, (_, i) => i);
  if (!(pos instanceof Int32Array)) throw argError('options.positions', pos, `an Int32Array of length ${n}`);
  if (pos.length !== n) throw shapeError('options.positions', `length ${pos.length}`, `length ${n} (one per entry)`);

  // Everything is valid: allocate (freeing all on failure, so a rejected call changes nothing).
  const nPages = Math.ceil(n / PAGE_TOKENS);
  const counts = Array.from({ length: nPages }, (_, i) => Math.min(PAGE_TOKENS, n - i * PAGE_TOKENS));
  const bytes = pageBytes(format, d, vg);
  const pages: number[] = [];
  let table = 0, tmp = 0;
  try {
    for (let i = 0; i < nPages; i++) pages.push(e.arena.alloc(bytes));
    table = e.arena.alloc(TABLE_ROW_BYTES * Math.max(1, nPages));
    tmp = e.arena.alloc((2 * PAGE_TOKENS * d + 2 * PAGE_TOKENS) * 4);
  } catch (err) {
    for (const p of pages) e.arena.free(p);
    if (table) e.arena.free(table);
    throw err;
  }
  const kp = tmp, vp = kp + PAGE_TOKENS * d * 4, wp = vp + PAGE_TOKENS * d * 4, pp = wp + PAGE_TOKENS * 4;
  const code = FORMAT_CODE[format];
  for (let i = 0; i < nPages; i++) {
    const at = i * PAGE_TOKENS, c = counts[i];
    e.f32(kp, c * d).set(options.keys.subarray(at * d, (at + c) * d));
    e.f32(vp, c * d).set(options.values.subarray(at * d, (at + c) * d));
    e.f32(wp, c).set(logW.subarray(at, at + c));
    e.i32(pp, c).set(pos.subarray(at, at + c));
    e.kernels.packPage(code, d, vg, c, kp, vp, wp, pp, pages[i]);
  }
  e.arena.free(tmp);
  const t = e.i32(table, 2 * nPages);
  for (let i = 0; i < nPages; i++) { t[2 * i] = pages[i]; t[2 * i + 1] = counts[i]; }
  return new PagedLane(e, format, d, vg, pages, counts, table);
}

/**
 * Decode attention of the G query heads `queries: [G][headDim]` of one GQA group over
 * `lanes` (one lane, or several tiers of one lane: all with the same head dim, any
 * formats), in one online-softmax pass:
 * out_h = sum_e softmax_e(scale * <q_h, k_e> + logW_e) v_e.
 */
export function attend(engine: Engine, lanes: PagedLane | PagedLane[], queries: Float32Array, options: AttendOptions = {}): AttendResult {
  const e = checkEngine(engine);
  const list = Array.isArray(lanes) ? lanes : [lanes];
  if (list.length === 0) throw argError('lanes', lanes, 'a PagedLane or a non-empty array of them');
  list.forEach((l, i) => {
    if (!(l instanceof PagedLane)) throw argError(`lanes[${i}]`, l, 'a PagedLane from packLane()');
    l.checkLive(`lanes[${i}]`);
    if (l.engine !== e) throw argError(`lanes[${i}]`, 'a lane of another engine', 'lanes packed with this engine');
  });
  const d = list[0].headDim;
  list.forEach((l, i) => {
    if (l.headDim !== d) throw shapeError(`lanes[${i}].headDim`, l.headDim, `${d} (all lanes of one call share the head dim)`);
  });
  if (options === null || typeof options !== 'object') throw argError('options', options, 'an object');
  checkKeys('options', options, ATTEND_OPTIONS);
  if (!(queries instanceof Float32Array)) throw argError('queries', queries, `a Float32Array of [G][${d}]`);
  if (queries.length % d !== 0 || queries.length === 0) throw shapeError('queries', `length ${queries.length}`, `G * headDim = G * ${d} with 1 <= G <= ${MAX_GROUP}`);
  const G = queries.length / d;
  if (G > MAX_GROUP) throw shapeError('queries', `${G} heads`, `at most ${MAX_GROUP} query heads per KV head (GQA group)`);
  checkData('queries', queries, G * d, Number.MAX_VALUE);
  const scale = options.scale === undefined ? 1 / Math.sqrt(d) : checkNum('options.scale', options.scale, -1e30, 1e30);
  if (options.out !== undefined) {
    if (!(options.out instanceof Float32Array)) throw argError('options.out', options.out, `a Float32Array of length ${G * d}`);
    if (options.out.length !== G * d) throw shapeError('options.out', `length ${options.out.length}`, `length ${G * d} ([G][headDim])`);
  }
  for (const k of ['lse', 'logits', 'probabilities'] as const) {
    if (options[k] !== undefined && typeof options[k] !== 'boolean') throw argError(`options.${k}`, options[k], 'true or false');
  }
  const n = list.reduce((a, l) => a + l.length, 0);
  const wantRow = !!(options.logits || options.probabilities);

  const ptrs: number[] = [];
  const alloc = (bytes: number): number => { const p = e.arena.alloc(Math.max(bytes, 16)); ptrs.push(p); return p; };
  try {
    const state = alloc(4 * (2 * G + G * d));
    const qp = alloc(4 * G * d);
    const outp = alloc(4 * G * d);
    const lsep = alloc(4 * G);
    const row = wantRow ? alloc(4 * G * n) : 0;
    e.f32(qp, G * d).set(queries);
    e.kernels.attnInit(state, G, d);
    let at = 0;
    for (const l of list) {
      if (l.pageCount > 0) {
        e.kernels.attendPages(l.table, l.pageCount, FORMAT_CODE[l.format], d, l.valueGroup, qp, G, scale, state, row ? row + 4 * at : 0, n);
      }
      at += l.length;
    }
    e.kernels.attnFinish(state, G, d, outp, lsep);
    const out = options.out ?? new Float32Array(G * d);
    out.set(e.f32(outp, G * d));
    const result: AttendResult = { out };
    if (options.lse) result.lse = e.f32(lsep, G).slice();
    if (options.logits) result.logits = e.f32(row, G * n).slice();
    if (options.probabilities) {
      e.kernels.probsFromLogits(row, G, n, n, lsep);
      result.probabilities = e.f32(row, G * n).slice();
    }
    return result;
  } finally {
    for (const p of ptrs) e.arena.free(p);
  }
}

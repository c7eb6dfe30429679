/**
 * Lanes and their pages. A lane is one (layer, KV head) stream of entries in position
 * order, kept in three tiers, each a page table of one format:
 *
 *   sinks  (exact)  the first `sinkTokens` entries ever appended, never evicted
 *   mid    (lane's `precision`)  the compressed middle: packed int8/int4/int2 pages
 *                   (KIVI layouts) or exact pages when the precision is f32/f16
 *   tail   (exact)  the full-precision residual (< PAGE_TOKENS entries) followed by
 *                   the recent window; whole pages move from here to `mid`, so keys
 *                   are always quantized per channel over a whole page of tokens
 *
 * Invariants between public calls: `sinks` and `tail` pages are dense (all full but
 * the last), `mid` holds ceil(entries / PAGE_TOKENS) pages plus at most the spare
 * allowance of a packed tier (budget/types.ts `sparePages`), and the tail holds
 * fewer than `windowTokens + PAGE_TOKENS` entries. Pages come from the engine's arena
 * and go back to it as soon as a lane shrinks.
 *
 * `PageStore` does every KV movement with kernels inside WASM memory (packPage,
 * unpackPage, gatherRows, compactRows); the host only moves pointers and counts.
 */
import type { Engine } from '../engine.ts';
import { EdgeKVError } from '../errors.ts';
import { FORMAT_CODE, PAGE_TOKENS, PAYLOAD_OFFSET, isPacked, packedOffsets, pageBytes, type Format } from '../formats.ts';

/** One page table of a single format. */
export class Tier {
  readonly ptrs: number[] = [];
  readonly counts: number[] = [];
  entries = 0;
  constructor(public format: Format) {}
  get pages(): number { return this.ptrs.length; }
}

/** One (layer, KV head) lane. */
export class Lane {
  readonly sinks: Tier;
  readonly mid: Tier;
  readonly tail: Tier;
  /** Per-entry policy state, `[tokens][width]` (capacity may exceed). */
  state: Float64Array;
  constructor(
    readonly layer: number,
    readonly kvHead: number,
    exact: Format,
    precision: Format,
    /** Hard cap on entries between public calls (Infinity: none). */
    public cap: number,
    /** Entries kept after a compression (cap − slack, at least sinks + window). */
    public target: number,
    readonly stateWidth: number,
  ) {
    this.sinks = new Tier(exact);
    this.mid = new Tier(precision);
    this.tail = new Tier(exact);
    this.state = new Float64Array(stateWidth * PAGE_TOKENS);
  }
  get tokens(): number { return this.sinks.entries + this.mid.entries + this.tail.entries; }
  /** Tiers in entry order. */
  get tiers(): [Tier, Tier, Tier] { return [this.sinks, this.mid, this.tail]; }

  /** Make room for `tokens` entries of state, keeping the first `keep` numbers. */
  ensureState(tokens: number): void {
    const need = tokens * this.stateWidth;
    if (need <= this.state.length) return;
    const next = new Float64Array(Math.max(need, this.state.length * 2));
    next.set(this.state);
    this.state = next;
  }
}

/**
 * Named scratch buffers in WASM memory, grown on demand (old block freed). Take all
 * pointers a step needs first, then build views: growing may move `memory.buffer`.
 */
export class Scratch {
  private readonly blocks = new Map<string, { ptr: number; bytes: number }>();
  constructor(private readonly engine: Engine) {}
  get(name: string, bytes: number): number {
    const b = this.blocks.get(name);
    if (b && b.bytes >= bytes) return b.ptr;
    const size = Math.max(bytes, b ? Math.min(b.bytes * 2, bytes * 2) : bytes, 16);
    const ptr = this.engine.arena.alloc(size);
    if (b) this.engine.arena.free(b.ptr);
    this.blocks.set(name, { ptr, bytes: size });
    return ptr;
  }
  /** Bytes held (arena block sizes). */
  get bytes(): number {
    let n = 0;
    for (const b of this.blocks.values()) n += this.engine.arena.sizeOf(b.ptr);
    return n;
  }
  freeAll(): void {
    for (const b of this.blocks.values()) this.engine.arena.free(b.ptr);
    this.blocks.clear();
  }
}

/** Row buffers for up to `rows` entries: K, V ([rows][d] f32), logW (f32), pos (i32). */
export interface Rows { k: number; v: number; w: number; p: number; }

/** A source page for `repack`, with the rows to take (all when `rows` is null). */
export interface RepackSource { ptr: number; format: Format; count: number; rows: Int32Array | null; }

/**
 * Told of every change to a page's bytes and of every page freed, so that a copy of the
 * pages elsewhere (the WebGPU mirror, src/cache/gpu.ts) re-uploads only what changed.
 */
export interface PageWatcher {
  written(ptr: number): void;
  freed(ptr: number): void;
}

/** Page operations over WASM memory for one cache geometry. */
export class PageStore {
  readonly d: number;
  readonly vg: number;
  /** Notified of page writes and frees (null: nothing mirrors the pages). */
  watcher: PageWatcher | null = null;
  private readonly pageBytesCache = new Map<Format, number>();
  constructor(readonly engine: Engine, readonly scratch: Scratch, headDim: number, valueGroup: number) {
    this.d = headDim;
    this.vg = valueGroup;
  }

  pageBytes(format: Format): number {
    let b = this.pageBytesCache.get(format);
    if (b === undefined) this.pageBytesCache.set(format, (b = pageBytes(format, this.d, this.vg)));
    return b;
  }
  alloc(format: Format): number {
    const ptr = this.engine.arena.alloc(this.pageBytes(format));
    this.watcher?.written(ptr);
    return ptr;
  }
  free(ptr: number): void {
    this.watcher?.freed(ptr);
    this.engine.arena.free(ptr);
  }

  /** Scratch rows named `name` with room for `rows` entries. */
  rows(name: string, rows: number): Rows {
    const d = this.d;
    return {
      k: this.scratch.get(`${name}.k`, rows * d * 4),
      v: this.scratch.get(`${name}.v`, rows * d * 4),
      w: this.scratch.get(`${name}.w`, rows * 4),
      p: this.scratch.get(`${name}.p`, rows * 4),
    };
  }

  /**
   * Append `n` rows (from `src`, starting at row `from`) to an exact tier, filling its
   * last page first. New pages are taken from `pool` (pre-allocated) when given.
   */
  appendExact(tier: Tier, src: Rows, from: number, n: number, pool?: number[]): void {
    const e = this.engine, k = e.kernels, d = this.d;
    const f32 = tier.format === 'f32';
    const es = f32 ? 4 : 2;
    let done = 0;
    while (done < n) {
      let last = tier.pages - 1;
      if (last < 0 || tier.counts[last] === PAGE_TOKENS) {
        const ptr = pool && pool.length ? pool.pop()! : this.alloc(tier.format);
        // Unused slots stay zero, so a page's bytes depend only on its entries.
        e.u8(ptr, this.pageBytes(tier.format)).fill(0);
        tier.ptrs.push(ptr); tier.counts.push(0);
        last++;
      }
      const page = tier.ptrs[last], c = tier.counts[last];
      const take = Math.min(PAGE_TOKENS - c, n - done);
      const r = from + done;
      const kDst = page + PAYLOAD_OFFSET + c * d * es;
      const vDst = page + PAYLOAD_OFFSET + (PAGE_TOKENS + c) * d * es;
      if (f32) {
        e.f32(kDst, take * d).set(e.f32(src.k + r * d * 4, take * d));
        e.f32(vDst, take * d).set(e.f32(src.v + r * d * 4, take * d));
      } else {
        k.f32ToF16(src.k + r * d * 4, kDst, take * d);
        k.f32ToF16(src.v + r * d * 4, vDst, take * d);
      }
      e.f32(page + 4 * c, take).set(e.f32(src.w + 4 * r, take));
      e.i32(page + 4 * (PAGE_TOKENS + c), take).set(e.i32(src.p + 4 * r, take));
      tier.counts[last] = c + take;
      tier.entries += take;
      done += take;
      this.watcher?.written(page);
    }
  }

  /** Pages `appendExact` would allocate for `n` more rows. */
  pagesNeeded(tier: Tier, n: number): number {
    const room = tier.pages ? PAGE_TOKENS - tier.counts[tier.pages - 1] : 0;
    return Math.max(0, Math.ceil((n - room) / PAGE_TOKENS));
  }

  /** Unpack a page into rows buffers at row offset `at` (any of k/v may be skipped with 0). */
  unpack(ptr: number, format: Format, count: number, dst: Rows, at: number, keys = true, values = true): void {
    const d = this.d;
    this.engine.kernels.unpackPage(FORMAT_CODE[format], d, this.vg, count, ptr,
      keys ? dst.k + at * d * 4 : 0, values ? dst.v + at * d * 4 : 0, dst.w + at * 4, dst.p + at * 4);
  }

  /** Pack `count` rows of `src` starting at row `at` into a new page of `format`. */
  pack(format: Format, src: Rows, at: number, count: number): number {
    const ptr = this.alloc(format);
    this.packInto(ptr, format, src, at, count);
    return ptr;
  }

  packInto(ptr: number, format: Format, src: Rows, at: number, count: number): void {
    const d = this.d;
    this.engine.kernels.packPage(FORMAT_CODE[format], d, this.vg, count,
      src.k + at * d * 4, src.v + at * d * 4, src.w + at * 4, src.p + at * 4, ptr);
    this.watcher?.written(ptr);
  }

  /**
   * Remove rows from a page in place, keeping `keep` (ascending row indices): every
   * per-entry section is compacted with `compactRows`; per-channel key scales of a
   * packed page stay valid for the remaining tokens, so nothing is re-quantized.
   */
  compactPage(ptr: number, format: Format, count: number, keep: Int32Array): void {
    const e = this.engine, k = e.kernels, d = this.d, n = keep.length;
    const idx = this.scratch.get('idx', PAGE_TOKENS * 4);
    e.i32(idx, n).set(keep);
    const section = (off: number, rowBytes: number) => {
      k.compactRows(ptr + off, idx, n, rowBytes);
      e.u8(ptr + off + n * rowBytes, (count - n) * rowBytes).fill(0); // vacated slots back to zero
    };
    section(0, 4); // logW
    section(4 * PAGE_TOKENS, 4); // pos
    if (isPacked(format)) {
      const o = packedOffsets(format, d, this.vg);
      section(o.kCodes, o.R);
      section(o.vScale, 2 * o.ng);
      section(o.vMin, 2 * o.ng);
      section(o.vCodes, o.R);
    } else {
      const es = format === 'f32' ? 4 : 2;
      section(PAYLOAD_OFFSET, d * es);
      section(PAYLOAD_OFFSET + PAGE_TOKENS * d * es, d * es);
    }
    this.watcher?.written(ptr);
  }

  /**
   * Stream the chosen rows of `sources` (in order) into new dense pages of `format`.
   * Returns the new pages; the sources are left as they are (the caller frees them).
   * On failure (E_OOM) the pages made so far are freed and the error is rethrown.
   */
  repack(sources: RepackSource[], format: Format): { ptrs: number[]; counts: number[] } {
    const e = this.engine, k = e.kernels, d = this.d;
    const inRows = this.rows('rp.in', PAGE_TOKENS);
    const st = this.rows('rp.stage', 2 * PAGE_TOKENS);
    const idx = this.scratch.get('rp.idx', 2 * PAGE_TOKENS * 4);
    const ptrs: number[] = [], counts: number[] = [];
    let staged = 0;
    try {
      for (const s of sources) {
        const n = s.rows ? s.rows.length : s.count;
        if (n === 0) continue;
        this.unpack(s.ptr, s.format, s.count, inRows, 0);
        const ix = e.i32(idx, n);
        if (s.rows) ix.set(s.rows); else for (let i = 0; i < n; i++) ix[i] = i;
        k.gatherRows(inRows.k, st.k + staged * d * 4, idx, n, d * 4);
        k.gatherRows(inRows.v, st.v + staged * d * 4, idx, n, d * 4);
        k.gatherRows(inRows.w, st.w + staged * 4, idx, n, 4);
        k.gatherRows(inRows.p, st.p + staged * 4, idx, n, 4);
        staged += n;
        if (staged >= PAGE_TOKENS) {
          ptrs.push(this.pack(format, st, 0, PAGE_TOKENS));
          counts.push(PAGE_TOKENS);
          staged -= PAGE_TOKENS;
          if (staged > 0) {
            const sx = e.i32(idx, staged);
            for (let i = 0; i < staged; i++) sx[i] = PAGE_TOKENS + i;
            k.compactRows(st.k, idx, staged, d * 4);
            k.compactRows(st.v, idx, staged, d * 4);
            k.compactRows(st.w, idx, staged, 4);
            k.compactRows(st.p, idx, staged, 4);
          }
        }
      }
      if (staged > 0) {
        ptrs.push(this.pack(format, st, 0, staged));
        counts.push(staged);
      }
    } catch (err) {
      for (const p of ptrs) this.free(p);
      throw err;
    }
    return { ptrs, counts };
  }

  /** Add `delta` to the log-weight of row `row` of a page (layout: logW f32 at offset 0). */
  addLogWeight(ptr: number, row: number, delta: number): void {
    const w = this.engine.f32(ptr + 4 * row, 1);
    w[0] = w[0] + delta;
    this.watcher?.written(ptr);
  }

  /** Positions (or log-weights) of every entry of a lane, in entry order. */
  readHeader(lane: Lane, which: 'pos' | 'logW'): Int32Array | Float32Array {
    const n = lane.tokens;
    const out = which === 'pos' ? new Int32Array(n) : new Float32Array(n);
    const e = this.engine;
    let at = 0;
    for (const t of lane.tiers) {
      for (let i = 0; i < t.pages; i++) {
        const c = t.counts[i];
        const src = which === 'pos' ? e.i32(t.ptrs[i] + 4 * PAGE_TOKENS, c) : e.f32(t.ptrs[i], c);
        out.set(src, at);
        at += c;
      }
    }
    return out;
  }

  /** Dequantized keys (or values) of every entry of a lane, `[tokens][d]`, in entry order. */
  readRows(lane: Lane, which: 'k' | 'v'): Float32Array {
    const n = lane.tokens, d = this.d;
    const rows = this.rows('read', PAGE_TOKENS);
    const out = new Float32Array(n * d);
    let at = 0;
    for (const t of lane.tiers) {
      for (let i = 0; i < t.pages; i++) {
        const c = t.counts[i];
        this.unpack(t.ptrs[i], t.format, c, rows, 0, which === 'k', which === 'v');
        out.set(this.engine.f32(which === 'k' ? rows.k : rows.v, c * d), at * d);
        at += c;
      }
    }
    return out;
  }

  /**
   * Dequantized keys (or values) of the entries `entries` (ascending entry indices) of a
   * lane, `[entries.length][d]`; only the pages holding them are unpacked.
   */
  readSelected(lane: Lane, which: 'k' | 'v', entries: Int32Array): Float32Array {
    const d = this.d, m = entries.length;
    const rows = this.rows('read', PAGE_TOKENS);
    const out = new Float32Array(m * d);
    let at = 0, j = 0;
    for (const t of lane.tiers) {
      for (let i = 0; i < t.pages && j < m; i++) {
        const c = t.counts[i];
        if (entries[j] < at + c) {
          this.unpack(t.ptrs[i], t.format, c, rows, 0, which === 'k', which === 'v');
          const src = this.engine.f32(which === 'k' ? rows.k : rows.v, c * d);
          for (; j < m && entries[j] < at + c; j++) out.set(src.subarray((entries[j] - at) * d, (entries[j] - at + 1) * d), j * d);
        }
        at += c;
      }
    }
    return out;
  }

  /** Free every page of a tier and empty it. */
  clearTier(t: Tier): void {
    for (const p of t.ptrs) this.free(p);
    t.ptrs.length = 0; t.counts.length = 0; t.entries = 0;
  }
}

/** Thrown when a policy returns an invalid plan (a bug in the policy, not in the input). */
export function planError(policy: string, what: string): EdgeKVError {
  return new EdgeKVError('E_STATE', `policy ${policy} returned an invalid plan: ${what}`);
}

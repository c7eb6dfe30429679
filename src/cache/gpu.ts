/**
 * The cache's WebGPU mirror: every page of every lane also lives in GPU buffers, so that
 * `cache.attendAsync` runs decode attention on the GPU (src/webgpu/attention.ts).
 *
 * The pages in WebAssembly memory stay the cache's own copy (policies read and compact
 * them there); the mirror follows them page by page. `PageStore` tells it which pages
 * were written or freed (`PageWatcher`), and before attending a layer the mirror
 *
 *   - uploads the pages it has not seen (new tail pages, re-packed middle pages),
 *   - rewrites in place the pages written since their upload (the tail page a decode
 *     step appended to, a middle page compacted or re-weighted by an eviction),
 *   - and re-sends a lane's page table (8 bytes per page) when its page list changed.
 *
 * So a decode step uploads about one page per lane (the tail page that grew), and a
 * compression uploads the pages it re-packed; the whole cache is never re-sent. Pages
 * that only move between tiers (a full tail page entering an f16 middle) are not
 * uploaded again: GPU pages are keyed by their arena address, not their position.
 */
import type { Engine } from '../engine.ts';
import type { Format } from '../formats.ts';
import type { GpuPage, WebGPUAttention } from '../webgpu/attention.ts';
import type { Lane, PageStore, PageWatcher } from './lane.ts';

/** Upload counters of a mirror (what `cache.stats().webgpu` reports). */
export interface MirrorStats {
  /** Bytes of pages resident on the GPU. */
  residentBytes: number;
  /** Bytes of GPU page pools (>= residentBytes). */
  poolBytes: number;
  /** Pages uploaded as new since the mirror was attached. */
  pagesCreated: number;
  /** Pages rewritten in place since the mirror was attached. */
  pagesUpdated: number;
  /** Bytes sent by those uploads (page tables and queries not included). */
  uploadedBytes: number;
  /** Page-table updates (one per lane whose page list changed before an attend). */
  tableUpdates: number;
}

/** Dirty-list markers: a page of the lane was freed; or too many writes to list, re-send every page. */
const FREED = -1;
const ALL = -2;
/** Longest dirty list kept per lane (a lane written many times without being attended). */
const DIRTY_CAP = 4096;

/** A mirrored page: its GPU page, the cache lane it belongs to, the sync stamp of its last upload. */
interface Mirrored { page: GpuPage; lane: number; stamp: number }

/** Mirrors a cache's lanes into one `WebGPUAttention`. @internal */
export class GpuMirror implements PageWatcher {
  readonly attention: WebGPUAttention;
  /** Whether the cache created the attention object (and so destroys it). */
  readonly owned: boolean;
  private readonly engine: Engine;
  private readonly store: PageStore;
  /** GPU page of every mirrored arena page. */
  private readonly pages = new Map<number, Mirrored>();
  /** GPU lane id per cache lane. */
  private readonly gpuLanes: number[];
  /** Per cache lane, as last sent: arena addresses, counts and GPU pages in entry order. */
  private readonly sentPtrs: number[][];
  private readonly sentCounts: number[][];
  private readonly sentPages: GpuPage[][];
  /** Per cache lane: mirrored pages written since their upload (or freed: -1 marks a free). */
  private readonly dirty: number[][];
  private stamp = 0;
  readonly counters = { pagesCreated: 0, pagesUpdated: 0, uploadedBytes: 0, tableUpdates: 0 };
  /** Unregisters the cache's device-loss callback. */
  unwatchLoss: () => void = () => {};

  constructor(attention: WebGPUAttention, owned: boolean, engine: Engine, store: PageStore, lanes: number) {
    this.attention = attention;
    this.owned = owned;
    this.engine = engine;
    this.store = store;
    this.gpuLanes = Array.from({ length: lanes }, () => attention.createLane());
    this.sentPtrs = Array.from({ length: lanes }, () => []);
    this.sentCounts = Array.from({ length: lanes }, () => []);
    this.sentPages = Array.from({ length: lanes }, () => []);
    this.dirty = Array.from({ length: lanes }, () => []);
  }

  written(ptr: number): void {
    const m = this.pages.get(ptr);
    if (m) this.mark(m.lane, ptr);
  }

  /** Note a written page (or FREED / ALL) for lane `lane`; a long list collapses to ALL. */
  private mark(lane: number, what: number): void {
    const d = this.dirty[lane];
    if (d[0] === ALL) return;
    if (d.length < DIRTY_CAP) d.push(what);
    else { d.length = 0; d.push(ALL); }
  }

  freed(ptr: number): void {
    const m = this.pages.get(ptr);
    if (!m) return;
    this.attention.freePage(m.page);
    this.pages.delete(ptr);
    this.mark(m.lane, FREED); // the lane's list holds a freed page: rebuild it
  }

  /**
   * Bring the GPU copy of `lanes` (cache lanes, with their indices) up to date; returns
   * their GPU lane ids. Throws what the GPU calls throw (E_BACKEND, E_OOM), leaving the
   * cache's own pages untouched.
   *
   * Per lane, one pass of integer compares against the list last sent finds what moved;
   * only pages that are new, grew or shrank, or were written (the lane's dirty list) are
   * uploaded, and the page list is re-sent only when its order or membership changed.
   */
  sync(lanes: ReadonlyArray<{ lane: Lane; index: number }>): number[] {
    const ids: number[] = [];
    for (const { lane, index } of lanes) {
      const stamp = ++this.stamp;
      const sentPtrs = this.sentPtrs[index], sentCounts = this.sentCounts[index];
      const dirty = this.dirty[index];
      const all = dirty[0] === ALL;
      let rebuild = all || dirty.includes(FREED);
      let j = 0;
      // 1. pages at the position they were sent from: only count changes need an upload
      for (const t of lane.tiers) {
        const tp = t.ptrs, tc = t.counts;
        for (let i = 0; i < tp.length; i++, j++) {
          if (tp[i] !== sentPtrs[j]) { rebuild = true; continue; }
          if (tc[i] !== sentCounts[j]) {
            this.upload(tp[i], t.format, tc[i], index, stamp);
            sentCounts[j] = tc[i];
          }
        }
      }
      if (j !== sentPtrs.length) rebuild = true;
      // 2. a changed list: every page found (or uploaded) by address, the list re-sent
      if (rebuild) {
        const ptrs: number[] = [], counts: number[] = [], list: GpuPage[] = [];
        const sentPages = this.sentPages[index];
        for (const t of lane.tiers) {
          for (let i = 0; i < t.pages; i++) {
            const ptr = t.ptrs[i], at = ptrs.length;
            ptrs.push(ptr); counts.push(t.counts[i]);
            // same page at the same place, already brought up to date in step 1 (a freed
            // address re-used here got a new GPU page: the old one is marked freed)
            if (!all && ptr === sentPtrs[at] && t.counts[i] === sentCounts[at] && !sentPages[at].freed) list.push(sentPages[at]);
            else list.push(this.upload(ptr, t.format, t.counts[i], index, stamp, all));
          }
        }
        this.attention.setLanePages(this.gpuLanes[index], list);
        this.sentPtrs[index] = ptrs; this.sentCounts[index] = counts; this.sentPages[index] = list;
        this.counters.tableUpdates++;
      }
      // 3. pages written in place since their upload (count unchanged): log-weights, ...
      for (const ptr of all ? [] : dirty) {
        const m = ptr >= 0 ? this.pages.get(ptr) : undefined;
        if (m && m.stamp !== stamp) this.rewrite(m, ptr, m.page.count, stamp);
      }
      dirty.length = 0;
      ids.push(this.gpuLanes[index]);
    }
    return ids;
  }

  /** The GPU page of `ptr`, created or rewritten when new, resized or dirty; at most one upload per stamp. */
  private upload(ptr: number, format: Format, count: number, lane: number, stamp: number, force = false): GpuPage {
    let m = this.pages.get(ptr);
    if (m && m.page.format !== format) { this.freed(ptr); m = undefined; }
    if (!m) {
      const pb = this.store.pageBytes(format);
      m = { page: this.attention.createPage(format, this.engine.u8(ptr, pb), count), lane, stamp };
      this.pages.set(ptr, m);
      this.counters.pagesCreated++;
      this.counters.uploadedBytes += pb;
    } else if (m.stamp !== stamp && (force || m.page.count !== count)) {
      this.rewrite(m, ptr, count, stamp);
    }
    return m.page;
  }

  private rewrite(m: Mirrored, ptr: number, count: number, stamp: number): void {
    const pb = this.store.pageBytes(m.page.format);
    this.attention.updatePage(m.page, this.engine.u8(ptr, pb), count);
    m.stamp = stamp;
    this.counters.pagesUpdated++;
    this.counters.uploadedBytes += pb;
  }

  stats(): MirrorStats {
    return { residentBytes: this.attention.bytesResident, poolBytes: this.attention.poolBytes, ...this.counters };
  }

  /** Free the GPU pages and lanes (and the attention object when the cache created it). */
  destroy(): void {
    this.unwatchLoss();
    if (this.owned) {
      this.attention.destroy();
    } else {
      for (const m of this.pages.values()) this.attention.freePage(m.page);
      for (const id of this.gpuLanes) {
        try { this.attention.freeLane(id); } catch { /* a lost device: nothing to free */ }
      }
    }
    this.pages.clear();
    for (const d of this.dirty) d.length = 0;
  }
}

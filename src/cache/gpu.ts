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

interface Mirrored { page: GpuPage; format: Format }

/** Mirrors a cache's lanes into one `WebGPUAttention`. @internal */
export class GpuMirror implements PageWatcher {
  readonly attention: WebGPUAttention;
  /** Whether the cache created the attention object (and so destroys it). */
  readonly owned: boolean;
  private readonly engine: Engine;
  private readonly store: PageStore;
  private readonly pages = new Map<number, Mirrored>();
  private readonly dirty = new Set<number>();
  /** GPU lane id per cache lane. */
  private readonly gpuLanes: number[];
  /** Arena addresses last sent as each lane's page list. */
  private readonly sent: number[][];
  readonly counters = { pagesCreated: 0, pagesUpdated: 0, uploadedBytes: 0, tableUpdates: 0 };
  /** Unregisters the cache's device-loss callback. */
  unwatchLoss: () => void = () => {};

  constructor(attention: WebGPUAttention, owned: boolean, engine: Engine, store: PageStore, lanes: number) {
    this.attention = attention;
    this.owned = owned;
    this.engine = engine;
    this.store = store;
    this.gpuLanes = Array.from({ length: lanes }, () => attention.createLane());
    this.sent = Array.from({ length: lanes }, () => []);
  }

  written(ptr: number): void {
    if (this.pages.has(ptr)) this.dirty.add(ptr);
  }

  freed(ptr: number): void {
    const m = this.pages.get(ptr);
    if (!m) return;
    this.attention.freePage(m.page);
    this.pages.delete(ptr);
    this.dirty.delete(ptr);
  }

  /**
   * Bring the GPU copy of `lanes` (cache lanes, with their indices) up to date; returns
   * their GPU lane ids. Throws what the GPU calls throw (E_BACKEND, E_OOM), leaving the
   * cache's own pages untouched.
   */
  sync(lanes: ReadonlyArray<{ lane: Lane; index: number }>): number[] {
    const a = this.attention, e = this.engine;
    const ids: number[] = [];
    for (const { lane, index } of lanes) {
      const sent = this.sent[index];
      const list: GpuPage[] = [];
      const ptrs: number[] = [];
      let changed = false;
      for (const t of lane.tiers) {
        const pb = this.store.pageBytes(t.format);
        for (let i = 0; i < t.pages; i++) {
          const ptr = t.ptrs[i], count = t.counts[i];
          let m = this.pages.get(ptr);
          if (m && m.format !== t.format) { this.freed(ptr); m = undefined; }
          if (!m) {
            m = { page: a.createPage(t.format, e.u8(ptr, pb), count), format: t.format };
            this.pages.set(ptr, m);
            this.counters.pagesCreated++;
            this.counters.uploadedBytes += pb;
          } else if (this.dirty.has(ptr) || m.page.count !== count) {
            a.updatePage(m.page, e.u8(ptr, pb), count);
            this.dirty.delete(ptr);
            this.counters.pagesUpdated++;
            this.counters.uploadedBytes += pb;
          }
          if (sent[ptrs.length] !== ptr) changed = true;
          ptrs.push(ptr);
          list.push(m.page);
        }
      }
      if (changed || ptrs.length !== sent.length) {
        a.setLanePages(this.gpuLanes[index], list);
        this.sent[index] = ptrs;
        this.counters.tableUpdates++;
      }
      ids.push(this.gpuLanes[index]);
    }
    return ids;
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
    this.dirty.clear();
  }
}

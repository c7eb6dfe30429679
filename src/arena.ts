/**
 * Arena: the one allocator for WebAssembly linear memory. Every byte of KV, every
 * weight matrix and every scratch buffer the host hands to a kernel comes from here.
 *
 * - Sizes are rounded up to `ARENA_ALIGN` bytes; blocks are 16-byte aligned (v128).
 * - Freed blocks go on an exact-size free list and are reused first, so lanes whose
 *   pages all have one size never fragment, and a lane that shrinks really gives its
 *   bytes back (`bytesInUse` drops at once).
 * - When the bump pointer reaches the end, memory grows (`memory.grow`); if it cannot,
 *   the call throws `E_OOM` and nothing is allocated.
 *
 * Views (`Float32Array` over `memory.buffer`) go stale when memory grows: always take
 * them through `Engine.f32()` etc., which re-read `memory.buffer`.
 */
import { EdgeKVError } from './errors.ts';

export const ARENA_ALIGN = 16;
const PAGE_BYTES = 65536;

export class Arena {
  private readonly memory: WebAssembly.Memory;
  private top: number;
  private readonly base: number;
  private readonly live = new Map<number, number>();
  private readonly freeLists = new Map<number, number[]>();
  private inUse = 0;
  private peak = 0;

  constructor(memory: WebAssembly.Memory, heapBase: number) {
    this.memory = memory;
    this.base = align(heapBase);
    this.top = this.base;
  }

  /** Allocate `bytes` (> 0); returns a 16-byte-aligned pointer. */
  alloc(bytes: number): number {
    if (!Number.isInteger(bytes) || bytes < 0) {
      throw new EdgeKVError('E_ARG', `arena.alloc(bytes = ${bytes}): expected a non-negative integer`, 'bytes');
    }
    const size = Math.max(ARENA_ALIGN, align(bytes));
    const list = this.freeLists.get(size);
    let ptr: number;
    if (list && list.length > 0) {
      ptr = list.pop()!;
    } else {
      const end = this.top + size;
      const have = this.memory.buffer.byteLength;
      if (end > have) {
        const pages = Math.ceil((end - have) / PAGE_BYTES);
        // Grow by at least 1/8 of the current size so a long stream of small
        // allocations does not call grow() every time.
        const minPages = Math.ceil(have / PAGE_BYTES / 8);
        try {
          this.memory.grow(Math.max(pages, minPages));
        } catch {
          try {
            this.memory.grow(pages);
          } catch {
            throw new EdgeKVError('E_OOM', `WebAssembly memory could not grow to ${end} bytes (${(end / 2 ** 20).toFixed(1)} MiB); free caches or lower the budget`);
          }
        }
      }
      ptr = this.top;
      this.top = end;
    }
    this.live.set(ptr, size);
    this.inUse += size;
    if (this.inUse > this.peak) this.peak = this.inUse;
    return ptr;
  }

  /** Return a block. Freeing a pointer that is not live throws (never corrupts). */
  free(ptr: number): void {
    const size = this.live.get(ptr);
    if (size === undefined) throw new EdgeKVError('E_STATE', `arena.free(${ptr}): not a live block (double free?)`, 'ptr');
    this.live.delete(ptr);
    this.inUse -= size;
    let list = this.freeLists.get(size);
    if (!list) this.freeLists.set(size, (list = []));
    list.push(ptr);
  }

  /** Size in bytes of a live block (rounded up to the alignment). */
  sizeOf(ptr: number): number {
    const s = this.live.get(ptr);
    if (s === undefined) throw new EdgeKVError('E_STATE', `arena.sizeOf(${ptr}): not a live block`, 'ptr');
    return s;
  }

  /** Bytes in live blocks. */
  get bytesInUse(): number { return this.inUse; }
  /** Highest `bytesInUse` seen. */
  get peakBytes(): number { return this.peak; }
  /** Bytes reserved from linear memory (live + free lists). */
  get bytesReserved(): number { return this.top - this.base; }
  /** Number of live blocks. */
  get liveBlocks(): number { return this.live.size; }
}

/** Round up to a multiple of ARENA_ALIGN (arithmetic, not 32-bit bit operations: sizes may exceed 2^31). */
export function align(n: number): number {
  return Math.ceil(n / ARENA_ALIGN) * ARENA_ALIGN;
}

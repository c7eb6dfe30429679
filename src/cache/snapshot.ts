/**
 * Cache snapshots: `cache.save()` → bytes, `loadCache(engine, bytes)` → an identical
 * cache. This is how an edge worker keeps a conversation between requests (KV store,
 * Durable Object, IndexedDB, OPFS, S3).
 *
 * Layout (little-endian):
 *
 *   0   magic     "EKVC" (4 bytes)
 *   4   version   u32 (SNAPSHOT_VERSION)
 *   8   headerLen u32
 *   12  header    UTF-8 JSON: resolved options (geometry, budget, policy configuration,
 *                 planner), page layout constants, RNG state, next position per layer,
 *                 query-ring cursors, and every lane's page counts per tier
 *   ..  rings     per layer (policies with a query window): f32[size][qHeads][headDim]
 *   ..  lanes     per lane, tiers sinks / middle / tail: each page's bytes exactly as in
 *                 memory (pageBytes(format) each), then the lane's per-entry policy state
 *                 f64[tokens][stateWidth]
 *   end-4 crc32   over every byte before it (IEEE 802.3 polynomial)
 *
 * `loadCache` checks the length, magic, version and checksum, then every field of the
 * header (the options are resolved again exactly as `createCache` would and must
 * reproduce themselves), the lane structure (page counts, tier invariants, caps), and
 * every page's contents (finite values, zeroed unused slots, positions strictly
 * increasing), freeing everything it allocated when anything is wrong: a damaged,
 * truncated or foreign snapshot is an `E_SNAPSHOT` error and never a half-loaded cache.
 */
import type { Engine } from '../engine.ts';
import { EdgeKVError, fmt } from '../errors.ts';
import { PAGE_TOKENS, PAYLOAD_OFFSET, isPacked, packedOffsets, pageBytes, type Format } from '../formats.ts';
import { KVCache, MAX_POSITION } from './cache.ts';
import { resolveOptions, type CacheOptions, type ResolvedOptions } from './options.ts';
import { sparePages } from '../budget/types.ts';
import type { Tier } from './lane.ts';

/** "EKVC" */
export const SNAPSHOT_MAGIC = new Uint8Array([0x45, 0x4b, 0x56, 0x43]);
/** Current snapshot format version. */
export const SNAPSHOT_VERSION = 1;
const PREFIX_BYTES = 12;
const CRC_BYTES = 4;
/** Largest header accepted (far above any real cache's header). */
const MAX_HEADER_BYTES = 64 << 20;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3, as in zip / PNG) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface LaneHeader { s: number[]; m: number[]; t: number[]; }
interface SnapshotHeader {
  options: ResolvedOptions;
  layout: { pageTokens: number; payloadOffset: number };
  rng: number[];
  nextPos: number[];
  rings: Array<{ count: number; next: number }> | null;
  lanes: LaneHeader[];
}

/** Options as a user would pass them (the resolved planner / budget forms mapped back). */
function toUserOptions(r: ResolvedOptions): CacheOptions {
  const { budget, planner, ...rest } = r;
  const o: Record<string, unknown> = { ...rest };
  if (budget) o.budget = budget;
  o.planner = planner.name === 'lanes' ? planner.lanes.map((l) => ({ ...l })) : planner;
  return o as unknown as CacheOptions;
}

/** Serialize a cache (see the layout above). */
export function saveCache(cache: KVCache): Uint8Array {
  const o = cache.options;
  const header: SnapshotHeader = {
    options: o as ResolvedOptions,
    layout: { pageTokens: PAGE_TOKENS, payloadOffset: PAYLOAD_OFFSET },
    rng: Array.from(cache.rng.s),
    nextPos: [...cache.nextPos],
    rings: cache.rings ? cache.rings.map((r) => ({ count: r.count, next: r.next })) : null,
    lanes: cache.lanes.map((l) => ({ s: [...l.sinks.counts], m: [...l.mid.counts], t: [...l.tail.counts] })),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  let size = PREFIX_BYTES + json.length;
  if (cache.rings) for (const r of cache.rings) size += r.buf.length * 4;
  for (const lane of cache.lanes) {
    for (const t of lane.tiers) size += t.pages * cache.store.pageBytes(t.format);
    size += lane.tokens * lane.stateWidth * 8;
  }
  size += CRC_BYTES;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  out.set(SNAPSHOT_MAGIC, 0);
  dv.setUint32(4, SNAPSHOT_VERSION, true);
  dv.setUint32(8, json.length, true);
  out.set(json, PREFIX_BYTES);
  let at = PREFIX_BYTES + json.length;
  if (cache.rings) for (const r of cache.rings) for (let i = 0; i < r.buf.length; i++, at += 4) dv.setFloat32(at, r.buf[i], true);
  const e = cache.engine;
  for (const lane of cache.lanes) {
    for (const t of lane.tiers) {
      const pb = cache.store.pageBytes(t.format);
      for (const p of t.ptrs) { out.set(e.u8(p, pb), at); at += pb; }
    }
    const n = lane.tokens * lane.stateWidth;
    for (let i = 0; i < n; i++, at += 8) dv.setFloat64(at, lane.state[i], true);
  }
  dv.setUint32(at, crc32(out.subarray(0, at)), true);
  return out;
}

/** Options of `loadCache`. */
export interface LoadOptions {
  /** Geometry the caller expects; a snapshot of another geometry is refused (E_SNAPSHOT). */
  expect?: Partial<Pick<ResolvedOptions, 'layers' | 'qHeads' | 'kvHeads' | 'headDim'>>;
}

function bad(why: string): EdgeKVError {
  return new EdgeKVError('E_SNAPSHOT', `snapshot rejected: ${why}`, 'bytes');
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function intArray(v: unknown, what: string, lo: number, hi: number, maxLen: number): number[] {
  if (!Array.isArray(v) || v.length > maxLen) throw bad(`${what} must be an array of at most ${maxLen} integers`);
  for (const x of v) if (typeof x !== 'number' || !Number.isInteger(x) || x < lo || x > hi) throw bad(`${what} holds ${fmt(x)}, expected integers in [${lo}, ${hi}]`);
  return v as number[];
}

/**
 * Restore a cache saved with `cache.save()` on `engine` (any backend). Refuses
 * truncated, altered or foreign bytes, or a geometry other than `options.expect`,
 * with `E_SNAPSHOT`; nothing stays allocated when it refuses.
 */
export function loadCache(engine: Engine, bytes: Uint8Array, options: LoadOptions = {}): KVCache {
  if (!(bytes instanceof Uint8Array)) throw new EdgeKVError('E_ARG', `bytes = ${fmt(bytes)}: expected the Uint8Array that cache.save() returned`, 'bytes');
  if (options === null || typeof options !== 'object') throw new EdgeKVError('E_ARG', `options = ${fmt(options)}: expected { expect? }`, 'options');
  for (const k of Object.keys(options)) if (k !== 'expect') throw new EdgeKVError('E_ARG', `options.${k} is not a loadCache option; known: expect`, `options.${k}`);
  if (bytes.length < PREFIX_BYTES + CRC_BYTES) throw bad(`${bytes.length} bytes is too short to be an edgekv cache snapshot (truncated?)`);
  for (let i = 0; i < 4; i++) if (bytes[i] !== SNAPSHOT_MAGIC[i]) throw bad('not an edgekv cache snapshot (magic "EKVC" missing)');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(4, true);
  if (version !== SNAPSHOT_VERSION) throw bad(`format version ${version}; this edgekv reads version ${SNAPSHOT_VERSION}`);
  const stored = dv.getUint32(bytes.length - CRC_BYTES, true);
  if (crc32(bytes.subarray(0, bytes.length - CRC_BYTES)) !== stored) throw bad('checksum mismatch: the bytes were truncated or altered');
  const headerLen = dv.getUint32(8, true);
  if (headerLen > MAX_HEADER_BYTES || PREFIX_BYTES + headerLen + CRC_BYTES > bytes.length) throw bad(`header length ${headerLen} does not fit in ${bytes.length} bytes`);
  let header: unknown, headerText: string;
  try {
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + headerLen));
    header = JSON.parse(headerText);
  } catch (e) {
    throw bad(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!isObj(header)) throw bad('header is not an object');
  const keys = ['options', 'layout', 'rng', 'nextPos', 'rings', 'lanes'];
  for (const k of Object.keys(header)) if (!keys.includes(k)) throw bad(`unknown header field ${JSON.stringify(k)}`);
  const h = header as unknown as SnapshotHeader;
  if (!isObj(h.layout) || h.layout.pageTokens !== PAGE_TOKENS || h.layout.payloadOffset !== PAYLOAD_OFFSET || Object.keys(h.layout).length !== 2) {
    throw bad(`page layout ${fmt(h.layout)} differs from this edgekv's (pageTokens ${PAGE_TOKENS}, payloadOffset ${PAYLOAD_OFFSET})`);
  }
  if (!isObj(h.options)) throw bad('options missing');
  let resolvedAgain: ReturnType<typeof resolveOptions>;
  try {
    resolvedAgain = resolveOptions(toUserOptions(h.options as ResolvedOptions));
  } catch (e) {
    throw bad(`options are not valid: ${(e as Error).message}`);
  }
  const { resolved, policy, plans, geometry } = resolvedAgain;
  if (JSON.stringify(resolved) !== JSON.stringify(h.options)) throw bad('options do not resolve to themselves (altered or from another edgekv version)');
  if (options.expect !== undefined) {
    if (!isObj(options.expect)) throw new EdgeKVError('E_ARG', `options.expect = ${fmt(options.expect)}: expected { layers?, qHeads?, kvHeads?, headDim? }`, 'options.expect');
    for (const [k, v] of Object.entries(options.expect)) {
      if (!['layers', 'qHeads', 'kvHeads', 'headDim'].includes(k)) throw new EdgeKVError('E_ARG', `options.expect.${k} is not a geometry field; known: layers, qHeads, kvHeads, headDim`, `options.expect.${k}`);
      if ((resolved as unknown as Record<string, unknown>)[k] !== v) throw bad(`the snapshot's ${k} is ${(resolved as unknown as Record<string, unknown>)[k]}, expected ${fmt(v)} (a snapshot of another geometry)`);
    }
  }
  const { layers, qHeads, kvHeads, headDim: d } = resolved;
  const rng = intArray(h.rng, 'rng', 0, 0xffffffff, 4);
  if (rng.length !== 4 || rng.every((x) => x === 0)) throw bad('rng state must be four u32 words, not all zero');
  const nextPos = intArray(h.nextPos, 'nextPos', 0, MAX_POSITION + 1, layers);
  if (nextPos.length !== layers) throw bad(`nextPos has ${nextPos.length} entries, expected ${layers}`);
  const ringSize = policy.needs.queryWindow ?? 0;
  if (ringSize > 0) {
    if (!Array.isArray(h.rings) || h.rings.length !== layers) throw bad(`rings must list ${layers} query rings`);
    for (const r of h.rings) {
      if (!isObj(r) || Object.keys(r).length !== 2) throw bad('ring must be { count, next }');
      intArray([r.count], 'ring.count', 0, ringSize, 1);
      intArray([r.next], 'ring.next', 0, ringSize - 1, 1);
    }
  } else if (h.rings !== null) throw bad('rings present for a policy without a query window');
  const lanes = layers * kvHeads;
  if (!Array.isArray(h.lanes) || h.lanes.length !== lanes) throw bad(`lanes must list ${lanes} lanes`);
  const width = policy.entryStateWidth;
  const exactPB = pageBytesOf(resolved.exactPrecision, resolved);
  let expectSize = PREFIX_BYTES + headerLen + (ringSize > 0 ? layers * ringSize * qHeads * d * 4 : 0) + CRC_BYTES;
  for (let i = 0; i < lanes; i++) {
    const L = h.lanes[i];
    if (!isObj(L) || Object.keys(L).length !== 3) throw bad(`lane ${i} must be { s, m, t }`);
    const maxPages = 1 << 26;
    const s = intArray(L.s, `lane ${i} sinks`, 1, PAGE_TOKENS, maxPages);
    const m = intArray(L.m, `lane ${i} middle`, 1, PAGE_TOKENS, maxPages);
    const t = intArray(L.t, `lane ${i} tail`, 1, PAGE_TOKENS, maxPages);
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    const dense = (a: number[]) => a.every((c, j) => j === a.length - 1 || c === PAGE_TOKENS);
    const ns = sum(s), nm = sum(m), nt = sum(t);
    const where = `lane ${i} (layer ${Math.floor(i / kvHeads)}, kvHead ${i % kvHeads})`;
    if (ns > resolved.sinkTokens || !dense(s)) throw bad(`${where}: sinks hold ${ns} entries in pages ${fmt(s)}`);
    if (nm + nt > 0 && ns < Math.min(resolved.sinkTokens, ns + nm + nt)) throw bad(`${where}: entries past unfilled sinks`);
    if (!dense(t) || nt >= resolved.windowTokens + PAGE_TOKENS) throw bad(`${where}: tail pages ${fmt(t)} break the tier invariants`);
    const denseMid = Math.ceil(nm / PAGE_TOKENS);
    if (m.length < denseMid || m.length > denseMid + sparePages(denseMid, plans[i].precision)) throw bad(`${where}: middle pages ${m.length} for ${nm} entries`);
    const tokens = ns + nm + nt;
    if (tokens > plans[i].tokens) throw bad(`${where}: ${tokens} entries over the cap ${plans[i].tokens}`);
    if (tokens > nextPos[Math.floor(i / kvHeads)]) throw bad(`${where}: more entries than positions appended`);
    expectSize += (s.length + t.length) * exactPB + m.length * pageBytesOf(plans[i].precision, resolved) + tokens * width * 8;
  }
  if (expectSize !== bytes.length) throw bad(`${bytes.length} bytes, but the header describes ${expectSize} (truncated or altered)`);
  // One valid encoding per cache: the header must be exactly what save() writes.
  const canonical: SnapshotHeader = { options: resolved, layout: { pageTokens: PAGE_TOKENS, payloadOffset: PAYLOAD_OFFSET }, rng, nextPos, rings: ringSize > 0 ? h.rings!.map((x) => ({ count: x.count, next: x.next })) : null, lanes: h.lanes.map((x) => ({ s: x.s, m: x.m, t: x.t })) };
  if (JSON.stringify(canonical) !== headerText) throw bad('header is not in the canonical form save() writes (altered)');

  // Structure is sound: build the cache, then fill and check its pages.
  const cache = new KVCache(engine, resolved, policy, plans, geometry);
  try {
    cache.rng.s.set(rng);
    for (let l = 0; l < layers; l++) cache.nextPos[l] = nextPos[l];
    let at = PREFIX_BYTES + headerLen;
    if (cache.rings) {
      for (let l = 0; l < layers; l++) {
        const r = cache.rings[l];
        r.count = h.rings![l].count; r.next = h.rings![l].next;
        for (let j = 0; j < r.buf.length; j++, at += 4) {
          const x = dv.getFloat32(at, true);
          if (!Number.isFinite(x)) throw bad(`query ring of layer ${l} holds a non-finite number`);
          r.buf[j] = x;
        }
      }
    }
    for (let i = 0; i < lanes; i++) {
      const lane = cache.lanes[i];
      const L = h.lanes[i];
      const tiers: Array<[Tier, number[]]> = [[lane.sinks, L.s], [lane.mid, L.m], [lane.tail, L.t]];
      for (const [tier, counts] of tiers) {
        const pb = cache.store.pageBytes(tier.format);
        for (const c of counts) {
          const p = cache.store.alloc(tier.format);
          tier.ptrs.push(p); tier.counts.push(c); tier.entries += c;
          engine.u8(p, pb).set(bytes.subarray(at, at + pb));
          at += pb;
        }
      }
      const n = lane.tokens * lane.stateWidth;
      lane.ensureState(lane.tokens);
      for (let j = 0; j < n; j++, at += 8) {
        const x = dv.getFloat64(at, true);
        if (!Number.isFinite(x)) throw bad(`lane ${i}: policy state holds a non-finite number`);
        lane.state[j] = x;
      }
      checkLanePages(cache, i, nextPos[lane.layer]);
    }
    return cache;
  } catch (e) {
    cache.dispose();
    if (e instanceof EdgeKVError) throw e.code === 'E_SNAPSHOT' ? e : bad(e.message);
    throw e;
  }
}

function pageBytesOf(format: Format, o: ResolvedOptions): number {
  return pageBytes(format, o.headDim, o.valueGroup);
}

/** Check a loaded lane's pages: unused slots zero, values finite, positions increasing. */
function checkLanePages(cache: KVCache, i: number, nextPos: number): void {
  const lane = cache.lanes[i];
  const e = cache.engine, d = cache.options.headDim, vg = cache.options.valueGroup;
  const where = `lane ${i} (layer ${lane.layer}, kvHead ${lane.kvHead})`;
  let prev = -1;
  for (const t of lane.tiers) {
    for (let p = 0; p < t.pages; p++) {
      const ptr = t.ptrs[p], c = t.counts[p];
      const zero = (off: number, rowBytes: number) => {
        const u = e.u8(ptr + off + c * rowBytes, (PAGE_TOKENS - c) * rowBytes);
        for (let j = 0; j < u.length; j++) if (u[j] !== 0) throw bad(`${where}: a page has data in its unused slots`);
      };
      zero(0, 4); zero(4 * PAGE_TOKENS, 4);
      if (isPacked(t.format)) {
        const o = packedOffsets(t.format, d, vg);
        zero(o.kCodes, o.R); zero(o.vScale, 2 * o.ng); zero(o.vMin, 2 * o.ng); zero(o.vCodes, o.R);
      } else {
        const es = t.format === 'f32' ? 4 : 2;
        zero(PAYLOAD_OFFSET, d * es); zero(PAYLOAD_OFFSET + PAGE_TOKENS * d * es, d * es);
      }
      const rows = cache.store.rows('load', PAGE_TOKENS);
      cache.store.unpack(ptr, t.format, c, rows, 0);
      const k = e.f32(rows.k, c * d), v = e.f32(rows.v, c * d), w = e.f32(rows.w, c), pos = e.i32(rows.p, c);
      for (let j = 0; j < c * d; j++) if (!Number.isFinite(k[j]) || !Number.isFinite(v[j])) throw bad(`${where}: a page holds a non-finite key or value`);
      for (let j = 0; j < c; j++) {
        if (!Number.isFinite(w[j])) throw bad(`${where}: a page holds a non-finite log-weight`);
        if (pos[j] <= prev || pos[j] >= nextPos) throw bad(`${where}: positions out of order or past the layer's last position`);
        prev = pos[j];
      }
    }
  }
}


/**
 * WGSL sources, generated per shape (format, head dim, value group, GQA group size)
 * so that every loop bound, register set and workgroup array size is a constant.
 *
 * Decode attention is split-K ("flash-decoding"): each workgroup streams a contiguous
 * run of one lane's pages and writes a partial record `(m[G], l[G], acc[G][d])`
 * (running max in log2 units, sum of exp2, unnormalised numerator); a second kernel
 * merges a lane's partials with log-sum-exp and writes `out[G][d] = acc / l` and
 * `lse[G] = (m + log2 l) ln 2`.
 *
 * Thread layout of the attention kernel (see `attentionLayout`): a key/value row of a
 * page is cut into `TPR` slices of `W` consecutive u32 words; thread `t` owns slice
 * `t % TPR` of rows `rg, rg + RG, rg + 2 RG, ...` (`rg = t / TPR`), so one load
 * instruction of the workgroup reads `RG` whole consecutive rows (coalesced
 * `vec4<u32>` / `vec2<u32>` / `u32` loads). The thread keeps the query of its channels
 * for all `GB` heads of the GQA group in registers, so one key read serves every head.
 * Per page: partial dots -> workgroup memory -> one thread per (row, head) sums the
 * `TPR` slices and adds the log-weight -> each thread runs its own online softmax over
 * its rows (no workgroup-wide max per page) and accumulates `p * v` for its channels
 * in registers. At the end of the split the `RG` row groups merge their
 * `(m, l, acc)` in workgroup memory. Two barriers per page, no serial loop over `d`.
 *
 * Pages are read from a pool buffer in exactly the byte layout of
 * `assembly/kernels/layout.ts`; f16 halves are unpacked with `unpack2x16float`, so no
 * `shader-f16` feature is needed. Packed pages (KIVI keys: scale `s_c` and minimum
 * `min_c` per channel over the page; values per token over groups of channels) are
 * never dequantised element by element: a code at bit offset `o'` (< 23 after at most
 * one shift of its word) becomes the float `code * 2^(o'-23)` with one mask-or and
 * one subtraction (`bitcast(bits | 0x3f800000) - 1`), and
 * `logit = sum_c q_c min_c + sum_c (q_c s_c 2^(23-o')) (code_c 2^(o'-23))` with the
 * per-page products `q_c s_c` in registers; values accumulate `(p scale_g) code` and
 * `p min_g` separately and combine once per split.
 */
import { PAGE_TOKENS, PAYLOAD_OFFSET, FORMAT_BITS, isPacked, packedOffsets, pageBytes } from '../formats.ts';
import type { Format } from '../formats.ts';

/** Threads per workgroup of the matvec kernel (and the default of small kernels here). */
export const WORKGROUP_SIZE = 64;
/** Bytes between two dispatches' parameter records in the uniform buffer (>= any device's minUniformBufferOffsetAlignment). */
export const PARAMS_STRIDE = 256;
/** Most query heads one attention workgroup handles; larger GQA groups are cut into head blocks (grid z). */
export const MAX_HEADS_PER_PASS = 8;
/**
 * Target threads per attention workgroup (rows per pass x threads per row); on an H100
 * 64 measured faster than 128 at 4K, 64K and 256K tokens x 8 lanes, slower at 16K, and
 * 32 slower everywhere (docs/results/webgpu.md).
 */
export const TARGET_THREADS = 64;
/** Fewest rows per pass (at most 8 rows per thread, so the row registers stay bounded). */
export const MIN_ROW_GROUPS = 4;
/** Budget of per-thread query registers (channels per thread x heads) used to pick the load width. */
export const QUERY_REGISTERS = 32;
/** Largest partial-dot buffer (floats of workgroup memory); past it the page's rows are reduced in rounds. */
export const PARTIAL_DOT_FLOATS = 2560;
/** Threads per workgroup of the merge kernel (a square: two-level reduction). */
export const MERGE_WORKGROUP_SIZE = 64;
/** Most vec4 columns one merge workgroup handles (the rest of its threads slice the partial list). */
export const MERGE_COLUMNS = 8;
/** Initial running maximum: finite (WGSL constants may not be infinite), below any logit. */
const NEG_BIG = '-3.0e38';
/** A packed code is shifted right by this many bits when it does not fit below bit 23 (32 - 23). */
const CODE_SHIFT = 9;
/** Mantissa bits of f32: a code below bit 23 ORed into 1.0f is `1 + code 2^(o-23)`. */
const MANTISSA_BITS = 23;

/** Shape of one compiled attention kernel. */
export interface AttentionShape {
  format: Format;
  headDim: number;
  valueGroup: number;
  groupSize: number;
}

/** Knobs of the attention kernel; every one has a default chosen per shape (benchmarks sweep them). */
export interface AttentionTuning {
  /** u32 words each thread reads per key/value row: 1, 2 or 4 (`vec4<u32>` loads). */
  wordsPerThread?: number;
  /** Rows read per pass (row groups): a power of two dividing 32. */
  rowGroups?: number;
  /** Most query heads per workgroup, 1..8. */
  headsPerPass?: number;
  /** Load the next page's rows into registers while the current page is computed (default true). */
  prefetch?: boolean;
}

/** Resolved thread layout of one attention kernel. */
export interface AttentionLayout {
  shape: AttentionShape;
  /** Heads per workgroup and head blocks (grid z). */
  GB: number;
  HB: number;
  /** u32 words per thread per row (1 for the 16-bit rows of int2 at d = 8). */
  W: number;
  /** Key rows of 2 bytes (int2, d = 8): one 16-bit unit per row. */
  half: boolean;
  /** u32 words in one key row (0.5 when half). */
  rowWords: number;
  /** Threads per row, row groups, threads per workgroup, rows per thread per page. */
  TPR: number;
  RG: number;
  WG: number;
  RPT: number;
  /** Channels per thread. */
  CPT: number;
  /** Software pipelining: the next page's loads are issued before the current page is computed. */
  prefetch: boolean;
  /** Partial-dot reduction rounds per page and the padded row stride of that buffer. */
  rounds: number;
  TPRP: number;
  /** Floats of workgroup memory by region. */
  pdFloats: number;
  sharedFloats: number;
}

/** Floats before the accumulators in a partial record: m[G], l[G], padded to a multiple of 4. */
export function partialHeader(G: number): number {
  return (2 * G + 3) & ~3;
}

/** Floats in one partial record: m[G], l[G] (padded to 4), acc[G][d]. */
export function partialStride(G: number, d: number): number {
  return partialHeader(G) + G * d;
}

function rowWordsOf(format: Format, D: number): number {
  if (format === 'f32') return D;
  if (format === 'f16') return D / 2;
  return (D * FORMAT_BITS[format]) / 32;
}

/** Thread layout of the attention kernel for a shape (defaults, or `tuning`). */
export function attentionLayout(s: AttentionShape, tuning: AttentionTuning = {}): AttentionLayout {
  const { format, headDim: D, groupSize: G } = s;
  const maxGB = Math.max(1, Math.min(MAX_HEADS_PER_PASS, tuning.headsPerPass ?? MAX_HEADS_PER_PASS));
  const HB = Math.ceil(G / maxGB);
  const GB = Math.ceil(G / HB);
  const packed = isPacked(format);
  const rowWords = rowWordsOf(format, D);
  const half = packed && !Number.isInteger(rowWords);
  const chanPerWord = format === 'f32' ? 1 : format === 'f16' ? 2 : 32 / FORMAT_BITS[format];
  let W: number;
  if (half) W = 1;
  else if (tuning.wordsPerThread !== undefined) {
    W = tuning.wordsPerThread;
    if (![1, 2, 4].includes(W) || rowWords % W !== 0) W = 1;
  } else {
    W = [4, 2, 1].find((w) => rowWords % w === 0 && w * chanPerWord * GB <= QUERY_REGISTERS) ?? 1;
  }
  const TPR = half ? 1 : rowWords / W;
  const CPT = half ? 16 / FORMAT_BITS[format] : W * chanPerWord;
  let RG = tuning.rowGroups ?? 0;
  if (![1, 2, 4, 8, 16, 32].includes(RG)) {
    RG = MIN_ROW_GROUPS;
    while (RG < PAGE_TOKENS && TPR * RG * 2 <= TARGET_THREADS) RG *= 2;
  }
  while (RG > 1 && TPR * RG > 256) RG /= 2;
  const WG = TPR * RG;
  const RPT = PAGE_TOKENS / RG;
  // partial-dot rows padded to whole vec4s, an odd number of them (conflict-free vec4 reads)
  let TPRP = TPR === 1 ? 1 : Math.ceil(TPR / 4) * 4;
  if (TPRP > 1 && (TPRP / 4) % 2 === 0) TPRP += 4;
  let rounds = 1;
  while (rounds < RPT && (PAGE_TOKENS / rounds) * GB * TPRP > PARTIAL_DOT_FLOATS) rounds *= 2;
  const pdFloats = (PAGE_TOKENS / rounds) * GB * TPRP;
  const sharedFloats = Math.ceil(Math.max(pdFloats, GB * D) / 4) * 4 + PAGE_TOKENS * GB + PAGE_TOKENS + 2 * RG * GB;
  const prefetch = tuning.prefetch ?? true;
  return { shape: s, GB, HB, W, half, prefetch, rowWords: half ? 0.5 : rowWords, TPR, RG, WG, RPT, CPT, rounds, TPRP, pdFloats, sharedFloats };
}

/** Workgroup memory (bytes) that the attention kernel of this shape needs. */
export function attentionWorkgroupBytes(s: AttentionShape, tuning: AttentionTuning = {}): number {
  return 4 * attentionLayout(s, tuning).sharedFloats;
}

/** One channel a thread owns: where it comes from in the loaded row words. */
interface Channel {
  /** Word of the thread's slice (0..W-1). */
  unit: number;
  /** WGSL expression of the channel index (uses `slice`). */
  ch: string;
  /** f16: which half of the word; packed: bit offset after the optional shift, and whether the word is shifted. */
  hi: boolean;
  bit: number;
  shifted: boolean;
  /** Packed: (unit, code) slot (one value group and one 4-channel run of key scales); position in that run. */
  slot: number;
  pos: number;
}

function channels(L: AttentionLayout): { chans: Channel[]; slots: number } {
  const { format, headDim: D } = L.shape;
  const out: Channel[] = [];
  if (format === 'f32') {
    for (let j = 0; j < L.W; j++) out.push({ unit: j, ch: `slice * ${L.W}u + ${j}u`, hi: false, bit: 0, shifted: false, slot: 0, pos: 0 });
    return { chans: out, slots: 0 };
  }
  if (format === 'f16') {
    for (let j = 0; j < L.W; j++) for (let h = 0; h < 2; h++) out.push({ unit: j, ch: `2u * (slice * ${L.W}u + ${j}u) + ${h}u`, hi: h === 1, bit: 0, shifted: false, slot: 0, pos: 0 });
    return { chans: out, slots: 0 };
  }
  const bits = FORMAT_BITS[format];
  const R = (D * bits) >> 3;
  const bytesPerUnit = L.half ? 2 : 4;
  const cpb = 8 / bits;
  let slot = 0;
  for (let j = 0; j < L.W; j++) {
    for (let s = 0; s < cpb; s++, slot++) {
      for (let b = 0; b < bytesPerUnit; b++) {
        const o = 8 * b + s * bits;
        const shifted = o + bits > MANTISSA_BITS;
        const base = L.half ? `2u * slice` : `4u * (slice * ${L.W}u + ${j}u)`;
        out.push({ unit: j, ch: `${base} + ${b + s * R}u`, hi: false, bit: shifted ? o - CODE_SHIFT : o, shifted, slot, pos: b });
      }
    }
  }
  return { chans: out, slots: slot };
}

const COMP = ['x', 'y', 'z', 'w'];

/** Split-K attention kernel over pages of one format. Entry point `main`. */
export function attentionShader(s: AttentionShape, tuning: AttentionTuning = {}): string {
  const L = attentionLayout(s, tuning);
  const { format, headDim: D, valueGroup: VG, groupSize: G } = s;
  const { GB, W, TPR, RG, WG, RPT, rounds, TPRP, pdFloats } = L;
  const PT = PAGE_TOKENS;
  const PW = pageBytes(format, D, VG) / 4;
  const packed = isPacked(format);
  const PAY = PAYLOAD_OFFSET / 4;
  const { chans, slots } = channels(L);
  const RPR = RPT / rounds; // rows per thread per reduction round
  // workgroup memory regions (floats)
  const ACC = 0; // aliases the partial dots (used only after the last page)
  const PD = 0;
  const PDV = Math.ceil(Math.max(pdFloats, GB * D) / 4); // vec4s of the partial-dot / accumulator region
  const LG = 0;
  const LW = LG + PT * GB;
  const MS = LW + PT;
  const LS = MS + RG * GB;
  const o: string[] = [];
  const E = (x: string) => o.push(x);
  const word = (j: number, name: string) => (W === 1 ? name : `${name}.${COMP[j]}`);
  const elemType = W === 1 ? 'u32' : `vec${W}<u32>`;

  E(`// edgekv decode attention, format ${format}, d=${D}, vg=${VG}, G=${G} (GB=${GB} x ${L.HB} blocks), W=${W}, TPR=${TPR}, RG=${RG}, WG=${WG} (generated)`);
  E(`const G: u32 = ${G}u;
const GB: u32 = ${GB}u;
const D: u32 = ${D}u;
const PW: u32 = ${PW}u;
const PS: u32 = ${partialStride(G, D)}u;
const HP: u32 = ${partialHeader(G)}u;
const NEG_BIG: f32 = ${NEG_BIG};
const LOG2E: f32 = 1.4426950408889634;
struct Params { splitOffset: u32, numSplits: u32, scale: f32, wgPerRow: u32 }
@group(0) @binding(0) var<storage, read> pool: array<${elemType}>;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
@group(0) @binding(2) var<storage, read> qbuf: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
var<workgroup> pd: array<vec4<f32>, ${PDV}>;
var<workgroup> sh: array<f32, ${L.sharedFloats - 4 * PDV}>;
fn wordAt(i: u32) -> u32 { return ${W === 1 ? 'pool[i]' : `pool[i / ${W}u][i % ${W}u]`}; }`);
  if (packed) {
    E(`fn code(w: u32, mask: u32) -> f32 { return bitcast<f32>((w & mask) | 0x3f800000u) - 1.0; }`);
  }
  E(`
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let sidx = wid.x + wid.y * params.wgPerRow;
  if (sidx >= params.numSplits) { return; }
  let h0 = wid.z * GB;
  let rec = params.splitOffset + 4u * sidx;
  let qBase = plan[rec] * G * D;
  let entryOff = plan[rec + 1u];
  let nEntries = plan[rec + 2u];
  let pBase = plan[rec + 3u] * PS;
  let qscale = params.scale * LOG2E;
  let slice = t % ${TPR}u;
  let rg = t / ${TPR}u;`);
  // query registers
  for (let h = 0; h < GB; h++) {
    E(`  let qh${h} = (min(h0 + ${h}u, G - 1u)) * D;`);
    E(`  let qok${h} = h0 + ${h}u < G;`);
    chans.forEach((c, k) => E(`  let q${h}_${k} = select(0.0, qbuf[qBase + qh${h} + ${c.ch}] * qscale, qok${h});`));
  }
  for (let h = 0; h < GB; h++) {
    E(`  var m${h} = NEG_BIG;\n  var l${h} = 0.0;`);
    chans.forEach((_, k) => E(`  var a${h}_${k} = 0.0;`));
    for (let sl = 0; sl < slots; sl++) E(`  var pm${h}_${sl} = 0.0;`);
  }
  let R = 0, ng = 0;
  if (packed) {
    const po = packedOffsets(format, D, VG);
    R = po.R; ng = po.ng;
    E(`  let KSW = ${po.kScale / 4}u;\n  let KMW = ${po.kMin / 4}u;\n  let VSH = ${po.vScale / 2}u;\n  let VMH = ${po.vMin / 2}u;`);
    // first channel and value group of each slot
    for (let sl = 0; sl < slots; sl++) {
      const c = chans.find((x) => x.slot === sl)!;
      E(`  let c0_${sl} = ${c.ch};\n  let g${sl} = c0_${sl} / ${VG}u;`);
    }
  }
  if (TPR > 1 && TPR % 4 !== 0) {
    E(`  for (var x = t; x < ${pdFloats / TPRP}u; x += ${WG}u) {
    for (var j = ${TPR}u; j < ${Math.ceil(TPR / 4) * 4}u; j++) { pd[(x * ${TPRP}u + j) >> 2u][(x * ${TPRP}u + j) & 3u] = 0.0; }
  }`);
  }
  // Raw loads of one page (keys and values of every row this thread owns, scales,
  // log-weights), as [name, WGSL expression of the page's word index `b`]: conversions
  // happen at the use, so that prefetched loads stay in flight while the previous page
  // is computed.
  for (let i = 0; i < RPT; i++) E(`  let e${i} = rg + ${RG * i}u;`);
  const lwInRegister = WG >= PT;
  const pageLoads = (b: string): Array<[string, string]> => {
    const out: Array<[string, string]> = [];
    if (lwInRegister) out.push(['lw', `wordAt(${b} + t % ${PT}u)`]);
    if (format === 'f32' || format === 'f16') {
      const rw = rowWordsOf(format, D);
      const vOff = PAY + PT * rw;
      for (let i = 0; i < RPT; i++) {
        out.push([`k${i}`, `pool[(${b} + ${PAY}u + e${i} * ${rw}u) / ${W}u + slice]`]);
        out.push([`v${i}`, `pool[(${b} + ${vOff}u + e${i} * ${rw}u) / ${W}u + slice]`]);
      }
      return out;
    }
    const po = packedOffsets(format, D, VG);
    for (let i = 0; i < RPT; i++) {
      if (L.half) {
        const kb = `(${b} * 4u + ${po.kCodes}u + e${i} * ${R}u)`, vb = `(${b} * 4u + ${po.vCodes}u + e${i} * ${R}u)`;
        out.push([`k${i}`, `(wordAt(${kb} >> 2u) >> ((${kb} & 2u) * 8u)) & 0xffffu`]);
        out.push([`v${i}`, `(wordAt(${vb} >> 2u) >> ((${vb} & 2u) * 8u)) & 0xffffu`]);
      } else {
        out.push([`k${i}`, `pool[(${b} + ${po.kCodes / 4}u + e${i} * ${R / 4}u) / ${W}u + slice]`]);
        out.push([`v${i}`, `pool[(${b} + ${po.vCodes / 4}u + e${i} * ${R / 4}u) / ${W}u + slice]`]);
      }
      // value scale / minimum of each slot's group (f16 pairs; the half is picked at the use)
      for (let sl = 0; sl < slots; sl++) {
        out.push([`vs${i}_${sl}`, `wordAt((${b} * 2u + VSH + e${i} * ${ng}u + g${sl}) >> 1u)`]);
        out.push([`vm${i}_${sl}`, `wordAt((${b} * 2u + VMH + e${i} * ${ng}u + g${sl}) >> 1u)`]);
      }
    }
    for (let sl = 0; sl < slots; sl++) {
      const n = chans.filter((c) => c.slot === sl).length; // 4 (or 2 for 16-bit rows)
      for (let w = 0; w < n / 2; w++) {
        out.push([`ks${sl}_${w}`, `wordAt(${b} + KSW + (c0_${sl} >> 1u) + ${w}u)`]);
        out.push([`km${sl}_${w}`, `wordAt(${b} + KMW + (c0_${sl} >> 1u) + ${w}u)`]);
      }
    }
    return out;
  };
  const names = pageLoads('base').map(([n]) => n);
  if (L.prefetch) {
    E(`  var base = plan[entryOff] * PW;\n  var cnt = plan[entryOff + 1u];`);
    for (const [n, x] of pageLoads('base')) E(`  var ${n} = ${x};`);
    E(`  for (var pi = 0u; pi < nEntries; pi++) {
    // next page (the last page loads itself again: cache hits)
    let nidx = min(pi + 1u, nEntries - 1u);
    let nbase = plan[entryOff + 2u * nidx] * PW;
    let ncnt = plan[entryOff + 2u * nidx + 1u];`);
    for (const [n, x] of pageLoads('nbase')) E(`    let n${n} = ${x};`);
  } else {
    E(`  for (var pi = 0u; pi < nEntries; pi++) {
    let base = plan[entryOff + 2u * pi] * PW;
    let cnt = plan[entryOff + 2u * pi + 1u];`);
    for (const [n, x] of pageLoads('base')) E(`    let ${n} = ${x};`);
  }
  E(lwInRegister
    ? `    if (t < ${PT}u) { sh[${LW}u + t] = bitcast<f32>(lw) * LOG2E; }`
    : `    for (var x = t; x < ${PT}u; x += ${WG}u) { sh[${LW}u + x] = bitcast<f32>(wordAt(base + x)) * LOG2E; }`);
  const rotate = () => {
    if (!L.prefetch) return;
    for (const n of names) E(`    ${n} = n${n};`);
    E(`    base = nbase;\n    cnt = ncnt;`);
  };
  if (packed) {
    // per-page key scale folded into the query; constant term from the minima
    for (let sl = 0; sl < slots; sl++) {
      const n = chans.filter((c) => c.slot === sl).length;
      for (let w = 0; w < n / 2; w++) E(`    let ksf${sl}_${w} = unpack2x16float(ks${sl}_${w});\n    let kmf${sl}_${w} = unpack2x16float(km${sl}_${w});`);
    }
    chans.forEach((c, k) => {
      const comp = `${c.slot}_${c.pos >> 1}.${COMP[c.pos & 1]}`;
      E(`    let sk${k} = ksf${comp} * ${2 ** (MANTISSA_BITS - c.bit)}.0;`);
      E(`    let mk${k} = kmf${comp};`);
    });
    for (let h = 0; h < GB; h++) {
      E(`    var c${h} = 0.0;`);
      chans.forEach((_, k) => E(`    c${h} = fma(q${h}_${k}, mk${k}, c${h});`));
      chans.forEach((_, k) => E(`    let qa${h}_${k} = q${h}_${k} * sk${k};`));
    }
  }
  // channel value of row i from word variable
  const chanVal = (c: Channel, v: string): string => {
    if (format === 'f32') return `bitcast<f32>(${word(c.unit, v)})`;
    if (format === 'f16') return `${v}f${c.unit}.${c.hi ? 'y' : 'x'}`;
    const bits = FORMAT_BITS[format];
    const w = word(c.unit, v);
    const src = c.shifted ? `(${w} >> ${CODE_SHIFT}u)` : w;
    return `code(${src}, ${(((1 << bits) - 1) << c.bit) >>> 0}u)`;
  };
  const unpackF16 = (v: string) => {
    if (format !== 'f16') return;
    for (let j = 0; j < W; j++) E(`    let ${v}f${j} = unpack2x16float(${word(j, v)});`);
  };
  // partial dots + reduction rounds
  for (let r = 0; r < rounds; r++) {
    for (let i = r * RPR; i < (r + 1) * RPR; i++) {
      unpackF16(`k${i}`);
      for (let h = 0; h < GB; h++) {
        const terms = chans.map((c, k) => (packed ? `qa${h}_${k}` : `q${h}_${k}`) + ` * ${chanVal(c, `k${i}`)}`);
        E(`    let d${i}_${h} = ${packed ? `c${h} + ` : ''}${terms.join(' + ')};`);
        E(`    let w${i}_${h} = ${PD}u + ((rg + ${RG * (i - r * RPR)}u) * GB + ${h}u) * ${TPRP}u + slice;\n    pd[w${i}_${h} >> 2u][w${i}_${h} & 3u] = d${i}_${h};`);
      }
    }
    E(`    workgroupBarrier();
    for (var x = t; x < ${RG * RPR * GB}u; x += ${WG}u) {
      let e = ${RG * RPR * r}u + x / GB;
      ${TPR === 1 ? `let sum = pd[(${PD}u + x) >> 2u][(${PD}u + x) & 3u];` : `var s4 = vec4<f32>(0.0);
      for (var j = 0u; j < ${Math.ceil(TPR / 4)}u; j++) { s4 += pd[${PD / 4}u + x * ${TPRP / 4}u + j]; }
      let sum = (s4.x + s4.y) + (s4.z + s4.w);`}
      sh[${LG}u + ${RG * RPR * r * GB}u + x] = select(NEG_BIG, sum + sh[${LW}u + e], e < cnt);
    }
    workgroupBarrier();`);
  }
  // online softmax per thread over its rows
  for (let h = 0; h < GB; h++) {
    for (let i = 0; i < RPT; i++) E(`    let lg${i}_${h} = sh[${LG}u + e${i} * GB + ${h}u];`);
    const mx = Array.from({ length: RPT }, (_, i) => `lg${i}_${h}`).reduce((a, b) => `max(${a}, ${b})`);
    E(`    let mx${h} = ${mx};
    if (mx${h} > m${h}) {
      let al = exp2(m${h} - mx${h});
      m${h} = mx${h};
      l${h} *= al;`);
    chans.forEach((_, k) => E(`      a${h}_${k} *= al;`));
    for (let sl = 0; sl < slots; sl++) E(`      pm${h}_${sl} *= al;`);
    E(`    }`);
    for (let i = 0; i < RPT; i++) E(`    let p${i}_${h} = select(0.0, exp2(lg${i}_${h} - m${h}), e${i} < cnt);`);
    E(`    l${h} += ${Array.from({ length: RPT }, (_, i) => `p${i}_${h}`).join(' + ')};`);
  }
  // values
  for (let i = 0; i < RPT; i++) {
    E(`    if (e${i} < cnt) {`);
    unpackF16(`v${i}`);
    if (packed) {
      for (let sl = 0; sl < slots; sl++) {
        E(`      let hi${sl} = ((VSH + e${i} * ${ng}u + g${sl}) & 1u) != 0u;`);
        E(`      let vsp${sl} = unpack2x16float(vs${i}_${sl});\n      let vmp${sl} = unpack2x16float(vm${i}_${sl});`);
        E(`      let vsf${sl} = select(vsp${sl}.x, vsp${sl}.y, hi${sl});\n      let vmf${sl} = select(vmp${sl}.x, vmp${sl}.y, hi${sl});`);
        for (let h = 0; h < GB; h++) {
          E(`      let ps${h}_${sl} = p${i}_${h} * vsf${sl};`);
          E(`      pm${h}_${sl} = fma(p${i}_${h}, vmf${sl}, pm${h}_${sl});`);
        }
      }
    }
    chans.forEach((c, k) => {
      const v = chanVal(c, `v${i}`);
      E(`      let x${k} = ${v};`);
      for (let h = 0; h < GB; h++) E(`      a${h}_${k} = fma(${packed ? `ps${h}_${c.slot}` : `p${i}_${h}`}, x${k}, a${h}_${k});`);
    });
    E(`    }`);
  }
  rotate();
  E(`  }`);
  // end of split: merge the row groups
  if (packed) {
    for (let h = 0; h < GB; h++) chans.forEach((c, k) => E(`  a${h}_${k} = fma(a${h}_${k}, ${2 ** (MANTISSA_BITS - c.bit)}.0, pm${h}_${c.slot});`));
  }
  E(`  if (slice == 0u) {`);
  for (let h = 0; h < GB; h++) E(`    sh[${MS}u + rg * GB + ${h}u] = m${h};\n    sh[${LS}u + rg * GB + ${h}u] = l${h};`);
  E(`  }
  workgroupBarrier();`);
  for (let h = 0; h < GB; h++) {
    E(`  var M${h} = NEG_BIG;
  for (var r = 0u; r < ${RG}u; r++) { M${h} = max(M${h}, sh[${MS}u + r * GB + ${h}u]); }
  let f${h} = exp2(m${h} - M${h});`);
  }
  E(`  for (var step = 0u; step < ${RG}u; step++) {
    if (rg == step) {`);
  for (let h = 0; h < GB; h++) {
    chans.forEach((c, k) => E(`      let i${h}_${k} = ${ACC}u + ${h}u * D + ${c.ch};\n      pd[i${h}_${k} >> 2u][i${h}_${k} & 3u] = select(pd[i${h}_${k} >> 2u][i${h}_${k} & 3u], 0.0, step == 0u) + a${h}_${k} * f${h};`));
  }
  E(`    }
    workgroupBarrier();
  }
  for (var i = t; i < GB * D; i += ${WG}u) {
    let h = h0 + i / D;
    if (h < G) { partials[pBase + HP + h0 * D + i] = pd[(${ACC}u + i) >> 2u][(${ACC}u + i) & 3u]; }
  }
  if (t < GB && h0 + t < G) {
    var M = NEG_BIG;
    for (var r = 0u; r < ${RG}u; r++) { M = max(M, sh[${MS}u + r * GB + t]); }
    var l = 0.0;
    for (var r = 0u; r < ${RG}u; r++) { l += sh[${LS}u + r * GB + t] * exp2(sh[${MS}u + r * GB + t] - M); }
    partials[pBase + h0 + t] = M;
    partials[pBase + G + h0 + t] = l;
  }
}`);
  return o.join('\n');
}

/** Merge-kernel layout: vec4 columns per workgroup, column chunks, slices of the partial list. */
export function mergeLayout(D: number): { C4: number; CC: number; NCH: number; NS: number } {
  const C4 = D / 4;
  let CC = Math.min(C4, MERGE_COLUMNS);
  while (C4 % CC !== 0) CC--;
  return { C4, CC, NCH: C4 / CC, NS: Math.floor(MERGE_WORKGROUP_SIZE / CC) };
}

/**
 * Merge kernel: one workgroup per (lane, head, chunk of `4 CC` channels) merges the
 * lane's partial records with log-sum-exp into `result = out[lanes][G][d] ++ lse[lanes][G]`.
 * `mplan` (from word `mplanOffset`) holds `[firstPartial, partialCount]` per lane. A lane
 * with no partials gets `out = 0` and `lse = -3e38`, as does a head whose every entry is
 * masked (log-weight -Infinity); the host turns that lse into -Infinity. Threads: `CC`
 * `vec4<f32>` columns times `NS` slices of the partial list, two loads in flight each.
 */
export function mergeShader(G: number, D: number): string {
  const WG = MERGE_WORKGROUP_SIZE;
  const { C4, CC, NCH, NS } = mergeLayout(D);
  const R1 = Math.sqrt(WG); // two-level reduction of (m, l): R1 groups of R1
  return `// edgekv attention merge, d=${D}, G=${G} (generated)
const G: u32 = ${G}u;
const WG: u32 = ${WG}u;
const C4: u32 = ${C4}u;
const CC: u32 = ${CC}u;
const NCH: u32 = ${NCH}u;
const NS: u32 = ${NS}u;
const PS4: u32 = ${partialStride(G, D) / 4}u;
const HP4: u32 = ${partialHeader(G) / 4}u;
const LN2: f32 = 0.6931471805599453;
const NEG_BIG: f32 = ${NEG_BIG};
struct Params { numLanes: u32, wgPerRow: u32, lseOffset: u32, mplanOffset: u32 }
@group(0) @binding(0) var<storage, read> partials: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> mplan: array<u32>;
@group(0) @binding(2) var<storage, read_write> result: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
var<workgroup> rm: array<f32, ${WG}>;
var<workgroup> rl: array<f32, ${WG}>;
var<workgroup> red4: array<vec4<f32>, ${WG}>;

fn scalarAt(i: u32) -> f32 { return partials[i / 4u][i % 4u]; }

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let id = wid.x + wid.y * params.wgPerRow;
  if (id >= params.numLanes * G * NCH) { return; }
  let chunk = id % NCH;
  let lh = id / NCH;
  let lane = lh / G;
  let h = lh - lane * G;
  let first = mplan[params.mplanOffset + 2u * lane];
  let n = mplan[params.mplanOffset + 2u * lane + 1u];
  // (max, sum) over the partials: per thread online, then ${R1} x ${R1}
  var m = NEG_BIG;
  var l = 0.0;
  for (var p = t; p < n; p += WG) {
    let b = (first + p) * PS4 * 4u;
    let mp = scalarAt(b + h);
    let mn = max(m, mp);
    l = l * exp2(m - mn) + scalarAt(b + G + h) * exp2(mp - mn);
    m = mn;
  }
  rm[t] = m;
  rl[t] = l;
  workgroupBarrier();
  if (t < ${R1}u) {
    var m1 = NEG_BIG;
    for (var k = 0u; k < ${R1}u; k++) { m1 = max(m1, rm[${R1}u * t + k]); }
    var l1 = 0.0;
    for (var k = 0u; k < ${R1}u; k++) { l1 += rl[${R1}u * t + k] * exp2(rm[${R1}u * t + k] - m1); }
    rm[${R1}u * t] = m1;
    rl[${R1}u * t] = l1;
  }
  workgroupBarrier();
  var M = NEG_BIG;
  for (var k = 0u; k < ${R1}u; k++) { M = max(M, rm[${R1}u * k]); }
  var L = 0.0;
  for (var k = 0u; k < ${R1}u; k++) { L += rl[${R1}u * k] * exp2(rm[${R1}u * k] - M); }
  let c = t % CC;
  let ps = t / CC;
  var s = vec4<f32>(0.0);
  if (ps < NS) {
    let col = HP4 + h * C4 + chunk * CC + c;
    var p = ps;
    for (; p + NS < n; p += 2u * NS) {
      let b0 = (first + p) * PS4;
      let b1 = b0 + NS * PS4;
      let w0 = exp2(scalarAt(b0 * 4u + h) - M);
      let w1 = exp2(scalarAt(b1 * 4u + h) - M);
      s += w0 * partials[b0 + col] + w1 * partials[b1 + col];
    }
    if (p < n) {
      let b = (first + p) * PS4;
      s += exp2(scalarAt(b * 4u + h) - M) * partials[b + col];
    }
  }
  red4[t] = s;
  workgroupBarrier();
  let live = n > 0u && L > 0.0;
  if (t < CC) {
    var acc = vec4<f32>(0.0);
    for (var q = 0u; q < NS; q++) { acc += red4[q * CC + t]; }
    let inv = select(0.0, 1.0 / L, live);
    let o = (lane * G + h) * C4 * 4u + 4u * (chunk * CC + t);
    result[o] = acc.x * inv;
    result[o + 1u] = acc.y * inv;
    result[o + 2u] = acc.z * inv;
    result[o + 3u] = acc.w * inv;
  }
  if (t == 0u && chunk == 0u) { result[params.lseOffset + lane * G + h] = select(NEG_BIG, (M + log2(L)) * LN2, live); }
}
`;
}

/**
 * Matrix-vector product with f16 weights over one row block:
 * `y[yOffset + r] = scale * sum_c W[r][c] x[c]` for `r < rows`, W row-major IEEE binary16
 * (two per u32 word; `cols` even, odd matrices padded with a zero column), x and y f32
 * (x padded to `cols` with zeros). One workgroup per row (a 2-D grid of `wgPerRow` columns
 * when rows exceed the per-dimension limit), f32 accumulation, a tree reduction in
 * workgroup memory; `scale` multiplies the f32 sum (the runner's 2^-k of subnormal-free f16).
 */
export function matvecShader(): string {
  return `// edgekv matvec, f16 weights (generated)
const WG: u32 = ${WORKGROUP_SIZE}u;
struct Params { rows: u32, cols: u32, wgPerRow: u32, yOffset: u32, scale: f32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
var<workgroup> red: array<f32, ${WORKGROUP_SIZE}>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * params.wgPerRow;
  if (row >= params.rows) { return; }
  let half = params.cols / 2u;
  let base = row * half;
  var s = 0.0;
  for (var u = t; u < half; u += WG) {
    s += dot(unpack2x16float(w[base + u]), x[u]);
  }
  red[t] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (t < k) { red[t] += red[t + k]; }
    workgroupBarrier();
  }
  if (t == 0u) { y[params.yOffset + row] = red[0] * params.scale; }
}
`;
}

/**
 * WGSL sources, generated per shape (format, head dim, value group, GQA group size)
 * so that every loop bound and workgroup array size is a constant.
 *
 * Decode attention is split-K ("flash-decoding"): each workgroup runs online softmax
 * over a contiguous run of one lane's pages and writes a partial record
 * `(m[G], l[G], acc[G][d])` (running max, sum of exp, unnormalised numerator); a
 * second kernel merges a lane's partials with log-sum-exp and writes
 * `out[G][d] = acc / l` and `lse[G] = m + ln l`. All G query heads of a GQA group are
 * handled by one workgroup, so each KV byte is read once per step.
 *
 * Pages are read from a pool buffer (`array<u32>`) in exactly the byte layout of
 * `assembly/kernels/layout.ts`; f16 halves are unpacked with `unpack2x16float`, so no
 * `shader-f16` feature is needed. For packed pages the logit is computed without
 * dequantising each key: `scale * <q, min + s * code> = qm + sum_c (scale q_c s_c) code_c`
 * with `qm = scale * <q, min>` (KIVI keys: `s`, `min` per channel over the page).
 */
import { PAGE_TOKENS, PAYLOAD_OFFSET, FORMAT_BITS, packedOffsets, pageBytes } from '../formats.ts';
import type { Format } from '../formats.ts';

/** Threads per workgroup of every kernel here. */
export const WORKGROUP_SIZE = 64;
/** Bytes between two dispatches' parameter records in the uniform buffer (>= any device's minUniformBufferOffsetAlignment). */
export const PARAMS_STRIDE = 256;
/** Largest number of threads that cooperate on one key row in the logit phase. */
export const MAX_ROW_LANES = 8;
/** Initial running maximum: finite (WGSL constants may not be infinite), below any logit. */
const NEG_BIG = '-3.0e38';

/** Shape of one compiled attention kernel. */
export interface AttentionShape {
  format: Format;
  headDim: number;
  valueGroup: number;
  groupSize: number;
}

/** Floats in one partial record: m[G], l[G], acc[G][d]. */
export function partialStride(G: number, d: number): number {
  return G * (d + 2);
}

/** Workgroup memory (bytes) that the attention kernel of this shape needs. */
export function attentionWorkgroupBytes(s: AttentionShape): number {
  const G = s.groupSize, d = s.headDim, W = WORKGROUP_SIZE;
  const packed = s.format !== 'f32' && s.format !== 'f16';
  const floats = G * d + G * W + G * PAGE_TOKENS + 3 * G + (packed ? G * W + G : 0);
  return 4 * floats;
}

/** How the key rows of a page are cut into units read by one thread at a time. */
function keyUnits(s: AttentionShape): { unitBytes: number; units: number } {
  const d = s.headDim;
  if (s.format === 'f32') return { unitBytes: 4, units: d };
  if (s.format === 'f16') return { unitBytes: 4, units: d / 2 };
  const R = (d * FORMAT_BITS[s.format]) >> 3;
  return R % 4 === 0 ? { unitBytes: 4, units: R / 4 } : { unitBytes: 2, units: R / 2 };
}

function rowLanes(units: number): number {
  let rl = 2;
  while (rl < MAX_ROW_LANES && rl * 2 <= units) rl *= 2;
  return rl;
}

/** Split-K attention kernel over pages of one format. Entry point `main`. */
export function attentionShader(s: AttentionShape): string {
  const { format, headDim: D, valueGroup: VG, groupSize: G } = s;
  const W = WORKGROUP_SIZE, PT = PAGE_TOKENS;
  const PW = pageBytes(format, D, VG) / 4;
  const packed = format !== 'f32' && format !== 'f16';
  const { unitBytes, units: KU } = keyUnits(s);
  const RL = rowLanes(KU);
  const RPP = W / RL; // rows per pass
  const PASSES = PT / RPP;
  const PAY = PAYLOAD_OFFSET / 4; // payload offset in words
  const lines: string[] = [];
  const L = (x: string) => lines.push(x);

  L(`// edgekv decode attention, format ${format}, d=${D}, vg=${VG}, G=${G} (generated)`);
  L(`const D: u32 = ${D}u;`);
  L(`const G: u32 = ${G}u;`);
  L(`const WG: u32 = ${W}u;`);
  L(`const PT: u32 = ${PT}u;`);
  L(`const PW: u32 = ${PW}u;`);
  L(`const PAY: u32 = ${PAY}u;`);
  L(`const KU: u32 = ${KU}u;`);
  L(`const RL: u32 = ${RL}u;`);
  L(`const RPP: u32 = ${RPP}u;`);
  L(`const PASSES: u32 = ${PASSES}u;`);
  L(`const PS: u32 = ${partialStride(G, D)}u;`);
  if (packed) {
    const o = packedOffsets(format, D, VG);
    L(`const BITS: u32 = ${o.bits}u;`);
    L(`const CPB: u32 = ${8 / o.bits}u;`); // codes per byte
    L(`const MASK: u32 = ${(1 << o.bits) - 1}u;`);
    L(`const R: u32 = ${o.R}u;`);
    L(`const NG: u32 = ${o.ng}u;`);
    L(`const VG: u32 = ${VG}u;`);
    L(`const KSCALE_W: u32 = ${o.kScale / 4}u;`);
    L(`const KMIN_W: u32 = ${o.kMin / 4}u;`);
    L(`const KCODES_B: u32 = ${o.kCodes}u;`);
    L(`const VSCALE_B: u32 = ${o.vScale}u;`);
    L(`const VMIN_B: u32 = ${o.vMin}u;`);
    L(`const VCODES_B: u32 = ${o.vCodes}u;`);
  } else {
    L(`const VOFF: u32 = ${PAY + (PT * D * (format === 'f32' ? 4 : 2)) / 4}u;`);
  }
  const VPT = packed || format === 'f32' ? Math.ceil(D / W) : Math.ceil(D / 2 / W); // value units per thread
  const ACC = G * VPT * (format === 'f16' ? 2 : 1);
  L(`const VPT: u32 = ${VPT}u;`);
  L(`
struct Params { splitOffset: u32, numSplits: u32, scale: f32, wgPerRow: u32 }
@group(0) @binding(0) var<storage, read> pool: array<u32>;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
@group(0) @binding(2) var<storage, read> qbuf: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> qs: array<f32, ${G * D}>;
var<workgroup> red: array<f32, ${G * W}>;
var<workgroup> lg: array<f32, ${G * PT}>;
var<workgroup> mS: array<f32, ${G}>;
var<workgroup> lS: array<f32, ${G}>;
var<workgroup> aS: array<f32, ${G}>;`);
  if (packed) {
    L(`var<workgroup> redQ: array<f32, ${G * W}>;`);
    L(`var<workgroup> qm: array<f32, ${G}>;`);
    L(`
fn byteAt(b: u32) -> u32 { return (pool[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu; }
fn halfAt(b: u32) -> f32 {
  let v = unpack2x16float(pool[b >> 2u]);
  return select(v.x, v.y, (b & 2u) != 0u);
}`);
  }
  L(`
@compute @workgroup_size(${W})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let s = wid.x + wid.y * params.wgPerRow;
  if (s >= params.numSplits) { return; }
  let rec = params.splitOffset + 4u * s;
  let qBase = plan[rec] * G * D;
  let entryOff = plan[rec + 1u];
  let nEntries = plan[rec + 2u];
  let pBase = plan[rec + 3u] * PS;
  let scale = params.scale;
  if (t < G) { mS[t] = ${NEG_BIG}; lS[t] = 0.0; }`);
  if (!packed) {
    L(`  for (var i = t; i < G * D; i += WG) { qs[i] = qbuf[qBase + i] * scale; }`);
  }
  L(`  var acc: array<f32, ${ACC}>;
  for (var i = 0u; i < ${ACC}u; i++) { acc[i] = 0.0; }
  workgroupBarrier();
  let r = t % RL;
  let rowInPass = t / RL;
  for (var pi = 0u; pi < nEntries; pi++) {
    let base = plan[entryOff + 2u * pi] * PW;
    let cnt = plan[entryOff + 2u * pi + 1u];`);
  if (packed) {
    L(`    // per-page key scale folded into the query; qm[h] = scale * <q_h, kMin>
    var qmPart: array<f32, ${G}>;
    for (var h = 0u; h < G; h++) { qmPart[h] = 0.0; }
    for (var i = t; i < G * D; i += WG) {
      let h = i / D;
      let c = i - h * D;
      let sc = unpack2x16float(pool[base + KSCALE_W + (c >> 1u)]);
      let mn = unpack2x16float(pool[base + KMIN_W + (c >> 1u)]);
      let odd = (c & 1u) != 0u;
      let qv = qbuf[qBase + i] * scale;
      qs[i] = qv * select(sc.x, sc.y, odd);
      qmPart[h] += qv * select(mn.x, mn.y, odd);
    }
    for (var h = 0u; h < G; h++) { redQ[h * WG + t] = qmPart[h]; }
    workgroupBarrier();
    if (t < G) {
      var sum = 0.0;
      for (var l = 0u; l < WG; l++) { sum += redQ[t * WG + l]; }
      qm[t] = sum;
    }`);
  }
  // logit phase
  L(`    for (var ps = 0u; ps < PASSES; ps++) {
      let e = ps * RPP + rowInPass;
      var dot: array<f32, ${G}>;
      for (var h = 0u; h < G; h++) { dot[h] = 0.0; }
      if (e < cnt) {`);
  if (format === 'f32') {
    L(`        let row = base + PAY + e * D;
        for (var u = r; u < KU; u += RL) {
          let kv = bitcast<f32>(pool[row + u]);
          for (var h = 0u; h < G; h++) { dot[h] += qs[h * D + u] * kv; }
        }`);
  } else if (format === 'f16') {
    L(`        let row = base + PAY + e * (D / 2u);
        for (var u = r; u < KU; u += RL) {
          let kv = unpack2x16float(pool[row + u]);
          for (var h = 0u; h < G; h++) { dot[h] += qs[h * D + 2u * u] * kv.x + qs[h * D + 2u * u + 1u] * kv.y; }
        }`);
  } else if (unitBytes === 4) {
    L(`        let row = (base * 4u + KCODES_B + e * R) >> 2u;
        for (var u = r; u < KU; u += RL) {
          let wv = pool[row + u];
          for (var b = 0u; b < 4u; b++) {
            let byte = (wv >> (8u * b)) & 0xffu;
            let j = 4u * u + b;
            for (var sh = 0u; sh < CPB; sh++) {
              let code = f32((byte >> (sh * BITS)) & MASK);
              let c = j + sh * R;
              for (var h = 0u; h < G; h++) { dot[h] += qs[h * D + c] * code; }
            }
          }
        }`);
  } else {
    L(`        let rowB = base * 4u + KCODES_B + e * R;
        for (var u = r; u < KU; u += RL) {
          let hb = rowB + 2u * u;
          let wv = (pool[hb >> 2u] >> ((hb & 3u) * 8u)) & 0xffffu;
          for (var b = 0u; b < 2u; b++) {
            let byte = (wv >> (8u * b)) & 0xffu;
            let j = 2u * u + b;
            for (var sh = 0u; sh < CPB; sh++) {
              let code = f32((byte >> (sh * BITS)) & MASK);
              let c = j + sh * R;
              for (var h = 0u; h < G; h++) { dot[h] += qs[h * D + c] * code; }
            }
          }
        }`);
  }
  L(`      }
      for (var h = 0u; h < G; h++) { red[h * WG + t] = dot[h]; }
      workgroupBarrier();
      for (var i = t; i < G * RPP; i += WG) {
        let h = i / RPP;
        let row = i - h * RPP;
        let e2 = ps * RPP + row;
        var sum = 0.0;
        for (var l = 0u; l < RL; l++) { sum += red[h * WG + row * RL + l]; }
        lg[h * PT + e2] = sum + ${packed ? 'qm[h] + ' : ''}bitcast<f32>(pool[base + e2]);
      }
      workgroupBarrier();
    }
    // online softmax update for this page
    if (t < G) {
      var pm = ${NEG_BIG};
      for (var e = 0u; e < cnt; e++) { pm = max(pm, lg[t * PT + e]); }
      let mNew = max(mS[t], pm);
      let alpha = exp(mS[t] - mNew);
      var sum = 0.0;
      for (var e = 0u; e < PT; e++) {
        let p = select(0.0, exp(lg[t * PT + e] - mNew), e < cnt);
        lg[t * PT + e] = p;
        sum += p;
      }
      lS[t] = lS[t] * alpha + sum;
      mS[t] = mNew;
      aS[t] = alpha;
    }
    workgroupBarrier();
    for (var i = 0u; i < ${ACC}u; i++) { acc[i] *= aS[i / ${ACC / G}u]; }`);
  // value phase
  if (format === 'f32') {
    L(`    for (var i = 0u; i < VPT; i++) {
      let u = t + i * WG;
      if (u < D) {
        for (var e = 0u; e < cnt; e++) {
          let vv = bitcast<f32>(pool[base + VOFF + e * D + u]);
          for (var h = 0u; h < G; h++) { acc[h * VPT + i] += lg[h * PT + e] * vv; }
        }
      }
    }`);
  } else if (format === 'f16') {
    L(`    for (var i = 0u; i < VPT; i++) {
      let u = t + i * WG;
      if (u < D / 2u) {
        for (var e = 0u; e < cnt; e++) {
          let vv = unpack2x16float(pool[base + VOFF + e * (D / 2u) + u]);
          for (var h = 0u; h < G; h++) {
            let p = lg[h * PT + e];
            acc[(h * VPT + i) * 2u] += p * vv.x;
            acc[(h * VPT + i) * 2u + 1u] += p * vv.y;
          }
        }
      }
    }`);
  } else {
    L(`    for (var i = 0u; i < VPT; i++) {
      let c = t + i * WG;
      if (c < D) {
        let sh = c / R;
        let j = c - sh * R;
        let g = c / VG;
        let pageB = base * 4u;
        for (var e = 0u; e < cnt; e++) {
          let code = f32((byteAt(pageB + VCODES_B + e * R + j) >> (sh * BITS)) & MASK);
          let sc = halfAt(pageB + VSCALE_B + 2u * (e * NG + g));
          let mn = halfAt(pageB + VMIN_B + 2u * (e * NG + g));
          let vv = mn + sc * code;
          for (var h = 0u; h < G; h++) { acc[h * VPT + i] += lg[h * PT + e] * vv; }
        }
      }
    }`);
  }
  L(`  }
  if (t < G) { partials[pBase + t] = mS[t]; partials[pBase + G + t] = lS[t]; }`);
  if (format === 'f16') {
    L(`  for (var i = 0u; i < VPT; i++) {
    let u = t + i * WG;
    if (u < D / 2u) {
      for (var h = 0u; h < G; h++) {
        partials[pBase + 2u * G + h * D + 2u * u] = acc[(h * VPT + i) * 2u];
        partials[pBase + 2u * G + h * D + 2u * u + 1u] = acc[(h * VPT + i) * 2u + 1u];
      }
    }
  }`);
  } else {
    L(`  for (var i = 0u; i < VPT; i++) {
    let c = t + i * WG;
    if (c < D) {
      for (var h = 0u; h < G; h++) { partials[pBase + 2u * G + h * D + c] = acc[h * VPT + i]; }
    }
  }`);
  }
  L(`}`);
  return lines.join('\n');
}

/**
 * Merge kernel: one workgroup per (lane, head) merges the lane's partial records with
 * log-sum-exp into `result = out[lanes][G][d] ++ lse[lanes][G]`.
 * `mplan` (from word `mplanOffset`) holds `[firstPartial, partialCount]` per lane. A lane with no partials gets
 * `out = 0` and `lse = -3e38`, as does a head whose every entry is masked (log-weight
 * -Infinity); the host turns that lse into -Infinity.
 */
export function mergeShader(G: number, D: number): string {
  return `// edgekv attention merge, d=${D}, G=${G} (generated)
const D: u32 = ${D}u;
const G: u32 = ${G}u;
const WG: u32 = ${WORKGROUP_SIZE}u;
const PS: u32 = ${partialStride(G, D)}u;
struct Params { numLanes: u32, wgPerRow: u32, lseOffset: u32, mplanOffset: u32 }
@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read> mplan: array<u32>;
@group(0) @binding(2) var<storage, read_write> result: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let id = wid.x + wid.y * params.wgPerRow;
  if (id >= params.numLanes * G) { return; }
  let lane = id / G;
  let h = id - lane * G;
  let first = mplan[params.mplanOffset + 2u * lane];
  let n = mplan[params.mplanOffset + 2u * lane + 1u];
  var m = ${NEG_BIG};
  for (var p = 0u; p < n; p++) { m = max(m, partials[(first + p) * PS + h]); }
  var l = 0.0;
  for (var p = 0u; p < n; p++) {
    let b = (first + p) * PS;
    l += partials[b + G + h] * exp(partials[b + h] - m);
  }
  let live = n > 0u && l > 0.0;
  let inv = select(0.0, 1.0 / l, live);
  for (var c = t; c < D; c += WG) {
    var s = 0.0;
    for (var p = 0u; p < n; p++) {
      let b = (first + p) * PS;
      s += partials[b + 2u * G + h * D + c] * exp(partials[b + h] - m);
    }
    result[(lane * G + h) * D + c] = s * inv;
  }
  if (t == 0u) { result[params.lseOffset + lane * G + h] = select(${NEG_BIG}, m + log(l), live); }
}
`;
}

/**
 * Matrix-vector product with f16 weights: `y[rows] = W[rows][cols] x[cols]`, W row-major
 * IEEE binary16 (two per u32 word, cols even), x and y f32. One workgroup per row, a tree
 * reduction in workgroup memory.
 */
export function matvecShader(): string {
  return `// edgekv matvec, f16 weights (generated)
const WG: u32 = ${WORKGROUP_SIZE}u;
struct Params { rows: u32, cols: u32, wgPerRow: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
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
    let wv = unpack2x16float(w[base + u]);
    s += wv.x * x[2u * u] + wv.y * x[2u * u + 1u];
  }
  red[t] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (t < k) { red[t] += red[t + k]; }
    workgroupBarrier();
  }
  if (t == 0u) { y[row] = red[0]; }
}
`;
}

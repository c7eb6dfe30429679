/**
 * A TypeScript implementation of the page / attention / gather kernel ABI
 * (assembly/kernels/{quant,attention,gather,f16}.ts), operating on the same WASM
 * memory. It is an independent cross-check of the layout contract and lets the cache
 * tests run on an engine whose kernels are replaced by these (`refEngine()`), so the
 * cache logic is tested even where a kernel is not in the build yet.
 *
 * Not a performance path. Accumulation in float64.
 */
import { Engine } from '../../src/engine.ts';
import { PAGE_TOKENS, PAYLOAD_OFFSET, FORMATS, FORMAT_BITS, packedOffsets } from '../../src/formats.ts';

const F32 = 0, F16 = 1;

const cvtBuf = new DataView(new ArrayBuffer(4));

/** IEEE binary16 bits -> number (exact). */
export function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** number -> IEEE binary16 bits, round to nearest even (via the f32 value). */
export function numberToF16(x: number): number {
  cvtBuf.setFloat32(0, x);
  const f = cvtBuf.getUint32(0);
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  let mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = mant >> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) { r = 0; e++; if (e >= 31) return sign | 0x7c00; }
  }
  return sign | (e << 10) | r;
}

function fmtName(format: number) { return FORMATS[format]; }

export function makeRefKernels(memory: WebAssembly.Memory) {
  const dv = () => new DataView(memory.buffer);
  const f32 = (p: number, n: number) => new Float32Array(memory.buffer, p, n);
  const i32 = (p: number, n: number) => new Int32Array(memory.buffer, p, n);
  const u8 = (p: number, n: number) => new Uint8Array(memory.buffer, p, n);

  function quantGroup(vals: number[], bits: number): { scale: number; min: number; codes: number[] } {
    let lo = Infinity, hi = -Infinity;
    for (const v of vals) { if (v < lo) lo = v; if (v > hi) hi = v; }
    const levels = (1 << bits) - 1;
    const minH = numberToF16(lo), scaleH = numberToF16((hi - lo) / levels);
    const mn = f16ToNumber(minH), sc = f16ToNumber(scaleH);
    const codes = vals.map((v) => (sc > 0 ? Math.min(levels, Math.max(0, Math.round((v - mn) / sc))) : 0));
    return { scale: scaleH, min: minH, codes };
  }

  function writeRow(d: DataView, off: number, R: number, bits: number, codes: number[]) {
    const P = 8 / bits;
    for (let j = 0; j < R; j++) {
      let byte = 0;
      for (let s = 0; s < P; s++) byte |= codes[j + s * R] << (s * bits);
      d.setUint8(off + j, byte);
    }
  }
  function readCode(d: DataView, off: number, R: number, bits: number, ch: number): number {
    const j = ch % R, s = Math.floor(ch / R);
    return (d.getUint8(off + j) >> (s * bits)) & ((1 << bits) - 1);
  }

  /** Decode entry e of a page into k, v (numbers). */
  function readEntry(format: number, dd: number, vg: number, page: number, e: number, k: Float64Array, v: Float64Array) {
    const d = dv();
    if (format === F32) {
      for (let c = 0; c < dd; c++) {
        k[c] = d.getFloat32(page + PAYLOAD_OFFSET + 4 * (e * dd + c), true);
        v[c] = d.getFloat32(page + PAYLOAD_OFFSET + 4 * (PAGE_TOKENS * dd + e * dd + c), true);
      }
    } else if (format === F16) {
      for (let c = 0; c < dd; c++) {
        k[c] = f16ToNumber(d.getUint16(page + PAYLOAD_OFFSET + 2 * (e * dd + c), true));
        v[c] = f16ToNumber(d.getUint16(page + PAYLOAD_OFFSET + 2 * (PAGE_TOKENS * dd + e * dd + c), true));
      }
    } else {
      const o = packedOffsets(fmtName(format), dd, vg);
      for (let c = 0; c < dd; c++) {
        const sc = f16ToNumber(d.getUint16(page + o.kScale + 2 * c, true));
        const mn = f16ToNumber(d.getUint16(page + o.kMin + 2 * c, true));
        k[c] = mn + sc * readCode(d, page + o.kCodes + e * o.R, o.R, o.bits, c);
      }
      for (let c = 0; c < dd; c++) {
        const g = Math.floor(c / vg);
        const sc = f16ToNumber(d.getUint16(page + o.vScale + 2 * (e * o.ng + g), true));
        const mn = f16ToNumber(d.getUint16(page + o.vMin + 2 * (e * o.ng + g), true));
        v[c] = mn + sc * readCode(d, page + o.vCodes + e * o.R, o.R, o.bits, c);
      }
    }
  }

  return {
    f16ToF32(src: number, dst: number, n: number) {
      const d = dv();
      for (let i = 0; i < n; i++) d.setFloat32(dst + 4 * i, f16ToNumber(d.getUint16(src + 2 * i, true)), true);
    },
    f32ToF16(src: number, dst: number, n: number) {
      const d = dv();
      for (let i = 0; i < n; i++) d.setUint16(dst + 2 * i, numberToF16(d.getFloat32(src + 4 * i, true)), true);
    },
    gatherRows(src: number, dst: number, idx: number, n: number, rowBytes: number) {
      const ix = i32(idx, n).slice();
      const m = u8(0, memory.buffer.byteLength);
      for (let i = 0; i < n; i++) m.copyWithin(dst + i * rowBytes, src + ix[i] * rowBytes, src + (ix[i] + 1) * rowBytes);
    },
    compactRows(base: number, idx: number, n: number, rowBytes: number) {
      const ix = i32(idx, n).slice();
      const m = u8(0, memory.buffer.byteLength);
      for (let i = 0; i < n; i++) if (ix[i] !== i) m.copyWithin(base + i * rowBytes, base + ix[i] * rowBytes, base + (ix[i] + 1) * rowBytes);
    },
    fwht(x: number, n: number, count: number) {
      const a = f32(x, n * count);
      const norm = 1 / Math.sqrt(n);
      for (let r = 0; r < count; r++) {
        const row = Array.from(a.subarray(r * n, (r + 1) * n));
        for (let h = 1; h < n; h *= 2) for (let i = 0; i < n; i += 2 * h) for (let j = i; j < i + h; j++) {
          const u = row[j], w = row[j + h]; row[j] = u + w; row[j + h] = u - w;
        }
        for (let i = 0; i < n; i++) a[r * n + i] = row[i] * norm;
      }
    },
    packPage(format: number, dd: number, vg: number, count: number, k: number, v: number, logW: number, pos: number, page: number) {
      const d = dv();
      const K = f32(k, count * dd).slice(), V = f32(v, count * dd).slice();
      for (let e = 0; e < PAGE_TOKENS; e++) {
        d.setFloat32(page + 4 * e, e < count ? d.getFloat32(logW + 4 * e, true) : 0, true);
        d.setInt32(page + 4 * PAGE_TOKENS + 4 * e, e < count ? d.getInt32(pos + 4 * e, true) : 0, true);
      }
      if (format === F32) {
        f32(page + PAYLOAD_OFFSET, count * dd).set(K);
        f32(page + PAYLOAD_OFFSET + 4 * PAGE_TOKENS * dd, count * dd).set(V);
      } else if (format === F16) {
        for (let i = 0; i < count * dd; i++) {
          d.setUint16(page + PAYLOAD_OFFSET + 2 * i, numberToF16(K[i]), true);
          d.setUint16(page + PAYLOAD_OFFSET + 2 * (PAGE_TOKENS * dd + i), numberToF16(V[i]), true);
        }
      } else {
        const o = packedOffsets(fmtName(format), dd, vg);
        const kc: number[][] = Array.from({ length: count }, () => new Array(dd).fill(0));
        for (let c = 0; c < dd; c++) {
          const col: number[] = [];
          for (let e = 0; e < count; e++) col.push(K[e * dd + c]);
          const q = quantGroup(col, o.bits);
          d.setUint16(page + o.kScale + 2 * c, q.scale, true);
          d.setUint16(page + o.kMin + 2 * c, q.min, true);
          for (let e = 0; e < count; e++) kc[e][c] = q.codes[e];
        }
        for (let e = 0; e < count; e++) writeRow(d, page + o.kCodes + e * o.R, o.R, o.bits, kc[e]);
        for (let e = 0; e < count; e++) {
          const codes = new Array(dd).fill(0);
          for (let g = 0; g < o.ng; g++) {
            const q = quantGroup(Array.from(V.subarray(e * dd + g * vg, e * dd + (g + 1) * vg)), o.bits);
            d.setUint16(page + o.vScale + 2 * (e * o.ng + g), q.scale, true);
            d.setUint16(page + o.vMin + 2 * (e * o.ng + g), q.min, true);
            for (let c = 0; c < vg; c++) codes[g * vg + c] = q.codes[c];
          }
          writeRow(d, page + o.vCodes + e * o.R, o.R, o.bits, codes);
        }
      }
    },
    unpackPage(format: number, dd: number, vg: number, count: number, page: number, k: number, v: number, logW: number, pos: number) {
      const kk = new Float64Array(dd), vv = new Float64Array(dd);
      const d = dv();
      for (let e = 0; e < count; e++) {
        readEntry(format, dd, vg, page, e, kk, vv);
        for (let c = 0; c < dd; c++) {
          if (k) d.setFloat32(k + 4 * (e * dd + c), kk[c], true);
          if (v) d.setFloat32(v + 4 * (e * dd + c), vv[c], true);
        }
        if (logW) d.setFloat32(logW + 4 * e, d.getFloat32(page + 4 * e, true), true);
        if (pos) d.setInt32(pos + 4 * e, d.getInt32(page + 4 * PAGE_TOKENS + 4 * e, true), true);
      }
    },
    attnInit(state: number, G: number, dd: number) {
      const s = f32(state, G * (dd + 2));
      s.fill(0);
      for (let h = 0; h < G; h++) s[h] = -Infinity;
    },
    attendPages(table: number, nPages: number, format: number, dd: number, vg: number, q: number, G: number, scale: number, state: number, logits: number, logitsStride: number) {
      const t = i32(table, 2 * nPages).slice();
      const Q = f32(q, G * dd).slice();
      const s = f32(state, G * (dd + 2));
      const kk = new Float64Array(dd), vv = new Float64Array(dd);
      const d = dv();
      let e0 = 0;
      for (let p = 0; p < nPages; p++) {
        const page = t[2 * p], count = t[2 * p + 1];
        for (let e = 0; e < count; e++) {
          readEntry(format, dd, vg, page, e, kk, vv);
          const lw = d.getFloat32(page + 4 * e, true);
          for (let h = 0; h < G; h++) {
            let dot = 0;
            for (let c = 0; c < dd; c++) dot += Q[h * dd + c] * kk[c];
            const x = Math.fround(scale) * dot + lw;
            if (logits) d.setFloat32(logits + 4 * (h * logitsStride + e0 + e), x, true);
            const m = s[h], l = s[G + h];
            const mNew = Math.max(m, x);
            const a = Math.exp(m - mNew), b = Math.exp(x - mNew);
            s[h] = mNew; s[G + h] = l * a + b;
            const acc = 2 * G + h * dd;
            for (let c = 0; c < dd; c++) s[acc + c] = s[acc + c] * a + b * vv[c];
          }
        }
        e0 += count;
      }
    },
    attnFinish(state: number, G: number, dd: number, out: number, lse: number) {
      const s = f32(state, G * (dd + 2)).slice();
      const o = f32(out, G * dd);
      for (let h = 0; h < G; h++) {
        for (let c = 0; c < dd; c++) o[h * dd + c] = s[2 * G + h * dd + c] / s[G + h];
        if (lse) f32(lse, G)[h] = s[h] + Math.log(s[G + h]);
      }
    },
    probsFromLogits(logits: number, G: number, stride: number, n: number, lse: number) {
      const L = f32(lse, G).slice();
      for (let h = 0; h < G; h++) {
        const row = f32(logits + 4 * h * stride, n);
        for (let e = 0; e < n; e++) row[e] = Math.exp(row[e] - L[h]);
      }
    },
  };
}

/** An engine whose page/attention/gather/f16/fwht kernels are the TypeScript ones above. */
export async function refEngine(): Promise<Engine> {
  const { createEngine } = await import('../../src/engine.ts');
  const real = await createEngine({ backend: 'wasm-scalar' });
  const exportsObj = { ...(real.kernels as unknown as Record<string, unknown>), ...makeRefKernels(real.memory) };
  return new Engine('wasm-scalar', { exports: exportsObj } as unknown as WebAssembly.Instance);
}

export { FORMAT_BITS };

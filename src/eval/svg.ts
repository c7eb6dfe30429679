/**
 * Minimal SVG line charts for results (quality vs memory). Written by hand so the
 * project needs no plotting dependency; output is plain SVG 1.1 text.
 */

export interface Series {
  name: string;
  points: Array<{ x: number; y: number; yLo?: number; yHi?: number }>;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Log2 x axis (budgets as fractions: 1/2, 1/4 ...). Default false. */
  logX?: boolean;
  logY?: boolean;
  width?: number;
  height?: number;
  /** Optional caption line under the title (e.g. the command that produced it). */
  caption?: string;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22', '#393b79', '#637939'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function fmtTick(v: number): string {
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(1);
  return String(+v.toPrecision(4));
}

/** Render a line chart; returns SVG text. */
export function lineChart(series: Series[], o: ChartOptions): string {
  const W = o.width ?? 720, H = o.height ?? 440;
  const m = { l: 70, r: 190, t: o.caption ? 56 : 40, b: 50 };
  const tx = (x: number) => (o.logX ? Math.log2(x) : x);
  const ty = (y: number) => (o.logY ? Math.log10(Math.max(y, 1e-12)) : y);
  const xs: number[] = [], ys: number[] = [];
  for (const s of series) for (const p of s.points) {
    if (!Number.isFinite(p.y)) continue;
    xs.push(tx(p.x)); ys.push(ty(p.y));
    if (p.yLo !== undefined && Number.isFinite(p.yLo)) ys.push(ty(p.yLo));
    if (p.yHi !== undefined && Number.isFinite(p.yHi)) ys.push(ty(p.yHi));
  }
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (!Number.isFinite(x0)) { x0 = 0; x1 = 1; }
  if (!Number.isFinite(y0)) { y0 = 0; y1 = 1; }
  if (x1 === x0) { x0 -= 0.5; x1 += 0.5; }
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad;
  const px = (x: number) => m.l + ((tx(x) - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - ((ty(y) - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2 - m.r / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(o.title)}</text>`);
  if (o.caption) parts.push(`<text x="${W / 2 - m.r / 2}" y="38" text-anchor="middle" font-size="10" fill="#555">${esc(o.caption)}</text>`);
  // axes + grid
  const xt = o.logX ? Array.from({ length: Math.floor(x1) - Math.ceil(x0) + 1 }, (_, i) => Math.ceil(x0) + i) : niceTicks(x0, x1);
  for (const t of xt) {
    const xv = o.logX ? 2 ** t : t;
    const X = px(xv);
    parts.push(`<line x1="${X}" y1="${m.t}" x2="${X}" y2="${H - m.b}" stroke="#eee"/>`);
    const label = o.logX ? (t < 0 ? `1/${2 ** -t}` : String(2 ** t)) : fmtTick(t);
    parts.push(`<text x="${X}" y="${H - m.b + 16}" text-anchor="middle">${label}</text>`);
  }
  for (const t of niceTicks(y0, y1)) {
    const yv = o.logY ? 10 ** t : t;
    const Y = py(yv);
    parts.push(`<line x1="${m.l}" y1="${Y}" x2="${W - m.r}" y2="${Y}" stroke="#eee"/>`);
    parts.push(`<text x="${m.l - 6}" y="${Y + 4}" text-anchor="end">${fmtTick(yv)}</text>`);
  }
  parts.push(`<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`);
  parts.push(`<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = PALETTE[i % PALETTE.length];
    const pts = s.points.filter((p) => Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    if (pts.length) parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) {
      if (p.yLo !== undefined && p.yHi !== undefined && Number.isFinite(p.yLo) && Number.isFinite(p.yHi)) {
        parts.push(`<line x1="${px(p.x)}" y1="${py(p.yLo)}" x2="${px(p.x)}" y2="${py(p.yHi)}" stroke="${c}" stroke-width="1"/>`);
      }
      parts.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${c}"/>`);
    }
    const ly = m.t + 14 + i * 18;
    parts.push(`<line x1="${W - m.r + 12}" y1="${ly - 4}" x2="${W - m.r + 32}" y2="${ly - 4}" stroke="${c}" stroke-width="2"/>`);
    parts.push(`<text x="${W - m.r + 38}" y="${ly}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/**
 * Aggregate eval rows into a markdown table and SVG plots (quality vs memory).
 */
import type { EvalRow } from './harness.ts';
import { lineChart, type Series } from './svg.ts';
import { markdownTable, mean, sem } from './stats.ts';

type Metric = 'ppl' | 'kl' | 'top1' | 'accuracy' | 'relError';

export const TASK_METRICS: Record<EvalRow['task'], Metric[]> = {
  ppl: ['ppl', 'kl', 'top1'],
  needle: ['accuracy'],
  'attn-error': ['relError'],
};

function groupKey(r: EvalRow): string {
  return JSON.stringify([r.policy, r.precision, r.ratio, r.task === 'attn-error' ? r.layer : null, r.task === 'needle' ? ctxBucket(r) : null]);
}

function ctxBucket(r: EvalRow): number {
  // needle prompts are cut to <= the requested context; bucket by power-of-two-ish request
  return r.budgetBytes > 0 && r.ratio > 0 ? Math.round(r.budgetBytes / r.ratio) : r.tokens;
}

export interface Aggregate {
  policy: string; precision: string; ratio: number; layer?: number; contextBytes?: number;
  n: number; budgetBytes: number; usedBytes: number;
  metrics: Partial<Record<Metric, { mean: number; sem: number }>>;
}

export function aggregate(rows: EvalRow[]): Aggregate[] {
  const groups = new Map<string, EvalRow[]>();
  for (const r of rows) {
    const k = groupKey(r);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  const out: Aggregate[] = [];
  for (const rs of groups.values()) {
    const r0 = rs[0];
    const metrics: Aggregate['metrics'] = {};
    for (const m of TASK_METRICS[r0.task]) {
      const v = rs.map((r) => r[m]).filter((x): x is number => typeof x === 'number');
      if (v.length) metrics[m] = { mean: mean(v), sem: sem(v) };
    }
    out.push({
      policy: r0.policy, precision: r0.precision, ratio: r0.ratio,
      layer: r0.task === 'attn-error' ? r0.layer : undefined,
      contextBytes: r0.task === 'needle' ? ctxBucket(r0) : undefined,
      n: rs.length, budgetBytes: Math.round(mean(rs.map((r) => r.budgetBytes))), usedBytes: Math.round(mean(rs.map((r) => r.usedBytes))),
      metrics,
    });
  }
  return out;
}

function fracLabel(r: number): string {
  if (r >= 1) return '1';
  const inv = 1 / r;
  return Math.abs(inv - Math.round(inv)) < 1e-9 ? `1/${Math.round(inv)}` : r.toFixed(3);
}

/** Markdown table of the aggregates. */
export function table(task: EvalRow['task'], aggs: Aggregate[]): string {
  const metrics = TASK_METRICS[task];
  const header = ['policy', 'precision', 'budget', ...(task === 'attn-error' ? ['layer'] : []), ...(task === 'needle' ? ['context (full f16 KiB)'] : []), 'budget KiB', 'used KiB', 'n', ...metrics.map((m) => `${m} (mean ± sem)`)];
  const sorted = [...aggs].sort((a, b) => (a.layer ?? 0) - (b.layer ?? 0) || (a.contextBytes ?? 0) - (b.contextBytes ?? 0) || b.ratio - a.ratio || a.precision.localeCompare(b.precision) || a.policy.localeCompare(b.policy));
  return markdownTable(header, sorted.map((a) => [
    a.policy, a.precision, fracLabel(a.ratio), ...(task === 'attn-error' ? [String(a.layer)] : []), ...(task === 'needle' ? [((a.contextBytes ?? 0) / 1024).toFixed(0)] : []),
    (a.budgetBytes / 1024).toFixed(0), (a.usedBytes / 1024).toFixed(0), a.n,
    ...metrics.map((m) => { const x = a.metrics[m]; return x ? `${fmt(x.mean)} ± ${fmt(x.sem)}` : '—'; }),
  ]));
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && Math.abs(x) < 1e-3) return x.toExponential(2);
  return String(+x.toPrecision(4));
}

/** One SVG per metric (and per layer for attn-error): x = budget fraction, one line per policy/precision. */
export function plots(task: EvalRow['task'], aggs: Aggregate[], caption: string, title = `edgekv eval --task ${task}`): Array<{ name: string; svg: string }> {
  const out: Array<{ name: string; svg: string }> = [];
  const layerSet = [...new Set(aggs.map((a) => a.layer))];
  const ctxSet = [...new Set(aggs.map((a) => a.contextBytes))];
  for (const m of TASK_METRICS[task]) {
    for (const layer of layerSet) for (const ctx of ctxSet) {
      const sel = aggs.filter((a) => a.layer === layer && a.contextBytes === ctx && a.ratio < 1 && a.metrics[m]);
      const byName = new Map<string, Series>();
      for (const a of sel) {
        const name = `${a.policy} ${a.precision}`;
        if (!byName.has(name)) byName.set(name, { name, points: [] });
        const v = a.metrics[m]!;
        byName.get(name)!.points.push({ x: a.ratio, y: v.mean, yLo: v.mean - v.sem, yHi: v.mean + v.sem });
      }
      if (byName.size === 0) continue;
      const suffix = (layer === undefined ? '' : `-layer${layer}`) + (ctx === undefined ? '' : `-ctx${Math.round(ctx / 1024)}KiB`);
      out.push({
        name: `${m}${suffix}`,
        svg: lineChart([...byName.values()], {
          title: `${title}: ${m}${layer === undefined ? '' : ` (layer ${layer})`}${ctx === undefined ? '' : ` (context: full cache ${Math.round(ctx / 1024)} KiB)`}`,
          xLabel: 'budget (fraction of the full f16 cache bytes)', yLabel: m, logX: true, logY: m === 'kl' || m === 'relError', caption,
        }),
      });
    }
  }
  return out;
}

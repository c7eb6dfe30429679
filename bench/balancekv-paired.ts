/**
 * Paired comparison of `edgekv eval --task attn-error | ppl` results against a baseline
 * policy: for each (layer, ratio, precision) the mean metric of every policy, the mean of
 * the paired differences to the baseline (same seed = same text window and same cache
 * seed; needles also pair by depth and context), its standard error, the number of pairs
 * where the policy is better / worse, and the mean seconds per run.
 *
 *   node --import tsx bench/balancekv-paired.ts FILE.json [FILE.json ...] [--baseline uniform] [--metric relError|kl|ppl|top1|accuracy]
 *
 * Prints a markdown table (used in docs/results/balancekv.md).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Row { policy: string; precision: string; ratio: number; layer?: number; seed: number; depth?: number; tokens: number; relError?: number; kl?: number; ppl?: number; top1?: number; accuracy?: number; seconds: number }

const { values: flags, positionals } = parseArgs({ allowPositionals: true, options: { baseline: { type: 'string', default: 'uniform' }, metric: { type: 'string' } } });
const rows: Row[] = positionals.flatMap((f) => (JSON.parse(readFileSync(f, 'utf8')) as { rows: Row[] }).rows);
const metric = (flags.metric ?? (rows[0]?.relError !== undefined ? 'relError' : rows[0]?.accuracy !== undefined ? 'accuracy' : 'kl')) as 'relError' | 'kl' | 'ppl' | 'top1' | 'accuracy';
/** Higher is better for these metrics. */
const higher = metric === 'accuracy' || metric === 'top1';
/** Pairing key: same seed (text window, cache seed), same needle depth and context. */
const pair = (r: Row): string => `${r.seed}|${r.depth ?? ''}|${r.depth !== undefined ? r.tokens : ''}`;
const frac = (r: number): string => (r >= 1 ? '1' : `1/${Math.round(1 / r)}`);
const groups = new Map<string, Row[]>();
for (const r of rows) {
  if (r[metric] === undefined) continue;
  const k = JSON.stringify([r.layer ?? null, r.ratio, r.precision]);
  if (!groups.has(k)) groups.set(k, []);
  groups.get(k)!.push(r);
}
const keys = [...groups.keys()].sort((a, b) => {
  const [la, ra] = JSON.parse(a), [lb, rb] = JSON.parse(b);
  return (la ?? 0) - (lb ?? 0) || rb - ra;
});
const lines = [`| layer | budget | precision | policy | ${metric} | vs ${flags.baseline} (paired mean ± se) | relative | better / worse | s per run |`, '| --- | --- | --- | --- | --- | --- | --- | --- | --- |'];
for (const k of keys) {
  const [layer, ratio, precision] = JSON.parse(k);
  const g = groups.get(k)!;
  const base = new Map(g.filter((r) => r.policy === flags.baseline).map((r) => [pair(r), r[metric]!]));
  const policies = [...new Set(g.map((r) => r.policy))].sort((a, b) => (a === flags.baseline ? -1 : b === flags.baseline ? 1 : a.localeCompare(b)));
  for (const p of policies) {
    const rs = g.filter((r) => r.policy === p);
    const mean = rs.reduce((a, r) => a + r[metric]!, 0) / rs.length;
    const secs = rs.reduce((a, r) => a + r.seconds, 0) / rs.length;
    let cell = '', rel = '', better = '';
    if (p !== flags.baseline) {
      const diffs = rs.filter((r) => base.has(pair(r))).map((r) => r[metric]! - base.get(pair(r))!);
      if (diffs.length) {
        const md = diffs.reduce((a, x) => a + x, 0) / diffs.length;
        const sd = Math.sqrt(diffs.reduce((a, x) => a + (x - md) ** 2, 0) / Math.max(1, diffs.length - 1));
        const bm = rs.filter((r) => base.has(pair(r))).reduce((a, r) => a + base.get(pair(r))!, 0) / diffs.length;
        cell = `${md >= 0 ? '+' : ''}${md.toPrecision(3)} ± ${(sd / Math.sqrt(diffs.length)).toPrecision(2)}`;
        rel = bm !== 0 ? `${md >= 0 ? '+' : ''}${((100 * md) / bm).toFixed(1)}%` : '';
        better = `${diffs.filter((x) => (higher ? x > 0 : x < 0)).length} / ${diffs.filter((x) => (higher ? x < 0 : x > 0)).length} of ${diffs.length}`;
      }
    }
    lines.push(`| ${layer ?? ''} | ${frac(ratio)} | ${precision} | ${p} | ${mean.toPrecision(4)} | ${cell} | ${rel} | ${better} | ${secs.toFixed(2)} |`);
  }
}
console.log(lines.join('\n'));

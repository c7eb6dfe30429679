/**
 * Render an `edgekv bench attention --json` result as a markdown table (docs/results/attention.md).
 *   node --import tsx bench/attention-table.ts bench/results/attention-<date>.json > docs/results/attention.md
 */
import { readFileSync } from 'node:fs';

interface Row { impl: string; format: string; tokens: number; headDim: number; tokensPerSec: number; gbPerSec: number }
const file = process.argv[2];
if (!file) { console.error('usage: bench/attention-table.ts RESULT.json'); process.exit(2); }
const doc = JSON.parse(readFileSync(file, 'utf8')) as { copyGBps: number; results: Row[]; runtime: string; revision: string; date?: string; machine?: { cpu: string; cores: number } };
const find = (impl: string, f: string, t: number, d: number) => doc.results.find((r) => r.impl === impl && r.format === f && r.tokens === t && r.headDim === d);
const lines: string[] = [];
lines.push('# Decode attention: wasm-simd vs wasm-scalar vs plain TypeScript vs copy bandwidth', '');
lines.push(`Source: \`${file}\`, produced by \`npx edgekv bench attention --json\` (${doc.runtime}, revision ${doc.revision}${doc.machine ? `, ${doc.machine.cpu} ${doc.machine.cores} cores` : ''}${doc.date ? `, ${doc.date}` : ''}).`);
lines.push(`GQA group 4 (one KV head, 4 query heads per call). Copy bandwidth measured in the same run: **${doc.copyGBps.toFixed(2)} GB/s**. GB/s = bytes of KV pages read (payload, scales, minima, positions, log-weights) per second.`, '');
for (const d of [...new Set(doc.results.map((r) => r.headDim))].sort((a, b) => a - b)) {
  lines.push(`## head dim ${d}`, '');
  lines.push('| format | tokens | wasm-simd Mtok/s | GB/s | % of copy | wasm-scalar Mtok/s | TS Mtok/s | simd / TS | simd / scalar | vs f32 simd |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const t of [...new Set(doc.results.map((r) => r.tokens))].sort((a, b) => a - b)) {
    for (const f of ['f32', 'f16', 'int8', 'int4', 'int2']) {
      const s = find('wasm-simd', f, t, d), c = find('wasm-scalar', f, t, d), ts = find('ts', f, t, d), f32 = find('wasm-simd', 'f32', t, d);
      if (!s) continue;
      const m = (r?: Row) => (r ? (r.tokensPerSec / 1e6).toFixed(2) : '—');
      lines.push(`| ${f} | ${t} | ${m(s)} | ${s.gbPerSec.toFixed(2)} | ${(100 * s.gbPerSec / doc.copyGBps).toFixed(0)}% | ${m(c)} | ${m(ts)} | ${ts ? (s.tokensPerSec / ts.tokensPerSec).toFixed(1) + 'x' : '—'} | ${c ? (s.tokensPerSec / c.tokensPerSec).toFixed(1) + 'x' : '—'} | ${f32 ? (s.tokensPerSec / f32.tokensPerSec).toFixed(2) + 'x' : '—'} |`);
    }
  }
  lines.push('');
}
console.log(lines.join('\n'));

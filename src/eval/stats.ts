/** Small statistics helpers for result tables. */
export function mean(a: number[]): number {
  return a.length ? a.reduce((s, x) => s + x, 0) / a.length : NaN;
}
export function std(a: number[]): number {
  if (a.length < 2) return 0;
  const m = mean(a);
  return Math.sqrt(a.reduce((s, x) => s + (x - m) ** 2, 0) / (a.length - 1));
}
/** Standard error of the mean. */
export function sem(a: number[]): number {
  return a.length < 2 ? 0 : std(a) / Math.sqrt(a.length);
}
/** Markdown table from a header and rows. */
export function markdownTable(header: string[], rows: Array<Array<string | number>>): string {
  const cell = (v: string | number) => (typeof v === 'number' ? (Number.isFinite(v) ? String(+v.toPrecision(4)) : String(v)) : v);
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

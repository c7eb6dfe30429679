/**
 * `edgekv eval-report --out FILE.json IN.json [IN2.json ...]`: merge the rows of
 * several `edgekv eval --out` files of one task (a sweep split over processes or
 * machines) and write the merged JSON, the markdown table and the SVG plots.
 */
import { parseArgs } from 'node:util';
import { EdgeKVError } from '../errors.ts';
import type { EvalRow } from '../eval/harness.ts';
import { aggregate, plots, table } from '../eval/report.ts';

const HELP = 'usage: edgekv eval-report --out FILE.json [--title S] IN.json [IN2.json ...]';

export const command = {
  describe: 'merge eval JSON files into one table and plots',
  async run(argv: string[]): Promise<number> {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, allowPositionals: true, options: { out: { type: 'string' }, title: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
    } catch (e) {
      throw new EdgeKVError('E_ARG', `${(e as Error).message}\n${HELP}`);
    }
    if (parsed.values.help) { console.log(HELP); return 0; }
    const out = parsed.values.out;
    if (!out || parsed.positionals.length === 0) throw new EdgeKVError('E_ARG', `--out and at least one input are required\n${HELP}`, '--out');
    const fs = await import('node:fs');
    const rows: EvalRow[] = [];
    const commands: string[] = [];
    let task: EvalRow['task'] | undefined;
    for (const f of parsed.positionals) {
      let doc: { task: EvalRow['task']; rows: EvalRow[]; command: string };
      try {
        doc = JSON.parse(fs.readFileSync(f, 'utf8'));
      } catch (e) {
        throw new EdgeKVError('E_ARG', `${f}: not a readable eval JSON file (${(e as Error).message})`, 'input');
      }
      if (!doc || !Array.isArray(doc.rows) || typeof doc.task !== 'string') throw new EdgeKVError('E_ARG', `${f}: missing "task" or "rows"; expected the output of edgekv eval --out`, 'input');
      if (task && doc.task !== task) throw new EdgeKVError('E_ARG', `${f}: task ${doc.task} differs from ${task}; merge one task at a time`, 'input');
      task = doc.task;
      rows.push(...doc.rows);
      commands.push(doc.command);
    }
    const aggs = aggregate(rows);
    const md = table(task!, aggs);
    const uniq = [...new Set(commands)];
    fs.writeFileSync(out, JSON.stringify({ task, commands: uniq, rows }, null, 1));
    const base = out.replace(/\.json$/, '');
    fs.writeFileSync(`${base}.md`, `Commands (merged with \`edgekv eval-report\`):\n\n${uniq.map((c) => `    ${c}`).join('\n')}\n\n${md}\n`);
    const caption = uniq.length === 1 ? uniq[0] : `${uniq.length} edgekv eval runs merged (commands in ${base}.md)`;
    for (const p of plots(task!, aggs, caption, parsed.values.title)) fs.writeFileSync(`${base}-${p.name}.svg`, p.svg);
    console.log(md);
    return 0;
  },
};

/** Load the model and text, run one eval task, print/save JSON, table and plots. */
import { createEngine } from '../engine.ts';
import { EdgeKVError } from '../errors.ts';
import { loadModel } from '../model/llama.ts';
import { missingModelMessage, resolveModelDir } from '../model/paths.ts';
import { evalAttnError, evalNeedle, evalPpl, type EvalRow } from './harness.ts';
import type { EvalOptions } from './options.ts';
import { aggregate, plots, table } from './report.ts';

export async function runEval(o: EvalOptions, argv: string[]): Promise<number> {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const resolved = await resolveModelDir(undefined, o.model);
  if (!resolved.exists) {
    throw new EdgeKVError('E_MODEL', missingModelMessage(resolved));
  }
  const dir = resolved.dir;
  const textFile = o.text ?? path.join(dir, 'val_shared.txt');
  if (!fs.existsSync(textFile)) throw new EdgeKVError('E_MODEL', `text file ${textFile} not found; pass --text FILE`, '--text');
  const text = fs.readFileSync(textFile, 'utf8');
  // --planner baklava:PROFILE.json / adakv:PROFILE.json: the planner reads a profile from `edgekv profile`.
  const withProfile = /^(baklava|adakv|quantized):(.+)$/.exec(o.planner);
  if (withProfile) {
    let profile: unknown;
    try { profile = JSON.parse(fs.readFileSync(withProfile[2], 'utf8')); } catch (e) { throw new EdgeKVError('E_ARG', `--planner ${o.planner}: cannot read the profile JSON (${(e as Error).message})`, '--planner'); }
    (o as { planner: unknown }).planner = { name: withProfile[1], profile };
  }
  const engine = await createEngine();
  const model = await loadModel(dir, { engine });
  if (o.tokens > model.config.maxPositions) throw new EdgeKVError('E_ARG', `--tokens ${o.tokens} exceeds the model's context ${model.config.maxPositions}`, '--tokens');
  const ctx = { engine, model, text, options: o };
  const t0 = Date.now();
  let rows: EvalRow[];
  if (o.task === 'ppl') rows = evalPpl(ctx);
  else if (o.task === 'needle') rows = evalNeedle(ctx);
  else rows = evalAttnError(ctx);
  const command = `edgekv eval ${argv.join(' ')}`;
  const doc = { command, model: dir, task: o.task, options: o, seconds: (Date.now() - t0) / 1000, rows };
  const aggs = aggregate(rows);
  const md = table(o.task, aggs);
  if (o.out) {
    fs.mkdirSync(path.dirname(o.out), { recursive: true });
    fs.writeFileSync(o.out, JSON.stringify(doc, null, 1));
    const base = o.out.replace(/\.json$/, '');
    fs.writeFileSync(`${base}.md`, `Command: \`${command}\`\n\n${md}\n`);
    for (const p of plots(o.task, aggs, command, o.title)) fs.writeFileSync(`${base}-${p.name}.svg`, p.svg);
  }
  if (o.json) process.stdout.write(JSON.stringify(doc) + '\n');
  else console.log(`${command}\n\n${md}`);
  model.dispose();
  return 0;
}

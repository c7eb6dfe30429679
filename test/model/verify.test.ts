/**
 * verify-model on the shared real models (skipped with a printed reason when they are
 * absent; CI has them at ../shared/models): tokenizer ids, logits, mean NLL and greedy
 * continuations against reference.json. Also: a tampered reference makes the command exit 1.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine } from '../../src/engine.ts';
import { EdgeKVError } from '../../src/errors.ts';
import { verifyModel, formatVerifyReport } from '../../src/model/verify.ts';
import { command as verifyCommand } from '../../src/cli/verify-model.ts';
import { sharedModel } from './fixtures.ts';

const stories = await sharedModel('stories260K');
const mix = await sharedModel('mix-27m');
const engine = createEngine();

function assertAllPass(report: Awaited<ReturnType<typeof verifyModel>>): void {
  const failed = report.checks.filter((c) => !c.ok);
  assert.is(failed.length, 0, formatVerifyReport(report));
  assert.ok(report.ok);
}

(stories ? test : test.skip)('stories260K matches reference.json (tokenizer, all 512 logits, NLL window, 60 greedy tokens)', async () => {
  const report = await verifyModel(stories!, { engine: await engine });
  assertAllPass(report);
  const names = report.checks.map((c) => c.name);
  assert.ok(names.includes('logits last position'));
  assert.ok(names.includes('nll perplexity window'));
  assert.ok(names.some((n) => n.startsWith('greedy')));
  const logits = report.checks.find((c) => c.name === 'logits last position')!;
  assert.ok(logits.error! < 1e-4, `max logit diff ${logits.error}`);
});

(mix ? test : test.skip)('mix-27m matches reference.json (3 x 256-token prompts: ids, top-5 logits, NLL; first 40 greedy tokens of each sample)', async () => {
  const report = await verifyModel(mix!, { engine: await engine, greedyTokens: 40 });
  assertAllPass(report);
  assert.is(report.checks.filter((c) => c.name.startsWith('top5')).length, 12);
  assert.is(report.checks.filter((c) => c.name.startsWith('nll')).length, 3);
  assert.is(report.checks.filter((c) => c.name.startsWith('greedy')).length, 2);
});

(stories ? test : test.skip)('verify-model exits 1 on a tampered reference, 2 on a missing directory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekv-verify-'));
  for (const f of ['config.json', 'tokenizer.json', 'model.safetensors', 'generation_config.json']) copyFileSync(join(stories!, f), join(dir, f));
  const ref = JSON.parse(readFileSync(join(stories!, 'reference.json'), 'utf8'));
  ref.logits_last_position.logits[7] += 0.01;
  ref.tokenizer_cases[0].ids[1] += 1;
  writeFileSync(join(dir, 'reference.json'), JSON.stringify(ref));
  const log = console.log;
  const lines: string[] = [];
  console.log = (s: string) => { lines.push(s); };
  let code: number;
  try { code = await verifyCommand.run([dir]); } finally { console.log = log; }
  assert.is(code, 1);
  const out = lines.join('\n');
  assert.ok(out.includes('FAIL  logits last position'), out);
  assert.ok(out.includes('FAIL  tokenizer "Once upon a time"'), out);
  assert.ok(out.includes('MISMATCH'), out);
  try {
    await verifyCommand.run([join(dir, 'absent')]);
    assert.unreachable('should throw');
  } catch (e) {
    assert.instance(e, EdgeKVError);
    assert.ok((e as Error).message.includes(join(dir, 'absent')));
  }
});

test.run();

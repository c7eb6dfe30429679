/**
 * `edgekv verify-model [DIR] [--model DIR] [--backend auto|wasm-simd|wasm-scalar]
 *  [--greedy-tokens N] [--prompts N] [--json]`
 *
 * Checks the runner against `DIR/reference.json` (tokenizer ids, logits, mean NLL, greedy
 * continuations; tolerances in src/model/verify.ts), prints one line per check and exits
 * 0 when everything matches, 1 on any mismatch, 2 on bad input or a missing model.
 * DIR defaults to --model, else $EDGEKV_MODELS_DIR/mix-27m, else <repo>/../shared/models/mix-27m.
 */
import { parseArgs } from 'node:util';
import { createEngine } from '../engine.ts';
import { EdgeKVError, checkInt, checkOneOf } from '../errors.ts';
import { missingModelMessage, resolveModelDir, DEFAULT_MODEL_NAME } from '../model/paths.ts';
import { formatVerifyReport, verifyModel } from '../model/verify.ts';

const HELP = `usage: edgekv verify-model [DIR] [--model DIR] [--backend auto|wasm-simd|wasm-scalar]
                           [--greedy-tokens N] [--prompts N] [--json]
Compares the runner with DIR/reference.json; exit 0 = all match, 1 = mismatch.`;

export const command = {
  describe: 'check the model runner against a model directory\'s reference.json',
  async run(argv: string[]): Promise<number> {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
          model: { type: 'string' },
          backend: { type: 'string', default: 'auto' },
          'greedy-tokens': { type: 'string' },
          prompts: { type: 'string' },
          json: { type: 'boolean', default: false },
          help: { type: 'boolean', short: 'h', default: false },
        },
      });
    } catch (e) {
      throw new EdgeKVError('E_ARG', `${(e as Error).message}\n${HELP}`);
    }
    const v = parsed.values;
    if (v.help) { console.log(HELP); return 0; }
    if (parsed.positionals.length > 1) throw new EdgeKVError('E_ARG', `expected at most one model directory, got ${parsed.positionals.length}\n${HELP}`);
    const backend = checkOneOf('--backend', v.backend, ['auto', 'wasm-simd', 'wasm-scalar'] as const);
    const greedyTokens = v['greedy-tokens'] === undefined ? undefined : checkInt('--greedy-tokens', Number(v['greedy-tokens']), 0, 1 << 20);
    const prompts = v.prompts === undefined ? undefined : checkInt('--prompts', Number(v.prompts), 0, 1 << 20);
    const r = await resolveModelDir(DEFAULT_MODEL_NAME, parsed.positionals[0] ?? v.model);
    if (!r.exists) throw new EdgeKVError('E_MODEL', missingModelMessage(r), 'model');
    const engine = await createEngine({ backend });
    const report = await verifyModel(r.dir, { engine, greedyTokens, prompts });
    console.log(v.json ? JSON.stringify(report, null, 2) : formatVerifyReport(report));
    return report.ok ? 0 : 1;
  },
};

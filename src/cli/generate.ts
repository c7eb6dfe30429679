/**
 * `edgekv generate [--model DIR] --prompt "..." [--max-tokens N] [--temperature T]
 *  [--top-k K] [--seed S] [--no-stop] [--backend ...] [--json]`
 *
 * Free-form generation with the model runner and a full (exact) cache. Prints the prompt
 * and continuation, then prefill and decode tokens/s on stderr (or one JSON document with
 * --json). Cache policy / budget flags come with the cache.
 */
import { parseArgs } from 'node:util';
import { createEngine } from '../engine.ts';
import { EdgeKVError, checkInt, checkNum, checkOneOf } from '../errors.ts';
import { loadModel } from '../model/llama.ts';
import { missingModelMessage, resolveModelDir, DEFAULT_MODEL_NAME } from '../model/paths.ts';

const HELP = `usage: edgekv generate [--model DIR] --prompt TEXT [--max-tokens N (64)] [--temperature T (0 = greedy)]
                       [--top-k K (0 = all)] [--seed S (0)] [--no-stop] [--backend auto|wasm-simd|wasm-scalar] [--json]`;

export const command = {
  describe: 'generate text from a prompt with the model runner (full cache)',
  async run(argv: string[]): Promise<number> {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        options: {
          model: { type: 'string' },
          prompt: { type: 'string' },
          'max-tokens': { type: 'string', default: '64' },
          temperature: { type: 'string', default: '0' },
          'top-k': { type: 'string', default: '0' },
          seed: { type: 'string', default: '0' },
          'no-stop': { type: 'boolean', default: false },
          backend: { type: 'string', default: 'auto' },
          json: { type: 'boolean', default: false },
          help: { type: 'boolean', short: 'h', default: false },
        },
      });
    } catch (e) {
      throw new EdgeKVError('E_ARG', `${(e as Error).message}\n${HELP}`);
    }
    const v = parsed.values;
    if (v.help) { console.log(HELP); return 0; }
    if (v.prompt === undefined) throw new EdgeKVError('E_ARG', `--prompt is required\n${HELP}`, '--prompt');
    const maxTokens = checkInt('--max-tokens', Number(v['max-tokens']), 0, 1 << 20);
    const temperature = checkNum('--temperature', Number(v.temperature), 0, 100);
    const topK = checkInt('--top-k', Number(v['top-k']), 0, 1 << 24);
    const seed = checkInt('--seed', Number(v.seed), 0, 2 ** 32 - 1);
    const backend = checkOneOf('--backend', v.backend, ['auto', 'wasm-simd', 'wasm-scalar'] as const);
    const r = await resolveModelDir(DEFAULT_MODEL_NAME, v.model);
    if (!r.exists) throw new EdgeKVError('E_MODEL', missingModelMessage(r), 'model');
    const engine = await createEngine({ backend });
    const model = await loadModel(r.dir, { engine });
    const res = model.generate(v.prompt, { maxTokens, temperature, topK, seed, stopAtEos: !v['no-stop'] });
    if (v.json) {
      console.log(JSON.stringify({ model: r.dir, backend: engine.backend, prompt: v.prompt, ...res }, null, 2));
    } else {
      console.log(v.prompt + res.text);
      console.error(`[${r.dir}: ${res.promptTokens} prompt tokens, prefill ${res.prefillTokensPerSec.toFixed(1)} tok/s; ` +
        `${res.generated.length} generated, decode ${res.decodeTokensPerSec.toFixed(1)} tok/s; stopped by ${res.stoppedBy}; ${engine.backend}]`);
    }
    return 0;
  },
};

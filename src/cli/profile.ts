/**
 * `edgekv profile --model DIR --text FILE --out profile.json [flags]`: the one-time
 * BaKlaVa profiling pass (src/profile/profile.ts). Writes a profile JSON that the
 * `baklava` and `adakv` budget planners read (`planner: { name: 'baklava', profile }`).
 */
import { parseArgs } from 'node:util';
import { createEngine } from '../engine.ts';
import { EdgeKVError, checkInt, checkNum, checkOneOf } from '../errors.ts';
import { loadModel } from '../model/llama.ts';
import { missingModelMessage, resolveModelDir, DEFAULT_MODEL_NAME } from '../model/paths.ts';

const HELP = `usage: edgekv profile --model DIR --text FILE --out profile.json [flags]

  --model DIR        model directory (default ../shared/models/${DEFAULT_MODEL_NAME})
  --text FILE        calibration text (default DIR/val_shared.txt)
  --out FILE         where to write the profile JSON (required)
  --tokens N         calibration tokens (default 2048)
  --seed S           which window of the text (as edgekv eval's seeds; default 1000, never an eval seed)
  --ratio R          budget of the sensitivity runs and the search, fraction of the full f16 bytes (default 1/8)
  --policy P         scoring policy of those runs (default snapkv)
  --sink N --window N  exact sink and recent-window tokens (default 4, 64, as edgekv eval)
  --metric M         ppl (default, as the paper) | kl
  --alphas a,b       reallocation strengths searched (default 0.5,1)
  --no-progress      no progress on stderr`;

/** Calibration windows come from a seed the evaluation does not use by default. */
const DEFAULT_SEED = 1000;

export const command = {
  describe: 'one-time BaKlaVa profiling pass: head/layer importance, score curves, allocation search -> profile JSON',
  async run(argv: string[]): Promise<number> {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        options: {
          model: { type: 'string' }, text: { type: 'string' }, out: { type: 'string' },
          tokens: { type: 'string', default: '2048' }, seed: { type: 'string', default: String(DEFAULT_SEED) },
          ratio: { type: 'string', default: '0.125' }, policy: { type: 'string', default: 'snapkv' },
          sink: { type: 'string', default: '4' }, window: { type: 'string', default: '64' },
          metric: { type: 'string', default: 'ppl' }, alphas: { type: 'string', default: '0.5,1' },
          'no-progress': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
        },
      });
    } catch (e) {
      throw new EdgeKVError('E_ARG', `${(e as Error).message}\n${HELP}`);
    }
    const v = parsed.values;
    if (v.help) { console.log(HELP); return 0; }
    if (!v.out) throw new EdgeKVError('E_ARG', `--out is required\n${HELP}`, '--out');
    const frac = /^1\/(\d+)$/.exec(v.ratio!);
    const ratio = checkNum('--ratio', frac ? 1 / Number(frac[1]) : Number(v.ratio), 1e-4, 1);
    const tokens = checkInt('--tokens', Number(v.tokens), 128, 1 << 20);
    const seed = checkInt('--seed', Number(v.seed), 0, 2 ** 31);
    const sinkTokens = checkInt('--sink', Number(v.sink), 0, 1 << 16);
    const windowTokens = checkInt('--window', Number(v.window), 0, 1 << 16);
    const metric = checkOneOf('--metric', v.metric, ['ppl', 'kl'] as const);
    const alphas = v.alphas!.split(',').map((a) => checkNum('--alphas', Number(a), 0, 1));
    const fs = await import('node:fs');
    const path = await import('node:path');
    const r = await resolveModelDir(DEFAULT_MODEL_NAME, v.model);
    if (!r.exists) throw new EdgeKVError('E_MODEL', missingModelMessage(r), '--model');
    const textFile = v.text ?? path.join(r.dir, 'val_shared.txt');
    if (!fs.existsSync(textFile)) throw new EdgeKVError('E_ARG', `--text ${textFile} not found`, '--text');
    const text = fs.readFileSync(textFile, 'utf8');
    const engine = await createEngine();
    const model = await loadModel(r.dir, { engine });
    if (tokens > model.config.maxPositions) throw new EdgeKVError('E_ARG', `--tokens ${tokens} exceeds the model's context ${model.config.maxPositions}`, '--tokens');
    const { textWindow } = await import('../eval/harness.ts');
    const { profileModel } = await import('../profile/profile.ts');
    const { validateProfile } = await import('../profile/schema.ts');
    const ids = textWindow({ engine, model, text, options: {} as never }, seed, tokens);
    const t0 = Date.now();
    const progress = v['no-progress'] ? undefined : (m: string) => process.stderr.write(`[profile ${((Date.now() - t0) / 1000).toFixed(0)}s] ${m}\n`);
    const profile = profileModel(engine, model, ids, {
      ratio, policy: v.policy, sinkTokens, windowTokens, metric, alphas, seed,
      text: path.basename(textFile), source: path.basename(r.dir), onProgress: progress,
    });
    validateProfile(profile, model.config);
    fs.mkdirSync(path.dirname(path.resolve(v.out)), { recursive: true });
    fs.writeFileSync(v.out, JSON.stringify(profile, null, 1) + '\n');
    const best = profile.search.candidates[profile.search.best];
    console.log(`wrote ${v.out} (${((Date.now() - t0) / 1000).toFixed(0)} s): search best ${best.family} alpha ${best.alpha} (${metric} ${best[metric].toFixed(4)}; uniform ${profile.search.candidates[0][metric].toFixed(4)})`);
    model.dispose();
    return 0;
  },
};

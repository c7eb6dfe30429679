/** `edgekv eval`: quality at equal bytes (see src/eval/harness.ts). */
import { EVAL_HELP, parseEvalArgs } from '../eval/options.ts';

export const command = {
  describe: 'quality of policies x budgets x precisions at equal bytes (ppl/KL, needle, attention error)',
  async run(argv: string[]): Promise<number> {
    const o = parseEvalArgs(argv);
    if (o === 'help') { console.log(EVAL_HELP); return 0; }
    const { runEval } = await import('../eval/run.ts');
    return runEval(o, argv);
  },
};

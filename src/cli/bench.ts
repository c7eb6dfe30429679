/**
 * `edgekv bench <suite> [--quick] [--json] [--no-save]`: runs a benchmark suite.
 *
 * Suites are registered in `SUITES` (name -> lazy import), so a suite's code and its
 * dev dependency (tinybench) load only when it runs. Each suite returns a JSON-able
 * report; the command prints a table (or, with `--json`, exactly one JSON document on
 * stdout) and saves the JSON under `bench/results/<suite>-<date>.json`.
 */
import { EdgeKVError } from '../errors.ts';

/** Flags every suite gets. */
export interface SuiteFlags {
  quick: boolean;
  /** Progress lines go here (stderr); silent with --json. */
  progress: (line: string) => void;
}

/** A benchmark suite: runs and returns a report, and formats it as a table. */
export interface Suite {
  describe: string;
  run(flags: SuiteFlags): Promise<object>;
  table(report: object): string;
}

/** Suite name -> lazy loader. Add a suite with one line here. */
export const SUITES: Record<string, () => Promise<Suite>> = {
  attention: async () => {
    const m = await import('../bench/attention.ts');
    return {
      describe: 'decode attention over f32/f16/int8/int4/int2 pages: wasm-simd vs wasm-scalar vs plain TypeScript, with a copy-bandwidth probe',
      run: (flags) => m.runAttentionBench({ quick: flags.quick, onProgress: flags.progress }),
      table: (report) => m.formatAttentionTable(report as Awaited<ReturnType<typeof m.runAttentionBench>>),
    };
  },
  cache: async () => {
    const m = await import('../bench/cache.ts');
    return {
      describe: 'decode step latency and compression time: full f16 vs streaming-llm, h2o, snapkv at 1/8 of the bytes, f16 and int4',
      run: (flags) => m.runCacheBench({ quick: flags.quick, onProgress: flags.progress }),
      table: (report) => m.formatCacheTable(report as Awaited<ReturnType<typeof m.runCacheBench>>),
    };
  },
};

const FLAGS = ['--quick', '--json', '--no-save', '--help', '-h'];

function usage(): string {
  return [
    'usage: edgekv bench <suite> [--quick] [--json] [--no-save]',
    '',
    'suites:',
    ...Object.keys(SUITES).map((s) => `  ${s}`),
    '',
    '  --quick    reduced grid (under a minute)',
    '  --json     print exactly one JSON document on stdout (progress and the table are not printed)',
    '  --no-save  do not write bench/results/<suite>-<date>.json',
  ].join('\n');
}

async function save(suite: string, report: object): Promise<string | undefined> {
  try {
    const fs = (await import('node:fs/promises')) as typeof import('node:fs/promises');
    const dir = new URL('../../bench/results/', import.meta.url);
    await fs.mkdir(dir, { recursive: true });
    const stamp = new Date().toISOString().replace(/:/g, '-').replace(/\..*$/, '');
    const file = new URL(`${suite}-${stamp}.json`, dir);
    await fs.writeFile(file, JSON.stringify(report, null, 2) + '\n');
    return file.pathname;
  } catch {
    return undefined;
  }
}

export const command = {
  describe: 'run a benchmark suite (attention, ...)',
  async run(argv: string[]): Promise<number> {
    const positional = argv.filter((a) => !a.startsWith('-'));
    const flags = argv.filter((a) => a.startsWith('-'));
    if (flags.includes('--help') || flags.includes('-h')) {
      console.log(usage());
      return 0;
    }
    for (const f of flags) {
      if (!FLAGS.includes(f)) throw new EdgeKVError('E_ARG', `edgekv bench: unknown flag ${JSON.stringify(f)}; known flags: ${FLAGS.join(', ')}`, f);
    }
    if (positional.length !== 1) {
      console.error(usage());
      return 2;
    }
    const name = positional[0];
    const load = SUITES[name];
    if (!load) throw new EdgeKVError('E_ARG', `edgekv bench: unknown suite ${JSON.stringify(name)}; suites: ${Object.keys(SUITES).join(', ')}`, 'suite');
    const json = flags.includes('--json');
    const suite = await load();
    const report = await suite.run({
      quick: flags.includes('--quick'),
      progress: json ? () => {} : (line) => console.error(line),
    });
    const file = flags.includes('--no-save') ? undefined : await save(name, report);
    if (json) {
      process.stdout.write(JSON.stringify(report) + '\n');
    } else {
      console.log(suite.table(report));
      if (file) console.log(`\nsaved ${file}`);
    }
    return 0;
  },
};

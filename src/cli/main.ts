/**
 * `edgekv <command> [flags]`. Each command lives in its own module and is loaded
 * on demand. Returns the process exit code.
 */
import { EdgeKVError } from '../errors.ts';

type Command = { describe: string; run: (argv: string[]) => Promise<number> };

export const COMMANDS: Record<string, () => Promise<Command>> = {
  bench: async () => (await import('./bench.ts')).command,
  'verify-model': async () => (await import('./verify-model.ts')).command,
  generate: async () => (await import('./generate.ts')).command,
  'serve-demo': async () => (await import('./serve-demo.ts')).command,
  eval: async () => (await import('./eval.ts')).command,
  demo: async () => (await import('./demo.ts')).command,
  'eval-report': async () => (await import('./eval-report.ts')).command,
  profile: async () => (await import('./profile.ts')).command,
};

function usage(): string {
  return ['usage: edgekv <command> [flags]', '', 'commands:', ...Object.keys(COMMANDS).map((c) => `  ${c}`), '', 'edgekv <command> --help for its flags'].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(`edgekv: unknown command ${JSON.stringify(name)}\n${usage()}`);
    return 2;
  }
  try {
    const cmd = await load();
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof EdgeKVError) {
      console.error(`edgekv ${name}: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

/**
 * What the WebGPU benchmarks share: arguments under Deno or Node, finding a GPU
 * (`navigator.gpu`, else the `webgpu` npm package), the runtime, the git revision (read
 * from .git: the GPU machine has no git binary), writing a report.
 */
import type { Gpu } from '../src/webgpu/gpu-types.ts';
import { defaultGpu } from '../src/webgpu/device.ts';
import { findGpu as findRuntimeGpu } from '../src/webgpu/find.ts';

export { runtimeName } from '../src/bench/env.ts';

declare const Deno: { args: string[] } | undefined;

/** Command-line arguments after the script. */
export function args(): string[] {
  if (typeof Deno !== 'undefined') return Deno.args;
  return (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
}

/**
 * `navigator.gpu` (Deno, browsers), else the `webgpu` package (Node, Dawn), as
 * `findGpu` of src/webgpu/find.ts finds it; `gpu` undefined with the reason in `source`.
 */
export async function findGpu(): Promise<{ gpu: Gpu | undefined; source: string }> {
  try {
    const gpu = await findRuntimeGpu();
    return { gpu, source: gpu === defaultGpu() ? 'navigator.gpu' : 'webgpu (Dawn, npm)' };
  } catch (e) {
    return { gpu: undefined, source: `none (${(e as Error).message.split('\n')[0]})` };
  }
}

/** The checked-out commit, read from .git (no git binary needed). */
export async function gitRevision(): Promise<string> {
  try {
    const fs = await import('node:fs/promises');
    const head = (await fs.readFile(new URL('../.git/HEAD', import.meta.url), 'utf8')).trim();
    if (!head.startsWith('ref: ')) return head;
    return (await fs.readFile(new URL(`../.git/${head.slice(5)}`, import.meta.url), 'utf8')).trim();
  } catch {
    return 'unknown';
  }
}

/** Write `report` as JSON to `out` (or bench/results/`name`), print it on stdout; returns the path. */
export async function writeReport(report: unknown, out: string, name: string): Promise<string> {
  const fs = await import('node:fs/promises');
  const path = out || new URL(`./results/${name}`, import.meta.url);
  await fs.mkdir(new URL('./results/', import.meta.url), { recursive: true });
  await fs.writeFile(path, JSON.stringify(report, null, 2) + '\n');
  console.log(JSON.stringify(report));
  return path instanceof URL ? path.pathname : path;
}

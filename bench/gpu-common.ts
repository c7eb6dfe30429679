/**
 * What the WebGPU benchmarks share: arguments under Deno or Node, finding a GPU
 * (`navigator.gpu`, else the `webgpu` npm package), the git revision, writing a report.
 */
import type { Gpu } from '../src/webgpu/gpu-types.ts';

declare const Deno: { args: string[]; version: { deno: string }; build: { os: string; arch: string } } | undefined;

/** Command-line arguments after the script. */
export function args(): string[] {
  if (typeof Deno !== 'undefined') return Deno.args;
  return (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
}

/** `deno 2.9.6 linux-x86_64` or `node v20.x`. */
export function runtimeName(): string {
  return typeof Deno !== 'undefined' ? `deno ${Deno.version.deno} ${Deno.build.os}-${Deno.build.arch}` : `node ${(globalThis as unknown as { process: { version: string } }).process.version}`;
}

/** `navigator.gpu` (Deno, browsers), else the `webgpu` package (Node, Dawn). */
export async function findGpu(): Promise<{ gpu: Gpu | undefined; source: string }> {
  const nav = (globalThis as { navigator?: { gpu?: Gpu } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, source: 'navigator.gpu' };
  try {
    const name = 'webgpu';
    const m = (await import(name)) as { create: (f: string[]) => Gpu };
    return { gpu: m.create([]), source: 'webgpu (Dawn, npm)' };
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

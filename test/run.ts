/**
 * Test runner: loads every `test/**\/*.test.ts` file into uvu's deferred queue,
 * runs them, and ends with the one line CI reads: `N passed, N failed, N skipped`.
 *
 * Usage: node --import tsx test/run.ts [filter]   (filter: substring of the file path)
 * Works the same under Deno (`deno run -A test/run.ts`) and Bun (`bun test/run.ts`).
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

type Runner = () => Promise<[string | true, number, number, number]>;
const g = globalThis as unknown as { UVU_DEFER: number; UVU_QUEUE: Array<Array<string | Runner | null>>; UVU_INDEX: number };
g.UVU_DEFER = 1;
g.UVU_QUEUE = [];

const here = dirname(fileURLToPath(import.meta.url));
const filter = (typeof process !== 'undefined' ? process.argv.slice(2) : []).filter((a) => !a.startsWith('-'));

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const files = walk(here, []).filter((f) => filter.length === 0 || filter.some((s) => f.includes(s)));
const { exec } = await import('uvu');
for (let i = 0; i < files.length; i++) {
  g.UVU_INDEX = i;
  g.UVU_QUEUE.push([relative(here, files[i])]);
  await import(pathToFileURL(files[i]).href);
}

let passed = 0, failed = 0, skipped = 0;
for (const group of g.UVU_QUEUE) {
  for (let j = 1; j < group.length; j++) {
    const run = group[j] as Runner;
    group[j] = async () => {
      const r = await run();
      const [, ran, skip, total] = r;
      passed += ran; failed += total - ran; skipped += skip;
      return r;
    };
  }
}
await exec(false);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
if (typeof process !== 'undefined') process.exitCode = failed > 0 ? 1 : 0;

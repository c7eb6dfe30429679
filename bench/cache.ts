/**
 * Cache benchmark entry for development: `node --import tsx bench/cache.ts [--quick] [--json]`
 * (the same suite as `npx edgekv bench cache`, run from the sources).
 */
import { formatCacheTable, runCacheBench } from '../src/bench/cache.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const report = await runCacheBench({ quick: args.includes('--quick'), onProgress: json ? undefined : (l) => console.error(l) });
if (json) process.stdout.write(JSON.stringify(report) + '\n');
else console.log(formatCacheTable(report));

/**
 * Cache benchmark entry for development: `node --import tsx bench/cache.ts [--quick] [--json] [--no-save]`
 * (the same suite as `npx edgekv bench cache`, run from the sources).
 */
import { command } from '../src/cli/bench.ts';

process.exitCode = await command.run(['cache', ...process.argv.slice(2)]);

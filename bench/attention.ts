/**
 * Attention benchmark entry for development: `node --import tsx bench/attention.ts [--quick] [--json]`
 * (the same suite as `npx edgekv bench attention`, run from the sources).
 */
import { command } from '../src/cli/bench.ts';

process.exitCode = await command.run(['attention', ...process.argv.slice(2)]);

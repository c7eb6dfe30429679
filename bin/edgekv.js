#!/usr/bin/env node
// The `edgekv` command. Runs the compiled CLI in dist/ (built by `npm run build`,
// which `npm ci` / `npm install` run through the `prepare` script).
import { existsSync } from 'node:fs';
const url = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(url)) {
  console.error('edgekv: dist/ is missing; run `npm run build` in the package directory first.');
  process.exit(2);
}
const { main } = await import(url.href);
process.exitCode = await main(process.argv.slice(2));

#!/usr/bin/env node
// The popkit CLI entry. In a checkout it runs the TypeScript sources through tsx; with
// POPKIT_RUNTIME=dist (npm start, the container image, benchmarks) it runs the compiled dist/ with plain
// node, which starts faster and keeps no loader thread resident.
import fs from 'node:fs';

const distEntry = new URL('../dist/cli/popkit.js', import.meta.url);
let main;
if (process.env.POPKIT_RUNTIME === 'dist' && fs.existsSync(distEntry)) {
  ({ main } = await import(distEntry.href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../cli/popkit.ts'));
}
process.exitCode = await main(process.argv.slice(2));

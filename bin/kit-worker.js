// The entry of one worker thread of the combined kit process (`popkit kit`): like bin/popkit.js, the
// compiled dist/ with POPKIT_RUNTIME=dist, the TypeScript sources through tsx otherwise (a worker
// thread registers its own loader).
import fs from 'node:fs';

const distEntry = new URL('../dist/cli/kit-worker.js', import.meta.url);
let runKitWorker;
if (process.env.POPKIT_RUNTIME === 'dist' && fs.existsSync(distEntry)) {
  ({ runKitWorker } = await import(distEntry.href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ runKitWorker } = await import('../cli/kit-worker.ts'));
}
await runKitWorker();

// Loaded with --import into a kit process (and, through NODE_OPTIONS, into each of its worker threads):
// every second it writes, per isolate, whether mqtt-packet is loaded there and how many entries its
// number cache holds (65 536 two-byte Buffers once filled, ~8 MB of heap: core/mqtt-options.ts).
// It reads the module only when the isolate already loaded it (no load of its own). The file goes to
// $POPKIT_TEST_NUMBER_CACHE_DIR/<pid>-<threadId>.json. Used by tests/integration/kit-mqtt-memory.test.ts.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { isMainThread, threadId, workerData } from 'node:worker_threads';

const dir = process.env.POPKIT_TEST_NUMBER_CACHE_DIR;
const require = createRequire(path.join(import.meta.dirname, '../../package.json'));
const numbersPath = require.resolve('mqtt-packet/numbers.js');
const name = isMainThread ? 'main' : String(workerData?.part ?? 'worker');
if (dir) {
  setInterval(() => {
    const loaded = require.cache[numbersPath] !== undefined;
    const cached = loaded ? Object.keys(require(numbersPath).cache).length : 0;
    fs.writeFileSync(
      path.join(dir, `${process.pid}-${threadId}.json`),
      JSON.stringify({ name, loaded, cached }),
    );
  }, 1000).unref();
}

// bench:kit-memory — the kit's services on a small board (docs/scaling.md#small-boards). A Pi Zero 2 W
// has 512 MB for everything; the goal is ≤ 160 MB of anonymous memory (RssAnon: the heaps, what cannot be
// paged back to a file) for checkout + sync + kitd + media in small-board mode. The same kit (sim board,
// compiled dist/, demo catalog, a few sales, media streaming videotestsrc through GStreamer) runs
// split (each service a process, as the containers of a bigger board) and combined (`popkit kit`:
// checkout, sync and kitd as worker threads of one process, media its own process), each settled, and
// RssAnon is summed over the kit's processes. Then the cheap wins, each measured: a smaller young
// generation (--max-semi-space-size=1 in NODE_OPTIONS; V8 keeps up to 16 MB semi-spaces per isolate
// otherwise), fewer glibc malloc arenas (MALLOC_ARENA_MAX=2: glibc gives threads arenas of their own),
// both for split too (the same flags, so that the comparison is of the modes), and a young-generation
// limit per worker (POPKIT_KIT_WORKER_YOUNG_MB → resourceLimits). The floor: a bare node process, and
// one with three idle workers (what a worker isolate costs before any code is loaded).
//
//   npm run bench:kit-memory -- [--settle 20] [--no-media]
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readRunStatus } from '../core/contracts/run-status.ts';
import { openKitStore, readStoredCatalog, replaceCatalog } from '../core/store/index.ts';
import { freePort, mosquitto, REPO, tmpDir, waitFor } from '../tests/support/hub-link.ts';

const { values } = parseArgs({
  options: {
    settle: { type: 'string', default: '20' },
    'no-media': { type: 'boolean', default: false },
  },
});
const SETTLE_S = Number(values.settle);
const MEDIA = !values['no-media'];
const GOAL_MB = 160;
const BIN = path.join(REPO, 'bin/popkit.js');
const DEMO = path.join(REPO, 'services/checkout/demo-catalog.json');

function rssAnonMb(pid: number): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/RssAnon:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

interface Variant {
  name: string;
  mode: 'split' | 'combined';
  nodeOptions?: string;
  /** MALLOC_ARENA_MAX: glibc gives each thread that allocates an arena of its own, up to 8 per core */
  arenas?: number;
  workerHeapMb?: number;
  workerYoungMb?: number;
}

const SEMI = '--max-semi-space-size=1';
const VARIANTS: Variant[] = [
  { name: 'split (a process per service)', mode: 'split' },
  { name: 'split + semi-space 1 MB + 2 arenas', mode: 'split', nodeOptions: SEMI, arenas: 2 },
  { name: 'combined (popkit kit), no tuning', mode: 'combined' },
  { name: 'combined + semi-space 1 MB', mode: 'combined', nodeOptions: SEMI },
  { name: 'combined + semi-space + 2 arenas', mode: 'combined', nodeOptions: SEMI, arenas: 2 },
  {
    name: 'combined + those + worker young gen 2 MB',
    mode: 'combined',
    nodeOptions: SEMI,
    arenas: 2,
    workerYoungMb: 2,
  },
];

async function seed(dataDir: string): Promise<void> {
  const store = openKitStore(dataDir);
  if (!readStoredCatalog(store))
    await replaceCatalog(store, JSON.parse(fs.readFileSync(DEMO, 'utf8')), { source: 'local' });
  await store.close();
}

async function sell(base: string, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${base}/v1/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        lines: [{ sku: 'TEE-BLK-M', qty: 1 }],
        payment: { method: 'token', token: `tok_sandbox_approve_mem_${i}` },
      }),
    });
    if (res.status === 201) ok++;
  }
  return ok;
}

async function measure(
  v: Variant,
  busUrl: string,
): Promise<{ procs: Array<[string, number]>; total: number }> {
  const dataDir = tmpDir('kit-memory');
  await seed(dataDir);
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    POPKIT_RUNTIME: 'dist',
    POPKIT_BOARD: 'sim',
    POPKIT_DATA_DIR: dataDir,
    POPKIT_KIT_ID: 'kit-memory',
    POPKIT_HTTP_HOST: '127.0.0.1',
    POPKIT_HTTP_PORT: String(port),
    POPKIT_LOCAL_BUS_URL: busUrl,
    POPKIT_LOCAL_BUS_PREFIX: `bench/${process.pid}/${v.mode}/${Date.now()}`,
    // the local broker stands in for the hub's (no acks: the orders stay in the outbox, as offline)
    POPKIT_HUB_URL: busUrl,
    POPKIT_HUB_ALLOW_PLAINTEXT: '1',
    POPKIT_BUYER_RATE_PER_MIN: '100000',
    POPKIT_LOG_LEVEL: 'warn',
    UV_THREADPOOL_SIZE: '8',
    ...(v.nodeOptions ? { NODE_OPTIONS: v.nodeOptions } : {}),
    ...(v.workerHeapMb ? { POPKIT_KIT_WORKER_HEAP_MB: String(v.workerHeapMb) } : {}),
    ...(v.arenas ? { MALLOC_ARENA_MAX: String(v.arenas) } : {}),
    ...(v.workerYoungMb ? { POPKIT_KIT_WORKER_YOUNG_MB: String(v.workerYoungMb) } : {}),
  };
  const names = v.mode === 'split' ? ['checkout', 'sync', 'kitd'] : ['kit'];
  if (MEDIA) names.push('media');
  const procs = new Map<string, ChildProcess>();
  for (const name of names)
    procs.set(name, spawn(process.execPath, [BIN, name], { env, stdio: ['ignore', 'ignore', 'inherit'] }));
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(
      async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.ok === true,
      60_000,
      'checkout',
    );
    await waitFor(() => readRunStatus(dataDir, 'kitd') !== undefined, 60_000, 'kitd');
    await waitFor(() => readRunStatus(dataDir, 'sync') !== undefined, 60_000, 'sync');
    if (MEDIA)
      await waitFor(
        () => ['playing', 'degraded'].includes(readRunStatus(dataDir, 'media')?.state ?? ''),
        60_000,
        'media',
      );
    const sold = await sell(base, 50);
    if (sold === 0) throw new Error(`${v.name}: checkout sold nothing`);
    await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
    const out: Array<[string, number]> = [];
    for (const [name, p] of procs) {
      if (p.exitCode !== null) throw new Error(`${v.name}: ${name} exited (${p.exitCode})`);
      out.push([name, rssAnonMb(p.pid ?? 0)]);
    }
    return { procs: out, total: out.reduce((a, [, mb]) => a + mb, 0) };
  } finally {
    await Promise.all(
      [...procs.values()].map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            const kill = setTimeout(() => p.kill('SIGKILL'), 10_000);
            p.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            p.kill('SIGTERM');
          }),
      ),
    );
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** RssAnon of a bare node process, and of one holding `workers` idle worker threads. */
async function floor(workers: number): Promise<number> {
  const code =
    workers === 0
      ? 'setInterval(() => {}, 1000)'
      : `const { Worker } = require('node:worker_threads'); for (let i = 0; i < ${workers}; i++) new Worker("require('node:worker_threads').parentPort.on('message', () => {})", { eval: true }); setInterval(() => {}, 1000)`;
  const p = spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 3000));
  const mb = rssAnonMb(p.pid ?? 0);
  p.kill('SIGKILL');
  return mb;
}

const f = (mb: number) => mb.toFixed(1).padStart(6);
const broker = await mosquitto();
try {
  process.stdout.write(
    `kit memory (RssAnon, MB), sim board, dist, ${MEDIA ? 'media on' : 'media off'}, settled ${SETTLE_S} s after 50 sales\n`,
  );
  const results: Array<{ v: Variant; total: number }> = [];
  for (const v of VARIANTS) {
    const r = await measure(v, broker.url);
    results.push({ v, total: r.total });
    process.stdout.write(
      `  ${v.name.padEnd(40)} total ${f(r.total)}   ${r.procs.map(([n, mb]) => `${n} ${mb.toFixed(1)}`).join(', ')}\n`,
    );
  }
  const split = results[0]?.total ?? 0;
  const combined = results.find((r) => r.v.mode === 'combined')?.total ?? 0;
  const tunedSplit = results[1]?.total ?? 0;
  const tunedCombined = results.find((r) => r.v.name === 'combined + semi-space + 2 arenas')?.total ?? 0;
  process.stdout.write(
    `\n  combined / split, untuned: ${(combined / split).toFixed(2)} (${(split - combined).toFixed(1)} MB saved); ` +
      `both with semi-space 1 MB + 2 arenas: ${(tunedCombined / tunedSplit).toFixed(2)} (${(tunedSplit - tunedCombined).toFixed(1)} MB saved)\n`,
  );
  const small = results.filter((r) => r.v.mode === 'combined');
  const best = small.reduce((a, b) => (b.total < a.total ? b : a));
  process.stdout.write(
    `  goal: ≤ ${GOAL_MB} MB for the kit's services (checkout+sync+kitd${MEDIA ? '+media' : ''}) in small-board mode\n`,
  );
  for (const r of small)
    process.stdout.write(
      `    ${r.v.name.padEnd(40)} ${f(r.total)} MB: ${r.total <= GOAL_MB ? 'met' : `not met, ${(r.total - GOAL_MB).toFixed(1)} MB over`}  (${(r.total / split).toFixed(2)} of split)\n`,
    );
  process.stdout.write(`  best small-board variant: ${best.v.name}, ${best.total.toFixed(1)} MB\n`);
  const [bare, three] = [await floor(0), await floor(3)];
  process.stdout.write(
    `\n  floor: a bare node process ${bare.toFixed(1)} MB; with 3 idle workers ${three.toFixed(1)} MB (${((three - bare) / 3).toFixed(1)} MB per worker isolate before any code)\n`,
  );
} finally {
  await broker.stop();
}

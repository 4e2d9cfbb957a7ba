// bench:kit-memory — the kit's services on a small board (docs/scaling.md#small-boards). A Pi Zero 2 W
// has 512 MB for everything; the goal is ≤ 160 MB of anonymous memory (RssAnon: the heaps, what cannot be
// paged back to a file) for checkout + sync + kitd + media in small-board mode. The same kit (sim board,
// compiled dist/, demo catalog, a few sales, media streaming videotestsrc through GStreamer) runs
// split (each service a process, as the containers of a bigger board) and combined (`popkit kit`:
// checkout, sync and kitd as worker threads of one process, media its own process), each settled, and
// RssAnon is summed over the kit's processes, sampled every second over the second half of the settle
// (one sample moves by 10-30 MB with where the collectors happen to be: the mean and the highest sample
// are printed). The small board runs with V8's --optimize-for-size (node's command line), a smaller
// young generation (--max-semi-space-size=1 in NODE_OPTIONS; V8 keeps up to 16 MB semi-spaces per
// isolate otherwise) and fewer glibc malloc arenas (MALLOC_ARENA_MAX=2: glibc gives threads arenas of
// their own): core/kit-part.ts. Split gets the same settings, so that the comparison is of the modes. Variants run interleaved, --rounds
// times; the goal is judged on the highest sample of the small-board variant over all rounds.
// --baseline DIR runs the small-board variant from another checkout too (its dist built), in the same
// run: e.g. the commit before a change. --only A,B runs the small-board variant and those whose name has A or B. The
// median time of the 50 card sales is printed per variant (checkout latency, as a ratio of the first's).
// The floor: a bare node process, and one with three idle workers (what a worker isolate costs before
// any code is loaded).
//
//   npm run bench:kit-memory -- [--settle 20] [--rounds 3] [--no-media] [--baseline DIR] [--only A,B]
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readRunStatus } from '../core/contracts/run-status.ts';
import { SMALL_BOARD_NODE_FLAGS } from '../core/kit-part.ts';
import { openKitStore, readStoredCatalog, replaceCatalog } from '../core/store/index.ts';
import { freePort, mosquitto, REPO, tmpDir, waitFor } from '../tests/support/hub-link.ts';

const { values } = parseArgs({
  options: {
    settle: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '1' },
    baseline: { type: 'string' },
    only: { type: 'string' },
    'no-media': { type: 'boolean', default: false },
  },
});
const SETTLE_S = Number(values.settle);
const ROUNDS = Math.max(1, Number(values.rounds));
const MEDIA = !values['no-media'];
const GOAL_MB = 160;
const binOf = (repo: string) => path.join(repo, 'bin/popkit.js');
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
  /** V8 flags on node's command line (those NODE_OPTIONS does not take) */
  execArgv?: string[];
  /** the checkout whose bin/popkit.js and dist/ run (default: this one) */
  repo?: string;
}

const SEMI = '--max-semi-space-size=1';
/** What the small board runs (core/kit-part.ts smallBoardEnv and SMALL_BOARD_NODE_FLAGS, docker-compose.small.yml). */
const SMALL_BOARD: Variant = {
  name: 'small board: combined + optimize-for-size + semi 1 + 2 arenas',
  mode: 'combined',
  nodeOptions: SEMI,
  arenas: 2,
  execArgv: [...SMALL_BOARD_NODE_FLAGS],
};
/** The small board's settings before --optimize-for-size. */
const BEFORE: Variant = {
  name: 'before: combined + semi 1 + 2 arenas',
  mode: 'combined',
  nodeOptions: SEMI,
  arenas: 2,
};
const ALL_VARIANTS: Variant[] = [
  SMALL_BOARD,
  ...(values.baseline
    ? [
        {
          ...BEFORE,
          name: `baseline ${path.basename(path.resolve(values.baseline))}: ${BEFORE.name.replace('before: ', '')}`,
          repo: path.resolve(values.baseline),
        },
      ]
    : []),
  BEFORE,
  { ...SMALL_BOARD, name: 'split + optimize-for-size + semi 1 + 2 arenas', mode: 'split' },
  { ...BEFORE, name: 'before + --single-threaded-gc', execArgv: ['--single-threaded-gc'] },
  { name: 'combined untuned', mode: 'combined' },
  { name: 'split untuned', mode: 'split' },
];
const ONLY = values.only?.split(',').filter(Boolean);
const VARIANTS = ALL_VARIANTS.filter(
  (v) => v === ALL_VARIANTS[0] || !ONLY || ONLY.some((o) => v.name.includes(o)),
);

async function seed(dataDir: string): Promise<void> {
  const store = openKitStore(dataDir);
  if (!readStoredCatalog(store))
    await replaceCatalog(store, JSON.parse(fs.readFileSync(DEMO, 'utf8')), { source: 'local' });
  await store.close();
}

async function sell(base: string, n: number): Promise<{ ok: number; medianMs: number }> {
  let ok = 0;
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await fetch(`${base}/v1/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        lines: [{ sku: 'TEE-BLK-M', qty: 1 }],
        payment: { method: 'token', token: `tok_sandbox_approve_mem_${i}` },
      }),
    });
    await res.arrayBuffer();
    ms.push(performance.now() - t0);
    if (res.status === 201) ok++;
  }
  ms.sort((a, b) => a - b);
  return { ok, medianMs: ms[Math.floor(ms.length / 2)] ?? 0 };
}

interface Measured {
  /** each process's mean over the samples */
  procs: Array<[string, number]>;
  mean: number;
  max: number;
  saleMs: number;
}

async function measure(v: Variant, busUrl: string): Promise<Measured> {
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
    ...(v.arenas ? { MALLOC_ARENA_MAX: String(v.arenas) } : {}),
  };
  const names = v.mode === 'split' ? ['checkout', 'sync', 'kitd'] : ['kit'];
  if (MEDIA) names.push('media');
  const procs = new Map<string, ChildProcess>();
  for (const name of names)
    procs.set(
      name,
      spawn(process.execPath, [...(v.execArgv ?? []), binOf(v.repo ?? REPO), name], {
        env,
        stdio: ['ignore', 'ignore', 'inherit'],
      }),
    );
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
    if (sold.ok === 0) throw new Error(`${v.name}: checkout sold nothing`);
    await new Promise((r) => setTimeout(r, (SETTLE_S * 1000) / 2));
    // a sample a second over the second half of the settle
    const samples: number[][] = [];
    for (let t = 0; t < Math.max(1, Math.round(SETTLE_S / 2)); t++) {
      const row: number[] = [];
      for (const [name, p] of procs) {
        if (p.exitCode !== null) throw new Error(`${v.name}: ${name} exited (${p.exitCode})`);
        row.push(rssAnonMb(p.pid ?? 0));
      }
      samples.push(row);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const totals = samples.map((row) => row.reduce((a, b) => a + b, 0));
    const names = [...procs.keys()];
    return {
      procs: names.map((n, i) => [n, samples.reduce((a, row) => a + (row[i] ?? 0), 0) / samples.length]),
      mean: totals.reduce((a, b) => a + b, 0) / totals.length,
      max: Math.max(...totals),
      saleMs: sold.medianMs,
    };
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
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const broker = await mosquitto();
try {
  process.stdout.write(
    `kit memory (RssAnon, MB), sim board, dist, ${MEDIA ? 'media on' : 'media off'}, ${ROUNDS} round(s), ` +
      `sampled over the last ${Math.round(SETTLE_S / 2)} s of a ${SETTLE_S} s settle after 50 sales; load ${os.loadavg()[0]?.toFixed(1)} on ${os.cpus().length} cores\n`,
  );
  const runs = new Map<Variant, Measured[]>(VARIANTS.map((v) => [v, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const v of VARIANTS) {
      const r = await measure(v, broker.url);
      runs.get(v)?.push(r);
      process.stdout.write(
        `  [${round}] ${v.name.padEnd(52)} mean ${f(r.mean)}  max ${f(r.max)}   ${r.procs.map(([n, mb]) => `${n} ${mb.toFixed(1)}`).join(', ')}   sale p50 ${r.saleMs.toFixed(1)} ms\n`,
      );
    }
  }
  const first = runs.get(VARIANTS[0] as Variant) ?? [];
  const firstMean = median(first.map((r) => r.mean));
  const firstSale = median(first.map((r) => r.saleMs));
  process.stdout.write(
    `\n  over ${ROUNDS} round(s): median of the means, highest sample, median sale time (ratios to the first)\n`,
  );
  for (const [v, rs] of runs) {
    const m = median(rs.map((r) => r.mean));
    const sale = median(rs.map((r) => r.saleMs));
    process.stdout.write(
      `    ${v.name.padEnd(52)} ${f(m)} (${(m / firstMean).toFixed(2)})  max ${f(Math.max(...rs.map((r) => r.max)))}   sale ${sale.toFixed(1)} ms (${(sale / firstSale).toFixed(2)})\n`,
    );
  }
  const worst = Math.max(...first.map((r) => r.max));
  process.stdout.write(
    `  goal: ≤ ${GOAL_MB} MB for the kit's services (checkout+sync+kitd${MEDIA ? '+media' : ''}) in small-board mode: ` +
      `${worst <= GOAL_MB ? `met, highest sample ${worst.toFixed(1)} MB (${(GOAL_MB - worst).toFixed(1)} MB to spare)` : `NOT met, highest sample ${worst.toFixed(1)} MB (${(worst - GOAL_MB).toFixed(1)} MB over)`}; median ${firstMean.toFixed(1)} MB\n`,
  );
  const [bare, three] = [await floor(0), await floor(3)];
  process.stdout.write(
    `\n  floor: a bare node process ${bare.toFixed(1)} MB; with 3 idle workers ${three.toFixed(1)} MB (${((three - bare) / 3).toFixed(1)} MB per worker isolate before any code)\n`,
  );
} finally {
  await broker.stop();
}

// bench/startup: `popkit up` as `npm start` runs it (compiled dist/, plain node, sim board, media on) from
// launch to its first 201 on POST /v1/orders, on a fresh data dir (cold: first boot, the embedded hub's
// database created) and again on the same data dir (warm restart); launch to the embedded hub's
// /healthz; and the embedded hub's memory (RSS of the hub process, which hosts PGlite) once the kit has
// settled. Baselines measured in the same run: a bare `node` start of the same dist entry
// (`popkit --help`: the floor any start pays, and its peak RSS), and a cold start whose hub runs
// PGlite's initdb instead of copying the prebuilt template (POPKIT_HUB_PGLITE_TEMPLATE=none). Prints
// each run, then one JSON line of medians, ratios and whether the goals of issue #15 are met (every
// run's first 201 within 3 s, the hub within 300 MB). Asserts nothing.
//
//   npm run bench:startup              (builds dist/ with the hub template first)
//   POPKIT_RUNTIME=dist node --import tsx bench/startup.ts [--runs 3] [--settle 15] [--no-media]
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from '../tests/support/ports.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    settle: { type: 'string', default: '15' },
    'no-media': { type: 'boolean', default: false },
  },
});
const RUNS = Number(values.runs);
const SETTLE_MS = Number(values.settle) * 1000;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(root, 'bin/popkit.js');
const GOAL_FIRST_201_MS = 3000;
const GOAL_HUB_MB = 300;

if (!fs.existsSync(path.join(root, 'dist/.built'))) {
  console.error('bench/startup: no dist/ (run `npm run bench:startup`, which builds it)');
  process.exit(2);
}

// a card order (the sandbox gateway approves it): cash needs a paired staff terminal
const orderBody = JSON.stringify({
  lines: [{ sku: 'TEE-BLK-M', qty: 1 }],
  payment: { method: 'token', token: 'tok_sandbox_approve_bench_startup' },
});

/** VmRSS, and RssAnon alone (RssFile is mapped files: page cache the kernel can reclaim). */
function rssMb(pid: number): { total: number; anon: number } {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
    return { total: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024 };
  } catch {
    return { total: 0, anon: 0 };
  }
}

interface Started {
  proc: ChildProcess;
  exited: Promise<void>;
  output: () => string;
}

function launch(
  dataDir: string,
  ports: { http: number; hub: number },
  extra: Record<string, string>,
): Started {
  let out = '';
  const proc = spawn(process.execPath, [BIN, 'up', ...(values['no-media'] ? ['--no-media'] : [])], {
    env: {
      PATH: process.env['PATH'],
      POPKIT_RUNTIME: 'dist',
      POPKIT_DATA_DIR: dataDir,
      POPKIT_HTTP_HOST: '127.0.0.1',
      POPKIT_HTTP_PORT: String(ports.http),
      POPKIT_HUB_HTTP_PORT: String(ports.hub),
      POPKIT_LOCAL_BUS_PORT: '0',
      POPKIT_EMBEDDED_HUB_MQTT_PORT: '0',
      POPKIT_KIT_ID: 'kit-bench-startup',
      POPKIT_LOG_LEVEL: 'warn',
      ...extra,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return { proc, exited, output: () => out };
}

/** Launch → first 201 on POST /v1/orders, polled every 20 ms (ms). */
async function firstOrder(s: Started, port: number, t0: number): Promise<number> {
  const until = t0 + 180_000;
  let lastStatus = '';
  while (performance.now() < until) {
    if (s.proc.exitCode !== null) throw new Error(`popkit up exited early:\n${s.output()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: orderBody,
        signal: AbortSignal.timeout(2000),
      });
      if (res.status === 201) return performance.now() - t0;
      lastStatus = `${res.status} ${(await res.text()).slice(0, 200)}`;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no 201 within 180 s (last: ${lastStatus}):\n${s.output()}`);
}

/** The hub child of `popkit up` (its argv ends in `hub`): the process that hosts PGlite. */
function hubPid(upPid: number): number | undefined {
  for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (ppid === upPid && argv.at(-1) === 'hub') return Number(p);
    } catch {
      // gone, or not ours
    }
  }
  return undefined;
}

/** Until the embedded hub answers its /healthz (it comes up after checkout). */
async function hubUp(port: number): Promise<void> {
  const until = performance.now() + 120_000;
  while (performance.now() < until) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the embedded hub never answered /healthz');
}

async function stop(s: Started): Promise<void> {
  s.proc.kill('SIGTERM');
  const killed = setTimeout(() => s.proc.kill('SIGKILL'), 20_000);
  await s.exited;
  clearTimeout(killed);
}

/** One bare node start of the same dist entry, to exit (ms), and its peak RSS (MB). */
function bareNode(): { ms: number; maxRssMb: number } {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, BIN, '--help'], {
    env: { PATH: process.env['PATH'], POPKIT_RUNTIME: 'dist' },
    encoding: 'utf8',
  });
  const ms = performance.now() - t0;
  const kb = Number(/(\d+)\s*$/.exec(r.stderr)?.[1] ?? 0);
  return { ms, maxRssMb: kb / 1024 };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)] as number) : Number.NaN;
};
const r1 = (x: number) => Math.round(x * 10) / 10;

interface Boot {
  first201Ms: number;
  hubReadyMs: number;
  hub?: { total: number; anon: number };
}

/** One `popkit up` on `dataDir`: launch → first 201, launch → hub /healthz, and with `settle` the hub's RSS. */
async function boot(
  dataDir: string,
  ports: { http: number; hub: number },
  env: Record<string, string>,
  settle: boolean,
): Promise<Boot> {
  const t0 = performance.now();
  const s = launch(dataDir, ports, env);
  try {
    const hubReady = hubUp(ports.hub).then(() => performance.now() - t0);
    hubReady.catch(() => undefined);
    const first201Ms = await firstOrder(s, ports.http, t0);
    const hubReadyMs = await hubReady;
    if (!settle) return { first201Ms, hubReadyMs };
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const pid = s.proc.pid === undefined ? undefined : hubPid(s.proc.pid);
    if (pid === undefined) throw new Error(`no hub process under popkit up:\n${s.output()}`);
    return { first201Ms, hubReadyMs, hub: rssMb(pid) };
  } finally {
    await stop(s);
  }
}

const STRATEGIES = {
  // what `npm start` does: the hub's first start copies the prebuilt database (scripts/build.sh --hub-template)
  template: {},
  // the baseline: the hub's first start runs PGlite's initdb
  initdb: { POPKIT_HUB_PGLITE_TEMPLATE: 'none' },
} as const;
if (!fs.existsSync(path.join(root, 'dist/services/hub/pglite-template')))
  console.error(
    'bench/startup: dist/ has no hub template (build with --hub-template): both cold starts run initdb',
  );

const results = { cold: [] as Boot[], warm: [] as Boot[], coldInitdb: [] as Boot[] };
const bare: Array<{ ms: number; maxRssMb: number }> = [];
for (let i = 0; i < RUNS; i++) {
  bare.push(bareNode());
  for (const strategy of ['template', 'initdb'] as const) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-startup-'));
    const ports = { http: await freePort(), hub: await freePort() };
    try {
      const env = STRATEGIES[strategy];
      const first = await boot(dataDir, ports, env, true);
      if (strategy === 'initdb') results.coldInitdb.push(first);
      else {
        results.cold.push(first);
        results.warm.push(await boot(dataDir, ports, env, false));
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }
  const c = results.cold.at(-1);
  const w = results.warm.at(-1);
  const b = results.coldInitdb.at(-1);
  console.error(
    `run ${i + 1}/${RUNS}: bare node ${Math.round(bare.at(-1)?.ms ?? 0)} ms; ` +
      `cold: 201 at ${Math.round(c?.first201Ms ?? 0)} ms, hub at ${Math.round(c?.hubReadyMs ?? 0)} ms, hub ${r1(c?.hub?.total ?? 0)} MB; ` +
      `warm: 201 at ${Math.round(w?.first201Ms ?? 0)} ms; ` +
      `cold (initdb): 201 at ${Math.round(b?.first201Ms ?? 0)} ms, hub at ${Math.round(b?.hubReadyMs ?? 0)} ms, hub ${r1(b?.hub?.total ?? 0)} MB`,
  );
}

const med = (xs: Boot[], f: (b: Boot) => number) => median(xs.map(f));
const bareMs = median(bare.map((b) => b.ms));
const bareMb = median(bare.map((b) => b.maxRssMb));
const coldMs = med(results.cold, (b) => b.first201Ms);
const warmMs = med(results.warm, (b) => b.first201Ms);
const hubMb = med(results.cold, (b) => b.hub?.total ?? Number.NaN);
const initdbHubMb = med(results.coldInitdb, (b) => b.hub?.total ?? Number.NaN);
const hubReady = med(results.cold, (b) => b.hubReadyMs);
const initdbHubReady = med(results.coldInitdb, (b) => b.hubReadyMs);
const worst = (xs: Boot[], f: (b: Boot) => number) => Math.max(...xs.map(f));
console.log(
  JSON.stringify({
    runs: RUNS,
    media: !values['no-media'],
    bareNodeStartMs: Math.round(bareMs),
    coldFirst201Ms: Math.round(coldMs),
    warmFirst201Ms: Math.round(warmMs),
    coldToBareNode: r1(coldMs / bareMs),
    warmToBareNode: r1(warmMs / bareMs),
    coldHubReadyMs: Math.round(hubReady),
    initdbColdHubReadyMs: Math.round(initdbHubReady),
    hubReadyTemplateToInitdb: Math.round((hubReady / initdbHubReady) * 100) / 100,
    initdbColdFirst201Ms: Math.round(med(results.coldInitdb, (b) => b.first201Ms)),
    bareNodeRssMb: r1(bareMb),
    hubRssMb: r1(hubMb),
    hubRssAnonMb: r1(med(results.cold, (b) => b.hub?.anon ?? Number.NaN)),
    initdbHubRssMb: r1(initdbHubMb),
    hubTemplateToInitdb: Math.round((hubMb / initdbHubMb) * 100) / 100,
    hubToBareNode: r1(hubMb / bareMb),
    goals: {
      first201WithinMs: GOAL_FIRST_201_MS,
      coldMet: worst(results.cold, (b) => b.first201Ms) <= GOAL_FIRST_201_MS,
      warmMet: worst(results.warm, (b) => b.first201Ms) <= GOAL_FIRST_201_MS,
      hubWithinMb: GOAL_HUB_MB,
      hubMet: worst(results.cold, (b) => b.hub?.total ?? Number.POSITIVE_INFINITY) <= GOAL_HUB_MB,
    },
  }),
);

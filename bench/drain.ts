// bench:drain — a drop right after reconnection (docs/scaling.md#checkout-first): a kit whose outbox holds
// a big backlog, and a burst of buyers at once. Checkout's orders/s and p99 while sync drains that
// backlog to a real hub, against the same with sync idle (its hub unreachable, retrying), in the same
// run; then the same drain as sync ran before #19 (no pacing: POPKIT_SYNC_BUSY_HOLD_MS=0, and at
// checkout's own nice value) for comparison. Sync runs at its nice value from core/priorities.ts, as
// `popkit up` starts it (on balena: cpu_shares).
//
// Placement (taskset): the kit's two processes (checkout, sync) on --kit-cpus; this bench (the load
// generator), the hub, its Mosquitto and PostgreSQL on --other-cpus, so that the figure is the kit's
// own. PostgreSQL is the system service: its processes are pinned for the run and given back their
// own affinity at the end (new backends inherit the postmaster's).
//
//   npm run bench:drain -- [--backlog 100000] [--seconds 10] [--connections 50] [--kit-cpus 0] [--other-cpus 1]
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { LANES } from '../core/contracts/lanes.ts';
import { readRunStatus } from '../core/contracts/run-status.ts';
import { dataLayout } from '../core/data-dir.ts';
import { CPU_PRIORITY } from '../core/priorities.ts';
import { openKitStore } from '../core/store/index.ts';
import {
  dropSchema,
  freePort,
  hubProcessEnv,
  mosquitto,
  REPO,
  tmpDir,
  uniqueId,
  waitFor,
} from '../tests/support/hub-link.ts';

const { values } = parseArgs({
  options: {
    backlog: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    'kit-cpus': { type: 'string', default: '0' },
    'other-cpus': { type: 'string', default: '1' },
  },
});
const BACKLOG = Number(values.backlog);
const SECONDS = Number(values.seconds);
const CONNECTIONS = Number(values.connections);
const KIT_CPUS = values['kit-cpus'];
const OTHER_CPUS = values['other-cpus'];
if (!(BACKLOG > 0) || !(SECONDS > 0) || !(CONNECTIONS > 0) || os.cpus().length < 2) {
  process.stderr.write(
    'usage: bench/drain.ts [--backlog N] [--seconds S] [--connections C] [--kit-cpus L] [--other-cpus L] (2 cores or more)\n',
  );
  process.exit(2);
}

const ADMIN = 'bench-admin-token-0123456789';
const catalog = {
  version: 1,
  eventId: 'bench',
  currency: 'USD',
  items: Array.from({ length: 24 }, (_, i) => ({
    sku: `SKU-${i}`,
    name: `Bench item ${i}`,
    priceCents: 1000 + i * 50,
    stock: 10_000_000,
  })),
};
const orderBody = JSON.stringify({
  lines: [
    { sku: 'SKU-3', qty: 1 },
    { sku: 'SKU-7', qty: 2 },
  ],
  payment: { method: 'cash' },
});

// ---------------------------------------------------------------- placement

const taskset = (...args: string[]) => execFileSync('taskset', args, { encoding: 'utf8' });
/** the bench itself (and so the broker and the hub it spawns) on the other cores */
taskset('-a', '-p', '-c', OTHER_CPUS, String(process.pid));

/** PostgreSQL's processes and their affinity before the run, to give it back */
const pgAffinity = new Map<string, string>();
function pinPostgres(): void {
  let pids: string[] = [];
  try {
    pids = execFileSync('pgrep', ['-x', 'postgres'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch {
    process.stdout.write('  (no local postgres process found: PostgreSQL is not pinned)\n');
  }
  for (const pid of pids) {
    try {
      const mask = /: (\S+)\s*$/.exec(taskset('-p', pid))?.[1];
      if (mask) pgAffinity.set(pid, mask);
      taskset('-a', '-p', '-c', OTHER_CPUS, pid);
    } catch {
      // a backend that exited meanwhile
    }
  }
}
function unpinPostgres(): void {
  for (const [pid, mask] of pgAffinity) {
    try {
      taskset('-a', '-p', mask, pid);
    } catch {
      // exited meanwhile
    }
  }
}

/** `popkit <cmd>`, on `cpus` when given, at `nice` as `popkit up` starts it (core/priorities.ts) */
function popkit(cmd: string, env: Record<string, string>, cpus?: string, nice = 0): ChildProcess {
  const node = [process.execPath, path.join(REPO, 'bin/popkit.js'), cmd];
  const niced = nice ? ['nice', '-n', String(nice), ...node] : node;
  const [bin, ...args] = cpus ? ['taskset', '-c', cpus, ...niced] : niced;
  return spawn(bin!, args, {
    env: {
      ...process.env,
      NODE_ENV: 'production',
      POPKIT_LOG_LEVEL: process.env['BENCH_LOG_LEVEL'] ?? 'warn',
      ...env,
    },
    stdio: ['ignore', process.env['BENCH_LOG_LEVEL'] ? 'inherit' : 'ignore', 'inherit'],
  });
}

async function stop(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null) return;
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await done;
}

// ---------------------------------------------------------------- measuring

type Buckets = Map<number, number>;
/** checkout's own latency histogram (accepted orders): time in the server, commit and fsync included */
async function serverBuckets(url: string): Promise<Buckets> {
  const text = await (
    await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })
  ).text();
  const out: Buckets = new Map();
  for (const m of text.matchAll(
    /popkit_order_duration_seconds_bucket\{le="([^"]+)",outcome="accepted"\} (\d+)/g,
  )) {
    out.set(m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2]));
  }
  return out;
}
/** the p99 bucket bound of the orders between two readings */
function serverP99(before: Buckets, after: Buckets): string {
  const rows = [...after]
    .map(([le, n]) => [le, n - (before.get(le) ?? 0)] as const)
    .sort((a, b) => a[0] - b[0]);
  const count = rows.at(-1)?.[1] ?? 0;
  const b = rows.find(([, n]) => n >= 0.99 * count);
  return !b ? '?' : Number.isFinite(b[0]) ? `≤ ${b[0] * 1000} ms` : '> 1 s';
}

interface Phase {
  rps: number;
  p50: number;
  p99: number;
  accepted: number;
  non2xx: number;
  errors: number;
  serverP99: string;
  backlogBefore: number;
  backlogAfter: number;
  seconds: number;
}

async function burst(kitUrl: string, backlog: () => number, opts: { amount?: number } = {}): Promise<Phase> {
  const backlogBefore = backlog();
  const b0 = await serverBuckets(kitUrl);
  const t0 = performance.now();
  const r = await autocannon({
    url: `${kitUrl}/v1/orders`,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: orderBody,
    connections: CONNECTIONS,
    ...(opts.amount ? { amount: opts.amount } : { duration: SECONDS }),
  });
  const seconds = (performance.now() - t0) / 1000;
  const b1 = await serverBuckets(kitUrl);
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    // counted by the server (its histogram): autocannon misses the requests in flight when it stops
    accepted: (b1.get(Number.POSITIVE_INFINITY) ?? 0) - (b0.get(Number.POSITIVE_INFINITY) ?? 0),
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    serverP99: serverP99(b0, b1),
    backlogBefore,
    backlogAfter: backlog(),
    seconds,
  };
}

// ---------------------------------------------------------------- the run

const dir = tmpDir('bench-drain');
const kitDir = path.join(dir, 'kit');
const kitId = uniqueId('bench-drain');
const schema = uniqueId('bench_drain').replace(/-/g, '_');
let broker: Awaited<ReturnType<typeof mosquitto>> | undefined;
let hub: ChildProcess | undefined;
let checkout: ChildProcess | undefined;
let sync: ChildProcess | undefined;
try {
  pinPostgres();
  broker = await mosquitto({ dir: path.join(dir, 'mosq') });
  const hubPort = await freePort();
  hub = popkit('hub', {
    ...hubProcessEnv({ dataDir: path.join(dir, 'hub'), brokerUrl: broker.url, schema, port: hubPort }),
    // this measures the kit: the hub's per-kit quota is lifted
    POPKIT_HUB_KIT_RATE_PER_S: '100000',
    POPKIT_HUB_KIT_BURST: '100000',
  });
  const kitPort = await freePort();
  const kitUrl = `http://127.0.0.1:${kitPort}`;
  checkout = popkit(
    'checkout',
    {
      POPKIT_KIT_ID: kitId,
      POPKIT_DATA_DIR: kitDir,
      POPKIT_HTTP_PORT: String(kitPort),
      POPKIT_HTTP_HOST: '127.0.0.1',
      POPKIT_BOARD: 'sim',
      POPKIT_ADMIN_TOKEN: ADMIN,
      POPKIT_RISK_MAX_UNSYNCED_ORDERS: '100000000',
    },
    KIT_CPUS,
  );
  await waitFor(() => fetch(`http://127.0.0.1:${hubPort}/healthz`).then((r) => r.ok), 30_000, 'hub healthz');
  // healthz answers 503 until a catalog is loaded: any answer means listening
  await waitFor(() => fetch(`${kitUrl}/healthz`).then(() => true), 60_000, 'checkout listening');
  const put = await fetch(`${kitUrl}/v1/catalog`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify(catalog),
  });
  if (!put.ok) throw new Error(`catalog not loaded: ${put.status} ${await put.text()}`);
  const store = openKitStore(kitDir);
  // counted only between phases (counting 100k keys steals time from the other cores' work)
  const backlog = () => store.outbox.getKeysCount({ start: [LANES.orders, ''], end: [LANES.orders + 1, ''] });

  process.stdout.write(
    `bench:drain — kit (checkout + sync) on cpu ${KIT_CPUS}; load generator, hub, Mosquitto and PostgreSQL on cpu ${OTHER_CPUS}; ` +
      `${CONNECTIONS} connections, ${SECONDS} s per phase, durable cash orders\n`,
  );
  // the backlog, sold while the hub was out of reach
  const fill = await burst(kitUrl, backlog, { amount: BACKLOG });
  process.stdout.write(
    `  backlog: ${fill.backlogAfter} orders in the outbox (sold offline at ${Math.round(fill.accepted / fill.seconds)} orders/s)\n`,
  );

  const deadUrl = `mqtt://127.0.0.1:${await freePort()}`;
  const syncEnv = (hubUrl: string, extra: Record<string, string> = {}) => ({
    POPKIT_KIT_ID: kitId,
    POPKIT_DATA_DIR: kitDir,
    POPKIT_HUB_URL: hubUrl,
    POPKIT_SYNC_BACKOFF_MIN_MS: '200',
    POPKIT_SYNC_BACKOFF_MAX_MS: '1000',
    ...extra,
  });
  const linkUp = () => waitFor(() => readRunStatus(kitDir, 'sync')?.link === 'up', 30_000, 'sync link up');

  const phase = async (
    label: string,
    hubUrl: string,
    extra: Record<string, string> = {},
    nice: number = CPU_PRIORITY.sync.nice,
  ) => {
    await stop(sync);
    // the last sync's status must not pass for this one's
    fs.rmSync(dataLayout(kitDir).runStatus('sync'), { force: true });
    sync = popkit('sync', syncEnv(hubUrl, extra), KIT_CPUS, nice);
    if (hubUrl === deadUrl) await waitFor(() => readRunStatus(kitDir, 'sync'), 30_000, 'sync status');
    else await linkUp();
    const r = await burst(kitUrl, backlog);
    const drained = r.backlogBefore + r.accepted - r.backlogAfter;
    process.stdout.write(
      `  ${label.padEnd(44)} ${r.rps.toFixed(0).padStart(6)} orders/s  p50 ${String(r.p50).padStart(3)} ms  p99 ${String(r.p99).padStart(3)} ms  ` +
        `(server p99 ${r.serverP99})  non-2xx ${r.non2xx} errors ${r.errors}  ` +
        `backlog ${r.backlogBefore} → ${r.backlogAfter}, drained ${drained} (${Math.round(drained / r.seconds)}/s)\n`,
    );
    return { ...r, drained, drainRate: drained / r.seconds };
  };

  const idle = await phase('sync idle (hub unreachable, retrying)', deadUrl);
  const draining = await phase('sync draining, checkout first (#19)', broker.url);
  // as before #19: no pacing, and sync at checkout's own priority
  const before = await phase(
    'sync draining as before #19 (no pacing, nice 0)',
    broker.url,
    { POPKIT_SYNC_BUSY_HOLD_MS: '0' },
    0,
  );
  await stop(sync);
  sync = undefined;
  await store.close();

  const ratio = (a: number, b: number) => (b > 0 ? a / b : Number.NaN);
  const pRatio = ratio(draining.p99, idle.p99);
  const rRatio = ratio(draining.rps, idle.rps);
  const met = pRatio <= 1.5 && rRatio >= 0.8 && draining.drained > 0;
  process.stdout.write(
    `\nresult (checkout first): p99 draining/idle ${pRatio.toFixed(2)} (goal ≤ 1.5), orders/s draining/idle ${rRatio.toFixed(2)} (goal ≥ 0.8), ` +
      `backlog draining at ${Math.round(draining.drainRate)} orders/s: ${met ? 'met' : 'NOT met'}\n` +
      `as before #19, same run: p99 ${ratio(before.p99, idle.p99).toFixed(2)}, orders/s ${ratio(before.rps, idle.rps).toFixed(2)}, ` +
      `backlog draining at ${Math.round(before.drainRate)} orders/s\n`,
  );
  if (idle.non2xx + draining.non2xx + before.non2xx + idle.errors + draining.errors + before.errors > 0) {
    process.stderr.write('some orders failed: the figures above are not clean\n');
    process.exitCode = 1;
  }
} finally {
  await stop(sync);
  await stop(checkout);
  await stop(hub);
  await broker?.stop();
  unpinPostgres();
  await dropSchema(schema).catch(() => {});
  fs.rmSync(dir, { recursive: true, force: true });
}

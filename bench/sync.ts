// bench:sync — fill a kit's outbox with N orders while offline (checkout's own transaction), then start
// `popkit hub` (real PostgreSQL) and `popkit sync` as separate processes on a private Mosquitto (the
// deploy/hub tuning) and time the drain until every order is acked and deleted from LMDB. In the same
// run, the same drain with one order per MQTT message is the baseline.
//
//   npm run bench:sync -- [--orders 100000] [--baseline-orders 20000] [--token-share 0.2]
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { LANES } from '../core/contracts/lanes.ts';
import { readRunStatus } from '../core/contracts/run-status.ts';
import {
  dropSchema,
  freePort,
  hubProcessEnv,
  ledgerOrderIds,
  makeKit,
  mosquitto,
  REPO,
  tmpDir,
  uniqueId,
  waitFor,
} from '../tests/support/hub-link.ts';

const { values } = parseArgs({
  options: {
    orders: { type: 'string', default: '100000' },
    'baseline-orders': { type: 'string' },
    'token-share': { type: 'string', default: '0.2' },
  },
});
const N = Number(values.orders);
const NB = Number(values['baseline-orders'] ?? Math.min(N, 5000));
const tokenShare = Number(values['token-share']);
if (!(N > 0) || !(NB > 0) || !(tokenShare >= 0 && tokenShare <= 1)) {
  process.stderr.write('usage: bench/sync.ts [--orders N] [--baseline-orders N] [--token-share 0..1]\n');
  process.exit(2);
}

function peakRssMb(pid: number | undefined): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

function popkit(cmd: string, env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [path.join(REPO, 'bin/popkit.js'), cmd], {
    env: {
      ...process.env,
      NODE_ENV: 'production',
      POPKIT_LOG_LEVEL: process.env['BENCH_LOG_LEVEL'] ?? 'warn',
      ...env,
    },
    stdio: ['ignore', process.env['BENCH_LOG_LEVEL'] ? 'inherit' : 'ignore', 'inherit'],
  });
}

async function fill(kitId: string, n: number) {
  const kit = await makeKit(kitId);
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const token = i % Math.max(1, Math.round(1 / tokenShare)) === 0 && tokenShare > 0;
      await kit.place(token ? { method: 'token', token: `tok_bench_${i}` } : { method: 'cash' });
    }
  };
  await Promise.all(Array.from({ length: 128 }, worker));
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(`  filled ${n} orders offline in ${s.toFixed(1)} s (${Math.round(n / s)} orders/s)\n`);
  return kit;
}

async function drain(label: string, n: number, syncEnv: Record<string, string>, brokerUrl: string) {
  const kit = await fill(uniqueId(`bench-${label}`), n);
  // O(1): is there any order entry left? (counting 100k keys every poll would steal a core from the run)
  const empty = () =>
    [...kit.store.outbox.getKeys({ start: [LANES.orders, ''], end: [LANES.orders + 1, ''], limit: 1 })]
      .length === 0;
  const sync = popkit('sync', {
    POPKIT_KIT_ID: kit.kitId,
    POPKIT_DATA_DIR: kit.dataDir,
    POPKIT_HUB_URL: brokerUrl,
    POPKIT_SYNC_POLL_MS: '20',
    ...syncEnv,
  });
  try {
    await waitFor(() => readRunStatus(kit.dataDir, 'sync')?.link === 'up', 30_000, 'sync link up');
    const t0 = performance.now();
    await waitFor(empty, 600_000, `${label} drain`);
    const s = (performance.now() - t0) / 1000;
    const rss = peakRssMb(sync.pid);
    const ledger = await ledgerOrderIds(schema, kit.kitId);
    const settledOrDeclined = [...kit.store.orders.getRange()].filter(
      ({ value }) => value.syncState === 'settled' || value.syncState === 'declined',
    ).length;
    return { s, rate: n / s, rss, ledgerRows: ledger.rows, acked: settledOrDeclined, kit };
  } finally {
    sync.kill('SIGTERM');
    await new Promise((r) => sync.once('exit', r));
    await kit.close();
  }
}

const schema = uniqueId('bench_sync').replace(/-/g, '_');
const broker = await mosquitto({ dir: tmpDir('bench-mosq') });
const hubDir = tmpDir('bench-hub');
const hubPort = await freePort();
// the per-kit quota is lifted: this measures the link and the ledger, and the one-order-per-message
// baseline keeps 500 messages in flight from one kit, far above a kit's default message rate
const hub = popkit('hub', {
  ...hubProcessEnv({ dataDir: hubDir, brokerUrl: broker.url, schema, port: hubPort }),
  POPKIT_HUB_KIT_RATE_PER_S: '100000',
  POPKIT_HUB_KIT_BURST: '100000',
});
try {
  await waitFor(() => fetch(`http://127.0.0.1:${hubPort}/healthz`).then((r) => r.ok), 30_000, 'hub healthz');
  process.stdout.write(
    `bench:sync — ${N} orders (${Math.round(tokenShare * 100)}% card tokens) through Mosquitto ${broker.url} ` +
      `into PostgreSQL (schema ${schema})\n\nbatched (default: ≤500 entries / 256 KiB per message, 8 messages in flight)\n`,
  );
  const batched = await drain('batched', N, {}, broker.url);
  process.stdout.write(
    `  drained ${N} in ${batched.s.toFixed(2)} s: ${Math.round(batched.rate)} orders/s; ledger rows ${batched.ledgerRows}, ` +
      `acked on the kit ${batched.acked}; peak RSS sync ${batched.rss} MB\n\n`,
  );
  process.stdout.write(`baseline: one order per MQTT message (500 messages in flight), ${NB} orders\n`);
  const single = await drain(
    'single',
    NB,
    { POPKIT_SYNC_BATCH_MAX: '1', POPKIT_SYNC_WINDOW: '500' },
    broker.url,
  );
  process.stdout.write(
    `  drained ${NB} in ${single.s.toFixed(2)} s: ${Math.round(single.rate)} orders/s; ledger rows ${single.ledgerRows}; ` +
      `peak RSS sync ${single.rss} MB\n\n`,
  );
  const hubRss = peakRssMb(hub.pid);
  process.stdout.write(
    `result: batched ${Math.round(batched.rate)} orders/s vs one-per-message ${Math.round(single.rate)} orders/s ` +
      `= ${(batched.rate / single.rate).toFixed(1)}x; ${N} orders in ${batched.s.toFixed(2)} s (target ≤ 10 s)\n` +
      `peak RSS: sync ${Math.max(batched.rss, single.rss)} MB, hub ${hubRss} MB\n`,
  );
  if (batched.ledgerRows !== N || single.ledgerRows !== NB) {
    process.stderr.write('ledger does not hold every order exactly once\n');
    process.exitCode = 1;
  }
} finally {
  hub.kill('SIGTERM');
  await new Promise((r) => hub.once('exit', r));
  await broker.stop();
  await dropSchema(schema);
}

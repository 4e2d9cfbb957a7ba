// bench/checkout: the real kit checkout over HTTP (autocannon, 50 connections) against a baseline of the
// same fastify route storing each order in SQLite (WAL, synchronous=FULL), measured in the same run.
//   node --import tsx bench/checkout.ts [--seconds 10] [--connections 50]
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' } },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
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

/** VmRSS, and RssAnon alone (RssFile is mostly the LMDB map's pages: page cache the kernel can reclaim). */
function rssMb(pid: number): { total: number; anon: number } {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
    return { total: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024 };
  } catch {
    return { total: 0, anon: 0 };
  }
}

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} never answered`);
}

async function load(url: string, opts: Partial<autocannon.Options>, proc: ChildProcess) {
  let peak = 0;
  let peakAnon = 0;
  const sampler = setInterval(() => {
    const r = rssMb(proc.pid ?? 0);
    peak = Math.max(peak, r.total);
    peakAnon = Math.max(peakAnon, r.anon);
  }, 200);
  const r = await autocannon({ url, connections, duration: seconds, ...opts });
  clearInterval(sampler);
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    total: r.requests.total,
    peakRssMb: peak,
    peakAnonMb: peakAnon,
  };
}

async function stop(p: ChildProcess) {
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await done;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-bench-'));
const kitPort = 18091;
const basePort = 18092;

// the kit, exactly as `popkit checkout` runs it
const kit = spawn(process.execPath, [path.join(root, 'bin/popkit.js'), 'checkout'], {
  env: {
    ...process.env,
    POPKIT_DATA_DIR: path.join(dir, 'kit'),
    POPKIT_HTTP_PORT: String(kitPort),
    POPKIT_HTTP_HOST: '127.0.0.1',
    POPKIT_BOARD: 'sim',
    POPKIT_ADMIN_TOKEN: ADMIN,
    POPKIT_LOG_LEVEL: 'warn',
    POPKIT_RISK_MAX_UNSYNCED_ORDERS: '100000000',
  },
  stdio: 'ignore',
});
const kitUrl = `http://127.0.0.1:${kitPort}`;
await waitReady(`${kitUrl}/healthz`);
await fetch(`${kitUrl}/v1/catalog`, {
  method: 'PUT',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
  body: JSON.stringify(catalog),
});
/** p50/p99 upper bounds from the kit's own latency histogram: time in the server, commit and fsync included. */
async function serverQuantiles(
  url: string,
  headers: Record<string, string>,
): Promise<{ p50: string; p99: string; count: number }> {
  const text = await (await fetch(url, { headers })).text();
  const buckets: Array<[number, number]> = [];
  for (const m of text.matchAll(
    /popkit_order_duration_seconds_bucket\{le="([^"]+)",outcome="accepted"\} (\d+)/g,
  )) {
    buckets.push([m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2])]);
  }
  const count = buckets.at(-1)?.[1] ?? 0;
  const q = (f: number) => {
    const b = buckets.find(([, n]) => n >= f * count);
    return !b ? '?' : Number.isFinite(b[0]) ? `≤ ${b[0] * 1000} ms` : '> 1 s';
  };
  return { p50: q(0.5), p99: q(0.99), count };
}

// as a paired till would: cash needs a terminal or the admin, /metrics a credential
const staffAuth = { authorization: `Bearer ${ADMIN}` };
const kitOrders = await load(
  `${kitUrl}/v1/orders`,
  { method: 'POST', headers: { 'content-type': 'application/json', ...staffAuth }, body: orderBody },
  kit,
);
const kitServer = await serverQuantiles(`${kitUrl}/metrics`, staffAuth);
const kitCatalog = await load(`${kitUrl}/v1/catalog`, {}, kit);
await stop(kit);

const base = spawn(
  process.execPath,
  ['--import', 'tsx', path.join(root, 'bench/sqlite-baseline-server.ts')],
  {
    env: {
      ...process.env,
      BENCH_DIR: dir,
      BENCH_PORT: String(basePort),
      BENCH_CATALOG: JSON.stringify(catalog.items),
    },
    stdio: 'ignore',
  },
);
const baseUrl = `http://127.0.0.1:${basePort}`;
await waitReady(`${baseUrl}/v1/catalog`);
const baseOrders = await load(
  `${baseUrl}/v1/orders`,
  { method: 'POST', headers: { 'content-type': 'application/json' }, body: orderBody },
  base,
);
const baseCatalog = await load(`${baseUrl}/v1/catalog`, {}, base);
await stop(base);
fs.rmSync(dir, { recursive: true, force: true });

const f = (n: number) => n.toFixed(0).padStart(8);
const row = (name: string, r: Awaited<ReturnType<typeof load>>) =>
  `${name.padEnd(34)} ${f(r.rps)} req/s  p50 ${String(r.p50).padStart(4)} ms  p99 ${String(r.p99).padStart(4)} ms  non-2xx ${r.non2xx}  errors ${r.errors}  peak RSS ${r.peakRssMb.toFixed(0)} MB (anon ${r.peakAnonMb.toFixed(0)})`;
console.log(`bench/checkout: ${seconds}s per run, ${connections} connections, ${os.cpus().length} cores`);
console.log(row('kit: durable orders (LMDB)', kitOrders));
console.log(
  `  kit, measured inside the server (commit + fsync included): p50 ${kitServer.p50}, p99 ${kitServer.p99} over ${kitServer.count} orders`,
);
console.log(row('baseline: orders (SQLite FULL)', baseOrders));
console.log(row('kit: catalog reads', kitCatalog));
console.log(row('baseline: catalog reads (SQLite)', baseCatalog));
console.log(`ratio durable orders kit/baseline: ${(kitOrders.rps / baseOrders.rps).toFixed(2)}x`);
console.log(`ratio catalog reads kit/baseline:  ${(kitCatalog.rps / baseCatalog.rps).toFixed(2)}x`);
console.log(
  `targets: >= 8000 orders/s at p99 <= 20 ms: ${kitOrders.rps >= 8000 && kitOrders.p99 <= 20 ? 'met' : 'NOT met'}; ` +
    `>= 5x baseline: ${kitOrders.rps / baseOrders.rps >= 5 ? 'met' : 'NOT met'}; ` +
    `catalog >= 15000/s: ${kitCatalog.rps >= 15000 ? 'met' : 'NOT met'}; kit RSS <= 150 MB: ${Math.max(kitOrders.peakRssMb, kitCatalog.peakRssMb) <= 150 ? 'met' : 'NOT met'}`,
);

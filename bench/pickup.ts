// bench/pickup: what pickup windows cost on the real kit checkout (real LMDB, fsynced commits, in
// process through app.inject): orders taking a slot against the same orders without one (the
// baseline, same run), handovers by code, and the queue read against GET /v1/status.
//   NODE_ENV=test node --import tsx bench/pickup.ts [--orders 2000] [--concurrency 50]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createCheckout } from '../services/checkout/main.ts';

const { values } = parseArgs({
  options: { orders: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '50' } },
});
const N = Number(values.orders);
const C = Number(values.concurrency);
const ADMIN = 'bench-admin-token-0123456789';
const auth = { authorization: `Bearer ${ADMIN}` };
const hour = 3600_000;
const now = Date.now();

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-bench-pickup-'));
const kit = await createCheckout({
  PATH: process.env['PATH'],
  NODE_ENV: 'test',
  POPKIT_DATA_DIR: dataDir,
  POPKIT_BOARD: 'sim',
  POPKIT_KIT_ID: 'bench-pickup',
  POPKIT_ADMIN_TOKEN: ADMIN,
  POPKIT_LOG_LEVEL: 'silent',
  POPKIT_STORE_RESERVE_MB: '0',
});
const app = kit.app;
const put = await app.inject({
  method: 'PUT',
  url: '/v1/catalog',
  headers: auth,
  payload: {
    version: 1,
    eventId: 'bench',
    currency: 'EUR',
    items: [{ sku: 'TEE', name: 'Tee', priceCents: 2500, stock: 10_000_000 }],
    pickupSlots: Array.from({ length: 8 }, (_, i) => ({
      id: `slot-${i}`,
      startsAt: new Date(now + i * hour).toISOString(),
      endsAt: new Date(now + (i + 1) * hour).toISOString(),
      capacity: N,
    })),
  },
});
if (put.statusCode !== 200) throw new Error(put.body);

/** `n` calls of `fn`, `C` at a time; calls per second and the latency percentiles (ms). */
async function run(n: number, fn: (i: number) => Promise<number>) {
  const lat: number[] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i += C) {
    await Promise.all(
      Array.from({ length: Math.min(C, n - i) }, async (_, j) => {
        const t = process.hrtime.bigint();
        const status = await fn(i + j);
        if (status >= 300) throw new Error(`call ${i + j} answered ${status}`);
        lat.push(Number(process.hrtime.bigint() - t) / 1e6);
      }),
    );
  }
  const s = Number(process.hrtime.bigint() - started) / 1e9;
  lat.sort((a, b) => a - b);
  const p = (q: number) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]!.toFixed(1);
  return { perS: Math.round(n / s), p50: p(0.5), p99: p(0.99) };
}

const order = (slot?: string) =>
  app.inject({
    method: 'POST',
    url: '/v1/orders',
    headers: auth,
    payload: {
      lines: [{ sku: 'TEE', qty: 1 }],
      payment: { method: 'cash' },
      ...(slot ? { pickupSlotId: slot } : {}),
    },
  });

const codes: string[] = [];
// warm up (JIT, LMDB map) so neither side of the comparison pays for it
await run(Math.round(N / 4), async (i) => (await order(i % 2 ? 'slot-7' : undefined)).statusCode);
// the two sides interleaved in rounds, so a neighbour's load on a shared machine hits both alike
const ROUNDS = 4;
const flatRounds = [];
const slotRounds = [];
for (let r = 0; r < ROUNDS; r++) {
  flatRounds.push(await run(N / ROUNDS, async () => (await order()).statusCode));
  slotRounds.push(
    await run(N / ROUNDS, async (i) => {
      const res = await order(`slot-${i % 8}`);
      codes.push(res.json().pickup.code);
      return res.statusCode;
    }),
  );
}
/** rounds of equal size: the overall rate, and the median round's percentiles */
const merge = (rs: Array<{ perS: number; p50: string; p99: string }>) => {
  const perS = Math.round(rs.length / rs.reduce((t, r) => t + 1 / r.perS, 0));
  const mid = [...rs].sort((a, b) => Number(a.p50) - Number(b.p50))[Math.floor(rs.length / 2)]!;
  return {
    perS,
    p50: mid.p50,
    p99: [...rs]
      .map((r) => Number(r.p99))
      .sort((a, b) => b - a)[0]!
      .toFixed(1),
  };
};
const flat = merge(flatRounds);
const slotted = merge(slotRounds);
const handover = await run(
  N,
  async (i) =>
    (await app.inject({ method: 'POST', url: '/v1/pickups', headers: auth, payload: { code: codes[i] } }))
      .statusCode,
);
const reads = Math.max(20, Math.round(N / 40));
const status = await run(
  reads,
  async () => (await app.inject({ method: 'GET', url: '/v1/status', headers: auth })).statusCode,
);
const queue = await run(
  reads,
  async () => (await app.inject({ method: 'GET', url: '/v1/pickups', headers: auth })).statusCode,
);
const overdue = await run(
  reads,
  async () =>
    (await app.inject({ method: 'GET', url: '/v1/pickups?state=overdue', headers: auth })).statusCode,
);

const row = (name: string, r: { perS: number; p50: string; p99: string }) =>
  `${name.padEnd(34)} ${String(r.perS).padStart(7)}/s   p50 ${r.p50.padStart(6)} ms   p99 ${r.p99.padStart(6)} ms`;
console.log(
  `bench:pickup  ${N} orders each way (${ROUNDS} interleaved rounds), ${C} at a time, ${os.cpus().length} cores`,
);
console.log(row('orders without a slot (baseline)', flat));
console.log(row('orders taking a slot', slotted));
console.log(
  `  slot cost: ${(((flat.perS - slotted.perS) / flat.perS) * 100).toFixed(1)} % fewer orders/s than the baseline`,
);
console.log(row('handovers (POST /v1/pickups)', handover));
console.log(row('GET /v1/status (baseline read)', status));
console.log(row(`GET /v1/pickups (${N} pickup orders)`, queue));
console.log(row('GET /v1/pickups?state=overdue', overdue));
await kit.close();
fs.rmSync(dataDir, { recursive: true, force: true });

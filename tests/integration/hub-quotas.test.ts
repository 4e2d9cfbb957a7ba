// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Per-kit quotas in the hub: one kit publishing a hundred times its quota (its own process) does not keep an
// honest kit's orders from being acked; the flood is dropped unacked before any database work and
// counted per reason; a batch over the per-kit entries cap is dropped too. Prints the honest kit's ack
// latency with and without the flood (figures only, no timing assertion).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { topics } from '../../core/contracts/hub-wire.ts';
import { getOrder } from '../../core/store/index.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { KitBuckets } from '../../services/hub/ingest.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  ledgerOrderIds,
  type Mosquitto,
  makeKit,
  mosquitto,
  REPO,
  startHub,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_quotas').replace(/-/g, '_');
let broker: Mosquitto;
let hub: HubService;
let kit: TestKit;
let sync: SyncService;
let flooder: ChildProcess | undefined;

before(async () => {
  broker = await mosquitto();
  hub = await startHub({
    schema,
    brokerUrl: broker.url,
    env: { POPKIT_HUB_KIT_RATE_PER_S: '20', POPKIT_HUB_KIT_BURST: '40', POPKIT_HUB_KIT_BATCH_MAX: '100' },
  });
  kit = await makeKit(uniqueId('kit'));
  sync = startSync(kit, broker.url);
});

after(async () => {
  if (flooder && flooder.exitCode === null && flooder.signalCode === null) {
    const gone = new Promise((r) => flooder!.once('exit', r));
    flooder.kill('SIGKILL');
    await gone;
  }
  await sync?.stop();
  await hub?.stop();
  await broker?.stop();
  await kit?.close();
  await dropSchema(schema);
});

test('the token bucket: a burst, then the rate; kits apart', () => {
  let now = 0;
  const b = new KitBuckets(10, 3, () => now);
  assert.deepEqual([b.take('a'), b.take('a'), b.take('a'), b.take('a')], [true, true, true, false]);
  assert.equal(b.take('b'), true, 'another kit has its own bucket');
  now += 100; // one token back at 10/s
  assert.deepEqual([b.take('a'), b.take('a')], [true, false]);
  now += 10_000;
  assert.deepEqual([b.take('a'), b.take('a'), b.take('a'), b.take('a')], [true, true, true, false]);
});

/** honest kit: five cash orders one after the other, each until the hub's verdict is on the kit */
async function honestLatencies(): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const id = await kit.place();
    await waitFor(() => getOrder(kit.store, id)?.syncState === 'settled', 30_000, `honest order ${i}`);
    out.push(Math.round(performance.now() - t0));
  }
  return out;
}

const FLOOD = `
const mqtt = require('mqtt');
const [url, kitId, topic] = process.argv.slice(1);
let sent = 0;
const order = (i) => ({ id: 'F' + process.pid + '-' + i, kitId, eventId: 'default', catalogVersion: 1, totalCents: 100,
  currency: 'EUR', lines: [{ sku: 'TEE', name: 'Tee', qty: 1, unitPriceCents: 100, lineCents: 100 }],
  payment: { method: 'cash' }, createdAt: new Date().toISOString() });
const client = mqtt.connect(url, { clientId: 'flood-' + process.pid });
client.on('connect', async () => {
  // one batch over the entries cap, then one-order batches at 2,000 a second (a hundred times the
  // quota). Paced rather than as fast as the socket takes them: an unpaced flood from a process on a
  // busy 2-core machine outruns the hub's parsing by whatever the scheduler gives it, and what the
  // test then measures is the broker's queue, not the quota.
  const big = Array.from({ length: 150 }, (_, i) => ({ lane: 'orders', id: 'B' + process.pid + '-' + i, order: order('B' + i) }));
  for (const e of big) e.order.id = e.id;
  await client.publishAsync(topic, JSON.stringify({ v: 1, kitId, sentAt: Date.now(), entries: big }), { qos: 1 });
  const t0 = Date.now();
  for (;;) {
    if (sent >= ((Date.now() - t0) / 1000) * 2000) {
      await new Promise((r) => setTimeout(r, 10));
      continue;
    }
    const o = order(sent);
    await client.publishAsync(topic, JSON.stringify({ v: 1, kitId, sentAt: Date.now(), entries: [{ lane: 'orders', id: o.id, order: o }] }), { qos: 0 });
    sent++;
    if (sent % 500 === 0) process.stdout.write(sent + '\\n');
  }
});
`;

test('a flooding kit does not keep an honest kit from being acked', { timeout: 120_000 }, async () => {
  const quiet = await honestLatencies();
  const floodKit = uniqueId('flood');
  let lastSent = 0;
  flooder = spawn(process.execPath, ['-e', FLOOD, broker.url, floodKit, topics.orders(floodKit)], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  flooder.stdout?.on('data', (d: Buffer) => {
    const n = Number(d.toString().trim().split('\n').pop());
    if (n) lastSent = n;
  });
  await waitFor(
    () => (hub.ingest!.stats.refused['quota_rate'] ?? 0) > 200,
    30_000,
    'the flood to hit its quota',
  );
  const flooded = await honestLatencies();
  const sentDuring = lastSent;
  const gone = new Promise((r) => flooder!.once('exit', r));
  flooder.kill('SIGKILL');
  await gone;
  const refused = hub.ingest!.stats.refused;
  const floodRows = (await ledgerOrderIds(schema, floodKit)).rows;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    `honest kit ack latency ms: quiet median ${median(quiet)} max ${Math.max(...quiet)}; ` +
      `under flood median ${median(flooded)} max ${Math.max(...flooded)}. ` +
      `flood: ≥${sentDuring} messages sent, ${floodRows} stored, refused quota_rate ${refused['quota_rate']}, quota_entries ${refused['quota_entries'] ?? 0}`,
  );
  assert.equal(refused['quota_entries'], 1, 'the batch over the entries cap was dropped');
  assert.ok(!(await ledgerOrderIds(schema, floodKit)).ids.some((id) => id.startsWith('B')));
  assert.ok(floodRows < sentDuring, 'most of the flood was dropped before the ledger');
  assert.equal((await ledgerOrderIds(schema, kit.kitId)).rows, 10, 'every honest order is in the ledger');
});

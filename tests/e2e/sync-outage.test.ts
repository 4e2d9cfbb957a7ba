// Outage: the hub's broker goes away while orders keep coming. Checkout is unaffected (every order is
// durable in LMDB), sync shows the link down and the backlog, and once the broker is back the backlog
// drains and the ledger holds exactly the accepted orders.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LANES } from '../../core/contracts/lanes.ts';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  ledgerOrderIds,
  type Mosquitto,
  makeKit,
  mosquitto,
  startHub,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_outage').replace(/-/g, '_');
let broker: Mosquitto;
let hub: HubService;
let kit: TestKit;
let sync: SyncService;

const backlog = () =>
  kit.store.outbox.getKeysCount({ start: [LANES.orders, ''], end: [LANES.orders + 1, ''] });

before(async () => {
  broker = await mosquitto();
  hub = await startHub({ schema, brokerUrl: broker.url });
  kit = await makeKit(uniqueId('kit'));
  sync = startSync(kit, broker.url, { POPKIT_SYNC_BATCH_MAX: '25' });
});

after(async () => {
  await sync?.stop();
  await hub?.stop();
  await broker?.stop();
  await kit?.close();
  await dropSchema(schema);
});

test('orders taken during a broker outage all reach the ledger once it is back', async () => {
  const accepted: string[] = [];
  for (let i = 0; i < 30; i++) accepted.push(await kit.place());
  await waitFor(() => backlog() === 0, 15_000, 'first drain');

  await broker.stop();
  await waitFor(() => readRunStatus(kit.dataDir, 'sync')?.link !== 'up', 10_000, 'link down in status');

  // checkout keeps selling: card and cash, every one durable before it is "201"
  for (let i = 0; i < 150; i++) {
    accepted.push(await kit.place(i % 4 === 0 ? { method: 'token', token: `tok_outage_${i}` } : undefined));
  }
  assert.equal(backlog(), 150);
  await waitFor(
    () => readRunStatus(kit.dataDir, 'sync')?.backlog['orders'] === 150,
    5000,
    'backlog in status',
  );
  assert.equal((await ledgerOrderIds(schema, kit.kitId)).rows, 30);

  await broker.start();
  // orders placed while sync reconnects are part of the drain too
  for (let i = 0; i < 20; i++) accepted.push(await kit.place());
  await waitFor(() => backlog() === 0, 30_000, 'backlog drained after the outage');

  const ledger = await ledgerOrderIds(schema, kit.kitId);
  assert.deepEqual(ledger.ids, [...accepted].sort());
  assert.equal(ledger.rows, accepted.length);
  for (const id of accepted) assert.equal(kit.store.orders.get(id)?.syncState, 'settled');
  const st = readRunStatus(kit.dataDir, 'sync')!;
  assert.ok(st.reconnects >= 1);
});

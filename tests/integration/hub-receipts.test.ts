// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Verdicts after 'forwarded' are kept until the kit receipts them: the gateway is away, the kit is acked
// 'forwarded' and goes offline; the hub settles the order, and that ack is lost (the kit's broker
// session expired while it was away); the hub restarts; when the kit comes back online the hub resends
// the verdict with `confirm`, the kit applies it and sends a receipt, and only then does the hub forget
// it. A receipt claiming another kit is refused.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import pg from 'pg';
import { topics } from '../../core/contracts/hub-wire.ts';
import { getOrder, LANES } from '../../core/store/index.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  type Mosquitto,
  makeKit,
  mosquitto,
  PG_URL,
  startHub,
  startSync,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_receipts').replace(/-/g, '_');
let broker: Mosquitto;
let db: pg.Client;
let kit: TestKit;
let sync: SyncService | undefined;
let hub: HubService | undefined;

before(async () => {
  broker = await mosquitto();
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  kit = await makeKit(uniqueId('kit'));
});

after(async () => {
  await sync?.stop();
  await hub?.stop();
  await broker?.stop();
  await db?.end();
  await kit?.close();
  await dropSchema(schema);
});

const pending = async (id: string) =>
  (await db.query(`SELECT state FROM "${schema}".pending_verdicts WHERE order_id = $1`, [id])).rows as {
    state: string;
  }[];

test('a verdict reached while the kit was away reaches it when it is back, across a hub restart', {
  timeout: 90_000,
}, async () => {
  const dataDir = tmpDir('hub-receipts');
  const gateway = new SandboxGateway();
  gateway.setAvailable(false);
  const env = { POPKIT_HUB_GATEWAY_RETRY_S: '1', POPKIT_HUB_VERDICT_RESEND_S: '3600' };
  hub = await startHub({ schema, dataDir, gateway, brokerUrl: broker.url, env });
  const id = await kit.place({ method: 'token', token: 'tok_while_away' });
  sync = startSync(kit, broker.url);
  await waitFor(() => getOrder(kit.store, id)?.syncState === 'forwarded', 20_000, "the 'forwarded' ack");
  assert.equal(kit.store.outbox.getKeysCount({ start: [LANES.orders, ''], end: [LANES.orders + 1, ''] }), 0);
  await sync.stop();
  sync = undefined;

  // away: the gateway comes back, the hub settles the order and acks into the void
  gateway.setAvailable(true);
  await waitFor(async () => (await pending(id))[0]?.state === 'settled', 20_000, 'the verdict kept');
  // the kit's broker session expired meanwhile (weeks offline): the queued ack is gone
  const wipe = await mqtt.connectAsync(broker.url, { clientId: `popkit-sync-${kit.kitId}`, clean: true });
  await wipe.endAsync();
  await hub.stop();
  hub = await startHub({ schema, dataDir, gateway, brokerUrl: broker.url, env });
  assert.equal(getOrder(kit.store, id)?.syncState, 'forwarded', 'the kit has not heard yet');

  // back online: the status triggers the resend, the kit applies it and receipts it
  sync = startSync(kit, broker.url);
  await waitFor(() => getOrder(kit.store, id)?.syncState === 'settled', 20_000, 'the verdict on the kit');
  await waitFor(async () => (await pending(id)).length === 0, 20_000, 'the receipt to clear it');
  assert.ok(hub.ingest!.stats.receipts >= 1);
  assert.equal(gateway.chargeCount, 1);
});

test('a receipt for another kit is refused and clears nothing', { timeout: 30_000 }, async (t) => {
  await db.query(
    `INSERT INTO "${schema}".pending_verdicts (kit_id, order_id, state) VALUES ('victim-kit', 'o-1', 'settled')`,
  );
  const intruder = await mqtt.connectAsync(broker.url, { clientId: uniqueId('intruder') });
  t.after(() => intruder.endAsync(true));
  const before = hub!.ingest!.stats.refused['kit_mismatch'] ?? 0;
  await intruder.publishAsync(
    topics.receipts(kit.kitId),
    JSON.stringify({ v: 1, kitId: 'victim-kit', orders: ['o-1'] }),
    { qos: 1 },
  );
  await waitFor(() => (hub!.ingest!.stats.refused['kit_mismatch'] ?? 0) > before, 15_000, 'the refusal');
  const rows = await db.query(`SELECT 1 FROM "${schema}".pending_verdicts WHERE kit_id = 'victim-kit'`);
  assert.equal(rows.rowCount, 1);
});

// The embedded default of `popkit up`: the hub on PGlite (same SQL as PostgreSQL) behind the embedded
// broker `popkit up` starts (core/embedded-broker.ts), with the hub probing for shared subscriptions.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import { LANES } from '../../core/contracts/lanes.ts';
import { type EmbeddedBroker, startEmbeddedBroker } from '../../core/embedded-broker.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  makeKit,
  startHub,
  startSync,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

let broker: EmbeddedBroker;
let kit: TestKit;
const hubDir = tmpDir('hub-embedded');

before(async () => {
  broker = await startEmbeddedBroker({ port: 0, dir: tmpDir('hub-broker') });
  kit = await makeKit(uniqueId('kit'));
});

after(async () => {
  await kit?.close();
  await broker?.close();
});

test('orders reach a hub on PGlite behind the embedded broker, and survive the hub restarting on the same data dir', async () => {
  const env = { POPKIT_HUB_SHARED_SUBSCRIPTION: 'auto' };
  let hub: HubService = await startHub({ dataDir: hubDir, brokerUrl: broker.url, databaseUrl: null, env });
  let sync: SyncService | undefined;
  try {
    assert.equal(hub.db?.kind, 'pglite');
    // the embedded broker is a Mosquitto: the probe finds $share support
    assert.equal(hub.ingest?.sharedSubscription, true);
    sync = startSync(kit, broker.url);
    const ids: string[] = [];
    for (let i = 0; i < 15; i++)
      ids.push(await kit.place(i === 3 ? { method: 'token', token: 'tok_decline' } : undefined));
    const drained = () =>
      kit.store.outbox.getKeysCount({ start: [LANES.orders, ''], end: [LANES.orders + 1, ''] }) === 0;
    await waitFor(drained, 20_000, 'drain into the embedded hub');
    assert.equal(kit.store.orders.get(ids[3]!)?.syncState, 'declined');
    await hub.stop();

    // a second start on the same PGlite directory: migrations are already applied, the ledger is there
    hub = await startHub({ dataDir: hubDir, brokerUrl: broker.url, databaseUrl: null, env });
    const res = await fetch(`${hub.httpUrl}/v1/kits/${kit.kitId}/orders`, {
      headers: { authorization: `Bearer ${hub.adminToken}` },
    });
    const body = (await res.json()) as { count: number; orders: { id: string }[] };
    assert.equal(body.count, 15);
    assert.deepEqual(body.orders.map((o) => o.id).sort(), [...ids].sort());
    for (let i = 0; i < 5; i++) ids.push(await kit.place());
    await waitFor(drained, 20_000, 'drain after the hub restart');
    const again = (await hub.ledger!.kitOrders(kit.kitId, { limit: 100 })).count;
    assert.equal(again, 20);
  } finally {
    await sync?.stop();
    await hub.stop();
  }
});

test("with logins, the embedded broker binds a client id to its login: kit A's credentials cannot disconnect kit B", async () => {
  const dir = tmpDir('hub-broker-logins');
  const passwd = path.join(dir, 'passwd');
  execFileSync('mosquitto_passwd', ['-c', '-b', passwd, 'kit-a', 'pass-a']);
  execFileSync('mosquitto_passwd', ['-b', passwd, 'kit-b', 'pass-b']);
  const b2 = await startEmbeddedBroker({
    port: 0,
    dir,
    extraConf: `allow_anonymous false\npassword_file ${passwd}`,
  });
  const opts = { protocolVersion: 5 as const, reconnectPeriod: 0 };
  let kitB: mqtt.MqttClient | undefined;
  try {
    kitB = await mqtt.connectAsync(b2.url, {
      ...opts,
      clientId: 'popkit-sync-kit-b',
      username: 'kit-b',
      password: 'pass-b',
    });
    let dropped = false;
    kitB.on('close', () => {
      dropped = true;
    });
    for (const clientId of ['popkit-sync-kit-b', 'kit-b']) {
      const a = await mqtt.connectAsync(b2.url, { ...opts, clientId, username: 'kit-a', password: 'pass-a' });
      await a.endAsync(true);
    }
    // kit B still has its connection: a message to itself arrives on it
    const got: string[] = [];
    kitB.on('message', (t) => got.push(t));
    kitB.subscribe('x/kit-b', { qos: 1 }, () => kitB?.publish('x/kit-b', 'ping', { qos: 1 }));
    await waitFor(() => got.length > 0 || dropped, 10_000, "kit B's own message");
    assert.equal(dropped, false, "kit A's login took kit B's connection");
  } finally {
    await kitB?.endAsync(true);
    await b2.close();
  }
});

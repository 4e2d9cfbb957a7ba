// A region on a three-node NATS cluster (docs/scaling.md#a-nats-cluster): kits' sync and a hub worker
// speak MQTT 3.1.1 to the nodes' MQTT gateways (JetStream, R3 session and retained-message streams), each
// given the list of the three URLs. One node, the hub's and a kit's, is SIGKILLed while kits place
// orders and started again: every order the kits placed is acknowledged and is in the ledger (real
// PostgreSQL, a schema of its own) once; acks reach kits on every node; the signed catalog (a retained
// message) reaches every kit, a kit that connects after the restart included; a kit's persistent session
// (and what waits in it) survives the death of the node it was made on.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { readStoredCatalog } from '../../core/store/index.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  assertSettledOnceInLedger,
  dropSchema,
  makeKit,
  outboxOrders,
  startHub,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';
import { type NatsCluster, type NatsNode, startNatsCluster } from '../support/nats-cluster.ts';

/** the three node URLs, starting at node `first`: a kit's POPKIT_HUB_URL */
function urlsFrom(cluster: NatsCluster, first: number): string {
  const n = cluster.nodes.length;
  return Array.from({ length: n }, (_, i) => cluster.nodes[(first + i) % n]!.mqttUrl).join(',');
}

const catalog = (version: number) => ({
  version,
  currency: 'EUR',
  items: [
    { sku: 'TEE', name: 'Tour tee', priceCents: 2500, currency: 'EUR', stock: 1_000_000 },
    { sku: 'CAP', name: 'Cap', priceCents: 1500, currency: 'EUR', stock: 1_000_000 },
  ],
});

describe('sync ⇄ hub through a three-node NATS cluster (MQTT 3.1.1 gateways, JetStream R3)', () => {
  const schema = uniqueId('t_nats').replace(/-/g, '_');
  const eventId = uniqueId('ev');
  let cluster: NatsCluster;
  let hub: HubService;
  const kits: TestKit[] = [];
  const syncs: SyncService[] = [];
  let syncExtra: Record<string, string>;

  async function putCatalog(version: number): Promise<void> {
    const res = await fetch(`${hub.httpUrl}/v1/events/${eventId}/catalog`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${hub.adminToken}` },
      body: JSON.stringify(catalog(version)),
    });
    assert.equal(res.status, 200, await res.text());
  }

  before(async () => {
    cluster = await startNatsCluster();
    hub = await startHub({
      schema,
      gateway: new SandboxGateway(),
      // the hub's list starts at node 0: the node the test kills
      brokerUrl: urlsFrom(cluster, 0),
      env: { POPKIT_HUB_MQTT_VERSION: '3.1.1', POPKIT_HUB_SHARED_SUBSCRIPTION: 'auto' },
    });
    syncExtra = {
      POPKIT_HUB_PUBLIC_KEY: fs.readFileSync(hub.publicKeyFile, 'utf8'),
      POPKIT_SYNC_MQTT_VERSION: '3.1.1',
      POPKIT_SYNC_BATCH_MAX: '5',
      POPKIT_EVENT_ID: eventId,
    };
    // kit i starts on node i: one kit per node
    for (let i = 0; i < cluster.nodes.length; i++) {
      const kit = await makeKit(uniqueId(`kit${i}`));
      kits.push(kit);
      syncs.push(startSync(kit, urlsFrom(cluster, i), syncExtra));
    }
  });

  after(async () => {
    for (const s of syncs) await s.stop();
    await hub?.stop();
    await cluster?.stop();
    for (const k of kits) await k.close();
    await dropSchema(schema);
  });

  test('the hub found no $share on NATS and subscribed plainly (one worker)', async () => {
    await waitFor(() => syncs.every((s) => s.connected), 20_000, 'every kit linked');
    // NATS refuses a `$share/…` filter (SUBACK 0x80): the probe says no, the worker subscribes plainly
    assert.equal(hub.ingest?.sharedSubscription, false);
    assert.equal((await fetch(`${hub.httpUrl}/healthz`)).status, 200);
    // each kit is on the node its list starts with
    syncs.forEach((s, i) => {
      assert.equal(s.status().hubUrl, cluster.nodes[i]!.mqttUrl);
    });
  });

  test('a signed catalog (retained) reaches the kit on every node', async () => {
    await putCatalog(2);
    for (const k of kits)
      await waitFor(() => readStoredCatalog(k.store)?.version === 2, 20_000, `catalog 2 on ${k.kitId}`);
  });

  test('a node SIGKILLed and restarted while kits sell: every order acked, in the ledger once', async () => {
    const placed: string[][] = kits.map(() => []);
    const sell = async (rounds: number) => {
      for (let r = 0; r < rounds; r++)
        for (let i = 0; i < kits.length; i++) placed[i]!.push(await kits[i]!.place());
    };
    await sell(10);
    // some of these are in flight when the node dies
    await waitFor(() => kits.some((k) => outboxOrders(k) < 10), 20_000, 'acks flowing');
    await cluster.kill(0);
    await sell(15);
    // kit 0 moved to the next node of its list; the hub reconnected to another node too
    await waitFor(() => syncs[0]!.connected, 30_000, 'kit 0 linked again');
    assert.notEqual(syncs[0]!.status().hubUrl, cluster.nodes[0]!.mqttUrl);
    await sell(10);
    await cluster.restart(0);
    await sell(10);

    for (const [i, k] of kits.entries())
      await waitFor(() => outboxOrders(k) === 0, 90_000, `outbox of kit ${i} drained`);
    await assertSettledOnceInLedger(schema, kits, placed);
  });

  test('after the restart: a new catalog reaches every kit, and a kit new to the restarted node gets it retained', async () => {
    await cluster.waitHealthy();
    await putCatalog(3);
    for (const k of kits)
      await waitFor(() => readStoredCatalog(k.store)?.version === 3, 30_000, `catalog 3 on ${k.kitId}`);
    // a bystander on the restarted node only: the retained catalog comes from the R3 stream
    const late = await mqtt.connectAsync(cluster.nodes[0]!.mqttUrl, {
      protocolVersion: 4,
      clientId: uniqueId('late'),
      clean: true,
    });
    try {
      const got = new Promise<Buffer>((resolve) => late.once('message', (_t, p) => resolve(p)));
      await late.subscribeAsync(`popkit/v1/events/${eventId}/catalog`, { qos: 1 });
      const signed = JSON.parse((await got).toString('utf8')) as { payload: string };
      const inner = JSON.parse(signed.payload) as { eventId: string; version: number };
      assert.equal(inner.eventId, eventId);
      assert.equal(inner.version, 3);
    } finally {
      await late.endAsync();
    }
  });

  test('a persistent MQTT session outlives its node: what was published while the kit was away arrives on another node', async () => {
    const [n0, n1, n2] = cluster.nodes as [NatsNode, NatsNode, NatsNode];
    const clientId = uniqueId('popkit-sync-away');
    const acks = `popkit/v1/kits/${clientId}/acks`;
    const kit = await mqtt.connectAsync(n1.mqttUrl, { protocolVersion: 4, clientId, clean: false });
    await kit.subscribeAsync(acks, { qos: 1 });
    await kit.endAsync();
    const hubSide = await mqtt.connectAsync(n2.mqttUrl, {
      protocolVersion: 4,
      clientId: uniqueId('pub'),
      clean: true,
    });
    await hubSide.publishAsync(acks, 'ack while away', { qos: 1 });
    await hubSide.endAsync();
    // the node the session was made on dies; the kit comes back on the third node
    await cluster.kill(1);
    try {
      // the first attempts may be refused while JetStream elects a new leader for the session stream
      // (the dead node led it): the server closes the connection ("loading session record … timeout");
      // sync retries with its backoff, so does this
      let refused = 0;
      const deadline = Date.now() + 60_000;
      for (;;) {
        const back = mqtt.connect(n0.mqttUrl, {
          protocolVersion: 4,
          clientId,
          clean: false,
          reconnectPeriod: 0,
        });
        const got = new Promise<string>((resolve) =>
          back.once('message', (_t, p) => resolve(p.toString('utf8'))),
        );
        const connack = await new Promise<{ sessionPresent: boolean } | undefined>((resolve) => {
          back.once('connect', resolve);
          back.once('close', () => resolve(undefined));
        });
        if (!connack) {
          back.end(true);
          refused++;
          assert.ok(Date.now() < deadline, `still refused after ${refused} attempts`);
          await new Promise((r) => setTimeout(r, 250));
          continue;
        }
        assert.equal(
          connack.sessionPresent,
          true,
          "the session is the cluster's (R3 stream), not the node's",
        );
        assert.equal(await got, 'ack while away');
        await back.endAsync();
        break;
      }
    } finally {
      await cluster.restart(1);
    }
  });
});

// A JetStream hub worker (POPKIT_HUB_INGEST=jetstream) fed straight on the stream's subjects (a NATS
// client publishing as the gateway would): one kit's batches are committed in the order they were
// published while other kits' go concurrently (POPKIT_HUB_JS_CONCURRENCY=4), and subjects off the kits'
// shape that the stream's wildcard lets in are refused, terminated and leave nothing in the ledger.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import type { BatchT } from '../../core/contracts/hub-wire.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { dropSchema, PG_URL, startHub, uniqueId, waitFor } from '../support/hub-link.ts';
import { type NatsCluster, startNatsCluster } from '../support/nats-cluster.ts';

function batch(kitId: string, orderId: string): string {
  const b: BatchT = {
    v: 1,
    kitId,
    sentAt: Date.now(),
    entries: [
      {
        lane: 'orders',
        id: orderId,
        order: {
          id: orderId,
          kitId,
          eventId: 'ev-order',
          catalogVersion: 1,
          totalCents: 2500,
          currency: 'EUR',
          lines: [{ sku: 'TEE', name: 'Tour tee', qty: 1, unitPriceCents: 2500, lineCents: 2500 }],
          payment: { method: 'cash' },
          createdAt: new Date().toISOString(),
          status: 'accepted',
        },
      },
    ],
  };
  return JSON.stringify(b);
}

describe('a JetStream hub worker: per-kit order, hostile subjects', () => {
  const schema = uniqueId('t_jsorder').replace(/-/g, '_');
  const stream = uniqueId('KITS').replace(/-/g, '_');
  const consumer = uniqueId('hub');
  let cluster: NatsCluster;
  let nc: NatsConnection;
  let hub: HubService;
  let db: pg.Client;

  before(async () => {
    cluster = await startNatsCluster();
    nc = await connect({ servers: cluster.nodes.map((n) => n.natsUrl), maxReconnectAttempts: -1 });
    hub = await startHub({
      schema,
      gateway: new SandboxGateway(),
      brokerUrl: cluster.nodes.map((n) => n.mqttUrl).join(','),
      env: {
        POPKIT_HUB_INGEST: 'jetstream',
        POPKIT_HUB_MQTT_VERSION: '3.1.1',
        POPKIT_HUB_NATS_URL: cluster.nodes.map((n) => n.natsUrl).join(','),
        POPKIT_HUB_JS_STREAM: stream,
        POPKIT_HUB_JS_CONSUMER: consumer,
        POPKIT_HUB_JS_CONCURRENCY: '4',
      },
    });
    db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
  });

  after(async () => {
    await hub?.stop();
    await nc?.close();
    await cluster?.stop();
    await db?.end();
    await dropSchema(schema);
  });

  async function drained(): Promise<boolean> {
    const c = await (await jetstreamManager(nc)).consumers.info(stream, consumer);
    return c.num_pending === 0 && c.num_ack_pending === 0;
  }

  test("one kit's batches are committed in the order published, other kits' alongside", async () => {
    const kits = [uniqueId('ka'), uniqueId('kb'), uniqueId('kc')];
    const published: Record<string, string[]> = Object.fromEntries(kits.map((k) => [k, []]));
    const n = 40;
    for (let i = 0; i < n; i++)
      for (const k of kits) {
        const id = `${k}-${String(i).padStart(3, '0')}`;
        published[k]!.push(id);
        nc.publish(`popkit.v1.kits.${k}.orders`, batch(k, id));
      }
    await nc.flush();
    await waitFor(
      async () => {
        const r = await db.query(`SELECT count(*)::int AS n FROM "${schema}".orders`);
        return r.rows[0].n === n * kits.length;
      },
      30_000,
      'every batch committed',
    );
    await waitFor(drained, 10_000, 'the consumer drained');
    for (const k of kits) {
      // each batch its own transaction: received_at (the transaction's start) orders the commits
      const r = await db.query<{ order_id: string }>(
        `SELECT order_id FROM "${schema}".orders WHERE kit_id = $1 ORDER BY received_at, order_id`,
        [k],
      );
      assert.deepEqual(
        r.rows.map((x) => x.order_id),
        published[k],
        `${k}: committed in the order published`,
      );
    }
  });

  test('subjects off the kits’ shape are refused and terminated; the ledger is untouched', async () => {
    const refusedBefore = hub.ingest!.stats.refused['subject'] ?? 0;
    const terminatedBefore = hub.jetstream!.stats.terminated;
    const rowsBefore = (await db.query(`SELECT count(*)::int AS n FROM "${schema}".orders`)).rows[0].n;
    // each is a kit id the stream's `*` matches but no valid kit has
    const hostile = ['__proto__', '-x', '_k', 'a/b', '/', 'a///b', `k${'x'.repeat(64)}`];
    for (const token of hostile) nc.publish(`popkit.v1.kits.${token}.orders`, batch('k1', uniqueId('o')));
    await nc.flush();
    await waitFor(
      () => (hub.ingest!.stats.refused['subject'] ?? 0) === refusedBefore + hostile.length,
      20_000,
      'every hostile subject refused',
    );
    assert.equal(hub.jetstream!.stats.terminated, terminatedBefore + hostile.length);
    await waitFor(drained, 10_000, 'nothing left on the consumer (terminated, not redelivered)');
    const rows = (await db.query(`SELECT count(*)::int AS n FROM "${schema}".orders`)).rows[0].n;
    assert.equal(rows, rowsBefore);
  });
});

// Hub workers on a three-node NATS cluster consuming the kits' batches from a replicated JetStream work
// queue (POPKIT_HUB_INGEST=jetstream, docs/scaling.md#a-nats-cluster). The kits are unchanged: sync
// speaks MQTT 3.1.1 to the nodes' gateways, one kit per node. Three workers share one durable pull
// consumer: C (a `popkit hub` process) alone first, SIGKILLed mid-batch (its commit held behind a table
// lock, the messages it took unacked); A and B (in this process) start while kits sell and a node is
// killed and restarted: C's messages come again to them after ack_wait, and the ledger (real PostgreSQL)
// equals the acknowledged orders, each once; acks reach the kits on every node; a catalog reaches every
// kit; a card check over the gateway is answered by exactly one worker (a queue group).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import mqtt from 'mqtt';
import pg from 'pg';
import { topics } from '../../core/contracts/hub-wire.ts';
import { hubDataLayout } from '../../core/data-dir.ts';
import { readStoredCatalog } from '../../core/store/index.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  assertSettledOnceInLedger,
  dropSchema,
  freePort,
  hubProcessEnv,
  makeKit,
  outboxOrders,
  PG_URL,
  REPO,
  startHub,
  startSync,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';
import { type NatsCluster, startNatsCluster } from '../support/nats-cluster.ts';

/** the node URLs of one kind, starting at node `first` */
function urlsFrom(cluster: NatsCluster, first: number, kind: 'mqttUrl' | 'natsUrl'): string {
  const n = cluster.nodes.length;
  return Array.from({ length: n }, (_, i) => cluster.nodes[(first + i) % n]![kind]).join(',');
}

const catalog = (version: number) => ({
  version,
  currency: 'EUR',
  items: [{ sku: 'TEE', name: 'Tour tee', priceCents: 2500, currency: 'EUR', stock: 1_000_000 }],
});

describe('hub workers on a JetStream work queue (three-node NATS cluster, kits on MQTT 3.1.1)', () => {
  const schema = uniqueId('t_natsjs').replace(/-/g, '_');
  const eventId = uniqueId('ev');
  const stream = uniqueId('KITS').replace(/-/g, '_');
  const consumer = uniqueId('hub');
  const group = uniqueId('g');
  let cluster: NatsCluster;
  let nc: NatsConnection;
  let workerC: ChildProcess;
  let workerCPort = 0;
  let workerCOut = '';
  /** the workers' data dir: one hub's keys (deploy/hub gives its workers one volume) */
  let dataDir = '';
  const hubs: HubService[] = [];
  const kits: TestKit[] = [];
  const syncs: SyncService[] = [];

  const workerEnv = (first: number): Record<string, string> => ({
    POPKIT_HUB_INGEST: 'jetstream',
    POPKIT_HUB_MQTT_VERSION: '3.1.1',
    POPKIT_HUB_NATS_URL: urlsFrom(cluster, first, 'natsUrl'),
    POPKIT_HUB_JS_STREAM: stream,
    POPKIT_HUB_JS_CONSUMER: consumer,
    POPKIT_HUB_JS_ACK_WAIT_S: '3',
    POPKIT_HUB_JS_CONCURRENCY: '4',
    POPKIT_HUB_SHARE_GROUP: group,
  });

  async function putCatalog(httpUrl: string, token: string, version: number): Promise<void> {
    const res = await fetch(`${httpUrl}/v1/events/${eventId}/catalog`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(catalog(version)),
    });
    assert.equal(res.status, 200, await res.text());
  }

  async function consumerInfo() {
    const jsm = await jetstreamManager(nc);
    return jsm.consumers.info(stream, consumer);
  }

  before(async () => {
    cluster = await startNatsCluster();
    nc = await connect({ servers: urlsFrom(cluster, 1, 'natsUrl').split(','), maxReconnectAttempts: -1 });
    // worker C: a `popkit hub` process, the first worker; it creates the stream and the consumer
    workerCPort = await freePort();
    dataDir = tmpDir('js-hub-c');
    workerC = spawn(process.execPath, [path.join(REPO, 'bin/popkit.js'), 'hub'], {
      env: {
        ...process.env,
        POPKIT_LOG_LEVEL: 'warn',
        ...hubProcessEnv({
          dataDir,
          brokerUrl: urlsFrom(cluster, 2, 'mqttUrl'),
          schema,
          port: workerCPort,
          workerId: uniqueId('wc'),
        }),
        ...workerEnv(2),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (d: Buffer) => {
      workerCOut = (workerCOut + d).slice(-20_000);
    };
    workerC.stdout?.on('data', keep);
    workerC.stderr?.on('data', keep);
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${workerCPort}/healthz`).catch(() => null))?.ok,
      60_000,
      'worker C',
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${workerCOut}`);
    });
    // the kits check catalogs against the hub's key: every worker of a hub has the same one (deploy/hub
    // shares the data volume); worker C's, read from its data dir
    const publicKey = fs.readFileSync(hubDataLayout(dataDir).signingPub, 'utf8');
    const syncExtra = {
      POPKIT_HUB_PUBLIC_KEY: publicKey,
      POPKIT_SYNC_MQTT_VERSION: '3.1.1',
      POPKIT_SYNC_BATCH_MAX: '5',
      POPKIT_EVENT_ID: eventId,
    };
    for (let i = 0; i < cluster.nodes.length; i++) {
      const kit = await makeKit(uniqueId(`kit${i}`));
      kits.push(kit);
      syncs.push(startSync(kit, urlsFrom(cluster, i, 'mqttUrl'), syncExtra));
    }
  });

  after(async () => {
    for (const s of syncs) await s.stop();
    for (const h of hubs) await h.stop();
    if (workerC && workerC.exitCode === null && workerC.signalCode === null) {
      const gone = new Promise((r) => workerC.once('exit', r));
      workerC.kill('SIGKILL');
      await gone;
    }
    await nc?.close();
    await cluster?.stop();
    for (const k of kits) await k.close();
    await dropSchema(schema);
  });

  test('the first worker made an R3 work-queue stream and one durable pull consumer', async () => {
    await waitFor(() => syncs.every((s) => s.connected), 30_000, 'every kit linked');
    const jsm = await jetstreamManager(nc);
    const s = await jsm.streams.info(stream);
    assert.equal(s.config.retention, 'workqueue');
    assert.equal(s.config.num_replicas, 3);
    assert.deepEqual(s.config.subjects, [
      'popkit.v1.kits.*.orders',
      'popkit.v1.kits.*.telemetry',
      'popkit.v1.kits.*.receipts',
    ]);
    const c = await consumerInfo();
    assert.equal(c.config.durable_name, consumer);
    assert.equal(c.config.ack_policy, 'explicit');
    assert.equal(c.config.deliver_subject, undefined, 'a pull consumer');
  });

  test('a worker SIGKILLed holding messages, a node killed and restarted while kits sell: every order acked, in the ledger once', async () => {
    const placed: string[][] = kits.map(() => []);
    const sell = async (rounds: number) => {
      for (let r = 0; r < rounds; r++)
        for (let i = 0; i < kits.length; i++) placed[i]!.push(await kits[i]!.place());
    };
    await sell(5);
    await waitFor(() => kits.every((k) => outboxOrders(k) === 0), 30_000, 'worker C acking');
    // C mid-batch: its commits wait behind a lock on the ledger's orders table, so what the kits sell
    // now is taken by C (the only worker) and held unacked; C is SIGKILLed there, then the lock goes
    let heldByC = 0;
    const locker = new pg.Client({ connectionString: PG_URL });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE "${schema}".orders IN ACCESS EXCLUSIVE MODE`);
      await sell(2);
      const held = await waitFor(
        async () => {
          const waiting = await locker.query(
            `SELECT 1 FROM pg_locks WHERE relation = '"${schema}".orders'::regclass AND NOT granted`,
          );
          const c = await consumerInfo();
          return waiting.rowCount && c.num_ack_pending > 0 ? c.num_ack_pending : 0;
        },
        20_000,
        'worker C committing behind the lock, holding messages unacked',
      );
      assert.ok(held > 0);
      heldByC = held;
      const cGone = new Promise((r) => workerC.once('exit', r));
      workerC.kill('SIGKILL');
      await cGone;
    } finally {
      await locker.query('COMMIT').catch(() => undefined);
      await locker.end();
    }
    // A and B join; node 0 dies while the kits sell
    for (let w = 0; w < 2; w++)
      hubs.push(
        await startHub({
          schema,
          gateway: new SandboxGateway(),
          brokerUrl: urlsFrom(cluster, w, 'mqttUrl'),
          dataDir,
          env: { ...workerEnv(w), POPKIT_HUB_WORKER_ID: uniqueId(`w${w}`) },
        }),
      );
    // what C held comes again, to A or B, after ack_wait (before a node dies: a consumer leader elected
    // anew may count deliveries afresh)
    const redelivered = () => hubs.reduce((n, h) => n + h.jetstream!.stats.redelivered, 0);
    await waitFor(() => redelivered() >= heldByC, 30_000, `the ${heldByC} messages C held redelivered`);
    await sell(3);
    await cluster.kill(0);
    await sell(5);
    await waitFor(() => syncs[0]!.connected, 30_000, 'kit 0 linked again');
    await sell(3);
    await cluster.restart(0);
    await sell(3);

    for (const [i, k] of kits.entries())
      await waitFor(() => outboxOrders(k) === 0, 90_000, `outbox of kit ${i} drained`);
    await assertSettledOnceInLedger(schema, kits, placed);
    assert.ok(
      hubs.every((h) => h.jetstream!.stats.acked > 0),
      'both live workers took messages from the shared consumer',
    );
    const c = await consumerInfo();
    assert.equal(c.num_ack_pending, 0);
    assert.equal(c.num_pending, 0);
  });

  test('after the restart: a new catalog reaches the kit on every node', async () => {
    await cluster.waitHealthy();
    await putCatalog(hubs[1]!.httpUrl, hubs[1]!.adminToken, 3);
    for (const k of kits)
      await waitFor(() => readStoredCatalog(k.store)?.version === 3, 30_000, `catalog 3 on ${k.kitId}`);
  });

  test('a card check over the gateway is answered once, by one worker of the queue group', async () => {
    const kitId = uniqueId('kit-auth');
    const raw = await mqtt.connectAsync(cluster.nodes[2]!.mqttUrl, {
      protocolVersion: 4,
      clientId: uniqueId('auth'),
      clean: true,
    });
    try {
      const answers: { requestId: string; correlation?: string }[] = [];
      raw.on('message', (_t, p) => answers.push(JSON.parse(String(p))));
      await raw.subscribeAsync(topics.authorizations(kitId), { qos: 0 });
      const before = hubs.map((h) => h.authorize!.stats.requests);
      const n = 6;
      for (let i = 0; i < n; i++) {
        const req = {
          reply: { topic: topics.authorizations(kitId), correlation: `c${i}` },
          v: 1,
          kitId,
          requestId: `r${i}-${kitId}`.slice(0, 64),
          orderId: uniqueId('o'),
          token: 'tok_ok',
          amountCents: 2500,
          currency: 'EUR',
          deadline: Date.now() + 30_000,
        };
        await raw.publishAsync(topics.authorize(kitId), JSON.stringify(req), { qos: 0 });
      }
      await waitFor(() => answers.length >= n, 20_000, 'every check answered');
      // a moment for a second answer to arrive, were a check heard by both workers
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(answers.length, n, 'each check answered once');
      assert.deepEqual(answers.map((a) => a.correlation).sort(), ['c0', 'c1', 'c2', 'c3', 'c4', 'c5']);
      const heard = hubs.reduce((s, h, i) => s + h.authorize!.stats.requests - before[i]!, 0);
      assert.equal(heard, n, 'each check heard by one worker');
    } finally {
      await raw.endAsync();
    }
  });
});

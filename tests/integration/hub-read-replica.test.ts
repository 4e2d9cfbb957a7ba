// The hub's reads on a streaming replica (POPKIT_HUB_READ_DATABASE_URL, docs/scaling.md#a-read-replica).
// Real parts: a PostgreSQL primary and a replica streaming from it, both this test's own
// (tests/support/pg-cluster.ts: initdb, pg_basebackup -R, pg_ctl), a private Mosquitto, a kit (real
// LMDB, checkout's OrderService) whose sync drains its orders into the hub by the real ingest.
// Two hub workers of one hub: `hub` bounds the replica's lag at an hour, `strict` at half a second.
// With the replica's replay paused, `hub`'s read endpoints answer the old counts while the primary
// holds the new orders (so the reads really come from the replica) and the ingest still acks (it
// never reads there); `strict` sees the replica lagging and answers from the primary. With the replica
// stopped, both answer from the primary and say so in /healthz and /metrics; restarted, the replica
// serves again. Hostile configuration is refused with CONFIG_INVALID before the hub writes anything.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { LANES, scanOutbox } from '../../core/store/index.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { replicaUnavailable } from '../../services/hub/read-replica.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  type Mosquitto,
  makeKit,
  mosquitto,
  REPO,
  startHub,
  startSync,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';
import { type PgReplicaPair, pgReplicaPair, runAsClusterOwner } from '../support/pg-cluster.ts';

const schema = 'popkit_replica';
const group = uniqueId('g-replica');
let pair: PgReplicaPair;
let broker: Mosquitto;
let hub: HubService;
let strict: HubService;
let kit: TestKit;
let sync: SyncService;

type KitOrders = { count: number; orders: { id: string }[] };
type Units = { skus: { sku: string; units: number }[] };
type Fleet = { kits: { kitId: string; orders: number }[] };
type Health = {
  ok: boolean;
  status: string;
  readReplica?: { state: string; lagS: number | null; behindBytes: number | null; replayPaused: boolean };
};

async function get<T>(h: HubService, path: string): Promise<T> {
  const res = await fetch(`${h.httpUrl}${path}`, { headers: { authorization: `Bearer ${h.adminToken}` } });
  assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
  return (await res.json()) as T;
}

/** what the hub's read endpoints say of the kit: its orders, its line in the fleet, units sold, the report */
async function views(h: HubService) {
  const orders = await get<KitOrders>(h, `/v1/kits/${kit.kitId}/orders`);
  const fleet = await get<Fleet>(h, '/v1/kits');
  const units = await get<Units>(h, '/v1/events/default/units');
  const report = await get<{ totals: { orders: number } }>(h, '/v1/events/default/report');
  return {
    orders: orders.count,
    fleet: fleet.kits.find((k) => k.kitId === kit.kitId)?.orders ?? 0,
    units: units.skus.reduce((s, x) => s + x.units, 0),
    report: report.totals.orders,
  };
}

/** the orders and units the primary holds for the kit, read there directly */
async function onPrimary() {
  const [o] = await pair.primary.sql<{ n: string }>(
    `SELECT count(*) AS n FROM ${schema}.orders WHERE kit_id = $1`,
    [kit.kitId],
  );
  return Number(o?.n);
}

async function health(h: HubService): Promise<{ code: number; body: Health }> {
  const res = await fetch(`${h.httpUrl}/healthz`, { headers: { authorization: `Bearer ${h.adminToken}` } });
  return { code: res.status, body: (await res.json()) as Health };
}

function replicaOf(b: Health) {
  assert.ok(b.readReplica, 'the details name the read replica');
  return b.readReplica;
}

async function metric(h: HubService, line: string): Promise<number | undefined> {
  const text = await (await fetch(`${h.httpUrl}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

const outboxOrders = () => [...scanOutbox(kit.store)].filter((e) => e.key[0] === LANES.orders).length;

/** sell n orders and wait until the hub acked every one (committed on the primary) */
async function sellAndSync(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await kit.place();
  await waitFor(() => outboxOrders() === 0, 30_000, 'orders acked by the hub');
}

const worker = (maxLagS: string) =>
  startHub({
    brokerUrl: broker.url,
    databaseUrl: pair.primary.url,
    schema,
    env: {
      POPKIT_HUB_READ_DATABASE_URL: pair.replica.url,
      POPKIT_HUB_READ_MAX_LAG_S: maxLagS,
      // two workers of one hub: they share the kits' batches
      POPKIT_HUB_SHARE_GROUP: group,
    },
  });

describe('hub reads on a streaming replica', () => {
  before(async () => {
    pair = await pgReplicaPair();
    broker = await mosquitto();
    hub = await worker('3600');
    strict = await worker('0.5');
    kit = await makeKit(uniqueId('kit-replica'));
    sync = startSync(kit, broker.url);
  });

  after(async () => {
    await sync?.stop();
    await strict?.stop();
    await hub?.stop();
    await broker?.stop();
    await kit?.close();
    await pair?.close();
  });

  test('the read endpoints answer from the replica once the orders are replicated', async () => {
    await sellAndSync(3);
    assert.equal(await onPrimary(), 3);
    const before = hub.readReplica!.stats.replica;
    const seen = await waitFor(async () => {
      const v = await views(hub);
      return v.orders === 3 ? v : undefined;
    });
    assert.deepEqual(seen, { orders: 3, fleet: 3, units: seen.units, report: 3 });
    assert.ok(seen.units >= 3);
    assert.ok(hub.readReplica!.stats.replica > before, 'the replica answered');
    const h = await health(hub);
    assert.equal(h.code, 200);
    assert.equal(replicaOf(h.body).state, 'ok');
    assert.equal(h.body.status, 'ok');
  });

  test('replay paused: the reads lag behind the primary (they come from the replica), the ingest goes on', async () => {
    const was = await waitFor(async () => {
      const v = await views(hub);
      return v.orders === 3 ? v : undefined;
    });
    await pair.pauseReplay();
    // the ingest and its acks never wait for the replica: these are acked while its replay stands
    await sellAndSync(2);
    assert.equal(await onPrimary(), 5);
    const down = hub.readReplica!.stats.primaryDown;
    const lagging = hub.readReplica!.stats.primaryLagging;
    assert.deepEqual(await views(hub), was, 'every read view still shows the replica’s old state');
    assert.equal(hub.readReplica!.stats.primaryDown, down);
    assert.equal(hub.readReplica!.stats.primaryLagging, lagging);
    // the lag is measured and shown
    const paused = await waitFor(async () => {
      const r = replicaOf((await health(hub)).body);
      return r.replayPaused && (r.behindBytes ?? 0) > 0 && (r.lagS ?? 0) > 0 ? r : undefined;
    });
    assert.equal(paused.state, 'ok', 'within the hour hub allows');
    assert.ok(((await metric(hub, 'popkit_hub_read_replica_lag_seconds')) ?? 0) > 0);
    assert.ok(((await metric(hub, 'popkit_hub_read_replica_behind_bytes')) ?? 0) > 0);
    // the strict worker's bound is passed: it reads from the primary, and says why
    await waitFor(
      async () => replicaOf((await health(strict)).body).state === 'lagging',
      20_000,
      'strict: lagging',
    );
    const strictLagging = strict.readReplica!.stats.primaryLagging;
    const fresh = await views(strict);
    assert.equal(fresh.orders, 5);
    assert.equal(fresh.fleet, 5);
    assert.equal(fresh.report, 5);
    assert.ok(strict.readReplica!.stats.primaryLagging >= strictLagging + 4);
    assert.ok(
      ((await metric(strict, 'popkit_hub_reads_total{served_by="primary_replica_lagging"}')) ?? 0) >= 4,
    );
    const sh = await health(strict);
    assert.equal(sh.code, 200, 'a lagging replica does not take the worker out of service');
    assert.equal(sh.body.status, 'degraded');

    await pair.resumeReplay();
    const caught = await waitFor(async () => {
      const v = await views(hub);
      return v.orders === 5 ? v : undefined;
    });
    assert.equal(caught.report, 5);
    await waitFor(
      async () => replicaOf((await health(strict)).body).state === 'ok',
      20_000,
      'strict: ok again',
    );
    // the replica's state is sampled once a second: the sample after the resume says so
    await waitFor(
      async () => replicaOf((await health(hub)).body).replayPaused === false,
      20_000,
      'replay no longer paused in /healthz',
    );
  });

  test('replica down: the reads go to the primary, logged in /healthz and /metrics; back when it is', async () => {
    await pair.replica.stop();
    await sellAndSync(1);
    assert.equal(await onPrimary(), 6);
    // only the primary holds the sixth order: these answers cannot come from anywhere else
    const v = await views(hub);
    assert.deepEqual({ ...v, units: 0 }, { orders: 6, fleet: 6, units: 0, report: 6 });
    assert.ok(hub.readReplica!.stats.primaryDown >= 4);
    const h = await health(hub);
    assert.equal(h.code, 200, 'a replica down does not take the worker out of service');
    assert.equal(h.body.ok, true);
    assert.equal(h.body.status, 'degraded');
    assert.equal(replicaOf(h.body).state, 'down');
    assert.equal(await metric(hub, 'popkit_hub_read_replica_up'), 0);
    assert.ok(((await metric(hub, 'popkit_hub_reads_total{served_by="primary_replica_down"}')) ?? 0) >= 4);

    // a worker that starts while the replica is down starts all the same, and reads from the primary
    const late = await worker('10');
    try {
      assert.equal(replicaOf((await health(late)).body).state, 'down');
      assert.equal((await views(late)).orders, 6);
      assert.ok(late.readReplica!.stats.primaryDown >= 4);
      assert.equal(late.readReplica!.stats.replica, 0);
    } finally {
      await late.stop();
    }

    await pair.replica.start();
    await waitFor(async () => replicaOf((await health(hub)).body).state === 'ok', 30_000, 'replica back');
    const served = hub.readReplica!.stats.replica;
    const back = await waitFor(async () => {
      const x = await views(hub);
      return x.orders === 6 ? x : undefined;
    });
    assert.equal(back.fleet, 6);
    assert.ok(hub.readReplica!.stats.replica > served, 'the replica answers again');
    assert.equal(await metric(hub, 'popkit_hub_read_replica_up'), 1);
  });

  test("which of the replica's errors send a read to the primary, on the replica's real errors", async () => {
    const caught = (p: Promise<unknown>) =>
      p.then(
        () => assert.fail('no error'),
        (err: unknown) => err,
      );
    // a statement error is the statement's: the primary would fail it the same, it is thrown
    assert.equal(replicaUnavailable(await caught(pair.replica.sql('SELEC 1'))), false);
    assert.equal(replicaUnavailable(await caught(pair.replica.sql('SELECT 1/0'))), false);
    // the replica is read-only: a write sent there is a bug, not the replica's state
    assert.equal(replicaUnavailable(await caught(pair.replica.sql('CREATE TABLE x (a int)'))), false);
    // canceled (statement_timeout): that read alone goes to the primary
    const c = new pg.Client({ connectionString: pair.replica.url });
    await c.connect();
    try {
      await c.query('SET statement_timeout = 50');
      assert.equal(replicaUnavailable(await caught(c.query('SELECT pg_sleep(5)'))), 'failed');
    } finally {
      await c.end();
    }
    // nobody listening, or the server going away: down
    const closed = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:1/postgres' });
    assert.equal(replicaUnavailable(await caught(closed.connect())), 'down');
    const victim = new pg.Client({ connectionString: pair.replica.url });
    await victim.connect();
    victim.on('error', () => undefined);
    const [{ pid }] = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows as [
      { pid: number },
    ];
    await pair.replica.sql('SELECT pg_terminate_backend($1)', [pid]);
    assert.equal(replicaUnavailable(await caught(victim.query('SELECT 1'))), 'down');
    await victim.end().catch(() => undefined);
  });

  test("deploy/hub/postgres-replication.sh gives a primary the replica's role and pg_hba line", async () => {
    const base = path.dirname(pair.primary.dir);
    const script = path.join(REPO, 'deploy/hub/postgres-replication.sh');
    // the environment the postgres image runs its init scripts with (docker-compose.replica.yml)
    const env = {
      POSTGRES_USER: 'postgres',
      POSTGRES_DB: 'postgres',
      POSTGRES_REPLICATION_PASSWORD: 'a-replication-secret',
      PGDATA: pair.primary.dir,
      PGHOST: '127.0.0.1',
      PGPORT: String(pair.primary.port),
    };
    await runAsClusterOwner(script, [], env, base);
    await pair.primary.sql('SELECT pg_reload_conf()');
    const role = await pair.primary.sql<{ rolreplication: boolean; rolcanlogin: boolean }>(
      "SELECT rolreplication, rolcanlogin FROM pg_roles WHERE rolname = 'replicator'",
    );
    assert.deepEqual(role, [{ rolreplication: true, rolcanlogin: true }]);
    const hba = await pair.primary.sql<{ database: string[]; auth_method: string; error: string | null }>(
      "SELECT database, auth_method, error FROM pg_hba_file_rules WHERE 'replicator' = ANY(user_name)",
    );
    assert.deepEqual(hba, [{ database: ['replication'], auth_method: 'scram-sha-256', error: null }]);
    // the replica's first step in the compose file, as that role: a standby copy
    const copy = path.join(base, 'copy');
    await runAsClusterOwner(
      'pg_basebackup',
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(pair.primary.port),
        '-U',
        'replicator',
        '-D',
        copy,
        '-R',
        '-X',
        'stream',
        '-c',
        'fast',
        '--no-sync',
      ],
      { PGPASSWORD: env.POSTGRES_REPLICATION_PASSWORD },
      base,
    );
    assert.ok(fs.existsSync(path.join(copy, 'standby.signal')));
    assert.match(
      fs.readFileSync(path.join(copy, 'postgresql.auto.conf'), 'utf8'),
      /primary_conninfo = '.*user=replicator/,
    );
    // a second run on the same primary fails loudly (the role exists): the image runs it once
    await assert.rejects(runAsClusterOwner(script, [], env, base), /already exists/);
  });
});

describe('hostile read-replica configuration', () => {
  const refused = async (env: Record<string, string>, databaseUrl?: string | null) => {
    const dataDir = tmpDir('hub-replica-cfg');
    await assert.rejects(
      startHub({ dataDir, brokerUrl: 'mqtt://127.0.0.1:1', schema: 'popkit_cfg', databaseUrl, env }),
      (err: { code?: string; message?: string }) => {
        assert.equal(err.code, 'CONFIG_INVALID', err.message);
        return true;
      },
    );
    // refused before the hub wrote anything: no key, no database
    assert.deepEqual(fs.readdirSync(dataDir), []);
  };

  test('a URL of another scheme', () => refused({ POPKIT_HUB_READ_DATABASE_URL: 'mysql://replica/test' }));
  test('a URL that does not parse', () =>
    refused({ POPKIT_HUB_READ_DATABASE_URL: 'postgres://postgres@[127.0.0.1:5432/test' }));
  test('a port out of range', () =>
    refused({ POPKIT_HUB_READ_DATABASE_URL: 'postgres://postgres@127.0.0.1:99999/test' }));
  test('a replica of the embedded PGlite', () =>
    refused({ POPKIT_HUB_READ_DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test' }, null));
  test('a lag bound that is not a positive number', async () => {
    await refused({ POPKIT_HUB_READ_MAX_LAG_S: '0' });
    await refused({ POPKIT_HUB_READ_MAX_LAG_S: 'soon' });
  });
});

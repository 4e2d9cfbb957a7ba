// The hub's GET /healthz answers 503 when it has lost its broker or its database, and 200 again once
// they are back. Real parts: a private Mosquitto (stopped and restarted on its port), PostgreSQL
// reached as a role of this test's own, whose login is revoked and its backends terminated.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { HubService } from '../../services/hub/hub-service.ts';
import { type Mosquitto, mosquitto, PG_URL, startHub, uniqueId, waitFor } from '../support/hub-link.ts';

const role = uniqueId('hubhealth').replace(/-/g, '_');
const schema = `${role}_s`;
let broker: Mosquitto;
let hub: HubService;

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function health(): Promise<{ status: number; body: { status: string; db: string; broker: string } }> {
  const res = await fetch(`${hub.httpUrl}/healthz`);
  return { status: res.status, body: (await res.json()) as { status: string; db: string; broker: string } };
}

/** /healthz once it answers 503 (fails after 20 s). */
function degraded(what: string) {
  return waitFor(
    async () => {
      const h = await health();
      return h.status === 503 ? h : undefined;
    },
    20_000,
    `healthz 503 after ${what}`,
  );
}

before(async () => {
  await admin(async (c) => {
    await c.query(`CREATE ROLE ${role} LOGIN`);
    await c.query(`CREATE SCHEMA ${schema} AUTHORIZATION ${role}`);
    // the hub runs CREATE SCHEMA IF NOT EXISTS at start, which asks for this privilege
    await c.query(`GRANT CREATE ON DATABASE ${c.database} TO ${role}`);
  });
  const url = new URL(PG_URL);
  url.username = role;
  broker = await mosquitto();
  hub = await startHub({ brokerUrl: broker.url, databaseUrl: url.toString(), schema });
});

after(async () => {
  await hub?.stop();
  await broker?.close();
  await admin(async (c) => {
    await c.query(`ALTER ROLE ${role} LOGIN`);
    await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role]);
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.query(`REVOKE CREATE ON DATABASE ${c.database} FROM ${role}`);
    await c.query(`DROP ROLE IF EXISTS ${role}`);
  });
});

test('healthy: 200 with db and broker ok', async () => {
  const h = await health();
  assert.equal(h.status, 200, JSON.stringify(h.body));
  assert.deepEqual(h.body, { status: 'ok', db: 'ok', broker: 'ok' });
});

test('the broker gone: 503 broker down; back once the broker is', { timeout: 60_000 }, async () => {
  await broker.stop();
  const down = await degraded('the broker stopped');
  assert.equal(down.body.status, 'degraded');
  assert.equal(down.body.broker, 'down');
  assert.equal(down.body.db, 'ok');
  await broker.start();
  await waitFor(async () => (await health()).status === 200, 30_000, 'healthz 200 after the broker is back');
});

test('the database gone: 503 db down; back once it is', { timeout: 60_000 }, async () => {
  // no new connection for the hub's role, and the ones it holds are cut
  await admin(async (c) => {
    await c.query(`ALTER ROLE ${role} NOLOGIN`);
    await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role]);
  });
  const down = await degraded('the database was revoked');
  assert.equal(down.body.status, 'degraded');
  assert.match(down.body.db, /^down: /);
  assert.equal(down.body.broker, 'ok');
  await admin((c) => c.query(`ALTER ROLE ${role} LOGIN`));
  await waitFor(
    async () => (await health()).status === 200,
    30_000,
    'healthz 200 after the database is back',
  );
});

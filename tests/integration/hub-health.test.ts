// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// The hub's GET /healthz answers 503 when it has lost its broker or its database, and 200 again once
// they are back. Public, it says only `{ok}`; what is down and why (a database error's text) needs the
// admin token. GET /v1/gateway needs the admin token and asks the gateway once per 30 s whatever the
// number of requests. Real parts: a private Mosquitto (stopped and restarted on its port), PostgreSQL
// reached as a role of this test's own, whose login is revoked and its backends terminated.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import Fastify from 'fastify';
import pg from 'pg';
import { errorEnvelopePlugin } from '../../core/http-errors.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { GATEWAY_CHECK_CACHE_MS, gatewayRoutes } from '../../services/hub/routes/gateway.ts';
import { type Mosquitto, mosquitto, PG_URL, startHub, uniqueId, waitFor } from '../support/hub-link.ts';

const role = uniqueId('hubhealth').replace(/-/g, '_');
const schema = `${role}_s`;
let broker: Mosquitto;
let hub: HubService;
const gateway = new SandboxGateway();

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

type Details = { ok: boolean; status: string; db: string; broker: string };

/** /healthz with the admin token: the details */
async function health(): Promise<{ status: number; body: Details }> {
  const res = await fetch(`${hub.httpUrl}/healthz`, {
    headers: { authorization: `Bearer ${hub.adminToken}` },
  });
  return { status: res.status, body: (await res.json()) as Details };
}

/** /healthz as anyone sees it: the status code and `{ok}`, nothing else */
async function publicHealth(): Promise<{ status: number; text: string }> {
  const res = await fetch(`${hub.httpUrl}/healthz`);
  return { status: res.status, text: await res.text() };
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
  hub = await startHub({ brokerUrl: broker.url, databaseUrl: url.toString(), schema, gateway });
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
  assert.deepEqual(h.body, { ok: true, status: 'ok', db: 'ok', broker: 'ok', heldTokenKey: 'ok' });
  assert.deepEqual(await publicHealth(), { status: 200, text: '{"ok":true}' });
  const wrong = await fetch(`${hub.httpUrl}/healthz`, {
    headers: { authorization: 'Bearer wrong-token-0123456789' },
  });
  assert.equal(wrong.status, 401);
  assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
});

test('GET /v1/gateway: admin only, and one gateway call for many requests', async () => {
  const before = gateway.exchangeCalls;
  for (const headers of [{}, { authorization: 'Bearer not-the-admin-token-at-all' }] as Record<
    string,
    string
  >[]) {
    const res = await fetch(`${hub.httpUrl}/v1/gateway`, { headers });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
  }
  assert.equal(gateway.exchangeCalls, before, 'an unauthenticated request reached the gateway');
  const get = async () => {
    const res = await fetch(`${hub.httpUrl}/v1/gateway`, {
      headers: { authorization: `Bearer ${hub.adminToken}` },
    });
    assert.equal(res.status, 200);
    return (await res.json()) as {
      name: string;
      sandbox: boolean;
      ok: boolean;
      latencyMs: number;
      checkedAt: string;
    };
  };
  // 20 at once, then 20 one after another
  const answers = await Promise.all(Array.from({ length: 20 }, get));
  for (let i = 0; i < 20; i++) answers.push(await get());
  const calls = gateway.exchangeCalls - before;
  console.log(`GET /v1/gateway: 40 requests, ${calls} gateway call(s)`);
  assert.equal(calls, 1);
  assert.equal(new Set(answers.map((a) => a.checkedAt)).size, 1);
  assert.deepEqual(
    { name: answers[0]?.name, sandbox: answers[0]?.sandbox, ok: answers[0]?.ok },
    { name: 'sandbox', sandbox: true, ok: true },
  );
});

test('the broker gone: 503 broker down; back once the broker is', { timeout: 60_000 }, async () => {
  await broker.stop();
  const down = await degraded('the broker stopped');
  assert.equal(down.body.status, 'degraded');
  assert.equal(down.body.broker, 'down');
  assert.equal(down.body.db, 'ok');
  assert.deepEqual(await publicHealth(), { status: 503, text: '{"ok":false}' });
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
  // the database's error text (role names, hosts) only behind the token
  assert.deepEqual(await publicHealth(), { status: 503, text: '{"ok":false}' });
  await admin((c) => c.query(`ALTER ROLE ${role} LOGIN`));
  await waitFor(
    async () => (await health()).status === 200,
    30_000,
    'healthz 200 after the database is back',
  );
});

test('GET /v1/gateway asks the gateway again once its answer is 30 s old (clock injected)', async () => {
  const gw = new SandboxGateway();
  let t = Date.UTC(2026, 0, 1);
  const app = Fastify();
  await app.register(errorEnvelopePlugin);
  await app.register(gatewayRoutes, { gateway: gw, adminToken: 'a'.repeat(32), now: () => t });
  try {
    const get = async () =>
      (
        await app.inject({ url: '/v1/gateway', headers: { authorization: `Bearer ${'a'.repeat(32)}` } })
      ).json() as {
        ok: boolean;
        checkedAt: string;
      };
    const first = await get();
    t += GATEWAY_CHECK_CACHE_MS - 1;
    assert.equal((await get()).checkedAt, first.checkedAt);
    assert.equal(gw.exchangeCalls, 1);
    t += 1;
    assert.notEqual((await get()).checkedAt, first.checkedAt);
    assert.equal(gw.exchangeCalls, 2);
    // the gateway down: the answer says so (and is cached like any other)
    gw.setAvailable(false);
    t += GATEWAY_CHECK_CACHE_MS;
    const down = await get();
    assert.equal(down.ok, false);
    assert.equal(gw.exchangeCalls, 3);
  } finally {
    await app.close();
  }
});

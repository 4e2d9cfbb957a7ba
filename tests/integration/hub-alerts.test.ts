// The hub's alerts end to end (docs/alerts.md) on real PostgreSQL and a private Mosquitto: kits speak
// to the hub as sync does (retained status with a last will, batches on their topics), the hub's own
// evaluator (every second here) raises one alert per condition, delivers it on the MQTT alerts topic
// and to a real local webhook server that checks the HMAC signature of every attempt, resolves it when
// the condition clears; a person acknowledges it once. The webhook's deliveries are retried from the
// database and survive a hub restart.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import pg from 'pg';
import { ClockTrust } from '../../core/clock-trust.ts';
import { BaseConfig, composeConfig, loadConfig } from '../../core/config.ts';
import {
  ALERT_WEBHOOK_HEADERS,
  type AlertKind,
  type AlertMessageT,
  type AlertT,
  alertSignatureValid,
  alertWire,
} from '../../core/contracts/alerts.ts';
import { type KitStatusT, topics } from '../../core/contracts/hub-wire.ts';
import { HubAlerts } from '../../services/hub/alerts.ts';
import { openPglite, openPostgres, type SqlDb } from '../../services/hub/db.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { migrate } from '../../services/hub/migrations.ts';
import { SyncConfig } from '../../services/sync/config.ts';
import { LaneKeeper } from '../../services/sync/lanes.ts';
import { laneLimitsFrom, syncOptionsFrom } from '../../services/sync/main.ts';
import { SyncService } from '../../services/sync/sync-service.ts';
import { CLOCK_OPTS, FakeClock } from '../support/drops-clock.ts';
import {
  dropSchema,
  type Mosquitto,
  makeKit,
  mosquitto,
  PG_URL,
  startHub,
  syncEnv,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_alerts').replace(/-/g, '_');
const SECRET = 'alert-webhook-secret-for-tests-0123456789';
const dataDir = tmpDir('hub-alerts');
let broker: Mosquitto;
let hub: HubService;
let watcher: mqtt.MqttClient;
const mqttSeen: AlertMessageT[] = [];
const mqttMalformed: string[] = [];

// ---------------------------------------------------------------- the operator's webhook

interface Received {
  delivery: string;
  change: string;
  signatureOk: boolean;
  msg: AlertMessageT | undefined;
  status: number;
}
const received: Received[] = [];
/** answer 503 to every request while set (the receiver is down) */
let webhookDown = false;
let server: http.Server;
let webhookUrl = '';

function startWebhook(): Promise<void> {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const ts = String(req.headers[ALERT_WEBHOOK_HEADERS.timestamp] ?? '');
      const sig = String(req.headers[ALERT_WEBHOOK_HEADERS.signature] ?? '');
      // what a receiver checks: the HMAC over timestamp and raw body, and a recent timestamp
      const fresh = Math.abs(Date.now() / 1000 - Number(ts)) < 300;
      const signatureOk = fresh && alertSignatureValid(SECRET, ts, body, sig);
      const msg = alertWire.message.parse(body);
      const status = webhookDown ? 503 : signatureOk && msg ? 204 : 401;
      received.push({
        delivery: String(req.headers[ALERT_WEBHOOK_HEADERS.delivery] ?? ''),
        change: String(req.headers[ALERT_WEBHOOK_HEADERS.change] ?? ''),
        signatureOk,
        msg,
        status,
      });
      res.statusCode = status;
      res.end();
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      webhookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/popkit`;
      resolve();
    }),
  );
}

const hubEnv = () => ({
  POPKIT_HUB_ALERT_INTERVAL_S: '1',
  POPKIT_HUB_ALERT_SILENT_S: '2',
  POPKIT_HUB_ALERT_BATTERY_PCT: '10',
  POPKIT_HUB_ALERT_BACKLOG_AGE_S: '3600',
  POPKIT_HUB_ALERT_SPIKE_WINDOW_S: '4',
  POPKIT_HUB_ALERT_DECLINES: '3',
  POPKIT_HUB_ALERT_REJECTS: '2',
  POPKIT_HUB_ALERT_DROP_WINDOW_S: '600',
  POPKIT_HUB_ALERT_WEBHOOK_URL: webhookUrl,
  POPKIT_HUB_ALERT_WEBHOOK_SECRET: SECRET,
  POPKIT_HUB_ALERT_WEBHOOK_BACKOFF_MS: '50',
  POPKIT_HUB_ALERT_WEBHOOK_ATTEMPTS: '100',
});

before(async () => {
  await startWebhook();
  broker = await mosquitto();
  hub = await startHub({
    schema,
    dataDir,
    gateway: new SandboxGateway(),
    brokerUrl: broker.url,
    env: hubEnv(),
  });
  watcher = mqtt.connect(broker.url, { reconnectPeriod: 200 });
  await new Promise<void>((r) => watcher.once('connect', () => r()));
  watcher.on('message', (_t, payload) => {
    const m = alertWire.message.parse(payload);
    if (m) mqttSeen.push(m);
    else mqttMalformed.push(payload.toString('utf8').slice(0, 200));
  });
  await watcher.subscribeAsync(topics.alerts, { qos: 1 });
});

after(async () => {
  watcher?.end(true);
  await hub?.stop();
  await broker?.stop();
  await new Promise((r) => server?.close(r));
  await dropSchema(schema);
});

// ---------------------------------------------------------------- a kit, as sync speaks to the hub

interface FakeKit {
  kitId: string;
  client: mqtt.MqttClient;
  status(s: Partial<KitStatusT>): Promise<void>;
  batch(topic: 'orders' | 'telemetry', entries: unknown[]): Promise<void>;
  /** the connection drops without a goodbye: the broker publishes the last will */
  vanish(): void;
}

async function kitOnBroker(kitId = uniqueId('kit')): Promise<FakeKit> {
  const will = { v: 1, kitId, online: false, at: Date.now() } satisfies KitStatusT;
  const client = mqtt.connect(broker.url, {
    clientId: `kit-${kitId}`,
    reconnectPeriod: 0,
    will: { topic: topics.status(kitId), payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
  });
  await new Promise<void>((r, j) => {
    client.once('connect', () => r());
    client.once('error', j);
  });
  return {
    kitId,
    client,
    async status(s) {
      const body: KitStatusT = { v: 1, kitId, online: true, at: Date.now(), ...s };
      await client.publishAsync(topics.status(kitId), JSON.stringify(body), { qos: 1, retain: true });
    },
    async batch(topic, entries) {
      const t = topic === 'orders' ? topics.orders(kitId) : topics.telemetry(kitId);
      await client.publishAsync(t, JSON.stringify({ v: 1, kitId, sentAt: Date.now(), entries }), { qos: 1 });
    },
    vanish() {
      client.stream.destroy();
      client.end(true);
    },
  };
}

function tokenOrder(kitId: string, id: string, token: string, totalCents = 2500) {
  return {
    lane: 'orders',
    id,
    order: {
      id,
      kitId,
      eventId: 'ev-alerts',
      catalogVersion: 1,
      totalCents,
      currency: 'EUR',
      lines: [{ sku: 'TEE', name: 'Tour tee', qty: 1, unitPriceCents: 2500, lineCents: 2500 }],
      payment: { method: 'token', tokenHint: '4242' },
      createdAt: new Date().toISOString(),
    },
    token,
  };
}

// ---------------------------------------------------------------- the hub API

async function api(
  path: string,
  init: { method?: string; body?: unknown; rawBody?: string; token?: string | null } = {},
) {
  const headers: Record<string, string> = {};
  if (init.token !== null) headers['authorization'] = `Bearer ${init.token ?? hub.adminToken}`;
  if (init.body !== undefined || init.rawBody !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${hub.httpUrl}${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.rawBody !== undefined
      ? { body: init.rawBody }
      : init.body !== undefined
        ? { body: JSON.stringify(init.body) }
        : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function alertsOf(kitId: string, kind?: AlertKind): Promise<AlertT[]> {
  const r = await api(`/v1/alerts?kitId=${kitId}${kind ? `&kind=${kind}` : ''}`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json['alerts'] as AlertT[];
}

const waitAlert = (kitId: string, kind: AlertKind, pred: (a: AlertT) => boolean, what: string) =>
  waitFor(async () => (await alertsOf(kitId, kind)).find(pred), 20_000, what);

const viaMqtt = (id: string, change: string) =>
  waitFor(
    () => mqttSeen.find((m) => m.alert.id === id && m.change === change),
    10_000,
    `MQTT ${change} ${id}`,
  );
const viaWebhook = (id: string, change: string) =>
  waitFor(
    () => received.find((r) => r.status === 204 && r.msg?.alert.id === id && r.msg.change === change),
    10_000,
    `webhook ${change} ${id}`,
  );

/** at least `n` further evaluations by the hub (its loop runs every second) */
async function evaluations(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const before = hub.alerts!.lastFacts;
    await waitFor(() => hub.alerts!.lastFacts !== before, 10_000, 'an evaluation');
  }
}

// ---------------------------------------------------------------- the conditions

test('a kit silent during a live event raises one alert (MQTT and signed webhook); back → resolved', {
  timeout: 60_000,
}, async () => {
  const kit = await kitOnBroker();
  await kit.status({ eventId: 'ev-live', state: 'live' });
  await waitFor(async () => (await api('/v1/kits')).json['kits'], 10_000);
  kit.vanish();
  const raised = await waitAlert(kit.kitId, 'kit_silent', (a) => a.state === 'open', 'kit_silent raised');
  assert.equal(raised.eventId, 'ev-live', 'the last will kept the event the kit was live at');
  assert.equal(raised.detail['online'], false);
  assert.ok(Number(raised.detail['silentS']) >= 2);
  await viaMqtt(raised.id, 'raised');
  const hook = await viaWebhook(raised.id, 'raised');
  assert.equal(hook.signatureOk, true);
  assert.equal(hook.change, 'raised');
  // the condition holds over several evaluations: still one alert
  await evaluations(3);
  assert.equal((await alertsOf(kit.kitId, 'kit_silent')).length, 1);
  assert.equal(mqttSeen.filter((m) => m.alert.kitId === kit.kitId && m.change === 'raised').length, 1);

  // back: status again while live, every half second as sync does more often
  const back = await kitOnBroker(kit.kitId);
  const beat = setInterval(
    () => void back.status({ eventId: 'ev-live', state: 'live' }).catch(() => {}),
    500,
  );
  try {
    const resolved = await waitAlert(kit.kitId, 'kit_silent', (a) => a.state === 'resolved', 'resolved');
    assert.equal(resolved.id, raised.id);
    assert.ok(resolved.resolvedAt);
    await viaMqtt(raised.id, 'resolved');
    await viaWebhook(raised.id, 'resolved');
    await evaluations(2);
    assert.deepEqual(
      (await alertsOf(kit.kitId, 'kit_silent')).map((a) => a.state),
      ['resolved'],
      'a kit heard from keeps no silent alert',
    );
  } finally {
    clearInterval(beat);
    await back.status({ eventId: 'ev-live', state: 'ready' });
    back.client.end(true);
  }
  assert.deepEqual(mqttMalformed, []);
  assert.ok(
    received.every((r) => r.signatureOk),
    'every webhook attempt was signed',
  );
});

test('battery critical from the retained status and from kitd power policy in the health lane', {
  timeout: 60_000,
}, async () => {
  const kit = await kitOnBroker();
  await kit.status({
    eventId: 'ev-alerts',
    state: 'ready',
    battery: { socPct: 7, stale: false, device: 'ups' },
  });
  const a = await waitAlert(kit.kitId, 'battery_critical', (x) => x.state === 'open', 'battery raised');
  assert.equal(a.detail['socPct'], 7);
  await viaWebhook(a.id, 'raised');
  // a stale reading says nothing: with it the condition is gone
  await kit.status({ eventId: 'ev-alerts', state: 'ready', battery: { socPct: 7, stale: true } });
  await waitAlert(kit.kitId, 'battery_critical', (x) => x.id === a.id && x.state === 'resolved', 'resolved');

  // kitd's policy at critical, through the health lane as sync sends it
  await kit.batch('telemetry', [
    {
      lane: 'health',
      id: uniqueId('h'),
      at: Date.now(),
      body: { services: { kitd: { powerPolicy: { level: 'critical' } } } },
    },
  ]);
  const b = await waitAlert(kit.kitId, 'battery_critical', (x) => x.state === 'open', 'policy raised');
  assert.notEqual(b.id, a.id);
  assert.equal(b.detail['powerLevel'], 'critical');
  await kit.batch('telemetry', [
    {
      lane: 'health',
      id: uniqueId('h'),
      at: Date.now() + 1,
      body: { services: { kitd: { powerPolicy: { level: 'normal' } } } },
    },
  ]);
  await waitAlert(kit.kitId, 'battery_critical', (x) => x.id === b.id && x.state === 'resolved', 'resolved');
  kit.client.end(true);
});

test('orders backlog older than the unsynced-age limit', { timeout: 60_000 }, async () => {
  const kit = await kitOnBroker();
  await kit.status({ eventId: 'ev-alerts', backlog: { orders: 4 }, oldestAgeMs: { orders: 2 * 3600_000 } });
  const a = await waitAlert(kit.kitId, 'backlog_age', (x) => x.state === 'open', 'backlog raised');
  assert.ok(Number(a.detail['oldestAgeS']) >= 7200);
  assert.equal(a.detail['thresholdS'], 3600);
  await viaMqtt(a.id, 'raised');
  // younger than the limit: nothing
  await kit.status({ eventId: 'ev-alerts', backlog: { orders: 4 }, oldestAgeMs: { orders: 60_000 } });
  await waitAlert(kit.kitId, 'backlog_age', (x) => x.id === a.id && x.state === 'resolved', 'resolved');
  await evaluations(2);
  assert.equal((await alertsOf(kit.kitId, 'backlog_age')).length, 1);
  kit.client.end(true);
});

test('a spike of declined orders and of rejected orders, each cleared when the window passes', {
  timeout: 60_000,
}, async () => {
  const kit = await kitOnBroker();
  await kit.status({ eventId: 'ev-alerts', state: 'ready' });
  // two declines: under the threshold of 3
  await kit.batch(
    'orders',
    [1, 2].map((i) => tokenOrder(kit.kitId, `d-${i}`, `tok_decline_${i}`)),
  );
  await waitFor(async () => hub.alerts!.lastFacts.find((f) => f.kitId === kit.kitId && f.declined === 2));
  await evaluations(1);
  assert.deepEqual(await alertsOf(kit.kitId, 'decline_spike'), []);
  await kit.batch('orders', [
    tokenOrder(kit.kitId, 'd-3', 'tok_decline_3'),
    tokenOrder(kit.kitId, 'ok-1', 'tok_ok'),
  ]);
  const d = await waitAlert(kit.kitId, 'decline_spike', (x) => x.state === 'open', 'decline spike');
  assert.equal(d.detail['declined'], 3);
  await viaWebhook(d.id, 'raised');

  // rejected: wrong totals go to the dead letters
  await kit.batch('orders', [
    tokenOrder(kit.kitId, 'bad-1', 'tok_ok', 1),
    tokenOrder(kit.kitId, 'bad-2', 'tok_ok', 2),
  ]);
  const r = await waitAlert(kit.kitId, 'reject_spike', (x) => x.state === 'open', 'reject spike');
  assert.equal(r.detail['rejected'], 2);
  await viaMqtt(r.id, 'raised');
  // the window (4 s) passes with nothing new: both resolve
  await waitAlert(
    kit.kitId,
    'decline_spike',
    (x) => x.id === d.id && x.state === 'resolved',
    'decline resolved',
  );
  await waitAlert(
    kit.kitId,
    'reject_spike',
    (x) => x.id === r.id && x.state === 'resolved',
    'reject resolved',
  );
  kit.client.end(true);
});

test("a kit's clock untrusted while a drop of its event opens", { timeout: 60_000 }, async () => {
  const eventId = uniqueId('ev-drop');
  const opens = new Date(Date.now() + 120_000);
  const put = await api(`/v1/events/${eventId}/catalog`, {
    method: 'PUT',
    body: {
      currency: 'EUR',
      items: [
        {
          sku: 'DROP',
          name: 'Drop tee',
          priceCents: 4000,
          currency: 'EUR',
          stock: 100,
          saleWindow: {
            startsAt: opens.toISOString(),
            endsAt: new Date(opens.getTime() + 3600_000).toISOString(),
          },
        },
      ],
    },
  });
  assert.ok(put.status < 300, JSON.stringify(put.json));
  const kit = await kitOnBroker();
  // trusted: nothing
  await kit.status({ eventId, state: 'ready', clock: { trusted: true, source: 'ntp' } });
  await waitFor(() => hub.alerts!.lastFacts.find((f) => f.kitId === kit.kitId && f.clockTrusted === true));
  await evaluations(1);
  assert.deepEqual(await alertsOf(kit.kitId, 'clock_untrusted'), []);
  const f = hub.alerts!.lastFacts.find((x) => x.kitId === kit.kitId)!;
  assert.equal(f.dropOpensAt, opens.toISOString());
  // the clock loses its trust (a jump) two minutes before the drop
  await kit.status({ eventId, state: 'ready', clock: { trusted: false, reason: 'clock_jumped' } });
  const a = await waitAlert(kit.kitId, 'clock_untrusted', (x) => x.state === 'open', 'clock alert');
  assert.equal(a.eventId, eventId);
  assert.equal(a.detail['reason'], 'clock_jumped');
  assert.equal(a.detail['opensAt'], opens.toISOString());
  await viaMqtt(a.id, 'raised');
  // a kit of another event without a drop, untrusted: nothing
  const other = await kitOnBroker();
  await other.status({
    eventId: 'ev-alerts',
    state: 'ready',
    clock: { trusted: false, reason: 'never_set' },
  });
  await waitFor(() => hub.alerts!.lastFacts.find((x) => x.kitId === other.kitId && x.clockTrusted === false));
  await evaluations(1);
  assert.deepEqual(await alertsOf(other.kitId, 'clock_untrusted'), []);
  // staff vouch for the clock: resolved
  await kit.status({ eventId, state: 'ready', clock: { trusted: true, source: 'override' } });
  await waitAlert(kit.kitId, 'clock_untrusted', (x) => x.id === a.id && x.state === 'resolved', 'resolved');
  kit.client.end(true);
  other.client.end(true);
});

test("a real sync reports the kit's clock trust: untrusted at a drop raises, staff vouching resolves", {
  timeout: 60_000,
}, async () => {
  const eventId = uniqueId('ev-sync-drop');
  const opens = new Date(Date.now() + 300_000);
  const put = await api(`/v1/events/${eventId}/catalog`, {
    method: 'PUT',
    body: {
      currency: 'EUR',
      items: [
        {
          sku: 'DROP',
          name: 'Drop tee',
          priceCents: 4000,
          currency: 'EUR',
          stock: 100,
          saleWindow: {
            startsAt: opens.toISOString(),
            endsAt: new Date(opens.getTime() + 60_000).toISOString(),
          },
        },
      ],
    },
  });
  assert.ok(put.status < 300, JSON.stringify(put.json));
  const kit = await makeKit(uniqueId('kit'));
  const clock = new FakeClock();
  const cfg = loadConfig(
    composeConfig(BaseConfig, SyncConfig),
    syncEnv(kit, broker.url, { POPKIT_EVENT_ID: eventId }),
  );
  const sync = new SyncService(kit.store, kit.vault, new LaneKeeper(kit.store, laneLimitsFrom(cfg)), {
    ...syncOptionsFrom(cfg, kit.kitId, kit.dataDir),
    statusIntervalMs: 100,
    clock,
  });
  sync.start();
  try {
    // checkout has recorded no trust this boot: sync says never_set
    const a = await waitAlert(kit.kitId, 'clock_untrusted', (x) => x.state === 'open', 'clock alert');
    assert.equal(a.eventId, eventId);
    assert.equal(a.detail['reason'], 'never_set');
    assert.equal(a.detail['opensAt'], opens.toISOString());
    // staff vouch for the clock through checkout's own clock trust, on the kit's store
    await new ClockTrust(kit.store, clock, CLOCK_OPTS).override('manager');
    await waitAlert(kit.kitId, 'clock_untrusted', (x) => x.id === a.id && x.state === 'resolved', 'resolved');
    const row = ((await api('/v1/kits')).json['kits'] as { kitId: string }[]).find(
      (k) => k.kitId === kit.kitId,
    );
    assert.ok(row);
  } finally {
    await sync.stop();
    await kit.close();
  }
});

test('the evaluator runs the same SQL on embedded PGlite', { timeout: 60_000 }, async () => {
  const db = await openPglite(tmpDir('alerts-pglite'), 'popkit');
  try {
    await migrate(db);
    const status = {
      v: 1,
      kitId: 'k1',
      online: true,
      at: 1,
      eventId: 'ev-p',
      state: 'live',
      clock: { trusted: false, reason: 'never_set' },
    };
    await db.query(
      "INSERT INTO kits (kit_id, online, status, last_seen) VALUES ('k1', true, $1::jsonb, now() - interval '1 hour')",
      [JSON.stringify(status)],
    );
    const payload = JSON.stringify({
      v: 1,
      eventId: 'ev-p',
      version: 1,
      issuedAt: new Date().toISOString(),
      catalog: {
        version: 1,
        eventId: 'ev-p',
        items: [{ sku: 'A', saleWindow: { startsAt: new Date(Date.now() + 60_000).toISOString() } }],
      },
    });
    await db.query("INSERT INTO catalogs (event_id, version, signed) VALUES ('ev-p', 1, $1::jsonb)", [
      JSON.stringify({ v: 1, alg: 'ed25519', payload, sig: 'x' }),
    ]);
    const published: string[] = [];
    const worker = new HubAlerts(db, {
      intervalMs: 1000,
      thresholds: hub.alerts!.thresholds,
      publish: async (p) => {
        published.push(p);
      },
    });
    const out = await worker.evaluate();
    assert.equal(out.evaluated, true);
    assert.deepEqual(out.raised.map((x) => x.kind).sort(), ['clock_untrusted', 'kit_silent']);
    await worker.deliverDue();
    assert.deepEqual(
      published.map((p) => alertWire.message.parse(p)?.change),
      ['raised', 'raised'],
    );
    assert.equal((await worker.evaluate()).raised.length, 0, 'one alert per condition');
    const acked = await worker.ack(out.raised[0]!.id, 'Ana');
    assert.equal(acked.ackedBy, 'Ana');
    await assert.rejects(worker.ack(out.raised[0]!.id, 'Bo'), { code: 'CONFLICT' });
    await worker.stop();
  } finally {
    await db.close();
  }
});

// ---------------------------------------------------------------- the API

test('ack: once by a person, delivered; a second ack is 409; hostile inputs change nothing', {
  timeout: 60_000,
}, async () => {
  const kit = await kitOnBroker();
  await kit.status({ eventId: 'ev-alerts', battery: { socPct: 3, stale: false } });
  const a = await waitAlert(kit.kitId, 'battery_critical', (x) => x.state === 'open', 'raised');
  const listed = await api(`/v1/alerts?state=open&eventId=ev-alerts&kitId=${kit.kitId}`);
  assert.deepEqual(
    (listed.json['alerts'] as AlertT[]).map((x) => x.id),
    [a.id],
  );

  const ack = await api(`/v1/alerts/${a.id}/ack`, { method: 'POST', body: { by: 'Ana Ruiz' } });
  assert.equal(ack.status, 200, JSON.stringify(ack.json));
  const acked = ack.json['alert'] as AlertT;
  assert.equal(acked.state, 'acked');
  assert.equal(acked.ackedBy, 'Ana Ruiz');
  await viaMqtt(a.id, 'acked');
  assert.equal((await viaWebhook(a.id, 'acked')).msg?.alert.ackedBy, 'Ana Ruiz');

  const again = await api(`/v1/alerts/${a.id}/ack`, { method: 'POST', body: { by: 'Bo' } });
  assert.equal(again.status, 409);
  const err = again.json['error'] as { code: string; details: { ackedBy: string } };
  assert.equal(err.code, 'CONFLICT');
  assert.equal(err.details.ackedBy, 'Ana Ruiz');

  const hostile: { path: string; init: Parameters<typeof api>[1]; status: number; code?: string }[] = [
    {
      path: `/v1/alerts/${a.id}/ack`,
      init: { method: 'POST', body: { by: 'Bo' }, token: null },
      status: 401,
    },
    {
      path: `/v1/alerts/${a.id}/ack`,
      init: { method: 'POST', body: { by: 'x' }, token: 'wrong-token-000000' },
      status: 401,
    },
    {
      path: `/v1/alerts/${a.id}/ack`,
      init: { method: 'POST', body: { by: 'Bo\u0000' } },
      status: 400,
      code: 'VALIDATION',
    },
    {
      path: `/v1/alerts/${a.id}/ack`,
      init: { method: 'POST', body: { by: 42 } },
      status: 400,
      code: 'VALIDATION',
    },
    {
      path: `/v1/alerts/${a.id}/ack`,
      init: { method: 'POST', body: { by: '' } },
      status: 400,
      code: 'VALIDATION',
    },
    {
      path: `/v1/alerts/${a.id}/ack`,
      init: { method: 'POST', body: { by: 'x'.repeat(81) } },
      status: 400,
      code: 'VALIDATION',
    },
    {
      path: `/v1/alerts/${a.id}/ack`,
      init: { method: 'POST', body: { by: 'Bo', state: 'open' } },
      status: 400,
      code: 'VALIDATION',
    },
    {
      path: `/v1/alerts/${a.id}/ack`,
      // refused by the JSON parser itself (prototype poisoning), before validation
      init: { method: 'POST', rawBody: '{"by":"Bo","__proto__":{"x":1}}' },
      status: 400,
      code: 'BAD_REQUEST',
    },
    { path: `/v1/alerts/${a.id}/ack`, init: { method: 'POST', rawBody: '{"by":' }, status: 400 },
    {
      path: `/v1/alerts/${a.id}/ack`,
      init: { method: 'POST', rawBody: JSON.stringify({ by: 'x'.repeat(10_000) }) },
      status: 413,
    },
    {
      path: '/v1/alerts/abc/ack',
      init: { method: 'POST', body: { by: 'Bo' } },
      status: 400,
      code: 'VALIDATION',
    },
    {
      path: '/v1/alerts/0/ack',
      init: { method: 'POST', body: { by: 'Bo' } },
      status: 400,
      code: 'VALIDATION',
    },
    {
      path: '/v1/alerts/99999999999999999999/ack',
      init: { method: 'POST', body: { by: 'Bo' } },
      status: 400,
      code: 'VALIDATION',
    },
    {
      path: '/v1/alerts/987654321/ack',
      init: { method: 'POST', body: { by: 'Bo' } },
      status: 404,
      code: 'NOT_FOUND',
    },
    { path: '/v1/alerts?state=bogus', init: {}, status: 400, code: 'VALIDATION' },
    { path: '/v1/alerts?kitId=__proto__', init: {}, status: 400, code: 'VALIDATION' },
    { path: '/v1/alerts?kitId=a%00b', init: {}, status: 400, code: 'VALIDATION' },
    { path: `/v1/alerts?kitId=${'k'.repeat(65)}`, init: {}, status: 400, code: 'VALIDATION' },
    { path: '/v1/alerts?kitId=a&kitId=b', init: {}, status: 400, code: 'VALIDATION' },
    { path: '/v1/alerts?limit=0', init: {}, status: 400, code: 'VALIDATION' },
    { path: '/v1/alerts?limit=1e9', init: {}, status: 400, code: 'VALIDATION' },
    { path: '/v1/alerts?kind=__proto__', init: {}, status: 400, code: 'VALIDATION' },
    { path: '/v1/alerts?since=yesterday', init: {}, status: 400, code: 'VALIDATION' },
    { path: '/v1/alerts', init: { token: null }, status: 401 },
  ];
  for (const h of hostile) {
    const r = await api(h.path, h.init);
    assert.equal(r.status, h.status, `${h.init?.method ?? 'GET'} ${h.path} ${JSON.stringify(h.init)}`);
    if (h.code)
      assert.equal((r.json['error'] as { code: string }).code, h.code, `${h.path} ${JSON.stringify(h.init)}`);
  }
  // nothing changed: acked once, by Ana
  const [now] = await alertsOf(kit.kitId, 'battery_critical');
  assert.equal(now!.state, 'acked');
  assert.equal(now!.ackedBy, 'Ana Ruiz');
  assert.equal(now!.ackedAt, acked.ackedAt);
  assert.equal(mqttSeen.filter((m) => m.alert.id === a.id && m.change === 'acked').length, 1);

  // an acked alert still resolves when its condition clears, and keeps who acked it
  await kit.status({ eventId: 'ev-alerts', battery: { socPct: 80, stale: false } });
  const done = await waitAlert(kit.kitId, 'battery_critical', (x) => x.state === 'resolved', 'resolved');
  assert.equal(done.ackedBy, 'Ana Ruiz');
  const filtered = await api(`/v1/alerts?state=resolved&kitId=${kit.kitId}&kind=battery_critical`);
  assert.deepEqual(
    (filtered.json['alerts'] as AlertT[]).map((x) => x.id),
    [a.id],
  );
  kit.client.end(true);
});

test('two people acknowledging at once: one wins, the other hears 409 naming them', {
  timeout: 60_000,
}, async () => {
  const kit = await kitOnBroker();
  await kit.status({ eventId: 'ev-alerts', battery: { socPct: 4, stale: false } });
  const a = await waitAlert(kit.kitId, 'battery_critical', (x) => x.state === 'open', 'raised');
  const answers = await Promise.all(
    ['Ana', 'Bo', 'Cy', 'Di'].map((by) => api(`/v1/alerts/${a.id}/ack`, { method: 'POST', body: { by } })),
  );
  const won = answers.filter((r) => r.status === 200);
  assert.equal(won.length, 1);
  const winner = (won[0]!.json['alert'] as AlertT).ackedBy;
  for (const r of answers.filter((x) => x.status !== 200)) {
    assert.equal(r.status, 409);
    assert.equal((r.json['error'] as { details: { ackedBy: string } }).details.ackedBy, winner);
  }
  await viaMqtt(a.id, 'acked');
  assert.equal(mqttSeen.filter((m) => m.alert.id === a.id && m.change === 'acked').length, 1);
  await kit.status({ eventId: 'ev-alerts', battery: { socPct: 90, stale: false } });
  await waitAlert(kit.kitId, 'battery_critical', (x) => x.id === a.id && x.state === 'resolved', 'resolved');
  kit.client.end(true);
});

test('a webhook URL without its secret is refused before the hub starts anything', async () => {
  await assert.rejects(
    startHub({
      schema: `${schema}_nosecret`,
      dataDir: tmpDir('hub-alerts-nosecret'),
      brokerUrl: broker.url,
      env: { POPKIT_HUB_ALERT_WEBHOOK_URL: 'https://hooks.example.com/popkit' },
    }),
    { code: 'CONFIG_INVALID' },
  );
});

// ---------------------------------------------------------------- one evaluator, bounded deliveries

test('one worker evaluates: a worker that does not hold the lock changes nothing', {
  timeout: 60_000,
}, async () => {
  const db: SqlDb = await openPostgres(PG_URL, schema, 2);
  const holder = new pg.Client({ connectionString: PG_URL });
  await holder.connect();
  const kit = await kitOnBroker();
  try {
    const second = new HubAlerts(db, { intervalMs: 1000, thresholds: hub.alerts!.thresholds });
    await holder.query('SELECT pg_advisory_lock(727275)');
    // the hub's own loop cannot evaluate either while the lock is held elsewhere
    await kit.status({ eventId: 'ev-alerts', battery: { socPct: 1, stale: false } });
    await waitFor(async () => (await second.facts()).find((f) => f.kitId === kit.kitId && f.socPct === 1));
    const out = await second.evaluate();
    assert.equal(out.evaluated, false);
    await evaluations(2);
    assert.deepEqual(await alertsOf(kit.kitId), []);
    await holder.query('SELECT pg_advisory_unlock(727275)');
    await waitAlert(kit.kitId, 'battery_critical', (x) => x.state === 'open', 'raised after the lock');
    // two evaluators at once: still one alert per condition
    await Promise.all([second.evaluate(), second.evaluate(), hub.alerts!.evaluate()]);
    assert.equal((await alertsOf(kit.kitId, 'battery_critical')).length, 1);
  } finally {
    kit.client.end(true);
    await holder.end();
    await db.close();
  }
});

test('webhook attempts are bounded: given up with the last error kept', { timeout: 60_000 }, async () => {
  // a worker of its own on a ledger of its own, so no other worker takes its deliveries
  const own = `${schema}_bounded`;
  const db: SqlDb = await openPostgres(PG_URL, own, 2);
  const refusing = http.createServer((_req, res) => {
    res.statusCode = 500;
    res.end();
  });
  await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', () => r()));
  try {
    await migrate(db);
    await db.query(`INSERT INTO kits (kit_id, online, status) VALUES ('k1', true, $1::jsonb)`, [
      JSON.stringify({ v: 1, kitId: 'k1', online: true, at: 1, battery: { socPct: 2, stale: false } }),
    ]);
    const worker = new HubAlerts(db, {
      intervalMs: 1000,
      thresholds: hub.alerts!.thresholds,
      webhook: {
        url: `http://127.0.0.1:${(refusing.address() as AddressInfo).port}/`,
        secret: SECRET,
        attempts: 3,
        backoffMs: 10,
        timeoutMs: 2000,
      },
    });
    const out = await worker.evaluate();
    assert.equal(out.evaluated, true);
    assert.deepEqual(
      out.raised.map((a) => a.kind),
      ['battery_critical'],
    );
    const row = await waitFor(
      async () => {
        await worker.deliverDue();
        const r = await db.query<{ attempts: number; gave_up_at: Date | null; last_error: string | null }>(
          'SELECT attempts, gave_up_at, last_error FROM alert_deliveries',
        );
        return r.rows[0]?.gave_up_at ? r.rows : undefined;
      },
      30_000,
      'given up',
    );
    assert.equal(row.length, 1);
    assert.equal(row[0]!.attempts, 3);
    assert.match(row[0]!.last_error ?? '', /webhook answered 500/);
    assert.equal(worker.stats.gaveUp.webhook, 1);
    assert.equal(worker.stats.failed.webhook, 3);
    // given up is final: more passes try nothing
    await worker.deliverDue();
    assert.equal(worker.stats.failed.webhook, 3);
    await worker.stop();

    // a receiver that never answers: the attempt ends at the timeout and counts as a failure
    const silent = http.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      const slow = new HubAlerts(db, {
        intervalMs: 1000,
        thresholds: hub.alerts!.thresholds,
        webhook: {
          url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`,
          secret: SECRET,
          attempts: 1,
          backoffMs: 10,
          timeoutMs: 200,
        },
      });
      await db.query("UPDATE kits SET status = jsonb_set(status, '{battery,socPct}', '50')");
      const cleared = await slow.evaluate();
      assert.deepEqual(
        cleared.resolved.map((a) => a.kind),
        ['battery_critical'],
      );
      await slow.deliverDue();
      const r = await db.query<{ gave_up_at: Date | null; last_error: string | null }>(
        "SELECT gave_up_at, last_error FROM alert_deliveries WHERE change = 'resolved'",
      );
      assert.ok(r.rows[0]?.gave_up_at);
      assert.match(r.rows[0]?.last_error ?? '', /timeout|abort/i);
      await slow.stop();
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  } finally {
    await new Promise((r) => refusing.close(r));
    await db.close();
    await dropSchema(own);
  }
});

test('a webhook that is down is retried with backoff, and the delivery survives a hub restart', {
  timeout: 90_000,
}, async () => {
  const kit = await kitOnBroker();
  webhookDown = true;
  try {
    await kit.status({ eventId: 'ev-alerts', backlog: { orders: 1 }, oldestAgeMs: { orders: 5 * 3600_000 } });
    const a = await waitAlert(kit.kitId, 'backlog_age', (x) => x.state === 'open', 'raised');
    // refused at least twice, each attempt signed, one delivery id throughout
    const tries = await waitFor(() => {
      const t = received.filter((r) => r.msg?.alert.id === a.id && r.change === 'raised');
      return t.length >= 2 ? t : undefined;
    });
    assert.ok(tries.every((t) => t.signatureOk && t.status === 503));
    assert.equal(new Set(tries.map((t) => t.delivery)).size, 1);
    const deliveryId = tries[0]!.delivery;
    await hub.stop();
    const before = received.filter((r) => r.delivery === deliveryId).length;
    webhookDown = false;
    hub = await startHub({
      schema,
      dataDir,
      gateway: new SandboxGateway(),
      brokerUrl: broker.url,
      env: hubEnv(),
    });
    const ok = await waitFor(
      () => received.find((r) => r.delivery === deliveryId && r.status === 204),
      20_000,
      'delivered after the restart',
    );
    assert.equal(ok.signatureOk, true);
    assert.equal(ok.msg?.alert.id, a.id);
    assert.ok(received.filter((r) => r.delivery === deliveryId).length > before);
    const db = await openPostgres(PG_URL, schema, 1);
    try {
      const r = await db.query<{ attempts: number; delivered_at: Date | null; last_error: string | null }>(
        'SELECT attempts, delivered_at, last_error FROM alert_deliveries WHERE id = $1',
        [deliveryId],
      );
      assert.ok(r.rows[0]!.delivered_at);
      assert.equal(r.rows[0]!.last_error, null);
      assert.equal(r.rows[0]!.attempts, received.filter((x) => x.delivery === deliveryId).length);
    } finally {
      await db.close();
    }
    // one alert throughout: the restarted hub found it open and raised nothing new
    assert.equal((await alertsOf(kit.kitId, 'backlog_age')).length, 1);
  } finally {
    webhookDown = false;
    kit.client.end(true);
  }
});

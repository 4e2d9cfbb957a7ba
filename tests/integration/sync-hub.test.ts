// Kit → hub → kit through a private real Mosquitto into real PostgreSQL (a schema of its own): orders land in the
// ledger once, acks come back and clear the outbox, declines flow back, redelivery and replay change
// nothing, a kit cannot speak for another, and catalogs are signed, verified and written to LMDB.
// Every test runs once per MQTT version of the hub link (5, and 3.1.1 for a region whose broker speaks
// nothing newer): the broker's log shows which one the kit and the hub really spoke.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { signCatalog } from '../../core/catalog-signing.ts';
import { topics } from '../../core/contracts/hub-wire.ts';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { readRiskCounters, readStoredCatalog } from '../../core/store/index.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { loadOrCreateSigningKey } from '../../services/hub/keys.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  brokerConnections,
  dropSchema,
  ledgerOrderIds,
  type Mosquitto,
  MQTT_VERSIONS,
  makeKit,
  mosquitto,
  mqttEnv,
  outboxOrders,
  startHub,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

/** one cash order of whatever the kit sells now (the catalog test replaces the catalog) */
async function placeAny(k: TestKit): Promise<string> {
  const sku = readStoredCatalog(k.store)?.items[0]?.sku ?? 'TEE';
  return (await k.orders.create({ lines: [{ sku, qty: 1 }], payment: { method: 'cash' } }, undefined)).order
    .id;
}

for (const mqttVersion of MQTT_VERSIONS)
  describe(`sync ⇄ hub over Mosquitto and PostgreSQL (MQTT ${mqttVersion})`, () => {
    const schema = uniqueId('t_synchub').replace(/-/g, '_');
    // an event of its own
    const eventId = uniqueId('ev');
    let broker: Mosquitto;
    let hub: HubService;
    let kit: TestKit;
    let sync: SyncService;
    let gateway: SandboxGateway;
    let spy: mqtt.MqttClient;
    const captured: Buffer[] = [];
    const env = mqttEnv(mqttVersion);
    let syncExtra: Record<string, string>;

    async function api(path: string, init: RequestInit & { auth?: boolean } = {}) {
      const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
      if (init.auth !== false) headers['authorization'] = `Bearer ${hub.adminToken}`;
      const res = await fetch(`${hub.httpUrl}${path}`, { ...init, headers });
      return {
        status: res.status,
        body: (await res.json()) as Record<string, unknown> & { error?: { code: string } },
      };
    }

    before(async () => {
      gateway = new SandboxGateway();
      // a broker of its own: a hub hears every kit on its broker, so a shared one would mix test files
      broker = await mosquitto();
      hub = await startHub({
        schema,
        gateway,
        brokerUrl: broker.url,
        env: { POPKIT_HUB_GATEWAY_RETRY_S: '1', ...env.hub },
      });
      kit = await makeKit(uniqueId('kit'));
      // a bystander that records what the kit publishes, to replay it later
      spy = await mqtt.connectAsync(broker.url, { clientId: uniqueId('spy') });
      await spy.subscribeAsync(topics.orders(kit.kitId), { qos: 1 });
      spy.on('message', (_t, p) => captured.push(Buffer.from(p)));
      const pub = await import('node:fs').then((fs) => fs.readFileSync(hub.publicKeyFile, 'utf8'));
      syncExtra = {
        POPKIT_HUB_PUBLIC_KEY: pub,
        POPKIT_SYNC_BATCH_MAX: '7',
        POPKIT_EVENT_ID: eventId,
        POPKIT_SYNC_STOCK_INTERVAL_MS: '200',
        POPKIT_SYNC_HEALTH_INTERVAL_MS: '300',
        POPKIT_SYNC_TELEMETRY_INTERVAL_MS: '300',
        ...env.sync,
      };
      sync = startSync(kit, broker.url, syncExtra);
    });

    test(`the broker saw the kit and the hub connect as MQTT ${mqttVersion}, the kit with a persistent session`, async () => {
      await waitFor(() => sync.connected, 20_000, 'the hub link up');
      const kitConns = await waitFor(
        () => {
          const c = brokerConnections(broker, new RegExp(`^popkit-sync-${kit.kitId}$`));
          return c.length ? c : undefined;
        },
        5000,
        "the kit's connection in Mosquitto's log",
      );
      for (const c of kitConns) {
        assert.equal(c.protocol, mqttVersion, `${c.clientId} spoke MQTT ${c.protocol}`);
        assert.equal(c.clean, false, 'a persistent session');
      }
      // the hub's two connections (batches, card checks): the same version
      const hubConns = brokerConnections(broker, /^popkit-hub-/);
      assert.equal(hubConns.length, 2, JSON.stringify(hubConns));
      for (const c of hubConns)
        assert.equal(c.protocol, mqttVersion, `${c.clientId} spoke MQTT ${c.protocol}`);
    });

    after(async () => {
      await sync?.stop();
      await spy?.endAsync();
      await hub?.stop();
      await broker?.stop();
      await kit?.close();
      await dropSchema(schema);
    });

    test('orders reach the ledger once and come back settled or declined', async () => {
      const cash = [];
      for (let i = 0; i < 20; i++) cash.push(await kit.place());
      const approved = await kit.place({ method: 'token', token: 'tok_visa_4242' });
      const declined = await kit.place({ method: 'token', token: 'tok_decline_insufficient_funds' });
      assert.equal(readRiskCounters(kit.store).unsyncedTokenOrders, 2);

      await waitFor(() => outboxOrders(kit) === 0, 20_000, 'outbox drained');
      for (const id of cash) assert.equal(kit.store.orders.get(id)?.syncState, 'settled');
      assert.equal(kit.store.orders.get(approved)?.syncState, 'settled');
      const d = kit.store.orders.get(declined);
      assert.equal(d?.syncState, 'declined');
      assert.equal(d?.declineReason, 'insufficient_funds');
      // the hub exchanged the tokens: the kit keeps none and no amount is at risk any more
      assert.equal(kit.store.tokens.get(approved), undefined);
      assert.equal(kit.store.tokens.get(declined), undefined);
      assert.deepEqual(readRiskCounters(kit.store), { unsyncedTokenOrders: 0, unsyncedTokenCents: 0 });

      const ledger = await ledgerOrderIds(schema, kit.kitId);
      assert.deepEqual(ledger.ids, [...cash, approved, declined].sort());
      const res = await api(`/v1/kits/${kit.kitId}/orders`);
      assert.equal(res.status, 200);
      assert.equal(res.body['count'], 22);
      const orders = res.body['orders'] as { id: string; state: string; gatewayRef?: string }[];
      const a = orders.find((o) => o.id === approved);
      assert.equal(a?.state, 'settled');
      assert.match(a?.gatewayRef ?? '', /^sandbox_/);
      assert.equal(gateway.chargeCount, 2);

      // the status file is written each second: `drained` counts every lane's entries, so a file with
      // 22 drained may still be one written before the last orders' acks; wait for the one after them
      const st = await waitFor(
        () => {
          const s = readRunStatus(kit.dataDir, 'sync');
          return s && s.drained >= 22 && s.backlog['orders'] === 0 ? s : undefined;
        },
        5000,
        'status shows the orders drained',
      );
      assert.equal(st.link, 'up');
    });

    test('an unreachable gateway: the order is forwarded, the hub holds the token and settles it later', async () => {
      gateway.setAvailable(false);
      const id = await kit.place({ method: 'token', token: 'tok_later_4444' });
      await waitFor(() => kit.store.orders.get(id)?.syncState === 'forwarded', 10_000, 'forwarded');
      assert.equal(outboxOrders(kit), 0, 'a forwarded order has left the outbox');
      gateway.setAvailable(true);
      await waitFor(() => kit.store.orders.get(id)?.syncState === 'settled', 10_000, 'settled by the retry');
      assert.equal(kit.store.tokens.get(id), undefined);
      const res = await api(`/v1/kits/${kit.kitId}/orders?limit=10000`);
      const row = (res.body['orders'] as { id: string; state: string }[]).find((o) => o.id === id);
      assert.equal(row?.state, 'settled');
    });

    test('redelivered and replayed batches leave the ledger unchanged', async () => {
      // orders of its own, so this test does not live off what an earlier one sent
      for (let i = 0; i < 3; i++) await placeAny(kit);
      await waitFor(() => outboxOrders(kit) === 0, 20_000, 'outbox drained');
      await waitFor(() => captured.length > 0, 5000, 'captured batches');
      // the spy hears the replays too: replay what it captured up to now
      const msgs = captured.splice(0);
      const before = await ledgerOrderIds(schema, kit.kitId);
      const dupBefore = hub.ledger!.counters.ordersDuplicate;
      const acks: string[] = [];
      const listener = await mqtt.connectAsync(broker.url, { clientId: uniqueId('acks') });
      await listener.subscribeAsync(topics.acks(kit.kitId), { qos: 1 });
      listener.on('message', (_t, p) => acks.push(String(p)));
      const replayer = await mqtt.connectAsync(broker.url, { clientId: uniqueId('replay') });
      for (let round = 0; round < 3; round++) {
        for (const msg of msgs) await replayer.publishAsync(topics.orders(kit.kitId), msg, { qos: 1 });
      }
      // stock snapshots share the topic; only order entries count as ledger duplicates
      const entries = msgs.reduce(
        (n, m) =>
          n +
          (JSON.parse(String(m)) as { entries: { lane: string }[] }).entries.filter(
            (e) => e.lane === 'orders',
          ).length,
        0,
      );
      await waitFor(
        () => hub.ledger!.counters.ordersDuplicate - dupBefore >= entries * 3,
        10_000,
        'replays seen',
      );
      const afterIds = await ledgerOrderIds(schema, kit.kitId);
      assert.deepEqual(afterIds, before);
      // the hub acks a replay again (from the ledger), which is harmless on the kit
      await waitFor(() => acks.length >= msgs.length * 3, 10_000, 'acks of the replays');
      assert.ok(acks.every((a) => !a.includes('"forwarded"')));
      await replayer.endAsync();
      await listener.endAsync();
    });

    test('the hub refuses a message whose kit id does not match its topic', async (t) => {
      const victim = uniqueId('victim');
      const intruder = await mqtt.connectAsync(broker.url, { clientId: uniqueId('intruder') });
      // closed even when an assertion fails: a client left reconnecting keeps the file from ever ending
      t.after(() => intruder.endAsync(true));
      const refusedBefore = hub.ingest!.stats.refused['kit_mismatch'] ?? 0;
      const malformedBefore = hub.ingest!.stats.refused['malformed'] ?? 0;
      const order = {
        id: '01JAAAAAAAAAAAAAAAAAAAAAAA',
        kitId: kit.kitId,
        eventId: 'default',
        catalogVersion: 1,
        totalCents: 100,
        currency: 'EUR',
        lines: [{ sku: 'TEE', name: 'Tee', qty: 1, unitPriceCents: 100, lineCents: 100 }],
        payment: { method: 'cash' },
        createdAt: new Date().toISOString(),
      };
      // claims to be the kit, on the victim's topic; and the victim's id with another kit's order inside
      await intruder.publishAsync(
        topics.orders(victim),
        JSON.stringify({
          v: 1,
          kitId: kit.kitId,
          sentAt: Date.now(),
          entries: [{ lane: 'orders', id: order.id, order }],
        }),
        { qos: 1 },
      );
      await intruder.publishAsync(
        topics.orders(victim),
        JSON.stringify({
          v: 1,
          kitId: victim,
          sentAt: Date.now(),
          entries: [{ lane: 'orders', id: order.id, order }],
        }),
        { qos: 1 },
      );
      await intruder.publishAsync(topics.orders(victim), 'not json', { qos: 1 });
      // the hub takes its messages one at a time: wait for the last one, not only the first two
      await waitFor(
        () =>
          (hub.ingest!.stats.refused['kit_mismatch'] ?? 0) >= refusedBefore + 2 &&
          (hub.ingest!.stats.refused['malformed'] ?? 0) >= malformedBefore + 1,
        10_000,
        'refusals',
      );
      assert.deepEqual((await ledgerOrderIds(schema, victim)).ids, []);
      assert.ok(!(await ledgerOrderIds(schema, kit.kitId)).ids.includes(order.id));
      const metrics = await fetch(`${hub.httpUrl}/metrics`).then((r) => r.text());
      assert.match(metrics, /popkit_hub_refused_total\{reason="kit_mismatch"\} \d+/);
    });

    test('catalogs: a signed one is written to LMDB; forged, stale and malformed ones are refused', async () => {
      const put = await api(`/v1/events/${eventId}/catalog`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          version: 5,
          currency: 'EUR',
          items: [{ sku: 'HOODIE', name: 'Hoodie', priceCents: 6000, currency: 'EUR', stock: 40 }],
        }),
      });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      await waitFor(() => readStoredCatalog(kit.store)?.version === 5, 10_000, 'hub catalog in LMDB');
      const stored = readStoredCatalog(kit.store)!;
      assert.equal(stored.source, 'hub');
      assert.equal(stored.items[0]?.sku, 'HOODIE');
      assert.equal(kit.store.stock.get('HOODIE'), 40);

      // a stale version through the API is refused by the hub itself (a valid catalog otherwise: the
      // one catalog schema refuses an empty one before the version is looked at)
      const stale = await api(`/v1/events/${eventId}/catalog`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          version: 4,
          items: [{ sku: 'HOODIE', name: 'Hoodie', priceCents: 6000, currency: 'EUR', stock: 40 }],
        }),
      });
      assert.equal(stale.status, 409);
      assert.equal(stale.body.error?.code, 'CATALOG_STALE');

      // text PostgreSQL or a screen cannot take, and versions beyond the ledger's integer: coded 400s
      for (const [what, body] of [
        ['NUL in a name', { items: [{ sku: 'X', name: 'a\u0000b', priceCents: 1, stock: 1 }] }],
        ['a lone surrogate', { items: [{ sku: 'X', name: '\udfffa', priceCents: 1, stock: 1 }] }],
        ['version 2^31', { version: 2 ** 31, items: [{ sku: 'X', name: 'x', priceCents: 1, stock: 1 }] }],
        ['version 1e300', { version: 1e300, items: [{ sku: 'X', name: 'x', priceCents: 1, stock: 1 }] }],
      ] as const) {
        const bad = await api(`/v1/events/${eventId}/catalog`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        assert.equal(bad.status, 400, `${what}: ${JSON.stringify(bad.body)}`);
        assert.equal(bad.body.error?.code, 'VALIDATION', what);
      }

      // straight onto the topic: forged (another key), stale (right key, old version), malformed
      const evil = generateKeyPairSync('ed25519').privateKey;
      const rogue = await mqtt.connectAsync(broker.url, { clientId: uniqueId('rogue') });
      const cat = (version: number, sku: string) => ({
        version,
        eventId,
        currency: 'EUR',
        items: [{ sku, name: sku, priceCents: 1, currency: 'EUR', stock: 1 }],
      });
      const refusals = () => sync.catalogRefusals.map((r) => r.code);
      const n0 = sync.catalogRefusals.length;
      await rogue.publishAsync(topics.catalog(eventId), JSON.stringify(signCatalog(evil, cat(9, 'FORGED'))), {
        qos: 1,
      });
      await waitFor(() => sync.catalogRefusals.length > n0, 5000, 'forged refusal');
      const hubKey = loadOrCreateSigningKey(hub.dataDir).privateKey;
      await rogue.publishAsync(topics.catalog(eventId), JSON.stringify(signCatalog(hubKey, cat(3, 'OLD'))), {
        qos: 1,
      });
      await waitFor(() => sync.catalogRefusals.length > n0 + 1, 5000, 'stale refusal');
      await rogue.publishAsync(topics.catalog(eventId), '{"v":1,"alg":"ed25519"}', { qos: 1 });
      await waitFor(() => sync.catalogRefusals.length > n0 + 2, 5000, 'malformed refusal');
      const tampered = signCatalog(hubKey, cat(11, 'TAMPER'));
      tampered.payload = tampered.payload.replace('"priceCents":1', '"priceCents":0');
      await rogue.publishAsync(topics.catalog(eventId), JSON.stringify(tampered), { qos: 1 });
      await waitFor(() => sync.catalogRefusals.length > n0 + 3, 5000, 'tampered refusal');
      assert.deepEqual(refusals().slice(n0), [
        'CATALOG_FORGED',
        'CATALOG_STALE',
        'CATALOG_MALFORMED',
        'CATALOG_FORGED',
      ]);
      const still = readStoredCatalog(kit.store)!;
      assert.equal(still.version, 5);
      assert.equal(still.items[0]?.sku, 'HOODIE');
      // leave the retained topic as the hub had it
      await rogue.publishAsync(topics.catalog(eventId), '', { qos: 1, retain: true });
      await rogue.endAsync();
    });

    test('hub HTTP: admin auth, coded errors, gateway round trip, kits view', async () => {
      // an order of its own, so the kits view has something to count whatever ran before
      await placeAny(kit);
      await waitFor(() => outboxOrders(kit) === 0, 20_000, 'outbox drained');
      const inLedger = (await ledgerOrderIds(schema, kit.kitId)).rows;
      assert.ok(inLedger >= 1);
      const noAuth = await api('/v1/kits', { auth: false });
      assert.equal(noAuth.status, 401);
      assert.equal(noAuth.body.error?.code, 'UNAUTHORIZED');
      const badKit = await api('/v1/kits/..%2F..%2Fetc/orders');
      assert.equal(badKit.status, 400);
      assert.equal(badKit.body.error?.code, 'VALIDATION');
      const badJson = await api(`/v1/events/${eventId}/catalog`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: '{"items": [',
      });
      assert.equal(badJson.status, 400);
      assert.ok(badJson.body.error?.code);
      const badCatalog = await api(`/v1/events/${eventId}/catalog`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ items: [{ sku: 'X' }] }),
      });
      assert.equal(badCatalog.status, 400);
      assert.equal(badCatalog.body.error?.code, 'VALIDATION');
      assert.equal((await api('/v1/gateway', { auth: false })).status, 401);
      const gw = await api('/v1/gateway');
      assert.equal(gw.status, 200);
      assert.equal(gw.body['name'], 'sandbox');
      assert.equal(gw.body['sandbox'], true);
      assert.equal(gw.body['ok'], true);
      assert.equal(typeof gw.body['latencyMs'], 'number');
      const health = await api('/healthz', { auth: false });
      assert.equal(health.status, 200);
      const kits = await api('/v1/kits');
      const mine = (kits.body['kits'] as { kitId: string; orders: number; online: boolean }[]).find(
        (k) => k.kitId === kit.kitId,
      );
      assert.equal(mine?.orders, inLedger);
      assert.equal(mine?.online, true);
      // the other lanes arrived too: stock snapshot and health
      await waitFor(
        async () => {
          const k = (await hub.ledger!.listKits()).find((x) => x.kitId === kit.kitId);
          return k?.stock && k.health;
        },
        10_000,
        'stock and health lanes at the hub',
      );
    });

    // last: it stops the hub
    test('a verdict sent while the kit was away waits in its persistent session and settles the order on reconnect', async () => {
      gateway.setAvailable(false);
      // of whatever the kit sells now (the catalog test replaced the catalog)
      const sku = readStoredCatalog(kit.store)?.items[0]?.sku ?? 'TEE';
      const { order } = await kit.orders.create(
        { lines: [{ sku, qty: 1 }], payment: { method: 'token', token: 'tok_away_4444' } },
        undefined,
      );
      const id = order.id;
      await waitFor(() => kit.store.orders.get(id)?.syncState === 'forwarded', 10_000, 'forwarded');
      // the kit goes away (its session stays at the broker), then the hub settles the held token
      await sync.stop();
      const acks: string[] = [];
      const watcher = await mqtt.connectAsync(broker.url, { clientId: uniqueId('acks') });
      await watcher.subscribeAsync(topics.acks(kit.kitId), { qos: 1 });
      watcher.on('message', (_t, p) => acks.push(String(p)));
      gateway.setAvailable(true);
      await waitFor(
        () => acks.some((a) => a.includes(id) && a.includes('"settled"')),
        20_000,
        'the settled verdict published to the kit while it is away',
      );
      await watcher.endAsync();
      // no hub any more: only the broker's queue for the kit's session can bring the verdict now
      await hub.stop();
      assert.equal(kit.store.orders.get(id)?.syncState, 'forwarded', 'nothing reached the stopped kit');
      sync = startSync(kit, broker.url, syncExtra);
      await waitFor(
        () => kit.store.orders.get(id)?.syncState === 'settled',
        20_000,
        'settled from the queued verdict',
      );
      assert.equal(kit.store.tokens.get(id), undefined);
    });
  });

// Shared stock across the kits of an event (docs/shared-stock.md): three kits on one hub (real
// checkout stores, real sync, the real hub worker, a private real Mosquitto, real PostgreSQL) sell a
// drop unevenly. The creator splits the event's stock evenly; a rebalance while the links are up moves
// units from a kit that is not selling to one that sells out; one kit's uplink is cut during the drop
// while the hub asks it for units. Total sold never exceeds the event's stock, and every transfer is
// in both kits' ledgers and the hub's exactly once, replays included.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { topics } from '../../core/contracts/hub-wire.ts';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { isKitError } from '../../core/errors.ts';
import { allOrders, readSharedStock, readStoredCatalog, sharedStockView } from '../../core/store/index.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  hubAdminApi,
  type Mosquitto,
  makeKit,
  mosquitto,
  schemaSql,
  startHub,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const EVENT_STOCK = 30;
const SKU = 'DROP';

describe('shared stock: three kits, one hub, a drop that sells out unevenly, an uplink cut', () => {
  const schema = uniqueId('t_shared').replace(/-/g, '_');
  const eventId = uniqueId('ev');
  let broker: Mosquitto;
  let hub: HubService;
  const kits: TestKit[] = [];
  const syncs = new Map<string, SyncService>();
  let syncEnv: Record<string, string>;
  let spy: mqtt.MqttClient;
  /** every kit batch that carried a release, and every statement the hub retained for kit A */
  const capturedReleases: Array<{ topic: string; payload: Buffer }> = [];
  const statementsA: Buffer[] = [];

  const api = hubAdminApi(() => hub);
  const sql = schemaSql(schema);

  const stock = (k: TestKit) => k.store.stock.get(SKU) ?? 0;
  const soldOn = (k: TestKit) => {
    let n = 0;
    for (const o of allOrders(k.store)) for (const l of o.lines) if (l.sku === SKU) n += l.qty;
    return n;
  };

  /** sell one unit at a time until `n` are sold or the kit says SOLD_OUT: the units sold */
  async function sell(k: TestKit, n: number): Promise<number> {
    let sold = 0;
    for (let i = 0; i < n; i++) {
      try {
        await k.orders.create({ lines: [{ sku: SKU, qty: 1 }], payment: { method: 'cash' } }, undefined);
        sold++;
      } catch (err) {
        if (isKitError(err) && err.code === 'SOLD_OUT') break;
        throw err;
      }
    }
    return sold;
  }

  function start(k: TestKit) {
    const s = startSync(k, broker.url, syncEnv);
    syncs.set(k.kitId, s);
    return s;
  }

  before(async () => {
    broker = await mosquitto();
    hub = await startHub({ schema, gateway: new SandboxGateway(), brokerUrl: broker.url });
    for (const name of ['a', 'b', 'c']) kits.push(await makeKit(uniqueId(`kit-${name}`)));
    syncEnv = {
      POPKIT_HUB_PUBLIC_KEY: fs.readFileSync(hub.publicKeyFile, 'utf8'),
      POPKIT_EVENT_ID: eventId,
    };
    spy = await mqtt.connectAsync(broker.url, { clientId: uniqueId('spy') });
    await spy.subscribeAsync(
      { [topics.allOrders]: { qos: 1 }, [topics.kitAllocations(kits[0]!.kitId)]: { qos: 1 } },
      {},
    );
    spy.on('message', (t, p) => {
      if (t.endsWith('/orders')) {
        // once each: a kit resends a batch until it is acked
        const dup = capturedReleases.some((r) => r.topic === t && r.payload.equals(p));
        if (p.includes('"release"') && !dup) capturedReleases.push({ topic: t, payload: Buffer.from(p) });
      } else statementsA.push(Buffer.from(p));
    });
    for (const k of kits) start(k);
  });

  after(async () => {
    for (const s of syncs.values()) await s.stop();
    await spy?.endAsync();
    await hub?.stop();
    await broker?.stop();
    for (const k of kits) await k.close();
    await dropSchema(schema);
  });

  test('an even split: each kit sells only its allocation, and the catalog says the stock is shared', async () => {
    const [a, b, c] = kits as [TestKit, TestKit, TestKit];
    const put = await api(`/v1/events/${eventId}/catalog`, 'PUT', {
      currency: 'EUR',
      items: [{ sku: SKU, name: 'Drop tee', priceCents: 4000, currency: 'EUR', stock: EVENT_STOCK }],
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    // more than the event has: refused, nothing allocated
    const over = await api(`/v1/events/${eventId}/allocations`, 'PUT', {
      allocations: [
        { kitId: a.kitId, sku: SKU, qty: 20 },
        { kitId: b.kitId, sku: SKU, qty: 11 },
      ],
    });
    assert.equal(over.status, 409, JSON.stringify(over.body));
    assert.equal((over.body['error'] as { code: string }).code, 'ALLOCATION_OVER_STOCK');
    assert.equal((await sql('SELECT * FROM stock_moves')).length, 0);

    const split = await api(`/v1/events/${eventId}/allocations`, 'PUT', {
      split: 'even',
      kits: kits.map((k) => k.kitId),
    });
    assert.equal(split.status, 200, JSON.stringify(split.body));
    for (const k of kits) {
      await waitFor(
        () => readStoredCatalog(k.store)?.sharedStock === true && stock(k) === 10,
        20_000,
        `${k.kitId}: the shared catalog and its 10 units`,
      );
      const view = sharedStockView(k.store, eventId)!;
      assert.deepEqual(view.skus, [
        { sku: SKU, eventStock: EVENT_STOCK, allocated: 10, held: 10, sellable: 10 },
      ]);
      // GET /v1/status carries the same (sync's status)
      assert.equal(syncs.get(k.kitId)!.status().sharedStock?.skus[0]?.allocated, 10);
    }
    // never the event's 30 on any kit
    assert.equal(
      kits.reduce((n, k) => n + stock(k), 0),
      EVENT_STOCK,
    );
    void c;
  });

  test('a rebalance while links are up: A sells out, B gives half the difference, once in both ledgers', async () => {
    const [a, b, c] = kits as [TestKit, TestKit, TestKit];
    assert.equal(await sell(a, 9), 9);
    await waitFor(
      async () =>
        Number(
          (await sql<{ n: string }>(`SELECT count(*) AS n FROM orders WHERE kit_id = $1`, [a.kitId]))[0]?.n,
        ) === 9,
      20_000,
      "A's orders in the ledger",
    );
    const res = await api(`/v1/events/${eventId}/rebalance`, 'POST', { belowPercent: 20 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const transfers = res.body['transfers'] as Array<{
      from: string;
      to: string;
      qty: number;
      transferId: string;
    }>;
    assert.equal(transfers.length, 1, JSON.stringify(transfers));
    const t = transfers[0]!;
    assert.equal(t.to, a.kitId);
    assert.ok(t.from === b.kitId || t.from === c.kitId);
    assert.equal(t.qty, 4); // (10 − 1) / 2
    const donor = t.from === b.kitId ? b : c;
    await waitFor(() => stock(a) === 5 && stock(donor) === 6, 20_000, 'the transfer applied on both kits');
    // the release is in the donor's ledger once, the grant in the receiver's once, the hub's once each
    assert.deepEqual(
      readSharedStock(donor.store, eventId)!.releases.filter((r) => r[0] === t.transferId),
      [[t.transferId, SKU, 4, 4]],
    );
    assert.deepEqual(
      readSharedStock(a.store, eventId)!.grants.filter((g) => g[0] === t.transferId),
      [[t.transferId, SKU, 4]],
    );
    await waitFor(
      async () =>
        (await sql(`SELECT 1 FROM stock_moves WHERE move_id = $1 AND kind = 'grant'`, [t.transferId]))
          .length === 1,
      10_000,
      "the transfer's grant in the hub",
    );
    const moves = await sql<{ kind: string; kit_id: string; qty: number }>(
      `SELECT kind, kit_id, qty FROM stock_moves WHERE move_id = $1 ORDER BY kind`,
      [t.transferId],
    );
    assert.deepEqual(moves, [
      { kind: 'grant', kit_id: a.kitId, qty: 4 },
      { kind: 'release', kit_id: donor.kitId, qty: 4 },
      { kind: 'release_request', kit_id: donor.kitId, qty: 4 },
    ]);
  });

  test('the uplink cut during the drop: no unit is moved away from an offline kit that sold it', async () => {
    const [a] = kits as [TestKit, TestKit, TestKit];
    // the kit the rebalance did not touch still has 10: cut its uplink
    const off = kits.find((k) => k !== a && stock(k) === 10)!;
    const other = kits.find((k) => k !== a && k !== off)!;
    await syncs.get(off.kitId)!.stop();
    syncs.delete(off.kitId);
    // the hub asks the offline kit for 5 units for A: the request waits, retained
    const tr = await api(`/v1/events/${eventId}/transfers`, 'POST', {
      from: off.kitId,
      to: a.kitId,
      sku: SKU,
      qty: 5,
    });
    assert.equal(tr.status, 202, JSON.stringify(tr.body));
    const transferId = tr.body['transferId'] as string;
    // meanwhile every kit sells all it can: the offline one its whole allocation, offline
    assert.equal(await sell(off, 50), 10);
    assert.equal(await sell(a, 50), 5);
    assert.equal(await sell(other, 50), 6);
    for (const k of kits) assert.equal(stock(k), 0);
    // the link comes back: the kit answers the request with what it has (nothing), A gets nothing more
    start(off);
    await waitFor(
      async () =>
        (await sql(`SELECT 1 FROM stock_moves WHERE move_id = $1 AND kind = 'release'`, [transferId]))
          .length === 1,
      20_000,
      'the release answered after the uplink came back',
    );
    const moves = await sql<{ kind: string; qty: number }>(
      `SELECT kind, qty FROM stock_moves WHERE move_id = $1 ORDER BY kind`,
      [transferId],
    );
    assert.deepEqual(moves, [
      { kind: 'release', qty: 0 },
      { kind: 'release_request', qty: 5 },
    ]);
    assert.deepEqual(
      readSharedStock(off.store, eventId)!.releases.find((r) => r[0] === transferId),
      [transferId, SKU, 5, 0],
    );
    assert.equal(await sell(a, 1), 0, 'A got no unit the offline kit had sold');
    // every order reaches the ledger; total sold never exceeds the event's stock
    const total = kits.reduce((n, k) => n + soldOn(k), 0);
    assert.equal(total, EVENT_STOCK);
    await waitFor(
      async () =>
        Number(
          (
            await sql<{ n: string }>(
              `SELECT coalesce(sum(l.qty), 0) AS n FROM order_lines l JOIN orders o USING (kit_id, order_id) WHERE o.event_id = $1`,
              [eventId],
            )
          )[0]?.n,
        ) === total,
      20_000,
      'every unit sold in the ledger',
    );
    const view = await api(`/v1/events/${eventId}/stock`, 'GET');
    const row = (
      view.body['skus'] as Array<{
        eventStock: number;
        unallocated: number;
        kits: Array<{ allocated: number; sold: number }>;
      }>
    )[0]!;
    assert.equal(row.eventStock, EVENT_STOCK);
    assert.equal(row.unallocated, 0);
    for (const k of row.kits) assert.ok(k.sold <= k.allocated, JSON.stringify(row));
    assert.equal(
      row.kits.reduce((n, k) => n + k.sold, 0),
      EVENT_STOCK,
    );
  });

  test('the creator API: admin only, hostile bodies refused with a code and nothing changed', async () => {
    const [a, b] = kits as [TestKit, TestKit, TestKit];
    const before = await sql('SELECT kind, move_id, qty FROM stock_moves ORDER BY kind, move_id');
    const noAuth = await fetch(`${hub.httpUrl}/v1/events/${eventId}/transfers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ from: a.kitId, to: b.kitId, sku: SKU, qty: 1 }),
    });
    assert.equal(noAuth.status, 401);
    assert.equal((await fetch(`${hub.httpUrl}/v1/events/${eventId}/stock`)).status, 401);
    const bad: Array<[string, string, unknown]> = [
      ['transfers', 'POST', { from: a.kitId, to: b.kitId, sku: SKU, qty: '1' }],
      ['transfers', 'POST', { from: a.kitId, to: b.kitId, sku: SKU, qty: 0 }],
      ['transfers', 'POST', { from: a.kitId, to: b.kitId, sku: SKU, qty: 1e12 }],
      ['transfers', 'POST', { from: `${a.kitId}\0`, to: b.kitId, sku: SKU, qty: 1 }],
      ['transfers', 'POST', { from: a.kitId, to: b.kitId, sku: '__proto__', qty: 1 }],
      ['transfers', 'POST', { from: a.kitId, to: b.kitId, sku: SKU, qty: 1, extra: true }],
      ['transfers', 'POST', { from: a.kitId, to: a.kitId, sku: SKU, qty: 1 }],
      ['allocations', 'PUT', { allocations: [] }],
      ['allocations', 'PUT', { allocations: [{ kitId: a.kitId, sku: 'NOPE', qty: 1 }] }],
      ['allocations', 'PUT', { allocations: [{ kitId: a.kitId, sku: SKU, qty: -1 }] }],
      ['allocations', 'PUT', { split: 'odd', kits: [a.kitId] }],
      ['allocations', 'PUT', JSON.parse('{"__proto__": {"x": 1}, "split": "even", "kits": []}')],
      ['rebalance', 'POST', { belowPercent: 100 }],
      ['rebalance', 'POST', { belowPercent: '20' }],
    ];
    for (const [route, method, body] of bad) {
      const res = await api(`/v1/events/${eventId}/${route}`, method, body);
      assert.equal(res.status, 400, `${route} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      // fastify's JSON parser refuses a `__proto__` key before the schema sees it
      const expected = JSON.stringify(body).includes('__proto__":{') ? 'BAD_REQUEST' : 'VALIDATION';
      assert.equal((res.body['error'] as { code: string }).code, expected, JSON.stringify(body));
    }
    const noEvent = await api('/v1/events/no-such-event/allocations', 'PUT', {
      split: 'even',
      kits: [a.kitId],
    });
    assert.equal(noEvent.status, 404);
    assert.deepEqual(await sql('SELECT kind, move_id, qty FROM stock_moves ORDER BY kind, move_id'), before);
    // the kit's share reaches GET /v1/status through sync's run-status file (its contract checked on read)
    const st = await waitFor(() => readRunStatus(a.dataDir, 'sync')?.sharedStock, 10_000, 'run status');
    assert.equal(st.eventId, eventId);
    assert.equal(st.skus[0]?.eventStock, EVENT_STOCK);
  });

  test('replays change nothing: a kit batch with a release sent again, an old signed statement again', async () => {
    const [a] = kits as [TestKit, TestKit, TestKit];
    const before = await sql<{ kind: string; move_id: string; qty: number }>(
      'SELECT kind, move_id, qty FROM stock_moves ORDER BY kind, move_id',
    );
    // both releases (the rebalance's and the offline kit's) as their kits sent them
    const releases = capturedReleases;
    assert.ok(releases.length >= 2, `${releases.length} release batches seen`);
    const oldStatement = statementsA[0];
    assert.ok(oldStatement, 'a statement for A was seen');
    // the same batch again on B's topic, and A's first statement again on its topic
    const pub = await mqtt.connectAsync(broker.url, { clientId: uniqueId('replayer') });
    const within = <T>(p: Promise<T>, what: string) =>
      Promise.race([
        p,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`${what}: no PUBACK in 5 s`)), 5000),
        ),
      ]);
    for (const r of releases) await within(pub.publishAsync(r.topic, r.payload, { qos: 1 }), r.topic);
    await pub.publishAsync(topics.allocation(a.kitId, eventId), oldStatement, { qos: 1 });
    await pub.endAsync();
    const sync = syncs.get(a.kitId)!;
    await waitFor(
      () => (sync.status().allocationRefused?.['ALLOCATION_STALE'] ?? 0) >= 1,
      10_000,
      'stale refused',
    );
    // give the hub time to have handled the resent batch (its acks come back to B)
    await new Promise((r) => setTimeout(r, 1000));
    const after = await sql<{ kind: string; move_id: string; qty: number }>(
      'SELECT kind, move_id, qty FROM stock_moves ORDER BY kind, move_id',
    );
    assert.deepEqual(after, before);
    assert.equal(stock(a), 0);
    for (const k of kits) {
      const rec = readSharedStock(k.store, eventId)!;
      assert.equal(new Set(rec.grants.map((g) => g[0])).size, rec.grants.length);
      assert.equal(new Set(rec.releases.map((r) => r[0])).size, rec.releases.length);
    }
  });

  test("the post-event report's reconciliation: start is what the kits were allocated, every transfer listed", async () => {
    const res = await fetch(`${hub.httpUrl}/v1/events/${eventId}/report?format=json`, {
      headers: { authorization: `Bearer ${hub.adminToken}` },
    });
    assert.equal(res.status, 200);
    const report = (await res.json()) as {
      inventory: {
        skus: Array<{ sku: string; start: number | null; soldHub: number }>;
        transfers?: Array<{ from: string; to: string; requested: number; released: number | null }>;
      };
    };
    const row = report.inventory.skus.find((x) => x.sku === SKU)!;
    // not 3 × 30: the kits' allocations add up to the event's stock
    assert.equal(row.start, EVENT_STOCK);
    assert.equal(row.soldHub, EVENT_STOCK);
    const transfers = report.inventory.transfers ?? [];
    assert.equal(transfers.length, 2, JSON.stringify(transfers));
    assert.deepEqual(
      transfers.map((t) => [t.to, t.requested, t.released]),
      [
        [kits[0]!.kitId, 4, 4],
        [kits[0]!.kitId, 5, 0],
      ],
    );
    const html = await fetch(`${hub.httpUrl}/v1/events/${eventId}/report?format=html`, {
      headers: { authorization: `Bearer ${hub.adminToken}` },
    }).then((r) => r.text());
    assert.match(html, /units moved between kits/);
  });
  test("a catalog that lowers the event's stock below what the kits hold is refused; one that covers it is taken", async () => {
    const latest = async () =>
      Number(
        (await sql<{ v: number }>('SELECT max(version) AS v FROM catalogs WHERE event_id = $1', [eventId]))[0]
          ?.v,
      );
    const before = await latest();
    const item = (stock: number) => ({
      currency: 'EUR',
      items: [{ sku: SKU, name: 'Drop tee', priceCents: 4000, currency: 'EUR', stock }],
    });
    // every unit of the 30 is with a kit (sold or not): 29 cannot be
    const low = await api(`/v1/events/${eventId}/catalog`, 'PUT', item(EVENT_STOCK - 1));
    assert.equal(low.status, 409, JSON.stringify(low.body));
    const err = low.body['error'] as { code: string; details: Record<string, unknown> };
    assert.equal(err.code, 'STOCK_BELOW_ALLOCATED');
    assert.deepEqual(err.details, { sku: SKU, stock: EVENT_STOCK - 1, allocated: EVENT_STOCK });
    assert.equal(await latest(), before, 'nothing stored');
    // the same figure, or more (units nobody holds yet), is a new shared catalog
    const same = await api(`/v1/events/${eventId}/catalog`, 'PUT', item(EVENT_STOCK));
    assert.equal(same.status, 200, JSON.stringify(same.body));
    const more = await api(`/v1/events/${eventId}/catalog`, 'PUT', item(EVENT_STOCK + 5));
    assert.equal(more.status, 200, JSON.stringify(more.body));
    assert.equal(await latest(), before + 2);
    const view = await api(`/v1/events/${eventId}/stock`, 'GET');
    assert.equal((view.body['skus'] as Array<{ unallocated: number }>)[0]?.unallocated, 5);
  });
});

describe('shared stock: the timed rebalance (POPKIT_HUB_REBALANCE_S)', () => {
  const schema = uniqueId('t_shared_auto').replace(/-/g, '_');
  const eventId = uniqueId('ev');
  let broker: Mosquitto;
  let hub: HubService;
  const kits: TestKit[] = [];
  const syncs: SyncService[] = [];

  before(async () => {
    broker = await mosquitto();
    hub = await startHub({
      schema,
      gateway: new SandboxGateway(),
      brokerUrl: broker.url,
      env: { POPKIT_HUB_REBALANCE_S: '1', POPKIT_HUB_REBALANCE_BELOW_PERCENT: '30' },
    });
    for (const name of ['a', 'b']) kits.push(await makeKit(uniqueId(`kit-${name}`)));
    const env = {
      POPKIT_HUB_PUBLIC_KEY: fs.readFileSync(hub.publicKeyFile, 'utf8'),
      POPKIT_EVENT_ID: eventId,
    };
    for (const k of kits) syncs.push(startSync(k, broker.url, env));
  });

  after(async () => {
    for (const s of syncs) await s.stop();
    await hub?.stop();
    await broker?.stop();
    for (const k of kits) await k.close();
    await dropSchema(schema);
  });

  test('a kit selling out gets units from the other without anyone asking, once', async () => {
    const [a, b] = kits as [TestKit, TestKit];
    const auth = { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' };
    const put = await fetch(`${hub.httpUrl}/v1/events/${eventId}/catalog`, {
      method: 'PUT',
      headers: auth,
      body: JSON.stringify({
        currency: 'EUR',
        items: [{ sku: SKU, name: 'Drop tee', priceCents: 4000, currency: 'EUR', stock: 20 }],
      }),
    });
    assert.equal(put.status, 200);
    const split = await fetch(`${hub.httpUrl}/v1/events/${eventId}/allocations`, {
      method: 'PUT',
      headers: auth,
      body: JSON.stringify({ split: 'even', kits: [a.kitId, b.kitId] }),
    });
    assert.equal(split.status, 200);
    const stock = (k: TestKit) => k.store.stock.get(SKU) ?? 0;
    await waitFor(() => stock(a) === 10 && stock(b) === 10, 20_000, 'the even split on both kits');
    // nothing below 30 % yet: the timer moves nothing
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(stock(a), 10);
    for (let i = 0; i < 8; i++)
      await a.orders.create({ lines: [{ sku: SKU, qty: 1 }], payment: { method: 'cash' } }, undefined);
    // A has 2 of 10 left (under 30 %), B 10: B gives (10 − 2) / 2 = 4
    await waitFor(() => stock(a) === 6 && stock(b) === 6, 20_000, 'the timed transfer on both kits');
    // and only once: the next ticks see A at 6 of 14 (above 30 %)
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(stock(a), 6);
    assert.equal(stock(b), 6);
    assert.equal(readSharedStock(b.store, eventId)?.releases.length, 1);
  });
});

// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Bundles and reservations in the hub ledger, kit → sync → private Mosquitto → hub → PostgreSQL (a
// schema of its own): every order line and every bundle component lands in order_lines with its order
// (migration 6, the orders already there backfilled), units sold per SKU count components, the hub's
// stock snapshot equals the kit's, and the kit's reservation counters arrive on the telemetry lane.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { LANES, openKitStore, readAllStock, replaceCatalog } from '../../core/store/index.ts';
import { ReservationService } from '../../services/checkout/reservations.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { MIGRATIONS } from '../../services/hub/migrations.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  type Mosquitto,
  makeKit,
  mosquitto,
  PG_URL,
  startHub,
  startSync,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_bundles').replace(/-/g, '_');
const eventId = uniqueId('ev');
let broker: Mosquitto;
let hub: HubService;
let kit: TestKit;
let sync: SyncService;
let db: pg.Client;

const CATALOG = {
  version: 1,
  eventId,
  currency: 'EUR',
  items: [
    { sku: 'TEE', name: 'Tee', priceCents: 2500, stock: 100 },
    { sku: 'CAP', name: 'Cap', priceCents: 1500, stock: 50 },
    { sku: 'PIN', name: 'Pin', priceCents: 300, stock: 40 },
  ],
  bundles: [
    {
      id: 'FANPACK',
      name: 'Fan pack',
      components: [
        { sku: 'TEE', qty: 2 },
        { sku: 'CAP', qty: 1 },
      ],
      priceCents: 5500,
    },
    { id: 'PINS', name: 'Pin set', skus: ['PIN', 'CAP'], priceCents: 1600 },
  ],
};

/** An order of migration 5's time, already in the ledger when migration 6 runs. */
const OLD_ORDER = {
  id: '01J00000000000000000000000',
  kitId: 'kit-old',
  eventId,
  catalogVersion: 1,
  totalCents: 8000,
  currency: 'EUR',
  lines: [
    {
      sku: 'FANPACK',
      name: 'Fan pack',
      qty: 1,
      unitPriceCents: 5500,
      lineCents: 5500,
      components: CATALOG.bundles[0]!.components,
    },
    { sku: 'TEE', name: 'Tee', qty: 1, unitPriceCents: 2500, lineCents: 2500 },
  ],
  payment: { method: 'cash' },
  createdAt: '2026-11-30T20:00:00.000Z',
};

async function api(path: string, auth = true) {
  const res = await fetch(`${hub.httpUrl}${path}`, {
    headers: auth ? { authorization: `Bearer ${hub.adminToken}` } : {},
  });
  return {
    status: res.status,
    body: (await res.json()) as Record<string, unknown> & { error?: { code: string } },
  };
}

describe('bundles and reservations in the hub ledger', () => {
  before(async () => {
    db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
    // the ledger as migration 5 left it, with one order in it
    await db.query(`CREATE SCHEMA "${schema}"`);
    await db.query(`SET search_path TO "${schema}", public`);
    await db.query(
      'CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    for (const m of MIGRATIONS.filter((x) => x.version <= 5)) {
      await db.query(m.sql);
      await db.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
    }
    await db.query(
      `INSERT INTO orders (kit_id, order_id, event_id, kit_created_at, total_cents, currency, payment_method, state, body)
       VALUES ('kit-old', $1, $2, $3, 8000, 'EUR', 'cash', 'settled', $4::jsonb)`,
      [OLD_ORDER.id, eventId, OLD_ORDER.createdAt, JSON.stringify(OLD_ORDER)],
    );
    broker = await mosquitto();
    hub = await startHub({ schema, brokerUrl: broker.url });
    const kitId = uniqueId('kit');
    const dir = tmpDir(kitId);
    const s = openKitStore(dir);
    await replaceCatalog(s, CATALOG, { source: 'local' });
    await s.close();
    kit = await makeKit(kitId, dir);
  });

  after(async () => {
    await sync?.stop();
    await hub?.stop();
    await broker?.stop();
    await kit?.close();
    await db?.end();
    await dropSchema(schema);
  });

  test('migration 6 gave the orders already in the ledger their lines and components', async () => {
    const rows = await db.query(
      `SELECT line_no, kind, sku, bundle_id, qty::int AS qty, unit_price_cents::int AS unit, line_cents::int AS cents
       FROM order_lines WHERE kit_id = 'kit-old' ORDER BY line_no`,
    );
    assert.deepEqual(rows.rows, [
      { line_no: 100, kind: 'bundle', sku: 'FANPACK', bundle_id: 'FANPACK', qty: 1, unit: 5500, cents: 5500 },
      { line_no: 101, kind: 'component', sku: 'TEE', bundle_id: 'FANPACK', qty: 2, unit: 0, cents: 0 },
      { line_no: 102, kind: 'component', sku: 'CAP', bundle_id: 'FANPACK', qty: 1, unit: 0, cents: 0 },
      { line_no: 200, kind: 'item', sku: 'TEE', bundle_id: null, qty: 1, unit: 2500, cents: 2500 },
    ]);
  });

  test('bundle sales synced through a real hub: lines, components, units sold and stock agree with the kit', async () => {
    const cash = { method: 'cash' } as const;
    const placed = [
      { lines: [{ bundle: 'FANPACK', qty: 3 }], payment: cash },
      {
        lines: [
          { bundle: 'FANPACK', qty: 1 },
          { sku: 'TEE', qty: 2 },
        ],
        payment: cash,
      },
      {
        lines: [
          { bundle: 'PINS', qty: 4 },
          { sku: 'CAP', qty: 1 },
        ],
        payment: cash,
      },
      { lines: [{ sku: 'PIN', qty: 5 }], payment: { method: 'token', token: 'tok_visa_4242' } },
    ] as const;
    const ids: string[] = [];
    for (const body of placed)
      ids.push((await kit.orders.create(structuredClone(body) as never, undefined)).order.id);
    // a hold released and one expired: the kit's abandoned counters travel on the telemetry lane
    let now = Date.now();
    const reservations = new ReservationService(kit.store, {
      ttlMs: 60_000,
      orders: () => kit.orders,
      clock: () => now,
    });
    const r1 = await reservations.reserve([{ bundle: 'FANPACK', qty: 1 }], { role: 'buyer', ip: '10.1.1.1' });
    await reservations.release(r1.id);
    await reservations.reserve([{ sku: 'PIN', qty: 1 }], { role: 'buyer', ip: '10.1.1.1' });
    now += 60_000;
    assert.equal(await reservations.sweep(), 1);
    const kitStock = readAllStock(kit.store);
    // TEE: 100 - 2×3 - 2×1 - 2 = 90; CAP: 50 - 3 - 1 - 4 - 1 = 41; PIN: 40 - 4 - 5 = 31
    assert.deepEqual(kitStock, { CAP: 41, PIN: 31, TEE: 90 });

    const pub = fs.readFileSync(hub.publicKeyFile, 'utf8');
    sync = startSync(kit, broker.url, {
      POPKIT_HUB_PUBLIC_KEY: pub,
      POPKIT_EVENT_ID: eventId,
      POPKIT_SYNC_STOCK_INTERVAL_MS: '200',
      POPKIT_SYNC_TELEMETRY_INTERVAL_MS: '60000',
    });
    await waitFor(
      () =>
        kit.store.outbox.getKeysCount({ start: [LANES.orders, ''], end: [LANES.telemetry + 1, ''] }) === 0,
      30_000,
      'outbox drained',
    );
    const kits = await waitFor(
      async () => {
        const res = await api('/v1/kits');
        const k = (res.body['kits'] as Array<{ kitId: string; stock: unknown }>).find(
          (x) => x.kitId === kit.kitId,
        );
        return k?.stock ? k : undefined;
      },
      20_000,
      'stock snapshot at the hub',
    );
    assert.deepEqual(kits.stock, kitStock, "the hub's stock snapshot is the kit's");

    const lines = await db.query(
      `SELECT order_id, line_no, kind, sku, bundle_id, qty::int AS qty, unit_price_cents::int AS unit, line_cents::int AS cents
       FROM order_lines WHERE kit_id = $1 ORDER BY order_id, line_no`,
      [kit.kitId],
    );
    const of = (id: string) => lines.rows.filter((r) => r.order_id === id).map(({ order_id: _o, ...r }) => r);
    assert.deepEqual(of(ids[0]!), [
      {
        line_no: 100,
        kind: 'bundle',
        sku: 'FANPACK',
        bundle_id: 'FANPACK',
        qty: 3,
        unit: 5500,
        cents: 16500,
      },
      { line_no: 101, kind: 'component', sku: 'TEE', bundle_id: 'FANPACK', qty: 6, unit: 0, cents: 0 },
      { line_no: 102, kind: 'component', sku: 'CAP', bundle_id: 'FANPACK', qty: 3, unit: 0, cents: 0 },
    ]);
    assert.equal(of(ids[1]!).length, 4);
    assert.deepEqual(
      of(ids[2]!).map((r) => [r.kind, r.sku, r.qty]),
      [
        ['bundle', 'PINS', 4],
        ['component', 'PIN', 4],
        ['component', 'CAP', 4],
        ['item', 'CAP', 1],
      ],
    );
    assert.deepEqual(
      of(ids[3]!).map((r) => [r.kind, r.sku, r.qty]),
      [['item', 'PIN', 5]],
    );
    // the money is on the line rows only: their sum is each order's total
    const totals = await db.query(
      `SELECT o.order_id, o.total_cents::int AS total, sum(l.line_cents)::int AS lines
       FROM orders o JOIN order_lines l USING (kit_id, order_id) WHERE o.kit_id = $1 GROUP BY o.order_id, o.total_cents`,
      [kit.kitId],
    );
    for (const t of totals.rows) assert.equal(t.lines, t.total, t.order_id);

    const units = await api(`/v1/events/${eventId}/units`);
    assert.equal(units.status, 200, JSON.stringify(units.body));
    // the old kit's order (1 FANPACK + 1 TEE) counts too: it is of the same event
    assert.deepEqual(units.body, {
      eventId,
      skus: [
        { sku: 'CAP', units: 3 + 1 + 4 + 1 + 1, inBundles: 3 + 1 + 4 + 1 },
        { sku: 'PIN', units: 4 + 5, inBundles: 4 },
        { sku: 'TEE', units: 6 + 2 + 2 + 2 + 1, inBundles: 6 + 2 + 2 },
      ],
      bundles: [
        { bundleId: 'FANPACK', units: 3 + 1 + 1 },
        { bundleId: 'PINS', units: 4 },
      ],
    });
    // what this kit sold by the ledger + what it has left = its starting stock
    const mine = await db.query(
      `SELECT l.sku, sum(l.qty)::int AS units FROM order_lines l WHERE l.kit_id = $1 AND l.kind <> 'bundle' GROUP BY l.sku`,
      [kit.kitId],
    );
    for (const r of mine.rows) {
      const start = CATALOG.items.find((i) => i.sku === r.sku)!.stock;
      assert.equal(r.units + (kitStock as Record<string, number>)[r.sku as string]!, start, r.sku);
    }

    // the reservation counters reached the ledger's telemetry
    const tel = await waitFor(
      async () => {
        const res = await db.query(
          `SELECT body FROM kit_telemetry WHERE kit_id = $1 AND body ? 'reservations' ORDER BY entry_id DESC LIMIT 1`,
          [kit.kitId],
        );
        return res.rows[0]?.body as { reservations: Record<string, unknown> } | undefined;
      },
      20_000,
      'reservation counters at the hub',
    );
    assert.equal(tel.reservations['eventId'], eventId);
    assert.equal(tel.reservations['created'], 2);
    assert.equal(tel.reservations['released'], 1);
    assert.equal(tel.reservations['expired'], 1);
    assert.equal(tel.reservations['converted'], 0);
  });

  test('a redelivered order adds no lines; hostile event ids are refused', async () => {
    const before = (await db.query('SELECT count(*)::int AS n FROM order_lines')).rows[0].n;
    const ledger = hub.ledger!;
    const order = (await db.query(`SELECT body FROM orders WHERE kit_id = $1 LIMIT 1`, [kit.kitId])).rows[0]
      .body;
    const acks = await ledger.recordBatch(kit.kitId, [{ lane: 'orders', id: order.id, order }]);
    assert.equal(acks[0]?.state, 'settled');
    assert.equal((await db.query('SELECT count(*)::int AS n FROM order_lines')).rows[0].n, before);
    for (const bad of ['__proto__', '%00x', 'a'.repeat(65), '-lead', 'ev%20x']) {
      const res = await api(`/v1/events/${bad}/units`);
      assert.equal(res.status, 400, `${bad}: ${JSON.stringify(res.body)}`);
    }
    assert.equal((await api(`/v1/events/${eventId}/units`, false)).status, 401);
    const none = await api('/v1/events/no-such-event/units');
    assert.deepEqual(none.body, { eventId: 'no-such-event', skus: [], bundles: [] });
  });
});

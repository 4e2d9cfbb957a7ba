// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Pickup state reaches the hub: kits (real LMDB, checkout's OrderService with the pickup feature) sync
// through a private Mosquitto into PostgreSQL (a schema of its own); the hub's
// GET /v1/events/:eventId/pickups counts each handover once, whether its event is delivered twice or
// before its order, and names codes two kits gave alike.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import pg from 'pg';
import { topics } from '../../core/contracts/hub-wire.ts';
import { MonotonicIds } from '../../core/ids.ts';
import { LANES, replaceCatalog, scanOutbox } from '../../core/store/index.ts';
import { OrderService } from '../../services/checkout/orders.ts';
import { PickupFeature } from '../../services/checkout/pickup.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
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
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_hubpickup').replace(/-/g, '_');
const eventId = uniqueId('ev');
// the kits sell while the early slot is open; the hub judges by its own clock, decades later
const KIT_NOW = Date.parse('2001-01-01T20:05:00Z');
const CATALOG = {
  version: 1,
  eventId,
  currency: 'EUR',
  items: [{ sku: 'TEE', name: 'Tee', priceCents: 2500, stock: 1000 }],
  pickupSlots: [
    {
      id: 'early',
      startsAt: '2001-01-01T20:00:00Z',
      endsAt: '2001-01-01T20:15:00Z',
      capacity: 10,
      label: 'Early',
    },
    { id: 'late', startsAt: '2099-01-01T20:00:00Z', endsAt: '2099-01-01T20:15:00Z', capacity: 10 },
  ],
};
const big = 1_000_000_000_000;

let broker: Mosquitto;
let hub: HubService;
const kits: TestKit[] = [];
const syncs: SyncService[] = [];

async function sellingKit(name: string, newCode?: () => string) {
  const kit = await makeKit(uniqueId(name));
  kits.push(kit);
  await replaceCatalog(kit.store, CATALOG, { source: 'local' });
  const pickup = new PickupFeature(kit.store, { clock: () => KIT_NOW, ...(newCode ? { newCode } : {}) });
  const orders = new OrderService(kit.store, new MonotonicIds(), kit.vault, {
    kitId: kit.kitId,
    tokenTtlMs: 3600_000,
    limits: { maxOrderCents: big, maxUnsyncedCents: big, maxUnsyncedOrders: big, maxUnsyncedAgeS: big },
    clock: () => KIT_NOW,
    features: [pickup],
  });
  const sell = async (slot: string) =>
    (
      await orders.create(
        { lines: [{ sku: 'TEE', qty: 1 }], payment: { method: 'cash' }, pickupSlotId: slot },
        undefined,
      )
    ).order;
  return { kit, pickup, sell };
}

function ordersLane(kit: TestKit) {
  return [...scanOutbox(kit.store)].filter((e) => e.key[0] === LANES.orders);
}

async function pickups() {
  const res = await fetch(`${hub.httpUrl}/v1/events/${eventId}/pickups`, {
    headers: { authorization: `Bearer ${hub.adminToken}` },
  });
  assert.equal(res.status, 200);
  return (await res.json()) as {
    slots: Array<{
      slotId: string;
      taken: number;
      pickedUp: number;
      waiting: number;
      overdue: number;
      kits: number;
    }>;
    codeCollisions: Array<{ code: string; kits: string[] }>;
  };
}

const counts = (p: Awaited<ReturnType<typeof pickups>>) =>
  Object.fromEntries(p.slots.map((s) => [s.slotId, [s.taken, s.pickedUp, s.waiting, s.overdue]]));

async function eventRows(kitId: string, orderId: string): Promise<number> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const res = await c.query(`SELECT 1 FROM "${schema}".order_events WHERE kit_id = $1 AND order_id = $2`, [
      kitId,
      orderId,
    ]);
    return res.rows.length;
  } finally {
    await c.end();
  }
}

/** Publish a raw batch as `kitId` and wait for the hub's ack of `id`. */
async function publishAndAwaitAck(kitId: string, entries: unknown[], id: string) {
  const c = await mqtt.connectAsync(broker.url, { clientId: uniqueId('raw') });
  try {
    await c.subscribeAsync(topics.acks(kitId), { qos: 1 });
    const acked = new Promise<void>((resolve) =>
      c.on('message', (_t, p) => {
        if (String(p).includes(JSON.stringify(id))) resolve();
      }),
    );
    await c.publishAsync(topics.orders(kitId), JSON.stringify({ v: 1, kitId, sentAt: Date.now(), entries }), {
      qos: 1,
    });
    await waitFor(() =>
      Promise.race([acked.then(() => true), new Promise((r) => setTimeout(r, 100, false))]),
    );
  } finally {
    await c.endAsync();
  }
}

describe('pickup state at the hub', () => {
  before(async () => {
    broker = await mosquitto();
    hub = await startHub({ schema, brokerUrl: broker.url });
    const put = await fetch(`${hub.httpUrl}/v1/events/${eventId}/catalog`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(CATALOG),
    });
    assert.ok(put.status === 200 || put.status === 202, await put.text());
  });

  after(async () => {
    for (const s of syncs) await s.stop();
    await hub?.stop();
    await broker?.stop();
    for (const k of kits) await k.close();
    await dropSchema(schema);
  });

  test('a handover on the kit shows at the hub once, also when its event is delivered again', async () => {
    const { kit, pickup, sell } = await sellingKit('kit-a');
    const a = await sell('early');
    const b = await sell('early');
    await sell('late');
    await pickup.pickUp(a.pickup!.code.toLowerCase(), 'term-1', '127.0.0.1');
    const event = ordersLane(kit).find((e) => e.key[1] === `${a.id}~picked_up`);
    assert.ok(event, 'the picked_up event waits behind its order');
    syncs.push(startSync(kit, broker.url));
    // every entry of the orders lane is acked and leaves the outbox, the event included
    await waitFor(() => ordersLane(kit).length === 0, 30_000, 'orders lane drained');
    const p = await waitFor(async () => {
      const v = await pickups();
      return v.slots.find((s) => s.slotId === 'early')?.pickedUp === 1 ? v : undefined;
    });
    assert.deepEqual(counts(p), { early: [2, 1, 0, 1], late: [1, 0, 1, 0] });
    assert.equal(p.slots[0]?.kits, 1);
    assert.equal(await eventRows(kit.kitId, a.id), 1);
    assert.equal(await eventRows(kit.kitId, b.id), 0);
    // the same event delivered again changes nothing
    const again = { lane: 'orders', id: `${a.id}~picked_up`, event: event.value.body };
    await publishAndAwaitAck(kit.kitId, [again, again], `${a.id}~picked_up`);
    assert.deepEqual(counts(await pickups()), { early: [2, 1, 0, 1], late: [1, 0, 1, 0] });
    assert.equal(await eventRows(kit.kitId, a.id), 1);
  });

  test('an event that arrives before its order counts once the order is there, and shared codes are named', async () => {
    const first = await pickups();
    // kit b gives a code kit a already gave (two kits of one event draw codes independently)
    const codeOfA = (await kitACode()) as string;
    const draws = [codeOfA];
    const { kit, pickup, sell } = await sellingKit('kit-b', () => draws.shift() ?? 'ZZZZZZ');
    const d = await sell('early');
    assert.equal(d.pickup?.code, codeOfA);
    await pickup.pickUp(codeOfA, 'admin', '127.0.0.1');
    const event = ordersLane(kit).find((e) => e.key[1] === `${d.id}~picked_up`);
    assert.ok(event);
    // the event alone, before its order
    await publishAndAwaitAck(
      kit.kitId,
      [{ lane: 'orders', id: `${d.id}~picked_up`, event: event.value.body }],
      `${d.id}~picked_up`,
    );
    assert.equal(await eventRows(kit.kitId, d.id), 1);
    assert.deepEqual(counts(await pickups()), counts(first), 'no order yet: nothing to count');
    syncs.push(startSync(kit, broker.url));
    await waitFor(() => ordersLane(kit).length === 0, 30_000, 'orders lane drained');
    const p = await waitFor(async () => {
      const v = await pickups();
      return v.slots.find((s) => s.slotId === 'early')?.taken === 3 ? v : undefined;
    });
    assert.deepEqual(counts(p), { early: [3, 2, 0, 1], late: [1, 0, 1, 0] });
    assert.equal(p.slots[0]?.kits, 2);
    assert.equal(await eventRows(kit.kitId, d.id), 1);
    assert.deepEqual(p.codeCollisions, [{ code: codeOfA, kits: [kits[0]!.kitId, kit.kitId].sort() }]);
  });

  test('the pickups endpoint refuses hostile event ids and strangers', async () => {
    const get = (id: string, auth = true) =>
      fetch(`${hub.httpUrl}/v1/events/${id}/pickups`, {
        headers: auth ? { authorization: `Bearer ${hub.adminToken}` } : {},
      });
    assert.equal((await get(eventId, false)).status, 401);
    for (const id of ['%00', '__proto__', 'x'.repeat(65), '..%2F..', '%F0%9F%92%A9']) {
      const res = await get(id);
      assert.equal(res.status, 400, id);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'VALIDATION');
    }
    const empty = (await (await get('no-such-event')).json()) as { slots: unknown[] };
    assert.deepEqual(empty.slots, []);
  });
});

/** The code of kit a's picked-up order, as the ledger holds it. */
async function kitACode(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const res = await c.query<{ code: string }>(
      `SELECT o.body->'pickup'->>'code' AS code FROM "${schema}".orders o
       JOIN "${schema}".order_status s USING (kit_id, order_id)
       WHERE o.kit_id = $1 AND s.picked_up_at IS NOT NULL`,
      [kits[0]!.kitId],
    );
    return res.rows[0]?.code;
  } finally {
    await c.end();
  }
}

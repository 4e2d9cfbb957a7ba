// Property test of reservations (docs/drops.md#reservations): random schedules of reserve, convert,
// order, release, read, expire (an injected clock moves on, the sweep runs) and restart (the app and
// the store closed and opened again on the same data dir), some steps run concurrently, all through
// checkout's HTTP app on a real LMDB store. After every step: no SKU oversold, stock + held + sold =
// initial per SKU, each hold in one state that agrees with the orders and the per-event counters; a
// conversion after expiry never wins. At the end every hold has ended in exactly one state.
// A failing run prints its seed; replay with POPKIT_RESERVATIONS_SEED=<seed>.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { MonotonicIds } from '../../core/ids.ts';
import { moduleLogger } from '../../core/logger.ts';
import {
  allOrders,
  commitWatch,
  type KitStore,
  openKitStore,
  readAllStock,
  readIdHighWater,
  stockNeeds,
} from '../../core/store/index.ts';
import { allReservations, reservationCounters } from '../../core/store/reservations.ts';
import { openTokenVault } from '../../core/token-key.ts';
import { buildApp, type CheckoutApp } from '../../services/checkout/app.ts';
import { OrderService } from '../../services/checkout/orders.ts';
import { ReservationService } from '../../services/checkout/reservations.ts';
import { StoreGuard } from '../../services/checkout/store-guard.ts';
import { ADMIN, auth, tempDir } from '../support/checkout.ts';

const INITIAL = { A: 7, B: 4 } as const;
const TTL_MS = 30_000;
const EVENT = 'ev-prop';
const CATALOG = {
  version: 1,
  eventId: EVENT,
  currency: 'USD',
  items: [
    { sku: 'A', name: 'A', priceCents: 1000, stock: INITIAL.A },
    { sku: 'B', name: 'B', priceCents: 1500, stock: INITIAL.B },
  ],
  bundles: [
    {
      id: 'P',
      name: 'Pack',
      components: [
        { sku: 'A', qty: 2 },
        { sku: 'B', qty: 1 },
      ],
      priceCents: 3000,
      maxPerOrder: 3,
    },
  ],
};

type LineIn = { sku: string; qty: number } | { bundle: string; qty: number };

/** One kit on an injected clock: the app, its store and its services, closed and opened on restart. */
class Rig {
  now = Date.UTC(2026, 10, 30, 21, 0, 0);
  store!: KitStore;
  app!: CheckoutApp;
  reservations!: ReservationService;
  readonly dataDir = tempDir('popkit-resprop-');

  async open(): Promise<void> {
    const clock = () => this.now;
    const store = openKitStore(this.dataDir);
    const vault = openTokenVault(path.join(this.dataDir, 'token.key'), undefined, () => false).vault;
    let orders: OrderService | undefined;
    const reservations = new ReservationService(store, {
      ttlMs: TTL_MS,
      maxPerAddress: 1000,
      orders: () => orders as OrderService,
      clock,
    });
    orders = new OrderService(store, new MonotonicIds(readIdHighWater(store), clock), vault, {
      kitId: 'kit-prop',
      tokenTtlMs: 3600_000,
      limits: { maxOrderCents: 1e9, maxUnsyncedCents: 1e12, maxUnsyncedOrders: 1e9, maxUnsyncedAgeS: 1e9 },
      clock,
      features: [reservations],
    });
    this.app = await buildApp({
      store,
      orders,
      guard: new StoreGuard(commitWatch(store), this.dataDir, 0),
      kitId: 'kit-prop',
      board: 'sim',
      dataDir: this.dataDir,
      adminToken: ADMIN,
      buyerRatePerMin: 1_000_000,
      logger: moduleLogger('checkout'),
      reservations,
    });
    this.store = store;
    this.reservations = reservations;
    // what main.ts's sweeper does first at start: end the holds that expired while the kit was down
    await reservations.sweep();
  }

  async close(): Promise<void> {
    await this.app.close();
    await this.store.close();
  }
}

type Op =
  | { op: 'reserve'; lines: LineIn[] }
  | { op: 'convert'; pick: number }
  | { op: 'convertWrong'; pick: number }
  | { op: 'order'; lines: LineIn[] }
  | { op: 'release'; pick: number }
  | { op: 'read'; pick: number }
  | { op: 'advance'; ms: number }
  | { op: 'sweep' }
  | { op: 'restart' };

const lineArb: fc.Arbitrary<LineIn> = fc.oneof(
  fc.record({ sku: fc.constantFrom('A', 'B'), qty: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ bundle: fc.constant('P'), qty: fc.integer({ min: 1, max: 2 }) }),
);
const linesArb = fc.array(lineArb, { minLength: 1, maxLength: 2 });
const pick = fc.nat(50);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('reserve' as const), lines: linesArb }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('convert' as const), pick }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('convertWrong' as const), pick }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('order' as const), lines: linesArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('release' as const), pick }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('read' as const), pick }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 40_000 }) }),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'sweep' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'restart' as const }) },
);
/** A step: one op, or several at once (their interleaving is the store's to get right). */
const stepArb = fc.oneof(
  { weight: 3, arbitrary: opArb.map((o) => [o]) },
  {
    weight: 1,
    arbitrary: fc.array(
      opArb.filter((o) => o.op !== 'restart' && o.op !== 'advance'),
      { minLength: 2, maxLength: 5 },
    ),
  },
);

const staffHeaders = auth;

/** Runs one op and checks its answer (`sequential`: it ran alone, so a live hold must convert). */
async function runOp(rig: Rig, ids: string[], o: Op, sequential: boolean): Promise<void> {
  const app = rig.app;
  const chosen = (n: number) => (ids.length === 0 ? undefined : ids[n % ids.length]);
  switch (o.op) {
    case 'reserve': {
      const res = await app.inject({ method: 'POST', url: '/v1/reservations', payload: { lines: o.lines } });
      if (res.statusCode === 201) ids.push(res.json().id);
      else refusedAsExpected(res.body);
      return;
    }
    case 'convert':
    case 'convertWrong': {
      const id = chosen(o.pick);
      if (!id) return;
      const rec = rig.store.reservations.get(id);
      assert.ok(rec);
      const held = rec.lines.map((l) =>
        l.components ? { bundle: l.sku, qty: l.qty } : { sku: l.sku, qty: l.qty },
      );
      // the wrong lines: one more of the first line
      const lines = o.op === 'convert' ? held : held.map((l, i) => (i === 0 ? { ...l, qty: l.qty + 1 } : l));
      const before = { status: rec.status, expiresAt: rec.expiresAt, now: rig.now };
      const res = await app.inject({
        method: 'POST',
        url: '/v1/orders',
        headers: staffHeaders,
        payload: { lines, payment: { method: 'cash' }, reservationId: id },
      });
      if (res.statusCode === 201) {
        assert.equal(o.op, 'convert', `a conversion with other lines won: ${res.body}`);
        assert.ok(before.now < before.expiresAt, 'a conversion at or after expiry won');
      } else {
        const code = res.json().error.code;
        assert.ok(
          ['RESERVATION_USED', 'RESERVATION_EXPIRED', 'RESERVATION_MISMATCH'].includes(code),
          res.body,
        );
        if (sequential && o.op === 'convert' && before.status === 'held' && before.now < before.expiresAt)
          assert.fail(`a live hold did not convert: ${res.body}`);
      }
      return;
    }
    case 'order': {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/orders',
        headers: staffHeaders,
        payload: { lines: o.lines, payment: { method: 'cash' } },
      });
      if (res.statusCode !== 201) refusedAsExpected(res.body);
      return;
    }
    case 'release': {
      const id = chosen(o.pick);
      if (!id) return;
      const res = await app.inject({ method: 'DELETE', url: `/v1/reservations/${id}` });
      if (res.statusCode !== 200)
        assert.ok(['RESERVATION_USED', 'RESERVATION_EXPIRED'].includes(res.json().error.code), res.body);
      return;
    }
    case 'read': {
      const id = chosen(o.pick);
      if (!id) return;
      const res = await app.inject({ method: 'GET', url: `/v1/reservations/${id}` });
      assert.equal(res.statusCode, 200, res.body);
      const r = res.json();
      // read lazily: a hold past its time is never shown held
      if (rig.now >= new Date(r.expiresAt).getTime()) assert.notEqual(r.status, 'held');
      return;
    }
    case 'advance':
      rig.now += o.ms;
      return;
    case 'sweep':
      await rig.reservations.sweep();
      return;
    case 'restart':
      await rig.close();
      await rig.open();
      return;
  }
}

/** SOLD_OUT, or the bundle's maxPerOrder (the generator may ask for more than it allows). */
function refusedAsExpected(body: string): void {
  const e = JSON.parse(body).error;
  assert.ok(e.code === 'SOLD_OUT' || (e.code === 'VALIDATION' && e.details?.maxPerOrder === 3), body);
}

function checkInvariants(rig: Rig, ids: string[], where: string): void {
  const stock = readAllStock(rig.store);
  const held = new Map<string, number>();
  const sold = new Map<string, number>();
  const recs = [...allReservations(rig.store)];
  assert.equal(recs.length, ids.length, `${where}: every acknowledged hold is stored once`);
  const byOrder = new Map<string, string>();
  for (const o of allOrders(rig.store)) {
    for (const [sku, n] of stockNeeds(o.lines)) sold.set(sku, (sold.get(sku) ?? 0) + n);
    if (o.reservationId) {
      assert.ok(!byOrder.has(o.reservationId), `${where}: hold ${o.reservationId} converted twice`);
      byOrder.set(o.reservationId, o.id);
    }
  }
  const states = { held: 0, converted: 0, expired: 0, released: 0 };
  for (const r of recs) {
    states[r.status]++;
    if (r.status === 'held')
      for (const [sku, n] of stockNeeds(r.lines)) held.set(sku, (held.get(sku) ?? 0) + n);
    if (r.status === 'converted') assert.equal(byOrder.get(r.id), r.orderId, `${where}: ${r.id}'s order`);
    else assert.ok(!byOrder.has(r.id), `${where}: ${r.id} is ${r.status} but an order converted it`);
    const indexed = rig.store.expiries.get([r.expiresAt, r.id]);
    assert.equal(
      indexed,
      r.status === 'held' ? 'reservation' : undefined,
      `${where}: ${r.id}'s expiry entry`,
    );
  }
  for (const sku of Object.keys(INITIAL) as Array<keyof typeof INITIAL>) {
    const s = stock[sku] ?? 0;
    assert.ok(s >= 0, `${where}: ${sku} oversold`);
    assert.equal(
      s + (held.get(sku) ?? 0) + (sold.get(sku) ?? 0),
      INITIAL[sku],
      `${where}: ${sku} stock ${s} + held ${held.get(sku) ?? 0} + sold ${sold.get(sku) ?? 0} != ${INITIAL[sku]}`,
    );
  }
  const c = reservationCounters(rig.store, EVENT);
  assert.deepEqual(
    { created: c.created, converted: c.converted, expired: c.expired, released: c.released },
    {
      created: recs.length,
      converted: states.converted,
      expired: states.expired,
      released: states.released,
    },
    `${where}: counters agree with the holds`,
  );
}

test('no schedule of reserve / convert / order / release / expire / restart oversells or ends a hold twice', async () => {
  const seed = Number(process.env['POPKIT_RESERVATIONS_SEED'] ?? Date.now() % 2 ** 31);
  process.stdout.write(`# reservations property seed ${seed} (replay: POPKIT_RESERVATIONS_SEED=${seed})\n`);
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(stepArb, { minLength: 5, maxLength: 30 }), async (steps) => {
      runs++;
      const rig = new Rig();
      await rig.open();
      const ids: string[] = [];
      try {
        const put = await rig.app.inject({
          method: 'PUT',
          url: '/v1/catalog',
          headers: auth,
          payload: CATALOG,
        });
        assert.equal(put.statusCode, 200, put.body);
        for (const [i, step] of steps.entries()) {
          const sequential = step.length === 1;
          await Promise.all(step.map((o) => runOp(rig, ids, o, sequential)));
          checkInvariants(rig, ids, `step ${i} ${JSON.stringify(step)}`);
        }
        // the end: every hold's time is up; after a sweep, none is left held
        rig.now += TTL_MS;
        await rig.reservations.sweep();
        checkInvariants(rig, ids, 'end');
        for (const r of allReservations(rig.store)) assert.notEqual(r.status, 'held', `${r.id} never ended`);
        assert.deepEqual(readAllStock(rig.store), stockLeft(rig.store));
      } catch (err) {
        process.stdout.write(`# failed (seed ${seed}): ${(err as Error).message}\n`);
        throw err;
      } finally {
        await rig.close();
      }
    }),
    {
      seed,
      numRuns: Number(process.env['POPKIT_RESERVATIONS_RUNS'] ?? 40),
      endOnFailure: true,
    },
  );
  assert.ok(runs > 0);
});

/** What stock must be once nothing is held: initial less what orders sold. */
function stockLeft(store: KitStore): Record<string, number> {
  const left: Record<string, number> = { ...INITIAL };
  for (const o of allOrders(store))
    for (const [sku, n] of stockNeeds(o.lines)) left[sku] = (left[sku] ?? 0) - n;
  return left;
}

test("hold ids taken in the same millisecond share no counter: the next buyer's id cannot be derived", async () => {
  const rig = new Rig();
  await rig.open();
  try {
    await rig.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: CATALOG });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await rig.app.inject({
        method: 'POST',
        url: '/v1/reservations',
        payload: { lines: [{ sku: 'A', qty: 1 }] },
      });
      assert.equal(res.statusCode, 201, res.body);
      ids.push(res.json().id);
    }
    // the clock did not move: one time part, and tails that differ in most places (an increment
    // would change one or two characters at the end)
    assert.equal(new Set(ids.map((id) => id.slice(0, 10))).size, 1);
    for (let i = 1; i < ids.length; i++) {
      const a = ids[i - 1]!.slice(10);
      const b = ids[i]!.slice(10);
      let differ = 0;
      for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) differ++;
      assert.ok(differ >= 6, `${ids[i - 1]} then ${ids[i]}`);
    }
  } finally {
    await rig.close();
  }
});

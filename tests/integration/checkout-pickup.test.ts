// Pickup windows against a real checkout app on real LMDB with an injected clock: slot capacity and
// codes decided inside the order's transaction, the handover exactly once (also when the same code
// races itself), held, released and declined orders refused, wrong codes limited per terminal and per
// address, the queue, the receipt's QR, status and metrics, and hostile input changing nothing.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import QRCode from 'qrcode';
import { kitStatusView } from '../../core/contracts/kit-status.ts';
import { MonotonicIds } from '../../core/ids.ts';
import { moduleLogger } from '../../core/logger.ts';
import {
  applyOrderAck,
  commitWatch,
  LANES,
  openKitStore,
  readAllStock,
  scanOutbox,
} from '../../core/store/index.ts';
import { normalisePickupCode, releaseSlotInTxn, slotPickedUp, slotTaken } from '../../core/store/pickup.ts';
import { TokenVault } from '../../core/token-vault.ts';
import { buildApp } from '../../services/checkout/app.ts';
import type { OrderFeature } from '../../services/checkout/order-features.ts';
import { OrderService } from '../../services/checkout/orders.ts';
import { PickupFeature } from '../../services/checkout/pickup.ts';
import { StoreGuard } from '../../services/checkout/store-guard.ts';
import { ADMIN, auth, inspectStore, tempDir } from '../support/checkout.ts';

const T0 = Date.parse('2026-06-01T20:00:00.000Z');
const EVENT = 'ev-pickup';
const CATALOG = {
  version: 1,
  eventId: EVENT,
  currency: 'EUR',
  items: [
    { sku: 'TEE', name: 'Tee', priceCents: 2500, stock: 1000 },
    { sku: 'CAP', name: 'Cap', priceCents: 1500, stock: 1000 },
  ],
  pickupSlots: [
    {
      id: 's1',
      startsAt: '2026-06-01T20:00:00Z',
      endsAt: '2026-06-01T20:15:00Z',
      capacity: 3,
      label: 'First',
    },
    { id: 's2', startsAt: '2026-06-01T20:15:00Z', endsAt: '2026-06-01T20:30:00Z', capacity: 100 },
  ],
};
const CODE_RE = /^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{6}$/;
const big = 1_000_000_000_000;

/** A test-only feature ahead of pickup: orders whose body pays with this token are stored `held`. */
const holdTokens: OrderFeature = {
  name: 'test-holds',
  admit(d) {
    if (d.body.payment.method === 'token' && d.body.payment.token === 'tok_hold_me_please')
      d.extra.status = 'held';
  },
};

async function rig(opts: { newCode?: () => string } = {}) {
  const clock = { now: T0 };
  const dataDir = tempDir('popkit-pickup-');
  const store = openKitStore(dataDir);
  const pickup = new PickupFeature(store, {
    clock: () => clock.now,
    ...(opts.newCode ? { newCode: opts.newCode } : {}),
  });
  const orders = new OrderService(store, new MonotonicIds(), new TokenVault(randomBytes(32)), {
    kitId: 'kit-pickup',
    tokenTtlMs: 3600_000,
    limits: { maxOrderCents: big, maxUnsyncedCents: big, maxUnsyncedOrders: big, maxUnsyncedAgeS: big },
    clock: () => clock.now,
    features: [holdTokens, pickup],
  });
  const app = await buildApp({
    store,
    orders,
    guard: new StoreGuard(commitWatch(store), dataDir, 0),
    kitId: 'kit-pickup',
    board: 'sim',
    dataDir,
    adminToken: ADMIN,
    buyerRatePerMin: 10_000,
    logger: moduleLogger('checkout-test', {}),
    pickup,
  });
  const put = await app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: CATALOG });
  assert.equal(put.statusCode, 200, put.body);
  return {
    clock,
    store,
    app,
    dataDir,
    pickup,
    async close() {
      await app.close();
      await store.close();
    },
    order(payload: Record<string, unknown>, headers: Record<string, string> = auth) {
      return app.inject({ method: 'POST', url: '/v1/orders', headers, payload });
    },
    pick(code: unknown, headers: Record<string, string> = auth, remoteAddress = '127.0.0.1') {
      return app.inject({ method: 'POST', url: '/v1/pickups', headers, payload: { code }, remoteAddress });
    },
    async terminal(name: string): Promise<{ id: string; headers: Record<string, string> }> {
      const p = await app.inject({
        method: 'POST',
        url: '/v1/terminals/pairings',
        headers: auth,
        payload: { name },
      });
      const r = await app.inject({
        method: 'POST',
        url: '/v1/terminals/redeem',
        payload: { code: p.json().code },
      });
      assert.equal(r.statusCode, 201, r.body);
      return { id: r.json().id, headers: { authorization: `Bearer ${r.json().token}` } };
    },
  };
}
type Rig = Awaited<ReturnType<typeof rig>>;

const cash = (slot?: string, sku = 'TEE') => ({
  lines: [{ sku, qty: 1 }],
  payment: { method: 'cash' },
  ...(slot !== undefined ? { pickupSlotId: slot } : {}),
});

/** Everything a refused request must leave as it was. */
function snapshot(r: Rig) {
  return JSON.stringify({
    stock: readAllStock(r.store),
    orders: [...r.store.orders.getRange()].length,
    outbox: [...scanOutbox(r.store)].map((e) => e.key),
    counts: [...r.store.slotCounts.getRange()],
    codes: [...r.store.pickupCodes.getRange()],
  });
}

/** What the holds feature does when it lets a held order go: status and slot in one transaction. */
async function releaseAsHoldsDo(r: Rig, orderId: string) {
  const held = r.store.orders.get(orderId)!;
  await r.store.root.transaction(() => {
    void r.store.orders.put(held.id, { ...held, status: 'released' });
    releaseSlotInTxn(r.store, held);
  });
}

function pickupEvents(r: Rig, orderId: string) {
  return [...scanOutbox(r.store)].filter(
    (e) => e.key[0] === LANES.orders && e.key[1] === `${orderId}~picked_up`,
  );
}

describe('pickup windows', () => {
  test('an order takes a place in its slot and gets a short unambiguous code, shown in the answer', async () => {
    const r = await rig();
    try {
      const res = await r.order(cash('s1'));
      assert.equal(res.statusCode, 201, res.body);
      const o = res.json();
      assert.equal(o.pickup.slotId, 's1');
      assert.match(o.pickup.code, CODE_RE);
      assert.equal(o.pickup.startsAt, '2026-06-01T20:00:00Z');
      assert.equal(o.pickup.endsAt, '2026-06-01T20:15:00Z');
      assert.equal(o.pickup.pickedUpBy, undefined, 'who handed over is not in the public answer');
      const again = (await r.app.inject({ method: 'GET', url: `/v1/orders/${o.id}` })).json();
      assert.deepEqual(again.pickup, o.pickup);
      const cat = (await r.app.inject({ method: 'GET', url: '/v1/catalog' })).json();
      assert.deepEqual(
        cat.pickupSlots.map((s: { id: string; remaining: number }) => [s.id, s.remaining]),
        [
          ['s1', 2],
          ['s2', 100],
        ],
      );
      // an order without a slot takes none
      const plain = await r.order(cash());
      assert.equal(plain.statusCode, 201);
      assert.equal(plain.json().pickup, undefined);
      assert.equal(slotTaken(r.store, EVENT, 's1'), 1);
      // an idempotent replay is the same order: no second place, the same code
      const key = { ...auth, 'idempotency-key': 'pickup-replay-1' };
      const a = await r.order(cash('s2'), key);
      const b = await r.order(cash('s2'), key);
      assert.equal(a.statusCode, 201);
      assert.equal(b.statusCode, 200);
      assert.equal(b.json().pickup.code, a.json().pickup.code);
      assert.equal(slotTaken(r.store, EVENT, 's2'), 1);
    } finally {
      await r.close();
    }
  });

  test('an unknown slot is VALIDATION and an ended one SALE_ENDED, and neither writes anything', async () => {
    const r = await rig();
    try {
      const before = snapshot(r);
      for (const id of ['nope', 'constructor', 'toString', 'hasOwnProperty']) {
        const res = await r.order(cash(id));
        assert.equal(res.statusCode, 400, id);
        assert.equal(res.json().error.code, 'VALIDATION');
        assert.equal(res.json().error.details.pickupSlotId, id);
        assert.deepEqual(res.json().error.details.slots, ['s1', 's2']);
      }
      r.clock.now = Date.parse('2026-06-01T20:15:00Z');
      const ended = await r.order(cash('s1'));
      assert.equal(ended.statusCode, 410, ended.body);
      assert.equal(ended.json().error.code, 'SALE_ENDED');
      assert.deepEqual(ended.json().error.details, { pickupSlotId: 's1', endsAt: '2026-06-01T20:15:00Z' });
      assert.equal(snapshot(r), before);
      // the next slot still sells
      assert.equal((await r.order(cash('s2'))).statusCode, 201);
    } finally {
      await r.close();
    }
  });

  test('hostile slot ids are refused by the schema and change nothing', async () => {
    const r = await rig();
    try {
      const before = snapshot(r);
      for (const v of [
        '',
        '\u0000',
        's1\u0000',
        'x'.repeat(65),
        'x'.repeat(100_000),
        '__proto__',
        '../s1',
        7,
        null,
        ['s1'],
        { id: 's1' },
      ]) {
        const res = await r.order({ ...cash(), pickupSlotId: v });
        assert.ok(
          [400, 413].includes(res.statusCode),
          `${JSON.stringify(v).slice(0, 20)} → ${res.statusCode}`,
        );
      }
      const proto = await r.app.inject({
        method: 'POST',
        url: '/v1/orders',
        headers: { ...auth, 'content-type': 'application/json' },
        payload:
          '{"lines":[{"sku":"TEE","qty":1}],"payment":{"method":"cash"},"__proto__":{"pickupSlotId":"s1"}}',
      });
      assert.equal(proto.statusCode, 400);
      assert.equal(snapshot(r), before);
    } finally {
      await r.close();
    }
  });

  test('capacity is checked inside the transaction: concurrent orders never overfill a slot', async () => {
    const r = await rig();
    try {
      const results = await Promise.all(Array.from({ length: 12 }, () => r.order(cash('s1'))));
      const ok = results.filter((x) => x.statusCode === 201);
      const full = results.filter((x) => x.statusCode === 409);
      assert.equal(ok.length, 3);
      assert.equal(full.length, 9);
      for (const f of full) {
        assert.equal(f.json().error.code, 'SLOT_FULL');
        assert.deepEqual(f.json().error.details, { pickupSlotId: 's1', capacity: 3 });
      }
      // a refused order took no stock and wrote no order
      assert.equal(readAllStock(r.store)['TEE'], 997);
      assert.equal([...r.store.orders.getRange()].length, 3);
      const codes = ok.map((x) => x.json().pickup.code);
      assert.equal(new Set(codes).size, 3);
      const cat = (await r.app.inject({ method: 'GET', url: '/v1/catalog' })).json();
      assert.equal(cat.pickupSlots[0].remaining, 0);
    } finally {
      await r.close();
    }
  });

  test('a code already used on this kit is never given twice (checked in the transaction)', async () => {
    const draws = ['AAAAAA', 'AAAAAA', 'AAAAAA', 'BBBBBB'];
    const r = await rig({ newCode: () => draws.shift() ?? 'ZZZZZZ' });
    try {
      const a = (await r.order(cash('s2'))).json();
      const b = (await r.order(cash('s2'))).json();
      assert.equal(a.pickup.code, 'AAAAAA');
      assert.equal(b.pickup.code, 'BBBBBB');
      // every draw taken: refused, nothing written
      const stuck = await rig({ newCode: () => 'CCCCCC' });
      try {
        assert.equal((await stuck.order(cash('s2'))).statusCode, 201);
        const before = snapshot(stuck);
        const res = await stuck.order(cash('s2'));
        assert.equal(res.statusCode, 500);
        assert.equal(res.json().error.code, 'INTERNAL');
        assert.equal(snapshot(stuck), before);
      } finally {
        await stuck.close();
      }
    } finally {
      await r.close();
    }
  });

  test('staff hand an order over once: case and confusable characters forgiven, the event queued with it', async () => {
    const r = await rig();
    try {
      const t = await r.terminal('counter');
      const o = (await r.order(cash('s1'))).json();
      const code: string = o.pickup.code;
      // as a person might type it: lower case, a dash, 0 as o, 1 as l
      const typed = `${code.slice(0, 3)}-${code.slice(3)}`
        .toLowerCase()
        .replace(/0/g, 'o')
        .replace(/1/g, 'l');
      assert.equal(normalisePickupCode(typed), code);
      r.clock.now = T0 + 60_000;
      const res = await r.pick(typed, t.headers);
      assert.equal(res.statusCode, 200, res.body);
      const at = new Date(T0 + 60_000).toISOString();
      assert.deepEqual(res.json(), {
        orderId: o.id,
        code,
        slotId: 's1',
        pickedUpAt: at,
        pickedUpBy: t.id,
        lines: [{ sku: 'TEE', name: 'Tee', qty: 1 }],
      });
      assert.equal(r.store.orders.get(o.id)?.pickup?.pickedUpBy, t.id);
      const events = pickupEvents(r, o.id);
      assert.equal(events.length, 1);
      assert.deepEqual(events[0]?.value.body, { type: 'picked_up', orderId: o.id, at, by: t.id });
      const got = (await r.app.inject({ method: 'GET', url: `/v1/orders/${o.id}` })).json();
      assert.equal(got.pickup.pickedUpAt, at);
      // a second entry, by anyone, says when and by whom
      r.clock.now = T0 + 120_000;
      const again = await r.pick(code, auth);
      assert.equal(again.statusCode, 409);
      assert.equal(again.json().error.code, 'ALREADY_PICKED_UP');
      assert.deepEqual(again.json().error.details, { orderId: o.id, pickedUpAt: at, pickedUpBy: t.id });
      assert.equal(pickupEvents(r, o.id).length, 1);
      // the admin token hands over as `admin`
      const o2 = (await r.order(cash('s1'))).json();
      assert.equal((await r.pick(o2.pickup.code, auth)).json().pickedUpBy, 'admin');
      assert.equal(slotPickedUp(r.store, EVENT, 's1'), 2);
      // durable: a fresh process sees the handover and its event
      await r.close();
      const seen = await inspectStore(r.dataDir);
      assert.equal(seen.orders.find((x) => x.id === o.id)?.pickup?.pickedUpAt, at);
      assert.ok(seen.outbox.some((e) => e.key[1] === `${o.id}~picked_up`));
    } finally {
      await r.close().catch(() => undefined);
    }
  });

  test('the same code entered many times at once is handed over exactly once', async () => {
    const r = await rig();
    try {
      const [a, b] = await Promise.all([r.terminal('a'), r.terminal('b')]);
      const o = (await r.order(cash('s2'))).json();
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, i) => r.pick(o.pickup.code, (i % 2 ? a : b).headers)),
      );
      assert.equal(results.filter((x) => x.statusCode === 200).length, 1);
      const dup = results.filter((x) => x.statusCode === 409);
      assert.equal(dup.length, 15);
      for (const d of dup) assert.equal(d.json().error.code, 'ALREADY_PICKED_UP');
      assert.equal(pickupEvents(r, o.id).length, 1);
      assert.equal(slotPickedUp(r.store, EVENT, 's2'), 1);
    } finally {
      await r.close();
    }
  });

  test('held orders are NOT_PAID, released ones refused, declined cards NOT_PAID; none changes', async () => {
    const r = await rig();
    try {
      const held = (
        await r.order({ ...cash('s2'), payment: { method: 'token', token: 'tok_hold_me_please' } })
      ).json();
      assert.equal(held.status, 'held');
      const released = (
        await r.order({ ...cash('s2'), payment: { method: 'token', token: 'tok_hold_me_please' } })
      ).json();
      await releaseAsHoldsDo(r, released.id);
      const declined = (
        await r.order({ ...cash('s2'), payment: { method: 'token', token: 'tok_decline_soon' } })
      ).json();
      await applyOrderAck(r.store, declined.id, { state: 'declined', reason: 'insufficient_funds' });
      const before = snapshot(r);
      const h = await r.pick(held.pickup.code);
      assert.equal(h.statusCode, 409);
      assert.equal(h.json().error.code, 'NOT_PAID');
      assert.equal(h.json().error.details.status, 'held');
      const rel = await r.pick(released.pickup.code);
      assert.equal(rel.statusCode, 409);
      assert.equal(rel.json().error.code, 'CONFLICT');
      assert.match(rel.json().error.message, /released/);
      const d = await r.pick(declined.pickup.code);
      assert.equal(d.statusCode, 409);
      assert.equal(d.json().error.code, 'NOT_PAID');
      assert.equal(d.json().error.details.declineReason, 'insufficient_funds');
      assert.equal(snapshot(r), before);
      // a released order is in no queue; the held one waits
      const q = (await r.app.inject({ method: 'GET', url: '/v1/pickups', headers: auth })).json();
      assert.deepEqual(
        q.orders.map((x: { orderId: string; status: string }) => [x.orderId, x.status]).sort(),
        [
          [declined.id, 'accepted'],
          [held.id, 'held'],
        ].sort(),
      );
    } finally {
      await r.close();
    }
  });

  test('wrong codes are limited per terminal and per address; a right code then waits too', async () => {
    const r = await rig();
    try {
      const [a, b] = await Promise.all([r.terminal('a'), r.terminal('b')]);
      const o = (await r.order(cash('s2'))).json();
      const o2 = (await r.order(cash('s2'))).json();
      for (let i = 0; i < 10; i++) {
        const res = await r.pick(`ZZZZ${String(i).padStart(2, '2')}`, a.headers, '10.0.0.1');
        assert.equal(res.statusCode, 404, res.body);
        assert.equal(res.json().error.code, 'NOT_FOUND');
      }
      const limited = await r.pick(o.pickup.code, a.headers, '10.0.0.1');
      assert.equal(limited.statusCode, 429);
      assert.equal(limited.json().error.code, 'TOO_MANY_REQUESTS');
      assert.equal(limited.json().error.details.retryAfterS, 60);
      // the same terminal from elsewhere: still limited; another terminal from the same address: too
      assert.equal((await r.pick(o.pickup.code, a.headers, '10.0.0.9')).statusCode, 429);
      assert.equal((await r.pick(o.pickup.code, b.headers, '10.0.0.1')).statusCode, 429);
      assert.equal(r.store.orders.get(o.id)?.pickup?.pickedUpAt, undefined);
      // another terminal elsewhere is not held up
      assert.equal((await r.pick(o2.pickup.code, b.headers, '10.0.0.2')).statusCode, 200);
      // a minute later the counter may try again
      r.clock.now += 61_000;
      assert.equal((await r.pick(o.pickup.code, a.headers, '10.0.0.1')).statusCode, 200);
    } finally {
      await r.close();
    }
  });

  test('hostile pickup input is refused with a coded error and changes nothing', async () => {
    const r = await rig();
    try {
      const t = await r.terminal('t');
      const o = (await r.order(cash('s1'))).json();
      const before = snapshot(r);
      for (const v of [
        '',
        '\u0000',
        `${o.pickup.code}\u0000`,
        'x'.repeat(33),
        'x'.repeat(200_000),
        '<svg>',
        7,
        null,
        true,
        [o.pickup.code],
        { code: o.pickup.code },
      ]) {
        const res = await r.pick(v, t.headers);
        assert.ok(
          [400, 413].includes(res.statusCode),
          `${JSON.stringify(v).slice(0, 20)} → ${res.statusCode}`,
        );
      }
      for (const payload of [
        '{"code":"ABCDEF","extra":1}',
        '{"__proto__":{"code":"ABCDEF"}}',
        '{"constructor":{"prototype":{"code":"x"}}}',
        '[]',
        'null',
      ]) {
        const res = await r.app.inject({
          method: 'POST',
          url: '/v1/pickups',
          headers: { ...t.headers, 'content-type': 'application/json' },
          payload,
        });
        assert.equal(res.statusCode, 400, payload);
        assert.ok(['VALIDATION', 'BAD_REQUEST'].includes(res.json().error.code), payload);
      }
      // a well-formed code that cannot be one (U is not Crockford), and one of no order
      for (const v of ['UUUUUU', '__proto__', 'constructor', 'ABCDEFG']) {
        const res = await r.pick(v, t.headers, '10.1.1.1');
        assert.ok([400, 404].includes(res.statusCode), v);
      }
      // no credential, a wrong one: refused before anything
      assert.equal((await r.pick(o.pickup.code, {})).statusCode, 401);
      assert.equal(
        (await r.pick(o.pickup.code, { authorization: 'Bearer pkt_000000000000_nope' })).statusCode,
        401,
      );
      assert.equal((await r.app.inject({ method: 'GET', url: '/v1/pickups' })).statusCode, 401);
      assert.equal(snapshot(r), before);
      // queue query: hostile values
      for (const q of [
        'state=bogus',
        'slot=%00',
        'slot=__proto__',
        'limit=0',
        'limit=-1',
        'limit=1e3',
        'limit=99999',
        'x=1',
        `slot=${'s'.repeat(65)}`,
      ]) {
        const res = await r.app.inject({ method: 'GET', url: `/v1/pickups?${q}`, headers: t.headers });
        assert.equal(res.statusCode, 400, q);
      }
      // receipt QR: bad id, unknown order, order without a slot
      assert.equal(
        (await r.app.inject({ method: 'GET', url: '/v1/orders/not-an-id/pickup.svg' })).statusCode,
        400,
      );
      assert.equal(
        (await r.app.inject({ method: 'GET', url: '/v1/orders/01HZZZZZZZZZZZZZZZZZZZZZZZ/pickup.svg' }))
          .statusCode,
        404,
      );
      const plain = (await r.order(cash())).json();
      const none = await r.app.inject({ method: 'GET', url: `/v1/orders/${plain.id}/pickup.svg` });
      assert.equal(none.statusCode, 404);
      assert.equal(none.json().error.code, 'NOT_FOUND');
    } finally {
      await r.close();
    }
  });

  test('the receipt QR is an SVG of the code, public like the order', async () => {
    const r = await rig();
    try {
      const o = (await r.order(cash('s1'))).json();
      const res = await r.app.inject({ method: 'GET', url: `/v1/orders/${o.id}/pickup.svg` });
      assert.equal(res.statusCode, 200);
      assert.match(res.headers['content-type'] as string, /^image\/svg\+xml/);
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.match(res.body, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      assert.ok(res.body.includes(`>${o.pickup.code}</text>`));
      // the QR modules are exactly the qrcode library's encoding of the code
      const qr = await QRCode.toString(o.pickup.code, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
      const modules = /<path stroke="#000000" d="([^"]+)"/.exec(qr)?.[1];
      assert.ok(modules && res.body.includes(modules));
    } finally {
      await r.close();
    }
  });

  test('the queue, status and metrics: waiting, overdue at the end of the window, picked up', async () => {
    const r = await rig();
    try {
      const a = (await r.order(cash('s1'))).json();
      const b = (await r.order(cash('s1'))).json();
      const c = (await r.order(cash('s2', 'CAP'))).json();
      await r.pick(a.pickup.code);
      const q = async (query = '') =>
        (await r.app.inject({ method: 'GET', url: `/v1/pickups${query}`, headers: auth })).json();
      let all = await q();
      assert.equal(all.eventId, EVENT);
      assert.deepEqual(
        all.orders.map((x: { orderId: string; state: string }) => [x.orderId, x.state]),
        [
          [a.id, 'picked_up'],
          [b.id, 'waiting'],
          [c.id, 'waiting'],
        ],
      );
      // the end of s1's window: b is overdue, c (s2) still waiting
      r.clock.now = Date.parse('2026-06-01T20:15:00Z');
      all = await q();
      assert.deepEqual(
        all.orders.map((x: { state: string }) => x.state),
        ['picked_up', 'overdue', 'waiting'],
      );
      assert.deepEqual(
        (await q('?state=overdue')).orders.map((x: { orderId: string }) => x.orderId),
        [b.id],
      );
      assert.deepEqual(
        (await q('?slot=s2')).orders.map((x: { orderId: string }) => x.orderId),
        [c.id],
      );
      assert.deepEqual((await q('?slot=s2&state=picked_up')).orders, []);
      const limited = await q('?limit=1');
      assert.equal(limited.orders.length, 1);
      assert.equal(limited.truncated, true);
      const s1 = {
        slotId: 's1',
        label: 'First',
        startsAt: '2026-06-01T20:00:00Z',
        endsAt: '2026-06-01T20:15:00Z',
        capacity: 3,
        taken: 2,
        pickedUp: 1,
        waiting: 0,
        overdue: 1,
      };
      const s2 = {
        slotId: 's2',
        startsAt: '2026-06-01T20:15:00Z',
        endsAt: '2026-06-01T20:30:00Z',
        capacity: 100,
        taken: 1,
        pickedUp: 0,
        waiting: 1,
        overdue: 0,
      };
      assert.deepEqual(all.slots, [s1, s2]);
      const status = (await r.app.inject({ method: 'GET', url: '/v1/status', headers: auth })).json();
      assert.ok(kitStatusView.check(status), kitStatusView.errors(status).join('; '));
      assert.deepEqual(status.drops?.pickup, { slots: [s1, s2] });
      const metrics = (await r.app.inject({ method: 'GET', url: '/metrics', headers: auth })).body;
      assert.match(metrics, /popkit_pickups_total\{outcome="picked"\} 1/);
      assert.match(metrics, /popkit_pickup_slot_orders\{slot="s1",state="overdue"\} 1/);
      assert.match(metrics, /popkit_pickup_slot_orders\{slot="s2",state="waiting"\} 1/);
    } finally {
      await r.close();
    }
  });

  test('slot counts are per event: the next event reusing a slot id starts empty', async () => {
    const r = await rig();
    try {
      for (let i = 0; i < 3; i++) assert.equal((await r.order(cash('s1'))).statusCode, 201);
      assert.equal((await r.order(cash('s1'))).json().error.code, 'SLOT_FULL');
      const next = { ...CATALOG, eventId: 'ev-next' };
      assert.equal(
        (await r.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: next })).statusCode,
        200,
      );
      const cat = (await r.app.inject({ method: 'GET', url: '/v1/catalog' })).json();
      assert.equal(cat.pickupSlots[0].remaining, 3);
      assert.equal((await r.order(cash('s1'))).statusCode, 201);
      // the queue is the current event's
      const q = (await r.app.inject({ method: 'GET', url: '/v1/pickups', headers: auth })).json();
      assert.equal(q.orders.length, 1);
    } finally {
      await r.close();
    }
  });
  test('releasing a held order gives its place back; its code then says released', async () => {
    const r = await rig();
    try {
      const orders = [];
      for (let i = 0; i < 3; i++)
        orders.push(
          (
            await r.order({ ...cash('s1'), payment: { method: 'token', token: 'tok_hold_me_please' } })
          ).json(),
        );
      assert.equal((await r.order(cash('s1'))).json().error.code, 'SLOT_FULL');
      await releaseAsHoldsDo(r, orders[0].id);
      const cat = (await r.app.inject({ method: 'GET', url: '/v1/catalog' })).json();
      assert.equal(cat.pickupSlots[0].remaining, 1);
      assert.equal((await r.order(cash('s1'))).statusCode, 201);
      const res = await r.pick(orders[0].pickup.code);
      assert.equal(res.statusCode, 409);
      assert.equal(res.json().error.code, 'CONFLICT');
      assert.equal(res.json().error.details.status, 'released');
    } finally {
      await r.close();
    }
  });

  test('codes: only Crockford characters, and any typing of a code reads back as it', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        const n = normalisePickupCode(s);
        return n === undefined || CODE_RE.test(n);
      }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...'0123456789ABCDEFGHJKMNPQRSTVWXYZ'), { minLength: 6, maxLength: 6 }),
        fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
        (chars, lower) => {
          const code = chars.join('');
          const typed = chars
            .map((c, i) =>
              c === '0' ? 'O' : c === '1' ? (lower[i] ? 'l' : 'I') : lower[i] ? c.toLowerCase() : c,
            )
            .join(' ');
          return (
            normalisePickupCode(typed) === code &&
            normalisePickupCode(`${code.slice(0, 3)}-${code.slice(3)}`) === code
          );
        },
      ),
    );
    assert.equal(normalisePickupCode('UUUUUU'), undefined);
    assert.equal(normalisePickupCode('ABCDE'), undefined);
    assert.equal(normalisePickupCode('ABCDEFG'), undefined);
  });
});

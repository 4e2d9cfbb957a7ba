// Drain-proofing on a real checkout (real LMDB, app.inject), offline (no Authorizer online): buyer
// device tokens, one share per device, the offline allowance then holds, staff confirm and release,
// expiry by the sweeper (an injected instant), the drop report, and hostile input to every new
// endpoint and header changing nothing.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sweepExpiredHolds } from '../../core/store/hold-ops.ts';
import { LANES, readAllStock, readSealedToken } from '../../core/store/index.ts';
import { DEVICE_TOKEN_PATTERN, DeviceTokens } from '../../services/checkout/devices.ts';
import { isScarce } from '../../services/checkout/drain.ts';
import { auth, inspectStore, startCheckout, tempDir } from '../support/checkout.ts';

type Kit = Awaited<ReturnType<typeof startCheckout>>;

export const DRAIN_CATALOG = {
  version: 1,
  eventId: 'ev-drain',
  currency: 'EUR',
  items: [
    { sku: 'DROP', name: 'Numbered print', priceCents: 3000, stock: 50, scarce: true },
    { sku: 'HERO', name: 'Hero tee', priceCents: 2500, stock: 20, hero: true, maxPerOrder: 2 },
    { sku: 'TEE', name: 'Tour tee', priceCents: 2000, stock: 100 },
    { sku: 'constructor', name: 'Proto pin', priceCents: 500, stock: 10, scarce: true },
  ],
  bundles: [
    {
      id: 'PACK',
      name: 'Print and tee',
      priceCents: 4500,
      components: [
        { sku: 'DROP', qty: 1 },
        { sku: 'TEE', qty: 1 },
      ],
    },
  ],
};

const card = (token = 'tok_buyer_ok_1234') => ({ method: 'token', token });

async function loadCatalog(kit: Kit, catalog: object = DRAIN_CATALOG) {
  const res = await kit.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: catalog });
  assert.equal(res.statusCode, 200, res.body);
}

async function newDevice(kit: Kit, ip = '127.0.0.2'): Promise<string> {
  const res = await kit.app.inject({ method: 'POST', url: '/v1/devices', remoteAddress: ip, payload: {} });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().device as string;
}

function buy(kit: Kit, o: { device?: string; ip?: string; lines?: object[]; token?: string; key?: string }) {
  return kit.app.inject({
    method: 'POST',
    url: '/v1/orders',
    remoteAddress: o.ip ?? '127.0.0.3',
    headers: {
      ...(o.device !== undefined ? { 'x-popkit-device': o.device } : {}),
      ...(o.key ? { 'idempotency-key': o.key } : {}),
    },
    payload: { lines: o.lines ?? [{ sku: 'DROP', qty: 1 }], payment: card(o.token) },
  });
}

/** What a refusal must not change: stock, orders, outbox, devices. */
async function snapshot(kit: Kit) {
  return {
    stock: readAllStock(kit.kit.store),
    orders: [...kit.kit.store.orders.getRange({})].map((e) => JSON.stringify(e.value)),
    outbox: [...kit.kit.store.outbox.getKeys({})].map((k) => JSON.stringify(k)),
    devices: [...kit.kit.store.devices.getRange({})].map((e) => JSON.stringify(e.value)),
  };
}

describe('scarce rule', () => {
  test('time-boxed, hero or flagged scarce; anything else is not', () => {
    const w = { startsAt: '2026-01-01T00:00:00Z', endsAt: '2026-01-02T00:00:00Z' };
    assert.equal(isScarce({ sku: 'A', name: 'a', priceCents: 1, currency: 'EUR', saleWindow: w }), true);
    assert.equal(isScarce({ sku: 'A', name: 'a', priceCents: 1, currency: 'EUR', hero: true }), true);
    assert.equal(isScarce({ sku: 'A', name: 'a', priceCents: 1, currency: 'EUR', scarce: true }), true);
    assert.equal(isScarce({ sku: 'A', name: 'a', priceCents: 1, currency: 'EUR', hero: false }), false);
    assert.equal(isScarce({ id: 'B', name: 'b', priceCents: 1, components: [], saleWindow: w }), true);
    assert.equal(isScarce({ id: 'B', name: 'b', priceCents: 1, components: [] }), false);
  });
});

describe('buyer devices', () => {
  let kit: Kit;
  before(async () => {
    kit = await startCheckout({ POPKIT_DEVICE_ISSUE_PER_MIN: '3' });
    await loadCatalog(kit);
  });
  after(() => kit.kit.close());

  test('a device token is issued signed, recorded, and its key is private in the keys dir', async () => {
    const token = await newDevice(kit, '127.0.0.10');
    assert.match(token, new RegExp(DEVICE_TOKEN_PATTERN));
    const key = path.join(kit.dataDir, 'keys', 'device.key');
    assert.equal(fs.statSync(key).mode & 0o777, 0o600);
    assert.equal(fs.statSync(key).size, 32);
    const id = token.split('.')[1] as string;
    assert.ok(kit.kit.store.devices.get(id), 'recorded before answered');
  });

  test('issuing is rate limited per address, tightly; another address is not affected', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await kit.app.inject({
        method: 'POST',
        url: '/v1/devices',
        remoteAddress: '127.0.0.11',
        payload: {},
      });
      codes.push(res.statusCode);
      if (res.statusCode === 429) assert.equal(res.json().error.code, 'TOO_MANY_REQUESTS');
    }
    assert.deepEqual(codes, [201, 201, 201, 429, 429]);
    const other = await kit.app.inject({
      method: 'POST',
      url: '/v1/devices',
      remoteAddress: '127.0.0.12',
      payload: {},
    });
    assert.equal(other.statusCode, 201);
  });

  test('a device key others may read is refused at start (SECRET_INSECURE), like the other keys', async () => {
    const dir = tempDir();
    const first = await startCheckout({}, dir);
    await first.kit.close();
    fs.chmodSync(path.join(dir, 'keys', 'device.key'), 0o644);
    await assert.rejects(startCheckout({}, dir), (err: { code?: string; message: string }) => {
      assert.equal(err.code, 'SECRET_INSECURE');
      assert.match(err.message, /device\.key/);
      return true;
    });
  });

  test('a device key torn by a crash before any device was issued is replaced and named', async () => {
    // with devices issued it is never replaced: tests/integration/secrets-lost.test.ts
    const dir = tempDir();
    const first = await startCheckout({}, dir);
    await first.kit.close();
    const key = path.join(dir, 'keys', 'device.key');
    fs.writeFileSync(key, randomBytes(7), { mode: 0o600 });
    const again = await startCheckout({}, dir);
    try {
      assert.equal(fs.statSync(key).size, 32, 'a whole new key');
      assert.ok(fs.readdirSync(path.dirname(key)).some((f) => f.startsWith('device.key.damaged-')));
      const status = (await again.app.inject({ method: 'GET', url: '/v1/status', headers: auth })).json();
      const dev = status.secrets.find((k: { file: string }) => k.file === 'keys/device.key');
      assert.equal(dev.replaced, 'torn');
      assert.match(dev.message, /device\.key was torn/);
    } finally {
      await again.kit.close();
    }
  });
});

describe('scarce card orders of buyers, offline', () => {
  let kit: Kit;
  before(async () => {
    kit = await startCheckout({ POPKIT_BUYER_OFFLINE_ALLOWANCE: '1', POPKIT_DEVICE_ORDERS_PER_MIN: '50' });
    await loadCatalog(kit);
  });
  after(() => kit.kit.close());

  test('without a device token a buyer card order for a scarce item is refused; staff and plain items are not', async () => {
    const before = await snapshot(kit);
    const res = await buy(kit, {});
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, 'DEVICE_INVALID');
    assert.equal(res.json().error.details.required, 'x-popkit-device');
    // a bundle holding a scarce component is scarce too
    const pack = await buy(kit, { lines: [{ bundle: 'PACK', qty: 1 }] });
    assert.equal(pack.json().error.code, 'DEVICE_INVALID');
    assert.deepEqual(await snapshot(kit), before);
    const tee = await buy(kit, { lines: [{ sku: 'TEE', qty: 1 }] });
    assert.equal(tee.statusCode, 201, tee.body);
    assert.equal(tee.json().status, 'accepted');
    const staff = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: auth,
      payload: { lines: [{ sku: 'DROP', qty: 1 }], payment: { method: 'cash' } },
    });
    assert.equal(staff.statusCode, 201, staff.body);
  });

  test('the allowance is accepted, the next scarce order is held, a second share is refused', async () => {
    const device = await newDevice(kit);
    const first = await buy(kit, { device });
    assert.equal(first.statusCode, 201, first.body);
    assert.equal(first.json().status, 'accepted');
    const again = await buy(kit, { device, ip: '127.0.0.99' });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().error.code, 'DEVICE_SHARE_TAKEN');
    assert.equal(again.json().error.details.sku, 'DROP');
    // a bundle is no way around the share of its scarce component
    const viaPack = await buy(kit, { device, lines: [{ bundle: 'PACK', qty: 1 }] });
    assert.equal(viaPack.json().error.code, 'DEVICE_SHARE_TAKEN');
    const stockBefore = readAllStock(kit.kit.store)['HERO'];
    const hero = await buy(kit, { device, lines: [{ sku: 'HERO', qty: 2 }] });
    assert.equal(hero.statusCode, 201, hero.body);
    const held = hero.json();
    assert.equal(held.status, 'held');
    assert.ok(held.hold.until, 'a held order says until when');
    assert.equal(readAllStock(kit.kit.store)['HERO'], (stockBefore ?? 0) - 2, 'units taken while held');
    const seen = await kit.app.inject({ method: 'GET', url: `/v1/orders/${held.id}` });
    assert.equal(seen.json().status, 'held');
    // its token is kept for the hub to exchange; it is not in the risk budget
    assert.ok(readSealedToken(kit.kit.store, held.id));
    assert.equal(kit.kit.store.riskq.get(held.id), undefined);
    assert.ok(kit.kit.store.riskq.get(first.json().id), 'the allowance counts as before');
    // HERO's share is its maxPerOrder (2): taken
    const more = await buy(kit, { device, lines: [{ sku: 'HERO', qty: 1 }] });
    assert.equal(more.json().error.code, 'DEVICE_SHARE_TAKEN');
    assert.equal(more.json().error.details.share, 2);
  });

  test('a SKU named constructor has its share counted like any other', async () => {
    const device = await newDevice(kit);
    const one = await buy(kit, { device, lines: [{ sku: 'constructor', qty: 1 }] });
    assert.equal(one.statusCode, 201, one.body);
    const two = await buy(kit, { device, lines: [{ sku: 'constructor', qty: 1 }] });
    assert.equal(two.statusCode, 409, two.body);
    assert.equal(two.json().error.details.sku, 'constructor');
  });

  test('staff confirm a held order paid in cash: accepted, its card never charged, event confirmed', async () => {
    const device = await newDevice(kit);
    await buy(kit, { device, lines: [{ sku: 'TEE', qty: 1 }] }); // not scarce: no allowance used
    const allowance = await buy(kit, { device });
    assert.equal(allowance.json().status, 'accepted');
    const res = await buy(kit, { device, lines: [{ sku: 'HERO', qty: 1 }] });
    const id = res.json().id as string;
    assert.equal(res.json().status, 'held');
    const buyer = await kit.app.inject({
      method: 'POST',
      url: `/v1/orders/${id}/confirm`,
      payload: { paidWith: 'cash' },
    });
    assert.equal(buyer.statusCode, 401, 'a buyer cannot confirm');
    const ok = await kit.app.inject({
      method: 'POST',
      url: `/v1/orders/${id}/confirm`,
      headers: auth,
      payload: { paidWith: 'cash' },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().status, 'accepted');
    assert.equal(ok.json().payment.method, 'cash');
    assert.equal(
      readSealedToken(kit.kit.store, id),
      undefined,
      'the token is gone: the hub cannot charge it',
    );
    const ev = kit.kit.store.outbox.get([LANES.orders, `${id}~confirmed`]);
    assert.equal(ev?.kind, 'orderEvent');
    assert.equal(ev?.body?.['reason'], 'paid with cash');
    const twice = await kit.app.inject({
      method: 'POST',
      url: `/v1/orders/${id}/confirm`,
      headers: auth,
      payload: { paidWith: 'cash' },
    });
    assert.equal(twice.statusCode, 409);
    assert.equal(twice.json().error.code, 'CONFLICT');
  });

  test('staff release a held order: units back at once, event released, the buyer page sees it', async () => {
    const device = await newDevice(kit);
    await buy(kit, { device, lines: [{ sku: 'constructor', qty: 1 }] }); // the allowance
    const res = await buy(kit, { device });
    assert.equal(res.json().status, 'held');
    const id = res.json().id as string;
    const stock = readAllStock(kit.kit.store)['DROP'] ?? 0;
    const rel = await kit.app.inject({
      method: 'POST',
      url: `/v1/orders/${id}/release`,
      headers: auth,
      payload: { reason: 'buyer never came' },
    });
    assert.equal(rel.statusCode, 200, rel.body);
    assert.equal(readAllStock(kit.kit.store)['DROP'], stock + 1);
    const seen = (await kit.app.inject({ method: 'GET', url: `/v1/orders/${id}` })).json();
    assert.equal(seen.status, 'released');
    assert.equal(seen.hold.releaseReason, 'buyer never came');
    assert.ok(kit.kit.store.outbox.get([LANES.orders, `${id}~released`]));
    assert.equal(readSealedToken(kit.kit.store, id), undefined, 'a released order is never charged');
    const again = await kit.app.inject({
      method: 'POST',
      url: `/v1/orders/${id}/release`,
      headers: auth,
      payload: {},
    });
    assert.equal(again.statusCode, 409);
    assert.equal(readAllStock(kit.kit.store)['DROP'], stock + 1, 'released once');
  });

  test('the sweeper releases a hold at its end, and touches only hold entries of the shared index', async () => {
    const device = await newDevice(kit);
    await buy(kit, { device, lines: [{ sku: 'constructor', qty: 1 }] });
    const res = await buy(kit, { device });
    const order = res.json();
    assert.equal(order.status, 'held');
    const until = Date.parse(order.hold.until);
    // a reservation's entry shares the index: not ours to touch
    await kit.kit.store.expiries.put([until - 1, 'RESERVATION-X'], 'reservation');
    const stock = readAllStock(kit.kit.store)['DROP'] ?? 0;
    // holds of earlier tests end earlier: released by the same sweeps
    const earlier = (await snapshot(kit)).orders
      .map((o) => JSON.parse(o))
      .filter((o) => o.status === 'held' && Date.parse(o.hold.until) < until && o.lines[0].sku === 'DROP');
    await sweepExpiredHolds(kit.kit.store, until - 1);
    const still = (await kit.app.inject({ method: 'GET', url: `/v1/orders/${order.id}` })).json();
    assert.equal(still.status, 'held', 'not before its end');
    assert.equal(await sweepExpiredHolds(kit.kit.store, until), 1);
    assert.equal(readAllStock(kit.kit.store)['DROP'], stock + 1 + earlier.length);
    const seen = (await kit.app.inject({ method: 'GET', url: `/v1/orders/${order.id}` })).json();
    assert.equal(seen.status, 'released');
    assert.equal(seen.hold.releaseReason, 'expired');
    assert.equal(kit.kit.store.expiries.get([until - 1, 'RESERVATION-X']), 'reservation');
    assert.equal(await sweepExpiredHolds(kit.kit.store, until + 1), 0, 'once');
  });

  test('/v1/status.drops.drain and the drop report add up', async () => {
    const status = await kit.app.inject({ method: 'GET', url: '/v1/status', headers: auth });
    const drain = status.json().drops.drain;
    assert.equal(drain.authorizer, 'offline');
    assert.ok(drain.outcomes.held >= 3 && drain.outcomes.allowance >= 3, JSON.stringify(drain));
    const report = await kit.app.inject({ method: 'GET', url: '/v1/drops/report', headers: auth });
    assert.equal(report.statusCode, 200, report.body);
    const r = report.json();
    assert.equal(r.balanced, true, report.body);
    const skus = r.skus.map((s: { sku: string }) => s.sku).sort();
    assert.deepEqual(skus, ['DROP', 'HERO', 'constructor'].sort());
    const stock = readAllStock(kit.kit.store);
    for (const s of r.skus) {
      assert.equal(s.remaining, stock[s.sku]);
      assert.equal(s.startStock, s.remaining + s.sold + s.held + s.reserved, s.sku);
    }
    const drop = r.skus.find((s: { sku: string }) => s.sku === 'DROP');
    assert.ok(drop.released >= 2 && drop.devices.withoutDevice >= 1 && drop.devices.maxUnits === 1);
    const buyer = await kit.app.inject({ method: 'GET', url: '/v1/drops/report' });
    assert.equal(buyer.statusCode, 401);
  });
});

describe('per-device rate and hostile input', () => {
  let kit: Kit;
  before(async () => {
    kit = await startCheckout({ POPKIT_DEVICE_ORDERS_PER_MIN: '3' });
    await loadCatalog(kit);
  });
  after(() => kit.kit.close());

  test('orders per device are limited whatever the address', async () => {
    const device = await newDevice(kit);
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await buy(kit, { device, ip: `127.0.1.${i + 1}`, lines: [{ sku: 'TEE', qty: 1 }] });
      codes.push(res.statusCode);
      if (res.statusCode === 429) assert.equal(res.json().error.details.per, 'device');
    }
    assert.deepEqual(codes, [201, 201, 201, 429]);
  });

  test('hostile device headers are refused and change nothing', async () => {
    const device = await newDevice(kit);
    const [, id, mac] = device.split('.') as [string, string, string];
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    const foreign = await DeviceTokens.withKey(randomBytes(32), kit.kit.store).issue(Date.now());
    const cases: Array<[string, string, number, string]> = [
      ['forged MAC', `pkd1.${id}.${flip(mac)}`, 400, 'DEVICE_INVALID'],
      ['another id under the MAC', `pkd1.${flip(id)}.${mac}`, 400, 'DEVICE_INVALID'],
      ['truncated', device.slice(0, -1), 400, 'DEVICE_INVALID'],
      ['other version', `pkd2.${id}.${mac}`, 400, 'DEVICE_INVALID'],
      ['__proto__', '__proto__', 400, 'DEVICE_INVALID'],
      ['another kit key', foreign.token, 400, 'DEVICE_INVALID'],
      ['huge', 'x'.repeat(100_000), 400, 'VALIDATION'],
      ['space inside', `pkd1. ${id}.${mac}`, 400, 'VALIDATION'],
      ['non-ASCII', `pkd1.${id}.${mac}é`, 400, 'VALIDATION'],
    ];
    const before = await snapshot(kit);
    for (const [what, header, status, code] of cases) {
      const res = await buy(kit, { device: header, lines: [{ sku: 'TEE', qty: 1 }] });
      assert.equal(res.statusCode, status, `${what}: ${res.body}`);
      assert.equal(res.json().error.code, code, what);
    }
    const nul = await buy(kit, { device: `pkd1.${id}\u0000.${mac}` });
    assert.equal(nul.statusCode, 400, nul.body);
    assert.equal(nul.json().error.code, 'VALIDATION');
    const after = await snapshot(kit);
    // the foreign device was recorded by its own issue() above; nothing else moved
    assert.deepEqual(after.stock, before.stock);
    assert.deepEqual(after.orders, before.orders);
    assert.deepEqual(after.outbox, before.outbox);
  });

  test('a replayed device token is the same device, from any address; an Idempotency-Key replay is one order', async () => {
    const device = await newDevice(kit);
    const a = await buy(kit, { device, ip: '127.0.2.1', key: 'k-replay-1' });
    assert.equal(a.statusCode, 201, a.body);
    const replay = await buy(kit, { device, ip: '127.0.2.1', key: 'k-replay-1' });
    assert.equal(replay.statusCode, 200);
    assert.equal(replay.json().id, a.json().id);
    const b = await buy(kit, { device, ip: '127.0.2.2' });
    assert.equal(b.json().error.code, 'DEVICE_SHARE_TAKEN');
  });

  test('hostile confirm, release and report requests are refused and change nothing', async () => {
    const device = await newDevice(kit);
    await buy(kit, { device, lines: [{ sku: 'constructor', qty: 1 }] });
    const held = (await buy(kit, { device })).json();
    assert.equal(held.status, 'held');
    const accepted = (
      await buy(kit, { lines: [{ sku: 'TEE', qty: 1 }], device: await newDevice(kit, '127.0.3.3') })
    ).json();
    const before = await snapshot(kit);
    const cases: Array<[string, string, unknown, number, string]> = [
      ['confirm', held.id, { paidWith: '__proto__' }, 400, 'VALIDATION'],
      ['confirm', held.id, { paidWith: 'cash', extra: 1 }, 400, 'VALIDATION'],
      ['confirm', held.id, '{"paidWith":"cash","__proto__":{"x":1}}', 400, 'BAD_REQUEST'],
      ['confirm', held.id, '{"paidWith":"cash","constructor":{"prototype":{"x":1}}}', 400, 'BAD_REQUEST'],
      ['confirm', held.id, {}, 400, 'VALIDATION'],
      ['confirm', held.id, { paidWith: 7 }, 400, 'VALIDATION'],
      ['confirm', held.id, { paidWith: 'x'.repeat(100_000) }, 413, 'BODY_TOO_LARGE'],
      ['confirm', held.id, { paidWith: 'x'.repeat(10_000) }, 400, 'VALIDATION'],
      ['confirm', '__proto__', { paidWith: 'cash' }, 400, 'VALIDATION'],
      ['confirm', '01J0000000000000000000000Z', { paidWith: 'cash' }, 404, 'NOT_FOUND'],
      ['confirm', accepted.id, { paidWith: 'cash' }, 409, 'CONFLICT'],
      ['release', held.id, { reason: 'nul\u0000inside' }, 400, 'VALIDATION'],
      ['release', held.id, { reason: 'x'.repeat(201) }, 400, 'VALIDATION'],
      ['release', held.id, { reason: 'ok', why: 1 }, 400, 'VALIDATION'],
      ['release', held.id, [], 400, 'VALIDATION'],
      ['release', accepted.id, {}, 409, 'CONFLICT'],
    ];
    for (const [verb, id, payload, status, code] of cases) {
      const res = await kit.app.inject({
        method: 'POST',
        url: `/v1/orders/${encodeURIComponent(id)}/${verb}`,
        headers: { ...auth, 'content-type': 'application/json' },
        payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      });
      assert.equal(res.statusCode, status, `${verb} ${JSON.stringify(payload).slice(0, 80)}: ${res.body}`);
      assert.equal(res.json().error.code, code);
    }
    // a device request carries nothing about the phone: `{}` only
    const bodies: Array<[string | undefined, number, string]> = [
      ['{"__proto__":{"admin":true}}', 400, 'BAD_REQUEST'],
      ['{"model":"Pixel 8","screen":"1080x2400"}', 400, 'VALIDATION'],
      ['{"a":"nul\\u0000"}', 400, 'VALIDATION'],
      [`{"a":"${'x'.repeat(100_000)}"}`, 413, 'BODY_TOO_LARGE'],
      ['[]', 400, 'VALIDATION'],
      [undefined, 400, 'VALIDATION'],
    ];
    for (const [i, [payload, status, code]] of bodies.entries()) {
      const res = await kit.app.inject({
        method: 'POST',
        url: '/v1/devices',
        remoteAddress: `127.0.4.${i + 1}`,
        ...(payload === undefined ? {} : { headers: { 'content-type': 'application/json' }, payload }),
      });
      assert.equal(res.statusCode, status, `${payload?.slice(0, 60)}: ${res.body}`);
      assert.equal(res.json().error.code, code);
    }
    const after = await snapshot(kit);
    assert.deepEqual(after, before);
  });
});

describe('restart', () => {
  test('device tokens, shares and holds survive a restart', async () => {
    const dir = tempDir();
    const first = await startCheckout({}, dir);
    await loadCatalog(first);
    const device = await newDevice(first);
    await buy(first, { device, lines: [{ sku: 'constructor', qty: 1 }] });
    const held = (await buy(first, { device })).json();
    assert.equal(held.status, 'held');
    await first.kit.close();
    const second = await startCheckout({}, dir);
    try {
      const again = await buy(second, { device, lines: [{ sku: 'HERO', qty: 1 }] });
      assert.equal(again.statusCode, 201, 'the token still verifies');
      assert.equal(again.json().status, 'held');
      const share = await buy(second, { device });
      assert.equal(share.json().error.code, 'DEVICE_SHARE_TAKEN');
    } finally {
      await second.kit.close();
    }
    const { orders } = await inspectStore(dir);
    assert.equal(orders.filter((o) => o.status === 'held').length, 2);
  });
});

// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// A pickup code hands the goods over, and order ids are easy to guess (they count up within a
// millisecond): GET /v1/orders/:id and the receipt QR show the code only to staff and to the buyer
// device that placed the order (services/checkout/order-view.ts).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { auth, startCheckout } from '../support/checkout.ts';

const CATALOG = {
  version: 1,
  eventId: 'ev-codes',
  currency: 'EUR',
  items: [{ sku: 'TEE', name: 'Tour tee', priceCents: 2000, stock: 10 }],
  pickupSlots: [
    { id: 'late', startsAt: '2030-01-01T20:00:00Z', endsAt: '2099-01-01T20:15:00Z', capacity: 5 },
  ],
};

test('the pickup code is shown to staff and to the device that placed the order, to no one else', async () => {
  const { kit, app } = await startCheckout();
  after(() => kit.close());
  assert.equal(
    (await app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: CATALOG })).statusCode,
    200,
  );
  const device = async (ip: string) =>
    (await app.inject({ method: 'POST', url: '/v1/devices', remoteAddress: ip, payload: {} })).json()
      .device as string;
  const mine = await device('127.0.0.21');
  const other = await device('127.0.0.22');
  const placed = await app.inject({
    method: 'POST',
    url: '/v1/orders',
    remoteAddress: '127.0.0.21',
    headers: { 'x-popkit-device': mine },
    payload: {
      lines: [{ sku: 'TEE', qty: 1 }],
      payment: { method: 'token', token: 'tok_sandbox_fan_0001' },
      pickupSlotId: 'late',
    },
  });
  assert.equal(placed.statusCode, 201, placed.body);
  const order = placed.json();
  assert.match(order.pickup.code, /^[0-9A-Z]{6}$/, 'the buyer who ordered gets the code in the answer');

  const read = (headers: Record<string, string>) =>
    app.inject({ method: 'GET', url: `/v1/orders/${order.id}`, headers });
  const svg = (headers: Record<string, string>) =>
    app.inject({ method: 'GET', url: `/v1/orders/${order.id}/pickup.svg`, headers });

  const strangers: Record<string, string>[] = [
    {},
    { 'x-popkit-device': other },
    { 'x-popkit-device': `${mine.slice(0, -2)}AA` },
    { 'x-popkit-device': 'x'.repeat(600) },
  ];
  for (const headers of strangers) {
    const r = await read(headers);
    assert.equal(r.statusCode, 200, 'the order itself stays readable');
    assert.equal(r.json().pickup.slotId, 'late');
    assert.equal(r.json().pickup.code, undefined, `no code for ${JSON.stringify(headers)}`);
    assert.equal((await svg(headers)).statusCode, 403);
  }
  const allowed: Record<string, string>[] = [{ 'x-popkit-device': mine }, auth];
  for (const headers of allowed) {
    assert.equal((await read(headers)).json().pickup.code, order.pickup.code);
    const q = await svg(headers);
    assert.equal(q.statusCode, 200);
    assert.ok(q.body.includes(`>${order.pickup.code}</text>`));
  }
});

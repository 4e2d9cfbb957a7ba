// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Cart holds cannot drain a drop either (docs/security.md#drain-proofing): a buyer's hold of scarce
// units needs a device token, fits the device's share, and a device holds scarce units in one hold
// at a time (checked in the hold's transaction, so a burst of holds from one device gets one).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { auth, startCheckout } from '../support/checkout.ts';

const DRAIN_CATALOG = {
  version: 1,
  eventId: 'ev-drain-holds',
  currency: 'EUR',
  items: [
    { sku: 'DROP', name: 'Numbered print', priceCents: 3000, stock: 50, scarce: true },
    { sku: 'TEE', name: 'Tour tee', priceCents: 2000, stock: 100 },
  ],
};

test('a buyer holds scarce units only with a device, within its share, one hold at a time', async () => {
  const { kit, app } = await startCheckout();
  after(() => kit.close());
  const put = await app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: DRAIN_CATALOG });
  assert.equal(put.statusCode, 200, put.body);
  const device = async (ip: string) =>
    (await app.inject({ method: 'POST', url: '/v1/devices', remoteAddress: ip, payload: {} })).json()
      .device as string;
  const hold = (lines: object[], o: { device?: string; ip?: string; staff?: boolean } = {}) =>
    app.inject({
      method: 'POST',
      url: '/v1/reservations',
      remoteAddress: o.ip ?? '127.0.0.31',
      headers: { ...(o.device ? { 'x-popkit-device': o.device } : {}), ...(o.staff ? auth : {}) },
      payload: { lines },
    });
  const stock = async (sku: string) =>
    (await app.inject({ method: 'GET', url: '/v1/catalog' }))
      .json()
      .items.find((i: { sku: string }) => i.sku === sku).stock as number;
  const drop = [{ sku: 'DROP', qty: 1 }];

  const anon = await hold(drop);
  assert.equal(anon.statusCode, 400);
  assert.equal(anon.json().error.code, 'DEVICE_INVALID');
  assert.equal(anon.json().error.details.required, 'x-popkit-device');
  const forged = await hold(drop, { device: `pkd1.${'A'.repeat(22)}.${'B'.repeat(43)}` });
  assert.equal(forged.json().error.code, 'DEVICE_INVALID');
  // a bundle does not get around the share of its scarce component
  const d1 = await device('127.0.0.32');
  const two = await hold([{ sku: 'DROP', qty: 2 }], { device: d1 });
  assert.equal(two.json().error.code, 'DEVICE_SHARE_TAKEN');
  assert.equal(await stock('DROP'), 50, 'nothing held by refusals');

  // a burst of holds from one device: exactly one is taken
  const burst = await Promise.all(Array.from({ length: 8 }, () => hold(drop, { device: d1 })));
  const codes = burst.map((r) => (r.statusCode === 201 ? 'created' : r.json().error.code)).sort();
  assert.deepEqual(codes, ['DEVICE_SHARE_TAKEN', ...Array(6).fill('DEVICE_SHARE_TAKEN'), 'created'].sort());
  assert.equal(await stock('DROP'), 49);
  const held = burst.find((r) => r.statusCode === 201)!.json();

  // released, the device may hold again; not-scarce items and staff need no device
  const rel = await app.inject({
    method: 'DELETE',
    url: `/v1/reservations/${held.id}`,
    remoteAddress: '127.0.0.32',
  });
  assert.equal(rel.statusCode, 200, rel.body);
  assert.equal(await stock('DROP'), 50);
  assert.equal((await hold(drop, { device: d1 })).statusCode, 201);
  assert.equal((await hold([{ sku: 'TEE', qty: 1 }])).statusCode, 201);
  assert.equal((await hold(drop, { staff: true })).statusCode, 201);
  // a device that bought its share cannot hold more
  const d2 = await device('127.0.0.33');
  const bought = await app.inject({
    method: 'POST',
    url: '/v1/orders',
    remoteAddress: '127.0.0.33',
    headers: { 'x-popkit-device': d2 },
    payload: { lines: drop, payment: { method: 'token', token: 'tok_sandbox_fan_0002' } },
  });
  assert.equal(bought.statusCode, 201, bought.body);
  assert.equal((await hold(drop, { device: d2, ip: '127.0.0.33' })).json().error.code, 'DEVICE_SHARE_TAKEN');
});

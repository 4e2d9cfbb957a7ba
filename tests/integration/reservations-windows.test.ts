// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// A cart hold is a sale: it is refused before a line's sale window opens and after it ends, by the
// kit's trusted clock, and while the clock is not trusted (main.ts wires the reservations to the
// sale windows' assertOnSale). Checked through the real checkout wiring.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { auth, startCheckout } from '../support/checkout.ts';

const CATALOG = {
  version: 1,
  eventId: 'ev-hold-windows',
  currency: 'EUR',
  items: [
    {
      sku: 'SOON',
      name: 'Edition at 21:00',
      priceCents: 3000,
      stock: 50,
      saleWindow: { startsAt: '2099-01-01T21:00:00Z', endsAt: '2099-01-01T22:00:00Z' },
    },
    {
      sku: 'GONE',
      name: 'Last year',
      priceCents: 3000,
      stock: 50,
      saleWindow: { startsAt: '2000-01-01T21:00:00Z', endsAt: '2000-01-01T22:00:00Z' },
    },
    { sku: 'TEE', name: 'Tour tee', priceCents: 2000, stock: 50 },
  ],
  bundles: [
    {
      id: 'LATER',
      name: 'Tee and edition',
      priceCents: 4500,
      components: [{ sku: 'TEE', qty: 1 }],
      saleWindow: { startsAt: '2099-01-01T21:00:00Z', endsAt: '2099-01-01T22:00:00Z' },
    },
  ],
};

async function kitWith(env: Record<string, string>) {
  const { kit, app } = await startCheckout(env);
  after(() => kit.close());
  const put = await app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: CATALOG });
  assert.equal(put.statusCode, 200, put.body);
  const hold = (lines: object[]) =>
    app.inject({ method: 'POST', url: '/v1/reservations', headers: auth, payload: { lines } });
  const stock = async () =>
    Object.fromEntries(
      (await app.inject({ method: 'GET', url: '/v1/catalog' }))
        .json()
        .items.map((i: { sku: string; stock: number }) => [i.sku, i.stock]),
    );
  return { hold, stock };
}

test('holds of time-boxed lines follow the sale window by the trusted clock', async () => {
  const { hold, stock } = await kitWith({ POPKIT_CLOCK_TRUST: 'assume' });
  const before = await stock();
  const soon = await hold([{ sku: 'SOON', qty: 1 }]);
  assert.equal(soon.statusCode, 409, soon.body);
  assert.equal(soon.json().error.code, 'NOT_ON_SALE_YET');
  assert.ok(soon.json().error.details.secondsToGo > 0);
  const gone = await hold([{ sku: 'GONE', qty: 1 }]);
  assert.equal(gone.statusCode, 410);
  assert.equal(gone.json().error.code, 'SALE_ENDED');
  const bundle = await hold([{ bundle: 'LATER', qty: 1 }]);
  assert.equal(bundle.json().error.code, 'NOT_ON_SALE_YET');
  assert.deepEqual(await stock(), before, 'refused holds take nothing');
  assert.equal((await hold([{ sku: 'TEE', qty: 1 }])).statusCode, 201);
});

test('an untrusted clock holds no time-boxed line, and still holds the rest', async () => {
  const { hold } = await kitWith({ POPKIT_CLOCK_TRUST: 'sources' });
  // this machine (and a Pi without RTC, NTP or hub time) has vouched for nothing since boot; if NTP
  // did vouch here, the refusal is the window's own
  const r = await hold([{ sku: 'SOON', qty: 1 }]);
  assert.ok(['CLOCK_UNTRUSTED', 'NOT_ON_SALE_YET'].includes(r.json().error.code), r.body);
  assert.equal((await hold([{ sku: 'TEE', qty: 1 }])).statusCode, 201);
});

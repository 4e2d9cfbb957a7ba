// This kit's share of its event's stock (docs/shared-stock.md) in GET /v1/status and on the dashboard,
// in real headless Chromium: a catalog whose stock is shared sells nothing before the hub grants units,
// then the granted units, and the dashboard shows the allocation and the event-wide stock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kitStatusView } from '../../core/contracts/kit-status.ts';
import { applyAllocation } from '../../core/store/index.ts';
import { launchChromium } from '../support/browser.ts';
import { ADMIN, auth, startCheckout } from '../support/checkout.ts';

test('a shared-stock kit sells only its grant; /v1/status and the dashboard show it and the event stock', {
  timeout: 120_000,
}, async () => {
  const { kit, app } = await startCheckout();
  try {
    const put = await app.inject({
      method: 'PUT',
      url: '/v1/catalog',
      headers: auth,
      payload: {
        version: 1,
        eventId: 'ev-share',
        currency: 'USD',
        sharedStock: true,
        items: [{ sku: 'A', name: 'Item A', priceCents: 1000, stock: 30 }],
      },
    });
    assert.equal(put.statusCode, 200, put.body);
    const order = () =>
      app.inject({
        method: 'POST',
        url: '/v1/orders',
        headers: auth,
        payload: { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'cash' } },
      });
    // the event's 30 are not this kit's: nothing granted, nothing sold
    const refused = await order();
    assert.equal(refused.statusCode, 409, refused.body);
    assert.equal(JSON.parse(refused.body).error.code, 'SOLD_OUT');
    await applyAllocation(kit.store, {
      v: 1,
      use: 'stock-allocation',
      kitId: 'kit-x',
      eventId: 'ev-share',
      version: 1,
      issuedAt: new Date().toISOString(),
      grants: [{ id: 'g1', sku: 'A', qty: 10 }],
      releaseRequests: [],
      eventStock: [['A', 30]],
      allocated: [['A', 10]],
    });
    assert.equal((await order()).statusCode, 201);
    const status = await app.inject({ method: 'GET', url: '/v1/status', headers: auth });
    const body = JSON.parse(status.body);
    assert.ok(kitStatusView.check(body), kitStatusView.errors(body).join('; '));
    assert.deepEqual(body.sharedStock?.skus, [
      { sku: 'A', eventStock: 30, allocated: 10, held: 10, sellable: 9 },
    ]);

    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as { port: number }).port;
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForSelector('#pair:not([hidden])');
      await page.fill('#admintoken', ADMIN);
      await page.click('#pairbtn');
      await page.waitForFunction(
        () => (document.getElementById('dropshare')?.textContent ?? '') !== '',
        null,
        {
          timeout: 10_000,
        },
      );
      const text = (await page.locator('#dropshare').textContent()) ?? '';
      assert.match(text, /A 9 left of 10 allocated · event 30/);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  } finally {
    await kit.close();
  }
});

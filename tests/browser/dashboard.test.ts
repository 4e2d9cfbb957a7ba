// The host dashboard in real headless Chromium against a real checkout.
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { applyOrderAck, listTerminals } from '../../core/store/index.ts';
import { launchChromium } from '../support/browser.ts';
import { ADMIN, auth, DEMO_CATALOG, startCheckout } from '../support/checkout.ts';

test('dashboard pairs itself once with the admin token, shows the catalog and status, and a host sale updates stock', {
  timeout: 120_000,
}, async () => {
  const kit = await startCheckout();
  await kit.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: DEMO_CATALOG });
  await kit.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (kit.app.server.address() as { port: number }).port;
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${port}/`);
    // unpaired: it asks for the admin token once, pairs itself and keeps only its terminal token
    await page.waitForSelector('#pair:not([hidden])');
    await page.fill('#admintoken', ADMIN);
    await page.click('#pairbtn');
    await page.waitForSelector('tr[data-sku="HERO-DROP-01"]');
    const stored = await page.evaluate(() => ({ ...localStorage }));
    assert.match(stored['popkit.terminalToken'] ?? '', /^pkt_[0-9a-f]{12}_/);
    assert.ok(!JSON.stringify(stored).includes(ADMIN), 'the admin token is not kept in the browser');
    assert.deepEqual(
      listTerminals(kit.kit.store).map((t) => t.name),
      ['dashboard'],
    );
    assert.equal(await page.locator('#items tr').count(), DEMO_CATALOG.items.length);
    assert.match((await page.locator('tr[data-sku="HERO-DROP-01"]').getAttribute('class')) ?? '', /hero/);
    assert.equal(await page.locator('tr[data-sku="TEE-BLK-M"] .stock').textContent(), '60');
    assert.match((await page.locator('#state').textContent()) ?? '', /ready/);
    await page.click('button[data-sell="TEE-BLK-M"]');
    await page.waitForFunction(
      () => document.querySelector('tr[data-sku="TEE-BLK-M"] .stock')?.textContent === '59',
    );
    await page.waitForFunction(() => document.getElementById('backlog')?.textContent === '1', undefined, {
      timeout: 10_000,
    });
    const api = (await kit.app.inject({ method: 'GET', url: '/v1/catalog' })).json();
    assert.equal(api.items.find((i: { sku: string }) => i.sku === 'TEE-BLK-M').stock, 59);
    // a card payment the hub declines is shown to the host
    const declined = (
      await kit.app.inject({
        method: 'POST',
        url: '/v1/orders',
        headers: auth,
        payload: {
          lines: [{ sku: 'CAP-BLK', qty: 1 }],
          payment: { method: 'token', token: 'tok_sandbox_decline_9' },
        },
      })
    ).json().id as string;
    const store = kit.kit.store;
    await applyOrderAck(store, declined, { state: 'declined', reason: 'insufficient_funds' });
    await page.waitForFunction(
      () => document.getElementById('declines')?.textContent?.includes('insufficient_funds'),
      undefined,
      {
        timeout: 10_000,
      },
    );
    // the drop panel follows /v1/status.drops: a cart hold shows as open
    const hold = await kit.app.inject({
      method: 'POST',
      url: '/v1/reservations',
      headers: auth,
      payload: { lines: [{ sku: 'TEE-BLK-M', qty: 1 }] },
    });
    assert.equal(hold.statusCode, 201, hold.body);
    await page.waitForFunction(
      () => document.getElementById('dropholds')?.textContent?.startsWith('cart holds: 1 open'),
      undefined,
      { timeout: 10_000 },
    );
    assert.match((await page.locator('#dropline').textContent()) ?? '', /^line: 0 waiting/);
    assert.match((await page.locator('#dropcards').textContent()) ?? '', /card check offline · 0 held/);
    await page.screenshot({ path: path.join(os.tmpdir(), 'popkit-dashboard.png') });
    // reloaded, it is still paired: no second pairing
    await page.reload();
    await page.waitForSelector('tr[data-sku="HERO-DROP-01"]');
    assert.equal(await page.locator('#pair').isHidden(), true);
    assert.equal(listTerminals(kit.kit.store).length, 1);
    // revoked, it stops showing the kit and asks to pair again
    const id = listTerminals(kit.kit.store)[0]?.id;
    await kit.app.inject({ method: 'DELETE', url: `/v1/terminals/${id}`, headers: auth });
    await page.waitForSelector('#pair:not([hidden])', { timeout: 10_000 });
    assert.match((await page.locator('#pairmsg').textContent()) ?? '', /pair it again/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await kit.kit.close();
  }
});

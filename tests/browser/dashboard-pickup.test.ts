// The dashboard's pickup queue in real headless Chromium against a real checkout: counts per slot, a
// code typed as a person would hands the order over as the dashboard's own terminal, a second entry
// is refused, and an order not collected by the end of its window is flagged.
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { listTerminals } from '../../core/store/index.ts';
import { launchChromium } from '../support/browser.ts';
import { ADMIN, auth, startCheckout } from '../support/checkout.ts';

const HOUR = 3600_000;
const iso = (ms: number) => new Date(ms).toISOString();

function catalog(version: number, earlyEndsAt: number, base: number) {
  return {
    version,
    eventId: 'ev-dash-pickup',
    currency: 'EUR',
    items: [{ sku: 'TEE', name: 'Tour tee', priceCents: 2500, stock: 100 }],
    pickupSlots: [
      { id: 'early', label: 'Early', startsAt: iso(base - HOUR), endsAt: iso(earlyEndsAt), capacity: 5 },
      { id: 'late', startsAt: iso(base + HOUR), endsAt: iso(base + 2 * HOUR), capacity: 5 },
    ],
  };
}

test('dashboard pickup queue: counts, a handover by code, a refused second entry, overdue flagged', {
  timeout: 120_000,
}, async () => {
  const kit = await startCheckout();
  // windows hours from now: nothing here depends on how long the test takes
  const base = Date.now();
  const put = (body: ReturnType<typeof catalog>) =>
    kit.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: body });
  assert.equal((await put(catalog(1, base + HOUR, base))).statusCode, 200);
  const sell = async (slot: string) => {
    const res = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: auth,
      payload: { lines: [{ sku: 'TEE', qty: 1 }], payment: { method: 'cash' }, pickupSlotId: slot },
    });
    assert.equal(res.statusCode, 201, res.body);
    return res.json() as { id: string; pickup: { code: string } };
  };
  const a = await sell('early');
  const b = await sell('early');
  await sell('late');
  await kit.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (kit.app.server.address() as { port: number }).port;
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1100 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForSelector('#pair:not([hidden])');
    await page.fill('#admintoken', ADMIN);
    await page.click('#pairbtn');
    await page.waitForSelector('tr[data-slot="early"]');
    assert.equal(await page.locator('tr[data-slot="early"] .taken').textContent(), '2/5');
    assert.equal(await page.locator('tr[data-slot="late"] .waiting').textContent(), '1');
    assert.equal(await page.locator('tr[data-slot="early"] .overdue').textContent(), '0');

    // typed as a person might: lower case, a dash in the middle
    const code = a.pickup.code;
    await page.fill('#pickupcode', `${code.slice(0, 3)}-${code.slice(3)}`.toLowerCase());
    await page.click('#pickupbtn');
    await page.waitForFunction(() => document.getElementById('pickupmsg')?.className === 'ok');
    assert.match(
      (await page.locator('#pickupmsg').textContent()) ?? '',
      new RegExp(`Hand over ${code}: 1× Tour tee`),
    );
    await page.waitForFunction(
      () => document.querySelector('tr[data-slot="early"] .picked')?.textContent === '1',
    );
    // handed over as the dashboard's own terminal, never as admin
    const terminal = listTerminals(kit.kit.store)[0];
    const stored = (await kit.app.inject({ method: 'GET', url: `/v1/orders/${a.id}` })).json();
    assert.ok(stored.pickup.pickedUpAt);
    const queue = (
      await kit.app.inject({ method: 'GET', url: '/v1/pickups?state=picked_up', headers: auth })
    ).json();
    assert.deepEqual(
      queue.orders.map((o: { orderId: string; pickedUpBy: string }) => [o.orderId, o.pickedUpBy]),
      [[a.id, terminal?.id]],
    );

    // the same code again: refused, said plainly
    await page.fill('#pickupcode', code);
    await page.click('#pickupbtn');
    await page.waitForFunction(() => document.getElementById('pickupmsg')?.className === 'bad');
    assert.match((await page.locator('#pickupmsg').textContent()) ?? '', /^ALREADY_PICKED_UP: /);

    // the early window is moved into the past: b was not collected by its end
    assert.equal((await put(catalog(2, base - HOUR / 2, base))).statusCode, 200);
    await page.waitForSelector(`[data-overdue="${b.pickup.code}"]`, { timeout: 10_000 });
    assert.match((await page.locator('tr[data-slot="early"]').getAttribute('class')) ?? '', /overdue/);
    assert.equal(await page.locator('tr[data-slot="early"] .overdue').textContent(), '⚠ 1');
    assert.equal(await page.locator('[data-overdue]').count(), 1);
    await page.screenshot({ path: path.join(os.tmpdir(), 'popkit-dashboard-pickup.png') });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await kit.kit.close();
  }
});

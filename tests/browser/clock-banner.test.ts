// The dashboard's clock banner in real headless Chromium: shown while the kit's clock is not trusted
// (time-boxed sales refused), gone once staff vouch for it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchChromium } from '../support/browser.ts';
import { ADMIN, auth, DEMO_CATALOG, startCheckout, tempDir } from '../support/checkout.ts';

test('the dashboard says when the clock is not trusted, and stops once staff vouch', {
  timeout: 120_000,
}, async () => {
  // an empty host tree: no NTP flag, no RTC, a boot id of its own
  const kit = await startCheckout({
    POPKIT_HOST_ROOT: tempDir('popkit-host-'),
    POPKIT_CLOCK_NTP_POLL_S: '3600',
  });
  await kit.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: DEMO_CATALOG });
  await kit.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (kit.app.server.address() as { port: number }).port;
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForSelector('#pair:not([hidden])');
    await page.fill('#admintoken', ADMIN);
    await page.click('#pairbtn');
    await page.waitForSelector('#clockbanner:not([hidden])', { timeout: 10_000 });
    assert.match(
      (await page.locator('#clockbanner').textContent()) ?? '',
      /Clock not trusted \(no NTP, RTC or hub time/,
    );
    const r = await kit.app.inject({ method: 'POST', url: '/v1/clock/trust', headers: auth, payload: {} });
    assert.equal(r.statusCode, 200);
    await page.waitForSelector('#clockbanner', { state: 'hidden', timeout: 10_000 });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await kit.kit.close();
  }
});

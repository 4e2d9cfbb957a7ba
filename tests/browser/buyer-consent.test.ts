// The buyer page's consent (docs/security.md#audience) in real headless Chromium at phone size against
// a real checkout with a live event: asked once, with its text version shown; declined, the page still
// sells and nothing is linked; granted, the next order links the viewer id of that request (keyed hash
// of the phone's address and user agent); withdrawn, the links are deleted. Nothing is requested off
// the kit, no script error. A screenshot of the question is saved under the test's temp dir.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Browser } from 'playwright-core';
import { allOrders, readAudienceKey, readConsent } from '../../core/store/index.ts';
import { CONSENT_TEXT_VERSION } from '../../services/checkout/audience/consent.ts';
import { launchChromium } from '../support/browser.ts';
import { auth, startCheckout, tempDir } from '../support/checkout.ts';

const UA =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36';
const CATALOG = {
  version: 1,
  eventId: 'ev-consent',
  currency: 'USD',
  items: [{ sku: 'TEE-M', name: 'Tour tee M', priceCents: 2500, stock: 20 }],
};

test('the buyer page asks for consent once, sells when declined, links when granted, withdraws', {
  timeout: 120_000,
}, async (t) => {
  const kit = await startCheckout();
  let browser: Browser | undefined;
  try {
    assert.equal(
      (await kit.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: CATALOG }))
        .statusCode,
      200,
    );
    assert.equal(
      (await kit.app.inject({ method: 'POST', url: '/v1/event/start', headers: auth, payload: {} }))
        .statusCode,
      200,
    );
    for (let i = 0; i < 100 && !readAudienceKey(kit.kit.store); i++)
      await new Promise((r) => setTimeout(r, 50));
    const key = readAudienceKey(kit.kit.store);
    assert.ok(key, 'the event key was made');
    await kit.app.listen({ port: 0, host: '127.0.0.1' });
    const origin = `http://127.0.0.1:${(kit.app.server.address() as { port: number }).port}`;
    browser = await launchChromium();
    const context = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      userAgent: UA,
    });
    const requests: string[] = [];
    const errors: string[] = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      requests.push(url);
      return new URL(url).origin === origin ? route.fallback() : route.abort('blockedbyclient');
    });
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });
    const shots = tempDir('popkit-consent-shots-');
    await page.goto(`${origin}/buy`);

    // asked, clearly, with the text version
    await page.locator('#consent').waitFor();
    assert.equal(await page.locator('#consentver').textContent(), CONSENT_TEXT_VERSION);
    assert.match((await page.locator('#consenttext').textContent()) ?? '', /withdraw/);
    const shot = path.join(shots, 'consent-question.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(fs.statSync(shot).size > 1000);
    t.diagnostic(`screenshot ${shot}`);

    // declined: the question goes, the page sells, nothing is linked
    await page.locator('#consentno').tap();
    await page.locator('#consent').waitFor({ state: 'hidden' });
    assert.match((await page.locator('#consentstate').textContent()) ?? '', /not linked/);
    // the one device that answered (the page's device token names it)
    const ids = [...kit.kit.store.consents.getKeys()];
    assert.equal(ids.length, 1);
    const dev = String(ids[0]);
    assert.equal(readConsent(kit.kit.store, dev)?.granted, false);
    assert.equal(readConsent(kit.kit.store, dev)?.textVersion, CONSENT_TEXT_VERSION);
    const buy = async (n: number) => {
      await page.locator('article.card[data-id="TEE-M"] button.buy').tap();
      await page.locator('#checkout').waitFor();
      await page.locator('#paybtn').tap();
      await page.locator('#receipt').waitFor({ timeout: 30_000 });
      await page.waitForFunction(() => document.getElementById('rid')?.textContent?.startsWith('Order '));
      assert.equal([...allOrders(kit.kit.store)].length, n);
    };
    await buy(1);
    assert.deepEqual(readConsent(kit.kit.store, dev)?.links, []);

    // asked once: a reload does not ask again
    await page.goto(`${origin}/buy`);
    await page.locator('#privacy').waitFor();
    assert.equal(await page.locator('#consent').isHidden(), true);

    // changed to yes: the next order links this phone's viewer id
    await page.locator('#consentask').tap();
    await page.locator('#consentyes').tap();
    await page.locator('#consentwithdraw').waitFor();
    assert.match((await page.locator('#consentstate').textContent()) ?? '', /is linked/);
    await buy(2);
    const viewerId = createHmac('sha256', Buffer.from(key.key, 'base64url'))
      .update(`127.0.0.1\n${UA}`)
      .digest()
      .subarray(0, 16)
      .toString('base64url');
    const newest = [...allOrders(kit.kit.store)].at(-1);
    const links = readConsent(kit.kit.store, dev)?.links ?? [];
    assert.equal(links.length, 1);
    assert.equal(links[0]?.viewerId, viewerId);
    assert.equal(links[0]?.eventId, 'ev-consent');
    assert.equal(links[0]?.orderId, newest?.id);

    // withdrawn: the links are deleted at once
    await page.goto(`${origin}/buy`);
    await page.locator('#consentwithdraw').tap();
    await page.locator('#consentask').waitFor();
    assert.deepEqual(readConsent(kit.kit.store, dev)?.links, []);
    assert.equal(readConsent(kit.kit.store, dev)?.granted, false);

    assert.deepEqual(
      requests.filter((u) => new URL(u).origin !== origin),
      [],
      'nothing off the kit',
    );
    assert.deepEqual(errors, []);
  } finally {
    await browser?.close();
    await kit.kit.close();
  }
});

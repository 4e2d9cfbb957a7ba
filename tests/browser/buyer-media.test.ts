// The buyer's page shows product images from the kit's own copies only: in real headless Chromium at
// phone size against a real checkout, the item whose rendition sync has fetched shows it (decoded, from
// /media/<sha256>), the item whose rendition is not on the kit yet shows none, and no request leaves
// the kit although every item also carries a remote imageUrl.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchChromium } from '../support/browser.ts';
import { auth, startCheckout } from '../support/checkout.ts';
import { cacheImage, mediaCatalog, sha256, webp } from '../support/media-kit.ts';

test('the buyer page shows the local image and nothing remote', { timeout: 120_000 }, async () => {
  const kit = await startCheckout();
  const browser = await launchChromium();
  try {
    const cached = {
      phone: cacheImage(kit.dataDir, await webp(480, 360, '#22aa55')),
      screen: cacheImage(kit.dataDir, await webp(1280, 960, '#22aa55')),
    };
    const missing = {
      phone: sha256(Buffer.from('absent phone')),
      screen: sha256(Buffer.from('absent screen')),
    };
    const put = await kit.app.inject({
      method: 'PUT',
      url: '/v1/catalog',
      headers: auth,
      payload: mediaCatalog(cached, missing),
    });
    assert.equal(put.statusCode, 200, put.body);
    await kit.app.listen({ port: 0, host: '127.0.0.1' });
    const origin = `http://127.0.0.1:${(kit.app.server.address() as { port: number }).port}`;
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    const requests: string[] = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      requests.push(url);
      return new URL(url).origin === origin ? route.fallback() : route.abort('blockedbyclient');
    });
    const page = await context.newPage();
    await page.goto(`${origin}/buy`);
    await page.waitForSelector('article.card[data-id="LOCAL"] img.pic');
    await page.waitForFunction(() => {
      const img = document.querySelector<HTMLImageElement>('article.card[data-id="LOCAL"] img.pic');
      return img?.complete && img.naturalWidth > 0;
    });
    const local = await page.$eval('article.card[data-id="LOCAL"] img.pic', (img) => ({
      src: (img as HTMLImageElement).src,
      w: (img as HTMLImageElement).naturalWidth,
      visible: !(img as HTMLImageElement).hidden,
    }));
    assert.deepEqual(local, { src: `${origin}/media/${cached.phone}`, w: 480, visible: true });
    // the missing one was asked for, answered 404, and is hidden
    await page.waitForFunction(
      () =>
        document.querySelector<HTMLImageElement>('article.card[data-id="MISSING"] img.pic')?.hidden === true,
    );
    assert.equal(
      await page.$$eval('article.card[data-id="OLD"] img', (l) => l.length),
      0,
      'no remote imageUrl shown',
    );
    assert.ok(requests.includes(`${origin}/media/${missing.phone}`));
    assert.deepEqual(
      requests.filter((u) => new URL(u).origin !== origin),
      [],
      'nothing requested off the kit',
    );
    await context.close();
  } finally {
    await browser.close();
    await kit.kit.close();
  }
});

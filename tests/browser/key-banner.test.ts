// The dashboard's key banner in real headless Chromium (docs/power-cuts.md): a device key lost while
// buyer devices depend on it is shown with what is refused and the file to restore; a whole kit shows
// no banner.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { dataLayout } from '../../core/data-dir.ts';
import { launchChromium } from '../support/browser.ts';
import { ADMIN, auth, smallCatalog, startCheckout, tempDir } from '../support/checkout.ts';

test('the dashboard shows a lost device key and what it stops; no banner once it is restored', {
  timeout: 120_000,
}, async () => {
  const dataDir = tempDir('popkit-key-banner-');
  const first = await startCheckout({}, dataDir);
  await first.app.inject({
    method: 'PUT',
    url: '/v1/catalog',
    headers: auth,
    payload: smallCatalog({ A: 5 }),
  });
  const issued = await first.app.inject({ method: 'POST', url: '/v1/devices', payload: {} });
  assert.equal(issued.statusCode, 201, issued.body);
  await first.kit.close();
  const file = dataLayout(dataDir).deviceKey;
  const key = fs.readFileSync(file);
  fs.writeFileSync(file, Buffer.alloc(4, 9));

  const browser = await launchChromium();
  try {
    for (const damaged of [true, false]) {
      if (!damaged) fs.writeFileSync(file, key, { mode: 0o600 });
      const kit = await startCheckout({}, dataDir);
      try {
        await kit.app.listen({ port: 0, host: '127.0.0.1' });
        const port = (kit.app.server.address() as { port: number }).port;
        const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message));
        await page.goto(`http://127.0.0.1:${port}/`);
        await page.waitForSelector('#pair:not([hidden])');
        await page.fill('#admintoken', ADMIN);
        await page.click('#pairbtn');
        // the status has been drawn once the kit id is shown
        await page.waitForFunction(() => document.getElementById('kit')?.textContent !== '…');
        if (damaged) {
          await page.waitForSelector('#keybanner:not([hidden])', { timeout: 10_000 });
          const text = (await page.locator('#keybanner').textContent()) ?? '';
          assert.match(text, /buyer device tokens refused/);
          assert.match(text, /device\.key is torn/);
        } else {
          assert.equal(await page.locator('#keybanner').isHidden(), true, 'no banner with whole keys');
        }
        assert.deepEqual(errors, []);
        await page.close();
      } finally {
        await kit.kit.close();
      }
    }
  } finally {
    await browser.close();
  }
});

// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// `popkit preflight` reports the catalog images not yet on the kit: against a real checkout whose
// catalog names one image sync has fetched and one it has not, the `images` check fails naming the SKU
// and the renditions (with what sync last said), and passes once every rendition is on disk. A catalog
// with imageUrl only passes (nothing the kit would show).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CheckoutClient } from '../../core/checkout-client.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { type PreflightOptions, runPreflight } from '../../firmware/preflight.ts';
import { ADMIN, auth, startCheckout } from '../support/checkout.ts';
import { cacheImage, mediaCatalog, sha256, webp } from '../support/media-kit.ts';

type Kit = Awaited<ReturnType<typeof startCheckout>>;
let kit: Kit;
let options: PreflightOptions;
const absent = { phone: Buffer.from('absent phone'), screen: Buffer.from('absent screen') };

/** A port nothing listens on: the hub checks fail at once, the images check does not need the hub. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

async function imagesCheck() {
  const r = await runPreflight(options);
  const c = r.checks.find((x) => x.id === 'images');
  assert.ok(c);
  return c;
}

before(async () => {
  kit = await startCheckout();
  const url = (await kit.app.listen({ port: 0, host: '127.0.0.1' })).replace('0.0.0.0', '127.0.0.1');
  options = {
    checkout: new CheckoutClient(url, () => ADMIN),
    hubHttpUrl: `http://127.0.0.1:${await closedPort()}`,
    dataDir: kit.dataDir,
    plannedEventMin: 60,
    lowSocPct: 20,
    minFreeMb: 1,
    queueWaitMs: 100,
    catalogMaxMs: 5000,
    maxClockSkewS: 5,
    clockFloor: Date.UTC(2025, 0, 1),
  };
});

after(async () => {
  await kit?.kit.close();
});

describe('preflight: catalog images warm', () => {
  test('a catalog with imageUrl only passes', async () => {
    const old = mediaCatalog({ phone: '', screen: '' }, { phone: '', screen: '' });
    const payload = { ...old, items: old.items.map(({ image: _image, ...i }) => i) };
    const put = await kit.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload });
    assert.equal(put.statusCode, 200, put.body);
    const c = await imagesCheck();
    assert.equal(c.ok, true, c.detail);
    assert.equal(c.data?.['wanted'], 0);
  });

  test('renditions not on the kit are named, with what sync last said; once fetched it passes', async () => {
    const cached = {
      phone: cacheImage(kit.dataDir, await webp(480, 360, '#123456')),
      screen: cacheImage(kit.dataDir, await webp(1280, 960, '#123456')),
    };
    const missing = { phone: sha256(absent.phone), screen: sha256(absent.screen) };
    const put = await kit.app.inject({
      method: 'PUT',
      url: '/v1/catalog',
      headers: auth,
      payload: { ...mediaCatalog(cached, missing), version: 2 },
    });
    assert.equal(put.statusCode, 200, put.body);
    const dir = dataLayout(kit.dataDir).productMedia;
    // what sync's fetcher writes when the hub is out of reach (services/sync/media-fetch.ts)
    fs.writeFileSync(
      path.join(dir, 'status.json'),
      JSON.stringify({
        v: 1,
        updatedAt: new Date().toISOString(),
        catalog: { eventId: 'ev-media', version: 1 },
        wanted: 4,
        warm: 2,
        bytes: 1,
        budgetBytes: 2,
        didNotFit: [],
        mismatched: [],
        state: 'hub-unreachable',
        lastError: 'hub http://hub:8090: fetch failed',
      }),
    );
    const c = await imagesCheck();
    assert.equal(c.ok, false);
    assert.match(c.detail, /2 of 4 renditions not yet on the kit, for MISSING \(sync: hub-unreachable/);
    assert.deepEqual(c.data?.['missing'], [
      { sku: 'MISSING', rendition: 'phone', sha256: missing.phone },
      { sku: 'MISSING', rendition: 'screen', sha256: missing.screen },
    ]);
    // a part file is not warm
    fs.writeFileSync(path.join(dir, `${missing.phone}.part`), absent.phone);
    assert.equal((await imagesCheck()).ok, false);
    cacheImage(kit.dataDir, absent.phone);
    cacheImage(kit.dataDir, absent.screen);
    const warm = await imagesCheck();
    assert.equal(warm.ok, true, warm.detail);
    assert.equal(warm.data?.['warm'], 4);
  });
});

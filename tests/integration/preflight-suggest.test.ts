// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// `popkit preflight`'s cache check warms the top 20 SKUs of the next event: the hero SKUs of the
// report's suggestion (suggest.json in the data dir) when there is one, else the kit's best sellers,
// else hero items first; each must be in the catalog with price and stock and have its images on the
// kit. Against a real checkout (real LMDB): a suggested SKU whose image sync has not fetched fails,
// naming it, and passes once it is there; a suggested SKU the catalog lacks fails; a suggest.json that
// does not fit its contract (hostile) is ignored and the best sellers are used.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CheckoutClient } from '../../core/checkout-client.ts';
import type { SuggestFileT } from '../../core/contracts/report.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { type PreflightOptions, runPreflight } from '../../firmware/preflight.ts';
import { ADMIN, auth, startCheckout } from '../support/checkout.ts';
import { cacheImage, sha256 } from '../support/media-kit.ts';

type Kit = Awaited<ReturnType<typeof startCheckout>>;
let kit: Kit;
let options: PreflightOptions;
const cold = { phone: Buffer.from('cold phone'), screen: Buffer.from('cold screen') };

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

async function cacheCheck() {
  const r = await runPreflight(options);
  const c = r.checks.find((x) => x.id === 'cache');
  assert.ok(c);
  return c;
}

const suggestion = (skus: string[]): SuggestFileT => ({
  v: 1,
  basedOn: 'ev-last',
  heroes: skus.map((sku, i) => ({ sku, name: sku, units: 100 - i, rushUnits: 0 })),
  bestDropMinute: null,
  catalog: {},
});

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
  // 25 items; HOOD's image is not on the kit yet
  const items = Array.from({ length: 24 }, (_, i) => ({
    sku: `S${String(i).padStart(2, '0')}`,
    name: `Item ${i}`,
    priceCents: 1000,
    stock: 100,
  }));
  const put = await kit.app.inject({
    method: 'PUT',
    url: '/v1/catalog',
    headers: auth,
    payload: {
      version: 1,
      eventId: 'ev-next',
      currency: 'EUR',
      items: [
        ...items,
        {
          sku: 'HOOD',
          name: 'Hoodie',
          priceCents: 5000,
          stock: 10,
          image: { phone: sha256(cold.phone), screen: sha256(cold.screen) },
        },
      ],
    },
  });
  assert.equal(put.statusCode, 200, put.body);
});

after(async () => {
  await kit?.kit.close();
});

describe('preflight: the top 20 SKUs of the next event warm', () => {
  test("by sales: the kit's best sellers come first", async () => {
    for (const [sku, qty] of [
      ['S07', 3],
      ['S03', 1],
    ] as const) {
      const res = await kit.app.inject({
        method: 'POST',
        url: '/v1/orders',
        headers: auth,
        payload: { lines: [{ sku, qty }], payment: { method: 'cash' } },
      });
      assert.equal(res.statusCode, 201, res.body);
    }
    const c = await cacheCheck();
    assert.equal(c.ok, true, c.detail);
    assert.equal(c.data?.['from'], 'sales');
    const skus = c.data?.['skus'] as string[];
    assert.deepEqual(skus.slice(0, 2), ['S07', 'S03']);
    assert.equal(skus.length, 20);
  });

  test("from the report's suggestion: a hero whose image is not on the kit fails until it is", async () => {
    const file = dataLayout(kit.dataDir).suggestion;
    fs.writeFileSync(file, JSON.stringify(suggestion(['HOOD', 'S01'])));
    const c = await cacheCheck();
    assert.equal(c.ok, false);
    assert.equal(c.data?.['from'], 'suggestion');
    assert.deepEqual(c.data?.['skus'], ['HOOD', 'S01']);
    assert.match(
      c.detail,
      /images of 1 of the top 2 SKUs \(from the report's suggestion\) not yet on the kit: HOOD/,
    );
    cacheImage(kit.dataDir, cold.phone);
    cacheImage(kit.dataDir, cold.screen);
    const warm = await cacheCheck();
    assert.equal(warm.ok, true, warm.detail);
  });

  test('a suggested SKU the catalog lacks fails, naming it', async () => {
    fs.writeFileSync(dataLayout(kit.dataDir).suggestion, JSON.stringify(suggestion(['S01', 'GONE'])));
    const c = await cacheCheck();
    assert.equal(c.ok, false);
    assert.match(c.detail, /not in the catalog: GONE/);
  });

  test('a suggest.json that does not fit its contract is ignored: the best sellers are used', async () => {
    for (const hostile of [
      '{"v":1,"basedOn":"x","heroes":[{"sku":"S01","__proto__":{"polluted":1}}]',
      JSON.stringify({ ...suggestion(['S01']), v: 2 }),
      JSON.stringify({ ...suggestion(['S01']), heroes: 'S01' }),
      'not json at all \u0000',
      JSON.stringify({ ...suggestion(Array.from({ length: 21 }, (_, i) => `S${i}`)) }),
    ]) {
      fs.writeFileSync(dataLayout(kit.dataDir).suggestion, hostile);
      const c = await cacheCheck();
      assert.equal(c.data?.['from'], 'sales', hostile);
      assert.match(String(c.data?.['note']), /does not fit its contract/);
      assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    }
  });
});

// The buyer's page (GET /buy) in real headless Chromium at phone size against a real checkout: the kit's
// clock counts a drop down, a purchase reaches a receipt once however flaky the Wi-Fi, a sold-out drop,
// every coded drop error as a sentence, and nothing requested from anywhere but the kit.
// Screenshots are kept as artifacts under POPKIT_ARTIFACTS_DIR (default tmp/artifacts/buyer).
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { encodePass } from '../../core/contracts/loyalty.ts';
import { ERROR_STATUS } from '../../core/errors.ts';
import { allOrders } from '../../core/store/index.ts';
import { launchChromium } from '../support/browser.ts';
import { auth, ROOT, startCheckout, tempDir } from '../support/checkout.ts';

const SHOTS = process.env['POPKIT_ARTIFACTS_DIR']
  ? path.join(process.env['POPKIT_ARTIFACTS_DIR'], 'buyer')
  : path.join(ROOT, 'tmp', 'artifacts', 'buyer');

type Kit = Awaited<ReturnType<typeof startCheckout>>;

/** A drop catalog: a numbered edition (optionally time-boxed), a tee, a sold-out poster and a bundle. */
function dropCatalog(
  opts: { dropStock?: number; window?: { startsAt: string; endsAt: string }; version?: number } = {},
) {
  return {
    version: opts.version ?? 1,
    eventId: 'ev-drop',
    currency: 'USD',
    items: [
      {
        sku: 'ED-01',
        name: 'Numbered edition #1',
        priceCents: 4500,
        stock: opts.dropStock ?? 5,
        hero: true,
        maxPerOrder: 1,
        ...(opts.window ? { saleWindow: opts.window } : {}),
      },
      { sku: 'TEE-M', name: 'Tour tee M', priceCents: 2500, stock: 20 },
      { sku: 'POSTER', name: 'Signed poster', priceCents: 1500, stock: 0 },
    ],
    bundles: [{ id: 'FAN-PACK', name: 'Fan pack', components: [{ sku: 'TEE-M', qty: 2 }], priceCents: 4000 }],
  };
}

interface Phone {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  origin: string;
  /** every URL the page asked for */
  requests: string[];
  /** uncaught page errors and console errors of the page's script */
  errors: string[];
  shot(name: string): Promise<void>;
}

/** A phone-sized Chromium on the kit's buyer page; anything off the kit is refused and recorded. */
async function openPhone(t: TestContext, kit: Kit, catalog: object, phoneTime?: number): Promise<Phone> {
  const res = await kit.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: catalog });
  assert.equal(res.statusCode, 200, res.body);
  await kit.app.listen({ port: 0, host: '127.0.0.1' });
  const origin = `http://127.0.0.1:${(kit.app.server.address() as { port: number }).port}`;
  const browser = await launchChromium();
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    userAgent:
      'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36',
  });
  const requests: string[] = [];
  const errors: string[] = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    requests.push(url);
    return new URL(url).origin === origin ? route.fallback() : route.abort('blockedbyclient');
  });
  if (phoneTime !== undefined) await context.clock.install({ time: phoneTime });
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    // Chromium logs every coded refusal and lost answer as a failed load: those are the page's to show
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  fs.mkdirSync(SHOTS, { recursive: true });
  const slug = t.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40);
  let n = 0;
  const shot = async (name: string) => {
    const file = path.join(SHOTS, `${slug}-${++n}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    t.diagnostic(`screenshot ${path.relative(ROOT, file)}`);
  };
  return { browser, context, page, origin, requests, errors, shot };
}

function assertOnlyKit(p: Phone) {
  assert.ok(p.requests.length > 0);
  const off = p.requests.filter((u) => new URL(u).origin !== p.origin);
  assert.deepEqual(off, [], 'the page requests nothing off the kit');
}

test('the page is served with a policy that forbids anything external, and every drop error code reads as a sentence', {
  timeout: 120_000,
}, async (t) => {
  const kit = await startCheckout();
  let phone: Phone | undefined;
  try {
    phone = await openPhone(t, kit, dropCatalog());
    const { page } = phone;
    const res = await page.goto(`${phone.origin}/buy`);
    const csp = res?.headers()['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/=]+'(;|$)/, 'only the page own script runs');
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /https?:|\*|unsafe-inline/);
    await page.waitForSelector('article.card[data-id="ED-01"]');
    // the page's script ran under its own policy: its hash matches what is served
    assert.equal(
      await page.evaluate(() => typeof (window as never as { popkitBuyer?: unknown }).popkitBuyer),
      'object',
    );
    const codes = Object.keys(ERROR_STATUS);
    const drops = codes.slice(codes.indexOf('NOT_ON_SALE_YET'), codes.indexOf('PAYMENT_DECLINED') + 1);
    assert.ok(drops.length >= 18, `drop codes: ${drops.join(',')}`);
    const others = [
      'SOLD_OUT',
      'RISK_LIMIT',
      'TOO_MANY_REQUESTS',
      'TOKEN_INVALID',
      'UNKNOWN_SKU',
      'NOT_READY',
    ];
    const sentences = await page.evaluate(
      (all) =>
        all.map((code) =>
          (window as never as { popkitBuyer: { sentence(e: unknown): string } }).popkitBuyer.sentence({
            code,
            message: 'raw message',
            details: { secondsToGo: 42, retryAfterS: 3, sku: 'ED-01' },
          }),
        ),
      [...drops, ...others],
    );
    for (const [i, s] of sentences.entries()) {
      const code = [...drops, ...others][i] as string;
      assert.doesNotMatch(s, /could not do that|raw message/, `${code} has its own sentence: ${s}`);
      assert.ok(!s.includes(code), `${code}: no code shown to a buyer`);
    }
    assert.match(sentences[drops.indexOf('NOT_ON_SALE_YET')] ?? '', /42 s/);
    assert.match(sentences[drops.length]?.toString() ?? '', /Numbered edition #1 just sold out/);
    // an unknown code still reads as a sentence with the kit's message
    assert.match(
      await page.evaluate(() =>
        (window as never as { popkitBuyer: { sentence(e: unknown): string } }).popkitBuyer.sentence({
          code: 'SOMETHING_NEW',
          message: 'it broke',
        }),
      ),
      /could not do that: it broke/,
    );
    assertOnlyKit(phone);
    assert.deepEqual(phone.errors, []);
  } finally {
    await phone?.browser.close();
    await kit.kit.close();
  }
});

test('a drop waits for a trusted kit clock, counts down by it (the phone is hours off) and turns into Buy at the instant', {
  timeout: 120_000,
}, async (t) => {
  // an empty host tree: no NTP flag, no RTC: the kit does not trust its clock until staff vouch
  const kit = await startCheckout({
    POPKIT_HOST_ROOT: tempDir('popkit-host-'),
    POPKIT_CLOCK_NTP_POLL_S: '3600',
  });
  let phone: Phone | undefined;
  try {
    // the window opens twenty seconds from now by the kit's clock (the process clock)
    const opensAt = Date.now() + 20_000;
    const window = {
      startsAt: new Date(opensAt).toISOString(),
      endsAt: new Date(opensAt + 3_600_000).toISOString(),
    };
    // the phone's clock is three hours behind the kit: a page that trusted it would count 3 h down
    phone = await openPhone(t, kit, dropCatalog({ window }), Date.now() - 3 * 3_600_000);
    const { page } = phone;
    await page.goto(`${phone.origin}/buy`);
    const card = page.locator('article.card[data-id="ED-01"]');
    await page.waitForSelector('article.card[data-id="ED-01"][data-state="untrusted"]');
    assert.equal(await card.locator('.state').textContent(), 'Waiting for the kit clock');
    await page.locator('#clockwarn').waitFor();
    assert.equal(await card.locator('button.buy').count(), 0);
    await phone.shot('clock-untrusted');
    const vouch = await kit.app.inject({
      method: 'POST',
      url: '/v1/clock/trust',
      headers: auth,
      payload: {},
    });
    assert.equal(vouch.statusCode, 200, vouch.body);
    // the page's next catalog read shows the window; the banner goes
    await card.locator('.countdown').waitFor({ timeout: 20_000 });
    await page.locator('#clockwarn').waitFor({ state: 'hidden', timeout: 20_000 });
    assert.equal(await card.getAttribute('data-state'), 'upcoming');
    assert.equal(await card.locator('button.buy').count(), 0, 'no buy button before the instant');
    const shown = (await card.locator('.countdown').textContent()) ?? '';
    assert.match(shown, /^Opens in 0:[01]\d$/, `counted down by the kit's clock: ${shown}`);
    await phone.shot('countdown');
    // the other items are on sale meanwhile
    assert.equal(await page.locator('article.card[data-id="TEE-M"] button.buy').count(), 1);
    await card.locator('button.buy').waitFor({ timeout: 60_000 });
    assert.equal(await card.getAttribute('data-state'), 'open');
    await phone.shot('buy');
    // and the kit sells it: buy, pay, receipt
    await card.locator('button.buy').tap();
    await page.locator('#checkout').waitFor();
    await page.locator('#paybtn').tap();
    await page.locator('#receipt').waitFor();
    await page.waitForFunction(() => document.getElementById('rtotal')?.textContent?.includes('45'));
    const orders = [...allOrders(kit.kit.store)];
    assert.equal(orders.length, 1);
    assert.deepEqual(
      orders[0]?.lines.map((l) => [l.sku, l.qty]),
      [['ED-01', 1]],
    );
    assertOnlyKit(phone);
    assert.deepEqual(phone.errors, []);
  } finally {
    await phone?.browser.close();
    await kit.kit.close();
  }
});

test('a purchase on flaky Wi-Fi: the answer is lost, the page retries with the same Idempotency-Key, one order and its receipt', {
  timeout: 120_000,
}, async (t) => {
  const kit = await startCheckout();
  let phone: Phone | undefined;
  try {
    phone = await openPhone(t, kit, dropCatalog());
    const { page } = phone;
    const keys: string[] = [];
    let lost = 0;
    await page.route('**/v1/orders', async (route) => {
      if (route.request().method() !== 'POST') return route.fallback();
      keys.push(route.request().headers()['idempotency-key'] ?? '');
      if (lost === 0) {
        lost++;
        // the kit takes the order, the venue Wi-Fi drops the answer
        const res = await route.fetch();
        assert.equal(res.status(), 201);
        return route.abort('connectionreset');
      }
      return route.fallback();
    });
    await page.goto(`${phone.origin}/buy`);
    await page.locator('article.card[data-id="FAN-PACK"] button.buy').waitFor();
    // the bundle shows its components and how many whole bundles the stock makes
    assert.match(
      (await page.locator('article.card[data-id="FAN-PACK"]').textContent()) ?? '',
      /2 × Tour tee M/,
    );
    assert.match(
      (await page.locator('article.card[data-id="FAN-PACK"] .state').textContent()) ?? '',
      /10 left/,
    );
    // nothing here is time-boxed: whatever the kit's clock, no banner about it
    assert.equal(await page.locator('#clockwarn').isHidden(), true);
    await phone.shot('shop');
    await page.locator('article.card[data-id="ED-01"] button.buy').tap();
    await page.locator('#checkout').waitFor();
    assert.match((await page.locator('fieldset.sandbox legend').textContent()) ?? '', /SANDBOX/);
    await page.fill('#card', 'tok_sandbox_visa_4242');
    await phone.shot('checkout');
    await page.locator('#paybtn').tap();
    await page.locator('#receipt').waitFor({ timeout: 30_000 });
    await page.waitForFunction(() =>
      document.getElementById('rstate')?.textContent?.includes('Order confirmed'),
    );
    assert.equal(keys.length, 2, 'one retry');
    assert.equal(keys[0], keys[1], 'the retry carries the same key');
    assert.match(keys[0] ?? '', /^buy-[0-9a-f]{32}$/);
    const orders = [...allOrders(kit.kit.store)];
    assert.equal(orders.length, 1, 'bought once');
    assert.equal(orders[0]?.idempotencyKey, keys[0]);
    assert.ok(orders[0]?.reservationId, 'paid through the hold Buy took');
    assert.match((await page.locator('#rid').textContent()) ?? '', new RegExp(orders[0]?.id ?? 'x'));
    assert.match((await page.locator('#rpay').textContent()) ?? '', /Sandbox card ••••4242/);
    assert.equal(await page.evaluate(() => localStorage.getItem('popkit.buyer.attempt')), null);
    await phone.shot('receipt');
    // a reload shows the same receipt from the kit
    await page.reload();
    await page.waitForFunction(() => document.getElementById('rid')?.textContent?.startsWith('Order '));
    assert.equal([...allOrders(kit.kit.store)].length, 1);
    // a second purchase is a new attempt with a new key
    await page.locator('.toshop').last().tap();
    await page.locator('article.card[data-id="TEE-M"] button.buy').tap();
    await page.locator('#paybtn').tap();
    await page.waitForFunction(() => document.getElementById('rtotal')?.textContent?.includes('25'));
    assert.equal(keys.length, 3);
    assert.notEqual(keys[2], keys[0]);
    assert.equal([...allOrders(kit.kit.store)].length, 2);
    assertOnlyKit(phone);
    assert.deepEqual(phone.errors, []);
  } finally {
    await phone?.browser.close();
    await kit.kit.close();
  }
});

test('a sold-out drop: sold out on arrival, and the last unit taken by someone else while this buyer pays', {
  timeout: 120_000,
}, async (t) => {
  const kit = await startCheckout();
  let phone: Phone | undefined;
  try {
    phone = await openPhone(t, kit, dropCatalog({ dropStock: 1 }), Date.now());
    const { page } = phone;
    await page.goto(`${phone.origin}/buy`);
    const poster = page.locator('article.card[data-id="POSTER"]');
    await poster.waitFor();
    assert.equal(await poster.getAttribute('data-state'), 'soldout');
    assert.equal(await poster.locator('.state').textContent(), 'Sold out');
    assert.equal(await poster.locator('button.buy').count(), 0);
    const drop = page.locator('article.card[data-id="ED-01"]');
    assert.equal(await drop.locator('.state').textContent(), '1 left');
    // the phone's timers stand still from here: the page does not poll the catalog again before the tap
    await page.clock.pauseAt(Date.now() + 1_000);
    // someone at the counter takes the last one while this buyer looks at "1 left"
    const other = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: auth,
      payload: { lines: [{ sku: 'ED-01', qty: 1 }], payment: { method: 'cash' } },
    });
    assert.equal(other.statusCode, 201);
    await drop.locator('button.buy').tap();
    // a kit that holds carts refuses the hold; one that does not refuses the payment
    await page.waitForFunction(
      () =>
        !document.getElementById('checkout')?.hidden ||
        document.getElementById('msg')?.textContent?.includes('sold out'),
    );
    if (await page.locator('#checkout').isVisible()) await page.locator('#paybtn').tap();
    await page.waitForFunction(() => document.getElementById('msg')?.textContent?.includes('just sold out'));
    assert.equal(await page.locator('#msg').textContent(), 'Sorry, Numbered edition #1 just sold out.');
    await page.waitForSelector('article.card[data-id="ED-01"][data-state="soldout"]');
    assert.equal(await page.locator('#shop').isVisible(), true);
    await phone.shot('sold-out');
    assert.equal([...allOrders(kit.kit.store)].length, 1, 'the counter sale only');
    assertOnlyKit(phone);
    assert.deepEqual(phone.errors, []);
  } finally {
    await phone?.browser.close();
    await kit.kit.close();
  }
});

test('no answer at all: the page offers Try again, and a reopened page finishes the same purchase, once', {
  timeout: 120_000,
}, async (t) => {
  const kit = await startCheckout();
  let phone: Phone | undefined;
  try {
    phone = await openPhone(t, kit, dropCatalog());
    const { page } = phone;
    const keys: string[] = [];
    // the kit takes every attempt; the Wi-Fi loses every answer
    await page.route('**/v1/orders', async (route) => {
      if (route.request().method() !== 'POST') return route.fallback();
      keys.push(route.request().headers()['idempotency-key'] ?? '');
      await route.fetch();
      return route.abort('connectionreset');
    });
    await page.goto(`${phone.origin}/buy`);
    await page.locator('article.card[data-id="TEE-M"] button.buy').tap();
    await page.locator('#paybtn').tap();
    await page.locator('#retrybtn').waitFor({ timeout: 30_000 });
    assert.equal(
      await page.locator('#msg').textContent(),
      'No answer from the kit (venue Wi-Fi?). Nothing was charged twice: try again.',
    );
    assert.equal(keys.length, 4, 'the first send and three retries');
    assert.equal(new Set(keys).size, 1, 'all with one key');
    assert.equal([...allOrders(kit.kit.store)].length, 1, 'taken once');
    await phone.shot('no-answer');
    // the buyer closes the page; reopened on a better network, it finishes the attempt with its key
    await page.unroute('**/v1/orders');
    const resent = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/v1/orders'));
    await page.goto(`${phone.origin}/buy`);
    assert.equal((await resent).headers()['idempotency-key'], keys[0]);
    await page.locator('#receipt').waitFor({ timeout: 30_000 });
    await page.waitForFunction(() => document.getElementById('rid')?.textContent?.startsWith('Order '));
    const orders = [...allOrders(kit.kit.store)];
    assert.equal(orders.length, 1, 'still one order');
    assert.equal(await page.locator('#rid').textContent(), `Order ${orders[0]?.id}`);
    assert.equal(await page.evaluate(() => localStorage.getItem('popkit.buyer.attempt')), null);
    assertOnlyKit(phone);
    assert.deepEqual(phone.errors, []);
  } finally {
    await phone?.browser.close();
    await kit.kit.close();
  }
});

test('a cart hold counts down on the phone and runs out: the unit goes back on sale, and holding again sells it', {
  timeout: 120_000,
}, async (t) => {
  // the shortest hold the kit allows
  const kit = await startCheckout({ POPKIT_RESERVATION_TTL_S: '10' });
  let phone: Phone | undefined;
  try {
    phone = await openPhone(t, kit, dropCatalog({ dropStock: 1 }));
    const { page } = phone;
    const stock = async () =>
      (await kit.app.inject({ method: 'GET', url: '/v1/catalog' }))
        .json()
        .items.find((i: { sku: string }) => i.sku === 'ED-01').stock;
    await page.goto(`${phone.origin}/buy`);
    await page.locator('article.card[data-id="ED-01"] button.buy').tap();
    await page.locator('#checkout').waitFor();
    await page.locator('#hold').waitFor();
    assert.match((await page.locator('#holdtimer').textContent()) ?? '', /^0:(10|0\d)$/);
    assert.equal(await stock(), 0, 'the hold has the unit');
    const held = await page.evaluate(() => JSON.parse(localStorage.getItem('popkit.buyer.hold') ?? 'null'));
    assert.ok(held?.id, 'the page keeps its hold');
    await phone.shot('hold');
    // nobody pays: at the kit's instant the page says the hold ran out
    await page.locator('#expired').waitFor({ timeout: 60_000 });
    assert.match((await page.locator('#expired').textContent()) ?? '', /went back on sale/);
    await phone.shot('hold-expired');
    const res = await kit.app.inject({ method: 'GET', url: `/v1/reservations/${held.id}` });
    assert.ok(
      res.statusCode === 410 || ['expired', 'released'].includes(res.json().status),
      `the hold is over on the kit: ${res.body}`,
    );
    assert.equal(await stock(), 1, 'the unit is back on sale');
    // hold it again and pay: the order converts the new hold
    await page.locator('#againbtn').tap();
    await page.locator('#hold').waitFor();
    await page.locator('#paybtn').tap();
    await page.locator('#receipt').waitFor();
    await page.waitForFunction(() => document.getElementById('rid')?.textContent?.startsWith('Order '));
    const orders = [...allOrders(kit.kit.store)];
    assert.equal(orders.length, 1);
    assert.ok(orders[0]?.reservationId && orders[0].reservationId !== held.id, 'converted the new hold');
    assert.equal(await stock(), 0);
    assertOnlyKit(phone);
    assert.deepEqual(phone.errors, []);
  } finally {
    await phone?.browser.close();
    await kit.kit.close();
  }
});

test('a purchase with a pickup slot: the receipt carries the pickup code and its QR from the kit', {
  timeout: 120_000,
}, async (t) => {
  const kit = await startCheckout();
  let phone: Phone | undefined;
  try {
    const now = Date.now();
    const slots = [
      {
        id: 'early',
        startsAt: new Date(now - 3_600_000).toISOString(),
        endsAt: new Date(now + 3_600_000).toISOString(),
        capacity: 1,
        label: 'Merch tent, now',
      },
      {
        id: 'late',
        startsAt: new Date(now + 3_600_000).toISOString(),
        endsAt: new Date(now + 7_200_000).toISOString(),
        capacity: 50,
        label: 'After the show',
      },
    ];
    phone = await openPhone(t, kit, { ...dropCatalog(), pickupSlots: slots });
    const { page } = phone;
    // the early slot's one place goes to someone at the counter
    const other = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: auth,
      payload: { lines: [{ sku: 'TEE-M', qty: 1 }], payment: { method: 'cash' }, pickupSlotId: 'early' },
    });
    assert.equal(other.statusCode, 201, other.body);
    await page.goto(`${phone.origin}/buy`);
    await page.locator('article.card[data-id="FAN-PACK"] button.buy').tap();
    await page.locator('#checkout').waitFor();
    assert.equal(await page.locator('#slot option[value="early"]').getAttribute('disabled'), '');
    assert.match((await page.locator('#slot option[value="early"]').textContent()) ?? '', /\(full\)/);
    assert.equal(await page.locator('#slot').inputValue(), 'late');
    await page.locator('#paybtn').tap();
    await page.locator('#receipt').waitFor();
    await page.locator('#pickup').waitFor();
    const order = [...allOrders(kit.kit.store)].find((o) => o.id !== other.json().id);
    assert.ok(order?.pickup, 'the order took a pickup place');
    assert.equal(order.pickup.slotId, 'late');
    assert.equal(await page.locator('#pickupcode').textContent(), order.pickup.code);
    assert.match((await page.locator('#pickupslot').textContent()) ?? '', /After the show/);
    // the QR is the kit's SVG, fetched with the device's token (the kit shows it to no one else) and drawn
    assert.equal(await page.locator('#qr').getAttribute('data-src'), `/v1/orders/${order.id}/pickup.svg`);
    await page.waitForFunction(() => {
      const img = document.getElementById('qr') as HTMLImageElement | null;
      return Boolean(img?.complete && img.naturalWidth > 0);
    });
    assert.ok(phone.requests.includes(`${phone.origin}/v1/orders/${order.id}/pickup.svg`));
    await phone.shot('pickup-receipt');
    assertOnlyKit(phone);
    assert.deepEqual(phone.errors, []);
  } finally {
    await phone?.browser.close();
    await kit.kit.close();
  }
});

test('a loyalty pass typed on the phone previews its discount, the order takes it, and a used pass reads as a sentence', {
  timeout: 120_000,
}, async (t) => {
  const hub = generateKeyPairSync('ed25519');
  const kit = await startCheckout({
    POPKIT_HUB_PUBLIC_KEY: hub.publicKey.export({ type: 'spki', format: 'pem' }) as string,
  });
  let phone: Phone | undefined;
  try {
    phone = await openPhone(t, kit, { ...dropCatalog(), creatorId: 'creator-a' });
    const { page } = phone;
    const nowS = Math.floor(Date.now() / 1000);
    const pass = encodePass(hub.privateKey, {
      v: 1,
      id: 'pass-000001',
      holder: 'M-77',
      tier: 'gold',
      rule: { kind: 'percent', percent: 20, capCents: 1000 },
      scope: { creatorId: 'creator-a', eventIds: ['ev-drop'] },
      uses: 1,
      issuedAt: nowS - 60,
      expiresAt: nowS + 3600,
    });
    await page.goto(`${phone.origin}/buy`);
    await page.locator('article.card[data-id="TEE-M"] button.buy').tap();
    await page.locator('#checkout').waitFor();
    // pasted as a phone pastes it: with a line break in the middle
    await page.fill('#pass', `${pass.slice(0, 40)}\n${pass.slice(40)}`);
    await page.locator('#passbtn').tap();
    await page.waitForFunction(() => document.getElementById('passpreview')?.textContent?.includes('save'));
    assert.equal(
      await page.locator('#passpreview').textContent(),
      'Pass accepted (gold · M-77): you save $5.00.',
    );
    assert.equal(await page.locator('#discount').textContent(), '−$5.00');
    assert.equal(await page.locator('#total').textContent(), '$20.00');
    await phone.shot('loyalty-preview');
    await page.locator('#paybtn').tap();
    await page.locator('#receipt').waitFor();
    await page.waitForFunction(() => document.getElementById('rdiscount')?.textContent === '−$5.00');
    assert.equal(await page.locator('#rtotal').textContent(), '$20.00');
    const orders = [...allOrders(kit.kit.store)];
    assert.equal(orders.length, 1);
    assert.equal(orders[0]?.totalCents, 2000);
    assert.deepEqual(orders[0]?.discount, { passId: 'pass-000001', holder: 'M-77', cents: 500 });
    await phone.shot('loyalty-receipt');
    // the pass had one use: a second order's preview says so in words, and nothing is taken
    await page.locator('.toshop').last().tap();
    await page.locator('article.card[data-id="TEE-M"] button.buy').tap();
    await page.fill('#pass', pass);
    await page.locator('#passbtn').tap();
    await page.waitForFunction(() => document.getElementById('passpreview')?.textContent?.includes('used'));
    assert.equal(
      await page.locator('#passpreview').textContent(),
      'That loyalty pass has already been used here.',
    );
    assert.equal(await page.locator('#discount').count(), 0);
    assert.equal([...allOrders(kit.kit.store)].length, 1);
    assertOnlyKit(phone);
    assert.deepEqual(phone.errors, []);
  } finally {
    await phone?.browser.close();
    await kit.kit.close();
  }
});

test('a scarce card order offline is held until paid at pickup, and the receipt follows staff releasing it', {
  timeout: 120_000,
}, async (t) => {
  // no offline allowance: every scarce card order from a phone is held
  const kit = await startCheckout({ POPKIT_BUYER_OFFLINE_ALLOWANCE: '0' });
  let phone: Phone | undefined;
  try {
    phone = await openPhone(t, kit, dropCatalog());
    const { page } = phone;
    await page.goto(`${phone.origin}/buy`);
    // the page asks the kit for its device token once and keeps it
    await page.waitForFunction(() => localStorage.getItem('popkit.deviceToken'));
    const device = await page.evaluate(() => localStorage.getItem('popkit.deviceToken'));
    await page.locator('article.card[data-id="ED-01"] button.buy').tap();
    await page.locator('#paybtn').tap();
    await page.locator('#receipt').waitFor();
    await page.waitForSelector('#rstate[data-status="held"]');
    assert.match(
      (await page.locator('#rstate').textContent()) ?? '',
      /^Held until paid at pickup: pay at the counter by /,
    );
    const [order] = [...allOrders(kit.kit.store)];
    assert.equal(order?.status, 'held');
    assert.ok(order?.deviceId, 'the order names the device');
    await phone.shot('held');
    // staff release it: the receipt says so on its next look, and the unit is back on sale
    const rel = await kit.app.inject({
      method: 'POST',
      url: `/v1/orders/${order?.id}/release`,
      headers: auth,
      payload: { reason: 'not collected' },
    });
    assert.equal(rel.statusCode, 200, rel.body);
    await page.waitForSelector('#rstate[data-status="released"]', { timeout: 30_000 });
    assert.match(
      (await page.locator('#rstate').textContent()) ?? '',
      /^Released \(not collected\): the items went back on sale/,
    );
    assert.equal(await page.locator('#pickup').isHidden(), true);
    const cat = (await kit.app.inject({ method: 'GET', url: '/v1/catalog' })).json();
    assert.equal(cat.items.find((i: { sku: string }) => i.sku === 'ED-01').stock, 5, 'the unit is back');
    await phone.shot('released');
    // a reload keeps the same device token: it was asked for once
    await page.goto(`${phone.origin}/buy`);
    await page.locator('article.card[data-id="ED-01"]').waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('popkit.deviceToken')), device);
    assert.equal(phone.requests.filter((u) => u === `${phone?.origin}/v1/devices`).length, 1);
    assertOnlyKit(phone);
    assert.deepEqual(phone.errors, []);
  } finally {
    await phone?.browser.close();
    await kit.kit.close();
  }
});

// Sale windows on a real checkout app and LMDB with an injected clock: countdown → open → ended in
// GET /v1/catalog (the cached body turns over on the boundary instant) and in POST /v1/orders
// (NOT_ON_SALE_YET with secondsToGo, SALE_ENDED), CLOCK_UNTRUSTED until a source or staff vouch, the
// hub floor from a signed catalog, clock jumps, and hostile input to POST /v1/clock/trust. Every
// refusal writes nothing.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { signCatalog } from '../../core/catalog-signing.ts';
import { CheckoutClient } from '../../core/checkout-client.ts';
import { kitStatusView } from '../../core/contracts/kit-status.ts';
import { readClockTrust, readHubTimeFloor } from '../../core/store/clock.ts';
import { allOrders, readAllStock } from '../../core/store/index.ts';
import { runPreflight } from '../../firmware/preflight.ts';
import { assertOnSale } from '../../services/checkout/sale-windows.ts';
import { CatalogIntake } from '../../services/sync/catalog-intake.ts';
import { ADMIN, auth, startCheckout, tempDir } from '../support/checkout.ts';
import { clockedCheckout, FakeClock, T0 } from '../support/drops-clock.ts';

const START = 60_000; // the drop opens one minute after T0
const END = 3_600_000;

function dropCatalog(version = 1) {
  return {
    version,
    eventId: 'ev-drop',
    currency: 'USD',
    items: [
      {
        sku: 'ED-1',
        name: 'Numbered edition',
        priceCents: 5000,
        stock: 50,
        hero: true,
        saleWindow: { startsAt: FakeClock.at(START), endsAt: FakeClock.at(END) },
      },
      { sku: 'TEE', name: 'Tee', priceCents: 2500, stock: 100 },
    ],
    bundles: [
      {
        id: 'BND',
        name: 'Edition + tee',
        components: [
          { sku: 'ED-1', qty: 1 },
          { sku: 'TEE', qty: 1 },
        ],
        priceCents: 7000,
        saleWindow: { startsAt: FakeClock.at(START + 30_000), endsAt: FakeClock.at(END) },
      },
    ],
  };
}

const card = { method: 'token', token: 'tok_sandbox_visa_4242' } as const;
const buy = (line: Record<string, unknown>) => ({ lines: [{ qty: 1, ...line }], payment: card });

type Kit = Awaited<ReturnType<typeof clockedCheckout>>;
const kits: Kit[] = [];
after(async () => {
  for (const k of kits) await k.close();
});

async function kitAt(clock: FakeClock): Promise<Kit> {
  const kit = await clockedCheckout(clock);
  kits.push(kit);
  const res = await kit.app.inject({
    method: 'PUT',
    url: '/v1/catalog',
    headers: auth,
    payload: dropCatalog(),
  });
  assert.equal(res.statusCode, 200, res.body);
  return kit;
}

async function catalogStates(kit: Kit) {
  const res = await kit.app.inject({ method: 'GET', url: '/v1/catalog' });
  assert.equal(res.statusCode, 200);
  const c = res.json();
  return {
    ed: c.items.find((i: { sku: string }) => i.sku === 'ED-1').saleState,
    tee: c.items.find((i: { sku: string }) => i.sku === 'TEE').saleState,
    bundle: c.bundles[0]?.saleState,
  };
}

async function nothingWritten(kit: Kit) {
  assert.equal([...allOrders(kit.store)].length, 0);
  assert.deepEqual(readAllStock(kit.store), { 'ED-1': 50, TEE: 100 });
}

describe('sale windows', () => {
  test('countdown → open → ended, by the trusted clock; the catalog body turns over on the instant', async () => {
    const clock = new FakeClock();
    clock.rtc = true;
    const kit = await kitAt(clock);
    assert.deepEqual(await catalogStates(kit), { ed: 'upcoming', tee: undefined, bundle: 'upcoming' });

    // 20.4 s to go: refused, the seconds to go rounded up, nothing written
    clock.tick(START - 20_400);
    const early = await kit.app.inject({ method: 'POST', url: '/v1/orders', payload: buy({ sku: 'ED-1' }) });
    assert.equal(early.statusCode, 409);
    assert.deepEqual(early.json().error.code, 'NOT_ON_SALE_YET');
    assert.deepEqual(early.json().error.details, {
      sku: 'ED-1',
      startsAt: FakeClock.at(START),
      secondsToGo: 21,
    });
    const earlyBundle = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      payload: buy({ bundle: 'BND' }),
    });
    assert.equal(earlyBundle.json().error.code, 'NOT_ON_SALE_YET');
    assert.equal(earlyBundle.json().error.details.bundle, 'BND');
    assert.equal(earlyBundle.json().error.details.secondsToGo, 51);
    // a SKU without a window sells meanwhile; the time-boxed one on the same order refuses the order
    const mixed = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      payload: {
        lines: [
          { sku: 'TEE', qty: 1 },
          { sku: 'ED-1', qty: 1 },
        ],
        payment: card,
      },
    });
    assert.equal(mixed.json().error.code, 'NOT_ON_SALE_YET');
    await nothingWritten(kit);
    assert.equal((await catalogStates(kit)).ed, 'upcoming');

    // the last millisecond before: still upcoming (the cached body is still right)
    clock.tick(20_399);
    assert.equal((await catalogStates(kit)).ed, 'upcoming');
    const lastMs = await kit.app.inject({ method: 'POST', url: '/v1/orders', payload: buy({ sku: 'ED-1' }) });
    assert.equal(lastMs.json().error.details.secondsToGo, 1);
    // the instant it opens: no order or stock change in between, the cached body still turns over
    clock.tick(1);
    assert.deepEqual(await catalogStates(kit), { ed: 'open', tee: undefined, bundle: 'upcoming' });
    const sold = await kit.app.inject({ method: 'POST', url: '/v1/orders', payload: buy({ sku: 'ED-1' }) });
    assert.equal(sold.statusCode, 201, sold.body);
    clock.tick(30_000);
    assert.deepEqual(await catalogStates(kit), { ed: 'open', tee: undefined, bundle: 'open' });
    const bundle = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      payload: buy({ bundle: 'BND' }),
    });
    assert.equal(bundle.statusCode, 201, bundle.body);

    // endsAt is exclusive
    clock.tick(END - START - 30_000);
    assert.deepEqual(await catalogStates(kit), { ed: 'ended', tee: undefined, bundle: 'ended' });
    const late = await kit.app.inject({ method: 'POST', url: '/v1/orders', payload: buy({ sku: 'ED-1' }) });
    assert.equal(late.statusCode, 410);
    assert.deepEqual(late.json().error, {
      code: 'SALE_ENDED',
      message: late.json().error.message,
      details: { sku: 'ED-1', endsAt: FakeClock.at(END) },
    });
    assert.equal([...allOrders(kit.store)].length, 2);
    assert.deepEqual(readAllStock(kit.store), { 'ED-1': 48, TEE: 99 });
  });

  test('every kit of the event opens at the same absolute instant, whatever its offset or boot', async () => {
    const a = new FakeClock();
    const b = new FakeClock();
    a.rtc = b.rtc = true;
    b.monoMs = 999_999; // booted long before
    const [ka, kb] = [await kitAt(a), await kitAt(b)];
    for (const c of [a, b]) c.tick(START - 1);
    assert.deepEqual([(await catalogStates(ka)).ed, (await catalogStates(kb)).ed], ['upcoming', 'upcoming']);
    for (const c of [a, b]) c.tick(1);
    assert.deepEqual([(await catalogStates(ka)).ed, (await catalogStates(kb)).ed], ['open', 'open']);
  });

  test('assertOnSale, for the reservations endpoint: the same refusals from the same lines', async () => {
    const clock = new FakeClock();
    clock.rtc = true;
    const kit = await kitAt(clock);
    const cat = kit.orders.catalog();
    assert.ok(cat);
    const at = (ms: number, trusted = true) => ({ now: T0 + ms, trusted });
    const code = (f: () => void) => {
      try {
        f();
        return 'ok';
      } catch (e) {
        return (e as { code: string }).code;
      }
    };
    assert.equal(
      code(() => assertOnSale(cat, [{ sku: 'ED-1' }], at(0))),
      'NOT_ON_SALE_YET',
    );
    assert.equal(
      code(() => assertOnSale(cat, [{ sku: 'ED-1' }], at(START))),
      'ok',
    );
    assert.equal(
      code(() => assertOnSale(cat, [{ bundle: 'BND' }], at(START))),
      'NOT_ON_SALE_YET',
    );
    assert.equal(
      code(() => assertOnSale(cat, [{ sku: 'ED-1' }], at(END))),
      'SALE_ENDED',
    );
    assert.equal(
      code(() => assertOnSale(cat, [{ sku: 'ED-1' }], at(START, false))),
      'CLOCK_UNTRUSTED',
    );
    assert.equal(
      code(() => assertOnSale(cat, [{ sku: 'TEE' }], at(0, false))),
      'ok',
      'no window: no clock needed',
    );
    assert.equal(
      code(() => assertOnSale(cat, [{ sku: 'NOPE' }], at(0))),
      'ok',
      'unknown: left to pricing',
    );
  });
});

describe('trusted time at the checkout', () => {
  test('CLOCK_UNTRUSTED until staff vouch; buyers and terminals cannot vouch; status and dashboard data say why', async () => {
    const clock = new FakeClock();
    const kit = await kitAt(clock);
    clock.tick(START);
    assert.equal((await catalogStates(kit)).ed, 'clock_untrusted');
    const refused = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      payload: buy({ sku: 'ED-1' }),
    });
    assert.equal(refused.statusCode, 503);
    assert.equal(refused.json().error.code, 'CLOCK_UNTRUSTED');
    assert.equal(refused.json().error.details.sku, 'ED-1');
    // a SKU without a window needs no clock
    const tee = await kit.app.inject({ method: 'POST', url: '/v1/orders', payload: buy({ sku: 'TEE' }) });
    assert.equal(tee.statusCode, 201);

    const status = await kit.app.inject({ method: 'GET', url: '/v1/status', headers: auth });
    const s = status.json();
    assert.ok(kitStatusView.check(s), kitStatusView.errors(s).join('; '));
    assert.equal(s.drops?.clock?.trusted, false);
    assert.equal(s.drops?.clock?.reason, 'never_set');
    assert.equal(s.drops?.admission?.enabled, true);

    for (const headers of [{}, { authorization: 'Bearer not-a-token-at-all' }]) {
      const r = await kit.app.inject({ method: 'POST', url: '/v1/clock/trust', headers, payload: {} });
      assert.ok([401, 403].includes(r.statusCode), `${r.statusCode} ${r.body}`);
    }
    assert.equal(readClockTrust(kit.store), undefined);

    const ok = await kit.app.inject({ method: 'POST', url: '/v1/clock/trust', headers: auth, payload: {} });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().trusted, true);
    assert.equal(ok.json().source, 'override');
    assert.equal(readClockTrust(kit.store)?.source, 'override');
    assert.equal((await catalogStates(kit)).ed, 'open', 'the cached body follows the trust change');
    const sold = await kit.app.inject({ method: 'POST', url: '/v1/orders', payload: buy({ sku: 'ED-1' }) });
    assert.equal(sold.statusCode, 201);

    // a jump back of an hour: trust dropped at once, sales of time-boxed SKUs pause
    clock.jump(-3_600_000);
    const jumped = await kit.app.inject({ method: 'POST', url: '/v1/orders', payload: buy({ sku: 'ED-1' }) });
    assert.equal(jumped.json().error.code, 'CLOCK_UNTRUSTED');
    const view = (await kit.app.inject({ method: 'GET', url: '/v1/clock', headers: auth })).json();
    assert.equal(view.reason, 'clock_jumped');
    assert.equal(view.jumpMs, -3_600_000);
    // a jump forward past the end while untrusted still says untrusted, not ended
    clock.jump(2 * 3_600_000);
    assert.equal((await catalogStates(kit)).ed, 'clock_untrusted');
  });

  test('hostile bodies to POST /v1/clock/trust are refused with a code and change nothing', async () => {
    const clock = new FakeClock();
    const kit = await kitAt(clock);
    const bodies: unknown[] = [
      { expectNow: 'yesterday' },
      { expectNow: '2026-11-30T20:00:00' }, // no zone
      { expectNow: `2026-11-30T20:00:00Z\u0000` },
      { expectNow: 'x'.repeat(100_000) },
      { expectNow: 12 },
      { expectNow: FakeClock.at(-3_600_000) }, // an hour off the kit's clock
      { trusted: true },
      [],
      'now',
    ];
    const raw = [
      ...bodies.map((b) => JSON.stringify(b)),
      '{"__proto__": {"trusted": true}}',
      '{"constructor": {"prototype": {"trusted": true}}}',
      '{"expectNow": ',
      '',
    ];
    for (const payload of raw) {
      const r = await kit.app.inject({
        method: 'POST',
        url: '/v1/clock/trust',
        headers: { ...auth, 'content-type': 'application/json' },
        payload,
      });
      assert.ok(
        [400, 409, 413].includes(r.statusCode),
        `${payload.slice(0, 60)} → ${r.statusCode} ${r.body}`,
      );
      assert.ok(typeof r.json().error.code === 'string');
    }
    assert.equal(readClockTrust(kit.store), undefined, 'no refused override was recorded');
    const fine = await kit.app.inject({
      method: 'POST',
      url: '/v1/clock/trust',
      headers: auth,
      payload: { expectNow: FakeClock.at(20_000) },
    });
    assert.equal(fine.statusCode, 200, fine.body);
  });

  test('the hub floor: a signed catalog issued after what the clock reads makes the clock untrusted', async () => {
    const clock = new FakeClock();
    clock.rtc = true;
    const kit = await kitAt(clock);
    clock.tick(START);
    assert.equal((await catalogStates(kit)).ed, 'open');
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    // the sync process's intake, on the same store, with the kit's clocks
    const intake = new CatalogIntake(kit.store, { hubPublicKey: publicKey, eventId: 'ev-drop', clock });
    const topic = intake.topicOnConnect();
    const issuedAt = new Date(clock.wallMs + 86_400_000).toISOString(); // the hub's clock: a day later
    const { bundles: _b, ...plain } = dropCatalog(2);
    const signed = signCatalog(
      privateKey,
      { ...plain, items: plain.items.map((i) => ({ ...i, currency: 'USD' })) } as never,
      issuedAt,
    );
    await intake.receive(topic, Buffer.from(JSON.stringify(signed)));
    assert.equal(intake.refusals.length, 0, JSON.stringify(intake.refusals));
    assert.equal(readHubTimeFloor(kit.store)?.issuedAt, Date.parse(issuedAt));
    assert.equal((await catalogStates(kit)).ed, 'clock_untrusted');
    const r = await kit.app.inject({ method: 'POST', url: '/v1/orders', payload: buy({ sku: 'ED-1' }) });
    assert.equal(r.json().error.code, 'CLOCK_UNTRUSTED');
    const override = await kit.app.inject({
      method: 'POST',
      url: '/v1/clock/trust',
      headers: auth,
      payload: {},
    });
    assert.equal(override.statusCode, 503);
    assert.equal(override.json().error.details.reason, 'below_hub_floor');
    // the clock is set right (NTP steps it a day forward): NTP vouches again
    clock.jump(86_400_000 + 5000);
    clock.ntp = true;
    await kit.trust.refreshNtp();
    assert.equal(kit.trust.judge().source, 'ntp');
  });

  test('a hub catalog that agrees with the clock makes it trusted (the hub as a source)', async () => {
    const clock = new FakeClock();
    const kit = await kitAt(clock);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const intake = new CatalogIntake(kit.store, { hubPublicKey: publicKey, eventId: 'ev-drop', clock });
    const { bundles: _b, ...plain } = dropCatalog(2);
    const signed = signCatalog(privateKey, plain as never, new Date(clock.wallMs - 2000).toISOString());
    await intake.receive(intake.topicOnConnect(), Buffer.from(JSON.stringify(signed)));
    assert.equal(intake.refusals.length, 0, JSON.stringify(intake.refusals));
    assert.equal(kit.trust.judge().source, 'hub');
  });
});

describe('trusted time in the real wiring (createCheckout)', () => {
  function hostTree(rtc: boolean): string {
    const root = tempDir('popkit-host-');
    fs.mkdirSync(path.join(root, 'proc/sys/kernel/random'), { recursive: true });
    fs.writeFileSync(
      path.join(root, 'proc/sys/kernel/random/boot_id'),
      'f00dfeed-0000-4000-8000-000000000001\n',
    );
    if (rtc) {
      fs.mkdirSync(path.join(root, 'sys/class/rtc/rtc0'), { recursive: true });
      fs.writeFileSync(path.join(root, 'sys/class/rtc/rtc0/hctosys'), '1\n');
    }
    return root;
  }

  for (const rtc of [false, true]) {
    test(`no NTP here; RTC ${rtc ? 'set the clock: trusted' : 'absent: untrusted until staff vouch'}`, async (t) => {
      const { kit, app } = await startCheckout({
        POPKIT_HOST_ROOT: hostTree(rtc),
        POPKIT_CLOCK_NTP_POLL_S: '3600',
      });
      t.after(() => kit.close());
      const s = (await app.inject({ method: 'GET', url: '/v1/status', headers: auth })).json();
      assert.equal(s.drops.clock.trusted, rtc);
      assert.equal(s.drops.clock.sources.rtc, rtc);
      if (!rtc) {
        const r = await app.inject({
          method: 'POST',
          url: '/v1/clock/trust',
          headers: { authorization: `Bearer ${ADMIN}` },
          payload: {},
        });
        assert.equal(r.statusCode, 200, r.body);
        assert.equal(r.json().source, 'override');
      }
    });
  }
});

describe('popkit preflight says whether time-boxed sales can run', () => {
  test('untrusted with time-boxed SKUs fails the check; staff vouching passes it', async (t) => {
    const clock = new FakeClock();
    const kit = await kitAt(clock);
    const addr = await kit.app.listen({ port: 0, host: '127.0.0.1' });
    t.after(() => kit.app.server.close());
    const run = async () => {
      const r = await runPreflight({
        checkout: new CheckoutClient(addr, () => ADMIN),
        hubHttpUrl: 'http://127.0.0.1:9',
        dataDir: kit.dataDir,
        plannedEventMin: 60,
        lowSocPct: 30,
        minFreeMb: 1,
        queueWaitMs: 10,
        catalogMaxMs: 60_000,
        maxClockSkewS: 5,
        clockFloor: 0,
      });
      return r.checks.find((c) => c.id === 'saleClock');
    };
    const before = await run();
    assert.equal(before?.ok, false);
    assert.match(before?.detail ?? '', /not trusted: no NTP, RTC or hub time this boot; 2 time-boxed/);
    const ok = await kit.app.inject({ method: 'POST', url: '/v1/clock/trust', headers: auth, payload: {} });
    assert.equal(ok.statusCode, 200);
    const afterTrust = await run();
    assert.equal(afterTrust?.ok, true, afterTrust?.detail);
    assert.match(afterTrust?.detail ?? '', /trusted \(override\)/);
  });
});

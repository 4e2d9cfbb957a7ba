// Reservations and bundles through checkout's HTTP API on a real LMDB store: holds take stock and give
// it back (release, expiry swept and read lazily, across a restart), an order converts a hold exactly
// once, bundles sell atomically and their availability follows their components, abandoned holds are
// counted in /v1/status, /metrics and the telemetry lane, and hostile input changes nothing.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { LANES, readAllStock, scanOutbox } from '../../core/store/index.ts';
import { allReservations } from '../../core/store/reservations.ts';
import { asStaff, auth, startCheckout } from '../support/checkout.ts';
import { rewindReservationForTest } from '../support/reservations.ts';

type Kit = Awaited<ReturnType<typeof startCheckout>>;
const open: Kit[] = [];
after(async () => {
  for (const k of open) await k.kit.close().catch(() => undefined);
});

/** Two tees, a cap, and a bundle of 2 tees + 1 cap limited to 2 per order. */
function bundleCatalog(tee = 10, cap = 4) {
  return {
    version: 1,
    eventId: 'ev-res',
    currency: 'USD',
    items: [
      { sku: 'TEE', name: 'Tee', priceCents: 3000, stock: tee },
      { sku: 'CAP', name: 'Cap', priceCents: 2000, stock: cap },
    ],
    bundles: [
      {
        id: 'PACK',
        name: 'Tee pack',
        components: [
          { sku: 'TEE', qty: 2 },
          { sku: 'CAP', qty: 1 },
        ],
        priceCents: 7000,
        maxPerOrder: 2,
      },
    ],
  };
}

async function kitWith(env: Record<string, string> = {}, tee = 10, cap = 4, dataDir?: string) {
  const k = await startCheckout({ POPKIT_RESERVATION_TTL_S: '60', ...env }, dataDir);
  open.push(k);
  if (!dataDir) {
    const res = await k.app.inject({
      method: 'PUT',
      url: '/v1/catalog',
      headers: auth,
      payload: bundleCatalog(tee, cap),
    });
    assert.equal(res.statusCode, 200, res.body);
  }
  return k;
}

const cash = { method: 'cash' } as const;
const card = { method: 'token', token: 'tok_sandbox_visa_4242' } as const;

describe('reservations over HTTP', () => {
  test('a hold takes stock at once, answers 201 with id, expiry, priced lines and total; release returns it', async () => {
    const { app, kit } = await kitWith();
    const res = await app.inject({
      method: 'POST',
      url: '/v1/reservations',
      payload: {
        lines: [
          { sku: 'TEE', qty: 2 },
          { bundle: 'PACK', qty: 1 },
        ],
      },
    });
    assert.equal(res.statusCode, 201, res.body);
    const r = res.json();
    assert.match(r.id, /^[0-9A-Z]{26}$/);
    assert.equal(r.status, 'held');
    assert.equal(r.totalCents, 2 * 3000 + 7000);
    assert.equal(new Date(r.expiresAt).getTime() - new Date(r.createdAt).getTime(), 60_000);
    assert.deepEqual(readAllStock(kit.store), { TEE: 6, CAP: 3 });
    const cat = (await app.inject({ method: 'GET', url: '/v1/catalog' })).json();
    assert.equal(cat.bundles[0].available, 3, 'bundle availability follows the held components');
    assert.equal(res.headers['location'], `/v1/reservations/${r.id}`);

    const del = await app.inject({ method: 'DELETE', url: `/v1/reservations/${r.id}` });
    assert.equal(del.statusCode, 200, del.body);
    assert.equal(del.json().status, 'released');
    assert.deepEqual(readAllStock(kit.store), { TEE: 10, CAP: 4 });
    const again = await app.inject({ method: 'DELETE', url: `/v1/reservations/${r.id}` });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().error.code, 'RESERVATION_USED');
    assert.deepEqual(
      readAllStock(kit.store),
      { TEE: 10, CAP: 4 },
      'a replayed release returns nothing twice',
    );
    const status = (await asStaff(app)({ method: 'GET', url: '/v1/status' })).json();
    assert.deepEqual(status.drops.reservations, {
      eventId: 'ev-res',
      created: 1,
      converted: 0,
      expired: 0,
      released: 1,
      abandoned: 1,
      held: 0,
      ttlS: 60,
    });
  });

  test('an order converts its hold once: no stock taken twice, the second conversion is RESERVATION_USED', async () => {
    const { app, kit } = await kitWith();
    const staff = asStaff(app);
    const r = (
      await app.inject({
        method: 'POST',
        url: '/v1/reservations',
        payload: { lines: [{ bundle: 'PACK', qty: 2 }] },
      })
    ).json();
    assert.deepEqual(readAllStock(kit.store), { TEE: 6, CAP: 2 });
    const body = { lines: [{ bundle: 'PACK', qty: 2 }], payment: cash, reservationId: r.id };
    const [a, b] = await Promise.all([
      staff({ method: 'POST', url: '/v1/orders', payload: body }),
      staff({ method: 'POST', url: '/v1/orders', payload: body }),
    ]);
    const codes = [a.statusCode, b.statusCode].sort();
    assert.deepEqual(codes, [201, 409], `${a.body} ${b.body}`);
    const lost = a.statusCode === 409 ? a : b;
    assert.equal(lost.json().error.code, 'RESERVATION_USED');
    const won = (a.statusCode === 201 ? a : b).json();
    assert.equal(won.reservationId, r.id);
    assert.deepEqual(won.lines[0].components, [
      { sku: 'TEE', qty: 2 },
      { sku: 'CAP', qty: 1 },
    ]);
    assert.deepEqual(readAllStock(kit.store), { TEE: 6, CAP: 2 }, 'the conversion took no more stock');
    const got = (await app.inject({ method: 'GET', url: `/v1/reservations/${r.id}` })).json();
    assert.equal(got.status, 'converted');
    assert.equal(got.orderId, won.id);
    const del = await app.inject({ method: 'DELETE', url: `/v1/reservations/${r.id}` });
    assert.equal(del.json().error.code, 'RESERVATION_USED');
    assert.deepEqual(readAllStock(kit.store), { TEE: 6, CAP: 2 });
  });

  test('an order whose lines differ from its hold is RESERVATION_MISMATCH and changes nothing', async () => {
    const { app, kit } = await kitWith();
    const staff = asStaff(app);
    const r = (
      await app.inject({
        method: 'POST',
        url: '/v1/reservations',
        payload: { lines: [{ sku: 'TEE', qty: 2 }] },
      })
    ).json();
    for (const lines of [
      [{ sku: 'TEE', qty: 3 }],
      [{ sku: 'CAP', qty: 2 }],
      [
        { sku: 'TEE', qty: 2 },
        { sku: 'CAP', qty: 1 },
      ],
      [{ bundle: 'PACK', qty: 1 }],
    ]) {
      const res = await staff({
        method: 'POST',
        url: '/v1/orders',
        payload: { lines, payment: cash, reservationId: r.id },
      });
      assert.equal(res.statusCode, 409, res.body);
      assert.equal(res.json().error.code, 'RESERVATION_MISMATCH');
    }
    // the same lines split in two are the same order
    const ok = await staff({
      method: 'POST',
      url: '/v1/orders',
      payload: {
        lines: [
          { sku: 'TEE', qty: 1 },
          { sku: 'TEE', qty: 1 },
        ],
        payment: cash,
        reservationId: r.id,
      },
    });
    assert.equal(ok.statusCode, 201, ok.body);
    assert.deepEqual(readAllStock(kit.store), { TEE: 8, CAP: 4 });
  });

  test('an unknown reservation id is NOT_FOUND for orders, reads and releases; malformed ids are VALIDATION', async () => {
    const { app, kit } = await kitWith();
    const staff = asStaff(app);
    const unknown = '01JZZZZZZZZZZZZZZZZZZZZZZZ';
    const o = await staff({
      method: 'POST',
      url: '/v1/orders',
      payload: { lines: [{ sku: 'TEE', qty: 1 }], payment: cash, reservationId: unknown },
    });
    assert.equal(o.statusCode, 404);
    assert.equal(o.json().error.code, 'NOT_FOUND');
    assert.equal((await app.inject({ method: 'GET', url: `/v1/reservations/${unknown}` })).statusCode, 404);
    assert.equal(
      (await app.inject({ method: 'DELETE', url: `/v1/reservations/${unknown}` })).statusCode,
      404,
    );
    // beyond fastify's path parameter bound the router refuses it before any handler (414)
    const long = await app.inject({ method: 'GET', url: `/v1/reservations/${'x'.repeat(5000)}` });
    assert.equal(long.statusCode, 414);
    for (const bad of [
      '__proto__',
      'constructor',
      'x'.repeat(90),
      '%00',
      encodeURIComponent('01JZZZZZZZZZZZZZZZZZZZZZZ\u0000'),
    ]) {
      for (const method of ['GET', 'DELETE'] as const) {
        const res = await app.inject({ method, url: `/v1/reservations/${bad}` });
        assert.equal(res.statusCode, 400, `${method} ${bad.slice(0, 30)}: ${res.body}`);
        assert.equal(res.json().error.code, 'VALIDATION');
      }
    }
    for (const reservationId of [
      123,
      '__proto__',
      `${unknown.slice(0, 25)}\u0000`,
      unknown.toLowerCase(),
      'X'.repeat(10_000),
      null,
      [unknown],
    ]) {
      const res = await staff({
        method: 'POST',
        url: '/v1/orders',
        payload: { lines: [{ sku: 'TEE', qty: 1 }], payment: cash, reservationId },
      });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().error.code, 'VALIDATION');
    }
    assert.deepEqual(readAllStock(kit.store), { TEE: 10, CAP: 4 });
    assert.equal([...allReservations(kit.store)].length, 0);
  });

  test('hostile reservation bodies are refused with a coded error and hold nothing', async () => {
    const { app, kit } = await kitWith();
    const bodies: Array<[unknown, string]> = [
      [{}, 'VALIDATION'],
      [{ lines: [] }, 'VALIDATION'],
      [{ lines: [{ sku: 'TEE', qty: 0 }] }, 'VALIDATION'],
      [{ lines: [{ sku: 'TEE', qty: 1001 }] }, 'VALIDATION'],
      [{ lines: [{ sku: 'TEE', qty: '1' }] }, 'VALIDATION'],
      [{ lines: [{ sku: 'TEE', qty: 1.5 }] }, 'VALIDATION'],
      [{ lines: [{ sku: 'TE\u0000E', qty: 1 }] }, 'VALIDATION'],
      [{ lines: [{ sku: '__proto__', qty: 1 }] }, 'VALIDATION'],
      [{ lines: [{ sku: 'hasOwnProperty', qty: 1 }] }, 'UNKNOWN_SKU'],
      [{ lines: [{ bundle: 'constructor', qty: 1 }] }, 'UNKNOWN_SKU'],
      [{ lines: [{ sku: 'TEE', bundle: 'PACK', qty: 1 }] }, 'VALIDATION'],
      [{ lines: [{ sku: 'TEE', qty: 1 }], payment: cash }, 'VALIDATION'],
      [{ raw: '{"lines":[{"sku":"TEE","qty":1}],"__proto__":{"x":1}}' }, 'BAD_REQUEST'],
      [{ raw: '{"lines":[{"sku":"TEE","qty":1,"__proto__":{"qty":5}}]}' }, 'BAD_REQUEST'],
      [
        { raw: '{"lines":[{"sku":"TEE","qty":1}],"lines":[{"sku":"CAP","qty":1}],"constructor":{}}' },
        'VALIDATION',
      ],
      [{ lines: [{ sku: 'X'.repeat(10_000), qty: 1 }] }, 'VALIDATION'],
      [{ lines: Array.from({ length: 101 }, () => ({ sku: 'TEE', qty: 1 })) }, 'VALIDATION'],
      [{ lines: [{ bundle: 'PACK', qty: 3 }] }, 'VALIDATION'], // the bundle's maxPerOrder
      [{ lines: [{ sku: 'CAP', qty: 5 }] }, 'SOLD_OUT'],
      [
        {
          lines: [
            { bundle: 'PACK', qty: 2 },
            { sku: 'CAP', qty: 3 },
          ],
        },
        'SOLD_OUT',
      ],
      [[], 'VALIDATION'],
      ['lines', 'VALIDATION'],
    ];
    for (const [payload, code] of bodies) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/reservations',
        headers: { 'content-type': 'application/json' },
        payload:
          typeof payload === 'object' && payload !== null && 'raw' in payload
            ? String(payload.raw)
            : JSON.stringify(payload),
      });
      assert.equal(res.json().error?.code, code, `${JSON.stringify(payload).slice(0, 80)}: ${res.body}`);
    }
    const huge = await app.inject({
      method: 'POST',
      url: '/v1/reservations',
      headers: { 'content-type': 'application/json' },
      payload: `{"lines":[${'{"sku":"TEE","qty":1},'.repeat(4000)}{"sku":"TEE","qty":1}]}`,
    });
    assert.equal(huge.statusCode, 413);
    assert.deepEqual(readAllStock(kit.store), { TEE: 10, CAP: 4 });
    assert.equal([...allReservations(kit.store)].length, 0);
    assert.equal(({} as Record<string, unknown>)['x'], undefined, 'no prototype was polluted');
  });

  test('buyers are rate limited per address and capped in open holds; staff are not', async () => {
    const { app, kit } = await kitWith(
      { POPKIT_BUYER_RATE_PER_MIN: '5', POPKIT_RESERVATION_MAX_PER_ADDRESS: '3' },
      100,
    );
    const one = { lines: [{ sku: 'TEE', qty: 1 }] };
    const codes: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await app.inject({ method: 'POST', url: '/v1/reservations', payload: one });
      codes.push(res.statusCode === 201 ? 'ok' : res.json().error.code);
    }
    assert.deepEqual(codes, ['ok', 'ok', 'ok', 'TOO_MANY_REQUESTS', 'TOO_MANY_REQUESTS']);
    const limited = await app.inject({ method: 'POST', url: '/v1/reservations', payload: one });
    assert.equal(limited.statusCode, 429);
    assert.equal(readAllStock(kit.store)['TEE'], 97);
    const staff = asStaff(app);
    for (let i = 0; i < 8; i++) {
      assert.equal((await staff({ method: 'POST', url: '/v1/reservations', payload: one })).statusCode, 201);
    }
    assert.equal(readAllStock(kit.store)['TEE'], 89);
    // another address still reserves
    const other = await app.inject({
      method: 'POST',
      url: '/v1/reservations',
      payload: one,
      remoteAddress: '10.0.0.9',
    });
    assert.equal(other.statusCode, 201, other.body);
  });

  test("the background sweep returns an expired hold's units with nobody reading it", async () => {
    const { app, kit } = await kitWith();
    const r = (
      await app.inject({
        method: 'POST',
        url: '/v1/reservations',
        payload: { lines: [{ bundle: 'PACK', qty: 2 }] },
      })
    ).json();
    assert.deepEqual(readAllStock(kit.store), { TEE: 6, CAP: 2 });
    // time passes: the hold's expiry is moved into the past (checkout runs on the system clock)
    await rewindReservationForTest(kit.store, r.id, 61_000);
    const deadline = Date.now() + 15_000;
    while (readAllStock(kit.store)['TEE'] !== 10 && Date.now() < deadline)
      await new Promise((f) => setTimeout(f, 20));
    assert.deepEqual(readAllStock(kit.store), { TEE: 10, CAP: 4 });
    const rec = [...allReservations(kit.store)][0];
    assert.equal(rec?.status, 'expired');
    const cat = (await app.inject({ method: 'GET', url: '/v1/catalog' })).json();
    assert.equal(cat.bundles[0].available, 4, 'the catalog answer moved with the sweep');
  });

  test("a new event's catalog: an old hold neither converts nor gives units to the new event's stock", async () => {
    const { app, kit } = await kitWith();
    const staff = asStaff(app);
    const r = (
      await app.inject({
        method: 'POST',
        url: '/v1/reservations',
        payload: { lines: [{ sku: 'TEE', qty: 3 }] },
      })
    ).json();
    const next = { ...bundleCatalog(20, 4), eventId: 'ev-next' };
    assert.equal((await staff({ method: 'PUT', url: '/v1/catalog', payload: next })).statusCode, 200);
    assert.deepEqual(readAllStock(kit.store), { TEE: 20, CAP: 4 });
    const conv = await staff({
      method: 'POST',
      url: '/v1/orders',
      payload: { lines: [{ sku: 'TEE', qty: 3 }], payment: cash, reservationId: r.id },
    });
    assert.equal(conv.statusCode, 409, conv.body);
    assert.equal(conv.json().error.code, 'RESERVATION_MISMATCH');
    assert.equal((await app.inject({ method: 'DELETE', url: `/v1/reservations/${r.id}` })).statusCode, 200);
    assert.deepEqual(readAllStock(kit.store), { TEE: 20, CAP: 4 }, "the old event's units stay out");
    const status = (await staff({ method: 'GET', url: '/v1/status' })).json();
    assert.equal(status.drops.reservations.eventId, 'ev-next');
    assert.equal(status.drops.reservations.created, 0);
  });

  test("a buyer's hold is capped like a buyer's order (POPKIT_BUYER_MAX_ORDER_CENTS); staff are not", async () => {
    const { app, kit } = await kitWith({ POPKIT_BUYER_MAX_ORDER_CENTS: '5000' });
    const two = { lines: [{ sku: 'TEE', qty: 2 }] };
    const res = await app.inject({ method: 'POST', url: '/v1/reservations', payload: two });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().error.code, 'VALIDATION');
    assert.equal(res.json().error.details.limit, 'buyerMaxOrderCents');
    assert.deepEqual(readAllStock(kit.store), { TEE: 10, CAP: 4 });
    assert.equal(
      (await asStaff(app)({ method: 'POST', url: '/v1/reservations', payload: two })).statusCode,
      201,
    );
  });

  test('expired holds return their units after a restart: swept at start, counted as abandoned, queued for the hub', async () => {
    const first = await kitWith({ POPKIT_RESERVATION_TTL_S: '10' });
    const r = (
      await first.app.inject({
        method: 'POST',
        url: '/v1/reservations',
        payload: { lines: [{ bundle: 'PACK', qty: 1 }] },
      })
    ).json();
    const converting = (
      await first.app.inject({
        method: 'POST',
        url: '/v1/reservations',
        payload: { lines: [{ sku: 'CAP', qty: 1 }] },
      })
    ).json();
    assert.deepEqual(readAllStock(first.kit.store), { TEE: 8, CAP: 2 });
    await first.kit.close();
    open.splice(open.indexOf(first), 1);
    // the restart happens "later": the kit's clock is the system's, so the hold's expiry is moved back
    // through a store of its own (the test's stand-in for time passing while the kit was down)
    const { openKitStore } = await import('../../core/store/index.ts');
    const s = openKitStore(first.dataDir);
    await rewindReservationForTest(s, r.id, 11_000);
    await s.close();
    const again = await kitWith({ POPKIT_RESERVATION_TTL_S: '10' }, 10, 4, first.dataDir);
    const deadline = Date.now() + 10_000;
    while (readAllStock(again.kit.store)['TEE'] !== 10 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(
      readAllStock(again.kit.store),
      { TEE: 10, CAP: 3 },
      'the swept hold gave its units back',
    );
    const got = (await again.app.inject({ method: 'GET', url: `/v1/reservations/${r.id}` })).json();
    assert.equal(got.status, 'expired');
    const conv = await asStaff(again.app)({
      method: 'POST',
      url: '/v1/orders',
      payload: { lines: [{ sku: 'CAP', qty: 1 }], payment: cash, reservationId: converting.id },
    });
    assert.equal(conv.statusCode, 201, 'the other hold survived the restart and converts');
    const late = await asStaff(again.app)({
      method: 'POST',
      url: '/v1/orders',
      payload: { lines: [{ bundle: 'PACK', qty: 1 }], payment: cash, reservationId: r.id },
    });
    assert.equal(late.statusCode, 410);
    assert.equal(late.json().error.code, 'RESERVATION_EXPIRED');
    assert.deepEqual(readAllStock(again.kit.store), { TEE: 10, CAP: 3 });
    const status = (await asStaff(again.app)({ method: 'GET', url: '/v1/status' })).json();
    assert.equal(status.drops.reservations.expired, 1);
    assert.equal(status.drops.reservations.converted, 1);
    assert.equal(status.drops.reservations.abandoned, 1);
    assert.equal(status.drops.reservations.held, 0);
    const metrics = (await asStaff(again.app)({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /popkit_reservations_total\{outcome="expired"\} 1/);
    assert.match(metrics, /popkit_reservations_total\{outcome="converted"\} 1/);
    assert.match(metrics, /popkit_reservations_held 0/);
    const telemetry = [...scanOutbox(again.kit.store)].filter((e) => e.key[0] === LANES.telemetry);
    assert.equal(telemetry.length, 1, 'one coalesced counters entry waits for the hub');
    assert.deepEqual(
      (telemetry[0]?.value.body as { reservations?: Record<string, unknown> } | undefined)?.reservations?.[
        'expired'
      ],
      1,
    );
  });
});

describe('bundles', () => {
  test('concurrent bundle and component orders never oversell: all of a bundle or none', async () => {
    const { app, kit } = await kitWith({}, 9, 5);
    const staff = asStaff(app);
    const reqs = [];
    for (let i = 0; i < 12; i++) {
      reqs.push(
        staff({
          method: 'POST',
          url: '/v1/orders',
          payload: { lines: [{ bundle: 'PACK', qty: 1 }], payment: cash },
        }),
      );
      reqs.push(
        staff({
          method: 'POST',
          url: '/v1/orders',
          payload: { lines: [{ sku: 'TEE', qty: 1 }], payment: card },
        }),
      );
      reqs.push(
        app.inject({ method: 'POST', url: '/v1/reservations', payload: { lines: [{ sku: 'CAP', qty: 1 }] } }),
      );
    }
    const res = await Promise.all(reqs);
    for (const r of res) assert.ok([201, 409].includes(r.statusCode), r.body);
    let tee = 0;
    let cap = 0;
    let packs = 0;
    for (const r of res) {
      if (r.statusCode !== 201) {
        assert.equal(r.json().error.code, 'SOLD_OUT');
        continue;
      }
      for (const l of r.json().lines) {
        if (l.sku === 'PACK') {
          packs += l.qty;
          tee += 2 * l.qty;
          cap += l.qty;
        } else if (l.sku === 'TEE') tee += l.qty;
        else cap += l.qty;
      }
    }
    const stock = readAllStock(kit.store);
    assert.equal(tee + (stock['TEE'] ?? 0), 9, 'TEE: stock + sold + held = initial');
    assert.equal(cap + (stock['CAP'] ?? 0), 5, 'CAP: stock + sold + held = initial');
    assert.ok(packs >= 1);
    const cat = (await app.inject({ method: 'GET', url: '/v1/catalog' })).json();
    assert.equal(cat.bundles[0].available, Math.min(Math.floor((stock['TEE'] ?? 0) / 2), stock['CAP'] ?? 0));
  });

  test('a bundle short of one component sells nothing; availability moves with component stock', async () => {
    const { app, kit } = await kitWith({}, 10, 1);
    const staff = asStaff(app);
    let cat = (await app.inject({ method: 'GET', url: '/v1/catalog' })).json();
    assert.equal(cat.bundles[0].available, 1);
    assert.equal(
      (
        await staff({
          method: 'POST',
          url: '/v1/orders',
          payload: { lines: [{ sku: 'TEE', qty: 7 }], payment: cash },
        })
      ).statusCode,
      201,
    );
    cat = (await app.inject({ method: 'GET', url: '/v1/catalog' })).json();
    assert.equal(cat.bundles[0].available, 1);
    const res = await staff({
      method: 'POST',
      url: '/v1/orders',
      payload: { lines: [{ bundle: 'PACK', qty: 2 }], payment: cash },
    });
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().error.code, 'SOLD_OUT');
    assert.deepEqual(readAllStock(kit.store), { TEE: 3, CAP: 1 }, 'no component was taken');
    assert.equal(
      (
        await staff({
          method: 'POST',
          url: '/v1/orders',
          payload: { lines: [{ sku: 'TEE', qty: 2 }], payment: cash },
        })
      ).statusCode,
      201,
    );
    cat = (await app.inject({ method: 'GET', url: '/v1/catalog' })).json();
    assert.equal(cat.bundles[0].available, 0);
    const maxed = await staff({
      method: 'POST',
      url: '/v1/orders',
      payload: {
        lines: [
          { bundle: 'PACK', qty: 1 },
          { bundle: 'PACK', qty: 2 },
        ],
        payment: cash,
      },
    });
    assert.equal(maxed.statusCode, 400);
    assert.equal(maxed.json().error.details.maxPerOrder, 2);
  });
});

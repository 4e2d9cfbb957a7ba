// The kit API against a real LMDB environment, through app.inject().
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import {
  allOrders,
  applyOrderAck,
  readAllStock,
  readStoredCatalog,
  scanOutbox,
  tokenCount,
} from '../../core/store/index.ts';
import {
  asStaff,
  auth,
  inspectStore,
  smallCatalog,
  startCheckout,
  startCheckoutWithCatalog,
} from '../support/checkout.ts';

type Kit = Awaited<ReturnType<typeof startCheckout>>;

const cash = (lines: Array<{ sku: string; qty: number }>) => ({ lines, payment: { method: 'cash' } });
const card = (lines: Array<{ sku: string; qty: number }>, token = 'tok_sandbox_approve_0001') => ({
  lines,
  payment: { method: 'token', token },
});

async function snapshot(kit: Kit) {
  const [cat, status] = await Promise.all([
    asStaff(kit.app)({ method: 'GET', url: '/v1/catalog' }),
    asStaff(kit.app)({ method: 'GET', url: '/v1/status' }),
  ]);
  return {
    stock: (cat.json().items as Array<{ sku: string; stock: number }>)
      .map((i) => `${i.sku}:${i.stock}`)
      .join(','),
    backlog: JSON.stringify(status.json().sync.backlog),
    event: JSON.stringify(status.json().event),
  };
}

describe('kit API', () => {
  let kit: Kit;
  before(async () => {
    kit = await startCheckout();
    const res = await asStaff(kit.app)({
      method: 'PUT',
      url: '/v1/catalog',
      headers: auth,
      payload: smallCatalog({ A: 10, B: 5, C: 0 }),
    });
    assert.equal(res.statusCode, 200, res.body);
  });
  after(async () => kit.kit.close());

  test('healthz, catalog with stock, openapi', async () => {
    assert.deepEqual((await kit.app.inject({ method: 'GET', url: '/healthz' })).json(), { ok: true });
    const cat = (await asStaff(kit.app)({ method: 'GET', url: '/v1/catalog' })).json();
    assert.equal(cat.version, 1);
    assert.equal(cat.eventId, 'ev-test');
    assert.deepEqual(
      cat.items.map((i: { sku: string; stock: number }) => [i.sku, i.stock]),
      [
        ['A', 10],
        ['B', 5],
        ['C', 0],
      ],
    );
    const oas = (await asStaff(kit.app)({ method: 'GET', url: '/docs/openapi.json' })).json();
    assert.ok(oas.paths['/v1/orders'].post, 'POST /v1/orders documented');
    assert.ok(oas.paths['/v1/catalog'].put);
  });

  test('an order is 201 with its total, readable by id, and in the outbox', async () => {
    const res = await asStaff(kit.app)({
      method: 'POST',
      url: '/v1/orders',
      payload: cash([
        { sku: 'A', qty: 2 },
        { sku: 'B', qty: 1 },
      ]),
    });
    assert.equal(res.statusCode, 201, res.body);
    const order = res.json();
    assert.equal(order.totalCents, 2 * 1000 + 1100);
    assert.equal(order.status, 'accepted');
    assert.equal(order.syncState, 'pending');
    const got = await asStaff(kit.app)({ method: 'GET', url: `/v1/orders/${order.id}` });
    assert.equal(got.statusCode, 200);
    assert.equal(got.json().id, order.id);
    const st = (await asStaff(kit.app)({ method: 'GET', url: '/v1/status' })).json();
    assert.ok(st.sync.backlog.orders >= 1);
    const missing = await asStaff(kit.app)({ method: 'GET', url: '/v1/orders/01M8JTQTBZ17E48ZFGAY3A9Q5J' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'NOT_FOUND');
  });

  test('sold out is 409 SOLD_OUT and changes nothing', async () => {
    const before = await snapshot(kit);
    const res = await asStaff(kit.app)({
      method: 'POST',
      url: '/v1/orders',
      payload: cash([
        { sku: 'A', qty: 1 },
        { sku: 'C', qty: 1 },
      ]),
    });
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().error.code, 'SOLD_OUT');
    assert.equal(res.json().error.details.sku, 'C');
    assert.deepEqual(await snapshot(kit), before);
  });

  test('every class of bad input gets a 4xx envelope and changes nothing', async () => {
    const before = await snapshot(kit);
    const cases: Array<{
      name: string;
      payload?: string | object;
      headers?: Record<string, string>;
      status: number;
      code: string;
    }> = [
      {
        name: 'malformed JSON',
        payload: '{"lines":[{"sku":"A",',
        headers: { 'content-type': 'application/json' },
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'empty body',
        payload: '',
        headers: { 'content-type': 'application/json' },
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'wrong type',
        payload: { lines: [{ sku: 'A', qty: '2' }], payment: { method: 'cash' } },
        status: 400,
        code: 'VALIDATION',
      },
      { name: 'unknown sku', payload: cash([{ sku: 'NOPE', qty: 1 }]), status: 400, code: 'UNKNOWN_SKU' },
      { name: 'qty zero', payload: cash([{ sku: 'A', qty: 0 }]), status: 400, code: 'VALIDATION' },
      { name: 'qty negative', payload: cash([{ sku: 'A', qty: -3 }]), status: 400, code: 'VALIDATION' },
      { name: 'qty absurd', payload: cash([{ sku: 'A', qty: 1e12 }]), status: 400, code: 'VALIDATION' },
      { name: 'qty fractional', payload: cash([{ sku: 'A', qty: 1.5 }]), status: 400, code: 'VALIDATION' },
      { name: 'no lines', payload: cash([]), status: 400, code: 'VALIDATION' },
      {
        name: '101 lines',
        payload: cash(Array.from({ length: 101 }, () => ({ sku: 'A', qty: 1 }))),
        status: 400,
        code: 'VALIDATION',
      },
      {
        name: 'unknown field',
        payload: { ...cash([{ sku: 'A', qty: 1 }]), discount: 100 },
        status: 400,
        code: 'VALIDATION',
      },
      {
        name: 'unknown field in line',
        payload: { lines: [{ sku: 'A', qty: 1, priceCents: 1 }], payment: { method: 'cash' } },
        status: 400,
        code: 'VALIDATION',
      },
      {
        name: 'unknown payment',
        payload: { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'iou' } },
        status: 400,
        code: 'VALIDATION',
      },
      {
        name: 'token missing',
        payload: { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'token' } },
        status: 400,
        code: 'VALIDATION',
      },
      {
        name: 'array body',
        payload: '[]',
        headers: { 'content-type': 'application/json' },
        status: 400,
        code: 'VALIDATION',
      },
      {
        name: 'null body',
        payload: 'null',
        headers: { 'content-type': 'application/json' },
        status: 400,
        code: 'VALIDATION',
      },
      {
        name: 'body over 64 KB',
        payload: { ...cash([{ sku: 'A', qty: 1 }]), pad: 'x'.repeat(70 * 1024) },
        status: 413,
        code: 'BODY_TOO_LARGE',
      },
      {
        name: 'not JSON',
        payload: 'lines=A',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        status: 415,
        code: 'UNSUPPORTED_MEDIA_TYPE',
      },
      {
        name: 'bad idempotency key',
        payload: cash([{ sku: 'A', qty: 1 }]),
        headers: { 'idempotency-key': 'x'.repeat(200) },
        status: 400,
        code: 'VALIDATION',
      },
    ];
    for (const c of cases) {
      const res = await asStaff(kit.app)({
        method: 'POST',
        url: '/v1/orders',
        ...(c.payload !== undefined ? { payload: c.payload as string } : {}),
        ...(c.headers ? { headers: c.headers } : {}),
      });
      assert.equal(res.statusCode, c.status, `${c.name}: ${res.body}`);
      assert.equal(res.json().error.code, c.code, c.name);
      assert.equal(typeof res.json().error.message, 'string', c.name);
    }
    assert.deepEqual(await snapshot(kit), before);
    const badId = await asStaff(kit.app)({ method: 'GET', url: '/v1/orders/..%2F..%2Fetc' });
    assert.equal(badId.statusCode, 400);
    const bogusRoute = await asStaff(kit.app)({ method: 'DELETE', url: '/v1/orders' });
    assert.equal(bogusRoute.statusCode, 404);
    assert.equal(bogusRoute.json().error.code, 'NOT_FOUND');
  });

  test('random bodies never produce a 500 or change state (property)', async () => {
    // a kit of its own: a random body that is a valid order or catalog changes state legitimately
    const fz = await startCheckoutWithCatalog({ A: 1000, B: 1000, C: 0 });
    try {
      const store = fz.kit.store;
      // the whole observable state: catalog, stock of every SKU, orders, outbox, sealed tokens, event
      const state = async () => {
        const status = (await asStaff(fz.app)({ method: 'GET', url: '/v1/status' })).json();
        return {
          catalog: JSON.stringify(readStoredCatalog(store)),
          stock: readAllStock(store),
          orders: [...allOrders(store)].length,
          outbox: [...scanOutbox(store)].length,
          tokens: tokenCount(store),
          event: JSON.stringify(status.event),
        };
      };
      // self-check: the snapshot sees a change when there is one
      const s0 = await state();
      const sold = await asStaff(fz.app)({
        method: 'POST',
        url: '/v1/orders',
        payload: cash([{ sku: 'A', qty: 1 }]),
      });
      assert.equal(sold.statusCode, 201);
      assert.notDeepEqual(await state(), s0, 'the state snapshot must see an accepted order');

      const hostile = fc.constantFrom(
        '__proto__',
        'constructor',
        'prototype',
        'toString',
        'hasOwnProperty',
        'A\u0000',
        '\u0000',
        'A\u0000B',
        '\ud800',
        'A\udc00',
        '\udfff\ud800',
        '',
        ' A',
        'A'.repeat(10_000),
      );
      const sku = fc.oneof(fc.constantFrom('A', 'B', 'C', 'ZZ'), hostile, fc.string({ unit: 'binary' }));
      const line = fc.record(
        { sku, qty: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(1)) },
        { requiredKeys: [] },
      );
      const orderBody = fc.oneof(
        fc.anything(),
        fc.record(
          {
            lines: fc.array(line, { maxLength: 3 }),
            payment: fc.oneof(
              fc.anything(),
              fc.record({
                method: fc.constantFrom('cash', 'token', 'x'),
                token: fc.oneof(fc.string(), hostile),
              }),
            ),
          },
          { requiredKeys: [] },
        ),
      );
      const item = fc.record(
        {
          sku,
          name: fc.oneof(fc.string({ unit: 'binary' }), hostile),
          priceCents: fc.oneof(fc.integer(), fc.double(), fc.constant(100)),
          stock: fc.oneof(fc.integer(), fc.double(), fc.constant(5)),
        },
        { requiredKeys: [] },
      );
      // well-formed catalogs that carry hostile SKUs or names: accepted or refused, never half-written
      const hostileCatalog = fc.record({
        version: fc.integer({ min: 2, max: 1_000_000 }),
        eventId: fc.constant('ev-test'),
        currency: fc.constant('USD'),
        items: fc.array(
          fc.record({
            sku: fc.oneof(hostile, fc.string({ unit: 'binary', minLength: 1 })),
            name: fc.oneof(hostile, fc.constant('x')),
            priceCents: fc.nat(100_000),
            stock: fc.nat(1000),
          }),
          { minLength: 1, maxLength: 3 },
        ),
      });
      const catalogBody = fc.oneof(
        hostileCatalog,
        fc.anything(),
        fc.record(
          {
            version: fc.oneof(fc.integer(), fc.constant(1), fc.string()),
            eventId: fc.oneof(fc.constant('ev-test'), hostile, fc.string({ unit: 'binary' })),
            currency: fc.oneof(fc.constant('USD'), fc.string()),
            items: fc.oneof(fc.array(item, { maxLength: 3 }), fc.anything()),
          },
          { requiredKeys: [] },
        ),
      );
      // raw JSON that JSON.stringify cannot make: own __proto__ / constructor.prototype keys, NUL keys
      const rawKey = fc.constantFrom(
        '{"__proto__":{"lines":[{"sku":"A","qty":1}]},"payment":{"method":"cash"}}',
        '{"lines":[{"sku":"A","qty":1,"__proto__":{"qty":2}}],"payment":{"method":"cash"}}',
        '{"constructor":{"prototype":{"x":1}},"lines":[{"sku":"A","qty":1}],"payment":{"method":"cash"}}',
        '{"lines\\u0000":[{"sku":"A","qty":1}],"payment":{"method":"cash"}}',
        '{"lines":[{"sku":"A","qty":1}],"payment":{"method":"cash","\\u0000":1}}',
        '{"lines":[{"sku":"\\ud800","qty":1}],"payment":{"method":"cash"}}',
      );
      const request = fc.oneof(
        orderBody.map((b) => ({
          url: '/v1/orders',
          method: 'POST' as const,
          payload: JSON.stringify(b) ?? 'null',
        })),
        rawKey.map((payload) => ({ url: '/v1/orders', method: 'POST' as const, payload })),
        catalogBody.map((b) => ({
          url: '/v1/catalog',
          method: 'PUT' as const,
          payload: JSON.stringify(b) ?? 'null',
        })),
        rawKey.map((payload) => ({ url: '/v1/catalog', method: 'PUT' as const, payload })),
      );
      const accepted: string[] = [];
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const before = await state();
          const res = await asStaff(fz.app)({
            method: r.method,
            url: r.url,
            payload: r.payload,
            headers: { 'content-type': 'application/json', ...(r.method === 'PUT' ? auth : {}) },
          });
          assert.ok(res.statusCode < 500, `${res.statusCode} for ${r.method} ${r.payload}: ${res.body}`);
          const after = await state();
          if (res.statusCode >= 400) {
            assert.ok(res.json().error.code, res.body);
            assert.deepEqual(after, before, `a refused ${r.method} ${r.payload} changed state`);
            return;
          }
          accepted.push(`${r.method} ${r.payload}`);
          if (r.method === 'POST') {
            // an order that is valid is exactly one more order and outbox entry; catalog untouched
            assert.equal(after.orders, before.orders + 1);
            assert.equal(after.outbox, before.outbox + 1);
            assert.equal(after.catalog, before.catalog);
          } else {
            // a catalog that is accepted is the stored catalog now
            assert.equal(JSON.parse(after.catalog).version, JSON.parse(r.payload).version);
            assert.equal(after.orders, before.orders);
          }
        }),
        { numRuns: 400 },
      );
      // what random bodies got accepted, for the reader (each one checked above as one whole change)
      if (process.env['POPKIT_FUZZ_REPORT']) console.log(accepted.join('\n'));
    } finally {
      await fz.kit.close();
    }
  });

  test('staff endpoints need the bearer token', async () => {
    for (const [method, url] of [
      ['PUT', '/v1/catalog'],
      ['POST', '/v1/event/start'],
      ['POST', '/v1/event/stop'],
    ] as const) {
      const none = await kit.app.inject({ method, url, payload: {} });
      assert.equal(none.statusCode, 401, `${method} ${url}`);
      assert.equal(none.json().error.code, 'UNAUTHORIZED');
      const wrong = await kit.app.inject({
        method,
        url,
        payload: {},
        headers: { authorization: 'Bearer nope' },
      });
      assert.equal(wrong.statusCode, 401);
    }
  });

  test('event ids are topic levels: a wildcard, a slash, NUL or 65 characters get VALIDATION', async () => {
    for (const eventId of ['a/+/#', 'a/b', '+', '#', 'ev\u0000', 'x'.repeat(65), '-lead', '']) {
      const res = await asStaff(kit.app)({
        method: 'POST',
        url: '/v1/event/start',
        headers: auth,
        payload: { eventId },
      });
      assert.equal(res.statusCode, 400, `${JSON.stringify(eventId)}: ${res.body}`);
      assert.equal(res.json().error.code, 'VALIDATION');
    }
    const status = (await asStaff(kit.app)({ method: 'GET', url: '/v1/status' })).json();
    assert.notEqual(status.state, 'live');
  });

  test('event start/stop is a state machine', async () => {
    const start = await asStaff(kit.app)({
      method: 'POST',
      url: '/v1/event/start',
      headers: auth,
      payload: {},
    });
    assert.equal(start.statusCode, 200, start.body);
    assert.equal(start.json().live, true);
    assert.equal(start.json().eventId, 'ev-test');
    assert.equal(
      (await asStaff(kit.app)({ method: 'POST', url: '/v1/event/start', headers: auth, payload: {} })).json()
        .error.code,
      'EVENT_STATE',
    );
    const status = (await asStaff(kit.app)({ method: 'GET', url: '/v1/status' })).json();
    assert.equal(status.state, 'live');
    const stop = await asStaff(kit.app)({ method: 'POST', url: '/v1/event/stop', headers: auth });
    assert.equal(stop.json().live, false);
    assert.ok(stop.json().stoppedAt);
  });

  test('catalog rules: validation, a newer version keeps what sold', async () => {
    // a sale of its own, so "what sold" is not left to earlier tests
    assert.equal(
      (await asStaff(kit.app)({ method: 'POST', url: '/v1/orders', payload: cash([{ sku: 'A', qty: 1 }]) }))
        .statusCode,
      201,
    );
    const bad = await asStaff(kit.app)({
      method: 'PUT',
      url: '/v1/catalog',
      headers: auth,
      payload: { version: 2, eventId: 'ev-test', items: [{ sku: 'A', name: 'A', priceCents: -1, stock: 1 }] },
    });
    assert.equal(bad.statusCode, 400);
    const dup = await asStaff(kit.app)({
      method: 'PUT',
      url: '/v1/catalog',
      headers: auth,
      payload: {
        version: 2,
        eventId: 'ev-test',
        items: [
          { sku: 'A', name: 'A', priceCents: 1, stock: 1 },
          { sku: 'A', name: 'A', priceCents: 1, stock: 1 },
        ],
      },
    });
    assert.equal(dup.statusCode, 400);
    assert.equal(dup.json().error.code, 'VALIDATION');
    const before = (await asStaff(kit.app)({ method: 'GET', url: '/v1/catalog' })).json();
    const soldA = 10 - before.items.find((i: { sku: string }) => i.sku === 'A').stock;
    assert.ok(soldA > 0);
    // raise A's starting stock by 5: what sold stays sold
    const next = await asStaff(kit.app)({
      method: 'PUT',
      url: '/v1/catalog',
      headers: auth,
      payload: smallCatalog({ A: 15, B: 5, C: 0 }, 2),
    });
    assert.equal(next.statusCode, 200, next.body);
    assert.equal(next.json().items.find((i: { sku: string }) => i.sku === 'A').stock, 15 - soldA);
  });

  test('metrics expose orders, rejections, latency and LMDB size', async () => {
    // an order and a sold-out refusal of its own (C has no stock), not left to earlier tests
    assert.equal(
      (await asStaff(kit.app)({ method: 'POST', url: '/v1/orders', payload: cash([{ sku: 'A', qty: 1 }]) }))
        .statusCode,
      201,
    );
    assert.equal(
      (await asStaff(kit.app)({ method: 'POST', url: '/v1/orders', payload: cash([{ sku: 'C', qty: 1 }]) }))
        .statusCode,
      409,
    );
    const res = await asStaff(kit.app)({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /popkit_orders_total\{payment="cash"\} [1-9]/);
    assert.match(res.body, /popkit_order_rejections_total\{code="SOLD_OUT"\} [1-9]/);
    assert.match(res.body, /popkit_order_duration_seconds_bucket/);
    assert.match(res.body, /popkit_lmdb_size_bytes [1-9]/);
    assert.match(res.body, /popkit_sync_backlog_entries\{lane="orders"\} [1-9]/);
  });
});

describe('idempotency', () => {
  test('same key returns the same order and changes nothing; a different body is 409', async () => {
    const kit = await startCheckoutWithCatalog({ A: 10 });
    try {
      const body = cash([{ sku: 'A', qty: 1 }]);
      const first = await asStaff(kit.app)({
        method: 'POST',
        url: '/v1/orders',
        payload: body,
        headers: { 'idempotency-key': 'k-1' },
      });
      assert.equal(first.statusCode, 201);
      const again = await asStaff(kit.app)({
        method: 'POST',
        url: '/v1/orders',
        payload: body,
        headers: { 'idempotency-key': 'k-1' },
      });
      assert.equal(again.statusCode, 200);
      assert.equal(again.json().id, first.json().id);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      // the same body with its keys in another order is the same request (canonical JSON is hashed)
      const reordered = await asStaff(kit.app)({
        method: 'POST',
        url: '/v1/orders',
        headers: { 'idempotency-key': 'k-1', 'content-type': 'application/json' },
        payload: '{"payment":{"method":"cash"},"lines":[{"qty":1,"sku":"A"}]}',
      });
      assert.equal(reordered.statusCode, 200, reordered.body);
      assert.equal(reordered.json().id, first.json().id);
      const other = await asStaff(kit.app)({
        method: 'POST',
        url: '/v1/orders',
        payload: cash([{ sku: 'A', qty: 2 }]),
        headers: { 'idempotency-key': 'k-1' },
      });
      assert.equal(other.statusCode, 409);
      assert.equal(other.json().error.code, 'IDEMPOTENCY_MISMATCH');
      const cat = (await asStaff(kit.app)({ method: 'GET', url: '/v1/catalog' })).json();
      assert.equal(cat.items[0].stock, 9);
    } finally {
      await kit.kit.close();
    }
  });

  test('racing requests with one key make exactly one order', async () => {
    const kit = await startCheckoutWithCatalog({ A: 100 });
    try {
      const body = cash([{ sku: 'A', qty: 3 }]);
      const results = await Promise.all(
        Array.from({ length: 40 }, () =>
          asStaff(kit.app)({
            method: 'POST',
            url: '/v1/orders',
            payload: body,
            headers: { 'idempotency-key': 'race-1' },
          }),
        ),
      );
      const ids = new Set(results.map((r) => r.json().id));
      assert.equal(ids.size, 1);
      assert.equal(results.filter((r) => r.statusCode === 201).length, 1);
      assert.equal(results.filter((r) => r.statusCode === 200).length, 39);
      const cat = (await asStaff(kit.app)({ method: 'GET', url: '/v1/catalog' })).json();
      assert.equal(cat.items[0].stock, 97);
    } finally {
      await kit.kit.close();
    }
    const state = await inspectStore(kit.dataDir);
    assert.equal(state.orders.length, 1);
    assert.equal(state.outbox.length, 1);
  });
});

describe('offline risk limits', () => {
  test('card orders stop at each limit, cash continues, status says which and how close', async () => {
    const kit = await startCheckoutWithCatalog(
      { A: 100, B: 100 },
      {
        POPKIT_RISK_MAX_ORDER_CENTS: '5000',
        POPKIT_RISK_MAX_UNSYNCED_CENTS: '4000',
        POPKIT_RISK_MAX_UNSYNCED_ORDERS: '3',
      },
    );
    try {
      // A costs 1000. Per-order max: 6 x 1000 > 5000
      const big = await asStaff(kit.app)({
        method: 'POST',
        url: '/v1/orders',
        payload: card([{ sku: 'A', qty: 6 }]),
      });
      assert.equal(big.statusCode, 422);
      assert.equal(big.json().error.code, 'RISK_LIMIT');
      assert.equal(big.json().error.details.limit, 'maxOrderCents');
      // total unsynced: 3000 then +2000 would exceed 4000
      assert.equal(
        (await asStaff(kit.app)({ method: 'POST', url: '/v1/orders', payload: card([{ sku: 'A', qty: 3 }]) }))
          .statusCode,
        201,
      );
      const over = await asStaff(kit.app)({
        method: 'POST',
        url: '/v1/orders',
        payload: card([{ sku: 'A', qty: 2 }]),
      });
      assert.equal(over.statusCode, 422);
      assert.equal(over.json().error.details.limit, 'maxUnsyncedCents');
      // cash still works past the limits
      assert.equal(
        (await asStaff(kit.app)({ method: 'POST', url: '/v1/orders', payload: cash([{ sku: 'A', qty: 9 }]) }))
          .statusCode,
        201,
      );
      // count limit: two more small card orders reach 3
      assert.equal(
        (await asStaff(kit.app)({ method: 'POST', url: '/v1/orders', payload: card([{ sku: 'A', qty: 1 }]) }))
          .statusCode,
        201,
      );
      const st1 = (await asStaff(kit.app)({ method: 'GET', url: '/v1/status' })).json();
      assert.deepEqual(st1.risk.blocking, ['maxUnsyncedCents']);
      assert.equal(st1.risk.usage.unsyncedOrders, 2);
      assert.equal(st1.risk.ratio.unsyncedOrders, 2 / 3);
      const stock = (await asStaff(kit.app)({ method: 'GET', url: '/v1/catalog' })).json().items[0].stock;
      assert.equal(stock, 100 - 3 - 9 - 1);
    } finally {
      await kit.kit.close();
    }
    // the count limit, reached on its own: an amount budget too large to bind first
    const counted = await startCheckoutWithCatalog(
      { A: 100 },
      {
        POPKIT_RISK_MAX_ORDER_CENTS: '100000',
        POPKIT_RISK_MAX_UNSYNCED_CENTS: '100000',
        POPKIT_RISK_MAX_UNSYNCED_ORDERS: '3',
      },
    );
    try {
      const order = (payload: ReturnType<typeof card> | ReturnType<typeof cash>) =>
        asStaff(counted.app)({ method: 'POST', url: '/v1/orders', payload });
      for (let i = 0; i < 3; i++) assert.equal((await order(card([{ sku: 'A', qty: 1 }]))).statusCode, 201);
      const look = () => ({
        orders: [...allOrders(counted.kit.store)],
        stock: readAllStock(counted.kit.store),
      });
      const before = look();
      const refused = await order(card([{ sku: 'A', qty: 1 }]));
      assert.equal(refused.statusCode, 422, refused.body);
      assert.equal(refused.json().error.code, 'RISK_LIMIT');
      assert.equal(refused.json().error.details.limit, 'maxUnsyncedOrders');
      const after = look();
      assert.equal(after.orders.length, before.orders.length, 'a refused card order is not stored');
      assert.equal(after.stock['A'], before.stock['A'], 'a refused card order holds no stock');
      const st = (await asStaff(counted.app)({ method: 'GET', url: '/v1/status' })).json();
      assert.deepEqual(st.risk.blocking, ['maxUnsyncedOrders']);
      assert.equal(st.risk.usage.unsyncedOrders, 3);
      assert.equal(st.risk.ratio.unsyncedOrders, 1);
      // cash still sells at the count limit
      assert.equal((await order(cash([{ sku: 'A', qty: 2 }]))).statusCode, 201);
      assert.equal(look().stock['A'], 100 - 3 - 2);
    } finally {
      await counted.kit.close();
    }
  });

  test('the age of the oldest unsynced card order is a limit too', async () => {
    const kit = await startCheckoutWithCatalog({ A: 100 }, { POPKIT_RISK_MAX_UNSYNCED_AGE_S: '1' });
    try {
      assert.equal(
        (await asStaff(kit.app)({ method: 'POST', url: '/v1/orders', payload: card([{ sku: 'A', qty: 1 }]) }))
          .statusCode,
        201,
      );
      await new Promise((r) => setTimeout(r, 1100));
      const res = await asStaff(kit.app)({
        method: 'POST',
        url: '/v1/orders',
        payload: card([{ sku: 'A', qty: 1 }]),
      });
      assert.equal(res.statusCode, 422);
      assert.equal(res.json().error.details.limit, 'maxUnsyncedAgeS');
    } finally {
      await kit.kit.close();
    }
  });
});

describe('declines reach the host', () => {
  test('a hub decline shows in the order, once in /v1/status, and frees the risk budget', async () => {
    const kit = await startCheckoutWithCatalog({ A: 10 });
    try {
      const res = await asStaff(kit.app)({
        method: 'POST',
        url: '/v1/orders',
        payload: card([{ sku: 'A', qty: 2 }], 'tok_sandbox_decline_01'),
      });
      const id = res.json().id as string;
      const store = kit.kit.store;
      // what sync does when the hub's ack says declined (twice: a redelivered ack changes nothing)
      for (let i = 0; i < 2; i++) {
        await applyOrderAck(store, id, { state: 'declined', reason: 'do_not_honor' });
      }
      const order = (await asStaff(kit.app)({ method: 'GET', url: `/v1/orders/${id}` })).json();
      assert.equal(order.syncState, 'declined');
      assert.equal(order.declineReason, 'do_not_honor');
      const status = (await asStaff(kit.app)({ method: 'GET', url: '/v1/status' })).json();
      assert.equal(status.declines.length, 1);
      assert.deepEqual(
        {
          orderId: status.declines[0].orderId,
          totalCents: status.declines[0].totalCents,
          reason: status.declines[0].reason,
        },
        { orderId: id, totalCents: 2000, reason: 'do_not_honor' },
      );
      assert.equal(status.risk.usage.unsyncedOrders, 0);
      assert.equal(status.sync.backlog.orders, 0);
      assert.equal(tokenCount(store), 0, 'the sealed token is dropped once the hub decided');
    } finally {
      await kit.kit.close();
    }
  });
});

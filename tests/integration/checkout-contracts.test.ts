// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Checkout's seams against their contracts: /v1/status and checkout's run status are of their declared
// shapes, and hostile values at PUT /v1/catalog and POST /v1/orders (`__proto__`/`constructor` keys,
// NUL, huge arrays and bodies, wrong types) get a coded 4xx and change nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { kitStatusView } from '../../core/contracts/kit-status.ts';
import { readRunStatus, writeRunStatus } from '../../core/contracts/run-status.ts';
import { asStaff, auth, smallCatalog, startCheckoutWithCatalog, syncRunStatus } from '../support/checkout.ts';

type Kit = Awaited<ReturnType<typeof startCheckoutWithCatalog>>;

const order = { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'cash' } };
const json = { 'content-type': 'application/json' };

/** What a hostile request must not change: the catalog with its stock, and the sync backlog. */
async function state(kit: Kit) {
  const [cat, status] = await Promise.all([
    asStaff(kit.app)({ method: 'GET', url: '/v1/catalog' }),
    asStaff(kit.app)({ method: 'GET', url: '/v1/status' }),
  ]);
  return { catalog: cat.json(), backlog: status.json().sync.backlog };
}

describe('checkout contracts', () => {
  let kit: Kit;
  before(async () => {
    kit = await startCheckoutWithCatalog({ A: 10, B: 5 });
  });
  after(async () => kit.kit.close());

  test('/v1/status is a KitStatusView, with and without the other services’ run status', async () => {
    const check = async () => {
      const res = await asStaff(kit.app)({ method: 'GET', url: '/v1/status' });
      assert.equal(res.statusCode, 200);
      const body = res.json();
      assert.ok(kitStatusView.check(body), kitStatusView.errors(body).join('; '));
      return body;
    };
    assert.equal((await check()).sync.link, 'not-running');
    writeRunStatus(kit.dataDir, 'sync', syncRunStatus('up'));
    const st = await check();
    assert.equal(st.sync.link, 'up');
    assert.equal(st.sync.stale, false);
  });

  test('checkout’s run status carries ordersPerSec, and it moves after orders', async () => {
    kit.kit.writeStatus();
    const before = readRunStatus(kit.dataDir, 'checkout');
    assert.ok(before, 'run/checkout.json is of its contract');
    assert.equal(before.ordersPerSec, 0);
    for (let i = 0; i < 5; i++) {
      const res = await asStaff(kit.app)({ method: 'POST', url: '/v1/orders', payload: order });
      assert.equal(res.statusCode, 201, res.body);
    }
    kit.kit.writeStatus();
    const after = readRunStatus(kit.dataDir, 'checkout');
    assert.ok((after?.ordersPerSec ?? 0) >= 1, `ordersPerSec ${after?.ordersPerSec}`);
  });

  const catalogText = JSON.stringify(smallCatalog({ A: 3 }, 2));
  const hostileCatalogs: Array<[string, string, number, string]> = [
    ['__proto__ at the top', catalogText.replace('{', '{"__proto__":{"x":1},'), 400, 'BAD_REQUEST'],
    [
      '__proto__ in an item',
      catalogText.replace('{"sku"', '{"__proto__":{"hero":true},"sku"'),
      400,
      'BAD_REQUEST',
    ],
    [
      'constructor.prototype',
      catalogText.replace('{', '{"constructor":{"prototype":{"x":1}},'),
      400,
      'BAD_REQUEST',
    ],
    ['a constructor key', catalogText.replace('{', '{"constructor":1,'), 400, 'VALIDATION'],
    ['NUL in a SKU', catalogText.replace('"A"', '"A\\u0000"'), 400, 'VALIDATION'],
    ['NUL in the event id', catalogText.replace('ev-test', 'ev\\u0000'), 400, 'VALIDATION'],
    ['NUL in an item name', catalogText.replace('"name":"', '"name":"\\u0000'), 400, 'VALIDATION'],
    [
      'a lone surrogate in an item name',
      catalogText.replace('"name":"', '"name":"\\ud800'),
      400,
      'VALIDATION',
    ],
    [
      'an escape character in an item name',
      catalogText.replace('"name":"', '"name":"\\u001b[31m'),
      400,
      'VALIDATION',
    ],
    ['version 1e300', catalogText.replace('"version":2', '"version":1e300'), 400, 'VALIDATION'],
    ['version 2^31', catalogText.replace('"version":2', '"version":2147483648'), 400, 'VALIDATION'],
    ['version as a string', catalogText.replace('"version":2', '"version":"2"'), 400, 'VALIDATION'],
    ['stock negative', catalogText.replace('"stock":3', '"stock":-1'), 400, 'VALIDATION'],
    ['price fractional', catalogText.replace('"priceCents":1000', '"priceCents":10.5'), 400, 'VALIDATION'],
    [
      'items not an array',
      JSON.stringify({ ...smallCatalog({ A: 1 }, 2), items: { 0: {} } }),
      400,
      'VALIDATION',
    ],
    [
      'huge item array',
      JSON.stringify({
        ...smallCatalog({ A: 1 }, 2),
        items: Array.from({ length: 5001 }, (_, i) => ({ sku: `S${i}`, name: 'n', priceCents: 1, stock: 1 })),
      }),
      413,
      'BODY_TOO_LARGE',
    ],
    ['not JSON', '{"version":', 400, 'BAD_REQUEST'],
  ];
  for (const [name, payload, status, code] of hostileCatalogs) {
    test(`PUT /v1/catalog with ${name}: ${status} ${code}, nothing changes`, async () => {
      const before = await state(kit);
      const res = await asStaff(kit.app)({
        method: 'PUT',
        url: '/v1/catalog',
        headers: { ...auth, ...json },
        payload,
      });
      assert.equal(res.statusCode, status, res.body);
      assert.equal(res.json().error.code, code);
      assert.deepEqual(await state(kit), before);
    });
  }

  const hostileOrders: Array<[string, string, Record<string, string>, number, string]> = [
    [
      '__proto__ at the top',
      JSON.stringify(order).replace('{', '{"__proto__":{"x":1},'),
      {},
      400,
      'BAD_REQUEST',
    ],
    [
      '__proto__ in a line',
      '{"lines":[{"__proto__":{"qty":5},"sku":"A","qty":1}],"payment":{"method":"cash"}}',
      {},
      400,
      'BAD_REQUEST',
    ],
    [
      'constructor.prototype',
      JSON.stringify(order).replace('{', '{"constructor":{"prototype":{"x":1}},'),
      {},
      400,
      'BAD_REQUEST',
    ],
    ['a constructor key', JSON.stringify(order).replace('{', '{"constructor":1,'), {}, 400, 'VALIDATION'],
    [
      'NUL in a SKU',
      '{"lines":[{"sku":"A\\u0000","qty":1}],"payment":{"method":"cash"}}',
      {},
      400,
      'VALIDATION',
    ],
    [
      'NUL in a token',
      '{"lines":[{"sku":"A","qty":1}],"payment":{"method":"token","token":"tok_\\u0000abcdefgh"}}',
      {},
      400,
      'VALIDATION',
    ],
    [
      'NUL in the Idempotency-Key',
      JSON.stringify(order),
      { 'idempotency-key': 'a\u0000b' },
      400,
      'VALIDATION',
    ],
    [
      '101 lines',
      JSON.stringify({ ...order, lines: Array.from({ length: 101 }, () => ({ sku: 'A', qty: 1 })) }),
      {},
      400,
      'VALIDATION',
    ],
    [
      'qty as a string',
      '{"lines":[{"sku":"A","qty":"1"}],"payment":{"method":"cash"}}',
      {},
      400,
      'VALIDATION',
    ],
    ['payment as a string', '{"lines":[{"sku":"A","qty":1}],"payment":"cash"}', {}, 400, 'VALIDATION'],
    [
      'lines as an object',
      '{"lines":{"sku":"A","qty":1},"payment":{"method":"cash"}}',
      {},
      400,
      'VALIDATION',
    ],
    [
      'a body over the limit',
      JSON.stringify({ ...order, pad: 'x'.repeat(70_000) }),
      {},
      413,
      'BODY_TOO_LARGE',
    ],
  ];
  for (const [name, payload, headers, status, code] of hostileOrders) {
    test(`POST /v1/orders with ${name}: ${status} ${code}, nothing changes`, async () => {
      const before = await state(kit);
      const res = await asStaff(kit.app)({
        method: 'POST',
        url: '/v1/orders',
        headers: { ...json, ...headers },
        payload,
      });
      assert.equal(res.statusCode, status, res.body);
      assert.equal(res.json().error.code, code);
      assert.deepEqual(await state(kit), before);
    });
  }
});

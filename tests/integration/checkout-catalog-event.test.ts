// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// A catalog for a new event resets stock to its starting stock (what sold at the last event does not
// carry over); a new version for the same event keeps what has sold. Through the real API on LMDB.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { asStaff, auth, smallCatalog, startCheckoutWithCatalog } from '../support/checkout.ts';

type Kit = Awaited<ReturnType<typeof startCheckoutWithCatalog>>;
let kit: Kit;

before(async () => {
  kit = await startCheckoutWithCatalog({ A: 10, B: 5 });
});
after(() => kit.kit.close());

async function stock(): Promise<Record<string, number>> {
  const res = await asStaff(kit.app)({ method: 'GET', url: '/v1/catalog' });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json() as { eventId: string; items: Array<{ sku: string; stock: number }> };
  return Object.fromEntries(body.items.map((i) => [i.sku, i.stock]));
}

async function sell(sku: string, qty: number) {
  const res = await asStaff(kit.app)({
    method: 'POST',
    url: '/v1/orders',
    payload: { lines: [{ sku, qty }], payment: { method: 'cash' } },
  });
  assert.equal(res.statusCode, 201, res.body);
}

async function load(catalog: ReturnType<typeof smallCatalog>) {
  const res = await asStaff(kit.app)({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: catalog });
  assert.equal(res.statusCode, 200, res.body);
}

test('same event, new version: sold units stay sold; new event: stock starts over', async () => {
  await sell('A', 3);
  await sell('B', 5);
  assert.deepEqual(await stock(), { A: 7, B: 0 });

  // v2 of the same event raises A by 2: the 3 sold stay sold (12 - 3), B stays sold out
  await load(smallCatalog({ A: 12, B: 5 }, 2, 'ev-test'));
  assert.deepEqual(await stock(), { A: 9, B: 0 }, 'same event keeps what has sold');

  // the next event's catalog: every SKU at its starting stock again
  await load(smallCatalog({ A: 12, B: 5 }, 1, 'ev-next'));
  assert.deepEqual(await stock(), { A: 12, B: 5 }, 'a new event resets stock');
  await sell('B', 1);
  assert.deepEqual(await stock(), { A: 12, B: 4 });
});

test('SKUs named like Object.prototype members keep real stock across versions, drops and re-adds', async () => {
  const names = ['constructor', 'toString', 'valueOf', 'hasOwnProperty'];
  const of = (stockEach: number, version: number, only = names) =>
    smallCatalog(Object.fromEntries(only.map((s) => [s, stockEach])), version, 'ev-proto');
  await load(of(5, 1));
  for (const sku of names) await sell(sku, 2);
  // a new version of the same event: what sold stays sold (5 + 1 - 2 = 4), never NaN
  await load(of(6, 2));
  assert.deepEqual(await stock(), Object.fromEntries(names.map((s) => [s, 4])));
  // dropped (no stock, cannot be sold) and re-added: the starting stock minus nothing known sold
  await load(of(6, 3, ['toString']));
  const dropped = await asStaff(kit.app)({
    method: 'POST',
    url: '/v1/orders',
    payload: { lines: [{ sku: 'constructor', qty: 1 }], payment: { method: 'cash' } },
  });
  assert.equal(dropped.statusCode, 400, dropped.body);
  await load(of(3, 4));
  const after = await stock();
  for (const sku of names) {
    assert.ok(Number.isInteger(after[sku]), `${sku}: ${after[sku]}`);
    assert.ok((after[sku] ?? -1) >= 0 && (after[sku] ?? 99) <= 3, `${sku}: ${after[sku]}`);
  }
  await sell('valueOf', 1);
});

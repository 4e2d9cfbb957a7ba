// Shared stock (docs/shared-stock.md), the parts that need no hub: the allocation arithmetic, the
// signed statement's contract against hostile values, the release entry on the wire, and the kit
// store applying statements once (real LMDB).
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { signAllocation, signCatalog, verifySignedAllocation } from '../../core/catalog-signing.ts';
import { entryProblems } from '../../core/contracts/hub-wire.ts';
import type { AllocationPayloadT } from '../../core/contracts/shared-stock.ts';
import { isKitError } from '../../core/errors.ts';
import { planRebalance, splitEvenly } from '../../core/shared-stock.ts';
import {
  applyAllocation,
  commitOrder,
  LANES,
  openKitStore,
  readSharedStock,
  readStock,
  replaceCatalog,
} from '../../core/store/index.ts';
import type { StoredOrder } from '../../core/store/open.ts';
import { tempDir } from '../support/checkout.ts';

const pair = generateKeyPairSync('ed25519');

function statement(over: Partial<AllocationPayloadT> = {}): AllocationPayloadT {
  return {
    v: 1,
    use: 'stock-allocation',
    kitId: 'kit-a',
    eventId: 'ev1',
    version: 1,
    issuedAt: '2026-12-01T18:00:00.000Z',
    grants: [{ id: 'g1', sku: 'DROP', qty: 10 }],
    releaseRequests: [],
    eventStock: [['DROP', 30]],
    allocated: [['DROP', 10]],
    ...over,
  };
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isKitError(err)) return err.code;
    throw err;
  }
  return 'accepted';
}

test('an even split gives every unit, the first kits one more when it does not divide', () => {
  assert.deepEqual(
    [...splitEvenly(10, ['a', 'b', 'c'])],
    [
      ['a', 4],
      ['b', 3],
      ['c', 3],
    ],
  );
  assert.deepEqual(
    [...splitEvenly(2, ['a', 'b', 'c'])],
    [
      ['a', 1],
      ['b', 1],
      ['c', 0],
    ],
  );
  assert.equal(splitEvenly(5, []).size, 0);
  for (const [stock, n] of [
    [0, 1],
    [7, 7],
    [10_000_000, 3],
    [31, 4],
  ] as const) {
    const kits = Array.from({ length: n }, (_, i) => `k${i}`);
    const split = [...splitEvenly(stock, kits).values()];
    assert.equal(
      split.reduce((a, b) => a + b, 0),
      stock,
    );
    assert.ok(Math.max(...split) - Math.min(...split) <= 1);
  }
});

test('the rebalance rule: a kit under the threshold gets half the difference from the kit with the most unsold', () => {
  const shares = [
    { kitId: 'a', allocated: 10, sold: 9 },
    { kitId: 'b', allocated: 10, sold: 2 },
    { kitId: 'c', allocated: 10, sold: 0 },
  ];
  assert.deepEqual(planRebalance(shares, 20), [{ from: 'c', to: 'a', qty: 4 }]);
  // nobody under the threshold: nothing moves
  assert.deepEqual(planRebalance(shares, 5), []);
  // every kit low: no donor, nothing moves
  assert.deepEqual(
    planRebalance(
      [
        { kitId: 'a', allocated: 10, sold: 10 },
        { kitId: 'b', allocated: 10, sold: 9 },
      ],
      20,
    ),
    [],
  );
  // two receivers: the donor is never left poorer than a receiver, and never below zero
  const plan = planRebalance(
    [
      { kitId: 'a', allocated: 10, sold: 10 },
      { kitId: 'b', allocated: 10, sold: 10 },
      { kitId: 'c', allocated: 10, sold: 0 },
    ],
    20,
  );
  assert.deepEqual(plan, [
    { from: 'c', to: 'a', qty: 5 },
    { from: 'c', to: 'b', qty: 2 },
  ]);
  // a kit that sold more than the hub allocated (the hub counts what it received): no negative unsold
  assert.deepEqual(
    planRebalance(
      [
        { kitId: 'a', allocated: 4, sold: 6 },
        { kitId: 'b', allocated: 4, sold: 0 },
      ],
      20,
    ),
    [{ from: 'b', to: 'a', qty: 2 }],
  );
});

test('a signed statement verifies for its kit; forged, misrouted and hostile ones are refused with a code', () => {
  const ok = JSON.stringify(signAllocation(pair.privateKey, statement()));
  assert.equal(verifySignedAllocation(pair.publicKey, ok, 'kit-a').grants[0]?.qty, 10);
  assert.equal(
    code(() => verifySignedAllocation(pair.publicKey, ok, 'kit-b')),
    'ALLOCATION_WRONG_KIT',
  );
  const forged = JSON.stringify(signAllocation(generateKeyPairSync('ed25519').privateKey, statement()));
  assert.equal(
    code(() => verifySignedAllocation(pair.publicKey, forged, 'kit-a')),
    'ALLOCATION_FORGED',
  );
  // the payload changed after signing
  const tampered = JSON.parse(ok) as { payload: string };
  tampered.payload = tampered.payload.replace('"qty":10', '"qty":99');
  assert.equal(
    code(() => verifySignedAllocation(pair.publicKey, JSON.stringify(tampered), 'kit-a')),
    'ALLOCATION_FORGED',
  );
  // a signed catalog is never taken for a statement (its payload has no `use: stock-allocation`)
  const cat = signCatalog(pair.privateKey, {
    version: 1,
    eventId: 'ev1',
    items: [{ sku: 'DROP', name: 'Drop', priceCents: 100, currency: 'EUR', stock: 1 }],
  });
  assert.equal(
    code(() => verifySignedAllocation(pair.publicKey, JSON.stringify(cat), 'kit-a')),
    'ALLOCATION_MALFORMED',
  );
  for (const raw of [
    'not json',
    '',
    'null',
    '[]',
    '{"v":1}',
    JSON.stringify({ v: 1, alg: 'rsa', payload: '{}', sig: 'x' }),
  ]) {
    assert.equal(
      code(() => verifySignedAllocation(pair.publicKey, raw, 'kit-a')),
      'ALLOCATION_MALFORMED',
      raw,
    );
  }
  const hostile: Array<[string, unknown]> = [
    ['NUL in a kit id', { kitId: 'kit-a\0' }],
    ['NUL in a SKU', { grants: [{ id: 'g1', sku: 'DR\0P', qty: 1 }] }],
    ['__proto__ as a SKU', { grants: [{ id: 'g1', sku: '__proto__', qty: 1 }] }],
    ['__proto__ as a move id', { grants: [{ id: '__proto__', sku: 'DROP', qty: 1 }] }],
    ['a huge qty', { grants: [{ id: 'g1', sku: 'DROP', qty: 1e12 }] }],
    ['a fraction', { grants: [{ id: 'g1', sku: 'DROP', qty: 1.5 }] }],
    ['a zero grant', { grants: [{ id: 'g1', sku: 'DROP', qty: 0 }] }],
    ['a negative grant', { grants: [{ id: 'g1', sku: 'DROP', qty: -5 }] }],
    ['a qty as text', { grants: [{ id: 'g1', sku: 'DROP', qty: '10' }] }],
    ['a version as text', { version: '2' }],
    ['version 0', { version: 0 }],
    ['a huge version', { version: 2 ** 40 }],
    ['an extra field', { extra: true }],
    ['an extra field in a move', { grants: [{ id: 'g1', sku: 'DROP', qty: 1, kitId: 'kit-b' }] }],
    ['another use', { use: 'telemetry-seal' }],
    [
      'a grant id twice',
      {
        grants: [
          { id: 'g1', sku: 'DROP', qty: 1 },
          { id: 'g1', sku: 'DROP', qty: 1 },
        ],
      },
    ],
    ['a request id that is a grant id', { releaseRequests: [{ id: 'g1', sku: 'DROP', qty: 1 }] }],
    [
      'too many grants',
      { grants: Array.from({ length: 5001 }, (_, i) => ({ id: `g${i}`, sku: 'DROP', qty: 1 })) },
    ],
    ['event stock as an object', { eventStock: { DROP: 30 } }],
  ];
  for (const [what, over] of hostile) {
    const body = { ...statement(), ...(over as object) } as AllocationPayloadT;
    const raw = JSON.stringify(signAllocation(pair.privateKey, body));
    assert.equal(
      code(() => verifySignedAllocation(pair.publicKey, raw, 'kit-a')),
      'ALLOCATION_MALFORMED',
      what,
    );
  }
  // a payload with `__proto__` as a key of its own, signed as bytes
  const protoPayload = JSON.stringify(statement()).replace('"v":1,', '"__proto__":{"polluted":1},"v":1,');
  const raw = JSON.stringify(signAllocation(pair.privateKey, statement()));
  const withProto = { ...(JSON.parse(raw) as object), payload: protoPayload };
  assert.notEqual(
    code(() => verifySignedAllocation(pair.publicKey, JSON.stringify(withProto), 'kit-a')),
    'accepted',
  );
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('a release entry on the wire: its id must be the release id, and its values sound', () => {
  const release = {
    id: 't-1',
    eventId: 'ev1',
    sku: 'DROP',
    requested: 5,
    released: 2,
    at: '2026-12-01T18:00:00.000Z',
  };
  assert.deepEqual(entryProblems({ lane: 'orders', id: 't-1', release }, 'kit-a'), []);
  assert.notDeepEqual(entryProblems({ lane: 'orders', id: 't-2', release }, 'kit-a'), []);
  for (const bad of [
    { ...release, released: -1 },
    { ...release, requested: 0 },
    { ...release, sku: '__proto__' },
    { ...release, id: 't\0' },
    { ...release, eventId: 'x'.repeat(65) },
    { ...release, released: '2' },
    { ...release, extra: 1 },
  ]) {
    assert.notDeepEqual(
      entryProblems({ lane: 'orders', id: bad.id, release: bad }, 'kit-a'),
      [],
      JSON.stringify(bad),
    );
  }
});

function order(id: string, qty: number): StoredOrder {
  return {
    id,
    kitId: 'kit-a',
    eventId: 'ev1',
    catalogVersion: 1,
    lines: [{ sku: 'DROP', name: 'Drop', qty, unitPriceCents: 100, lineCents: 100 * qty }],
    totalCents: 100 * qty,
    currency: 'EUR',
    payment: { method: 'cash' },
    createdAt: new Date().toISOString(),
    status: 'accepted',
    syncState: 'pending',
  } as StoredOrder;
}

test('the kit store: grants once by id, releases only what is left, stale statements refused, no shared catalog no change', async () => {
  const store = openKitStore(tempDir('popkit-shared-'));
  try {
    // before the catalog: a grant is recorded, stock waits for the catalog
    await applyAllocation(store, statement());
    await replaceCatalog(
      store,
      {
        version: 1,
        eventId: 'ev1',
        sharedStock: true,
        items: [{ sku: 'DROP', name: 'Drop', priceCents: 100, currency: 'EUR', stock: 30 }],
      },
      { source: 'hub' },
    );
    // the event's 30 are not this kit's: its 10 are
    assert.equal(readStock(store, 'DROP'), 10);
    // the same version again (the retained copy on reconnect) changes nothing
    assert.deepEqual(await applyAllocation(store, statement()), { kind: 'duplicate' });
    assert.equal(readStock(store, 'DROP'), 10);
    // a newer statement lists g1 again and a new grant: only the new one adds
    await applyAllocation(
      store,
      statement({
        version: 2,
        grants: [
          { id: 'g1', sku: 'DROP', qty: 10 },
          { id: 'g2', sku: 'DROP', qty: 3 },
        ],
      }),
    );
    assert.equal(readStock(store, 'DROP'), 13);
    // an older one is refused and changes nothing
    await assert.rejects(
      applyAllocation(store, statement({ version: 1, grants: [{ id: 'g9', sku: 'DROP', qty: 50 }] })),
      (e) => isKitError(e) && e.code === 'ALLOCATION_STALE',
    );
    assert.equal(readStock(store, 'DROP'), 13);
    // sold offline: 12 of 13
    const out = await commitOrder(store, {
      order: order('o1', 12),
      sealed: null,
      limits: { maxOrderCents: 1e12, maxUnsyncedCents: 1e12, maxUnsyncedOrders: 1e12, maxUnsyncedAgeS: 1e12 },
      idHighWater: 1,
      now: Date.now(),
    });
    assert.equal(out.kind, 'created');
    // the hub asks for 5: the kit releases the 1 it has, queued on the orders lane, once
    const v3 = statement({
      version: 3,
      grants: [
        { id: 'g1', sku: 'DROP', qty: 10 },
        { id: 'g2', sku: 'DROP', qty: 3 },
      ],
      releaseRequests: [{ id: 't-1', sku: 'DROP', qty: 5 }],
    });
    const applied = await applyAllocation(store, v3);
    assert.equal(applied.kind, 'applied');
    assert.equal(readStock(store, 'DROP'), 0);
    assert.deepEqual(readSharedStock(store, 'ev1')?.releases, [['t-1', 'DROP', 5, 1]]);
    assert.equal(store.outbox.get([LANES.orders, 't-1'])?.kind, 'stockRelease');
    // the request listed again in a newer statement: not released twice
    await applyAllocation(store, { ...v3, version: 4 });
    assert.deepEqual(readSharedStock(store, 'ev1')?.releases, [['t-1', 'DROP', 5, 1]]);
    assert.equal(readStock(store, 'DROP'), 0);
    // a newer catalog of the shared event keeps the kit's figure (not the event's)
    await replaceCatalog(
      store,
      {
        version: 2,
        eventId: 'ev1',
        sharedStock: true,
        items: [{ sku: 'DROP', name: 'Drop', priceCents: 100, currency: 'EUR', stock: 40 }],
      },
      { source: 'hub' },
    );
    assert.equal(readStock(store, 'DROP'), 0);
    // an event without shared stock: the catalog's figure, as always
    await replaceCatalog(
      store,
      {
        version: 1,
        eventId: 'ev2',
        items: [{ sku: 'DROP', name: 'Drop', priceCents: 100, currency: 'EUR', stock: 30 }],
      },
      { source: 'hub' },
    );
    assert.equal(readStock(store, 'DROP'), 30);
    // a statement for an event the kit does not sell now: recorded, the stock it sells untouched
    await applyAllocation(store, statement({ version: 5, grants: [{ id: 'g3', sku: 'DROP', qty: 7 }] }));
    assert.equal(readStock(store, 'DROP'), 30);
  } finally {
    await store.close();
  }
});

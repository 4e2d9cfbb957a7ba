// Property, on the real PostgreSQL through checkout → sync → hub: random catalogs (unicode, NUL, lone
// surrogates, maximum lengths, SKUs `__proto__`, `constructor`, `valueOf`, `toString`) are either refused
// by the kit, changing nothing, or sell; orders an older kit stored with hostile content travel with
// them. Every order the kit took ends in the hub's ledger or in its dead letters with a reason, and the
// kit's outbox empties.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import pg from 'pg';
import {
  getOrder,
  LANES,
  readStoredCatalog,
  replaceCatalog,
  type StoredOrder,
} from '../../core/store/index.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  type Mosquitto,
  makeKit,
  mosquitto,
  PG_URL,
  startHub,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_property').replace(/-/g, '_');
let broker: Mosquitto;
let db: pg.Client;
let hub: HubService;
let kit: TestKit;
let sync: SyncService;

before(async () => {
  broker = await mosquitto();
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  hub = await startHub({ schema, gateway: new SandboxGateway(), brokerUrl: broker.url });
  kit = await makeKit(uniqueId('kit'));
  sync = startSync(kit, broker.url, { POPKIT_SYNC_BATCH_MAX: '50' });
});

after(async () => {
  await sync?.stop();
  await hub?.stop();
  await broker?.stop();
  await db?.end();
  await kit?.close();
  await dropSchema(schema);
});

const HOSTILE = [
  '\u0000',
  'A\u0000B',
  '\ud800',
  'x\udc00',
  '\u001b[2J',
  '\u007f',
  '',
  'é🎉',
  'x'.repeat(200),
  'y'.repeat(201),
];
const sku = fc.oneof(
  {
    arbitrary: fc.constantFrom('constructor', 'valueOf', 'toString', 'hasOwnProperty', 'TEE', 'a:b.c-d_e'),
    weight: 8,
  },
  { arbitrary: fc.constantFrom('__proto__', '', 'x'.repeat(65)), weight: 1 },
  { arbitrary: fc.string({ minLength: 1, maxLength: 70 }), weight: 1 },
);
const text = fc.oneof(
  { arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 200 }), weight: 8 },
  { arbitrary: fc.constantFrom(...HOSTILE), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 210 }), weight: 1 },
);
const catalog = fc.record({
  items: fc.array(
    fc.record({
      sku,
      name: text,
      priceCents: fc.integer({ min: 0, max: 100_000 }),
      stock: fc.constant(1000),
    }),
    { minLength: 1, maxLength: 3 },
  ),
  orders: fc.array(fc.record({ pick: fc.nat(), qty: fc.integer({ min: 1, max: 3 }), card: fc.boolean() }), {
    maxLength: 6,
  }),
  legacy: fc.array(
    fc.record({
      field: fc.constantFrom('name', 'sku', 'total', 'eventId'),
      value: fc.oneof(fc.constantFrom(...HOSTILE, '__proto__'), fc.string({ unit: 'binary', maxLength: 80 })),
    }),
    { maxLength: 3 },
  ),
});

/** an order as an older kit version could have stored it (straight into LMDB) */
function corrupted(o: StoredOrder, field: string, value: string): StoredOrder {
  switch (field) {
    case 'name':
      return { ...o, lines: o.lines.map((l) => ({ ...l, name: value })) };
    case 'sku':
      return { ...o, lines: o.lines.map((l) => ({ ...l, sku: value })) };
    case 'eventId':
      return { ...o, eventId: value };
    default:
      return { ...o, totalCents: o.totalCents + 1 + value.length };
  }
}

test('every order the kit took ends in the ledger or the dead letters; refused catalogs change nothing', {
  timeout: 120_000,
}, async () => {
  let version = 1;
  const taken: string[] = [];
  let refusedCatalogs = 0;
  let soldCatalogs = 0;
  await fc.assert(
    fc.asyncProperty(catalog, async ({ items, orders, legacy }) => {
      const before = JSON.stringify(readStoredCatalog(kit.store));
      version++;
      let accepted = true;
      try {
        await replaceCatalog(
          kit.store,
          { version, eventId: 'default', currency: 'EUR', items },
          { source: 'local' },
        );
      } catch (err) {
        accepted = false;
        assert.equal((err as { code?: string }).code, 'VALIDATION', String(err));
        assert.equal(
          JSON.stringify(readStoredCatalog(kit.store)),
          before,
          'a refused catalog changed the store',
        );
        refusedCatalogs++;
      }
      const cat = readStoredCatalog(kit.store)!;
      if (accepted) soldCatalogs++;
      for (const o of orders) {
        const item = cat.items[o.pick % cat.items.length]!;
        const res = await kit.orders.create(
          {
            lines: [{ sku: item.sku, qty: o.qty }],
            payment: o.card ? { method: 'token', token: `tok_prop_${taken.length}` } : { method: 'cash' },
          },
          undefined,
        );
        taken.push(res.order.id);
      }
      for (const l of legacy) {
        const item = cat.items[0]!;
        const res = await kit.orders.create(
          { lines: [{ sku: item.sku, qty: 1 }], payment: { method: 'cash' } },
          undefined,
        );
        const o = getOrder(kit.store, res.order.id)!;
        await kit.store.orders.put(o.id, corrupted(o, l.field, l.value));
        taken.push(o.id);
      }
      await waitFor(
        () => kit.store.outbox.getKeysCount({ start: [LANES.orders, ''], end: [LANES.orders + 1, ''] }) === 0,
        20_000,
        'the outbox to empty',
      );
    }),
    { numRuns: 15, seed: 10, endOnFailure: true },
  );
  // the property over everything the kit took
  const inLedger = new Set(
    (
      await db.query<{ order_id: string }>(`SELECT order_id FROM "${schema}".orders WHERE kit_id = $1`, [
        kit.kitId,
      ])
    ).rows.map((r) => r.order_id),
  );
  const dead = new Map(
    (
      await db.query<{ entry_id: string; reason: string }>(
        `SELECT entry_id, reason FROM "${schema}".dead_letters WHERE kit_id = $1 AND lane = 'orders'`,
        [kit.kitId],
      )
    ).rows.map((r) => [r.entry_id, r.reason]),
  );
  for (const id of taken) {
    const reason = dead.get(id);
    assert.ok(inLedger.has(id) !== (reason !== undefined), `order ${id}: in the ledger or dead, exactly one`);
    if (reason !== undefined) {
      assert.ok(reason.length > 0);
      assert.equal(getOrder(kit.store, id)!.syncState, 'rejected');
    }
  }
  assert.ok(refusedCatalogs > 0 && soldCatalogs > 0, `refused ${refusedCatalogs}, sold ${soldCatalogs}`);
  assert.ok(dead.size > 0, 'some legacy orders were dead-lettered');
});

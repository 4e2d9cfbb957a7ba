// LAN stock transfers end to end (docs/shared-stock.md#lan-transfers): three kits of one event on one
// hub (real checkout stores, real sync, the real hub worker, a private real Mosquitto, real
// PostgreSQL). The creator splits the event's stock evenly; then the uplink goes (the broker stops)
// in the middle of a drop that sells out unevenly. The kits find each other over multicast DNS and
// move units among themselves; every kit sells all it can. Total sold never exceeds the event's
// stock. When the uplink comes back, the hub records every LAN move once (release and grant under the
// same id), its allocations match what each kit holds, its ledger has every order once, and its
// statements carrying the LAN grants do not add them a second time on the kits.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { kitIdentity } from '../../core/enroll-kit.ts';
import { isKitError } from '../../core/errors.ts';
import { allOrders, heldUnits, readSharedStock, readStoredCatalog } from '../../core/store/index.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  assertSettledOnceInLedger,
  dropSchema,
  hubAdminApi,
  type Mosquitto,
  makeKit,
  mosquitto,
  outboxOrders,
  schemaSql,
  startHub,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const EVENT_STOCK = 30;
const SKU = 'DROP';

describe('LAN stock: three kits, the uplink cut in the middle of a drop that sells out unevenly', () => {
  const schema = uniqueId('t_lan').replace(/-/g, '_');
  const eventId = uniqueId('ev');
  let broker: Mosquitto;
  let hub: HubService;
  const kits: TestKit[] = [];
  const syncs = new Map<string, SyncService>();
  /** order ids each kit placed, for the ledger check */
  const placed = new Map<string, string[]>();

  const api = hubAdminApi(() => hub);
  const sql = schemaSql(schema);

  const stock = (k: TestKit) => k.store.stock.get(SKU) ?? 0;
  const soldOn = (k: TestKit) => {
    let n = 0;
    for (const o of allOrders(k.store))
      if (o.eventId === eventId) for (const l of o.lines) if (l.sku === SKU) n += l.qty;
    return n;
  };
  const lanMoves = (k: TestKit) => readSharedStock(k.store, eventId)?.lan ?? [];

  /**
   * Sell what the kit has, all of it in one order (one LMDB transaction, so the kit is not low, and
   * does not ask, half way), until it has nothing: the units sold.
   */
  async function sellOut(k: TestKit): Promise<number> {
    let sold = 0;
    for (let n = stock(k); n > 0; n = stock(k)) {
      try {
        const o = await k.orders.create(
          { lines: [{ sku: SKU, qty: n }], payment: { method: 'cash' } },
          undefined,
        );
        placed.get(k.kitId)?.push(o.order.id);
        sold += n;
      } catch (err) {
        // the stock changed under the order (units given away meanwhile): read it again
        if (!(isKitError(err) && err.code === 'SOLD_OUT')) throw err;
      }
    }
    return sold;
  }

  before(async () => {
    broker = await mosquitto();
    hub = await startHub({ schema, gateway: new SandboxGateway(), brokerUrl: broker.url });
    for (const name of ['a', 'b', 'c']) {
      const k = await makeKit(uniqueId(`kit-${name}`));
      kits.push(k);
      placed.set(k.kitId, []);
    }
    for (const k of kits)
      syncs.set(
        k.kitId,
        startSync(k, broker.url, {
          POPKIT_HUB_PUBLIC_KEY: fs.readFileSync(hub.publicKeyFile, 'utf8'),
          POPKIT_EVENT_ID: eventId,
          POPKIT_LAN_STOCK_AFTER_S: '1',
        }),
      );
  });

  after(async () => {
    for (const s of syncs.values()) await s.stop();
    await hub?.stop();
    await broker?.stop();
    for (const k of kits) await k.close();
    await dropSchema(schema);
  });

  test('an even split; every kit learns the others and their identity keys from the hub', async () => {
    const put = await api(`/v1/events/${eventId}/catalog`, 'PUT', {
      currency: 'EUR',
      items: [{ sku: SKU, name: 'Drop tee', priceCents: 4000, currency: 'EUR', stock: EVENT_STOCK }],
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const split = await api(`/v1/events/${eventId}/allocations`, 'PUT', {
      split: 'even',
      kits: kits.map((k) => k.kitId),
    });
    assert.equal(split.status, 200, JSON.stringify(split.body));
    for (const k of kits) {
      await waitFor(
        () => readStoredCatalog(k.store)?.sharedStock === true && stock(k) === 10,
        20_000,
        `${k.kitId}: the shared catalog and its 10 units`,
      );
      // the hub lists every kit of the event with the key the kit sent in its status
      await waitFor(
        () => (readSharedStock(k.store, eventId)?.peers ?? []).length === 3,
        30_000,
        `${k.kitId}: the event's three kits and their keys`,
      );
    }
    const keys = new Map(readSharedStock(kits[0]!.store, eventId)?.peers ?? []);
    for (const k of kits)
      assert.equal(keys.get(k.kitId), kitIdentity(k.dataDir).publicKey, `${k.kitId}'s own key listed`);
    const found = () => kits.map((k) => syncs.get(k.kitId)?.lanStock?.status());
    await waitFor(
      () => found().every((s) => s?.found.length === 2),
      30_000,
      'the kits found each other over multicast DNS',
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(found())}`);
    });
  });

  test('uplink cut: the kits move units over the LAN, each sells all it can, total sold never above the stock', async () => {
    const [a] = kits as [TestKit, TestKit, TestKit];
    await broker.stop();
    await waitFor(() => kits.every((k) => !syncs.get(k.kitId)?.connected), 20_000, 'every kit lost the hub');
    // A sells out first: it gets half of the most a kit has left (10 → 5)
    assert.equal(await sellOut(a), 10);
    await waitFor(() => stock(a) === 5, 30_000, 'A got 5 units over the LAN');
    const first = kits.find((k) => k !== a && stock(k) === 5)!;
    const second = kits.find((k) => k !== a && k !== first)!;
    assert.equal(stock(second), 10);
    // A sells out again: the kit that still has 10 gives 5
    assert.equal(await sellOut(a), 5);
    await waitFor(() => stock(a) === 5 && stock(second) === 5, 30_000, 'A got 5 more from the other kit');
    // the first giver sells out: the kit with the most (5) gives 2 (it keeps half)
    assert.equal(await sellOut(first), 5);
    await waitFor(() => stock(first) === 2, 30_000, 'the first giver got 2 units back over the LAN');
    // then every kit sells all it has, whenever it has any, until no unit is left or on its way
    await waitFor(
      async () => {
        for (const k of kits) await sellOut(k);
        return kits.every(
          (k) => stock(k) === 0 && (readSharedStock(k.store, eventId)?.lanPending ?? []).length === 0,
        );
      },
      30_000,
      'every kit sold all it had',
    );
    const total = kits.reduce((n, k) => n + soldOn(k), 0);
    assert.ok(total <= EVENT_STOCK, `sold ${total} of ${EVENT_STOCK}`);
    // units only moved: sold and unsold add up to the event's stock, on the kits' own counts
    assert.equal(total + kits.reduce((n, k) => n + stock(k), 0), EVENT_STOCK);
    // units only moved: what the kits hold adds up to the event's stock
    assert.equal(
      kits.reduce((n, k) => n + heldUnits(readSharedStock(k.store, eventId), SKU), 0),
      EVENT_STOCK,
    );
    // every move is in both kits' records once
    const ins = kits.flatMap((k) => lanMoves(k).filter((m) => m[1] === 'in'));
    const outs = kits.flatMap((k) => lanMoves(k).filter((m) => m[1] === 'out'));
    assert.ok(ins.length >= 3, `${ins.length} LAN moves`);
    assert.deepEqual(ins.map((m) => [m[0], m[5]]).sort(), outs.map((m) => [m[0], m[5]]).sort());
  });

  test('the uplink back: the hub records each LAN move once, its allocations match the kits, every order is in the ledger once', async () => {
    const held = kits.map((k) => stock(k));
    await broker.start();
    for (const k of kits)
      await waitFor(() => outboxOrders(k) === 0, 60_000, `${k.kitId}'s orders lane drained`);
    const ids = [...new Set(kits.flatMap((k) => lanMoves(k).map((m) => m[0])))];
    const rows = await sql<{
      kind: string;
      move_id: string;
      kit_id: string;
      qty: number;
      transfer_to: string | null;
    }>(
      `SELECT kind, move_id, kit_id, qty, transfer_to FROM stock_moves WHERE move_id LIKE 'l-%' ORDER BY move_id, kind`,
    );
    for (const id of ids) {
      const mine = rows.filter((r) => r.move_id === id);
      const inn = kits.flatMap((k) =>
        lanMoves(k)
          .filter((m) => m[0] === id && m[1] === 'in')
          .map((m) => ({ k, m })),
      )[0]!;
      const out = kits.flatMap((k) =>
        lanMoves(k)
          .filter((m) => m[0] === id && m[1] === 'out')
          .map((m) => ({ k, m })),
      )[0]!;
      const expected = [
        ...(inn.m[5] > 0
          ? [{ kind: 'grant', move_id: id, kit_id: inn.k.kitId, qty: inn.m[5], transfer_to: null }]
          : []),
        { kind: 'release', move_id: id, kit_id: out.k.kitId, qty: out.m[5], transfer_to: inn.k.kitId },
      ];
      assert.deepEqual(
        mine.map((r) => ({ ...r, qty: Number(r.qty) })),
        expected,
        `LAN move ${id} in the hub once`,
      );
    }
    const view = await api(`/v1/events/${eventId}/stock`, 'GET');
    const row = (
      view.body['skus'] as Array<{
        eventStock: number;
        unallocated: number;
        kits: Array<{ kitId: string; allocated: number; sold: number }>;
      }>
    )[0]!;
    assert.equal(row.unallocated, 0);
    for (const k of kits) {
      const h = row.kits.find((x) => x.kitId === k.kitId)!;
      assert.equal(
        h.allocated,
        heldUnits(readSharedStock(k.store, eventId), SKU),
        `${k.kitId}: the hub's allocation is what the kit holds`,
      );
      assert.equal(h.sold, soldOn(k), `${k.kitId}: sold by the ledger`);
      assert.ok(h.sold <= h.allocated);
    }
    assert.ok(row.kits.reduce((n, k) => n + k.sold, 0) <= EVENT_STOCK);
    await assertSettledOnceInLedger(
      schema,
      kits,
      kits.map((k) => placed.get(k.kitId) ?? []),
    );
    // the statements now list the LAN grants under their ids: applied once, not again
    for (const k of kits) {
      const received = lanMoves(k)
        .filter((m) => m[1] === 'in' && m[5] > 0)
        .map((m) => m[0]);
      await waitFor(
        () => {
          const rec = readSharedStock(k.store, eventId);
          return (
            received.every((id) => rec?.grants.filter((g) => g[0] === id).length === 1) &&
            (rec?.allocated[0]?.[1] ?? -1) === heldUnits(rec, SKU)
          );
        },
        20_000,
        `${k.kitId}: a statement with its LAN grants`,
      );
    }
    assert.deepEqual(
      kits.map((k) => stock(k)),
      held,
      'no LAN grant was added twice',
    );
    // the post-event report lists the LAN moves
    const report = await api(`/v1/events/${eventId}/report`, 'GET');
    assert.equal(report.status, 200, JSON.stringify(report.body).slice(0, 300));
    const transfers =
      (report.body['inventory'] as { transfers?: Array<{ id: string; via?: string }> }).transfers ?? [];
    for (const id of ids) assert.equal(transfers.find((t) => t.id === id)?.via, 'lan', `${id} in the report`);
  });
});

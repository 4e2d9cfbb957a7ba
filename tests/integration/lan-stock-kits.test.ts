// LAN stock transfers between the kits of an event, the kits' side (docs/shared-stock.md#lan-transfers):
// real LMDB stores, real HTTP listeners, real multicast DNS on this machine's network, no hub (its
// statements are signed here with a test catalog key and applied as sync applies them). A kit that
// sells out while the hub is out of reach finds the others, asks the one with the most unsold units,
// and gets units exactly once; forged, foreign, misrouted and hostile requests change nothing.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { entryProblems } from '../../core/contracts/hub-wire.ts';
import type { LanRequestPayloadT, SignedLanMessageT } from '../../core/contracts/lan-stock.ts';
import type { AllocationPayloadT } from '../../core/contracts/shared-stock.ts';
import { signLan } from '../../core/lan-signing.ts';
import { computeReport } from '../../core/report/compute.ts';
import { kitReportInput } from '../../core/report/kit-input.ts';
import {
  addLanPending,
  applyAllocation,
  commitOrder,
  heldUnits,
  type KitStore,
  LANES,
  openKitStore,
  readSharedStock,
  readStock,
  replaceCatalog,
} from '../../core/store/index.ts';
import type { StoredOrder } from '../../core/store/open.ts';
import { LanStock } from '../../services/sync/lan-stock.ts';
import { tempDir } from '../support/checkout.ts';
import { waitFor } from '../support/hub-link.ts';

const SKU = 'DROP';

interface Kit {
  kitId: string;
  store: KitStore;
  identity: { privateKey: KeyObject; publicKey: string };
  lan: LanStock;
  queued: number;
}

function identity() {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey: (privateKey.export({ format: 'jwk' }) as { x: string }).x };
}

function order(kitId: string, eventId: string, id: string, qty: number): StoredOrder {
  return {
    id,
    kitId,
    eventId,
    catalogVersion: 1,
    lines: [{ sku: SKU, name: 'Drop', qty, unitPriceCents: 100, lineCents: 100 * qty }],
    totalCents: 100 * qty,
    currency: 'EUR',
    payment: { method: 'cash' },
    createdAt: new Date().toISOString(),
    status: 'accepted',
    syncState: 'pending',
  } as StoredOrder;
}

async function sell(k: Kit, eventId: string, qty: number): Promise<void> {
  const out = await commitOrder(k.store, {
    order: order(k.kitId, eventId, `o-${randomUUID()}`, qty),
    sealed: null,
    limits: { maxOrderCents: 1e12, maxUnsyncedCents: 1e12, maxUnsyncedOrders: 1e12, maxUnsyncedAgeS: 1e12 },
    idHighWater: 1,
    now: Date.now(),
  });
  assert.equal(out.kind, 'created');
}

function flipFirstBit(b64: string): string {
  const b = Buffer.from(b64, 'base64');
  b[0] = (b[0] ?? 0) ^ 1;
  return b.toString('base64');
}

const outboxKind = (k: Kit, id: string) => k.store.outbox.get([LANES.orders, id])?.kind;

/** Post a body to a kit's listener: status and parsed answer. */
async function post(k: Kit, body: unknown, raw?: string) {
  const res = await fetch(`http://127.0.0.1:${k.lan.port}/v1/lan/stock/transfers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: raw ?? JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('LAN stock: kits of one event move units between themselves while the hub is out of reach', () => {
  const eventId = `ev-${randomUUID().slice(0, 8)}`;
  const kits: Kit[] = [];
  let hubConnected = false;
  const stranger = identity();

  /** the hub's statement for one kit: its grants, and every kit of the event with its key */
  function statement(k: Kit, version: number, grants: AllocationPayloadT['grants']): AllocationPayloadT {
    const mine = grants.reduce((n, g) => n + g.qty, 0);
    return {
      v: 1,
      use: 'stock-allocation',
      kitId: k.kitId,
      eventId,
      version,
      issuedAt: new Date().toISOString(),
      grants,
      releaseRequests: [],
      eventStock: [[SKU, 42]],
      allocated: [[SKU, mine]],
      peers: kits
        .map((p) => ({ kitId: p.kitId, key: p.identity.publicKey }))
        .sort((a, b) => a.kitId.localeCompare(b.kitId)),
    };
  }

  before(async () => {
    for (const [name, units] of [
      ['a', 2],
      ['b', 20],
      ['c', 20],
    ] as const) {
      const kitId = `kit-${name}-${randomUUID().slice(0, 6)}`;
      const store = openKitStore(tempDir('popkit-lan-'));
      const kit = { kitId, store, identity: identity(), queued: 0 } as Kit;
      kits.push(kit);
      kit.lan = new LanStock(
        store,
        {
          kitId,
          mode: 'auto',
          host: '0.0.0.0',
          port: 0,
          afterS: 0,
          belowPercent: 20,
          peers: [],
          identity: kit.identity,
        },
        { eventId: () => eventId, hubConnected: () => hubConnected, queued: () => kit.queued++ },
      );
      (kit as Kit & { units: number }).units = units;
    }
    for (const k of kits) {
      await applyAllocation(
        k.store,
        statement(k, 1, [{ id: `a-${k.kitId}`, sku: SKU, qty: (k as Kit & { units: number }).units }]),
      );
      await replaceCatalog(
        k.store,
        {
          version: 1,
          eventId,
          sharedStock: true,
          items: [{ sku: SKU, name: 'Drop', priceCents: 100, currency: 'EUR', stock: 42 }],
        },
        { source: 'hub' },
      );
    }
  });

  after(async () => {
    for (const k of kits) {
      await k.lan.close();
      await k.store.close();
    }
  });

  test('with the hub in reach nothing is asked; out of reach, a kit that sold out finds the others over multicast DNS and gets half the difference once', async () => {
    const [a, b, c] = kits as [Kit, Kit, Kit];
    assert.deepEqual(
      [a, b, c].map((k) => readStock(k.store, SKU)),
      [2, 20, 20],
    );
    await sell(a, eventId, 2);
    hubConnected = true;
    for (const k of kits) await k.lan.tick();
    assert.ok(
      kits.every((k) => k.lan.port),
      'every kit listens once its event is shared',
    );
    await waitFor(
      () => kits.every((k) => k.lan.status().found.length === 2),
      15_000,
      'kits found each other over multicast DNS',
    );
    await a.lan.tick();
    assert.equal(a.lan.status().asked, 0, 'nothing is asked while the hub is in reach');
    hubConnected = false;
    await a.lan.tick();
    // b and c have 20 each: the first with the most gives floor((20 − 0) / 2) = 10, keeping half
    assert.equal(readStock(a.store, SKU), 10);
    const giver = readStock(b.store, SKU) === 10 ? b : c;
    const other = giver === b ? c : b;
    assert.equal(readStock(giver.store, SKU), 10);
    assert.equal(readStock(other.store, SKU), 20);
    const move = readSharedStock(a.store, eventId)?.lan?.[0];
    assert.ok(move && move[1] === 'in' && move[2] === giver.kitId && move[5] === 10);
    const id = move[0];
    // both sides' reports are queued for the hub, in the orders lane's wire shape
    assert.equal(outboxKind(a, id), 'lanGrant');
    assert.equal(outboxKind(giver, id), 'stockRelease');
    const rel = giver.store.outbox.get([LANES.orders, id])?.body as Record<string, unknown>;
    assert.deepEqual(entryProblems({ lane: 'orders', id, release: rel }, giver.kitId), []);
    const grant = a.store.outbox.get([LANES.orders, id])?.body as Record<string, unknown>;
    assert.deepEqual(entryProblems({ lane: 'orders', id, lanGrant: grant }, a.kitId), []);
    // units only moved: 2 + 20 + 20 held, 2 sold
    const held = (k: Kit) => readStock(k.store, SKU);
    assert.equal(held(a) + held(b) + held(c) + 2, 42);
    // a has 10 of 12 held unsold: not low, nothing more is asked
    await a.lan.tick();
    assert.equal(a.lan.status().asked, 1);
    assert.equal(readSharedStock(a.store, eventId)?.lanPending?.length ?? 0, 0);
  });

  test('the same request again gets the same signed receipt and moves nothing; the hub granting the same id later adds nothing', async () => {
    const [a] = kits as [Kit];
    const move = readSharedStock(a.store, eventId)?.lan?.[0];
    assert.ok(move);
    const giver = kits.find((k) => k.kitId === move[2]) as Kit;
    const rel = giver.store.outbox.get([LANES.orders, move[0]])?.body as {
      lan: { request: SignedLanMessageT };
    };
    const before = [readStock(a.store, SKU), readStock(giver.store, SKU)];
    const first = readSharedStock(giver.store, eventId)?.lan?.[0]?.[7];
    const again = await post(giver, rel.lan.request);
    assert.equal(again.status, 200);
    assert.equal(JSON.stringify(again.body.receipt), first);
    assert.deepEqual([readStock(a.store, SKU), readStock(giver.store, SKU)], before);
    // the hub reconciles: its next statement lists the LAN grant under the same id
    const rec = readSharedStock(a.store, eventId);
    await applyAllocation(
      a.store,
      statement(a, (rec?.version ?? 1) + 1, [
        { id: `a-${a.kitId}`, sku: SKU, qty: 2 },
        { id: move[0], sku: SKU, qty: move[5] },
      ]),
    );
    assert.equal(readStock(a.store, SKU), before[0], 'the LAN grant is not applied twice');
  });

  test('an answer lost after the giver released: the asking kit asks again with the same id and gets the units once', async () => {
    const [a] = kits as [Kit];
    await sell(a, eventId, readStock(a.store, SKU)); // sold out again
    const donor = kits.slice(1).sort((x, y) => readStock(y.store, SKU) - readStock(x.store, SKU))[0] as Kit;
    const body: LanRequestPayloadT = {
      v: 1,
      use: 'lan-stock-request',
      id: `l-${randomUUID()}`,
      eventId,
      from: donor.kitId,
      to: a.kitId,
      sku: SKU,
      qty: 4,
      at: new Date().toISOString(),
    };
    const signed = signLan(a.identity.privateKey, body);
    await addLanPending(a.store, eventId, [body.id, donor.kitId, SKU, 4, JSON.stringify(signed), Date.now()]);
    const donorBefore = readStock(donor.store, SKU);
    const lost = await post(donor, signed); // the giver released; the answer never reached the kit
    assert.equal(lost.status, 200);
    assert.equal(readStock(donor.store, SKU), donorBefore - 4);
    assert.equal(readStock(a.store, SKU), 0);
    await a.lan.tick();
    assert.equal(readStock(a.store, SKU), 4, 'the retry with the same id got the same 4 units');
    assert.equal(readStock(donor.store, SKU), donorBefore - 4, 'released once');
    assert.equal(
      readSharedStock(a.store, eventId)?.lanPending?.some((p) => p[0] === body.id),
      false,
    );
  });

  test('without multicast DNS: the kits listed in POPKIT_LAN_STOCK_PEERS are asked', async () => {
    const [a, b, c] = kits as [Kit, Kit, Kit];
    await sell(a, eventId, readStock(a.store, SKU));
    const listed = new LanStock(
      a.store,
      {
        kitId: a.kitId,
        mode: 'auto',
        host: '127.0.0.1',
        port: 0,
        afterS: 0,
        belowPercent: 20,
        peers: [b, c].map((k) => `http://127.0.0.1:${k.lan.port}`),
        mdns: false,
        identity: a.identity,
      },
      { eventId: () => eventId, hubConnected: () => false, queued: () => undefined },
    );
    try {
      const others = readStock(b.store, SKU) + readStock(c.store, SKU);
      await listed.tick();
      assert.deepEqual(listed.status().found, [b.kitId, c.kitId].sort());
      const got = readStock(a.store, SKU);
      assert.ok(got > 0, JSON.stringify(listed.status()));
      assert.equal(readStock(b.store, SKU) + readStock(c.store, SKU), others - got, 'units moved, none made');
    } finally {
      await listed.close();
    }
  });

  test("each kit's own report: its start is what it holds of the event, and its LAN moves are listed with both ends", () => {
    for (const k of kits) {
      const { input } = kitReportInput(k.store, eventId, { kitId: k.kitId });
      const r = computeReport(input);
      const row = r.inventory.skus.find((x) => x.sku === SKU);
      const rec = readSharedStock(k.store, eventId);
      // not the event's 42: granted − released, transfers in and out included
      assert.equal(row?.start, heldUnits(rec, SKU));
      assert.equal(
        (row?.start ?? 0) - (row?.soldKit ?? 0),
        row?.onHand,
        `${k.kitId}: start − sold = on hand`,
      );
      const listed = (r.inventory.transfers ?? []).map((t) => [t.id, t.from, t.to, t.released, t.via]);
      const expected = (rec?.lan ?? []).map((m) =>
        m[1] === 'in' ? [m[0], m[2], k.kitId, m[5], 'lan'] : [m[0], k.kitId, m[2], m[5], 'lan'],
      );
      assert.deepEqual(listed, expected);
    }
    assert.ok(
      kits.some(
        (k) =>
          (
            computeReport(kitReportInput(k.store, eventId, { kitId: k.kitId }).input).inventory.transfers ??
            []
          ).length > 0,
      ),
    );
  });

  test('forged, foreign, misrouted and hostile requests are refused with a code and change nothing', async () => {
    const [a, b] = kits as [Kit, Kit];
    const good: LanRequestPayloadT = {
      v: 1,
      use: 'lan-stock-request',
      id: `l-${randomUUID()}`,
      eventId,
      from: b.kitId,
      to: a.kitId,
      sku: SKU,
      qty: 1,
      at: new Date().toISOString(),
    };
    const snapshot = () =>
      JSON.stringify([
        readStock(b.store, SKU),
        readSharedStock(b.store, eventId),
        b.store.outbox.getKeysCount(),
      ]);
    const was = snapshot();
    const cases: Array<[string, unknown, number, string]> = [];
    const forged = signLan(a.identity.privateKey, good);
    cases.push([
      'a flipped signature',
      {
        ...forged,
        sig: flipFirstBit(forged.sig),
      },
      403,
      'LAN_FORGED',
    ]);
    cases.push([
      'signed by another kit than it names',
      signLan(b.identity.privateKey, good),
      403,
      'LAN_FORGED',
    ]);
    cases.push([
      'a kit not in the event',
      signLan(stranger.privateKey, { ...good, to: 'kit-stranger' }),
      403,
      'LAN_UNKNOWN_PEER',
    ]);
    cases.push([
      'for another giver',
      signLan(a.identity.privateKey, { ...good, from: a.kitId }),
      400,
      'LAN_WRONG_KIT',
    ]);
    cases.push([
      'another event',
      signLan(a.identity.privateKey, { ...good, eventId: 'ev-other' }),
      409,
      'LAN_NOT_SHARED',
    ]);
    for (const [what, patch] of [
      ['__proto__ SKU', { sku: '__proto__' }],
      ['NUL in the id', { id: 'l-\u0000' }],
      ['a hub move id', { id: 't-1' }],
      ['2.5 units', { qty: 2.5 }],
      ['1e300 units', { qty: 1e300 }],
      ['negative units', { qty: -3 }],
      ['a string for units', { qty: '3' }],
      ['an extra field', { extra: 1 }],
      ['a wrong use', { use: 'stock-allocation' }],
    ] as const) {
      cases.push([
        what,
        signLan(a.identity.privateKey, { ...good, ...patch } as LanRequestPayloadT),
        400,
        'LAN_MALFORMED',
      ]);
    }
    cases.push(['not an envelope', { payload: 'x' }, 400, 'LAN_MALFORMED']);
    cases.push([
      'an envelope with __proto__',
      JSON.parse(`{"__proto__":{"x":1},"v":1,"alg":"ed25519","payload":"{}","sig":"AA=="}`),
      400,
      // fastify's body parser refuses a `__proto__` key before the route runs
      'BAD_REQUEST',
    ]);
    {
      // a `__proto__` key inside the signed payload: signed by a peer, still not the request's shape
      const payload = JSON.stringify(good).replace('{', '{"__proto__":{"qty":1000},');
      const sig = signLan(a.identity.privateKey, good); // a signature over other bytes, replaced below
      sig.payload = payload;
      sig.sig = sign(null, Buffer.from(payload), a.identity.privateKey).toString('base64');
      cases.push(['__proto__ inside the signed payload', sig, 400, 'LAN_MALFORMED']);
    }
    for (const [what, body, status, code] of cases) {
      const res = await post(b, body);
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal((res.body.error as { code: string }).code, code, what);
    }
    const notJson = await post(b, undefined, '{"v":1,');
    assert.equal(notJson.status, 400);
    const huge = await post(
      b,
      undefined,
      JSON.stringify({ v: 1, alg: 'ed25519', payload: 'x'.repeat(100_000), sig: 'AA==' }),
    );
    assert.equal(huge.status, 413);
    assert.equal(snapshot(), was, 'nothing changed on the giver');
  });
});

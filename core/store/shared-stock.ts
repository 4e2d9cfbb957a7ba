// This kit's share of an event's stock (docs/shared-stock.md). When the event's catalog says its stock
// is shared, the kit's stock record of a SKU is what it may sell: units granted − units released −
// units sold, held or reserved. Grants raise it and releases lower it here, each by its id exactly
// once, in one LMDB transaction with the record of the applied ids; orders lower it in orders.ts as
// always. A release takes only units the kit still has, so no unit the kit sold offline is ever
// moved to another kit.

import { LANES } from '../contracts/lanes.ts';
import type { AllocationPayloadT, StockReleaseT } from '../contracts/shared-stock.ts';
import { KitError } from '../errors.ts';
import { type KitStore, META, type OutboxKey, type StoredCatalog } from './open.ts';

/** What the kit keeps of the hub's statements for one event (arrays of tuples: ids are never object keys). */
export interface SharedStockRecord {
  eventId: string;
  /** the newest statement's version and issue time */
  version: number;
  issuedAt: string;
  /** every grant applied: [id, sku, qty] */
  grants: Array<[string, string, number]>;
  /** every release request answered: [id, sku, requested, released] */
  releases: Array<[string, string, number, number]>;
  /** from the newest statement: the event's stock and this kit's allocation as the hub counts them */
  eventStock: Array<[string, number]>;
  allocated: Array<[string, number]>;
}

export type AllocationOutcome =
  | { kind: 'applied'; granted: number; released: StockReleaseT[] }
  | { kind: 'duplicate' };

function key(eventId: string): string {
  return `${META.sharedStock}${eventId}`;
}

export function readSharedStock(store: KitStore, eventId: string): SharedStockRecord | undefined {
  return store.meta.get(key(eventId)) as SharedStockRecord | undefined;
}

/** Units granted less units released of one SKU, by the record (what the kit holds, sold or not). */
export function heldUnits(rec: SharedStockRecord | undefined, sku: string): number {
  if (!rec) return 0;
  let n = 0;
  for (const [, s, q] of rec.grants) if (s === sku) n += q;
  for (const [, s, , r] of rec.releases) if (s === sku) n -= r;
  return n;
}

function sharedCatalogOf(store: KitStore, eventId: string): StoredCatalog | undefined {
  const c = store.catalog.get('current');
  return c && c.eventId === eventId && c.sharedStock ? c : undefined;
}

/**
 * Inside replaceCatalog's transaction, for a catalog whose stock is shared: the stock record of one SKU.
 * A kit never sells the event's figure, only what it holds: granted − released, less what it already
 * sold of this event (kept as is when the previous catalog was shared too).
 */
export function sharedStartInTxn(
  store: KitStore,
  next: { eventId: string },
  prev: StoredCatalog | undefined,
  sku: string,
): number {
  const held = heldUnits(readSharedStock(store, next.eventId), sku);
  const current = store.stock.get(sku);
  const sameEvent = prev?.eventId === next.eventId;
  if (sameEvent && prev?.sharedStock && current !== undefined && Object.hasOwn(prev.startStock, sku)) {
    return current;
  }
  if (sameEvent && prev && current !== undefined && Object.hasOwn(prev.startStock, sku)) {
    const sold = Math.max(0, (prev.startStock[sku] ?? 0) - current);
    return Math.max(0, held - sold);
  }
  return Math.max(0, held);
}

/**
 * Apply one verified statement: every grant not applied yet raises stock, every release request not
 * answered yet releases what the kit has (up to the request) and queues the release on the orders
 * lane, all in one transaction. An older version is refused (ALLOCATION_STALE); the same version
 * again (the retained copy on reconnect) changes nothing.
 */
export async function applyAllocation(
  store: KitStore,
  s: AllocationPayloadT,
  now = Date.now(),
): Promise<AllocationOutcome> {
  const outcome = await store.root.transaction((): AllocationOutcome | { kind: 'stale'; have: number } => {
    const prev = readSharedStock(store, s.eventId);
    if (prev && prev.version > s.version) return { kind: 'stale', have: prev.version };
    if (prev && prev.version === s.version) return { kind: 'duplicate' };
    const rec: SharedStockRecord = {
      eventId: s.eventId,
      version: s.version,
      issuedAt: s.issuedAt,
      grants: [...(prev?.grants ?? [])],
      releases: [...(prev?.releases ?? [])],
      eventStock: s.eventStock.map(([k, n]) => [k, n]),
      allocated: s.allocated.map(([k, n]) => [k, n]),
    };
    const catalog = sharedCatalogOf(store, s.eventId);
    const selling = (sku: string) => catalog !== undefined && store.stock.get(sku) !== undefined;
    const granted = new Set(rec.grants.map((g) => g[0]));
    let units = 0;
    for (const g of s.grants) {
      if (granted.has(g.id)) continue;
      granted.add(g.id);
      rec.grants.push([g.id, g.sku, g.qty]);
      units += g.qty;
      if (selling(g.sku)) void store.stock.put(g.sku, (store.stock.get(g.sku) ?? 0) + g.qty);
    }
    const answered = new Set(rec.releases.map((r) => r[0]));
    const released: StockReleaseT[] = [];
    for (const r of s.releaseRequests) {
      if (answered.has(r.id)) continue;
      answered.add(r.id);
      // only units the kit has: unsold and not held, or (not selling this event) granted and not released
      const have = selling(r.sku) ? (store.stock.get(r.sku) ?? 0) : heldUnits(rec, r.sku);
      const n = Math.max(0, Math.min(r.qty, have));
      if (selling(r.sku)) void store.stock.put(r.sku, (store.stock.get(r.sku) ?? 0) - n);
      rec.releases.push([r.id, r.sku, r.qty, n]);
      const body: StockReleaseT = {
        id: r.id,
        eventId: s.eventId,
        sku: r.sku,
        requested: r.qty,
        released: n,
        at: new Date(now).toISOString(),
      };
      released.push(body);
      void store.outbox.put([LANES.orders, r.id] satisfies OutboxKey, {
        kind: 'stockRelease',
        body: { ...body },
        createdAt: now,
      });
    }
    void store.meta.put(key(s.eventId), rec);
    return { kind: 'applied', granted: units, released };
  });
  if (outcome.kind === 'stale') {
    throw new KitError(
      'ALLOCATION_STALE',
      `allocation version ${s.version} is older than ${outcome.have} for event ${s.eventId}`,
    );
  }
  return outcome;
}

/** This kit's share of an event as GET /v1/status and the dashboard show it (undefined: no allocation). */
export function sharedStockView(store: KitStore, eventId: string) {
  const rec = readSharedStock(store, eventId);
  if (!rec) return undefined;
  const catalog = sharedCatalogOf(store, eventId);
  const skus = new Set([...rec.eventStock.map((e) => e[0]), ...rec.grants.map((g) => g[1])]);
  const eventStock = new Map(rec.eventStock);
  const allocated = new Map(rec.allocated);
  return {
    eventId,
    version: rec.version,
    issuedAt: rec.issuedAt,
    active: catalog !== undefined,
    grants: rec.grants.length,
    releases: rec.releases.length,
    skus: [...skus].sort().map((sku) => ({
      sku,
      eventStock: eventStock.get(sku) ?? null,
      allocated: allocated.get(sku) ?? null,
      held: heldUnits(rec, sku),
      sellable: catalog ? (store.stock.get(sku) ?? 0) : 0,
    })),
  };
}

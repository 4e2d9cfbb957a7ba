// This kit's share of an event's stock (docs/shared-stock.md). When the event's catalog says its stock
// is shared, the kit's stock record of a SKU is what it may sell: units granted − units released −
// units sold, held or reserved. Grants raise it and releases lower it here, each by its id exactly
// once, in one LMDB transaction with the record of the applied ids; orders lower it in orders.ts as
// always. A release takes only units the kit still has, so no unit the kit sold offline is ever
// moved to another kit.

import {
  LAN_LIMITS,
  type LanReceiptPayloadT,
  type LanRequestPayloadT,
  type SignedLanMessageT,
} from '../contracts/lan-stock.ts';
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
  /** from the newest statement that listed them: the event's kits and their identity keys [kitId, key] */
  peers?: Array<[string, string]>;
  /**
   * units moved with another kit over the venue LAN (docs/shared-stock.md#lan-transfers), each also in
   * `grants` (in) or `releases` (out) under its id: [id, 'in' | 'out', other kit, sku, requested,
   * released, at, the signed receipt this kit gave (out; '' for in)]
   */
  lan?: LanMove[];
  /** LAN requests this kit sent and has no receipt for yet: [id, giving kit, sku, qty, signed request JSON, at ms] */
  lanPending?: LanPending[];
}

export type LanMove = [string, 'in' | 'out', string, string, number, number, string, string];
export type LanPending = [string, string, string, number, string, number];

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
    const peers = s.peers?.map((p): [string, string] => [p.kitId, p.key]) ?? prev?.peers;
    if (peers) rec.peers = peers;
    if (prev?.lan) rec.lan = prev.lan;
    // a LAN request the hub has granted meanwhile (the giver reported it) is answered
    const listed = new Set(s.grants.map((g) => g.id));
    if (prev?.lanPending) rec.lanPending = prev.lanPending.filter((p) => !listed.has(p[0]));
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
    lan: {
      in: (rec.lan ?? []).filter((m) => m[1] === 'in').reduce((n, m) => n + m[5], 0),
      out: (rec.lan ?? []).filter((m) => m[1] === 'out').reduce((n, m) => n + m[5], 0),
      pending: rec.lanPending?.length ?? 0,
    },
    skus: [...skus].sort().map((sku) => ({
      sku,
      eventStock: eventStock.get(sku) ?? null,
      allocated: allocated.get(sku) ?? null,
      held: heldUnits(rec, sku),
      sellable: catalog ? (store.stock.get(sku) ?? 0) : 0,
    })),
  };
}

/** The event's kits and their identity keys, from the hub's newest statement that listed them. */
export function lanPeers(rec: SharedStockRecord | undefined): Map<string, string> {
  return new Map(rec?.peers ?? []);
}

/** What this kit could give of each SKU now: its unsold units (the giver still keeps half, applyLanRelease). */
export function lanSellable(store: KitStore, eventId: string): Array<[string, number]> {
  const rec = readSharedStock(store, eventId);
  if (!rec) return [];
  const catalog = sharedCatalogOf(store, eventId);
  const skus = new Set(rec.grants.map((g) => g[1]));
  return [...skus]
    .sort()
    .map((sku): [string, number] => [
      sku,
      Math.max(
        0,
        catalog && store.stock.get(sku) !== undefined ? (store.stock.get(sku) ?? 0) : heldUnits(rec, sku),
      ),
    ]);
}

function lanRoom(rec: SharedStockRecord): void {
  if ((rec.lan?.length ?? 0) + (rec.lanPending?.length ?? 0) >= LAN_LIMITS.moves)
    throw new KitError('CONFLICT', `event ${rec.eventId} has ${LAN_LIMITS.moves} LAN moves already`);
}

/**
 * The giving side of a LAN transfer (the request is verified by the caller against the hub's `peers`):
 * in one transaction, release up to the request's units, never more than half of what this kit still
 * has, record the move, and queue the release for the hub on the orders lane with the signed request.
 * The same request again (a retry after a lost answer) gets the same signed receipt and changes
 * nothing. `signReceipt` signs with this kit's identity key.
 */
export async function applyLanRelease(
  store: KitStore,
  req: LanRequestPayloadT,
  signedRequest: SignedLanMessageT,
  signReceipt: (body: LanReceiptPayloadT) => SignedLanMessageT,
  now = Date.now(),
): Promise<{ receipt: SignedLanMessageT; released: number; replay: boolean }> {
  return store.root.transaction(() => {
    const rec = readSharedStock(store, req.eventId);
    if (!rec) throw new KitError('LAN_NOT_SHARED', `this kit holds no shared stock of event ${req.eventId}`);
    const seen = rec.lan?.find((m) => m[0] === req.id);
    if (seen) {
      if (seen[1] !== 'out' || seen[2] !== req.to || seen[3] !== req.sku || seen[4] !== req.qty)
        throw new KitError('CONFLICT', `LAN transfer ${req.id} is already recorded with other terms`);
      return { receipt: JSON.parse(seen[7]) as SignedLanMessageT, released: seen[5], replay: true };
    }
    if (rec.grants.some((g) => g[0] === req.id) || rec.releases.some((r) => r[0] === req.id))
      throw new KitError('CONFLICT', `move ${req.id} is already recorded on this kit`);
    lanRoom(rec);
    const selling =
      sharedCatalogOf(store, req.eventId) !== undefined && store.stock.get(req.sku) !== undefined;
    const have = Math.max(0, selling ? (store.stock.get(req.sku) ?? 0) : heldUnits(rec, req.sku));
    const n = Math.min(req.qty, Math.floor(have / 2));
    if (selling) void store.stock.put(req.sku, (store.stock.get(req.sku) ?? 0) - n);
    const at = new Date(now).toISOString();
    const receipt = signReceipt({
      v: 1,
      use: 'lan-stock-receipt',
      id: req.id,
      eventId: req.eventId,
      from: req.from,
      to: req.to,
      sku: req.sku,
      requested: req.qty,
      released: n,
      at,
    });
    const next: SharedStockRecord = {
      ...rec,
      releases: [...rec.releases, [req.id, req.sku, req.qty, n]],
      lan: [...(rec.lan ?? []), [req.id, 'out', req.to, req.sku, req.qty, n, at, JSON.stringify(receipt)]],
    };
    const body: StockReleaseT = {
      id: req.id,
      eventId: req.eventId,
      sku: req.sku,
      requested: req.qty,
      released: n,
      at,
      lan: { to: req.to, request: { ...signedRequest } },
    };
    void store.outbox.put([LANES.orders, req.id] satisfies OutboxKey, {
      kind: 'stockRelease',
      body: { ...body },
      createdAt: now,
    });
    void store.meta.put(key(req.eventId), next);
    return { receipt, released: n, replay: false };
  });
}

/**
 * The receiving side: a receipt verified by the caller against the giver's key. In one transaction its
 * units raise this kit's stock, the move is recorded under the transfer's id (so the hub's grant of the
 * same id, when it reconciles, is not applied twice) and the receipt is queued for the hub on the
 * orders lane. A receipt already applied changes nothing.
 */
export async function applyLanGrant(
  store: KitStore,
  r: LanReceiptPayloadT,
  signedReceipt: SignedLanMessageT,
  now = Date.now(),
): Promise<{ kind: 'applied' | 'duplicate'; granted: number }> {
  return store.root.transaction(() => {
    const rec = readSharedStock(store, r.eventId);
    if (!rec) throw new KitError('LAN_NOT_SHARED', `this kit holds no shared stock of event ${r.eventId}`);
    if (rec.grants.some((g) => g[0] === r.id)) {
      if (rec.lanPending?.some((p) => p[0] === r.id))
        void store.meta.put(key(r.eventId), {
          ...rec,
          lanPending: rec.lanPending.filter((p) => p[0] !== r.id),
        });
      return { kind: 'duplicate' as const, granted: 0 };
    }
    lanRoom({ ...rec, lanPending: [] });
    if (sharedCatalogOf(store, r.eventId) && store.stock.get(r.sku) !== undefined && r.released > 0)
      void store.stock.put(r.sku, (store.stock.get(r.sku) ?? 0) + r.released);
    const next: SharedStockRecord = {
      ...rec,
      grants: [...rec.grants, [r.id, r.sku, r.released]],
      lan: [...(rec.lan ?? []), [r.id, 'in', r.from, r.sku, r.requested, r.released, r.at, '']],
      lanPending: (rec.lanPending ?? []).filter((p) => p[0] !== r.id),
    };
    void store.outbox.put([LANES.orders, r.id] satisfies OutboxKey, {
      kind: 'lanGrant',
      body: { receipt: { ...signedReceipt } },
      createdAt: now,
    });
    void store.meta.put(key(r.eventId), next);
    return { kind: 'applied' as const, granted: r.released };
  });
}

/** Keep a LAN request before it is sent, so that a retry after a crash or a lost answer asks with the same id. */
export async function addLanPending(store: KitStore, eventId: string, p: LanPending): Promise<void> {
  await store.root.transaction(() => {
    const rec = readSharedStock(store, eventId);
    if (!rec) throw new KitError('LAN_NOT_SHARED', `this kit holds no shared stock of event ${eventId}`);
    lanRoom(rec);
    void store.meta.put(key(eventId), { ...rec, lanPending: [...(rec.lanPending ?? []), p] });
  });
}

/** Forget a LAN request (the giver refused it for good); the hub grants it later if the giver did release. */
export async function dropLanPending(store: KitStore, eventId: string, id: string): Promise<void> {
  await store.root.transaction(() => {
    const rec = readSharedStock(store, eventId);
    if (!rec?.lanPending?.some((p) => p[0] === id)) return;
    void store.meta.put(key(eventId), { ...rec, lanPending: rec.lanPending.filter((p) => p[0] !== id) });
  });
}

// The catalog and its stock: replaced whole (staff PUT, `popkit catalog load`, or a verified catalog
// from the hub) and read with live stock. Stock rules: a catalog for a new event sets stock to its
// starting figures; a newer version of the same event keeps what was sold and adds the change in
// starting stock (raising a SKU from 50 to 60 adds 10 units, whatever has sold). SKUs that leave the
// catalog keep no stock. A catalog whose stock is shared by the event's kits (`sharedStock`) gives a
// kit only the units the hub granted it (shared-stock.ts). Stock goes down only in orders.ts, in the order's own transaction.
import { bundleComponents, validateCatalog } from '../contracts/catalog.ts';
import { KitError } from '../errors.ts';
import { type SaleState, saleStateAt } from '../sale-window.ts';
import { type CatalogBundle, type CatalogStamp, type KitStore, META, type StoredCatalog } from './open.ts';
import { slotTaken } from './pickup.ts';
import { sharedStartInTxn } from './shared-stock.ts';

const CATALOG_KEY = 'current';

export interface ReplaceOptions {
  source: 'local' | 'hub';
  /** refuse a catalog whose version is not newer than the stored one for the same event (the hub's rule) */
  requireNewer?: boolean;
  /** runs inside the transaction before anything is written; throws (a KitError) to refuse */
  inTxn?: (prev: StoredCatalog | undefined) => void;
}

export async function replaceCatalog(
  store: KitStore,
  raw: unknown,
  opts: ReplaceOptions,
): Promise<StoredCatalog> {
  const input = validateCatalog(raw);
  const currency = input.currency ?? input.items[0]?.currency ?? 'USD';
  const next: StoredCatalog = {
    version: input.version,
    eventId: input.eventId,
    currency,
    items: input.items.map(({ stock: _stock, ...item }) => ({
      ...item,
      currency: item.currency ?? currency,
    })),
    bundles: (input.bundles ?? []).map(({ skus, components, ...b }) => ({
      ...b,
      components: bundleComponents({ ...(skus ? { skus } : {}), ...(components ? { components } : {}) }),
    })),
    pickupSlots: input.pickupSlots ?? [],
    ...(input.creatorId ? { creatorId: input.creatorId } : {}),
    ...(input.sharedStock ? { sharedStock: true } : {}),
    source: opts.source,
    updatedAt: new Date().toISOString(),
    startStock: Object.fromEntries(input.items.map((i) => [i.sku, i.stock])),
  };
  const outcome = await store.root.transaction(() => {
    const prev = store.catalog.get(CATALOG_KEY);
    const sameEvent = prev?.eventId === next.eventId;
    if (opts.requireNewer && prev && sameEvent && prev.version >= next.version) {
      return { refused: `version ${next.version} is not newer than ${prev.version}` };
    }
    opts.inTxn?.(prev);
    for (const item of input.items) {
      if (next.sharedStock) {
        // the event's figure is not this kit's to sell: only what the hub granted it (shared-stock.ts)
        void store.stock.put(item.sku, sharedStartInTxn(store, next, prev, item.sku));
        continue;
      }
      // SKUs are keys, not properties: `constructor` or `valueOf` must not find Object.prototype's
      const before =
        sameEvent && prev && Object.hasOwn(prev.startStock, item.sku) ? prev.startStock[item.sku] : undefined;
      const current = store.stock.get(item.sku);
      let stock = item.stock;
      if (before !== undefined && current !== undefined) {
        const sold = Math.max(0, before - current);
        stock = Math.max(0, item.stock - sold);
      }
      void store.stock.put(item.sku, stock);
    }
    // SKUs that left the catalog keep no stock, so they cannot be sold
    for (const old of prev?.items ?? []) {
      if (!Object.hasOwn(next.startStock, old.sku)) void store.stock.remove(old.sku);
    }
    void store.catalog.put(CATALOG_KEY, next);
    void store.meta.put(META.catalogVersion, {
      eventId: next.eventId,
      version: next.version,
      updatedAt: next.updatedAt,
    } satisfies CatalogStamp);
    return { refused: null };
  });
  if (outcome.refused) throw new KitError('CONFLICT', `catalog refused: ${outcome.refused}`);
  return next;
}

export function readStoredCatalog(store: KitStore): StoredCatalog | undefined {
  const c = store.catalog.get(CATALOG_KEY);
  if (!c) return undefined;
  // a catalog stored by an older kit: bundles named `skus` (one of each) and there were no pickup slots
  const bundles = c.bundles.map((b) => {
    const old = b as CatalogBundle & { skus?: string[] };
    if (old.components) return b;
    const { skus, ...rest } = old;
    return { ...rest, components: bundleComponents({ skus: skus ?? [] }) };
  });
  return { ...c, bundles, pickupSlots: c.pickupSlots ?? [] };
}

/** The stored catalog's identity, cheap to read (a small meta record): undefined before the first catalog. */
export function readCatalogStamp(store: KitStore): CatalogStamp | undefined {
  return store.meta.get(META.catalogVersion) as CatalogStamp | undefined;
}

/** Units left of one SKU (0 for a SKU with no stock record). */
export function readStock(store: KitStore, sku: string): number {
  return store.stock.get(sku) ?? 0;
}

/** Every SKU's stock, in key order. */
export function readAllStock(store: KitStore): Record<string, number> {
  const stock: Record<string, number> = {};
  for (const { key, value } of store.stock.getRange()) stock[key] = value;
  return stock;
}

/** A catalog's items with their live stock, as GET /v1/catalog answers them. */
export function itemsWithStock(store: KitStore, catalog: StoredCatalog) {
  return catalog.items.map((i) => ({ ...i, stock: readStock(store, i.sku) }));
}

/** Whole bundles the live stock of its components makes. */
export function bundleAvailable(store: KitStore, b: CatalogBundle): number {
  let n = Number.POSITIVE_INFINITY;
  for (const c of b.components) n = Math.min(n, Math.floor(readStock(store, c.sku) / c.qty));
  return Number.isFinite(n) ? n : 0;
}

/** Orders a pickup slot of an event can still take (counts are per event: pickup.ts). */
export function slotRemaining(
  store: KitStore,
  slot: { id: string; capacity: number },
  eventId: string,
): number {
  return Math.max(0, slot.capacity - slotTaken(store, eventId, slot.id));
}

/** How a catalog answer states sale windows: the instant and whether the clock is trusted. */
export interface SaleClock {
  now: number;
  trusted: boolean;
}

/**
 * The stored catalog as the API answers it (GET /v1/catalog, the dashboard, the buyer page): live
 * stock, bundle availability, each window's state by the trusted clock, slots with what is left.
 */
export function catalogView(store: KitStore, c: StoredCatalog, clock: SaleClock) {
  const state = (w: StoredCatalog['items'][number]['saleWindow']): { saleState?: SaleState } =>
    w ? { saleState: saleStateAt(w, clock.now, clock.trusted) } : {};
  return {
    version: c.version,
    eventId: c.eventId,
    currency: c.currency,
    source: c.source,
    updatedAt: c.updatedAt,
    items: c.items.map((i) => ({ ...i, stock: readStock(store, i.sku), ...state(i.saleWindow) })),
    bundles: c.bundles.map((b) => ({
      ...b,
      skus: b.components.map((x) => x.sku),
      available: bundleAvailable(store, b),
      ...state(b.saleWindow),
    })),
    pickupSlots: c.pickupSlots.map((s) => ({ ...s, remaining: slotRemaining(store, s, c.eventId) })),
  };
}

// The catalog in LMDB: replaced whole (staff PUT, `popkit catalog load`, or a verified catalog from the
// hub) and read with live stock. Stock rules: a catalog for a new event sets stock to its starting
// figures; a newer version of the same event keeps what was sold and adds the change in starting stock
// (raising a SKU from 50 to 60 adds 10 units, whatever has sold).
import { Value } from '@sinclair/typebox/value';
import { KitError } from '../../core/errors.ts';
import { type KitStore, META, type StoredCatalog } from '../../core/kit-store.ts';
import { CatalogInput, type CatalogInputT } from './schemas.ts';

export const CATALOG_KEY = 'current';

export function validateCatalogInput(input: unknown): CatalogInputT {
  if (!Value.Check(CatalogInput, input)) {
    const first = [...Value.Errors(CatalogInput, input)].slice(0, 5);
    throw new KitError(
      'VALIDATION',
      `invalid catalog: ${first.map((e) => `${e.path || '/'} ${e.message}`).join('; ')}`,
    );
  }
  const seen = new Set<string>();
  for (const item of input.items) {
    if (seen.has(item.sku)) throw new KitError('VALIDATION', `invalid catalog: duplicate sku ${item.sku}`);
    seen.add(item.sku);
  }
  for (const b of input.bundles ?? []) {
    for (const sku of b.skus) {
      if (!seen.has(sku))
        throw new KitError('VALIDATION', `invalid catalog: bundle ${b.id} names unknown sku ${sku}`);
    }
  }
  return input;
}

export interface ReplaceOptions {
  source: 'local' | 'hub';
  /** refuse a catalog whose version is not newer than the stored one for the same event (the hub's rule) */
  requireNewer?: boolean;
}

export async function replaceCatalog(
  store: KitStore,
  raw: unknown,
  opts: ReplaceOptions,
): Promise<StoredCatalog> {
  const input = validateCatalogInput(raw);
  const currency = input.currency ?? input.items[0]?.currency ?? 'USD';
  const next: StoredCatalog = {
    version: input.version,
    eventId: input.eventId,
    currency,
    items: input.items.map(({ stock: _stock, ...item }) => ({
      ...item,
      currency: item.currency ?? currency,
    })),
    bundles: input.bundles ?? [],
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
    for (const item of input.items) {
      const before = sameEvent ? prev?.startStock[item.sku] : undefined;
      const current = store.stock.get(item.sku);
      let stock = item.stock;
      if (before !== undefined && current !== undefined) {
        const sold = Math.max(0, before - current);
        stock = Math.max(0, item.stock - sold);
      }
      store.stock.put(item.sku, stock);
    }
    // SKUs that left the catalog keep no stock, so they cannot be sold
    for (const old of prev?.items ?? []) {
      if (!(old.sku in next.startStock)) store.stock.remove(old.sku);
    }
    store.catalog.put(CATALOG_KEY, next);
    store.meta.put(META.catalogVersion, {
      eventId: next.eventId,
      version: next.version,
      updatedAt: next.updatedAt,
    });
    return { refused: null };
  });
  if (outcome.refused) throw new KitError('CONFLICT', `catalog refused: ${outcome.refused}`);
  return next;
}

export function readStoredCatalog(store: KitStore): StoredCatalog | undefined {
  return store.catalog.get(CATALOG_KEY);
}

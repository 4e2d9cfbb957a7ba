// Replay protection for signed hub catalogs. A signature proves the hub issued a catalog, not that it
// is current: an old one (retained on the broker, or kept by anyone who once saw it) verifies forever.
// So the kit accepts a hub catalog only (1) for the event it is running now and (2) above the highest
// version it ever accepted for that event. The high-water marks outlive event switches: once a kit
// sold event A at v5 and moved to B, no A catalog up to v5 is taken again, even if the kit is made to
// follow A; returning to A takes a new version from the hub (docs/security.md).
import { KitError } from '../errors.ts';
import { type KitStore, META } from './open.ts';

/** The highest hub catalog version this kit accepted for `eventId`, or undefined. */
export function hubCatalogHighWater(store: KitStore, eventId: string): number | undefined {
  const v = store.meta.get(META.hubCatalogHigh + eventId);
  return typeof v === 'number' ? v : undefined;
}

/**
 * Inside the catalog's transaction: refuse (CATALOG_REPLAY) a hub catalog that is not for the active
 * event or not above the event's high-water mark; otherwise raise the mark.
 */
export function admitHubCatalogInTxn(
  store: KitStore,
  catalog: { eventId: string; version: number },
  activeEventId: string,
): void {
  if (catalog.eventId !== activeEventId) {
    throw new KitError(
      'CATALOG_REPLAY',
      `catalog of event ${catalog.eventId} refused: the kit runs event ${activeEventId}`,
      { eventId: catalog.eventId, activeEventId },
    );
  }
  const high = hubCatalogHighWater(store, catalog.eventId);
  if (high !== undefined && catalog.version <= high) {
    throw new KitError(
      'CATALOG_REPLAY',
      `catalog ${catalog.eventId} v${catalog.version} refused: this kit already accepted v${high} of that event`,
      { eventId: catalog.eventId, version: catalog.version, highWater: high },
    );
  }
  void store.meta.put(META.hubCatalogHigh + catalog.eventId, catalog.version);
}

// `popkit report --suggest`: what the report says the next event should do, written in the formats
// that already feed an event: a catalog (core/contracts/catalog.ts CatalogInput, loadable with
// `popkit catalog load`) whose items are the hero SKUs, marked `hero`, each with the suggested drop
// as its sale window; and the figures behind it (suggest.json), which `popkit preflight` reads for
// the top 20 SKUs it checks warm (docs/report.md#suggestions).
import { CATALOG_LIMITS } from '../contracts/catalog.ts';
import { type EventReportT, type SuggestFileT, TOP_SKUS } from '../contracts/report.ts';

/** What the catalog knows of an item (the event's catalog on the kit or at the hub). */
export interface ItemInfo {
  name: string;
  priceCents: number;
  currency?: string | undefined;
  image?: { phone: string; screen: string } | undefined;
  maxPerOrder?: number | undefined;
  scarce?: boolean | undefined;
  /** the starting stock it had at this event (one kit) */
  startStock?: number | undefined;
}

export interface SuggestOptions {
  /** the next event's id (default: this one's with `-next`) */
  nextEventId?: string;
  /** when the next event starts (ISO); default: this one's start a week later */
  nextStart?: string;
  /** how long the suggested drop stays open, seconds (default 15 min) */
  dropLengthS?: number;
  items?: Map<string, ItemInfo>;
}

const NEXT_SUFFIX = '-next';

export function suggestionFile(r: EventReportT, o: SuggestOptions = {}): SuggestFileT {
  const base = r.meta.eventId;
  const nextEventId =
    o.nextEventId ??
    (base.length + NEXT_SUFFIX.length <= 64 ? `${base}${NEXT_SUFFIX}` : base.slice(0, 59) + NEXT_SUFFIX);
  const startMs =
    o.nextStart !== undefined ? Date.parse(o.nextStart) : (r.meta.span.start + 7 * 86_400) * 1000;
  if (!Number.isFinite(startMs)) throw new Error(`nextStart ${o.nextStart} is not a time`);
  const best = r.suggestions.bestDropMinute;
  const heroes = r.suggestions.heroes.slice(0, TOP_SKUS);
  const opens = startMs + (best?.m ?? 0) * 60_000;
  const saleWindow = best
    ? {
        startsAt: new Date(opens).toISOString(),
        endsAt: new Date(opens + (o.dropLengthS ?? 900) * 1000).toISOString(),
      }
    : undefined;
  const items = heroes.map((h) => {
    const info = o.items?.get(h.sku);
    const stock = Math.min(CATALOG_LIMITS.stock, Math.max(h.units, info?.startStock ?? 0));
    return {
      sku: h.sku,
      name: (info?.name ?? h.name).slice(0, CATALOG_LIMITS.nameLength) || h.sku,
      priceCents: info?.priceCents ?? 0,
      ...(info?.currency ? { currency: info.currency } : {}),
      stock,
      hero: true,
      ...(info?.maxPerOrder ? { maxPerOrder: info.maxPerOrder } : {}),
      ...(info?.image ? { image: info.image } : {}),
      ...(info?.scarce ? { scarce: true } : {}),
      ...(saleWindow ? { saleWindow } : {}),
    };
  });
  const catalog = {
    version: 1,
    eventId: nextEventId,
    ...(r.meta.currency ? { currency: r.meta.currency } : {}),
    items,
  };
  return { v: 1, basedOn: base, heroes, bestDropMinute: best, catalog };
}

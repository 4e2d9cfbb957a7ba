// Units sold lately, for the venue screen's ticker (services/checkout/routes/screen.ts): a read of the
// orders newest first, kept here because only core/store/ reads the LMDB sub-databases.
import type { KitStore } from './open.ts';

export interface RecentSales {
  /** units of every line in the accepted orders counted */
  totalUnits: number;
  /** units per SKU (bundles by their id), most sold first, at most `top` */
  skus: Array<{ sku: string; name: string; units: number }>;
  /** the scan stopped at `cap` orders before reaching `since`: the figures are a lower bound */
  partial: boolean;
}

/**
 * Units in accepted orders created at or after `since` (epoch ms). Order ids begin with their creation
 * time, so the reverse key order is newest first and the scan stops at the first older order, or after
 * `cap` orders.
 */
export function salesSince(store: KitStore, since: number, cap = 20_000, top = 20): RecentSales {
  const units = new Map<string, { name: string; units: number }>();
  let total = 0;
  let seen = 0;
  let partial = false;
  for (const { value: o } of store.orders.getRange({ reverse: true })) {
    if (++seen > cap) {
      partial = true;
      break;
    }
    if (Date.parse(o.createdAt) < since) break;
    if (o.status !== 'accepted') continue;
    for (const l of o.lines) {
      const u = units.get(l.sku) ?? { name: l.name, units: 0 };
      u.units += l.qty;
      units.set(l.sku, u);
      total += l.qty;
    }
  }
  const skus = [...units.entries()]
    .map(([sku, u]) => ({ sku, name: u.name, units: u.units }))
    .sort((a, b) => b.units - a.units || a.sku.localeCompare(b.sku))
    .slice(0, top);
  return { totalUnits: total, skus, partial };
}

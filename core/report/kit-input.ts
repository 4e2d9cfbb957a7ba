// The kit's side of the post-event report: its own LMDB (orders, catalog and stock, event state,
// per-second series and markers, the audience aggregate) read through core/store/ into `KitInput`.
// The hub's ledger as this kit knows it is what the hub's acks said: an order the hub acked
// (forwarded, settled or declined) is in the ledger; a pending or rejected one is not.

import type { StockTransferT } from '../contracts/report.ts';
import { DEFAULT_MIN_GROUP } from '../contracts/series.ts';
import { audienceAggregate } from '../store/audience.ts';
import { readAllStock, readStoredCatalog } from '../store/catalog.ts';
import { readEventState } from '../store/event.ts';
import type { KitStore } from '../store/open.ts';
import { allOrders, stockNeeds } from '../store/orders.ts';
import { readMarkers, readSeries } from '../store/series.ts';
import { heldUnits, readSharedStock, type SharedStockRecord } from '../store/shared-stock.ts';
import type { KitInput, OrderFact, ReportInput } from './compute.ts';
import type { ItemInfo } from './suggest.ts';

const AT_HUB = new Set(['forwarded', 'settled', 'declined']);
const sec = (iso: string | null | undefined): number | null => {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
};

export interface KitReportOptions {
  kitId: string;
  now?: number;
  /** smallest audience group reported (POPKIT_AUDIENCE_MIN_GROUP) */
  k?: number;
}

export function kitReportInput(
  store: KitStore,
  eventId: string,
  o: KitReportOptions,
): { input: ReportInput; items: Map<string, ItemInfo> } {
  const now = o.now ?? Math.floor(Date.now() / 1000);
  const facts: OrderFact[] = [];
  const soldKit = new Map<string, number>();
  const soldHub = new Map<string, number>();
  let kitOrders = 0;
  let hubOrders = 0;
  let hubLast: number | null = null;
  let first: number | null = null;
  let last: number | null = null;
  for (const order of allOrders(store)) {
    if (order.eventId !== eventId) continue;
    kitOrders++;
    const t = sec(order.createdAt) ?? now;
    if (first === null || t < first) first = t;
    if (last === null || t > last) last = t;
    const sold =
      order.status !== 'released' && order.syncState !== 'declined' && order.syncState !== 'rejected';
    const units = [...stockNeeds(order.lines)];
    facts.push({ t, cents: order.totalCents, sold, units });
    const atHub = AT_HUB.has(order.syncState);
    if (atHub) {
      hubOrders++;
      const ack = sec(order.settledAt) ?? sec(order.forwardedAt);
      if (ack !== null) hubLast = Math.max(hubLast ?? 0, ack);
    }
    if (!sold) continue;
    for (const [sku, q] of units) {
      soldKit.set(sku, (soldKit.get(sku) ?? 0) + q);
      if (atHub) soldHub.set(sku, (soldHub.get(sku) ?? 0) + q);
    }
  }
  const catalog = readStoredCatalog(store);
  const ours = catalog?.eventId === eventId ? catalog : undefined;
  const names = new Map<string, string>();
  const items = new Map<string, ItemInfo>();
  for (const i of ours?.items ?? []) {
    names.set(i.sku, i.name);
    items.set(i.sku, {
      name: i.name,
      priceCents: i.priceCents,
      currency: i.currency,
      image: i.image,
      maxPerOrder: i.maxPerOrder,
      scarce: i.scarce,
      startStock: ours?.startStock[i.sku],
    });
  }
  for (const b of ours?.bundles ?? []) names.set(b.id, b.name);
  const state = readEventState(store);
  const mine = state.eventId === eventId;
  const start = (mine ? sec(state.startedAt) : null) ?? first;
  const end = (mine && !state.live ? sec(state.stoppedAt) : null) ?? null;
  const from = start ?? now;
  const to = end ?? (mine && state.live ? now : (last ?? now));
  const samples = readSeries(store, from, to);
  const markers = readMarkers(store, from, to);
  const aud = audienceAggregate(store, eventId, { k: o.k ?? DEFAULT_MIN_GROUP, now });
  const audience = aud.segments.length > 0 || aud.suppressed.length > 0 ? aud : null;
  // a shared event (docs/shared-stock.md): the kit's start is what it holds of the event (granted −
  // released, every transfer in and out included), as the hub's report counts it, not the event's figure
  const shared = ours?.sharedStock ? readSharedStock(store, eventId) : undefined;
  const startStock = ours
    ? shared
      ? Object.fromEntries(Object.keys(ours.startStock).map((sku) => [sku, heldUnits(shared, sku)]))
      : { ...ours.startStock }
    : null;
  const kit: KitInput = {
    kitId: o.kitId,
    orders: facts,
    kitOrders,
    soldKit,
    hubOrders,
    hubLastArrival: hubLast,
    soldHub,
    startStock,
    onHand: ours ? readAllStock(store) : null,
    samples,
    markers,
    audience,
  };
  return {
    input: {
      eventId,
      source: 'kit',
      kits: [kit],
      names,
      currency: ours?.currency ?? null,
      start,
      // a kit whose event is stopped knows its end; a live one's report is a snapshot
      end: end ?? (mine && state.live ? null : last),
      now,
      ...(shared ? { transfers: lanTransfers(shared, o.kitId) } : {}),
    },
    items,
  };
}

/**
 * The moves this kit made with the event's other kits over the venue LAN, both ends known. A move the
 * hub made (a `t-` transfer) is in the kit's start but not listed: the kit knows only its own side of
 * it; the hub's report lists every transfer.
 */
function lanTransfers(rec: SharedStockRecord, kitId: string): StockTransferT[] {
  return (rec.lan ?? []).map(([id, dir, peer, sku, requested, released]) => ({
    id,
    sku,
    from: dir === 'in' ? peer : kitId,
    to: dir === 'in' ? kitId : peer,
    requested,
    released,
    via: 'lan' as const,
  }));
}

// The hub's side of the post-event report (GET /v1/events/:eventId/report): every kit of the event
// merged from the ledger (orders, order_lines, order_events), the telemetry tables of migration 11
// (kit_series, kit_markers, kit_audience with each kit's own order count), the event's newest signed
// catalog (starting stock per kit, names) and each kit's newest stock snapshot (on hand). The
// arithmetic is core/report/compute.ts, the same as on a kit.

import type { EventReportT, StockTransferT } from '../../core/contracts/report.ts';
import type { AudienceAggregateT, SeriesMarkerT, SeriesSampleT } from '../../core/contracts/series.ts';
import { audienceAggregate as audienceContract, MARKER_KINDS } from '../../core/contracts/series.ts';
import { computeReport, type KitInput, type OrderFact, type ReportInput } from '../../core/report/compute.ts';
import type { Queryable } from './db.ts';

interface CatalogItemRow {
  sku?: unknown;
  name?: unknown;
  stock?: unknown;
}

/** The event's newest catalog the hub signed: names, starting stock per kit, currency. */
async function eventCatalog(db: Queryable, eventId: string) {
  const res = await db.query<{ signed: { payload?: unknown } }>(
    'SELECT signed FROM catalogs WHERE event_id = $1 ORDER BY version DESC LIMIT 1',
    [eventId],
  );
  const payload = res.rows[0]?.signed.payload;
  if (typeof payload !== 'string') return null;
  // the hub signed this payload itself after validating it (routes/catalogs.ts)
  const cat = (
    JSON.parse(payload) as {
      catalog?: { items?: CatalogItemRow[]; bundles?: CatalogItemRow[]; currency?: unknown };
    }
  ).catalog;
  if (!cat) return null;
  const names = new Map<string, string>();
  const stock: Record<string, number> = {};
  for (const i of cat.items ?? []) {
    if (typeof i.sku !== 'string') continue;
    if (typeof i.name === 'string') names.set(i.sku, i.name);
    if (typeof i.stock === 'number') stock[i.sku] = i.stock;
  }
  for (const b of cat.bundles ?? []) {
    const id = (b as { id?: unknown }).id;
    if (typeof id === 'string' && typeof b.name === 'string') names.set(id, b.name);
  }
  return { names, stock, currency: typeof cat.currency === 'string' ? cat.currency : null };
}

const isMarkerKind = (k: string): k is SeriesMarkerT['kind'] =>
  (MARKER_KINDS as readonly string[]).includes(k);

/** Gather the event's facts from the hub's tables. */
export async function hubReportInput(db: Queryable, eventId: string, now: number): Promise<ReportInput> {
  const [orders, series, markers, audience, catalog] = await Promise.all([
    db.query<{
      kit_id: string;
      created: string;
      total_cents: string | number;
      state: string;
      received: string | number;
      status: string;
      released: boolean;
      confirmed: boolean;
      units: Array<[string, string | number]> | null;
    }>(
      // units per SKU of each order: item and component rows (a bundle row carries only the money)
      `SELECT o.kit_id, o.kit_created_at AS created, o.total_cents, o.state,
         extract(epoch FROM o.received_at)::bigint AS received,
         COALESCE(o.body->>'status', 'accepted') AS status,
         EXISTS (SELECT 1 FROM order_events e WHERE e.kit_id = o.kit_id AND e.order_id = o.order_id AND e.type = 'released') AS released,
         EXISTS (SELECT 1 FROM order_events e WHERE e.kit_id = o.kit_id AND e.order_id = o.order_id AND e.type = 'confirmed') AS confirmed,
         (SELECT json_agg(json_build_array(l.sku, l.qty)) FROM order_lines l
            WHERE l.kit_id = o.kit_id AND l.order_id = o.order_id AND l.kind <> 'bundle') AS units
       FROM orders o WHERE o.event_id = $1`,
      [eventId],
    ),
    db.query<{ kit_id: string; t: string | number; v: SeriesSampleT['v'] }>(
      `SELECT kit_id, extract(epoch FROM t)::bigint AS t, v FROM kit_series WHERE event_id = $1 ORDER BY kit_id, t`,
      [eventId],
    ),
    db.query<{ kit_id: string; t: string | number; kind: string; label: string }>(
      `SELECT kit_id, extract(epoch FROM t)::bigint AS t, kind, label FROM kit_markers WHERE event_id = $1 ORDER BY t`,
      [eventId],
    ),
    db.query<{ kit_id: string; body: unknown; kit_orders: number | null }>(
      'SELECT kit_id, body, kit_orders FROM kit_audience WHERE event_id = $1',
      [eventId],
    ),
    eventCatalog(db, eventId),
  ]);
  const kits = new Map<string, KitInput>();
  const kitOf = (kitId: string): KitInput => {
    let k = kits.get(kitId);
    if (!k) {
      k = {
        kitId,
        orders: [],
        kitOrders: null,
        soldKit: null,
        hubOrders: 0,
        hubLastArrival: null,
        soldHub: new Map(),
        startStock: catalog ? { ...catalog.stock } : null,
        onHand: null,
        samples: [],
        markers: [],
        audience: null,
      };
      kits.set(kitId, k);
    }
    return k;
  };
  for (const r of orders.rows) {
    const k = kitOf(r.kit_id);
    const ms = Date.parse(r.created);
    const t = Number.isFinite(ms) ? Math.floor(ms / 1000) : Number(r.received);
    // held then released, or declined by the gateway: nothing sold; a held order confirmed later sold
    const kitStatus = r.released ? 'released' : r.confirmed ? 'accepted' : r.status;
    const sold = kitStatus !== 'released' && r.state !== 'declined';
    const units: Array<[string, number]> = (r.units ?? []).map(([s, q]) => [s, Number(q)]);
    const fact: OrderFact = { t, cents: Number(r.total_cents), sold, units };
    k.orders.push(fact);
    k.hubOrders++;
    const rcv = Number(r.received);
    if (k.hubLastArrival === null || rcv > k.hubLastArrival) k.hubLastArrival = rcv;
    if (sold) for (const [sku, q] of units) k.soldHub.set(sku, (k.soldHub.get(sku) ?? 0) + q);
  }
  for (const r of series.rows) kitOf(r.kit_id).samples.push({ t: Number(r.t), v: r.v });
  for (const r of markers.rows)
    if (isMarkerKind(r.kind)) kitOf(r.kit_id).markers.push({ t: Number(r.t), kind: r.kind, label: r.label });
  for (const r of audience.rows) {
    const k = kitOf(r.kit_id);
    k.kitOrders = r.kit_orders === null ? null : Number(r.kit_orders);
    // ingest checked it when it arrived; a row that does not fit the contract is left out, not trusted
    if (audienceContract.check(r.body)) k.audience = r.body as AudienceAggregateT;
  }
  // shared stock (docs/shared-stock.md): a kit starts with what it was allocated, not the event's figure
  const moves = await db.query<{
    kind: string;
    move_id: string;
    kit_id: string;
    sku: string;
    qty: number;
    transfer_to: string | null;
    via: 'hub' | 'lan';
    requested: number | null;
  }>(
    `SELECT kind, move_id, kit_id, sku, qty, transfer_to, via, requested FROM stock_moves
     WHERE event_id = $1 ORDER BY created_at, move_id`,
    [eventId],
  );
  let transfers: StockTransferT[] | undefined;
  if (moves.rows.length > 0) {
    const alloc = new Map<string, Record<string, number>>();
    const released = new Map<string, number>();
    for (const m of moves.rows) {
      if (m.kind === 'release') released.set(m.move_id, Number(m.qty));
      if (m.kind === 'release_request') continue;
      const a = alloc.get(m.kit_id) ?? {};
      a[m.sku] =
        (Object.hasOwn(a, m.sku) ? (a[m.sku] ?? 0) : 0) + (m.kind === 'grant' ? 1 : -1) * Number(m.qty);
      alloc.set(m.kit_id, a);
    }
    for (const kitId of alloc.keys()) kitOf(kitId);
    for (const k of kits.values()) k.startStock = { ...(alloc.get(k.kitId) ?? {}) };
    // a hub transfer is its request (answered or not); a LAN one its release (the kits made the request)
    transfers = moves.rows
      .filter((m) => m.transfer_to && (m.via === 'lan' ? m.kind === 'release' : m.kind === 'release_request'))
      .map((m) => ({
        id: m.move_id,
        sku: m.sku,
        from: m.kit_id,
        to: m.transfer_to!,
        requested: Number(m.via === 'lan' ? (m.requested ?? m.qty) : m.qty),
        released: released.get(m.move_id) ?? null,
        via: m.via,
      }));
  }
  if (kits.size > 0) {
    const stock = await db.query<{ kit_id: string; stock: Record<string, unknown> | null }>(
      'SELECT kit_id, stock FROM kits WHERE kit_id = ANY($1::text[])',
      [[...kits.keys()]],
    );
    for (const r of stock.rows) {
      const k = kits.get(r.kit_id);
      if (!k || !r.stock || !catalog) continue;
      // the kit's newest snapshot, for this event's SKUs (a kit on to another event shows that one's)
      const onHand: Record<string, number> = {};
      const soldKit = new Map<string, number>();
      for (const sku of Object.keys(catalog.stock)) {
        const left = r.stock[sku];
        if (typeof left !== 'number') continue;
        onHand[sku] = left;
        // what the kit started with: its allocation when the stock is shared, else the catalog's figure
        const start = transfers ? (k.startStock?.[sku] ?? 0) : (catalog.stock[sku] ?? 0);
        soldKit.set(sku, Math.max(0, start - left));
      }
      k.onHand = onHand;
      k.soldKit = soldKit;
    }
  }
  return {
    eventId,
    source: 'hub',
    kits: [...kits.values()].sort((a, b) => (a.kitId < b.kitId ? -1 : 1)),
    names: catalog?.names ?? new Map(),
    currency: catalog?.currency ?? null,
    now,
    ...(transfers ? { transfers } : {}),
  };
}

export async function hubEventReport(db: Queryable, eventId: string, now: number): Promise<EventReportT> {
  return computeReport(await hubReportInput(db, eventId, now));
}

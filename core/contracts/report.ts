// The post-event report (#12), declared once for the kit (`popkit report`) and the hub
// (`GET /v1/events/:eventId/report`): the same JSON, computed by core/report/ from the same inputs
// (a kit's LMDB, or the hub's ledger and telemetry tables), then rendered as HTML or PDF.
// docs/report.md says how a creator reads it; docs/contracts.md#post-event-report lists the fields.
import { type Static, Type } from '@sinclair/typebox';
import { contract, ID_LEVEL, IdLevel, Nullable, Sku } from './common.ts';
import { UnixSecond } from './series.ts';

/** A report is promised within this long after the event's end, however late kits sync. */
export const REPORT_READY_WITHIN_S = 24 * 3600;
/** Seconds after a drop opens that count as its first rush. */
export const FIRST_RUSH_S = 90;
/** How many SKUs pre-flight checks warm, and `--suggest` names at most. */
export const TOP_SKUS = 20;

export const REPORT_FORMATS = ['json', 'html', 'pdf'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/** `GET /v1/events/:eventId/report?format=` (default json). */
export const ReportParams = Type.Object(
  { eventId: Type.String({ pattern: ID_LEVEL }) },
  { additionalProperties: false },
);
export const ReportQuery = Type.Object(
  { format: Type.Optional(Type.Union(REPORT_FORMATS.map((f) => Type.Literal(f)))) },
  { additionalProperties: false },
);

/** Why part of the report is incomplete; `kitId` when it concerns one kit. */
export const MISSING_KINDS = [
  'no_series', // a kit sent no per-second samples for the event
  'series_ends_early', // a kit's samples stop before the event's end (it has not synced the rest yet)
  'series_gap', // a kit's samples leave out more than a tenth of the event
  'no_audience', // no audience aggregate (viewer tracking off, or not synced yet)
  'ledger_behind', // the hub holds fewer of a kit's orders than the kit says it took
  'kit_count_unknown', // the kit never said how many orders it holds (cannot reconcile)
  'no_stock_snapshot', // no stock figure from a kit (on hand unknown)
  'no_catalog', // no catalog for the event (no starting stock)
  'event_open', // the event has not ended: the report is a snapshot
] as const;
export type MissingKind = (typeof MISSING_KINDS)[number];

export const Missing = Type.Object({
  kind: Type.Union(MISSING_KINDS.map((k) => Type.Literal(k))),
  kitId: Type.Optional(IdLevel),
  detail: Type.String(),
});
export type MissingT = Static<typeof Missing>;

const Num = Type.Number();
const NNum = Nullable(Type.Number());

export const MinuteBucket = Type.Object({
  /** minutes since the event's start */
  m: Type.Integer({ minimum: 0 }),
  t: UnixSecond,
  /** mean viewers watching during the minute, all kits added */
  viewers: NNum,
  orders: Type.Integer({ minimum: 0 }),
  revenueCents: Type.Integer({ minimum: 0 }),
  reservationsMade: Type.Integer({ minimum: 0 }),
  reservationsConverted: Type.Integer({ minimum: 0 }),
  /** mean of the seconds' checkout p95 (seconds); null when no second has one */
  latencyP95: NNum,
  streamLevel: NNum,
  streamLatency: NNum,
  /** orders per viewer in the minute (null without viewers) */
  conversion: NNum,
});
export type MinuteBucketT = Static<typeof MinuteBucket>;

export const Correlation = Type.Object({
  x: Type.String(),
  y: Type.String(),
  /** minutes where both figures exist */
  n: Type.Integer({ minimum: 0 }),
  /** Pearson's r, null when n < 3 or a side does not vary */
  r: NNum,
  strength: Type.Union(['none', 'weak', 'moderate', 'strong', 'unknown'].map((s) => Type.Literal(s))),
  reading: Type.String(),
});
export type CorrelationT = Static<typeof Correlation>;

export const SkuInventory = Type.Object({
  sku: Type.String(),
  name: Type.String(),
  /** starting stock, every kit of the event added */
  start: Nullable(Type.Integer()),
  /** units sold as the kits count them (orders not released) */
  soldKit: Nullable(Type.Integer()),
  /** units sold as the hub's ledger holds them */
  soldHub: Type.Integer(),
  /** units left on the kits (their stock) */
  onHand: Nullable(Type.Integer()),
  /** soldKit − soldHub: units sold on a kit that the ledger does not hold yet */
  diff: Nullable(Type.Integer()),
});
export type SkuInventoryT = Static<typeof SkuInventory>;

/**
 * A transfer of shared stock between two kits of the event (docs/shared-stock.md): asked of `from`,
 * `released` units given (what `from` still had), granted to `to`; null `released`: not answered yet.
 * `via`: `hub` the hub asked `from` (POST …/transfers, a rebalance), `lan` the kits moved the units
 * between themselves over the venue LAN (`to` asked `from`), reported to the hub afterwards.
 */
export const StockTransfer = Type.Object({
  id: Type.String(),
  sku: Type.String(),
  from: IdLevel,
  to: IdLevel,
  requested: Type.Integer({ minimum: 0 }),
  released: Nullable(Type.Integer({ minimum: 0 })),
  via: Type.Union([Type.Literal('hub'), Type.Literal('lan')]),
});
export type StockTransferT = Static<typeof StockTransfer>;

export const KitReconciliation = Type.Object({
  kitId: IdLevel,
  /** orders the kit says it holds for the event (null: it never said) */
  kitOrders: Nullable(Type.Integer()),
  hubOrders: Type.Integer(),
  /** kitOrders − hubOrders */
  missingAtHub: Nullable(Type.Integer()),
  /** when the last of its orders reached the hub */
  lastArrival: Nullable(UnixSecond),
  /** the kit's last per-second sample */
  seriesUntil: Nullable(UnixSecond),
  revenueCents: Type.Integer(),
  orders: Type.Integer(),
  viewers: Nullable(Type.Integer()),
  /** orders per viewer of this kit */
  conversion: NNum,
  /** share of the kit's viewers still watching after 5, 15 and 30 minutes */
  retention5: NNum,
  retention15: NNum,
  retention30: NNum,
});
export type KitReconciliationT = Static<typeof KitReconciliation>;

export const RetentionCurve = Type.Object({
  segment: Type.String(),
  viewers: Type.Integer(),
  /** kits whose aggregate had this segment (a kit under k for it leaves it out) */
  kits: Type.Integer(),
  /** counts[m]: how many were still watching m minutes after they joined, kits added */
  counts: Type.Array(Type.Integer()),
  /** counts[m] / counts[0] */
  share: Type.Array(Num),
  medianMinutes: NNum,
});
export type RetentionCurveT = Static<typeof RetentionCurve>;

export const DropRush = Type.Object({
  t: UnixSecond,
  m: Type.Integer(),
  label: Type.String(),
  viewers: NNum,
  /** units and orders in the first 90 s after it opened */
  units: Type.Integer(),
  orders: Type.Integer(),
});
export type DropRushT = Static<typeof DropRush>;

export const HeroSku = Type.Object({
  sku: Sku,
  name: Type.String(),
  units: Type.Integer(),
  /** units in the first 90 s of the drops */
  rushUnits: Type.Integer(),
});
export type HeroSkuT = Static<typeof HeroSku>;

export const Suggestions = Type.Object({
  /** top SKUs (at most 20) by units sold, then first-90-second units: warm these before the next event */
  heroes: Type.Array(HeroSku),
  bestDropMinute: Nullable(
    Type.Object({
      m: Type.Integer(),
      viewers: NNum,
      rushUnits: Nullable(Type.Integer()),
      basis: Type.Union([Type.Literal('best-drop'), Type.Literal('peak-viewers')]),
      reading: Type.String(),
    }),
  ),
  peakViewersMinute: Nullable(Type.Object({ m: Type.Integer(), viewers: Num })),
});
export type SuggestionsT = Static<typeof Suggestions>;

export const EventReport = Type.Object({
  v: Type.Literal(1),
  meta: Type.Object({
    eventId: IdLevel,
    /** 'kit': one kit's own store; 'hub': every kit of the event merged */
    source: Type.Union([Type.Literal('kit'), Type.Literal('hub')]),
    kits: Type.Array(IdLevel),
    generatedAt: Type.String(),
    span: Type.Object({ start: UnixSecond, end: UnixSecond, minutes: Type.Integer() }),
    /** whether the event was seen to stop (an event_stop marker or the kit's event state) */
    ended: Type.Boolean(),
    /** span.end + 24 h: the report's promise */
    readyBy: Type.String(),
    complete: Type.Boolean(),
    missing: Type.Array(Missing),
    currency: Nullable(Type.String()),
  }),
  totals: Type.Object({
    orders: Type.Integer(),
    revenueCents: Type.Integer(),
    viewers: Nullable(Type.Integer()),
    ordersPerViewer: NNum,
    reservationsMade: Type.Integer(),
    reservationsConverted: Type.Integer(),
    reservationConversion: NNum,
  }),
  latency: Type.Object({
    minutes: Type.Array(MinuteBucket),
    correlations: Type.Array(Correlation),
  }),
  inventory: Type.Object({
    skus: Type.Array(SkuInventory),
    kits: Type.Array(KitReconciliation),
    /** seconds from the event's end until the ledger held every kit's orders (null: not yet, or unknown) */
    matchedAfterS: NNum,
    matched: Type.Boolean(),
    /**
     * shared stock: `start` per SKU is then the units allocated to the kits (granted − released, each
     * kit's start its own allocation), and every transfer between kits is listed; absent: not shared
     */
    transfers: Type.Optional(Type.Array(StockTransfer)),
  }),
  retention: Type.Object({ segments: Type.Array(RetentionCurve), suppressed: Type.Array(Type.String()) }),
  drops: Type.Array(DropRush),
  suggestions: Suggestions,
});
export type EventReportT = Static<typeof EventReport>;
export const eventReport = contract(EventReport);

/**
 * What `popkit report --suggest` writes (suggest.json): the figures behind the suggestion and a
 * catalog (core/contracts/catalog.ts CatalogInput) for the next event: the hero SKUs first, marked
 * `hero`, with the suggested drop's sale window. `popkit preflight` reads `heroes` for its top 20.
 */
export const SuggestFile = Type.Object({
  v: Type.Literal(1),
  basedOn: IdLevel,
  heroes: Type.Array(HeroSku, { maxItems: TOP_SKUS }),
  bestDropMinute: Suggestions.properties.bestDropMinute,
  catalog: Type.Unknown(),
});
export type SuggestFileT = Static<typeof SuggestFile>;
export const suggestFile = contract(SuggestFile);

// ---- the creator's page at the hub: every event of a creator, per kit ----

/** `GET /v1/creators/:creatorId/events` (admin), which the page `GET /creators/:creatorId` shows. */
export const CreatorParams = Type.Object(
  { creatorId: Type.String({ pattern: ID_LEVEL }) },
  { additionalProperties: false },
);

export const CreatorKitRow = Type.Object({
  kitId: IdLevel,
  orders: Type.Integer(),
  revenueCents: Type.Integer(),
  viewers: Nullable(Type.Integer()),
  ordersPerViewer: NNum,
  retention5: NNum,
  retention15: NNum,
  retention30: NNum,
});
export type CreatorKitRowT = Static<typeof CreatorKitRow>;

export const CreatorEvents = Type.Object({
  creatorId: IdLevel,
  events: Type.Array(
    Type.Object({
      eventId: IdLevel,
      /** first and last order as the kits took them (null: no order) */
      from: Nullable(Type.String()),
      to: Nullable(Type.String()),
      orders: Type.Integer(),
      revenueCents: Type.Integer(),
      currency: Nullable(Type.String()),
      viewers: Nullable(Type.Integer()),
      ordersPerViewer: NNum,
      kits: Type.Array(CreatorKitRow),
    }),
  ),
});
export type CreatorEventsT = Static<typeof CreatorEvents>;

// The live signals of an event (#12), declared once for every end that touches them: checkout records
// one sample per second into LMDB and serves them (`GET /v1/series`), the dashboard plots them, sync
// batches them to the hub on the telemetry lane (sealed, see `SealedEnvelope`), the hub stores and
// serves them across kits and events, and the post-event report reads them. Metric names and units are
// those of checkout's `/metrics` (Prometheus conventions), so a kit's figures and the hub's align.
//
// A sample of a `_total` metric is that counter's increase during the second (what Prometheus'
// `increase(m[1s])` would say), so a range sums, kits merge by adding, and a process restart loses at
// most the second it was in. Every other metric is a gauge: its value at the end of the second.
// A metric the kit could not read in a second (media not running, no power monitor) is absent from
// that sample, not zero.
import { type Static, Type } from '@sinclair/typebox';
import { contract, IdLevel, type IsoTime } from './common.ts';

export const SERIES_METRICS = {
  // audience (services/checkout/audience: viewers of /live, keyed-hash ids)
  popkit_viewers: { kind: 'gauge', unit: 'viewers', help: 'viewers watching the live stream now' },
  popkit_viewer_joins_total: { kind: 'counter', unit: 'viewers', help: 'viewers who started watching' },
  popkit_viewer_leaves_total: { kind: 'counter', unit: 'viewers', help: 'viewers who stopped watching' },
  popkit_watch_seconds_total: {
    kind: 'counter',
    unit: 'seconds',
    help: 'seconds of stream watched, all viewers',
  },
  // sales
  popkit_orders_total: { kind: 'counter', unit: 'orders', help: 'orders accepted (held ones included)' },
  popkit_revenue_cents_total: { kind: 'counter', unit: 'cents', help: 'total of the orders accepted' },
  popkit_order_duration_seconds_p50: {
    kind: 'gauge',
    unit: 'seconds',
    help: 'checkout latency, median of the second',
  },
  popkit_order_duration_seconds_p95: {
    kind: 'gauge',
    unit: 'seconds',
    help: 'checkout latency, 95th percentile of the second',
  },
  popkit_reservations_made_total: { kind: 'counter', unit: 'reservations', help: 'cart holds taken' },
  popkit_reservations_converted_total: { kind: 'counter', unit: 'reservations', help: 'cart holds bought' },
  popkit_reservations_abandoned_total: {
    kind: 'counter',
    unit: 'reservations',
    help: 'cart holds expired or released',
  },
  // stream (run/media.json)
  popkit_stream_level: { kind: 'gauge', unit: 'index', help: 'ladder step the stream runs at (0 = top)' },
  popkit_stream_bitrate_bits_per_second: { kind: 'gauge', unit: 'bits/s', help: 'encoder target bitrate' },
  popkit_stream_latency_seconds: {
    kind: 'gauge',
    unit: 'seconds',
    help: 'newest part behind the wall clock',
  },
  // power and health (run/kitd.json)
  popkit_battery_soc_ratio: { kind: 'gauge', unit: 'ratio', help: 'battery state of charge, 0 to 1' },
  popkit_solar_watts: { kind: 'gauge', unit: 'watts', help: 'solar input' },
  popkit_load_watts: { kind: 'gauge', unit: 'watts', help: 'kit consumption' },
  popkit_health_score_ratio: { kind: 'gauge', unit: 'ratio', help: 'health score, 0 to 1' },
} as const;
export type MetricName = keyof typeof SERIES_METRICS;
export const METRIC_NAMES = Object.keys(SERIES_METRICS) as MetricName[];

/** Any finite number a gauge or counter increase can take (counters are never negative). */
const MetricValue = Type.Number({ minimum: -1e12, maximum: 1e12 });

/** The values of one second: only known metrics, each at most once (no other key is accepted). */
const optionalValue = Type.Optional(MetricValue);
export const SeriesValues = Type.Object(
  Object.fromEntries(METRIC_NAMES.map((m) => [m, optionalValue])) as Record<MetricName, typeof optionalValue>,
  { additionalProperties: false },
);
export type SeriesValuesT = Partial<Record<MetricName, number>>;

/** Unix seconds: 2000-01-01 to 2100-01-01 (a kit whose clock says 1970 is not trusted for series). */
export const UnixSecond = Type.Integer({ minimum: 946_684_800, maximum: 4_102_444_800 });

export const SeriesSample = Type.Object({ t: UnixSecond, v: SeriesValues }, { additionalProperties: false });
export type SeriesSampleT = { t: number; v: SeriesValuesT };

/** Something that happened at an instant, drawn as a marker on the time axis. */
export const MARKER_KINDS = ['event_start', 'event_stop', 'drop_open', 'drop_close', 'stream_level'] as const;
export type MarkerKind = (typeof MARKER_KINDS)[number];
export const SeriesMarker = Type.Object(
  {
    t: UnixSecond,
    kind: Type.Union(MARKER_KINDS.map((k) => Type.Literal(k))),
    /** what it is about: a SKU or bundle id for drops, the ladder step for stream_level */
    label: Type.String({ maxLength: 80, pattern: '^[A-Za-z0-9 _.:-]*$' }),
  },
  { additionalProperties: false },
);
export type SeriesMarkerT = Static<typeof SeriesMarker>;

/** `GET /v1/series?from=&to=&metrics=a,b` (seconds; default: the last 15 minutes, every metric). */
export const SeriesQuery = Type.Object(
  {
    from: Type.Optional(Type.String({ pattern: '^[0-9]{1,10}$' })),
    to: Type.Optional(Type.String({ pattern: '^[0-9]{1,10}$' })),
    metrics: Type.Optional(Type.String({ maxLength: 1000, pattern: '^[a-z0-9_]+(,[a-z0-9_]+)*$' })),
  },
  { additionalProperties: false },
);
/** The most seconds one request may span (6 h): a report reads longer spans page by page. */
export const SERIES_MAX_SPAN_S = 6 * 3600;

export const SeriesResponse = Type.Object({
  from: UnixSecond,
  to: UnixSecond,
  /** the event the span belongs to, when one is live or was the last one */
  eventId: Type.Union([IdLevel, Type.Null()]),
  samples: Type.Array(SeriesSample),
  markers: Type.Array(SeriesMarker),
});
export type SeriesResponseT = Static<typeof SeriesResponse>;

// ---- audience aggregates: the only audience data that leaves a kit ----

/**
 * Ephemeral segments a viewer falls into for one event: `in_venue` (client address on the venue LAN)
 * or `remote`, `watched_5m` (at least five minutes watched), `new` or `returning` (a consenting buyer
 * seen at an earlier event), `loyalty_<tier>` (a consenting buyer who used a pass of that tier).
 */
export const FIXED_SEGMENTS = ['all', 'in_venue', 'remote', 'watched_5m', 'new', 'returning'] as const;
/** A fixed segment, or `loyalty_<tier>` (the tier as the loyalty pass names it, core/contracts/loyalty.ts). */
export const SEGMENT_PATTERN =
  '^(all|in_venue|remote|watched_5m|new|returning|loyalty_[A-Za-z0-9_.-]{1,24})$';
export const Segment = Type.String({ pattern: SEGMENT_PATTERN });
export type SegmentName = string;
/** At most this many segments per aggregate (the fixed ones and a few loyalty tiers). */
export const MAX_SEGMENTS = 24;
/** Aggregates over fewer people than this never leave the kit (POPKIT_AUDIENCE_MIN_GROUP). */
export const DEFAULT_MIN_GROUP = 5;
/** Retention curve resolution: one point per minute since a viewer joined, at most 6 hours. */
export const RETENTION_MAX_MINUTES = 360;

export const SegmentAggregate = Type.Object(
  {
    segment: Segment,
    /** distinct viewers in the segment (≥ k, or the segment is not sent) */
    viewers: Type.Integer({ minimum: 0, maximum: 10_000_000 }),
    watchSeconds: Type.Integer({ minimum: 0, maximum: 1e12 }),
    /** retention[m]: how many of them were still watching m minutes after they joined */
    retention: Type.Array(Type.Integer({ minimum: 0, maximum: 10_000_000 }), {
      maxItems: RETENTION_MAX_MINUTES + 1,
    }),
    /** consenting buyers among them whose orders are linked, and those orders' count */
    linkedBuyers: Type.Integer({ minimum: 0, maximum: 10_000_000 }),
    linkedOrders: Type.Integer({ minimum: 0, maximum: 10_000_000 }),
  },
  { additionalProperties: false },
);
export type SegmentAggregateT = Static<typeof SegmentAggregate>;

export const AudienceAggregate = Type.Object(
  {
    eventId: IdLevel,
    /** the smallest group sent (segments under it are listed in `suppressed`, without figures) */
    k: Type.Integer({ minimum: 2, maximum: 1000 }),
    at: UnixSecond,
    segments: Type.Array(SegmentAggregate, { maxItems: MAX_SEGMENTS }),
    suppressed: Type.Array(Segment, { maxItems: MAX_SEGMENTS }),
  },
  { additionalProperties: false },
);
export type AudienceAggregateT = Static<typeof AudienceAggregate>;

// ---- what sync sends the hub on the telemetry lane, sealed ----

/** The plaintext of one sealed telemetry entry: a run of seconds of one kit, and the audience so far. */
export const SeriesBatch = Type.Object(
  {
    v: Type.Literal(1),
    kitId: IdLevel,
    eventId: IdLevel,
    samples: Type.Array(SeriesSample, { maxItems: 3600 }),
    markers: Type.Array(SeriesMarker, { maxItems: 1000 }),
    audience: Type.Optional(AudienceAggregate),
    /** how many orders this kit holds for the event when the batch was made (reconciliation) */
    kitOrders: Type.Optional(Type.Integer({ minimum: 0, maximum: 1e9 })),
  },
  { additionalProperties: false },
);
export type SeriesBatchT = Static<typeof SeriesBatch>;

/**
 * A sealed box to the hub's X25519 key: only the hub can open it; the broker and anyone on the path
 * see ciphertext. The hub's public key reaches kits signed with its catalog key. `kid` names the hub
 * key (sha256 of its raw public key, hex, first 16), so a rotated key is recognised.
 */
export const SealedEnvelope = Type.Object(
  {
    sealed: Type.Literal(1),
    alg: Type.String({ maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$' }),
    kid: Type.String({ pattern: '^[0-9a-f]{16}$' }),
    /** base64url fields */
    enc: Type.String({ maxLength: 200, pattern: '^[A-Za-z0-9_-]*$' }),
    ct: Type.String({ maxLength: 2_000_000, pattern: '^[A-Za-z0-9_-]*$' }),
  },
  { additionalProperties: false },
);
export type SealedEnvelopeT = Static<typeof SealedEnvelope>;

export const seriesValues = contract(SeriesValues);
export const seriesSample = contract(SeriesSample);
export const seriesQuery = contract(SeriesQuery);
export const seriesBatch = contract(SeriesBatch);
export const sealedEnvelope = contract(SealedEnvelope);
export const audienceAggregate = contract(AudienceAggregate);

/** ISO time for a series second (for logs and reports). */
export const isoOfSecond = (t: number): Static<typeof IsoTime> => new Date(t * 1000).toISOString();

// How one second of several kits becomes one second of the event, and how seconds become a minute
// (#12, the hub's cross-kit feed, services/hub/series.ts). One rule per metric, typed exhaustively over
// core/contracts/series.ts: a metric added there does not compile until it has its rules here.
//
// Across kits: counters add (each kit's increase is its own orders, joins, seconds watched); viewers add
// (a kit's viewers watch its own stream); bitrate and power in watts add (what the fleet uploads and
// draws); latency and the stream's ladder step take the worst kit (max: the slowest checkout, the
// stream furthest down the ladder, the most behind); battery and health take the weakest kit (min).
// The per-kit series are served beside the merged one, for the figures a merge hides.
//
// Within a minute (rollups): counters add; every gauge takes its extreme in its rule's direction (the
// peak of viewers or latency, the low of battery or health).
import { type MetricName, SERIES_METRICS } from './contracts/series.ts';

export type MergeRule = 'sum' | 'max' | 'min';

export const MERGE_ACROSS_KITS = {
  popkit_viewers: 'sum',
  popkit_viewer_joins_total: 'sum',
  popkit_viewer_leaves_total: 'sum',
  popkit_watch_seconds_total: 'sum',
  popkit_orders_total: 'sum',
  popkit_revenue_cents_total: 'sum',
  popkit_order_duration_seconds_p50: 'max',
  popkit_order_duration_seconds_p95: 'max',
  popkit_reservations_made_total: 'sum',
  popkit_reservations_converted_total: 'sum',
  popkit_reservations_abandoned_total: 'sum',
  popkit_stream_level: 'max',
  popkit_stream_bitrate_bits_per_second: 'sum',
  popkit_stream_latency_seconds: 'max',
  popkit_battery_soc_ratio: 'min',
  popkit_solar_watts: 'sum',
  popkit_load_watts: 'sum',
  popkit_health_score_ratio: 'min',
} as const satisfies Record<MetricName, MergeRule>;

const known = (m: string): m is MetricName => Object.hasOwn(MERGE_ACROSS_KITS, m);

/** The cross-kit rule of a metric name, or undefined for a name that is not a metric. */
export function mergeRuleOf(m: string): MergeRule | undefined {
  return known(m) ? MERGE_ACROSS_KITS[m] : undefined;
}

/** The within-a-minute rule: counters add, gauges keep their extreme (min for a `min` gauge, else max). */
export function rollupOf(m: string): MergeRule | undefined {
  if (!known(m)) return undefined;
  if (SERIES_METRICS[m].kind === 'counter') return 'sum';
  return MERGE_ACROSS_KITS[m] === 'min' ? 'min' : 'max';
}

// The live signals of checkout (#12), read by two consumers that must agree: `/metrics` at scrape time
// and the per-second series recorder (recorder.ts). Counters are kept in process (orders and revenue,
// bumped by the order route) or read where they are counted (reservations in LMDB, the viewer tracker
// in process); gauges come from the run-status files of media and kitd, read at most once a second.
// A value that cannot be read (media not running, no power monitor, no viewer tracker) is undefined —
// absent from a sample and from /metrics — never 0.
import { readRunStatus, statusAgeMs } from '../../../core/contracts/run-status.ts';
import type { MetricName } from '../../../core/contracts/series.ts';
import type { ViewerCounts } from '../../../core/store/audience.ts';

/** The counters of core/contracts/series.ts as running totals (the recorder samples their increase). */
export const COUNTER_METRICS = [
  'popkit_viewer_joins_total',
  'popkit_viewer_leaves_total',
  'popkit_watch_seconds_total',
  'popkit_orders_total',
  'popkit_revenue_cents_total',
  'popkit_reservations_made_total',
  'popkit_reservations_converted_total',
  'popkit_reservations_abandoned_total',
] as const satisfies readonly MetricName[];
export type CounterMetric = (typeof COUNTER_METRICS)[number];

/** The gauges read from other processes' files or the tracker (latency percentiles are the recorder's). */
export const GAUGE_METRICS = [
  'popkit_viewers',
  'popkit_stream_level',
  'popkit_stream_bitrate_bits_per_second',
  'popkit_stream_latency_seconds',
  'popkit_battery_soc_ratio',
  'popkit_solar_watts',
  'popkit_load_watts',
  'popkit_health_score_ratio',
] as const satisfies readonly MetricName[];
export type GaugeMetric = (typeof GAUGE_METRICS)[number];

export type Totals = Partial<Record<CounterMetric, number>>;
export type Gauges = Partial<Record<GaugeMetric, number>>;

/** The reservation counters of the current event as core/store/reservations.ts keeps them. */
export interface ReservationCountsSource {
  counters(): {
    eventId: string | null;
    created: number;
    converted: number;
    expired: number;
    released: number;
  };
}

export interface LiveSignalsOptions {
  dataDir: string;
  viewers?: ViewerCounts | undefined;
  reservations?: ReservationCountsSource | undefined;
  /** a run-status file older than this is a process that stopped: its values are absent (ms) */
  staleMs?: number;
  /** ms since the epoch */
  now?: () => number;
}

/** Latencies kept per second at most (a reservoir beyond: a drop's busiest second stays cheap to sort). */
export const LATENCY_RESERVOIR = 4096;

export class LiveSignals {
  private orders = 0;
  private revenueCents = 0;
  private latencies: number[] = [];
  private latencySeen = 0;
  /** only a recorder takes the latencies; without one nothing is kept */
  collectLatency = false;
  private files: { at: number; gauges: Gauges } | undefined;

  constructor(private readonly opts: LiveSignalsOptions) {}

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }

  get hasViewers(): boolean {
    return this.opts.viewers !== undefined;
  }

  get hasReservations(): boolean {
    return this.opts.reservations !== undefined;
  }

  /** An order accepted (not a replay): the hot path, two additions. */
  order(totalCents: number): void {
    this.orders++;
    this.revenueCents += totalCents;
  }

  /** An accepted answer's latency (s), as popkit_order_duration_seconds{outcome="accepted"} sees it. */
  latency(seconds: number): void {
    if (!this.collectLatency) return;
    this.latencySeen++;
    if (this.latencies.length < LATENCY_RESERVOIR) this.latencies.push(seconds);
    else {
      const i = Math.floor(Math.random() * this.latencySeen);
      if (i < LATENCY_RESERVOIR) this.latencies[i] = seconds;
    }
  }

  /** The latencies since the last call (the recorder's second), emptied. */
  takeLatencies(): number[] {
    const out = this.latencies;
    this.latencies = [];
    this.latencySeen = 0;
    return out;
  }

  /** Running totals: in-process ones since start, reservations of the current event from LMDB. */
  totals(): { totals: Totals; eventId: string | null } {
    const t: Totals = { popkit_orders_total: this.orders, popkit_revenue_cents_total: this.revenueCents };
    const v = this.opts.viewers;
    if (v) {
      const x = v.totals();
      t.popkit_viewer_joins_total = x.joins;
      t.popkit_viewer_leaves_total = x.leaves;
      t.popkit_watch_seconds_total = x.watchSeconds;
    }
    let eventId: string | null = null;
    const r = this.opts.reservations;
    if (r) {
      const c = r.counters();
      eventId = c.eventId;
      t.popkit_reservations_made_total = c.created;
      t.popkit_reservations_converted_total = c.converted;
      t.popkit_reservations_abandoned_total = c.expired + c.released;
    }
    return { totals: t, eventId };
  }

  /** The gauges now: the tracker's viewers, and media's and kitd's files read at most once a second. */
  gauges(): Gauges {
    const now = this.now();
    if (!this.files || now - this.files.at >= 1000 || now < this.files.at)
      this.files = { at: now, gauges: this.readFiles(now) };
    const g: Gauges = { ...this.files.gauges };
    if (this.opts.viewers) g.popkit_viewers = this.opts.viewers.current();
    return g;
  }

  private readFiles(now: number): Gauges {
    const g: Gauges = {};
    const staleMs = this.opts.staleMs ?? 15_000;
    const media = readRunStatus(this.opts.dataDir, 'media');
    if (media && statusAgeMs(media, now) <= staleMs && media.state !== 'unavailable') {
      g.popkit_stream_level = media.ladderStep;
      g.popkit_stream_bitrate_bits_per_second = Math.round(media.bitrateKbps * 1000);
      if (media.newestSegmentAgeMs !== null)
        g.popkit_stream_latency_seconds = media.newestSegmentAgeMs / 1000;
    }
    const kitd = readRunStatus(this.opts.dataDir, 'kitd');
    if (kitd && statusAgeMs(kitd, now) <= staleMs) {
      const fresh = kitd.power.filter((r) => !r.stale);
      const soc = fresh.find((r) => typeof r.socPct === 'number')?.socPct;
      if (soc !== undefined) g.popkit_battery_soc_ratio = clamp01(soc / 100);
      const sum = (k: 'solarW' | 'loadW') => {
        const xs = fresh.map((r) => r[k]).filter((x): x is number => typeof x === 'number');
        return xs.length ? xs.reduce((a, b) => a + b, 0) : undefined;
      };
      const solar = sum('solarW');
      if (solar !== undefined) g.popkit_solar_watts = solar;
      const load = sum('loadW');
      if (load !== undefined) g.popkit_load_watts = load;
      if (kitd.health) g.popkit_health_score_ratio = clamp01(kitd.health.score / 100);
    }
    return g;
  }
}

const clamp01 = (x: number) => Math.min(1, Math.max(0, x));

/** Nearest-rank percentile of `sorted` (ascending), `p` in (0, 1]. */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i];
}

// Prometheus metrics of the checkout process. Backlog and store size are read at scrape time from
// LMDB (another process, sync, changes them), so nothing polls in between. The live series' metrics
// (core/contracts/series.ts SERIES_METRICS) are exposed under the same names and units, read from the
// same live signals the series recorder samples (series/signals.ts), so /metrics and GET /v1/series
// agree; a value that cannot be read (no media, no power monitor, no viewer tracker) is a metric
// family without a sample, not 0. The series' popkit_order_duration_seconds_p50/_p95 are not metrics
// of their own here: they are the per-second summary of the popkit_order_duration_seconds histogram
// (outcome="accepted"), which /metrics exposes whole.
import fs from 'node:fs';
import {
  Counter,
  Gauge,
  Histogram,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from 'prom-client';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { SERIES_METRICS } from '../../core/contracts/series.ts';
import { type KitStore, outboxCounts } from '../../core/store/index.ts';
import type { StoredOrder } from '../../core/store/open.ts';
import { COUNTER_METRICS, GAUGE_METRICS, LiveSignals } from './series/signals.ts';

export interface CheckoutMetrics {
  registry: Registry;
  orders: Counter<'payment'>;
  rejections: Counter<'code'>;
  latency: Histogram<'outcome'>;
  revenue: Counter<'payment'>;
  /** the live signals /metrics and the series recorder read */
  live: LiveSignals;
  /** an order answered 201/200 (`replayed`: 200): counters, revenue, latency, in one place */
  accepted(order: StoredOrder, replayed: boolean, seconds: number): void;
}

/**
 * A series metric read at scrape time from the live signals: one unlabelled sample, or none when the
 * value cannot be read (prom-client's own unlabelled metrics would say 0).
 */
class SignalMetric extends Gauge {
  constructor(
    private readonly family: { name: string; help: string; type: 'gauge' | 'counter' },
    private readonly read: () => number | undefined,
    registry: Registry,
  ) {
    super({ name: family.name, help: family.help, registers: [] });
    registry.registerMetric(this);
  }

  override async get(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    const v = this.read();
    // prom-client's registry reads name, help, type and values (its typings also ask for `collect`)
    return {
      collect: () => undefined,
      name: this.family.name,
      help: this.family.help,
      type: this.family.type as never,
      aggregator: 'sum',
      values: v === undefined || !Number.isFinite(v) ? [] : [{ value: v, labels: {} }],
    };
  }
}

export function createMetrics(store: KitStore, dataDir: string, live?: LiveSignals): CheckoutMetrics {
  const signals = live ?? new LiveSignals({ dataDir });
  const registry = new Registry();
  const orders = new Counter({
    name: 'popkit_orders_total',
    help: 'Orders accepted (durable), by payment method',
    labelNames: ['payment'] as const,
    registers: [registry],
  });
  const rejections = new Counter({
    name: 'popkit_order_rejections_total',
    help: 'Order requests refused, by error code',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'popkit_order_duration_seconds',
    help: 'Time from request to answer for POST /v1/orders, commit (fsync) included',
    labelNames: ['outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  new Gauge({
    name: 'popkit_lmdb_size_bytes',
    help: 'Size of the LMDB data file',
    registers: [registry],
    collect() {
      try {
        this.set(fs.statSync(store.file).size);
      } catch {
        this.set(0);
      }
    },
  });
  new Gauge({
    name: 'popkit_sync_backlog_entries',
    help: 'Outbox entries not yet acknowledged by the hub, by lane',
    labelNames: ['lane'] as const,
    registers: [registry],
    collect() {
      for (const [lane, n] of Object.entries(outboxCounts(store))) this.set({ lane }, n);
    },
  });
  new Gauge({
    name: 'popkit_sync_link_up',
    help: '1 when sync reports its hub link up',
    registers: [registry],
    collect() {
      this.set(readRunStatus(dataDir, 'sync')?.link === 'up' ? 1 : 0);
    },
  });
  const revenue = new Counter({
    name: 'popkit_revenue_cents_total',
    help: `${SERIES_METRICS.popkit_revenue_cents_total.help} (cents, the catalog's currency), by payment method`,
    labelNames: ['payment'] as const,
    registers: [registry],
  });
  const help = (m: keyof typeof SERIES_METRICS) => `${SERIES_METRICS[m].help} (${SERIES_METRICS[m].unit})`;
  // counters kept elsewhere (the viewer tracker, reservations in LMDB): read at scrape time
  for (const m of COUNTER_METRICS) {
    if (m === 'popkit_orders_total' || m === 'popkit_revenue_cents_total') continue;
    new SignalMetric({ name: m, help: help(m), type: 'counter' }, () => signals.totals().totals[m], registry);
  }
  for (const m of GAUGE_METRICS)
    new SignalMetric({ name: m, help: help(m), type: 'gauge' }, () => signals.gauges()[m], registry);
  return {
    registry,
    orders,
    rejections,
    latency,
    revenue,
    live: signals,
    accepted(order, replayed, seconds) {
      latency.observe({ outcome: 'accepted' }, seconds);
      signals.latency(seconds);
      if (replayed) return;
      orders.inc({ payment: order.payment.method });
      revenue.inc({ payment: order.payment.method }, order.totalCents);
      signals.order(order.totalCents);
    },
  };
}

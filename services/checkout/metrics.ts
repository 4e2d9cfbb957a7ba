// Prometheus metrics of the checkout process. Backlog and store size are read at scrape time from
// LMDB (another process, sync, changes them), so nothing polls in between.
import fs from 'node:fs';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { readServiceStatus } from '../../core/run-status.ts';
import { type KitStore, outboxCounts } from '../../core/store/index.ts';

export interface CheckoutMetrics {
  registry: Registry;
  orders: Counter<'payment'>;
  rejections: Counter<'code'>;
  latency: Histogram<'outcome'>;
}

export function createMetrics(store: KitStore, dataDir: string): CheckoutMetrics {
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
      this.set(readServiceStatus(dataDir, 'sync')?.['link'] === 'up' ? 1 : 0);
    },
  });
  return { registry, orders, rejections, latency };
}

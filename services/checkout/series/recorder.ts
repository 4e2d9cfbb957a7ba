// The per-second series recorder (#12, docs/architecture.md#live-series): on every wall-clock second it
// samples the live signals (signals.ts) into one SeriesSample — each `_total` metric as its increase
// since the previous tick, the order latencies of that second as p50/p95, the gauges as they are — and
// notes markers (event start/stop, drop windows opening and closing, stream level changes). Samples
// and markers are buffered and written every few seconds in one transaction (core/store/series.ts),
// the retention sweep riding in the same transaction; checkout's order path never waits for it.
//
// Restarts: running totals start from a baseline taken when the recorder starts (in-process counters
// at 0, LMDB-kept counters as read then), so nothing counted before the start is counted again; the
// second a process stops in is written as far as it got, and the next process's part of that second is
// merged into it (counters add). Markers derived from stored instants are looked for since the last
// stored second and written once (the store skips duplicates).
import type { SeriesMarkerT, SeriesSampleT, SeriesValuesT } from '../../../core/contracts/series.ts';
import type { Logger } from '../../../core/logger.ts';
import { type PollLoop, pollLoop } from '../../../core/poll-loop.ts';
import { readEventState } from '../../../core/store/event.ts';
import type { KitStore, StoredCatalog } from '../../../core/store/open.ts';
import { latestSeriesSecond, writeSeries } from '../../../core/store/series.ts';
import { COUNTER_METRICS, type LiveSignals, percentile, type Totals } from './signals.ts';

export interface RecorderOptions {
  store: KitStore;
  signals: LiveSignals;
  /** the catalog loaded now (its sale windows are the drop markers) */
  catalog: () => StoredCatalog | undefined;
  /** hours of seconds kept (POPKIT_SERIES_RETENTION_H) */
  retentionH: number;
  /** seconds per write transaction (default 5) */
  flushEvery?: number;
  /** ms since the epoch */
  now?: () => number;
  logger?: Pick<Logger, 'warn'>;
}

const LABEL_BAD = /[^A-Za-z0-9 _.:-]/g;
/** A marker label as the contract allows it: other characters become `_`, at most 80. */
export const markerLabel = (s: string): string => s.replace(LABEL_BAD, '_').slice(0, 80);

const secondOf = (iso: string | null | undefined): number | undefined => {
  if (!iso) return undefined;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
};

export class SeriesRecorder {
  private readonly flushEvery: number;
  private base: { totals: Totals; eventId: string | null };
  private pending = new Map<number, SeriesValuesT>();
  private marks: SeriesMarkerT[] = [];
  /** markers are looked for in (since, t]: from the newest stored second on the first tick */
  private since: number | undefined;
  private level: number | undefined;
  private ticks = 0;
  /** the last totals seen per event (reservations are counted per event) */
  private readonly perEvent = new Map<string, Totals>();
  private writing: Promise<unknown> = Promise.resolve();
  private loop: PollLoop | undefined;
  private instants: {
    stamp: string;
    list: Array<{ t: number; kind: SeriesMarkerT['kind']; label: string }>;
  } = { stamp: '', list: [] };
  /** time spent in tick() and in starting writes, ns (the benchmark's "own cost") */
  costNs = 0n;
  /** samples and markers written, write transactions run (tests, the benchmark) */
  readonly stats = { samples: 0, markers: 0, transactions: 0, swept: 0, failed: 0 };

  constructor(private readonly opts: RecorderOptions) {
    this.flushEvery = Math.max(1, opts.flushEvery ?? 5);
    opts.signals.collectLatency = true;
    this.base = opts.signals.totals();
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }

  /** Tick on every wall-clock second; returns the closer (which records the current second and flushes). */
  start(): () => Promise<void> {
    this.loop = pollLoop(1000, () => this.tick(), {
      aligned: true,
      unref: true,
      onError: (err) => this.opts.logger?.warn({ err: (err as Error).message }, 'series tick failed'),
    });
    return () => this.close();
  }

  /**
   * Sample the second that just ended (or, with `partial`, the one running now) and write a batch
   * every `flushEvery` ticks. Several ticks landing in one second merge into its sample.
   */
  tick(partial = false): void {
    const started = process.hrtime.bigint();
    const nowMs = this.now();
    const t = Math.floor(nowMs / 1000) - (partial ? 0 : 1);
    const v = this.sample();
    const prev = this.pending.get(t);
    this.pending.set(t, prev ? addInto(prev, v) : v);
    this.mark(t, v);
    this.ticks++;
    if (this.ticks % this.flushEvery === 0) void this.flush();
    this.costNs += process.hrtime.bigint() - started;
  }

  private sample(): SeriesValuesT {
    const s = this.opts.signals;
    const now = s.totals();
    const v: SeriesValuesT = {};
    // reservations are counted per event: another event than the last tick's counts from where this
    // process last saw it, or from 0 (a new event's counters start at 0 when its catalog arrives)
    const base =
      now.eventId === this.base.eventId ? this.base.totals : (this.perEvent.get(now.eventId ?? '') ?? {});
    for (const m of COUNTER_METRICS) {
      const x = now.totals[m];
      if (x === undefined) continue;
      const perEvent = m.startsWith('popkit_reservations_');
      const b = perEvent ? base[m] : this.base.totals[m];
      // a counter first seen now (a tracker that appeared): its baseline, nothing counted before
      if (b === undefined) v[m] = perEvent ? x : 0;
      // a counter that went back was reset: what it says now is its increase
      else v[m] = x < b ? x : x - b;
    }
    if (this.base.eventId !== null) this.perEvent.set(this.base.eventId, this.base.totals);
    this.base = now;
    const lat = s.takeLatencies();
    if (lat.length > 0) {
      lat.sort((a, b) => a - b);
      v.popkit_order_duration_seconds_p50 = percentile(lat, 0.5);
      v.popkit_order_duration_seconds_p95 = percentile(lat, 0.95);
    }
    for (const [k, x] of Object.entries(s.gauges())) if (Number.isFinite(x)) v[k as keyof SeriesValuesT] = x;
    return v;
  }

  private mark(t: number, v: SeriesValuesT): void {
    const level = v.popkit_stream_level;
    if (level !== undefined && this.level !== undefined && level !== this.level)
      this.marks.push({ t, kind: 'stream_level', label: String(level) });
    if (level !== undefined) this.level = level;
    if (this.since === undefined) {
      const stored = latestSeriesSecond(this.opts.store);
      const floor = t - this.opts.retentionH * 3600;
      this.since = Math.max(floor, stored === undefined ? t - 1 : Math.min(stored, t) - 1);
    }
    if (t <= this.since) return;
    const from = this.since;
    this.since = t;
    const ev = readEventState(this.opts.store);
    const at = (iso: string | null, kind: 'event_start' | 'event_stop') => {
      const s = secondOf(iso);
      if (s !== undefined && s > from && s <= t)
        this.marks.push({ t: s, kind, label: markerLabel(ev.eventId ?? '') });
    };
    at(ev.startedAt, 'event_start');
    at(ev.stoppedAt, 'event_stop');
    for (const i of this.dropInstants()) if (i.t > from && i.t <= t) this.marks.push(i);
  }

  /** The catalog's sale-window instants (items and bundles), recomputed when the catalog changes. */
  private dropInstants() {
    const cat = this.opts.catalog();
    const stamp = cat ? `${cat.eventId}/${cat.version}/${cat.updatedAt}` : '';
    if (stamp === this.instants.stamp) return this.instants.list;
    const list: Array<{ t: number; kind: SeriesMarkerT['kind']; label: string }> = [];
    const add = (id: string, w: { startsAt: string; endsAt: string } | undefined) => {
      const open = secondOf(w?.startsAt);
      const close = secondOf(w?.endsAt);
      if (open !== undefined) list.push({ t: open, kind: 'drop_open', label: markerLabel(id) });
      if (close !== undefined) list.push({ t: close, kind: 'drop_close', label: markerLabel(id) });
    };
    for (const i of cat?.items ?? []) add(i.sku, i.saleWindow);
    for (const b of cat?.bundles ?? []) add(b.id, b.saleWindow);
    this.instants = { stamp, list };
    return list;
  }

  /** Write what is buffered (one transaction, the retention sweep in it); resolves when committed. */
  flush(): Promise<unknown> {
    const samples: SeriesSampleT[] = [...this.pending].map(([t, v]) => ({ t, v }));
    const markers = this.marks;
    this.pending = new Map();
    this.marks = [];
    const retainFrom = Math.floor(this.now() / 1000) - this.opts.retentionH * 3600;
    const run = async () => {
      const started = process.hrtime.bigint();
      const p = writeSeries(this.opts.store, { samples, markers, retainFrom });
      this.costNs += process.hrtime.bigint() - started;
      try {
        const r = await p;
        this.costNs += r.txnNs;
        this.stats.samples += r.samples;
        this.stats.markers += r.markers;
        this.stats.swept += r.swept;
        if (r.wrote) this.stats.transactions++;
      } catch (err) {
        // the series are not worth an order: a full volume drops this batch, checkout goes on
        this.stats.failed++;
        this.opts.logger?.warn(
          { err: (err as Error).message, samples: samples.length },
          'series batch not written',
        );
      }
    };
    // one write at a time, in order
    const next = this.writing.then(run, run);
    this.writing = next;
    return next;
  }

  /** Stop ticking, record the running second as far as it got, write everything. */
  async close(): Promise<void> {
    this.loop?.stop();
    this.loop = undefined;
    this.tick(true);
    await this.flush();
    this.opts.signals.collectLatency = false;
  }
}

/** Two parts of one second in one process: counters add, gauges and percentiles take the newer. */
function addInto(prev: SeriesValuesT, next: SeriesValuesT): SeriesValuesT {
  const out: SeriesValuesT = { ...prev };
  for (const [k, x] of Object.entries(next) as Array<[keyof SeriesValuesT, number]>) {
    const p = out[k];
    out[k] = k.endsWith('_total') && p !== undefined ? p + x : x;
  }
  return out;
}

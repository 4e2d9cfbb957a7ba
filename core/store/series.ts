// The kit's per-second series and markers (#12, core/contracts/series.ts) in the `series` and `markers`
// sub-databases. Checkout's recorder (services/checkout/series/) writes them in batches, a few seconds
// per transaction with the retention sweep folded into the same transaction; GET /v1/series, sync and
// the post-event report read them through `readSeries` and `readMarkers`.
//
// A second written twice (a process stopped part way through it and the next one recorded the rest)
// is merged, not replaced: a `_total` metric's two increases cover disjoint parts of the second and
// add up, a gauge takes the newer value. A marker already stored at its second with the same kind and
// label is not stored again, so markers derived from stored instants (an event start, a drop opening)
// can be recorded again after a restart without doubling.
import {
  METRIC_NAMES,
  type MetricName,
  SERIES_METRICS,
  type SeriesMarkerT,
  type SeriesSampleT,
  type SeriesValuesT,
} from '../contracts/series.ts';
import type { KitStore } from './open.ts';

/** Old seconds deleted per write transaction at most (a kit back after days catches up over a few batches). */
export const SWEEP_PER_BATCH = 2000;

export interface SeriesBatchWrite {
  samples: readonly SeriesSampleT[];
  markers: readonly SeriesMarkerT[];
  /** seconds (and markers) before this unix second are deleted, up to `sweepLimit` of each */
  retainFrom?: number;
  sweepLimit?: number;
}

export interface SeriesWriteResult {
  /** whether a write transaction ran at all (none for an empty batch with nothing to sweep) */
  wrote: boolean;
  samples: number;
  /** seconds that were already stored and got merged */
  merged: number;
  markers: number;
  /** marker duplicates skipped */
  duplicateMarkers: number;
  swept: number;
  /** time spent inside the transaction's callback (ns): reads, merges, puts, the sweep */
  txnNs: bigint;
}

const isCounter = (m: string): boolean => SERIES_METRICS[m as MetricName]?.kind === 'counter';

/** Two samples of one second: counters add, gauges take `next`'s value when it has one. */
export function mergeValues(prev: SeriesValuesT, next: SeriesValuesT): SeriesValuesT {
  const out: SeriesValuesT = { ...prev };
  for (const m of METRIC_NAMES) {
    const v = next[m];
    if (v === undefined) continue;
    const p = out[m];
    out[m] = isCounter(m) && p !== undefined ? p + v : v;
  }
  return out;
}

function firstKeyBefore(store: KitStore, before: number): boolean {
  for (const _ of store.series.getKeys({ end: before, limit: 1 })) return true;
  for (const _ of store.markers.getKeys({ end: [before, 0], limit: 1 })) return true;
  return false;
}

/**
 * Store a batch of seconds and markers in one write transaction, sweeping what is older than
 * `retainFrom` in the same transaction. Nothing to write and nothing to sweep: no transaction.
 */
export async function writeSeries(store: KitStore, batch: SeriesBatchWrite): Promise<SeriesWriteResult> {
  const limit = batch.sweepLimit ?? SWEEP_PER_BATCH;
  const sweep = batch.retainFrom !== undefined && firstKeyBefore(store, batch.retainFrom);
  const result: SeriesWriteResult = {
    wrote: false,
    samples: 0,
    merged: 0,
    markers: 0,
    duplicateMarkers: 0,
    swept: 0,
    txnNs: 0n,
  };
  if (batch.samples.length === 0 && batch.markers.length === 0 && !sweep) return result;
  await store.root.transaction(() => {
    const started = process.hrtime.bigint();
    for (const s of batch.samples) {
      const prev = store.series.get(s.t);
      if (prev) result.merged++;
      void store.series.put(s.t, prev ? mergeValues(prev, s.v) : s.v);
      result.samples++;
    }
    for (const m of batch.markers) {
      let seq = 0;
      let dup = false;
      for (const { value } of store.markers.getRange({ start: [m.t, 0], end: [m.t + 1, 0] })) {
        seq++;
        if (value.kind === m.kind && value.label === m.label) dup = true;
      }
      if (dup) {
        result.duplicateMarkers++;
        continue;
      }
      void store.markers.put([m.t, seq], m);
      result.markers++;
    }
    if (sweep && batch.retainFrom !== undefined) {
      for (const key of store.series.getKeys({ end: batch.retainFrom, limit })) {
        void store.series.remove(key);
        result.swept++;
      }
      for (const key of store.markers.getKeys({ end: [batch.retainFrom, 0], limit })) {
        void store.markers.remove(key);
        result.swept++;
      }
    }
    result.txnNs = process.hrtime.bigint() - started;
  });
  result.wrote = true;
  return result;
}

/** Delete seconds and markers older than `retainFrom`; no transaction when there is none. */
export function sweepSeries(
  store: KitStore,
  retainFrom: number,
  limit = SWEEP_PER_BATCH,
): Promise<SeriesWriteResult> {
  return writeSeries(store, { samples: [], markers: [], retainFrom, sweepLimit: limit });
}

/**
 * The stored seconds from `from` to `to` (both included, unix seconds), oldest first; with `metrics`
 * each sample keeps only those (a second holding none of them is left out).
 */
export function readSeries(
  store: KitStore,
  from: number,
  to: number,
  metrics?: readonly MetricName[],
): SeriesSampleT[] {
  const out: SeriesSampleT[] = [];
  if (to < from) return out;
  for (const { key, value } of store.series.getRange({ start: from, end: to + 1 })) {
    if (!metrics) {
      out.push({ t: key, v: value });
      continue;
    }
    const v: SeriesValuesT = {};
    let any = false;
    for (const m of metrics) {
      const x = value[m];
      if (x !== undefined) {
        v[m] = x;
        any = true;
      }
    }
    if (any) out.push({ t: key, v });
  }
  return out;
}

/** The markers from `from` to `to` (both included), in time order. */
export function readMarkers(store: KitStore, from: number, to: number): SeriesMarkerT[] {
  const out: SeriesMarkerT[] = [];
  if (to < from) return out;
  for (const { value } of store.markers.getRange({ start: [from, 0], end: [to + 1, 0] })) out.push(value);
  return out;
}

/** The newest stored second, or undefined when the series is empty. */
export function latestSeriesSecond(store: KitStore): number | undefined {
  for (const key of store.series.getKeys({ reverse: true, limit: 1 })) return key;
  return undefined;
}

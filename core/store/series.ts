// The kit's per-second series and markers (#12, core/contracts/series.ts), read side only: the
// `series` and `markers` sub-databases as the recorder (branch `series`, services/checkout/series/)
// writes them. The post-event report reads them through `readSeries` and `readMarkers`; the series
// branch owns this module and its writes, and these two keep its exact names and shapes.
import type { MetricName, SeriesMarkerT, SeriesSampleT, SeriesValuesT } from '../contracts/series.ts';
import type { KitStore } from './open.ts';

/** Samples of the seconds `from`..`to` (inclusive), ascending; only `metrics` when given. */
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

/** Markers of the seconds `from`..`to` (inclusive), in time order. */
export function readMarkers(store: KitStore, from: number, to: number): SeriesMarkerT[] {
  const out: SeriesMarkerT[] = [];
  if (to < from) return out;
  for (const { value } of store.markers.getRange({ start: [from, 0], end: [to + 1, 0] })) out.push(value);
  return out;
}

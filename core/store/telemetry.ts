// What sync's series shipper (services/sync/series-ship.ts) keeps and reads in the kit store (#12): the
// hub's verified telemetry seal key, the cursor (the last second shipped), the seconds and markers
// after it (read bounded, never a transaction), the kit's order count for an event, and the one write
// transaction that queues sealed batches on the telemetry lane and moves the cursor together, so a
// crash either ships a range or leaves it to ship again (the hub stores a resent second once).
import type { SeriesMarkerT, SeriesSampleT } from '../contracts/series.ts';
import type { KitStore, OutboxEntry, OutboxKey } from './open.ts';

/** Meta keys of this module. */
export const TELEMETRY_META = {
  /** the hub's X25519 seal key, verified against the hub's catalog key */
  sealKey: 'telemetry.sealKey',
  /** the last unix second whose samples and markers were queued */
  cursor: 'telemetry.seriesCursor',
} as const;

export interface StoredSealKey {
  kid: string;
  /** raw 32 bytes, base64url */
  publicKey: string;
  issuedAt: string;
  receivedAt: string;
}

export function readSealKey(store: KitStore): StoredSealKey | undefined {
  return store.meta.get(TELEMETRY_META.sealKey) as StoredSealKey | undefined;
}

/** Keep the hub's newest seal key (an older issue than the kept one is ignored: false). */
export function writeSealKey(store: KitStore, key: StoredSealKey): Promise<boolean> {
  return store.root.transaction(() => {
    const cur = store.meta.get(TELEMETRY_META.sealKey) as StoredSealKey | undefined;
    if (cur && (cur.kid === key.kid || Date.parse(cur.issuedAt) > Date.parse(key.issuedAt))) return false;
    void store.meta.put(TELEMETRY_META.sealKey, key);
    return true;
  });
}

export function readSeriesCursor(store: KitStore): number | undefined {
  const v = store.meta.get(TELEMETRY_META.cursor);
  return typeof v === 'number' ? v : undefined;
}

/** The oldest stored second (of samples or markers), or undefined when both are empty. */
export function oldestSeriesSecond(store: KitStore): number | undefined {
  let out: number | undefined;
  for (const key of store.series.getKeys({ limit: 1 })) out = key;
  for (const key of store.markers.getKeys({ limit: 1 }))
    out = out === undefined ? key[0] : Math.min(out, key[0]);
  return out;
}

/** Samples with after < t ≤ upTo, oldest first, at most `limit`. */
export function samplesAfter(store: KitStore, after: number, upTo: number, limit: number): SeriesSampleT[] {
  const out: SeriesSampleT[] = [];
  if (upTo <= after) return out;
  for (const { key, value } of store.series.getRange({ start: after + 1, end: upTo + 1, limit }))
    out.push({ t: key, v: value });
  return out;
}

/** Markers with after < t ≤ upTo, in time order, at most `limit`. */
export function markersAfter(store: KitStore, after: number, upTo: number, limit: number): SeriesMarkerT[] {
  const out: SeriesMarkerT[] = [];
  if (upTo <= after) return out;
  for (const { value } of store.markers.getRange({ start: [after + 1, 0], end: [upTo + 1, 0], limit }))
    out.push(value);
  return out;
}

/** How many orders this kit holds for `eventId` (a scan: called once a minute at most). */
export function eventOrderCount(store: KitStore, eventId: string): number {
  let n = 0;
  for (const { value } of store.orders.getRange()) if (value.eventId === eventId) n++;
  return n;
}

/** Queue sealed entries and move the cursor to `cursor`, in one write transaction. */
export function queueSeriesEntries(
  store: KitStore,
  entries: readonly { key: OutboxKey; entry: OutboxEntry }[],
  cursor: number,
): Promise<void> {
  return store.root.transaction(() => {
    for (const e of entries) void store.outbox.put(e.key, e.entry);
    void store.meta.put(TELEMETRY_META.cursor, cursor);
  });
}

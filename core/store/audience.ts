// The audience of an event as the kit keeps it (#12): viewer records (keyed-hash ids, never an address
// or a user agent) and buyer devices' consents, in the `viewers` and `consents` sub-databases. What
// leaves the kit is only `audienceAggregate()`: per segment, figures over at least k people; a smaller
// segment is named in `suppressed` without figures. Checkout's audience feature writes the records
// (services/checkout/audience/); sync and the post-event report read them through this module.
import {
  type AudienceAggregateT,
  DEFAULT_MIN_GROUP,
  RETENTION_MAX_MINUTES,
  type SegmentAggregateT,
} from '../contracts/series.ts';
import type { ConsentRecord, KitStore, ViewerRecord } from './open.ts';

/** What checkout's viewer tracker tells the per-second series recorder (in process). */
export interface ViewerCounts {
  /** viewers watching now */
  current(): number;
  /** totals since the process started: the recorder samples their increase each second */
  totals(): { joins: number; leaves: number; watchSeconds: number };
}

/** Five minutes watched: the `watched_5m` segment. */
export const WATCHED_LONG_S = 300;

export function readViewer(store: KitStore, id: string): ViewerRecord | undefined {
  return store.viewers.get(id);
}

export function readConsent(store: KitStore, deviceId: string): ConsentRecord | undefined {
  return store.consents.get(deviceId);
}

/** Every viewer record of `eventId` (a scan: fine for the report and a per-minute aggregate). */
export function viewersOfEvent(store: KitStore, eventId: string): ViewerRecord[] {
  const out: ViewerRecord[] = [];
  for (const { value } of store.viewers.getRange()) if (value.eventId === eventId) out.push(value);
  return out;
}

/** The segments a viewer falls into, given what consenting buyers told about themselves. */
export function segmentsOf(
  v: ViewerRecord,
  linked: Map<string, { returning: boolean; loyaltyTier?: string | undefined }>,
): string[] {
  const out = ['all', v.inVenue ? 'in_venue' : 'remote'];
  if (v.watchSeconds >= WATCHED_LONG_S) out.push('watched_5m');
  const buyer = linked.get(v.id);
  if (buyer) {
    out.push(buyer.returning ? 'returning' : 'new');
    if (buyer.loyaltyTier) out.push(`loyalty_${buyer.loyaltyTier}`);
  }
  return out;
}

/**
 * The event's audience as it may leave the kit: for each segment with at least `k` viewers, their
 * count, watch time, retention curve (retention[m]: how many still watched m minutes after joining)
 * and the consenting buyers linked among them; segments under k are listed in `suppressed` only.
 */
export function audienceAggregate(
  store: KitStore,
  eventId: string,
  opts: { k?: number; now?: number } = {},
): AudienceAggregateT {
  const k = Math.max(2, opts.k ?? DEFAULT_MIN_GROUP);
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  // viewer id → what its consenting buyer says (only consents still granted count)
  const linked = new Map<string, { returning: boolean; loyaltyTier?: string | undefined; orders: number }>();
  for (const { value: c } of store.consents.getRange()) {
    if (!c.granted) continue;
    const returning = c.events.some((e) => e !== eventId);
    for (const l of c.links) {
      if (l.eventId !== eventId) continue;
      linked.set(l.viewerId, {
        returning,
        loyaltyTier: c.loyaltyTier,
        orders: (linked.get(l.viewerId)?.orders ?? 0) + 1,
      });
    }
  }
  const groups = new Map<
    string,
    { viewers: number; watch: number; ret: number[]; buyers: number; orders: number }
  >();
  for (const v of viewersOfEvent(store, eventId)) {
    const span = Math.max(0, v.lastSeen - v.firstSeen);
    const minutes = Math.min(RETENTION_MAX_MINUTES, Math.floor(span / 60));
    const buyer = linked.get(v.id);
    for (const seg of segmentsOf(v, linked)) {
      let g = groups.get(seg);
      if (!g) {
        g = { viewers: 0, watch: 0, ret: [], buyers: 0, orders: 0 };
        groups.set(seg, g);
      }
      g.viewers++;
      g.watch += Math.round(v.watchSeconds);
      for (let m = 0; m <= minutes; m++) g.ret[m] = (g.ret[m] ?? 0) + 1;
      if (buyer) {
        g.buyers++;
        g.orders += buyer.orders;
      }
    }
  }
  const segments: SegmentAggregateT[] = [];
  const suppressed: string[] = [];
  for (const [segment, g] of [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (g.viewers < k) {
      suppressed.push(segment);
      continue;
    }
    const retention = Array.from({ length: g.ret.length }, (_, m) => g.ret[m] ?? 0);
    segments.push({
      segment,
      viewers: g.viewers,
      watchSeconds: g.watch,
      retention,
      // a linked count under k would single people out as well
      linkedBuyers: g.buyers >= k ? g.buyers : 0,
      linkedOrders: g.buyers >= k ? g.orders : 0,
    });
  }
  return { eventId, k, at: now, segments: segments.slice(0, 24), suppressed: suppressed.slice(0, 24) };
}

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
import { type ConsentRecord, type KitStore, META, type ViewerRecord } from './open.ts';

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

/** Minutes after joining at which the viewer was still watching (by its sessions), 0 first. */
export function watchedMinutes(v: ViewerRecord): number[] {
  const out = [0];
  const sessions = v.sessions.length > 0 ? v.sessions : [[v.firstSeen, v.lastSeen] as [number, number]];
  const end = Math.max(...sessions.map((s) => s[1]));
  const last = Math.min(RETENTION_MAX_MINUTES, Math.floor(Math.max(0, end - v.firstSeen) / 60));
  for (let m = 1; m <= last; m++) {
    const t = v.firstSeen + m * 60;
    if (sessions.some(([a, b]) => a <= t && t <= b)) out.push(m);
  }
  return out;
}

/**
 * The event's audience as it may leave the kit: for each segment with at least `k` viewers, their
 * count, watch time, retention curve (retention[m]: how many still watched m minutes after joining)
 * and the consenting buyers linked among them; segments under k are listed in `suppressed` only.
 *
 * Differencing is guarded as well (complementary suppression): a segment whose complement within `all`
 * holds 1 to k-1 viewers is suppressed (else `all` minus it would describe them), `new` and `returning`
 * go together, a linked count is shown only when it and its complement among all linked buyers are 0
 * or at least k, and a retention curve stops before the first minute under k (its tail would tell how
 * long one person watched).
 */
export function audienceAggregate(
  store: KitStore,
  eventId: string,
  opts: { k?: number; now?: number } = {},
): AudienceAggregateT {
  const k = Math.min(1000, Math.max(2, Math.floor(opts.k ?? DEFAULT_MIN_GROUP)));
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  // viewer id → what its consenting buyer says (only consents still granted count)
  const linked = new Map<string, { returning: boolean; loyaltyTier?: string | undefined; orders: number }>();
  for (const { value: c } of store.consents.getRange()) {
    if (!c.granted) continue;
    const returning = c.events.some((e) => e !== eventId);
    for (const l of c.links) {
      if (l.eventId !== eventId) continue;
      const prev = linked.get(l.viewerId);
      linked.set(l.viewerId, {
        returning: returning || (prev?.returning ?? false),
        loyaltyTier: c.loyaltyTier ?? prev?.loyaltyTier,
        orders: (prev?.orders ?? 0) + 1,
      });
    }
  }
  const groups = new Map<
    string,
    { viewers: number; watch: number; ret: number[]; buyers: number; orders: number }
  >();
  for (const v of viewersOfEvent(store, eventId)) {
    const minutes = watchedMinutes(v);
    const buyer = linked.get(v.id);
    for (const seg of segmentsOf(v, linked)) {
      let g = groups.get(seg);
      if (!g) {
        g = { viewers: 0, watch: 0, ret: [], buyers: 0, orders: 0 };
        groups.set(seg, g);
      }
      g.viewers++;
      g.watch += Math.round(v.watchSeconds);
      for (const m of minutes) g.ret[m] = (g.ret[m] ?? 0) + 1;
      if (buyer) {
        g.buyers++;
        g.orders += buyer.orders;
      }
    }
  }
  const all = groups.get('all');
  const allViewers = all?.viewers ?? 0;
  const allBuyers = all?.buyers ?? 0;
  const small = (n: number) => n > 0 && n < k;
  const hidden = new Set<string>();
  for (const [segment, g] of groups) if (g.viewers < k || small(allViewers - g.viewers)) hidden.add(segment);
  // new and returning split the linked buyers, whose total `all` shows: one alone would tell the other
  if (hidden.has('new') || hidden.has('returning')) for (const s of ['new', 'returning']) hidden.add(s);
  const segments: SegmentAggregateT[] = [];
  const suppressed: string[] = [];
  for (const [segment, g] of [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (hidden.has(segment)) {
      if (groups.has(segment)) suppressed.push(segment);
      continue;
    }
    const retention: number[] = [];
    for (let m = 0; m < g.ret.length; m++) {
      const n = g.ret[m] ?? 0;
      if (n < k) break;
      retention.push(n);
    }
    // a linked count under k (or one whose complement is) would single people out as well
    const showLinked = g.buyers >= k && !small(allBuyers - g.buyers);
    segments.push({
      segment,
      viewers: g.viewers,
      watchSeconds: g.watch,
      retention,
      linkedBuyers: showLinked ? g.buyers : 0,
      linkedOrders: showLinked ? g.orders : 0,
    });
  }
  return { eventId, k, at: now, segments: segments.slice(0, 24), suppressed: suppressed.slice(0, 24) };
}

// ---- the tracker's writes (services/checkout/audience): batched, never one per request ----

/** The event's viewer key as kept in meta: one key at a time, overwritten at rotation. */
export interface AudienceKeyRecord {
  eventId: string;
  /** 32 random bytes, base64url */
  key: string;
  /** unix seconds */
  createdAt: number;
}

export function readAudienceKey(store: KitStore): AudienceKeyRecord | undefined {
  const v = store.meta.get(META.audienceKey) as AudienceKeyRecord | undefined;
  return v && typeof v.key === 'string' && typeof v.eventId === 'string' ? v : undefined;
}

/** Replace the viewer key (the previous one is overwritten in the same commit, never kept beside). */
export async function writeAudienceKey(store: KitStore, rec: AudienceKeyRecord | undefined): Promise<void> {
  await store.root.transaction(() => {
    if (rec) void store.meta.put(META.audienceKey, rec);
    else void store.meta.remove(META.audienceKey);
  });
}

/** Write the tracker's dirty viewer records in ONE transaction (one fsync for the whole batch). */
export async function flushViewers(store: KitStore, records: readonly ViewerRecord[]): Promise<void> {
  if (records.length === 0) return;
  await store.root.transaction(() => {
    for (const r of records) void store.viewers.put(r.id, r);
  });
}

/**
 * The retention sweep: viewer records past `expiresAt` are deleted, with the consent links that name
 * them; records of an event that is no longer live get their `expiresAt` (its end plus `ttlS`). Reads
 * first and opens a write transaction only when something is due. Returns how many were deleted.
 */
export async function sweepViewers(
  store: KitStore,
  opts: { now: number; ttlS: number; liveEventId: string | null; endedAt?: (eventId: string) => number },
): Promise<{ deleted: number; stamped: number }> {
  const due: string[] = [];
  const stamp: ViewerRecord[] = [];
  for (const { value: v } of store.viewers.getRange()) {
    if (v.expiresAt !== undefined) {
      if (v.expiresAt <= opts.now) due.push(v.id);
    } else if (v.eventId !== opts.liveEventId) {
      const end = Math.max(v.lastSeen, opts.endedAt?.(v.eventId) ?? opts.now);
      stamp.push({ ...v, expiresAt: end + opts.ttlS });
    }
  }
  if (due.length === 0 && stamp.length === 0) return { deleted: 0, stamped: 0 };
  const gone = new Set(due);
  await store.root.transaction(() => {
    for (const id of due) {
      const v = store.viewers.get(id);
      if (v?.expiresAt !== undefined && v.expiresAt <= opts.now) void store.viewers.remove(id);
      else gone.delete(id);
    }
    for (const r of stamp) {
      const cur = store.viewers.get(r.id);
      if (cur && cur.expiresAt === undefined)
        void store.viewers.put(r.id, { ...cur, expiresAt: r.expiresAt });
    }
    if (gone.size > 0)
      for (const { key, value: c } of store.consents.getRange()) {
        const links = c.links.filter((l) => !gone.has(l.viewerId));
        if (links.length !== c.links.length) void store.consents.put(key, { ...c, links });
      }
  });
  return { deleted: gone.size, stamped: stamp.length };
}

// ---- consent (services/checkout/audience/consent.ts) ----

/** At most this many links per device (older ones give way): a record stays small. */
export const MAX_CONSENT_LINKS = 500;
/** At most this many events remembered per device (new vs returning). */
export const MAX_CONSENT_EVENTS = 50;

/**
 * Record a device's answer. A grant keeps what an earlier grant linked; a refusal (or withdrawal)
 * deletes the links, the events and the tier at once, keeping only the answer, its text version and time.
 */
export async function recordConsent(
  store: KitStore,
  deviceId: string,
  answer: { granted: boolean; textVersion: string; at: string },
): Promise<ConsentRecord> {
  return store.root.transaction(() => {
    const prev = store.consents.get(deviceId);
    const keep = answer.granted && prev?.granted;
    const next: ConsentRecord = {
      deviceId,
      granted: answer.granted,
      textVersion: answer.textVersion,
      at: answer.at,
      links: keep ? prev.links : [],
      events: keep ? prev.events : [],
      ...(keep && prev.loyaltyTier !== undefined ? { loyaltyTier: prev.loyaltyTier } : {}),
    };
    void store.consents.put(deviceId, next);
    return next;
  });
}

/** Tiers by rank, lowest first; a tier not named here ranks below them all (the first one seen stays). */
export const TIER_RANK = ['bronze', 'silver', 'gold', 'platinum', 'diamond'] as const;
export function higherTier(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const rank = (t: string) => TIER_RANK.indexOf(t.toLowerCase() as (typeof TIER_RANK)[number]);
  return rank(b) > rank(a) ? b : a;
}

/**
 * Inside an order's transaction (an InTxnStep's write): link the order to the viewer id of the request
 * that placed it, when the device's consent is granted at that moment; else nothing is written.
 */
export function linkOrderInTxn(
  store: KitStore,
  deviceId: string,
  link: { viewerId: string | undefined; orderId: string; eventId: string; loyaltyTier?: string | undefined },
): void {
  const c = store.consents.get(deviceId);
  if (!c?.granted) return;
  const links = link.viewerId
    ? [...c.links, { viewerId: link.viewerId, orderId: link.orderId, eventId: link.eventId }].slice(
        -MAX_CONSENT_LINKS,
      )
    : c.links;
  const events = c.events.includes(link.eventId)
    ? c.events
    : [...c.events, link.eventId].slice(-MAX_CONSENT_EVENTS);
  const tier = higherTier(c.loyaltyTier, link.loyaltyTier);
  void store.consents.put(deviceId, {
    ...c,
    links,
    events,
    ...(tier !== undefined ? { loyaltyTier: tier } : {}),
  });
}

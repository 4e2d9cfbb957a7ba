// Reservations (cart holds): units taken from stock in the hold's own transaction and kept until an
// order converts the hold, the buyer releases it, or it expires (docs/drops.md#reservations). Every
// ending is one transaction that re-reads the hold's state first, so a hold ends exactly once: a
// conversion racing an expiry or a release has one winner. Expired and released holds give their
// units back (to the event they were taken from only: a new event's stock starts afresh).
//
// The `expiries` index is shared with held orders: only its 'reservation' entries are touched here.
// Counters per event live in meta (abandoned holds feed the post-event report) and reach the hub as
// one coalesced telemetry entry (docs/drops.md#reservations).
import { LANES } from '../contracts/lanes.ts';
import { KitError } from '../errors.ts';
import type { CatalogStamp, KitStore, OrderLine, OutboxKey, ReservationRecord, StoredOrder } from './open.ts';
import { META } from './open.ts';
import { returnStockInTxn, stockNeeds, takeStockInTxn } from './orders.ts';

/** meta key prefix: + event id → ReservationCounters (this module's own keys) */
const COUNTERS_PREFIX = 'reservations.counters/';
/** meta key prefix: + client address → holds that address has open */
const BY_ADDRESS_PREFIX = 'reservations.byAddress/';
/** meta key: the id of the reservations telemetry entry still waiting in the outbox */
const TELEMETRY_PENDING = 'reservations.telemetry.pending';

/** How a hold ended; `converted` became an order, `expired` and `released` are abandoned. */
export type ReservationEnd = 'converted' | 'expired' | 'released';

export interface ReservationCounters {
  created: number;
  converted: number;
  /** abandoned: the hold ran out without an order */
  expired: number;
  /** abandoned: the buyer let it go (DELETE) */
  released: number;
}

const ZERO: ReservationCounters = { created: 0, converted: 0, expired: 0, released: 0 };

export function reservationCounters(store: KitStore, eventId: string): ReservationCounters {
  const c = store.meta.get(COUNTERS_PREFIX + eventId) as Partial<ReservationCounters> | undefined;
  return { ...ZERO, ...(c ?? {}) };
}

/** Holds open per event: created less every ending. */
export function heldCount(c: ReservationCounters): number {
  return Math.max(0, c.created - c.converted - c.expired - c.released);
}

export function readReservation(store: KitStore, id: string): ReservationRecord | undefined {
  return store.reservations.get(id);
}

/** Every reservation (tests and tools; not for the hot path). */
export function* allReservations(store: KitStore): Generator<ReservationRecord> {
  for (const { value } of store.reservations.getRange()) yield value;
}

/** Holds an address has open (its cap is checked when it reserves). */
export function heldByAddress(store: KitStore, address: string): number {
  return (store.meta.get(BY_ADDRESS_PREFIX + address) as number | undefined) ?? 0;
}

function bumpInTxn(store: KitStore, eventId: string, field: keyof ReservationCounters): ReservationCounters {
  const c = reservationCounters(store, eventId);
  c[field]++;
  void store.meta.put(COUNTERS_PREFIX + eventId, c);
  return c;
}

function addressDownInTxn(store: KitStore, address: string | undefined): void {
  if (address === undefined) return;
  const key = BY_ADDRESS_PREFIX + address;
  const n = (store.meta.get(key) as number | undefined) ?? 0;
  if (n <= 1) void store.meta.remove(key);
  else void store.meta.put(key, n - 1);
}

/**
 * The counters of `eventId` as one telemetry entry, in place of the one still waiting (the hub keeps
 * every entry it gets in kit_telemetry; the latest per kit and event is the figure).
 */
function queueTelemetryInTxn(
  store: KitStore,
  entryId: string,
  eventId: string,
  c: ReservationCounters,
  now: number,
): void {
  const prev = store.meta.get(TELEMETRY_PENDING) as string | undefined;
  if (prev !== undefined) void store.outbox.remove([LANES.telemetry, prev] satisfies OutboxKey);
  void store.outbox.put([LANES.telemetry, entryId] satisfies OutboxKey, {
    kind: 'telemetry',
    body: { reservations: { eventId, ...c, held: heldCount(c), at: new Date(now).toISOString() } },
    createdAt: now,
  });
  void store.meta.put(TELEMETRY_PENDING, entryId);
}

export type CreateOutcome =
  | { kind: 'created' }
  | { kind: 'soldout'; sku: string; available: number }
  | { kind: 'capped'; held: number };

/**
 * Take the hold's units and write it, or nothing: SOLD_OUT when a SKU is short, `capped` when its
 * address already holds `maxPerAddress` (checked in the same transaction, so a burst cannot pass it).
 */
export function createReservation(
  store: KitStore,
  rec: ReservationRecord,
  opts: { maxPerAddress?: number; telemetryId: string; now: number },
): Promise<CreateOutcome> {
  return store.root.transaction((): CreateOutcome => {
    if (store.reservations.get(rec.id)) throw new KitError('INTERNAL', `reservation id ${rec.id} reused`);
    const addrKey = rec.address !== undefined ? BY_ADDRESS_PREFIX + rec.address : undefined;
    if (addrKey !== undefined && opts.maxPerAddress !== undefined) {
      const held = (store.meta.get(addrKey) as number | undefined) ?? 0;
      if (held >= opts.maxPerAddress) return { kind: 'capped', held };
    }
    const taken = takeStockInTxn(store, stockNeeds(rec.lines));
    if (!taken.ok) return { kind: 'soldout', sku: taken.sku, available: taken.available };
    void store.reservations.put(rec.id, rec);
    void store.expiries.put([rec.expiresAt, rec.id], 'reservation');
    if (addrKey !== undefined) void store.meta.put(addrKey, ((store.meta.get(addrKey) as number) ?? 0) + 1);
    const c = bumpInTxn(store, rec.eventId, 'created');
    queueTelemetryInTxn(store, opts.telemetryId, rec.eventId, c, opts.now);
    return { kind: 'created' };
  });
}

/** Same lines: the same SKUs and bundles, quantities and bundle components (prices may differ). */
export function sameLines(a: readonly OrderLine[], b: readonly OrderLine[]): boolean {
  const key = (l: OrderLine) =>
    JSON.stringify([l.sku, l.qty, l.components ? l.components.map((c) => [c.sku, c.qty]) : null]);
  const ka = a.map(key).sort();
  const kb = b.map(key).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}

/**
 * Why `rec` cannot be converted at `now` by an order of these lines (undefined: it can). The order's
 * lines are compared with what the hold took, so held units are exactly what the order sells.
 */
export function conversionError(
  rec: ReservationRecord | undefined,
  id: string,
  lines: readonly OrderLine[] | undefined,
  eventId: string,
  now: number,
): KitError | undefined {
  if (!rec) return new KitError('NOT_FOUND', `no reservation ${id}`, { reservationId: id });
  if (rec.status === 'converted' || rec.status === 'released') {
    return new KitError('RESERVATION_USED', `reservation ${id} was already ${rec.status}`, {
      reservationId: id,
      status: rec.status,
      ...(rec.orderId ? { orderId: rec.orderId } : {}),
    });
  }
  if (rec.status === 'expired' || now >= rec.expiresAt) {
    return new KitError('RESERVATION_EXPIRED', `reservation ${id} expired`, {
      reservationId: id,
      expiresAt: new Date(rec.expiresAt).toISOString(),
    });
  }
  if (rec.eventId !== eventId) {
    return new KitError('RESERVATION_MISMATCH', `reservation ${id} was made for event ${rec.eventId}`, {
      reservationId: id,
      eventId: rec.eventId,
    });
  }
  if (lines && !sameLines(rec.lines, lines)) {
    return new KitError('RESERVATION_MISMATCH', `the order's lines are not reservation ${id}'s`, {
      reservationId: id,
      lines: rec.lines.map((l) => ({ sku: l.sku, qty: l.qty, bundle: l.components !== undefined })),
    });
  }
  return undefined;
}

/** Inside the order's transaction: why this order cannot convert the hold, read afresh. */
export function checkConversionInTxn(
  store: KitStore,
  id: string,
  order: StoredOrder,
  now: number,
): KitError | undefined {
  return conversionError(store.reservations.get(id), id, order.lines, order.eventId, now);
}

/**
 * Inside the order's transaction, after checkConversionInTxn: the hold becomes the order's (its units
 * are the order's now: the order took no stock of its own).
 */
export function convertInTxn(
  store: KitStore,
  id: string,
  order: StoredOrder,
  now: number,
  telemetryId: string,
): void {
  const rec = store.reservations.get(id) as ReservationRecord;
  void store.reservations.put(id, {
    ...rec,
    status: 'converted',
    orderId: order.id,
    endedAt: new Date(now).toISOString(),
  });
  void store.expiries.remove([rec.expiresAt, id]);
  addressDownInTxn(store, rec.address);
  const c = bumpInTxn(store, rec.eventId, 'converted');
  queueTelemetryInTxn(store, telemetryId, rec.eventId, c, now);
}

export type EndOutcome =
  | { kind: 'ended'; rec: ReservationRecord }
  | { kind: 'already'; rec: ReservationRecord }
  | { kind: 'missing' }
  | { kind: 'not-due'; rec: ReservationRecord };

function endInTxn(
  store: KitStore,
  rec: ReservationRecord,
  how: 'expired' | 'released',
  now: number,
): ReservationRecord {
  const stamp = store.meta.get(META.catalogVersion) as CatalogStamp | undefined;
  // units go back only to the event they came from: a new event's stock was set afresh
  if (stamp?.eventId === rec.eventId) returnStockInTxn(store, stockNeeds(rec.lines));
  const ended: ReservationRecord = { ...rec, status: how, endedAt: new Date(now).toISOString() };
  void store.reservations.put(rec.id, ended);
  void store.expiries.remove([rec.expiresAt, rec.id]);
  addressDownInTxn(store, rec.address);
  return ended;
}

/**
 * End one hold: `released` (the buyer let it go, any time while held) or `expired` (only once its
 * time is up). Its units return in the same transaction; a hold that already ended is left as it is.
 */
export function endReservation(
  store: KitStore,
  id: string,
  how: 'expired' | 'released',
  opts: { now: number; telemetryId: string },
): Promise<EndOutcome> {
  return store.root.transaction((): EndOutcome => {
    const rec = store.reservations.get(id);
    if (!rec) return { kind: 'missing' };
    if (rec.status !== 'held') return { kind: 'already', rec };
    if (how === 'expired' && opts.now < rec.expiresAt) return { kind: 'not-due', rec };
    const ended = endInTxn(store, rec, how, opts.now);
    const c = bumpInTxn(store, rec.eventId, how);
    queueTelemetryInTxn(store, opts.telemetryId, rec.eventId, c, opts.now);
    return { kind: 'ended', rec: ended };
  });
}

/**
 * Expire every hold due at `now` (at most `limit` per call, oldest first) in one transaction: the
 * background sweep. Returns how many ended. Held-order entries of the shared index are skipped.
 */
export function sweepReservations(
  store: KitStore,
  opts: { now: number; limit: number; telemetryId: string },
): Promise<number> {
  return store.root.transaction((): number => {
    let n = 0;
    const touched = new Map<string, ReservationCounters>();
    // keys first, writes after: the index is not changed under its own cursor
    const due: Array<[number, string]> = [];
    for (const { key, value } of store.expiries.getRange({
      start: [0, ''] as [number, string],
      end: [opts.now + 1, ''] as [number, string],
    })) {
      if (due.length >= opts.limit) break;
      if (value === 'reservation') due.push(key);
    }
    for (const key of due) {
      const rec = store.reservations.get(key[1]);
      if (rec?.status !== 'held' || rec.expiresAt !== key[0]) {
        // an index entry of nothing live (cannot happen through this module): drop it
        void store.expiries.remove(key);
        continue;
      }
      if (opts.now < rec.expiresAt) continue;
      endInTxn(store, rec, 'expired', opts.now);
      touched.set(rec.eventId, bumpInTxn(store, rec.eventId, 'expired'));
      n++;
    }
    // one telemetry entry per sweep: the last event touched (a sweep spans one event in practice)
    for (const [eventId, c] of touched) queueTelemetryInTxn(store, opts.telemetryId, eventId, c, opts.now);
    return n;
  });
}

// Pickup windows (docs/drops.md#pickup): an order that names `pickupSlotId` takes a place in that slot
// of the catalog and gets a short code (core/store/pickup.ts, inside the order's transaction); staff
// hand the order over once by its code (POST /v1/pickups, routes/pickup.ts). The feature keeps the
// wrong-code limiter and the metrics, and reports `/v1/status.drops.pickup`.
import { Counter, Gauge, type Registry } from 'prom-client';
import { parseIsoTime } from '../../core/contracts/catalog.ts';
import { KitError } from '../../core/errors.ts';
import type { KitStore, StoredCatalog, StoredOrder } from '../../core/store/index.ts';
import { readStoredCatalog } from '../../core/store/index.ts';
import {
  normalisePickupCode,
  type PickupOutcome,
  pickUp,
  pickupOrder,
  pickupQueueIndex,
  pickupSlotStep,
  slotPickedUp,
  slotTaken,
} from '../../core/store/pickup.ts';
import type { InTxnStep, OrderDraft, OrderFeature } from './order-features.ts';

/** wrong codes a terminal (or an address) may enter per minute before it must wait: typos, not guessing */
export const WRONG_CODES_PER_MIN = 10;
/** limiter keys kept at most (a flood of addresses must not grow memory without bound) */
const LIMITER_KEYS = 10_000;

export type PickupState = 'waiting' | 'overdue' | 'picked_up';

/** One slot in `/v1/status.drops.pickup` and the queue's summary. */
export interface SlotSummary {
  slotId: string;
  label?: string;
  startsAt: string;
  endsAt: string;
  capacity: number;
  /** orders holding a place (held ones included) */
  taken: number;
  pickedUp: number;
  /** not collected and the window not over yet */
  waiting: number;
  /** not collected by the end of the window */
  overdue: number;
}

/** Wrong codes per key over a sliding minute (in memory: a restart forgives, which costs a guesser nothing). */
class WrongCodeLimiter {
  private readonly hits = new Map<string, number[]>();

  constructor(
    private readonly perMin: number,
    private readonly clock: () => number,
  ) {}

  private recent(key: string): number[] {
    const now = this.clock();
    const list = (this.hits.get(key) ?? []).filter((t) => now - t < 60_000);
    if (list.length === 0) this.hits.delete(key);
    else this.hits.set(key, list);
    return list;
  }

  /** Seconds to wait when any of `keys` is at its limit, else 0. */
  retryAfterS(keys: string[]): number {
    let wait = 0;
    for (const key of keys) {
      const list = this.recent(key);
      if (list.length >= this.perMin) {
        const oldest = list[0] ?? this.clock();
        wait = Math.max(wait, Math.ceil((oldest + 60_000 - this.clock()) / 1000));
      }
    }
    return wait;
  }

  add(keys: string[]): void {
    const now = this.clock();
    for (const key of keys) {
      if (!this.hits.has(key) && this.hits.size >= LIMITER_KEYS) {
        // forget the key seen longest ago (Map keeps insertion order)
        const first = this.hits.keys().next().value;
        if (first !== undefined) this.hits.delete(first);
      }
      this.hits.set(key, [...this.recent(key), now]);
    }
  }
}

export interface PickupFeatureOptions {
  /** the service's clock (tests inject one) */
  clock?: () => number;
  wrongCodesPerMin?: number;
  /** draws a fresh code (tests force collisions with it) */
  newCode?: () => string;
}

export class PickupFeature implements OrderFeature {
  readonly name = 'pickup';
  private readonly clock: () => number;
  private readonly limiter: WrongCodeLimiter;
  private readonly perMin: number;
  private readonly newCode: (() => string) | undefined;
  private metricPickups: Counter<'outcome'> | undefined;

  constructor(
    private readonly store: KitStore,
    opts: PickupFeatureOptions = {},
  ) {
    this.clock = opts.clock ?? Date.now;
    this.perMin = opts.wrongCodesPerMin ?? WRONG_CODES_PER_MIN;
    this.newCode = opts.newCode;
    this.limiter = new WrongCodeLimiter(this.perMin, this.clock);
  }

  /** The slot an order names, refused before pricing when unknown or over. */
  admit(d: OrderDraft): void {
    const id = d.body.pickupSlotId;
    if (id === undefined) return;
    const slot = d.cat.catalog.pickupSlots.find((s) => s.id === id);
    if (!slot) {
      throw new KitError('VALIDATION', `unknown pickup slot ${id}`, {
        pickupSlotId: id,
        slots: d.cat.catalog.pickupSlots.map((s) => s.id),
      });
    }
    if (d.now >= parseIsoTime(slot.endsAt)) {
      throw new KitError('SALE_ENDED', `pickup slot ${id} ended at ${slot.endsAt}: choose another`, {
        pickupSlotId: id,
        endsAt: slot.endsAt,
      });
    }
  }

  commit(d: OrderDraft): InTxnStep | undefined {
    const id = d.body.pickupSlotId;
    const slot = id === undefined ? undefined : d.cat.catalog.pickupSlots.find((s) => s.id === id);
    return slot ? pickupSlotStep(this.store, slot, this.newCode) : undefined;
  }

  /**
   * Hand over the order of a code typed or scanned by `by` (a terminal id or `admin`) from `ip`. Wrong
   * codes count against both; over the limit, even a right code waits (no guessing between typos).
   */
  async pickUp(input: string, by: string, ip: string): Promise<StoredOrder> {
    const keys = [`by:${by}`, `ip:${ip}`];
    const wait = this.limiter.retryAfterS(keys);
    if (wait > 0) {
      this.count('limited');
      throw new KitError('TOO_MANY_REQUESTS', `too many wrong pickup codes: retry in ${wait} s`, {
        max: this.perMin,
        retryAfterS: wait,
      });
    }
    const code = normalisePickupCode(input);
    const outcome: PickupOutcome = code
      ? await pickUp(this.store, { code, by, now: this.clock() })
      : { kind: 'unknown' };
    this.count(outcome.kind);
    switch (outcome.kind) {
      case 'picked':
        return outcome.order;
      case 'unknown':
        this.limiter.add(keys);
        throw new KitError('NOT_FOUND', 'no order has this pickup code on this kit', {
          code: code ?? null,
        });
      case 'already':
        throw new KitError(
          'ALREADY_PICKED_UP',
          `order ${outcome.order.id} was already picked up at ${outcome.order.pickup?.pickedUpAt} by ${outcome.order.pickup?.pickedUpBy}`,
          {
            orderId: outcome.order.id,
            pickedUpAt: outcome.order.pickup?.pickedUpAt,
            pickedUpBy: outcome.order.pickup?.pickedUpBy,
          },
        );
      case 'held':
        throw new KitError(
          'NOT_PAID',
          `order ${outcome.order.id} is held, not paid yet: do not hand it over`,
          {
            orderId: outcome.order.id,
            status: 'held',
            ...(outcome.order.hold ? { hold: outcome.order.hold } : {}),
          },
        );
      case 'declined':
        throw new KitError(
          'NOT_PAID',
          `order ${outcome.order.id}: the card was ${outcome.order.syncState} (${outcome.order.declineReason ?? 'no reason'}): do not hand it over`,
          {
            orderId: outcome.order.id,
            syncState: outcome.order.syncState,
            ...(outcome.order.declineReason ? { declineReason: outcome.order.declineReason } : {}),
          },
        );
      case 'released':
        throw new KitError(
          'CONFLICT',
          `order ${outcome.order.id} was released (${outcome.order.hold?.releaseReason ?? 'not paid'}): nothing to hand over`,
          { orderId: outcome.order.id, status: 'released' },
        );
    }
  }

  private count(outcome: string): void {
    this.metricPickups?.inc({ outcome });
  }

  /** The current catalog's slots with their counts (O(slots): counts are kept in the store). */
  summary(catalog: StoredCatalog | undefined = readStoredCatalog(this.store)): SlotSummary[] {
    if (!catalog) return [];
    const now = this.clock();
    return catalog.pickupSlots.map((s) => {
      const taken = slotTaken(this.store, catalog.eventId, s.id);
      const pickedUp = slotPickedUp(this.store, catalog.eventId, s.id);
      const open = Math.max(0, taken - pickedUp);
      const over = now >= parseIsoTime(s.endsAt);
      return {
        slotId: s.id,
        ...(s.label !== undefined ? { label: s.label } : {}),
        startsAt: s.startsAt,
        endsAt: s.endsAt,
        capacity: s.capacity,
        taken,
        pickedUp,
        waiting: over ? 0 : open,
        overdue: over ? open : 0,
      };
    });
  }

  /**
   * The queue: the current event's pickup orders, by slot start then order id, filtered. States come
   * from the store's queue index and the slot windows; only the orders answered with are read.
   */
  queue(filter: { slot?: string; state?: PickupState; limit: number }) {
    const catalog = readStoredCatalog(this.store);
    if (!catalog) return { eventId: null, slots: [], orders: [], truncated: false };
    const now = this.clock();
    const windows = new Map(
      catalog.pickupSlots.map((s) => [
        s.id,
        { start: parseIsoTime(s.startsAt), end: parseIsoTime(s.endsAt) },
      ]),
    );
    const rows: Array<{ orderId: string; state: PickupState; start: number }> = [];
    for (const { slotId, orderId, mark } of pickupQueueIndex(this.store, catalog.eventId, filter.slot)) {
      if (mark === 'r') continue;
      const w = windows.get(slotId);
      let state: PickupState = 'picked_up';
      if (mark === 'w') {
        // a slot that left the catalog: the window the order was sold with
        const end = w?.end ?? parseIsoTime(pickupOrder(this.store, orderId)?.pickup?.endsAt ?? '');
        state = now >= end ? 'overdue' : 'waiting';
      }
      if (filter.state !== undefined && state !== filter.state) continue;
      rows.push({ orderId, state, start: w?.start ?? Number.POSITIVE_INFINITY });
    }
    rows.sort((a, b) => a.start - b.start || (a.orderId < b.orderId ? -1 : a.orderId > b.orderId ? 1 : 0));
    const orders = [];
    for (const { orderId, state } of rows.slice(0, filter.limit)) {
      const o = pickupOrder(this.store, orderId);
      if (!o?.pickup || o.status === 'released') continue;
      const slot = catalog.pickupSlots.find((s) => s.id === o.pickup?.slotId);
      const endsAt = slot?.endsAt ?? o.pickup.endsAt;
      orders.push({
        orderId: o.id,
        code: o.pickup.code,
        slotId: o.pickup.slotId,
        state,
        status: o.status,
        createdAt: o.createdAt,
        lines: o.lines.map((l) => ({ sku: l.sku, name: l.name, qty: l.qty })),
        ...(endsAt !== undefined ? { endsAt } : {}),
        ...(o.pickup.pickedUpAt ? { pickedUpAt: o.pickup.pickedUpAt } : {}),
        ...(o.pickup.pickedUpBy ? { pickedUpBy: o.pickup.pickedUpBy } : {}),
      });
    }
    return {
      eventId: catalog.eventId,
      slots: this.summary(catalog).filter((s) => filter.slot === undefined || s.slotId === filter.slot),
      orders,
      truncated: rows.length > filter.limit,
    };
  }

  status(): Record<string, unknown> {
    return { pickup: { slots: this.summary() } };
  }

  metrics(registry: Registry): void {
    this.metricPickups = new Counter({
      name: 'popkit_pickups_total',
      help: 'Pickup code entries, by outcome (picked, unknown, already, held, declined, released, limited)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    });
    const summary = () => this.summary();
    new Gauge({
      name: 'popkit_pickup_slot_orders',
      help: 'Orders per pickup slot of the current catalog, by state (taken, picked_up, waiting, overdue)',
      labelNames: ['slot', 'state'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const s of summary()) {
          this.set({ slot: s.slotId, state: 'taken' }, s.taken);
          this.set({ slot: s.slotId, state: 'picked_up' }, s.pickedUp);
          this.set({ slot: s.slotId, state: 'waiting' }, s.waiting);
          this.set({ slot: s.slotId, state: 'overdue' }, s.overdue);
        }
      },
    });
  }
}

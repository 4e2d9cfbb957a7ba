// Pickup slots and codes (docs/drops.md#pickup). An order that takes a slot counts against the slot's
// capacity and gets a short code in its own transaction (checked and counted there, so two kits'
// worth of concurrent orders cannot overfill a slot or share a code on this kit); the handover sets
// `pickedUpAt` once, in one transaction with the `picked_up` order event that carries it to the hub.
//
// Counts live in `slotCounts`, keyed per event so that a slot id reused by the next event starts
// empty: `<eventId>/<slotId>` → orders holding a place, `picked/<eventId>/<slotId>` → orders handed
// over (ids cannot hold `/`, so the two never collide). `pickupCodes`: code → order id, for every
// pickup order this kit ever took (a code stays unique among the kit's orders, across events), and
// the queue's index `e/<eventId>/<slotId>/<orderId>` → `w` (waiting), `p` (picked up) or `r`
// (released), so reading the queue does not decode every order (a code has no `/`).
import { randomInt } from 'node:crypto';
import { KitError } from '../errors.ts';
import type { KitStore, StoredOrder } from './open.ts';
import type { InTxnStep } from './orders.ts';
import { enqueueOrderEventInTxn } from './outbox.ts';

/** Crockford base32: no I, L, O, U; typed O, I and L read as 0, 1, 1 (normalisePickupCode). */
export const CODE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const CODE_LENGTH = 6;
/** fresh codes tried in one transaction before giving up (32^6 ≈ 10^9 codes: a miss is rare) */
const CODE_TRIES = 16;

const takenKey = (eventId: string, slotId: string) => `${eventId}/${slotId}`;
const pickedKey = (eventId: string, slotId: string) => `picked/${eventId}/${slotId}`;
const queueKey = (eventId: string, slotId: string, orderId: string) => `e/${eventId}/${slotId}/${orderId}`;

/** An order's place in the queue index. */
export type QueueMark = 'w' | 'p' | 'r';

/**
 * A code as staff typed or scanned it, in canonical form: upper case, spaces and dashes dropped, the
 * confusable O, I and L read as 0, 1 and 1. Undefined when it cannot be a code (wrong length, other
 * characters).
 */
export function normalisePickupCode(input: string): string | undefined {
  const s = input.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
  if (s.length !== CODE_LENGTH) return undefined;
  for (const ch of s) if (!CODE_ALPHABET.includes(ch)) return undefined;
  return s;
}

export function newPickupCode(): string {
  let out = '';
  for (let i = 0; i < CODE_LENGTH; i++) out += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
  return out;
}

/** Orders holding a place in a slot of an event. */
export function slotTaken(store: KitStore, eventId: string, slotId: string): number {
  return store.slotCounts.get(takenKey(eventId, slotId)) ?? 0;
}

/** Orders of a slot already handed over. */
export function slotPickedUp(store: KitStore, eventId: string, slotId: string): number {
  return store.slotCounts.get(pickedKey(eventId, slotId)) ?? 0;
}

/**
 * The order's part of its transaction: refuse with SLOT_FULL when the slot has no place left, else
 * take one and give the order an unused code. `check` sets `order.pickup` (it runs before the order is
 * written); `write` counts it and indexes the code.
 */
export function pickupSlotStep(
  store: KitStore,
  slot: { id: string; capacity: number; startsAt: string; endsAt: string },
  newCode: () => string = newPickupCode,
): InTxnStep {
  return {
    check(order) {
      const taken = slotTaken(store, order.eventId, slot.id);
      if (taken >= slot.capacity) {
        return new KitError('SLOT_FULL', `pickup slot ${slot.id} is full: choose another`, {
          pickupSlotId: slot.id,
          capacity: slot.capacity,
        });
      }
      for (let i = 0; i < CODE_TRIES; i++) {
        const code = newCode();
        if (store.pickupCodes.get(code) === undefined) {
          order.pickup = { slotId: slot.id, code, startsAt: slot.startsAt, endsAt: slot.endsAt };
          return undefined;
        }
      }
      return new KitError('INTERNAL', 'no unused pickup code found');
    },
    write(order) {
      if (!order.pickup) return;
      const key = takenKey(order.eventId, slot.id);
      void store.slotCounts.put(key, (store.slotCounts.get(key) ?? 0) + 1);
      void store.pickupCodes.put(order.pickup.code, order.id);
      void store.pickupCodes.put(queueKey(order.eventId, slot.id, order.id), 'w' satisfies QueueMark);
    },
  };
}

/**
 * Inside the transaction that releases an order (a held order let go): its place in the slot is free
 * again. Its code keeps pointing at it, so entering it says "released" rather than "unknown".
 */
export function releaseSlotInTxn(store: KitStore, order: StoredOrder): void {
  if (!order.pickup || order.pickup.pickedUpAt) return;
  const key = takenKey(order.eventId, order.pickup.slotId);
  const n = store.slotCounts.get(key) ?? 0;
  if (n > 0) void store.slotCounts.put(key, n - 1);
  void store.pickupCodes.put(queueKey(order.eventId, order.pickup.slotId, order.id), 'r' satisfies QueueMark);
}

export type PickupOutcome =
  | { kind: 'picked'; order: StoredOrder }
  | { kind: 'unknown' }
  | { kind: 'already'; order: StoredOrder }
  | { kind: 'held'; order: StoredOrder }
  | { kind: 'released'; order: StoredOrder }
  | { kind: 'declined'; order: StoredOrder };

/**
 * Hand over the order of `code` (canonical form) once: `pickedUpAt` and `pickedUpBy` on the order and
 * its `picked_up` event in one transaction. Anything else changes nothing.
 */
export function pickUp(
  store: KitStore,
  p: { code: string; by: string; now: number },
): Promise<PickupOutcome> {
  return store.root.transaction((): PickupOutcome => {
    const id = store.pickupCodes.get(p.code);
    const order = id === undefined ? undefined : store.orders.get(id);
    if (!order?.pickup) return { kind: 'unknown' };
    if (order.pickup.pickedUpAt) return { kind: 'already', order };
    if (order.status === 'released') return { kind: 'released', order };
    if (order.status === 'held') return { kind: 'held', order };
    // the hub's gateway refused the card (or the hub could not store the order): not paid
    if (order.syncState === 'declined' || order.syncState === 'rejected') return { kind: 'declined', order };
    const at = new Date(p.now).toISOString();
    const next: StoredOrder = { ...order, pickup: { ...order.pickup, pickedUpAt: at, pickedUpBy: p.by } };
    void store.orders.put(order.id, next);
    const key = pickedKey(order.eventId, order.pickup.slotId);
    void store.slotCounts.put(key, (store.slotCounts.get(key) ?? 0) + 1);
    void store.pickupCodes.put(
      queueKey(order.eventId, order.pickup.slotId, order.id),
      'p' satisfies QueueMark,
    );
    enqueueOrderEventInTxn(store, { type: 'picked_up', orderId: order.id, at, by: p.by }, p.now);
    return { kind: 'picked', order: next };
  });
}

/** The order a code names (canonical form), if any. */
export function orderForPickupCode(store: KitStore, code: string): StoredOrder | undefined {
  const id = store.pickupCodes.get(code);
  return id === undefined ? undefined : store.orders.get(id);
}

/**
 * The queue index of an event (or one slot of it): every pickup order's slot, id and mark, in slot id
 * then order id order, without reading the orders.
 */
export function* pickupQueueIndex(
  store: KitStore,
  eventId: string,
  slotId?: string,
): Generator<{ slotId: string; orderId: string; mark: QueueMark }> {
  const prefix = slotId === undefined ? `e/${eventId}/` : `e/${eventId}/${slotId}/`;
  // ids hold no '/' (0x2f): every key under the prefix sorts before the prefix with '0' (0x30) for '/'
  const end = `${prefix.slice(0, -1)}0`;
  for (const { key, value } of store.pickupCodes.getRange({ start: prefix, end })) {
    const [slot, orderId] = key.slice(`e/${eventId}/`.length).split('/');
    if (slot !== undefined && orderId !== undefined)
      yield { slotId: slot, orderId, mark: value as QueueMark };
  }
}

/** One order by id (the queue reads only the rows it answers with). */
export function pickupOrder(store: KitStore, orderId: string): StoredOrder | undefined {
  return store.orders.get(orderId);
}

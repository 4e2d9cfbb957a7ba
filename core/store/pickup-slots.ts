// A pickup slot's counts and queue marks (docs/drops.md#pickup), apart from the rest of pickup.ts so
// that releasing a held order (holds.ts, which the ack application in outbox.ts uses) can free its
// place without importing the outbox back. Keys: see pickup.ts.
import type { KitStore, StoredOrder } from './open.ts';

export const takenKey = (eventId: string, slotId: string) => `${eventId}/${slotId}`;
export const pickedKey = (eventId: string, slotId: string) => `picked/${eventId}/${slotId}`;
export const queueKey = (eventId: string, slotId: string, orderId: string) =>
  `e/${eventId}/${slotId}/${orderId}`;

/** An order's place in the queue index. */
export type QueueMark = 'w' | 'p' | 'r';

/** Orders holding a place in a slot of an event. */
export function slotTaken(store: KitStore, eventId: string, slotId: string): number {
  return store.slotCounts.get(takenKey(eventId, slotId)) ?? 0;
}

/** Orders of a slot already handed over. */
export function slotPickedUp(store: KitStore, eventId: string, slotId: string): number {
  return store.slotCounts.get(pickedKey(eventId, slotId)) ?? 0;
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

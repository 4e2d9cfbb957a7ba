// Held orders (docs/security.md#drain-proofing): a scarce item bought offline by a buyer without
// credentials is taken from stock but `held` until it is paid in a way the kit trusts. These are the
// in-transaction moves of a hold, used by the hub's verdicts (outbox.ts applyOrderAckInTxn), the staff
// routes and the expiry sweeper (hold-ops.ts): each leaves stock, the expiry index, the device's
// counts and the sealed token consistent with the order's new status. The caller writes the order and
// queues its order event in the same transaction.
import { closeDeviceHoldInTxn } from './devices.ts';
import type { KitStore, StoredOrder } from './open.ts';
import { returnStockInTxn, stockNeeds } from './orders.ts';
import { dropTokenInTxn } from './tokens.ts';

/** The expiry index key of a held order ([until, id]), or undefined without an `until`. */
export function holdExpiryKey(order: StoredOrder): [number, string] | undefined {
  const until = order.hold?.until ? Date.parse(order.hold.until) : Number.NaN;
  return Number.isFinite(until) ? [until, order.id] : undefined;
}

/** Inside the order's transaction: index the hold for the sweeper (shared index, kind `hold`). */
export function putHoldExpiryInTxn(store: KitStore, order: StoredOrder): void {
  const key = holdExpiryKey(order);
  if (key) void store.expiries.put(key, 'hold');
}

function closeHoldInTxn(store: KitStore, order: StoredOrder): void {
  const key = holdExpiryKey(order);
  // only ever our own entries: reservations share the index
  if (key && store.expiries.get(key) === 'hold') void store.expiries.remove(key);
  if (order.deviceId) closeDeviceHoldInTxn(store, order.deviceId, order.eventId);
}

/**
 * A held order let go: its units back to stock, its hold closed. Before the hub has the order
 * (`pending`) its sealed token is dropped too, so a released order's card is never charged (sync
 * sends it as `tokenError: missing`). Returns the order to write.
 */
export function releaseHeldInTxn(
  store: KitStore,
  order: StoredOrder,
  how: { reason: string; at: string },
): StoredOrder {
  returnStockInTxn(store, stockNeeds(order.lines));
  closeHoldInTxn(store, order);
  if (order.syncState === 'pending') dropTokenInTxn(store, order.id);
  return {
    ...order,
    status: 'released',
    hold: { ...(order.hold ?? { reason: 'held' }), releasedAt: how.at, releaseReason: how.reason },
  };
}

/** A held order paid: `accepted`, its units stay sold. Returns the order to write. */
export function confirmHeldInTxn(store: KitStore, order: StoredOrder): StoredOrder {
  closeHoldInTxn(store, order);
  return { ...order, status: 'accepted' };
}

/** Held-order ids whose hold ended at or before `now`, oldest first (at most `limit`). */
export function expiredHolds(store: KitStore, now: number, limit: number): string[] {
  const ids: string[] = [];
  for (const { key, value } of store.expiries.getRange({ end: [now, '\uffff'] })) {
    if (value === 'hold') ids.push(key[1]);
    if (ids.length >= limit) break;
  }
  return ids;
}

/** Orders held now (the expiry index's `hold` entries). */
export function heldCount(store: KitStore): number {
  let n = 0;
  for (const { value } of store.expiries.getRange({})) if (value === 'hold') n++;
  return n;
}

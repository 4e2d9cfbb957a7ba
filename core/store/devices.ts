// Buyer devices (docs/security.md#drain-proofing): one record per device token the kit issued, with
// what the device bought of scarce items and its held orders, counted per event. The counts move only
// inside the order's own transaction (services/checkout/drain.ts commit step) or a hold's release.
import type { DeviceRecord, KitStore } from './open.ts';

/** Record a newly issued device (its own commit: the token is answered only once it is durable). */
export async function recordDevice(store: KitStore, id: string, issuedAt: string): Promise<void> {
  await store.devices.put(id, { id, issuedAt, units: [], heldOrders: 0 });
}

export function readDevice(store: KitStore, id: string): DeviceRecord | undefined {
  return store.devices.get(id);
}

/** The device's counts for `eventId`: a record of another event counts as fresh (shares are per event). */
export function deviceCounts(
  rec: DeviceRecord,
  eventId: string,
): { units: Map<string, number>; heldOrders: number; heldOpen: number; allowanceUsed: number } {
  const fresh = (rec.eventId ?? eventId) !== eventId;
  return {
    units: new Map(fresh ? [] : rec.units),
    heldOrders: fresh ? 0 : rec.heldOrders,
    heldOpen: fresh ? 0 : (rec.heldOpen ?? 0),
    allowanceUsed: fresh ? 0 : (rec.allowanceUsed ?? 0),
  };
}

/** Inside the order's transaction: add what the order took to its device's counts. */
export function countDeviceOrderInTxn(
  store: KitStore,
  id: string,
  eventId: string,
  add: { units: Map<string, number>; held: boolean; allowance: boolean },
): void {
  const rec = store.devices.get(id);
  if (!rec) return;
  const c = deviceCounts(rec, eventId);
  for (const [k, n] of add.units) c.units.set(k, (c.units.get(k) ?? 0) + n);
  void store.devices.put(id, {
    ...rec,
    eventId,
    units: [...c.units],
    heldOrders: c.heldOrders + (add.held ? 1 : 0),
    heldOpen: c.heldOpen + (add.held ? 1 : 0),
    allowanceUsed: c.allowanceUsed + (add.allowance ? 1 : 0),
  });
}

/** Inside a transaction: one of the device's held orders was confirmed or released. */
export function closeDeviceHoldInTxn(store: KitStore, id: string, eventId: string): void {
  const rec = store.devices.get(id);
  if (!rec || (rec.eventId ?? eventId) !== eventId) return;
  void store.devices.put(id, { ...rec, heldOpen: Math.max(0, (rec.heldOpen ?? 0) - 1) });
}

/** Devices issued on this kit (status). */
export function deviceCount(store: KitStore): number {
  return store.devices.getKeysCount();
}

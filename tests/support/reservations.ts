// Test helpers for reservations: time passing while a kit is down, for tests that run checkout on the
// system clock (the property test injects its clock instead).
import type { KitStore } from '../../core/store/index.ts';

/** Move a hold's expiry `ms` earlier (record and expiry index together, in one transaction). */
export async function rewindReservationForTest(store: KitStore, id: string, ms: number): Promise<void> {
  await store.root.transaction(() => {
    const rec = store.reservations.get(id);
    if (!rec) throw new Error(`no reservation ${id}`);
    void store.expiries.remove([rec.expiresAt, id]);
    void store.reservations.put(id, { ...rec, expiresAt: rec.expiresAt - ms });
    void store.expiries.put([rec.expiresAt - ms, id], 'reservation');
  });
}

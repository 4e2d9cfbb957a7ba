// Loyalty pass uses on this kit (docs/drops.md#loyalty): one record per pass and event, counted in the
// order's own transaction (an InTxnStep of services/checkout/loyalty.ts), so two concurrent orders with
// one pass cannot both take its last use: LMDB runs write transactions one at a time, and the count
// is read and written inside it.
import { KitError } from '../errors.ts';
import type { KitStore, LoyaltyUseRecord, StoredOrder } from './open.ts';
import type { InTxnStep } from './orders.ts';

/** pass ids and event ids have no `/` (core/contracts/loyalty.ts, ID_LEVEL) */
const useKey = (passId: string, eventId: string) => `${passId}/${eventId}`;

/** A pass's uses on this kit for one event (0 when never used here). */
export function passUses(store: KitStore, passId: string, eventId: string): number {
  return store.loyaltyUses.get(useKey(passId, eventId))?.uses ?? 0;
}

export interface PassRedemption {
  passId: string;
  holder: string;
  eventId: string;
  cents: number;
  /** uses this kit allows for this pass and event (the pass's own, or a lower per-kit cap) */
  allowed: number;
}

/**
 * The order's step: `check` refuses PASS_USED when no use is left on this kit (nothing is written),
 * `write` counts this use with the order.
 */
export function redeemPassStep(store: KitStore, r: PassRedemption): InTxnStep {
  const key = useKey(r.passId, r.eventId);
  return {
    check: () => {
      const used = store.loyaltyUses.get(key)?.uses ?? 0;
      if (used < r.allowed) return undefined;
      return new KitError('PASS_USED', 'this loyalty pass has no use left on this kit', {
        passId: r.passId,
        uses: used,
        allowed: r.allowed,
      });
    },
    write: (order: StoredOrder) => {
      const prev = store.loyaltyUses.get(key);
      const next: LoyaltyUseRecord = {
        passId: r.passId,
        eventId: r.eventId,
        holder: r.holder,
        uses: (prev?.uses ?? 0) + 1,
        cents: (prev?.cents ?? 0) + r.cents,
        orderIds: [...(prev?.orderIds ?? []), order.id],
        lastAt: order.createdAt,
      };
      void store.loyaltyUses.put(key, next);
    },
  };
}

/** Redemptions and discount given on this kit, over every pass and event (status, metrics). */
export function loyaltyTotals(store: KitStore): {
  passes: number;
  redemptions: number;
  discountCents: number;
} {
  let passes = 0;
  let redemptions = 0;
  let discountCents = 0;
  for (const { value } of store.loyaltyUses.getRange()) {
    passes++;
    redemptions += value.uses;
    discountCents += value.cents;
  }
  return { passes, redemptions, discountCents };
}

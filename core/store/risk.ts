// The offline risk budget: card-token orders not yet synced, by count, amount and age of the oldest.
// It goes UP in the transaction that writes a card order and DOWN in the one that applies the hub's
// ack for it; both directions are here, so the counters and the riskq index always move together.
import { type KitStore, META, type RiskCounters } from './open.ts';

export interface RiskLimits {
  maxOrderCents: number;
  maxUnsyncedCents: number;
  maxUnsyncedOrders: number;
  maxUnsyncedAgeS: number;
}

export interface RiskView {
  limits: RiskLimits;
  usage: { unsyncedCents: number; unsyncedOrders: number; oldestUnsyncedAgeS: number };
  /** how close each limit is, 0..1+ */
  ratio: { unsyncedCents: number; unsyncedOrders: number; oldestUnsyncedAgeS: number };
  /** limits now refusing card orders */
  blocking: string[];
}

export function readRiskCounters(store: KitStore): RiskCounters {
  return (
    (store.meta.get(META.risk) as RiskCounters | undefined) ?? {
      unsyncedTokenOrders: 0,
      unsyncedTokenCents: 0,
    }
  );
}

/** When the oldest unsynced card order was taken (epoch ms), or `now` when there is none. */
function oldestUnsyncedAt(store: KitStore, now: number): number {
  let oldestAt = now;
  for (const { value } of store.riskq.getRange({ limit: 1 })) oldestAt = value.at;
  return oldestAt;
}

export function riskView(
  store: KitStore,
  limits: RiskLimits,
  counters: RiskCounters = readRiskCounters(store),
  now = Date.now(),
): RiskView {
  const oldestAt = oldestUnsyncedAt(store, now);
  const usage = {
    unsyncedCents: counters.unsyncedTokenCents,
    unsyncedOrders: counters.unsyncedTokenOrders,
    oldestUnsyncedAgeS: Math.max(0, Math.floor((now - oldestAt) / 1000)),
  };
  const r = (v: number, max: number) => (max === 0 ? (v > 0 ? Number.POSITIVE_INFINITY : 0) : v / max);
  const ratio = {
    unsyncedCents: r(usage.unsyncedCents, limits.maxUnsyncedCents),
    unsyncedOrders: r(usage.unsyncedOrders, limits.maxUnsyncedOrders),
    oldestUnsyncedAgeS: r(usage.oldestUnsyncedAgeS, limits.maxUnsyncedAgeS),
  };
  const blocking: string[] = [];
  if (usage.unsyncedCents >= limits.maxUnsyncedCents) blocking.push('maxUnsyncedCents');
  if (usage.unsyncedOrders >= limits.maxUnsyncedOrders) blocking.push('maxUnsyncedOrders');
  if (usage.unsyncedOrders > 0 && usage.oldestUnsyncedAgeS >= limits.maxUnsyncedAgeS)
    blocking.push('maxUnsyncedAgeS');
  return { limits, usage, ratio, blocking };
}

/**
 * Inside the order's transaction: may one more card order of `cents` be taken? The new order counts
 * toward the amount; the count and age limits refuse at the limit.
 */
export function checkRiskInTxn(
  store: KitStore,
  limits: RiskLimits,
  cents: number,
  now: number,
): { ok: true; counters: RiskCounters } | { ok: false; limit: string; view: RiskView } {
  const counters = readRiskCounters(store);
  const view = riskView(
    store,
    limits,
    {
      unsyncedTokenOrders: counters.unsyncedTokenOrders,
      unsyncedTokenCents: counters.unsyncedTokenCents + cents,
    },
    now,
  );
  const blocking = view.blocking.filter((b) => b !== 'maxUnsyncedCents');
  if (view.usage.unsyncedCents > limits.maxUnsyncedCents) blocking.unshift('maxUnsyncedCents');
  if (blocking.length > 0) return { ok: false, limit: blocking[0] as string, view };
  return { ok: true, counters };
}

/** The budget goes up: a card order was written (same transaction). */
export function riskUpInTxn(
  store: KitStore,
  counters: RiskCounters,
  orderId: string,
  cents: number,
  at: number,
): void {
  void store.riskq.put(orderId, { cents, at });
  void store.meta.put(META.risk, {
    unsyncedTokenOrders: counters.unsyncedTokenOrders + 1,
    unsyncedTokenCents: counters.unsyncedTokenCents + cents,
  } satisfies RiskCounters);
}

/** The budget goes down: the hub acked a card order (same transaction as the outbox removal). */
export function riskDownInTxn(store: KitStore, orderId: string, cents: number): void {
  const c = readRiskCounters(store);
  void store.meta.put(META.risk, {
    unsyncedTokenOrders: Math.max(0, c.unsyncedTokenOrders - 1),
    unsyncedTokenCents: Math.max(0, c.unsyncedTokenCents - cents),
  } satisfies RiskCounters);
  void store.riskq.remove(orderId);
}

// Orders: one order is written in ONE transaction with everything that must move with it — the stock
// decrement, its outbox entry, its sealed token and the risk budget (card orders), the id high-water
// mark and its idempotency record — and the caller answers only after that commit is on disk.
// Concurrent orders share a commit (and its fsync).
import { LANES } from '../contracts/lanes.ts';
import type { SealedToken } from '../token-vault.ts';
import { type KitStore, META, type OutboxEntry, type OutboxKey, type StoredOrder } from './open.ts';
import { checkRiskInTxn, type RiskLimits, type RiskView, riskUpInTxn } from './risk.ts';
import { putTokenInTxn } from './tokens.ts';

export interface OrderCommit {
  order: StoredOrder;
  /** the card token, sealed; its order counts against the risk budget */
  sealed: SealedToken | null;
  /** the risk limits a card order must fit */
  limits: RiskLimits;
  idempotency?: { key: string; bodyHash: string };
  /** the id generator's high-water mark once `order.id` was drawn */
  idHighWater: number;
  now: number;
}

export type CommitOutcome =
  | { kind: 'created' }
  | { kind: 'replay'; orderId: string; bodyHash: string }
  | { kind: 'soldout'; sku: string; available: number }
  | { kind: 'risk'; limit: string; view: RiskView };

/** Check and write one order; nothing is written unless the outcome is `created`. */
export function commitOrder(store: KitStore, c: OrderCommit): Promise<CommitOutcome> {
  const { order, sealed } = c;
  return store.root.transaction((): CommitOutcome => {
    if (c.idempotency) {
      const seen = store.idempotency.get(c.idempotency.key);
      if (seen) return { kind: 'replay', orderId: seen.orderId, bodyHash: seen.bodyHash };
    }
    const stockAfter: Array<[string, number]> = [];
    for (const line of order.lines) {
      const available = store.stock.get(line.sku) ?? 0;
      if (available < line.qty) return { kind: 'soldout', sku: line.sku, available };
      stockAfter.push([line.sku, available - line.qty]);
    }
    const risk = sealed ? checkRiskInTxn(store, c.limits, order.totalCents, c.now) : undefined;
    if (risk && !risk.ok) return { kind: 'risk', limit: risk.limit, view: risk.view };
    for (const [sku, left] of stockAfter) void store.stock.put(sku, left);
    void store.orders.put(order.id, order);
    const entry: OutboxEntry = { kind: 'order', ref: order.id, createdAt: c.now };
    if (sealed && risk?.ok) {
      entry.riskCents = order.totalCents;
      putTokenInTxn(store, order.id, sealed);
      riskUpInTxn(store, risk.counters, order.id, order.totalCents, c.now);
    }
    void store.outbox.put([LANES.orders, order.id] satisfies OutboxKey, entry);
    void store.meta.put(META.idHighWater, c.idHighWater);
    if (c.idempotency) {
      void store.idempotency.put(c.idempotency.key, { orderId: order.id, bodyHash: c.idempotency.bodyHash });
    }
    return { kind: 'created' };
  });
}

export function getOrder(store: KitStore, id: string): StoredOrder | undefined {
  return store.orders.get(id);
}

/** Every stored order, in id order (tests and tools; not for the hot path). */
export function* allOrders(store: KitStore): Generator<StoredOrder> {
  for (const { value } of store.orders.getRange()) yield value;
}

/** The order an Idempotency-Key was first used for, with the hash of that request's body. */
export function findIdempotent(
  store: KitStore,
  key: string,
): { orderId: string; bodyHash: string } | undefined {
  return store.idempotency.get(key);
}

/** The highest order id ever committed, as MonotonicIds counts it (0 on a fresh store). */
export function readIdHighWater(store: KitStore): number {
  return (store.meta.get(META.idHighWater) as number | undefined) ?? 0;
}

// Orders: one order is written in ONE transaction with everything that must move with it — the stock
// decrement, its outbox entry, its sealed token and the risk budget (card orders), the id high-water
// mark and its idempotency record — and the caller answers only after that commit is on disk.
// Concurrent orders share a commit (and its fsync).
import { LANES } from '../contracts/lanes.ts';
import type { KitError } from '../errors.ts';
import type { SealedToken } from '../token-vault.ts';
import {
  type KitStore,
  META,
  type OrderLine,
  type OutboxEntry,
  type OutboxKey,
  type StoredOrder,
} from './open.ts';
import { checkRiskInTxn, type RiskLimits, type RiskView, riskUpInTxn } from './risk.ts';
import { putTokenInTxn } from './tokens.ts';

/**
 * A feature's part of an order's transaction (services/checkout/order-features.ts): `check` runs after
 * the stock and risk checks and may refuse (nothing is written); `write` runs with the order's writes.
 */
export interface InTxnStep {
  check?(order: StoredOrder): KitError | undefined;
  write?(order: StoredOrder): void;
}

/** Units per SKU that lines take from stock: a bundle line takes qty × each component. */
export function stockNeeds(lines: readonly OrderLine[]): Map<string, number> {
  const need = new Map<string, number>();
  const add = (sku: string, n: number) => need.set(sku, (need.get(sku) ?? 0) + n);
  for (const l of lines) {
    if (l.components) for (const c of l.components) add(c.sku, c.qty * l.qty);
    else add(l.sku, l.qty);
  }
  return need;
}

/** Inside a transaction: take `need` from stock, or name the first SKU short of it (nothing written). */
export function takeStockInTxn(
  store: KitStore,
  need: Map<string, number>,
): { ok: true } | { ok: false; sku: string; available: number } {
  const after: Array<[string, number]> = [];
  for (const [sku, qty] of need) {
    const available = store.stock.get(sku) ?? 0;
    if (available < qty) return { ok: false, sku, available };
    after.push([sku, available - qty]);
  }
  for (const [sku, left] of after) void store.stock.put(sku, left);
  return { ok: true };
}

/** Inside a transaction: give units back (a released hold, an expired reservation). */
export function returnStockInTxn(store: KitStore, need: Map<string, number>): void {
  for (const [sku, qty] of need) {
    const current = store.stock.get(sku);
    // a SKU that left the catalog meanwhile keeps no stock (catalog.ts)
    if (current !== undefined) void store.stock.put(sku, current + qty);
  }
}

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
  /** the units are already held (a converted reservation): take no stock */
  stockHeld?: boolean;
  /** false: a card order kept off the risk budget (held, or authorized online) */
  riskBudget?: boolean;
  /** the features' steps, in order */
  steps?: InTxnStep[];
}

export type CommitOutcome =
  | { kind: 'created' }
  | { kind: 'replay'; orderId: string; bodyHash: string }
  | { kind: 'soldout'; sku: string; available: number }
  | { kind: 'risk'; limit: string; view: RiskView }
  | { kind: 'refused'; error: KitError };

/** Check and write one order; nothing is written unless the outcome is `created`. */
export function commitOrder(store: KitStore, c: OrderCommit): Promise<CommitOutcome> {
  const { order, sealed } = c;
  return store.root.transaction((): CommitOutcome => {
    if (c.idempotency) {
      const seen = store.idempotency.get(c.idempotency.key);
      if (seen) return { kind: 'replay', orderId: seen.orderId, bodyHash: seen.bodyHash };
    }
    const need = c.stockHeld ? new Map<string, number>() : stockNeeds(order.lines);
    for (const [sku, qty] of need) {
      const available = store.stock.get(sku) ?? 0;
      if (available < qty) return { kind: 'soldout', sku, available };
    }
    const budgeted = sealed !== null && c.riskBudget !== false;
    const risk = budgeted ? checkRiskInTxn(store, c.limits, order.totalCents, c.now) : undefined;
    if (risk && !risk.ok) return { kind: 'risk', limit: risk.limit, view: risk.view };
    for (const step of c.steps ?? []) {
      const error = step.check?.(order);
      if (error) return { kind: 'refused', error };
    }
    takeStockInTxn(store, need);
    void store.orders.put(order.id, order);
    const entry: OutboxEntry = { kind: 'order', ref: order.id, createdAt: c.now };
    if (sealed) putTokenInTxn(store, order.id, sealed);
    if (sealed && risk?.ok) {
      entry.riskCents = order.totalCents;
      riskUpInTxn(store, risk.counters, order.id, order.totalCents, c.now);
    }
    for (const step of c.steps ?? []) step.write?.(order);
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

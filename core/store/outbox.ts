// The outbox: what sync forwards to the hub, one lane per priority (key = [lane, id], oldest first
// within a lane). Checkout writes order entries (orders.ts); sync writes its own lanes and removes an
// entry only in the transaction that applies the hub's ack for it, so a crash at worst resends.
import type { AckT } from '../contracts/hub-wire.ts';
import { LANE_NAMES, LANES, type LaneName } from '../contracts/lanes.ts';
import { recordDeclineInTxn } from './declines.ts';
import { confirmHeldInTxn, releaseHeldInTxn } from './holds.ts';
import { type KitStore, META, type OutboxEntry, type OutboxKey, type StoredOrder } from './open.ts';
import { riskDownInTxn } from './risk.ts';
import { dropTokenInTxn } from './tokens.ts';

// fresh option objects each call: lmdb-js marks the ones it is given (getKeysCount sets onlyCount)
const laneRange = (lane: number) => ({ start: [lane, ''] as OutboxKey, end: [lane + 1, ''] as OutboxKey });

/** Something that happened to an order after it was taken, on its way to the hub (hub-wire OrderEvent). */
export interface OrderEventBody {
  type: 'picked_up' | 'confirmed' | 'released';
  orderId: string;
  /** ISO 8601 */
  at: string;
  /** who did it: a terminal id, `admin`, `hub` (a verdict) or `expiry` */
  by?: string;
  reason?: string;
}

/**
 * Inside the transaction that changes the order: queue the event on the orders lane, right behind its
 * order (key `<orderId>~<type>`: each type happens at most once to an order).
 */
export function enqueueOrderEventInTxn(store: KitStore, event: OrderEventBody, now: number): void {
  const key: OutboxKey = [LANES.orders, `${event.orderId}~${event.type}`];
  void store.outbox.put(key, { kind: 'orderEvent', body: { ...event }, createdAt: now });
}

/** Write one entry (its own commit). */
export async function enqueueOutbox(store: KitStore, key: OutboxKey, entry: OutboxEntry): Promise<void> {
  await store.outbox.put(key, entry);
}

export function readOutboxEntry(store: KitStore, key: OutboxKey): OutboxEntry | undefined {
  return store.outbox.get(key);
}

/** Remove entries in one transaction (a lane's trim, a probe nobody forwarded). */
export async function removeOutboxEntries(store: KitStore, keys: Iterable<OutboxKey>): Promise<void> {
  await store.root.transaction(() => {
    for (const key of keys) void store.outbox.remove(key);
  });
}

/** Every entry from `start` on (the whole outbox without it) and before `end` (if given), in drain order. */
export function scanOutbox(
  store: KitStore,
  start?: OutboxKey,
  end?: OutboxKey,
): Iterable<{ key: OutboxKey; value: OutboxEntry }> {
  return store.outbox.getRange({ ...(start ? { start } : {}), ...(end ? { end } : {}) });
}

/** One lane's entries, oldest first. */
export function laneEntries(store: KitStore, lane: number): Iterable<{ key: OutboxKey; value: OutboxEntry }> {
  return store.outbox.getRange(laneRange(lane));
}

export function laneBacklog(store: KitStore, lane: number): number {
  return store.outbox.getKeysCount(laneRange(lane));
}

/** When the lane's oldest entry was queued (epoch ms), undefined when the lane is empty. */
export function laneOldestAt(store: KitStore, lane: number): number | undefined {
  for (const { value } of store.outbox.getRange({ ...laneRange(lane), limit: 1 })) return value.createdAt;
  return undefined;
}

/** Entries waiting, per lane name. */
export function outboxCounts(store: KitStore): Record<LaneName, number> {
  const out = {} as Record<LaneName, number>;
  for (const name of LANE_NAMES) out[name] = laneBacklog(store, LANES[name]);
  return out;
}

/** The last stock snapshot sync queued (its JSON text), to skip queueing an identical one. */
export function lastStockSnapshot(store: KitStore): string | undefined {
  return store.meta.get(META.stockSnapshot) as string | undefined;
}

/**
 * Queue a stock snapshot in place of every older one still waiting (the hub only needs the latest),
 * in one transaction with the record of what was queued.
 */
export async function replaceStockSnapshot(
  store: KitStore,
  id: string,
  stock: Record<string, number>,
  text: string,
  createdAt: number,
): Promise<void> {
  const lane = LANES.stock;
  await store.root.transaction(() => {
    for (const key of store.outbox.getKeys(laneRange(lane))) void store.outbox.remove(key);
    void store.outbox.put([lane, id], { kind: 'stock', body: { stock }, createdAt });
    void store.meta.put(META.stockSnapshot, text);
  });
}

export interface OrderVerdict {
  state: 'forwarded' | 'settled' | 'declined' | 'rejected';
  reason?: string;
  at?: string;
}

/**
 * Remove an order's outbox entry after the hub acked it, in one transaction with the risk budget, the
 * order's sync state, its token and the recent declines. Call inside a transaction (applyHubAcks or
 * applyOrderAck). Returns false when the entry was already gone (a duplicate ack), changing nothing
 * of the outbox or the risk budget.
 */
export function applyOrderAckInTxn(store: KitStore, orderId: string, verdict: OrderVerdict): boolean {
  const key: OutboxKey = [LANES.orders, orderId];
  const entry = store.outbox.get(key);
  const order = store.orders.get(orderId);
  if (order) {
    const at = verdict.at ?? new Date().toISOString();
    const next: StoredOrder = { ...order, syncState: verdict.state, forwardedAt: order.forwardedAt ?? at };
    if (verdict.state === 'settled') next.settledAt = at;
    const refused = verdict.state === 'declined' || verdict.state === 'rejected';
    // a rejected order was never charged: shown with the declines, collect another way
    if (refused && verdict.reason) next.declineReason = verdict.reason;
    if (order.status === 'held' && (verdict.state === 'settled' || refused)) {
      // a held order's verdict (docs/security.md#drain-proofing): paid → confirmed; declined → its
      // units back to stock at once. Nothing was handed over, so there is nothing to collect.
      const held = heldVerdictInTxn(store, next, verdict.state === 'settled', verdict.reason, at);
      void store.orders.put(orderId, held);
    } else {
      // a released order was never handed over: nothing to collect
      if (refused && order.syncState !== verdict.state && order.status !== 'released') {
        // the host hears of it on the dashboard and in /v1/status (newest first)
        recordDeclineInTxn(store, {
          orderId,
          totalCents: order.totalCents,
          currency: order.currency,
          reason: verdict.reason ?? null,
          at,
          state: verdict.state === 'rejected' ? 'rejected' : 'declined',
        });
      }
      if (order.syncState !== next.syncState || !order.forwardedAt) void store.orders.put(orderId, next);
    }
  }
  // once the hub exchanged the token (either way) the kit has no reason to keep it
  if (verdict.state !== 'forwarded') dropTokenInTxn(store, orderId);
  if (!entry) return false;
  void store.outbox.remove(key);
  if (entry.riskCents !== undefined) riskDownInTxn(store, orderId, entry.riskCents);
  return true;
}

/** A held order's verdict: the order to write, with its `confirmed` or `released` event queued. */
function heldVerdictInTxn(
  store: KitStore,
  order: StoredOrder,
  paid: boolean,
  reason: string | undefined,
  at: string,
): StoredOrder {
  const now = Date.parse(at) || Date.now();
  if (paid) {
    enqueueOrderEventInTxn(store, { type: 'confirmed', orderId: order.id, at, by: 'hub' }, now);
    return confirmHeldInTxn(store, order);
  }
  // the event's reason travels to the hub: at most 300 characters (hub-wire OrderEvent)
  const why = `declined: ${reason ?? 'card_declined'}`.slice(0, 300);
  enqueueOrderEventInTxn(store, { type: 'released', orderId: order.id, at, by: 'hub', reason: why }, now);
  return releaseHeldInTxn(store, order, { reason: why, at });
}

/** One order's ack in its own transaction. */
export function applyOrderAck(store: KitStore, orderId: string, verdict: OrderVerdict): Promise<boolean> {
  return store.root.transaction(() => applyOrderAckInTxn(store, orderId, verdict));
}

export type HubAck = AckT['acks'][number];

/** A verdict nothing later changes: the gateway's settle or decline, or the hub's rejection. */
export function isTerminal(state: StoredOrder['syncState']): state is 'settled' | 'declined' | 'rejected' {
  return state === 'settled' || state === 'declined' || state === 'rejected';
}

/**
 * A batch of hub acks in one transaction. Sync-owned lanes: the entry goes. Orders: 'stored' keeps an
 * order's entry (the hub holds it for its gateway) and removes an order event's (the hub stored it);
 * a verdict applies; a late duplicate 'forwarded' never undoes a verdict that already arrived.
 */
export async function applyHubAcks(store: KitStore, acks: readonly HubAck[]): Promise<void> {
  await store.root.transaction(() => {
    for (const a of acks) {
      if (a.lane !== 'orders') {
        void store.outbox.remove([LANES[a.lane], a.id]);
        continue;
      }
      const key: OutboxKey = [LANES.orders, a.id];
      const kind = store.outbox.get(key)?.kind;
      if (kind === 'stockRelease' || kind === 'lanGrant') {
        // a stock release (or a LAN receipt) is done once the hub stored it (or dead-lettered it: it stays in the hub's
        // dead letters, the kit's record keeps what it released)
        if (a.state === 'stored' || a.state === 'rejected') void store.outbox.remove(key);
        continue;
      }
      if (a.state === 'stored') {
        // an order event (`<orderId>~<type>`) is done once the hub stored it; an order waits for its verdict
        if (kind === 'orderEvent') void store.outbox.remove(key);
        continue;
      }
      let state = a.state;
      const cur = store.orders.get(a.id);
      if (state === 'forwarded' && cur && isTerminal(cur.syncState)) state = cur.syncState;
      applyOrderAckInTxn(store, a.id, { state, ...(a.reason ? { reason: a.reason } : {}) });
    }
  });
}

/**
 * The newest key on the orders lane (its order id, or `<id>~<event>`), undefined when the lane is
 * empty: one reverse lookup, no write. Sync watches it change to know orders are arriving
 * (services/sync/load.ts) without asking checkout.
 */
export function newestOrderEntry(store: KitStore): string | undefined {
  const range = { start: [LANES.orders + 1, ''] as OutboxKey, end: [LANES.orders, ''] as OutboxKey };
  for (const key of store.outbox.getKeys({ ...range, reverse: true, limit: 1 })) return key[1];
  return undefined;
}

// The kit's one LMDB environment on the data volume, shared by checkout and sync (several processes
// may open it at once). Sub-databases and their value shapes are defined here, once.
//
// Durability: the environment is opened with overlappingSync off, so an awaited write or transaction
// resolves only after its commit is fsynced; concurrent transactions are batched by lmdb-js into one
// commit, which is where the throughput comes from (MEASURED.md).
import fs from 'node:fs';
import path from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { LANES } from './contracts/lanes.ts';
import type { SealedToken } from './token-vault.ts';

export interface CatalogItem {
  sku: string;
  name: string;
  priceCents: number;
  currency: string;
  /** limited "hero" drop items are marked so the dashboard can show them */
  hero?: boolean;
  maxPerOrder?: number;
  description?: string;
  imageUrl?: string;
}

export interface CatalogBundle {
  id: string;
  name: string;
  skus: string[];
  priceCents: number;
}

/** The catalog as stored (stock lives apart, in the stock sub-db). */
export interface StoredCatalog {
  version: number;
  eventId: string;
  currency: string;
  items: CatalogItem[];
  bundles: CatalogBundle[];
  /** where it came from: a staff PUT, `popkit catalog load`, or the hub (signed) */
  source: 'local' | 'hub';
  updatedAt: string;
  /** starting stock per SKU as this catalog gave it; a later version of the same event adds the difference */
  startStock: Record<string, number>;
}

export type SyncState = 'pending' | 'forwarded' | 'settled' | 'declined';

export interface OrderLine {
  sku: string;
  name: string;
  qty: number;
  unitPriceCents: number;
  lineCents: number;
}

export interface StoredOrder {
  id: string;
  kitId: string;
  eventId: string;
  catalogVersion: number;
  status: 'accepted';
  syncState: SyncState;
  totalCents: number;
  currency: string;
  lines: OrderLine[];
  payment: { method: 'cash' } | { method: 'token'; tokenHint: string; expiresAt: string };
  createdAt: string;
  idempotencyKey?: string;
  /** set by sync: when the hub acked the order, and its verdict */
  forwardedAt?: string;
  settledAt?: string;
  declineReason?: string;
}

/** Lanes drain highest priority first (lowest number); within a lane, oldest first (key order). */
export { LANES, type LaneName } from './contracts/lanes.ts';
export type OutboxKey = [lane: number, id: string];

export interface OutboxEntry {
  kind: 'order' | 'stock' | 'status' | 'health' | 'telemetry';
  /** for kind 'order': the order id; sync reads the order and its sealed token when it publishes */
  ref?: string;
  body?: Record<string, unknown>;
  createdAt: number;
  /** amount at risk while unsynced (card-token orders only) */
  riskCents?: number;
}

export interface RiskCounters {
  unsyncedTokenOrders: number;
  unsyncedTokenCents: number;
}

export interface EventState {
  live: boolean;
  eventId: string | null;
  startedAt: string | null;
  stoppedAt: string | null;
}

export interface KitStore {
  root: RootDatabase;
  catalog: Database<StoredCatalog, string>;
  stock: Database<number, string>;
  orders: Database<StoredOrder, string>;
  idempotency: Database<{ orderId: string; bodyHash: string }, string>;
  outbox: Database<OutboxEntry, OutboxKey>;
  tokens: Database<SealedToken, string>;
  /** token orders still unsynced, keyed by order id (sorted by time): the oldest is the first key */
  riskq: Database<{ cents: number; at: number }, string>;
  meta: Database<unknown, string>;
  /** the LMDB data file (lmdb-js keeps its lock file beside it) */
  file: string;
  close(): Promise<void>;
}

export const META = {
  idHighWater: 'ids.highWater',
  risk: 'risk.counters',
  event: 'event.state',
  catalogVersion: 'catalog.version',
  declines: 'declines.recent',
} as const;

/** A card payment the hub's gateway declined: the host must collect another way. */
export interface DeclineNotice {
  orderId: string;
  totalCents: number;
  currency: string;
  reason: string | null;
  at: string;
}
export const RECENT_DECLINES = 20;

export function readRecentDeclines(store: KitStore): DeclineNotice[] {
  return (store.meta.get(META.declines) as DeclineNotice[] | undefined) ?? [];
}

export function openKitStore(dataDir: string): KitStore {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'kit.lmdb');
  const root = open({
    path: file,
    maxDbs: 16,
    overlappingSync: false,
    // lmdb-js grows the map on demand; start where a busy event day fits without remapping
    mapSize: 64 * 1024 * 1024,
    // readers in other processes (sync, status) must see commits without reopening
    cache: false,
  });
  const store: KitStore = {
    root,
    file,
    catalog: root.openDB<StoredCatalog, string>({ name: 'catalog' }),
    stock: root.openDB<number, string>({ name: 'stock' }),
    orders: root.openDB<StoredOrder, string>({ name: 'orders' }),
    idempotency: root.openDB<{ orderId: string; bodyHash: string }, string>({ name: 'idempotency' }),
    outbox: root.openDB<OutboxEntry, OutboxKey>({ name: 'outbox' }),
    tokens: root.openDB<SealedToken, string>({ name: 'tokens' }),
    riskq: root.openDB<{ cents: number; at: number }, string>({ name: 'riskq' }),
    meta: root.openDB<unknown, string>({ name: 'meta' }),
    close: () => root.close(),
  };
  return store;
}

export function readRiskCounters(store: KitStore): RiskCounters {
  return (
    (store.meta.get(META.risk) as RiskCounters | undefined) ?? {
      unsyncedTokenOrders: 0,
      unsyncedTokenCents: 0,
    }
  );
}

export function readEventState(store: KitStore): EventState {
  return (
    (store.meta.get(META.event) as EventState | undefined) ?? {
      live: false,
      eventId: null,
      startedAt: null,
      stoppedAt: null,
    }
  );
}

/**
 * Remove an order's outbox entry after the hub acked it, in one transaction with the risk counters and
 * the order's sync state. Call inside `store.root.transaction()` (sync does, for a batch of acks).
 * Returns false when the entry was already gone (a duplicate ack), changing nothing.
 */
export function applyOrderAckInTxn(
  store: KitStore,
  orderId: string,
  verdict: { state: 'forwarded' | 'settled' | 'declined'; reason?: string; at?: string },
): boolean {
  const key: OutboxKey = [LANES.orders, orderId];
  const entry = store.outbox.get(key);
  const order = store.orders.get(orderId);
  if (order) {
    const at = verdict.at ?? new Date().toISOString();
    const next: StoredOrder = { ...order, syncState: verdict.state, forwardedAt: order.forwardedAt ?? at };
    if (verdict.state === 'settled') next.settledAt = at;
    if (verdict.state === 'declined' && verdict.reason) next.declineReason = verdict.reason;
    if (verdict.state === 'declined' && order.syncState !== 'declined') {
      // the host hears of it on the dashboard and in /v1/status (newest first)
      const notice: DeclineNotice = {
        orderId,
        totalCents: order.totalCents,
        currency: order.currency,
        reason: verdict.reason ?? null,
        at,
      };
      store.meta.put(META.declines, [notice, ...readRecentDeclines(store)].slice(0, RECENT_DECLINES));
    }
    if (order.syncState !== next.syncState || !order.forwardedAt) store.orders.put(orderId, next);
  }
  // once the hub exchanged the token (either way) the kit has no reason to keep it
  if (verdict.state !== 'forwarded') store.tokens.remove(orderId);
  if (!entry) return false;
  store.outbox.remove(key);
  if (entry.riskCents !== undefined) {
    const c = readRiskCounters(store);
    store.meta.put(META.risk, {
      unsyncedTokenOrders: Math.max(0, c.unsyncedTokenOrders - 1),
      unsyncedTokenCents: Math.max(0, c.unsyncedTokenCents - entry.riskCents),
    } satisfies RiskCounters);
    store.riskq.remove(orderId);
  }
  return true;
}

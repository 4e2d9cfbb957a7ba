// Taking an order: validate against the catalog, then in ONE lmdb transaction check and decrement stock,
// apply the offline risk limits, write the order, its outbox entry, its sealed token and its idempotency
// record; answer only after the commit is on disk. Concurrent orders share a commit (and its fsync).
import { createHash } from 'node:crypto';
import { KitError } from '../../core/errors.ts';
import type { MonotonicIds } from '../../core/ids.ts';
import {
  type CatalogItem,
  type KitStore,
  LANES,
  META,
  type OutboxEntry,
  type OutboxKey,
  type RiskCounters,
  readEventState,
  readRiskCounters,
  type StoredCatalog,
  type StoredOrder,
} from '../../core/kit-store.ts';
import type { TokenVault } from '../../core/token-vault.ts';
import { CATALOG_KEY } from './catalog.ts';
import type { OrderBodyT } from './schemas.ts';

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

export type CreateResult = { order: StoredOrder; replayed: boolean };

function canonicalHash(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('base64url');
}

export class OrderService {
  private catalogCache:
    | { stamp: string; catalog: StoredCatalog; bySku: Map<string, CatalogItem> }
    | undefined;
  /**
   * Bumped whenever this process commits a stock change. Only checkout changes stock between catalog
   * versions, so (catalog stamp, stockEpoch) identifies what GET /v1/catalog would answer.
   */
  stockEpoch = 0;

  constructor(
    private readonly store: KitStore,
    private readonly ids: MonotonicIds,
    private readonly vault: TokenVault,
    private readonly opts: { kitId: string; limits: RiskLimits; tokenTtlMs: number; clock?: () => number },
  ) {}

  private now(): number {
    return this.opts.clock ? this.opts.clock() : Date.now();
  }

  /** The current catalog, decoded once per version (another process may replace it at any time). */
  catalog(): { stamp: string; catalog: StoredCatalog; bySku: Map<string, CatalogItem> } | undefined {
    const stampObj = this.store.meta.get(META.catalogVersion) as
      | { eventId: string; version: number; updatedAt: string }
      | undefined;
    if (!stampObj) return undefined;
    const stamp = `${stampObj.eventId}:${stampObj.version}:${stampObj.updatedAt}`;
    if (this.catalogCache?.stamp !== stamp) {
      const catalog = this.store.catalog.get(CATALOG_KEY);
      if (!catalog) return undefined;
      this.catalogCache = { stamp, catalog, bySku: new Map(catalog.items.map((i) => [i.sku, i])) };
    }
    return this.catalogCache;
  }

  riskView(counters: RiskCounters = readRiskCounters(this.store), now = this.now()): RiskView {
    const { limits } = this.opts;
    let oldestAt = now;
    for (const { value } of this.store.riskq.getRange({ limit: 1 })) oldestAt = value.at;
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

  async create(body: OrderBodyT, idempotencyKey: string | undefined): Promise<CreateResult> {
    const bodyHash = idempotencyKey ? canonicalHash(body) : '';
    if (idempotencyKey) {
      const early = this.replay(idempotencyKey, bodyHash);
      if (early) return early;
    }
    const cat = this.catalog();
    if (!cat) throw new KitError('NOT_READY', 'no catalog loaded yet');

    // price the order from the catalog version it is taken against
    const qtyBySku = new Map<string, number>();
    for (const line of body.lines) qtyBySku.set(line.sku, (qtyBySku.get(line.sku) ?? 0) + line.qty);
    const lines: StoredOrder['lines'] = [];
    let total = 0;
    for (const [sku, qty] of qtyBySku) {
      const item = cat.bySku.get(sku);
      if (!item) throw new KitError('UNKNOWN_SKU', `unknown sku ${sku}`, { sku });
      if (item.maxPerOrder !== undefined && qty > item.maxPerOrder) {
        throw new KitError('VALIDATION', `at most ${item.maxPerOrder} of ${sku} per order`, {
          sku,
          maxPerOrder: item.maxPerOrder,
        });
      }
      const lineCents = item.priceCents * qty;
      total += lineCents;
      lines.push({ sku, name: item.name, qty, unitPriceCents: item.priceCents, lineCents });
    }
    if (!Number.isSafeInteger(total)) throw new KitError('VALIDATION', 'order total out of range');

    const isToken = body.payment.method === 'token';
    const { limits } = this.opts;
    if (isToken && total > limits.maxOrderCents) {
      throw new KitError(
        'RISK_LIMIT',
        `card orders above ${limits.maxOrderCents} cents are refused while offline`,
        {
          limit: 'maxOrderCents',
          totalCents: total,
          maxOrderCents: limits.maxOrderCents,
        },
      );
    }

    const now = this.now();
    const id = this.ids.next();
    const createdAt = new Date(now).toISOString();
    const sealed =
      body.payment.method === 'token' ? this.vault.seal(body.payment.token, this.opts.tokenTtlMs, now) : null;
    const order: StoredOrder = {
      id,
      kitId: this.opts.kitId,
      eventId: cat.catalog.eventId,
      catalogVersion: cat.catalog.version,
      status: 'accepted',
      syncState: 'pending',
      totalCents: total,
      currency: cat.catalog.currency,
      lines,
      payment: sealed
        ? { method: 'token', tokenHint: sealed.hint, expiresAt: new Date(sealed.expiresAt).toISOString() }
        : { method: 'cash' },
      createdAt,
      ...(idempotencyKey ? { idempotencyKey } : {}),
    };
    const highWater = this.ids.highWater;

    type Outcome =
      | { kind: 'created' }
      | { kind: 'replay'; orderId: string; bodyHash: string }
      | { kind: 'soldout'; sku: string; available: number }
      | { kind: 'risk'; limit: string; view: RiskView };

    const { store } = this;
    const outcome = await store.root.transaction((): Outcome => {
      if (idempotencyKey) {
        const seen = store.idempotency.get(idempotencyKey);
        if (seen) return { kind: 'replay', orderId: seen.orderId, bodyHash: seen.bodyHash };
      }
      const stockAfter: Array<[string, number]> = [];
      for (const line of lines) {
        const available = store.stock.get(line.sku) ?? 0;
        if (available < line.qty) return { kind: 'soldout', sku: line.sku, available };
        stockAfter.push([line.sku, available - line.qty]);
      }
      let counters: RiskCounters | undefined;
      if (isToken) {
        counters = readRiskCounters(store);
        const view = this.riskView(
          {
            unsyncedTokenOrders: counters.unsyncedTokenOrders,
            unsyncedTokenCents: counters.unsyncedTokenCents + total,
          },
          now,
        );
        // the new order counts toward the amount; the count and age limits refuse at the limit
        const blocking = view.blocking.filter((b) => b !== 'maxUnsyncedCents');
        if (view.usage.unsyncedCents > limits.maxUnsyncedCents) blocking.unshift('maxUnsyncedCents');
        if (blocking.length > 0) return { kind: 'risk', limit: blocking[0] as string, view };
      }
      for (const [sku, left] of stockAfter) store.stock.put(sku, left);
      store.orders.put(id, order);
      const entry: OutboxEntry = { kind: 'order', ref: id, createdAt: now };
      if (sealed && counters) {
        entry.riskCents = total;
        store.tokens.put(id, sealed);
        store.riskq.put(id, { cents: total, at: now });
        store.meta.put(META.risk, {
          unsyncedTokenOrders: counters.unsyncedTokenOrders + 1,
          unsyncedTokenCents: counters.unsyncedTokenCents + total,
        } satisfies RiskCounters);
      }
      store.outbox.put([LANES.orders, id] satisfies OutboxKey, entry);
      store.meta.put(META.idHighWater, highWater);
      if (idempotencyKey) store.idempotency.put(idempotencyKey, { orderId: id, bodyHash });
      return { kind: 'created' };
    });

    switch (outcome.kind) {
      case 'created':
        this.stockEpoch++;
        return { order, replayed: false };
      case 'replay': {
        const again = this.replay(idempotencyKey as string, bodyHash);
        if (again) return again;
        throw new KitError('INTERNAL', 'idempotency record without its order');
      }
      case 'soldout':
        throw new KitError('SOLD_OUT', `${outcome.sku} is sold out`, {
          sku: outcome.sku,
          available: outcome.available,
        });
      case 'risk':
        throw new KitError(
          'RISK_LIMIT',
          `offline risk limit ${outcome.limit} reached: card orders paused, cash works`,
          {
            limit: outcome.limit,
            usage: outcome.view.usage,
            limits: outcome.view.limits,
          },
        );
    }
  }

  private replay(key: string, bodyHash: string): CreateResult | undefined {
    const seen = this.store.idempotency.get(key);
    if (!seen) return undefined;
    if (seen.bodyHash !== bodyHash) {
      throw new KitError('IDEMPOTENCY_MISMATCH', 'this Idempotency-Key was used with a different body');
    }
    const order = this.store.orders.get(seen.orderId);
    if (!order) throw new KitError('INTERNAL', 'idempotency record without its order');
    return { order, replayed: true };
  }

  get(id: string): StoredOrder | undefined {
    return this.store.orders.get(id);
  }

  eventState() {
    return readEventState(this.store);
  }
}

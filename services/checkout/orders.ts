// Taking an order: price it against the catalog, refuse card orders above the offline order limit,
// then commit it through the store (core/store/orders.ts: stock, risk budget, outbox, sealed token and
// idempotency record in ONE transaction); answer only after the commit is on disk.
import { createHash } from 'node:crypto';
import canonicalizeCjs from 'canonicalize';
import { KitError } from '../../core/errors.ts';
import type { MonotonicIds } from '../../core/ids.ts';
import type { SaleClock } from '../../core/store/catalog.ts';
import {
  type CatalogBundle,
  type CatalogItem,
  type CommitOutcome,
  commitOrder,
  findIdempotent,
  getOrder,
  type KitStore,
  type RiskCounters,
  type RiskLimits,
  type RiskView,
  readCatalogStamp,
  readEventState,
  readStoredCatalog,
  riskView,
  type StoredCatalog,
  type StoredOrder,
} from '../../core/store/index.ts';
import type { SealedToken, TokenVault } from '../../core/token-vault.ts';
import type { Caller, CatalogView, OrderDraft, OrderFeature } from './order-features.ts';
import { RateWindow } from './rate.ts';
import type { OrderBodyT, OrderLineInT } from './schemas.ts';

export type { RiskLimits, RiskView } from '../../core/store/index.ts';

export type CreateResult = { order: StoredOrder; replayed: boolean };

// a CommonJS module whose typings declare an ES default export: at run time the import is the function
const canonicalize = canonicalizeCjs as unknown as (value: unknown) => string | undefined;

/** The body's hash for the Idempotency-Key record: canonical JSON (RFC 8785), so key order does not matter. */
function canonicalHash(body: unknown): string {
  return createHash('sha256')
    .update(canonicalize(body) ?? '')
    .digest('base64url');
}

/** The order's lines priced from the catalog version it is taken against (SKUs and bundles), and their sum. */
export function priceLines(
  cat: CatalogView,
  input: readonly OrderLineInT[],
): { lines: StoredOrder['lines']; totalCents: number } {
  // the same SKU or bundle on two lines is one line of their sum
  const qtyById = new Map<string, { qty: number; bundle: boolean }>();
  for (const line of input) {
    const bundle = 'bundle' in line;
    const id = bundle ? line.bundle : line.sku;
    const prev = qtyById.get(id);
    qtyById.set(id, { qty: (prev?.qty ?? 0) + line.qty, bundle });
  }
  const lines: StoredOrder['lines'] = [];
  let total = 0;
  for (const [id, { qty, bundle }] of qtyById) {
    const item: CatalogItem | CatalogBundle | undefined = bundle ? cat.byBundle.get(id) : cat.bySku.get(id);
    if (!item) {
      throw bundle
        ? new KitError('UNKNOWN_SKU', `unknown bundle ${id}`, { bundle: id })
        : new KitError('UNKNOWN_SKU', `unknown sku ${id}`, { sku: id });
    }
    if (item.maxPerOrder !== undefined && qty > item.maxPerOrder) {
      throw new KitError('VALIDATION', `at most ${item.maxPerOrder} of ${id} per order`, {
        [bundle ? 'bundle' : 'sku']: id,
        maxPerOrder: item.maxPerOrder,
      });
    }
    const lineCents = item.priceCents * qty;
    total += lineCents;
    lines.push({
      sku: id,
      name: item.name,
      qty,
      unitPriceCents: item.priceCents,
      lineCents,
      ...('components' in item ? { components: item.components.map((c) => ({ ...c })) } : {}),
    });
  }
  if (!Number.isSafeInteger(total)) throw new KitError('VALIDATION', 'order total out of range');
  return { lines, totalCents: total };
}

/** The limit a single card order meets before anything is written (the budget is checked in the commit). */
function assertOrderLimit(limits: RiskLimits, isToken: boolean, totalCents: number): void {
  if (!isToken || totalCents <= limits.maxOrderCents) return;
  throw new KitError(
    'RISK_LIMIT',
    `card orders above ${limits.maxOrderCents} cents are refused while offline`,
    {
      limit: 'maxOrderCents',
      totalCents,
      maxOrderCents: limits.maxOrderCents,
    },
  );
}

/** Caps on a single order by who places it: cash (any role) and buyers without credentials. */
export interface OrderCaps {
  cashMaxOrderCents: number;
  buyerMaxOrderCents: number;
}

/** VALIDATION (with the cap in details) when a single order is over the cap for its payment or caller. */
function assertOrderCaps(caps: OrderCaps, isCash: boolean, isBuyer: boolean, totalCents: number): void {
  const over = (limit: keyof OrderCaps, what: string) =>
    new KitError('VALIDATION', `${what} orders above ${caps[limit]} cents are refused`, {
      limit,
      totalCents,
      [limit]: caps[limit],
    });
  if (isCash && totalCents > caps.cashMaxOrderCents) throw over('cashMaxOrderCents', 'cash');
  if (isBuyer && totalCents > caps.buyerMaxOrderCents) throw over('buyerMaxOrderCents', 'self-service');
}

/** A refused commit as the error the API answers with. */
function refusal(outcome: Exclude<CommitOutcome, { kind: 'created' | 'replay' }>): KitError {
  if (outcome.kind === 'refused') return outcome.error;
  if (outcome.kind === 'soldout') {
    return new KitError('SOLD_OUT', `${outcome.sku} is sold out`, {
      sku: outcome.sku,
      available: outcome.available,
    });
  }
  return new KitError(
    'RISK_LIMIT',
    `offline risk limit ${outcome.limit} reached: card orders paused, cash works`,
    {
      limit: outcome.limit,
      usage: outcome.view.usage,
      limits: outcome.view.limits,
    },
  );
}

export class OrderService {
  private catalogCache: CatalogView | undefined;
  /**
   * Bumped whenever this process commits a stock change. Only checkout changes stock between catalog
   * versions, so (catalog stamp, stockEpoch) identifies what GET /v1/catalog would answer.
   */
  stockEpoch = 0;
  /** orders accepted (durable) per second over the last ~5 s: checkout's run status carries it */
  readonly accepted: RateWindow;

  constructor(
    private readonly store: KitStore,
    private readonly ids: MonotonicIds,
    private readonly vault: TokenVault,
    private readonly opts: {
      kitId: string;
      limits: RiskLimits;
      tokenTtlMs: number;
      /** the HTTP caps (main.ts sets them from the config); absent: none, for code placing orders itself */
      caps?: OrderCaps;
      clock?: () => number;
      /** the features of the order pipeline, in order (order-features.ts) */
      features?: OrderFeature[];
      /** the instant and whether the clock is trusted, for sale windows (absent: the clock, trusted) */
      saleClock?: () => SaleClock;
    },
  ) {
    this.accepted = new RateWindow(5, () => this.now());
  }

  private now(): number {
    return this.opts.clock ? this.opts.clock() : Date.now();
  }

  /** What sale windows are judged by: the trusted clock (docs/drops.md#trusted-time). */
  saleClock(): SaleClock {
    return this.opts.saleClock ? this.opts.saleClock() : { now: this.now(), trusted: true };
  }

  get features(): readonly OrderFeature[] {
    return this.opts.features ?? [];
  }

  /** The current catalog, decoded once per version (another process may replace it at any time). */
  catalog(): CatalogView | undefined {
    const stampObj = readCatalogStamp(this.store);
    if (!stampObj) return undefined;
    const stamp = `${stampObj.eventId}:${stampObj.version}:${stampObj.updatedAt}`;
    if (this.catalogCache?.stamp !== stamp) {
      const catalog = readStoredCatalog(this.store);
      if (!catalog) return undefined;
      this.catalogCache = {
        stamp,
        catalog,
        bySku: new Map(catalog.items.map((i) => [i.sku, i])),
        byBundle: new Map(catalog.bundles.map((b) => [b.id, b])),
      };
    }
    return this.catalogCache;
  }

  riskView(counters?: RiskCounters, now = this.now()): RiskView {
    return riskView(this.store, this.opts.limits, counters, now);
  }

  /**
   * Take an order (order-features.ts has the pipeline). `caller` defaults to staff (admin): code that
   * places orders itself, and tests of the pricing path.
   */
  async create(
    body: OrderBodyT,
    idempotencyKey: string | undefined,
    caller: Caller = { role: 'admin', ip: '' },
  ): Promise<CreateResult> {
    const buyer = caller.role === 'buyer';
    const bodyHash = idempotencyKey ? canonicalHash(body) : '';
    if (idempotencyKey) {
      const early = this.replay(idempotencyKey, bodyHash);
      if (early) return early;
    }
    const cat = this.catalog();
    if (!cat) throw new KitError('NOT_READY', 'no catalog loaded yet');
    const draft: OrderDraft = {
      body,
      caller,
      cat,
      now: this.now(),
      orderId: this.ids.next(),
      lines: [],
      subtotalCents: 0,
      totalCents: 0,
      extra: {},
      stockHeld: false,
      riskBudget: true,
    };
    for (const f of this.features) await f.admit?.(draft);
    const priced = priceLines(cat, body.lines);
    draft.lines = priced.lines;
    draft.subtotalCents = priced.totalCents;
    draft.totalCents = priced.totalCents;
    for (const f of this.features) await f.adjust?.(draft);
    if (this.opts.caps)
      assertOrderCaps(this.opts.caps, body.payment.method === 'cash', buyer, draft.totalCents);
    for (const f of this.features) await f.settle?.(draft);
    if (draft.riskBudget)
      assertOrderLimit(this.opts.limits, body.payment.method === 'token', draft.totalCents);

    const now = draft.now;
    const sealed =
      body.payment.method === 'token' ? this.vault.seal(body.payment.token, this.opts.tokenTtlMs, now) : null;
    const order: StoredOrder = {
      ...this.newOrder(
        draft.orderId,
        cat.catalog,
        draft.lines,
        draft.totalCents,
        sealed,
        now,
        idempotencyKey,
      ),
      ...draft.extra,
    };
    const steps = [];
    for (const f of this.features) {
      const step = f.commit?.(draft);
      if (step) steps.push(step);
    }
    const outcome = await commitOrder(this.store, {
      order,
      sealed,
      limits: this.opts.limits,
      ...(idempotencyKey ? { idempotency: { key: idempotencyKey, bodyHash } } : {}),
      idHighWater: this.ids.highWater,
      now,
      stockHeld: draft.stockHeld,
      riskBudget: draft.riskBudget,
      steps,
    });
    switch (outcome.kind) {
      case 'created':
        this.stockEpoch++;
        this.accepted.add();
        for (const f of this.features) f.committed?.(order, draft);
        return { order, replayed: false };
      case 'replay': {
        const again = this.replay(idempotencyKey as string, bodyHash);
        if (again) return again;
        throw new KitError('INTERNAL', 'idempotency record without its order');
      }
      default:
        throw refusal(outcome);
    }
  }

  private newOrder(
    id: string,
    catalog: StoredCatalog,
    lines: StoredOrder['lines'],
    totalCents: number,
    sealed: SealedToken | null,
    now: number,
    idempotencyKey: string | undefined,
  ): StoredOrder {
    return {
      id,
      kitId: this.opts.kitId,
      eventId: catalog.eventId,
      catalogVersion: catalog.version,
      status: 'accepted',
      syncState: 'pending',
      totalCents,
      currency: catalog.currency,
      lines,
      payment: sealed
        ? { method: 'token', tokenHint: sealed.hint, expiresAt: new Date(sealed.expiresAt).toISOString() }
        : { method: 'cash' },
      createdAt: new Date(now).toISOString(),
      ...(idempotencyKey ? { idempotencyKey } : {}),
    };
  }

  private replay(key: string, bodyHash: string): CreateResult | undefined {
    const seen = findIdempotent(this.store, key);
    if (!seen) return undefined;
    if (seen.bodyHash !== bodyHash) {
      throw new KitError('IDEMPOTENCY_MISMATCH', 'this Idempotency-Key was used with a different body');
    }
    const order = getOrder(this.store, seen.orderId);
    if (!order) throw new KitError('INTERNAL', 'idempotency record without its order');
    return { order, replayed: true };
  }

  get(id: string): StoredOrder | undefined {
    return getOrder(this.store, id);
  }

  eventState() {
    return readEventState(this.store);
  }
}

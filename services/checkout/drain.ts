// Drain-proofing (docs/security.md#drain-proofing): a buyer without credentials paying by card for a
// scarce line. Online, the hub's gateway authorizes the token before the 201 (the Authorizer, within
// a budget); declined is refused, nothing written. Offline, or when the hop fails, the kit cannot tell
// a real token from a made-up one: the order is `held` (units taken, not sold) until paid at pickup,
// confirmed by staff or by the hub's verdict, or released (a decline at once, else at its expiry);
// each device may have a small allowance accepted as before. One device, one share of a scarce item.
import { Counter, Histogram, type Registry } from 'prom-client';
import { KitError } from '../../core/errors.ts';
import { pollLoop } from '../../core/poll-loop.ts';
import { countDeviceOrderInTxn, deviceCount, deviceCounts, readDevice } from '../../core/store/devices.ts';
import { sweepExpiredHolds } from '../../core/store/hold-ops.ts';
import { heldCount, putHoldExpiryInTxn } from '../../core/store/holds.ts';
import type { CatalogBundle, CatalogItem, KitStore, OrderLine, StoredOrder } from '../../core/store/index.ts';
import type { Authorizer } from './authorizer.ts';
import type { DeviceTokens } from './devices.ts';
import type { Caller, CatalogView, InTxnStep, OrderDraft, OrderFeature } from './order-features.ts';

/** THE scarcity rule: time-boxed, hero, or flagged scarce (an item or a bundle). */
export function isScarce(entry: CatalogItem | CatalogBundle): boolean {
  return Boolean(entry.saleWindow || entry.hero || entry.scarce);
}

/** The SKUs of a catalog that are scarce themselves or are components of a scarce bundle (the report). */
export function scarceSkus(cat: Pick<CatalogView, 'catalog'>): string[] {
  const out = new Set<string>();
  for (const i of cat.catalog.items) if (isScarce(i)) out.add(i.sku);
  for (const b of cat.catalog.bundles) if (isScarce(b)) for (const c of b.components) out.add(c.sku);
  return [...out];
}

/** A share key of a bundle (`#` is in no SKU or bundle id, so it cannot meet a SKU's key). */
const bundleKey = (id: string) => `${id}#bundle`;

export interface ScarceShare {
  /** units the order takes of it */
  units: number;
  /** units one device may have of it: its maxPerOrder, else 1 */
  share: number;
}

/**
 * The scarce things an order's lines take, by share key: a scarce SKU line, a scarce bundle line, and
 * the scarce components inside any bundle line (a bundle must not be a way around a SKU's share).
 */
export function scarceShares(cat: CatalogView, lines: readonly OrderLine[]): Map<string, ScarceShare> {
  const out = new Map<string, ScarceShare>();
  const add = (key: string, units: number, share: number) => {
    const prev = out.get(key);
    out.set(key, { units: (prev?.units ?? 0) + units, share });
  };
  for (const l of lines) {
    if (l.components) {
      const b = cat.byBundle.get(l.sku);
      if (b && isScarce(b)) add(bundleKey(b.id), l.qty, b.maxPerOrder ?? 1);
      for (const c of l.components) {
        const item = cat.bySku.get(c.sku);
        if (item && isScarce(item)) add(item.sku, c.qty * l.qty, item.maxPerOrder ?? 1);
      }
    } else {
      const item = cat.bySku.get(l.sku);
      if (item && isScarce(item)) add(item.sku, l.qty, item.maxPerOrder ?? 1);
    }
  }
  return out;
}

export interface DrainOptions {
  store: KitStore;
  devices: DeviceTokens;
  /** the hub hop; an Authorizer whose online() is false gives the offline rule alone */
  authorizer: Authorizer;
  /** POPKIT_AUTH_BUDGET_MS */
  authBudgetMs: number;
  /** POPKIT_BUYER_OFFLINE_ALLOWANCE: scarce card orders per device per event accepted offline without a hold */
  allowance: number;
  /** POPKIT_HOLD_TTL_S in ms: how long a hold lasts without a pickup slot */
  holdTtlMs: number;
  /** POPKIT_DEVICE_ORDERS_PER_MIN: orders per minute per buyer device */
  deviceOrdersPerMin: number;
  /** how often the sweeper looks for expired holds */
  sweepMs?: number;
  clock?: () => number;
}

type Mode = 'authorized' | 'allowance' | 'held';
interface Plan {
  deviceId: string;
  shares: Map<string, ScarceShare>;
  mode: Mode;
}

const OUTCOMES = ['authorized', 'declined', 'unavailable', 'allowance', 'held'] as const;
type Outcome = (typeof OUTCOMES)[number];

/** A held order's hold (the reason the buyer's page shows). */
const HOLD_REASON = 'card not verifiable offline: held until paid at pickup or confirmed';

export class DrainFeature implements OrderFeature {
  readonly name = 'drain-proofing';
  private readonly plans = new WeakMap<OrderDraft, Plan>();
  private readonly deviceIds = new WeakMap<OrderDraft, string>();
  /** orders per device in the current minute window: [window start, count] */
  private readonly rate = new Map<string, [number, number]>();
  private readonly counts: Record<Outcome, number> = {
    authorized: 0,
    declined: 0,
    unavailable: 0,
    allowance: 0,
    held: 0,
  };
  private releasedByExpiry = 0;
  private counter: Counter<'outcome'> | undefined;
  private authSeconds: Histogram<'verdict'> | undefined;
  private sweeping: Promise<unknown> | undefined;

  constructor(private readonly opts: DrainOptions) {}

  private now(): number {
    return this.opts.clock ? this.opts.clock() : Date.now();
  }

  private count(o: Outcome): void {
    this.counts[o]++;
    this.counter?.inc({ outcome: o });
  }

  /** The expiry sweeper (a background task; stop it with the returned closer). */
  start(): () => Promise<void> {
    const loop = pollLoop(
      this.opts.sweepMs ?? 1000,
      () => {
        this.sweeping = this.sweep();
        return this.sweeping;
      },
      { unref: true },
    );
    return async () => {
      loop.stop();
      await this.sweeping?.catch(() => undefined);
    };
  }

  /** Release every hold past its end (also called by tests with an injected clock). */
  async sweep(now = this.now()): Promise<number> {
    const n = await sweepExpiredHolds(this.opts.store, now);
    this.releasedByExpiry += n;
    return n;
  }

  admit(d: OrderDraft): void {
    if (d.caller.deviceToken === undefined) return;
    // a header that is sent must be valid, whoever sends it (never silently ignored)
    const id = this.opts.devices.verify(d.caller.deviceToken);
    this.deviceIds.set(d, id);
    if (d.caller.role === 'buyer') this.limitRate(id, d.now);
  }

  private limitRate(id: string, now: number): void {
    const max = this.opts.deviceOrdersPerMin;
    const cur = this.rate.get(id);
    const fresh = !cur || now - cur[0] >= 60_000 || now < cur[0];
    const win: [number, number] = fresh ? [now, 0] : cur;
    if (win[1] >= max) {
      const retryAfterS = Math.max(1, Math.ceil((win[0] + 60_000 - now) / 1000));
      throw new KitError(
        'TOO_MANY_REQUESTS',
        `over ${max} orders per minute from this device: retry in ${retryAfterS} s`,
        { max, retryAfterS, per: 'device' },
      );
    }
    win[1]++;
    if (fresh) {
      // windows of idle devices go; the map stays as small as the devices ordering this minute
      if (this.rate.size > 10_000)
        for (const [k, v] of this.rate) if (now - v[0] >= 60_000) this.rate.delete(k);
      this.rate.set(id, win);
    }
  }

  /**
   * A buyer's cart hold of scarce units (the reservations' `scarceHold`): it needs a valid device token
   * and fits the device's share with what the device already has, like an order; the store then lets
   * a device hold scarce units in one hold at a time. Returns the device id, or undefined when the
   * hold has no scarce unit or the caller is staff. Without this a script could hold a whole drop in
   * unpaid carts, over and over.
   */
  guardHold(cat: CatalogView, lines: readonly OrderLine[], caller: Caller): string | undefined {
    if (caller.role !== 'buyer') return undefined;
    const shares = scarceShares(cat, lines);
    if (shares.size === 0) return undefined;
    if (caller.deviceToken === undefined) {
      throw new KitError(
        'DEVICE_INVALID',
        'scarce items are held for a buyer device: send x-popkit-device (POST /v1/devices)',
        { required: 'x-popkit-device' },
      );
    }
    const id = this.opts.devices.verify(caller.deviceToken);
    const rec = readDevice(this.opts.store, id);
    const have = rec ? deviceCounts(rec, cat.catalog.eventId).units : new Map<string, number>();
    const taken = shareTaken(have, shares);
    if (taken) throw taken;
    return id;
  }

  async settle(d: OrderDraft): Promise<void> {
    const deviceId = this.deviceIds.get(d);
    if (deviceId) d.extra.deviceId = deviceId;
    if (d.caller.role !== 'buyer' || d.body.payment.method !== 'token') return;
    const shares = scarceShares(d.cat, d.lines);
    if (shares.size === 0) return;
    if (!deviceId) {
      throw new KitError(
        'DEVICE_INVALID',
        'scarce items need the buyer page: send its device token in x-popkit-device (POST /v1/devices)',
        { required: 'x-popkit-device', scarce: [...shares.keys()] },
      );
    }
    // a quick answer before asking the hub; the order's transaction checks again
    const rec = readDevice(this.opts.store, deviceId);
    if (!rec) throw new KitError('DEVICE_INVALID', 'unknown device: ask for a new token (POST /v1/devices)');
    const counts = deviceCounts(rec, d.cat.catalog.eventId);
    const taken = shareTaken(counts.units, shares);
    if (taken) throw taken;

    if (this.opts.authorizer.online()) {
      const out = await this.authorize(d, d.body.payment.token);
      if (out.verdict === 'approved') {
        if (out.ref) d.extra.authRef = out.ref;
        d.riskBudget = false;
        this.plans.set(d, { deviceId, shares, mode: 'authorized' });
        return;
      }
      if (out.verdict === 'declined') {
        this.count('declined');
        throw new KitError('PAYMENT_DECLINED', `the card was declined: ${out.reason ?? 'card_declined'}`, {
          reason: out.reason ?? 'card_declined',
        });
      }
      this.count('unavailable');
    }
    if (counts.allowanceUsed < this.opts.allowance) {
      this.plans.set(d, { deviceId, shares, mode: 'allowance' });
      return;
    }
    this.hold(d);
    this.plans.set(d, { deviceId, shares, mode: 'held' });
  }

  private async authorize(d: OrderDraft, token: string) {
    const started = process.hrtime.bigint();
    try {
      const out = await this.opts.authorizer.authorize(
        { orderId: d.orderId, token, amountCents: d.totalCents, currency: d.cat.catalog.currency },
        this.opts.authBudgetMs,
      );
      this.authSeconds?.observe({ verdict: out.verdict }, Number(process.hrtime.bigint() - started) / 1e9);
      return out;
    } catch {
      // an Authorizer that throws is one that could not answer: the offline rule applies
      return { verdict: 'unavailable' as const, ms: 0 };
    }
  }

  private hold(d: OrderDraft): void {
    d.extra.status = 'held';
    d.extra.hold = { reason: HOLD_REASON, until: new Date(this.holdUntil(d)).toISOString() };
    d.riskBudget = false;
  }

  /** A hold lasts to the end of the order's pickup slot if it takes one, else POPKIT_HOLD_TTL_S. */
  private holdUntil(d: OrderDraft): number {
    const slotId = d.body.pickupSlotId;
    const slot = slotId ? d.cat.catalog.pickupSlots.find((s) => s.id === slotId) : undefined;
    const end = slot ? Date.parse(slot.endsAt) : Number.NaN;
    return Number.isFinite(end) && end > d.now ? end : d.now + this.opts.holdTtlMs;
  }

  commit(d: OrderDraft): InTxnStep | undefined {
    const plan = this.plans.get(d);
    if (!plan) return undefined;
    const { store } = this.opts;
    return {
      check: (order) => {
        const rec = readDevice(store, plan.deviceId);
        if (!rec) return new KitError('DEVICE_INVALID', 'unknown device');
        const c = deviceCounts(rec, order.eventId);
        const taken = shareTaken(c.units, plan.shares);
        if (taken) return taken;
        if (plan.mode === 'allowance' && c.allowanceUsed >= this.opts.allowance) {
          // another order of this device used the allowance since settle: this one is held instead
          // (the object is the order about to be written; it stays in the risk budget, counted above)
          order.status = 'held';
          order.hold = { reason: HOLD_REASON, until: new Date(this.holdUntil(d)).toISOString() };
        }
        return undefined;
      },
      write: (order) => {
        const held = order.status === 'held';
        const units = new Map([...plan.shares].map(([k, s]) => [k, s.units]));
        countDeviceOrderInTxn(store, plan.deviceId, order.eventId, {
          units,
          held,
          allowance: plan.mode === 'allowance' && !held,
        });
        if (held) putHoldExpiryInTxn(store, order);
      },
    };
  }

  committed(order: StoredOrder, d: OrderDraft): void {
    const plan = this.plans.get(d);
    if (!plan) return;
    this.count(plan.mode === 'authorized' ? 'authorized' : order.status === 'held' ? 'held' : 'allowance');
  }

  status(): Record<string, unknown> {
    return {
      drain: {
        authorizer: this.opts.authorizer.online() ? 'online' : 'offline',
        heldNow: heldCount(this.opts.store),
        devices: deviceCount(this.opts.store),
        allowance: this.opts.allowance,
        holdTtlS: Math.round(this.opts.holdTtlMs / 1000),
        authBudgetMs: this.opts.authBudgetMs,
        outcomes: { ...this.counts, expired: this.releasedByExpiry },
      },
    };
  }

  metrics(registry: Registry): void {
    this.counter = new Counter({
      name: 'popkit_drain_orders_total',
      help: 'scarce buyer card orders by outcome: authorized online, declined, unavailable (fell back), accepted on the allowance, held',
      labelNames: ['outcome'],
      registers: [registry],
    });
    for (const o of OUTCOMES) this.counter.inc({ outcome: o }, 0);
    this.authSeconds = new Histogram({
      name: 'popkit_drain_authorize_seconds',
      help: 'the online authorization hop through the hub, by verdict',
      labelNames: ['verdict'],
      buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1, 2],
      registers: [registry],
    });
  }
}

/** DEVICE_SHARE_TAKEN for the first share the order would exceed, else undefined. */
function shareTaken(have: Map<string, number>, shares: Map<string, ScarceShare>): KitError | undefined {
  for (const [key, s] of shares) {
    const already = have.get(key) ?? 0;
    if (already + s.units > s.share) {
      const bundle = key.endsWith('#bundle');
      const id = bundle ? key.slice(0, -'#bundle'.length) : key;
      return new KitError(
        'DEVICE_SHARE_TAKEN',
        `this device already has its share of ${id} (${s.share} per device)`,
        { [bundle ? 'bundle' : 'sku']: id, share: s.share, taken: already },
      );
    }
  }
  return undefined;
}

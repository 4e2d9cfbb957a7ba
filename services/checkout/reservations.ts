// Reservations (cart holds) as an order feature (docs/drops.md#reservations): POST /v1/reservations
// takes units from stock for a set time; an order carrying `reservationId` converts the hold (its
// `admit` checks it, its commit step checks it again inside the order's transaction and marks it
// converted, so two conversions cannot both win); expiry gives the units back, swept in the
// background and checked lazily whenever a hold is read or converted. All state is in LMDB
// (core/store/reservations.ts), so holds survive a restart and the next sweep ends what expired meanwhile.
import { randomBytes } from 'node:crypto';
import { Counter, Gauge, type Registry } from 'prom-client';
import { KitError } from '../../core/errors.ts';
import { MonotonicIds } from '../../core/ids.ts';
import { moduleLogger } from '../../core/logger.ts';
import { type PollLoop, pollLoop } from '../../core/poll-loop.ts';
import type { KitStore, OrderLine, ReservationRecord } from '../../core/store/index.ts';
import {
  checkConversionInTxn,
  conversionError,
  convertInTxn,
  createReservation,
  endReservation,
  heldCount,
  type ReservationCounters,
  readReservation,
  reservationCounters,
  sweepReservations,
} from '../../core/store/reservations.ts';
import type { Caller, CatalogView, InTxnStep, OrderDraft, OrderFeature } from './order-features.ts';
import { type OrderService, priceLines } from './orders.ts';
import type { OrderLineInT } from './schemas.ts';

const log = moduleLogger('reservations');

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** how often the background sweep looks for expired holds (reads also expire them lazily) */
export const RESERVATION_SWEEP_MS = 1000;

/**
 * The sale-window check a reservation passes before it holds anything (the sale-windows feature's
 * `assertOnSale`, wired in main.ts): throws a KitError (NOT_ON_SALE_YET, SALE_ENDED, …) to refuse.
 */
export type OnSaleCheck = (cat: CatalogView, lines: readonly OrderLineInT[], caller: Caller) => void;

export interface ReservationOptions {
  /** how long a hold lasts (POPKIT_RESERVATION_TTL_S) */
  ttlMs: number;
  /** holds one client address may have open at once, buyers only (POPKIT_RESERVATION_MAX_PER_ADDRESS) */
  maxPerAddress?: number;
  /** the largest hold a buyer without credentials may take, as for an order (POPKIT_BUYER_MAX_ORDER_CENTS) */
  buyerMaxCents?: number;
  /** the order service: its catalog, and its stock epoch (the catalog answer changes with holds) */
  orders: () => OrderService;
  clock?: () => number;
  /** sale windows (absent: reservations are not checked against windows) */
  assertOnSale?: OnSaleCheck;
  /**
   * Drain-proofing for holds (services/checkout/drain.ts guardHold): the buyer device a hold of scarce
   * units belongs to (it throws DEVICE_INVALID or DEVICE_SHARE_TAKEN), undefined when none is needed.
   */
  scarceHold?: (cat: CatalogView, lines: readonly OrderLine[], caller: Caller) => string | undefined;
  /** holds expired per sweep transaction at most */
  sweepBatch?: number;
}

/** A hold as the API shows it (the store's record less the caller's address). */
export interface ReservationView {
  id: string;
  status: ReservationRecord['status'];
  eventId: string;
  lines: OrderLine[];
  totalCents: number;
  createdAt: string;
  expiresAt: string;
  endedAt?: string;
  orderId?: string;
}

export function reservationView(rec: ReservationRecord): ReservationView {
  return {
    id: rec.id,
    status: rec.status,
    eventId: rec.eventId,
    lines: rec.lines,
    totalCents: rec.lines.reduce((s, l) => s + l.lineCents, 0),
    createdAt: rec.createdAt,
    expiresAt: new Date(rec.expiresAt).toISOString(),
    ...(rec.endedAt ? { endedAt: rec.endedAt } : {}),
    ...(rec.orderId ? { orderId: rec.orderId } : {}),
  };
}

export class ReservationService implements OrderFeature {
  readonly name = 'reservations';
  private readonly ids: MonotonicIds;
  /** telemetry entry ids: sortable by time, like sync's own (outbox key order is age order) */
  private readonly entryIds: MonotonicIds;
  private sweeping: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: KitStore,
    private readonly opts: ReservationOptions,
  ) {
    const now = () => this.now();
    this.ids = new MonotonicIds(0, now);
    this.entryIds = new MonotonicIds(0, now);
  }

  private now(): number {
    return this.opts.clock ? this.opts.clock() : Date.now();
  }

  /**
   * A hold's id: the id layout (time first), its 80 other bits drawn afresh each time. The id is the
   * only key to read, release or convert a hold, so unlike order ids it never counts up from the
   * previous one (a buyer could otherwise name the next buyer's hold).
   */
  private newId(): string {
    const t = this.ids.next().slice(0, 10);
    const r = randomBytes(16);
    let tail = '';
    for (const b of r) tail += CROCKFORD[b & 31];
    return t + tail;
  }

  private catalog(): CatalogView {
    const cat = this.opts.orders().catalog();
    if (!cat) throw new KitError('NOT_READY', 'no catalog loaded yet');
    return cat;
  }

  private stockChanged(): void {
    this.opts.orders().stockEpoch++;
  }

  /** Hold the lines' units for the TTL: 201 with the hold, or SOLD_OUT / TOO_MANY_REQUESTS, nothing held. */
  async reserve(input: readonly OrderLineInT[], caller: Caller): Promise<ReservationView> {
    const cat = this.catalog();
    const { lines, totalCents } = priceLines(cat, input);
    const buyer = caller.role === 'buyer';
    // a hold no order of this buyer could convert would only keep units from others
    if (buyer && this.opts.buyerMaxCents !== undefined && totalCents > this.opts.buyerMaxCents) {
      throw new KitError(
        'VALIDATION',
        `self-service reservations above ${this.opts.buyerMaxCents} cents are refused`,
        {
          limit: 'buyerMaxOrderCents',
          totalCents,
          buyerMaxOrderCents: this.opts.buyerMaxCents,
        },
      );
    }
    this.opts.assertOnSale?.(cat, input, caller);
    const deviceId = this.opts.scarceHold?.(cat, lines, caller);
    const now = this.now();
    const rec: ReservationRecord = {
      id: this.newId(),
      eventId: cat.catalog.eventId,
      lines,
      createdAt: new Date(now).toISOString(),
      expiresAt: now + this.opts.ttlMs,
      status: 'held',
      // only buyers' holds count against their address (staff are trusted with their own)
      ...(buyer ? { address: caller.ip } : {}),
      ...(deviceId !== undefined ? { deviceId } : {}),
    };
    const out = await createReservation(this.store, rec, {
      ...(buyer && this.opts.maxPerAddress !== undefined ? { maxPerAddress: this.opts.maxPerAddress } : {}),
      telemetryId: this.entryIds.next(),
      now,
    });
    if (out.kind === 'soldout') {
      throw new KitError('SOLD_OUT', `${out.sku} is sold out`, { sku: out.sku, available: out.available });
    }
    if (out.kind === 'device-held') {
      throw new KitError(
        'DEVICE_SHARE_TAKEN',
        'this device already holds scarce items: convert or release that hold first',
        { held: 1 },
      );
    }
    if (out.kind === 'capped') {
      throw new KitError(
        'TOO_MANY_REQUESTS',
        `this address already holds ${out.held} reservations: convert or release one first`,
        { maxPerAddress: this.opts.maxPerAddress, held: out.held },
      );
    }
    this.stockChanged();
    return reservationView(rec);
  }

  /** A hold as it is now: one past its time is expired here and then (lazily), its units returned. */
  async get(id: string): Promise<ReservationRecord | undefined> {
    const rec = readReservation(this.store, id);
    if (rec?.status === 'held' && this.now() >= rec.expiresAt) return this.end(id, 'expired');
    return rec;
  }

  /** The buyer lets the hold go early: its units return now. RESERVATION_USED once it ended otherwise. */
  async release(id: string): Promise<ReservationRecord> {
    const now = this.now();
    const rec = readReservation(this.store, id);
    if (rec?.status === 'held' && now >= rec.expiresAt) await this.end(id, 'expired');
    const out = await endReservation(this.store, id, 'released', { now, telemetryId: this.entryIds.next() });
    if (out.kind === 'missing')
      throw new KitError('NOT_FOUND', `no reservation ${id}`, { reservationId: id });
    if (out.kind === 'ended') {
      this.stockChanged();
      return out.rec;
    }
    if (out.kind === 'already' && out.rec.status === 'expired') {
      throw new KitError('RESERVATION_EXPIRED', `reservation ${id} expired`, {
        reservationId: id,
        expiresAt: new Date(out.rec.expiresAt).toISOString(),
      });
    }
    throw new KitError('RESERVATION_USED', `reservation ${id} was already ${out.rec.status}`, {
      reservationId: id,
      status: out.rec.status,
    });
  }

  private async end(id: string, how: 'expired' | 'released'): Promise<ReservationRecord | undefined> {
    const out = await endReservation(this.store, id, how, {
      now: this.now(),
      telemetryId: this.entryIds.next(),
    });
    if (out.kind === 'missing') return undefined;
    if (out.kind === 'ended') this.stockChanged();
    return out.rec;
  }

  /** Expire every hold that is due (repeats while a full batch ended). Returns how many ended. */
  async sweep(): Promise<number> {
    const run = async () => {
      let total = 0;
      const limit = this.opts.sweepBatch ?? 500;
      for (;;) {
        const n = await sweepReservations(this.store, {
          now: this.now(),
          limit,
          telemetryId: this.entryIds.next(),
        });
        total += n;
        if (n < limit) break;
      }
      if (total > 0) {
        this.stockChanged();
        log.info({ expired: total }, 'reservations expired');
      }
      return total;
    };
    // one sweep at a time; close() waits for the last
    const next = this.sweeping.then(run, run);
    this.sweeping = next.catch(() => undefined);
    return next;
  }

  /** The background sweep every `periodMs` (first run at once: holds that expired while down); returns its closer. */
  startSweeper(periodMs: number): () => Promise<void> {
    const loop: PollLoop = pollLoop(periodMs, () => this.sweep(), {
      immediate: true,
      unref: true,
      onError: (err) => log.warn({ err: (err as Error).message }, 'reservation sweep failed'),
    });
    return async () => {
      loop.stop();
      await this.sweeping;
    };
  }

  // --- the order feature -----------------------------------------------------------------------

  async admit(d: OrderDraft): Promise<void> {
    const id = d.body.reservationId;
    if (id === undefined) return;
    let rec = readReservation(this.store, id);
    if (rec?.status === 'held' && d.now >= rec.expiresAt) rec = await this.end(id, 'expired');
    // lines are compared as priced (inside the transaction); here by id, quantity and kind
    const error = conversionError(rec, id, undefined, d.cat.catalog.eventId, d.now);
    if (error) throw error;
    if (!sameInput(rec!.lines, d.body.lines)) {
      throw new KitError('RESERVATION_MISMATCH', `the order's lines are not reservation ${id}'s`, {
        reservationId: id,
        lines: rec!.lines.map((l) => ({ sku: l.sku, qty: l.qty, bundle: l.components !== undefined })),
      });
    }
    d.stockHeld = true;
    d.extra.reservationId = id;
  }

  commit(d: OrderDraft): InTxnStep | undefined {
    const id = d.body.reservationId;
    if (id === undefined) return undefined;
    const telemetryId = this.entryIds.next();
    return {
      check: (order) => checkConversionInTxn(this.store, id, order, d.now),
      write: (order) => convertInTxn(this.store, id, order, d.now, telemetryId),
    };
  }

  counters(): { eventId: string | null } & ReservationCounters {
    const eventId = this.opts.orders().catalog()?.catalog.eventId ?? null;
    return { eventId, ...(eventId ? reservationCounters(this.store, eventId) : zeroCounters()) };
  }

  status(): Record<string, unknown> {
    const c = this.counters();
    return {
      reservations: {
        ...c,
        held: heldCount(c),
        abandoned: c.expired + c.released,
        ttlS: Math.round(this.opts.ttlMs / 1000),
      },
    };
  }

  metrics(registry: Registry): void {
    const counters = () => this.counters();
    // counted in LMDB (they survive restarts); read at scrape time
    new Counter({
      name: 'popkit_reservations_total',
      help: 'Reservations of the current event by how they ended: created, converted, expired (abandoned), released (abandoned by the buyer)',
      labelNames: ['outcome'] as const,
      registers: [registry],
      collect() {
        const c = counters();
        this.reset();
        for (const outcome of ['created', 'converted', 'expired', 'released'] as const)
          this.inc({ outcome }, c[outcome]);
      },
    });
    new Gauge({
      name: 'popkit_reservations_held',
      help: 'Reservations of the current event holding units now',
      registers: [registry],
      collect() {
        this.set(heldCount(counters()));
      },
    });
  }
}

function zeroCounters(): ReservationCounters {
  return { created: 0, converted: 0, expired: 0, released: 0 };
}

/** The order body's lines (summed per SKU or bundle, as pricing does) against the hold's lines. */
function sameInput(held: readonly OrderLine[], input: readonly OrderLineInT[]): boolean {
  const want = new Map<string, number>();
  for (const l of input) {
    const k = 'bundle' in l ? `b:${l.bundle}` : `s:${l.sku}`;
    want.set(k, (want.get(k) ?? 0) + l.qty);
  }
  if (want.size !== held.length) return false;
  return held.every((l) => want.get(`${l.components ? 'b' : 's'}:${l.sku}`) === l.qty);
}

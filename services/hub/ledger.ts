// The hub's ledger on PostgreSQL (or PGlite): orders keyed by (kit id, the kit's order id), so that a
// redelivered or replayed batch changes nothing; stock snapshots and telemetry per kit; signed
// catalogs per event. recordBatch() commits first and only then returns the acks to send.

import type {
  AckT,
  BatchEntryT,
  KitStatusT,
  SignedCatalogT,
  WireOrderT,
} from '../../core/contracts/hub-wire.ts';
import { safeReason } from '../../core/contracts/hub-wire.ts';
import type { LaneName } from '../../core/contracts/lanes.ts';
import type { SeriesBatchT } from '../../core/contracts/series.ts';
import { KitError } from '../../core/errors.ts';
import { moduleLogger } from '../../core/logger.ts';
import { type SealedToken, TokenVault } from '../../core/token-vault.ts';
import type { Queryable, SqlDb } from './db.ts';
import { isDataError } from './failures.ts';
import { type ExchangeResult, type PaymentGateway, Slots } from './gateway.ts';
import { LoyaltyBook, recordRedemptions } from './loyalty.ts';
import { ORDER_LINES_FROM } from './migrations.ts';
import { linkEventCreator, recordSeries } from './series.ts';
import { LanRefused, SharedStock } from './shared-stock.ts';

const log = moduleLogger('hub-ledger');

type AckItem = AckT['acks'][number];
type OrderEntryT = Extract<BatchEntryT, { order: unknown }>;
/** what is not an order: order events, stock snapshots, health and telemetry */
type OtherEntryT = Exclude<BatchEntryT, OrderEntryT>;

interface OrderRow {
  order_id: string;
  event_id: string;
  kit_created_at: string;
  total_cents: number;
  currency: string;
  payment_method: string;
  token_hint: string | null;
  state: 'forwarded' | 'settled' | 'declined';
  decline_reason: string | null;
  gateway_ref: string | null;
  sealed_token: SealedToken | null;
  body: WireOrderT;
}

type NewOrderRow = Omit<OrderRow, 'total_cents'> & { total_cents: number };

/** An entry the hub cannot store: it goes to the dead letters, the kit is acked 'rejected'. */
export interface DeadLetter {
  /** the entry's lane and id when they are readable (else the kit cannot be acked for it) */
  lane: LaneName | undefined;
  id: string | undefined;
  reason: string;
  /** the entry as sent, JSON bytes */
  raw: Buffer;
}

export interface LedgerCounters {
  ordersNew: number;
  ordersDuplicate: number;
  exchanges: number;
  declined: number;
  exchangeDeferred: number;
  deadLetters: number;
  /** resent orders whose content differed from the ledger's (each delivery counts) */
  orderConflicts: number;
  /** card orders left to their kit because the held-token key is lost (each delivery counts) */
  cardOrdersWaitingForKey: number;
  /** LAN transfer reports (a giver's release, a receiver's receipt) that did not verify: dead-lettered */
  lanRefused: number;
}

// a held token waits for the gateway at most this long in the hub, then the order is declined
const HELD_TOKEN_TTL_MS = 7 * 24 * 3600 * 1000;

/**
 * The hub's held-token key could not be loaded while tokens sealed with it wait in the ledger
 * (hub-service.ts): it is never replaced, so they stay openable once it is restored. Meanwhile card
 * orders the ledger does not hold yet are neither written nor acked (the kit keeps them, with their
 * tokens, and resends), and the held ones wait; cash orders and everything else go on.
 */
export interface HeldTokenKeyLost {
  code: 'HELD_TOKEN_KEY_LOST';
  state: 'missing' | 'empty' | 'torn';
  file: string;
  /** sealed tokens in the ledger when the hub started */
  heldTokens: number;
  message: string;
}

export class Ledger {
  readonly counters: LedgerCounters = {
    ordersNew: 0,
    ordersDuplicate: 0,
    exchanges: 0,
    declined: 0,
    exchangeDeferred: 0,
    deadLetters: 0,
    orderConflicts: 0,
    cardOrdersWaitingForKey: 0,
    lanRefused: 0,
  };

  /** exchanges this worker has under way (the retry loop leaves them alone) */
  private readonly exchanging = new Set<string>();
  private readonly gatewaySlots: Slots;

  constructor(
    private readonly db: SqlDb,
    private readonly gateway: PaymentGateway,
    /** seals the tokens of card orders between their insert and their exchange (or the gateway's return) */
    private readonly vault: TokenVault | HeldTokenKeyLost,
    /** gateway calls under way at most, per worker (POPKIT_HUB_GATEWAY_CONCURRENCY) */
    gatewayConcurrency = 8,
    /**
     * where the read-only views (fleet, dead letters, a kit's orders, units sold, loyalty double uses)
     * are read: the read replica (services/hub/read-replica.ts) or the primary. Nothing the ingest, the
     * acks or a write decides on is read here.
     */
    private readonly reads: Queryable = db,
  ) {
    this.gatewaySlots = new Slots(gatewayConcurrency);
  }

  /** loyalty passes and their redemptions, on the ledger's database (services/hub/loyalty.ts) */
  get loyalty(): LoyaltyBook {
    return new LoyaltyBook(this.db, this.reads);
  }

  async ping(): Promise<void> {
    await this.db.query('SELECT 1');
  }

  /**
   * Record one batch of a kit's entries and return the acks for it (every entry, new or seen before).
   * Write first, then charge: the batch commits (card orders 'forwarded', token sealed), then the new
   * card orders are exchanged and updated; a crash between the two is finished by retryDeferred (or the
   * kit's redelivery) under the same idempotency key `kitId:orderId`, so never a second charge.
   * `rejects` (and any entry the database refuses) go to the dead letters and are acked 'rejected'.
   */
  async recordBatch(
    kitId: string,
    entries: BatchEntryT[],
    rejects: DeadLetter[] = [],
    /** sealed telemetry entries the ingest opened, by entry id: stored as series, not as telemetry */
    series: ReadonlyMap<string, SeriesBatchT> = new Map(),
  ): Promise<AckItem[]> {
    let orders = entries.filter((e): e is OrderEntryT => 'order' in e);
    if (!(this.vault instanceof TokenVault)) orders = await this.withoutUnsealable(kitId, orders, this.vault);
    const others = entries.filter((e): e is OtherEntryT => !('order' in e));
    const orderIds = [...new Set(orders.map((e) => e.id))];
    // write first, then charge: a card order is inserted 'forwarded' with its token sealed by the hub's
    // vault, and exchanged only after the commit, so no charge exists for an order the ledger lacks
    const fresh = new Map<string, NewOrderRow>();
    for (const e of orders) if (!fresh.has(e.id)) fresh.set(e.id, this.rowFor(e));

    const states = new Map<string, { state: AckItem['state']; reason: string | undefined }>();
    const byId = new Map(orders.map((e) => [e.id, e]));
    let dead: DeadLetter[] = [];
    let stored: BatchEntryT[] = [];
    await this.db.transaction(async (tx) => {
      // a retried transaction starts over
      dead = [...rejects];
      stored = [];
      await tx.query(
        `INSERT INTO kits (kit_id) VALUES ($1) ON CONFLICT (kit_id) DO UPDATE SET last_seen = now()`,
        [kitId],
      );
      if (fresh.size > 0) {
        const rows = [...fresh.values()];
        let inserted: InsertedRow[];
        try {
          inserted = await inSavepoint(tx, () => insertOrders(tx, kitId, rows));
        } catch (err) {
          if (!isDataError(err)) throw err;
          // defence behind the contract: a value the database still refuses kills only its own order
          inserted = [];
          for (const row of rows) {
            try {
              inserted.push(...(await inSavepoint(tx, () => insertOrders(tx, kitId, [row]))));
            } catch (e) {
              if (!isDataError(e)) throw e;
              dead.push(dbDeadLetter('orders', row.order_id, e, byId.get(row.order_id)));
            }
          }
        }
        for (const r of inserted)
          states.set(r.order_id, { state: r.state, reason: r.decline_reason ?? undefined });
        this.counters.ordersNew += inserted.length;
      }
      for (const e of others) {
        try {
          await inSavepoint(tx, () => recordOther(tx, kitId, e, series));
          stored.push(e);
        } catch (err) {
          if (err instanceof LanRefused) {
            // a LAN transfer report that does not verify: nothing of it is recorded (its savepoint)
            this.counters.lanRefused++;
            log.warn({ kitId, id: e.id, code: err.code, reason: err.message }, 'LAN transfer refused');
            dead.push({
              lane: e.lane,
              id: e.id,
              reason: safeReason([`${err.code}: ${err.message}`]),
              raw: Buffer.from(JSON.stringify(e)),
            });
          } else if (isDataError(err)) dead.push(dbDeadLetter(e.lane, e.id, err, e));
          else throw err;
        }
      }
      for (const d of dead) {
        const res = await tx.query(
          `INSERT INTO dead_letters (kit_id, lane, entry_id, reason, raw) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (kit_id, lane, entry_id) WHERE entry_id IS NOT NULL DO NOTHING RETURNING id`,
          [kitId, d.lane ?? null, d.id ?? null, d.reason, d.raw],
        );
        this.counters.deadLetters += res.rows.length;
      }
    });

    // orders the ledger already had (a redelivery, or another worker was quicker): their committed state
    const deadOrders = new Set(dead.filter((d) => d.lane === 'orders').map((d) => d.id));
    const seen = orderIds.filter((id) => !states.has(id) && !deadOrders.has(id));
    this.counters.ordersDuplicate += seen.length;
    if (seen.length > 0) {
      for (const [id, st] of await this.orderStates(this.db, kitId, seen)) states.set(id, st);
      await this.recordConflicts(
        kitId,
        seen.map((id) => byId.get(id)!),
      );
    }
    // card orders committed 'forwarded' (inserted now, or redelivered after a crash or an outage):
    // exchanged now, a bounded number at a time, each under its unchanged idempotency key
    const toCharge = [...states].filter(([id, st]) => st.state === 'forwarded' && byId.get(id)?.token);
    for (const [id, st] of await this.exchangeAndRecord(
      kitId,
      toCharge.map(([id]) => byId.get(id)!),
    )) {
      states.set(id, st);
    }
    const acks: AckItem[] = [];
    for (const id of orderIds) {
      const st = states.get(id);
      if (!st) continue;
      acks.push({ lane: 'orders', id, state: st.state, ...(st.reason ? { reason: st.reason } : {}) });
    }
    for (const e of stored) acks.push({ lane: e.lane, id: e.id, state: 'stored' });
    const rejectedOrders = dead.filter((d) => d.lane === 'orders' && d.id).map((d) => d.id!);
    // a bad copy of an order the ledger already holds: the ledger's verdict stands
    const held =
      rejectedOrders.length > 0 ? await this.orderStates(this.db, kitId, rejectedOrders) : new Map();
    for (const d of dead) {
      if (!d.lane || !d.id) continue;
      const st = d.lane === 'orders' ? held.get(d.id) : undefined;
      acks.push(
        st
          ? { lane: 'orders', id: d.id, state: st.state, ...(st.reason ? { reason: st.reason } : {}) }
          : { lane: d.lane, id: d.id, state: 'rejected', reason: d.reason },
      );
    }
    return acks;
  }

  /** what the ledger's held tokens need: the key's state, or the loss it was found in at start */
  get heldTokenKey(): { state: 'ok' } | HeldTokenKeyLost {
    return this.vault instanceof TokenVault ? { state: 'ok' } : this.vault;
  }

  /**
   * Without the held-token key: the card orders of a batch the ledger does not hold yet are left out
   * (not written, not acked: the kit resends them until the key is back). Those it holds are answered
   * as usual (their verdict, or an exchange with the token the kit sent again).
   */
  private async withoutUnsealable(
    kitId: string,
    orders: OrderEntryT[],
    lost: HeldTokenKeyLost,
  ): Promise<OrderEntryT[]> {
    const cards = orders.filter((e) => e.order.payment.method === 'token' && e.token);
    if (cards.length === 0) return orders;
    const known = await this.orderStates(
      this.db,
      kitId,
      cards.map((e) => e.id),
    );
    const waiting = new Set(cards.filter((e) => !known.has(e.id)).map((e) => e.id));
    if (waiting.size === 0) return orders;
    this.counters.cardOrdersWaitingForKey += waiting.size;
    log.error(
      { code: lost.code, kitId, orders: waiting.size, file: lost.file, state: lost.state },
      'card orders not taken: the held-token key is lost (the kit keeps them and resends)',
    );
    return orders.filter((e) => !waiting.has(e.id));
  }

  /** Resent orders whose content differs from the ledger's row: counted, and the other copy kept. */
  private async recordConflicts(kitId: string, resent: OrderEntryT[]): Promise<void> {
    const res = await this.db.query<{ order_id: string; body: WireOrderT }>(
      `SELECT x.order_id, x.body FROM jsonb_to_recordset($2::jsonb) AS x(order_id text, body jsonb)
       JOIN orders o ON o.kit_id = $1 AND o.order_id = x.order_id
       WHERE o.body <> x.body`,
      [kitId, JSON.stringify(resent.map((e) => ({ order_id: e.id, body: e.order })))],
    );
    if (res.rows.length === 0) return;
    this.counters.orderConflicts += res.rows.length;
    log.warn(
      { kitId, orders: res.rows.map((r) => r.order_id) },
      'order resent with other content than the ledger',
    );
    await this.db.query(
      `INSERT INTO order_conflicts (kit_id, order_id, body)
       SELECT $1, x.order_id, x.body FROM jsonb_to_recordset($2::jsonb) AS x(order_id text, body jsonb)
       ON CONFLICT (kit_id, order_id, md5(body::text)) DO NOTHING`,
      [kitId, JSON.stringify(res.rows)],
    );
  }

  private async orderStates(db: SqlDb, kitId: string, ids: string[]) {
    const res = await db.query<{ order_id: string; state: AckItem['state']; decline_reason: string | null }>(
      `SELECT order_id, state, decline_reason FROM orders
       WHERE kit_id = $1 AND order_id IN (SELECT jsonb_array_elements_text($2::jsonb))`,
      [kitId, JSON.stringify(ids)],
    );
    return new Map(
      res.rows.map((r) => [r.order_id, { state: r.state, reason: r.decline_reason ?? undefined }]),
    );
  }

  private rowFor(e: OrderEntryT): NewOrderRow {
    const o = e.order;
    let state: OrderRow['state'] = 'settled';
    let reason: string | null = null;
    let sealed: SealedToken | null = null;
    if (o.payment.method === 'token') {
      if (!e.token) {
        state = 'declined';
        reason = `token_${e.tokenError ?? 'missing'}`;
        this.counters.declined++;
      } else {
        state = 'forwarded';
        // withoutUnsealable left out every card order this would need a missing key for
        if (!(this.vault instanceof TokenVault))
          throw new KitError('HELD_TOKEN_KEY_LOST', this.vault.message);
        sealed = this.vault.seal(e.token, HELD_TOKEN_TTL_MS);
      }
    }
    return {
      order_id: e.id,
      event_id: o.eventId,
      kit_created_at: o.createdAt,
      total_cents: o.totalCents,
      currency: o.currency,
      payment_method: o.payment.method,
      token_hint: o.payment.method === 'token' ? o.payment.tokenHint : null,
      state,
      decline_reason: reason,
      gateway_ref: null,
      sealed_token: sealed,
      body: o,
    };
  }

  /**
   * Exchange the tokens of committed 'forwarded' orders (at most `POPKIT_HUB_GATEWAY_CONCURRENCY` at
   * once) and record their verdicts in one statement: one commit per batch, not one per card order.
   * An order whose gateway is unreachable is left out (it stays 'forwarded'; the deferred-retry loop
   * finishes it with the same idempotency key, as it does after a crash between charge and record).
   */
  private async exchangeAndRecord(
    kitId: string,
    entries: OrderEntryT[],
  ): Promise<Map<string, { state: AckItem['state']; reason: string | undefined }>> {
    const out = new Map<string, { state: AckItem['state']; reason: string | undefined }>();
    if (entries.length === 0) return out;
    const keys = entries.map((e) => `${kitId}:${e.order.id}`);
    for (const key of keys) this.exchanging.add(key);
    try {
      const decided = (
        await Promise.all(
          entries.map(async (e) => {
            const o = e.order;
            try {
              this.counters.exchanges++;
              const verdict = await this.gatewaySlots.run(() =>
                this.gateway.exchange({
                  idempotencyKey: `${kitId}:${o.id}`,
                  token: e.token!,
                  amountCents: o.totalCents,
                  currency: o.currency,
                }),
              );
              if (verdict.outcome === 'declined') this.counters.declined++;
              return { id: o.id, verdict };
            } catch (err) {
              this.counters.exchangeDeferred++;
              log.warn({ err: (err as Error).message, orderId: o.id }, 'token exchange deferred');
              return undefined;
            }
          }),
        )
      ).filter((d): d is { id: string; verdict: ExchangeResult } => d !== undefined);
      if (decided.length === 0) return out;
      const rows = decided.map(({ id, verdict }) => ({
        order_id: id,
        state: verdict.outcome === 'approved' ? 'settled' : 'declined',
        decline_reason: verdict.outcome === 'declined' ? verdict.reason : null,
        gateway_ref: verdict.outcome === 'approved' ? verdict.ref : null,
      }));
      const res = await this.db.query<{
        order_id: string;
        state: AckItem['state'];
        decline_reason: string | null;
      }>(
        `UPDATE orders o SET state = x.state, decline_reason = x.decline_reason, gateway_ref = x.gateway_ref,
           sealed_token = NULL, settled_at = now()
         FROM jsonb_to_recordset($2::jsonb) AS x(order_id text, state text, decline_reason text, gateway_ref text)
         WHERE o.kit_id = $1 AND o.order_id = x.order_id AND o.state = 'forwarded'
         RETURNING o.order_id, o.state, o.decline_reason`,
        [kitId, JSON.stringify(rows)],
      );
      for (const r of res.rows)
        out.set(r.order_id, { state: r.state, reason: r.decline_reason ?? undefined });
      // another worker's retry loop recorded some first: its verdict is the ledger's
      const lost = decided.map((d) => d.id).filter((id) => !out.has(id));
      if (lost.length > 0)
        for (const [id, st] of await this.orderStates(this.db, kitId, lost)) out.set(id, st);
      return out;
    } finally {
      for (const key of keys) this.exchanging.delete(key);
    }
  }

  /**
   * Retry the exchanges that were deferred while the gateway was unreachable. Returns the kits' acks
   * to publish (order now settled or declined). Rows are locked so two workers never both exchange.
   */
  async retryDeferred(limit = 100): Promise<{ kitId: string; ack: AckItem }[]> {
    // without its key a held token cannot be opened: it waits (never declined as invalid) for the key
    const vault = this.vault;
    if (!(vault instanceof TokenVault)) return [];
    return this.db.transaction(async (tx) => {
      const res = await tx.query<{
        kit_id: string;
        order_id: string;
        total_cents: string | number;
        currency: string;
        sealed_token: SealedToken | null;
      }>(
        `SELECT kit_id, order_id, total_cents, currency, sealed_token FROM orders
         WHERE state = 'forwarded' AND NOT (kit_id || ':' || order_id = ANY($2::text[]))
         ORDER BY received_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit, [...this.exchanging]],
      );
      const out: { kitId: string; ack: AckItem }[] = [];
      for (const r of res.rows) {
        let verdict: Awaited<ReturnType<PaymentGateway['exchange']>> | undefined;
        if (!r.sealed_token) verdict = { outcome: 'declined', reason: 'token_missing' };
        else {
          let token: string | undefined;
          try {
            token = vault.open(r.sealed_token);
          } catch (err) {
            verdict = {
              outcome: 'declined',
              reason: (err as KitError).code === 'TOKEN_EXPIRED' ? 'token_expired' : 'token_invalid',
            };
          }
          if (token) {
            try {
              verdict = await this.gatewaySlots.run(() =>
                this.gateway.exchange({
                  idempotencyKey: `${r.kit_id}:${r.order_id}`,
                  token,
                  amountCents: Number(r.total_cents),
                  currency: r.currency,
                }),
              );
            } catch {
              break; // still unreachable: try the rest next time
            }
          }
        }
        if (!verdict) continue;
        const state = verdict.outcome === 'approved' ? 'settled' : 'declined';
        await tx.query(
          `UPDATE orders SET state = $3, decline_reason = $4, gateway_ref = $5, sealed_token = NULL, settled_at = now()
           WHERE kit_id = $1 AND order_id = $2`,
          [
            r.kit_id,
            r.order_id,
            state,
            verdict.outcome === 'declined' ? verdict.reason : null,
            verdict.outcome === 'approved' ? verdict.ref : null,
          ],
        );
        // the kit was acked 'forwarded' and no longer resends the order: the hub keeps this verdict and
        // resends it until the kit names it in a receipt
        await tx.query(
          `INSERT INTO pending_verdicts (kit_id, order_id, state, reason) VALUES ($1, $2, $3, $4)
           ON CONFLICT (kit_id, order_id) DO UPDATE SET state = $3, reason = $4`,
          [r.kit_id, r.order_id, state, verdict.outcome === 'declined' ? verdict.reason : null],
        );
        out.push({
          kitId: r.kit_id,
          ack: {
            lane: 'orders',
            id: r.order_id,
            state,
            ...(verdict.outcome === 'declined' ? { reason: verdict.reason } : {}),
            confirm: true,
          },
        });
      }
      return out;
    });
  }

  /** The dead letters, newest first (admin API): the entry as sent is shown as escaped JSON text. */
  async deadLetters(opts: { kitId?: string; limit: number }) {
    const res = await this.reads.query<{
      id: string | number;
      kit_id: string;
      lane: string | null;
      entry_id: string | null;
      reason: string;
      raw: Buffer;
      received_at: Date | string;
    }>(
      `SELECT id, kit_id, lane, entry_id, reason, raw, received_at FROM dead_letters
       WHERE ($1::text IS NULL OR kit_id = $1) ORDER BY id DESC LIMIT $2`,
      [opts.kitId ?? null, opts.limit],
    );
    return res.rows.map((r) => ({
      id: Number(r.id),
      kitId: r.kit_id,
      lane: r.lane,
      entryId: r.entry_id,
      reason: r.reason,
      // stored as JSON.stringify wrote it, which escapes control characters and lone surrogates
      raw: Buffer.from(r.raw).toString('utf8'),
      receivedAt: new Date(r.received_at).toISOString(),
    }));
  }

  /**
   * Verdicts waiting for the kit's receipt, to (re)send with `confirm`: one kit's all (it came online),
   * or every kit's not sent for `staleMs` (the periodic resend). Marked sent as they are returned.
   */
  async pendingVerdicts(opts: { kitId?: string; staleMs?: number; limit?: number }) {
    const res = await this.db.query<{
      kit_id: string;
      order_id: string;
      state: AckItem['state'];
      reason: string | null;
    }>(
      `UPDATE pending_verdicts SET last_sent_at = now(), sends = sends + 1
       WHERE (kit_id, order_id) IN (
         SELECT kit_id, order_id FROM pending_verdicts
         WHERE ($1::text IS NULL OR kit_id = $1)
           AND ($2::bigint IS NULL OR last_sent_at < now() - make_interval(secs => $2::bigint / 1000.0))
         ORDER BY kit_id, order_id LIMIT $3)
       RETURNING kit_id, order_id, state, reason`,
      [opts.kitId ?? null, opts.staleMs ?? null, opts.limit ?? 5000],
    );
    return res.rows.map((r) => ({
      kitId: r.kit_id,
      ack: {
        lane: 'orders',
        id: r.order_id,
        state: r.state,
        ...(r.reason ? { reason: r.reason } : {}),
        confirm: true,
      } satisfies AckItem,
    }));
  }

  /** The kit applied these confirmed verdicts: stop resending them. Returns how many were pending. */
  async confirmReceipt(kitId: string, orderIds: string[]): Promise<number> {
    const res = await this.db.query(
      `DELETE FROM pending_verdicts WHERE kit_id = $1 AND order_id IN (SELECT jsonb_array_elements_text($2::jsonb))
       RETURNING order_id`,
      [kitId, JSON.stringify(orderIds)],
    );
    return res.rows.length;
  }

  /**
   * Record a kit's status: `cameOnline` when it just came online (it was offline or unknown before);
   * `keyEvents` the events where the kit has stock moves when its identity key is new or changed (their
   * statements list it to the peers: services/hub/shared-stock.ts). A last will carries no key: the
   * known one stays.
   */
  async recordStatus(s: KitStatusT): Promise<{ cameOnline: boolean; keyEvents: string[] }> {
    const res = await this.db.query<{ was: boolean | null; key_was: string | null }>(
      `WITH prev AS (SELECT online, identity_key FROM kits WHERE kit_id = $1)
       INSERT INTO kits (kit_id, online, status, identity_key) VALUES ($1, $2, $3::jsonb, $4)
       ON CONFLICT (kit_id) DO UPDATE SET online = $2, last_seen = now(),
         -- a last will (online false) carries no event or state: the last known ones stay (alerts)
         status = CASE WHEN $2 THEN $3::jsonb ELSE COALESCE(kits.status, '{}'::jsonb) || $3::jsonb END,
         identity_key = COALESCE($4, kits.identity_key)
       RETURNING (SELECT online FROM prev) AS was, (SELECT identity_key FROM prev) AS key_was`,
      [s.kitId, s.online, JSON.stringify(s), s.identityKey ?? null],
    );
    const row = res.rows[0];
    const cameOnline = s.online && row?.was !== true;
    if (!s.identityKey || row?.key_was === s.identityKey) return { cameOnline, keyEvents: [] };
    const events = await this.db.query<{ event_id: string }>(
      'SELECT DISTINCT event_id FROM stock_moves WHERE kit_id = $1 ORDER BY event_id',
      [s.kitId],
    );
    return { cameOnline, keyEvents: events.rows.map((r) => r.event_id) };
  }

  async listKits() {
    const res = await this.reads.query<{
      kit_id: string;
      first_seen: Date | string;
      last_seen: Date | string;
      online: boolean;
      status: KitStatusT | null;
      stock: Record<string, number> | null;
      health: Record<string, unknown> | null;
      orders: string | number;
    }>(
      `SELECT k.kit_id, k.first_seen, k.last_seen, k.online, k.status, k.stock, k.health,
         (SELECT count(*) FROM orders o WHERE o.kit_id = k.kit_id) AS orders
       FROM kits k ORDER BY k.kit_id`,
    );
    return res.rows.map((r) => ({
      kitId: r.kit_id,
      firstSeen: new Date(r.first_seen).toISOString(),
      lastSeen: new Date(r.last_seen).toISOString(),
      online: r.online,
      state: r.status?.state ?? null,
      eventId: r.status?.eventId ?? null,
      backlog: r.status?.backlog ?? null,
      oldestAgeMs: r.status?.oldestAgeMs ?? null,
      battery: r.status?.battery ?? null,
      catalogVersion: r.status?.catalogVersion ?? null,
      stock: r.stock,
      health: r.health,
      orders: Number(r.orders),
    }));
  }

  async kitOrders(kitId: string, opts: { limit: number; after?: string }) {
    const agg = await this.reads.query<{ count: string | number; total: string | number | null }>(
      `SELECT count(*) AS count, sum(total_cents) AS total FROM orders WHERE kit_id = $1`,
      [kitId],
    );
    const rows = await this.reads.query<OrderRow & { received_at: Date | string }>(
      `SELECT order_id, event_id, kit_created_at, total_cents, currency, payment_method, token_hint, state,
         decline_reason, gateway_ref, body, received_at
       FROM orders WHERE kit_id = $1 AND order_id > $2 ORDER BY order_id LIMIT $3`,
      [kitId, opts.after ?? '', opts.limit],
    );
    return {
      kitId,
      count: Number(agg.rows[0]?.count ?? 0),
      totalCents: Number(agg.rows[0]?.total ?? 0),
      orders: rows.rows.map((r) => ({
        id: r.order_id,
        eventId: r.event_id,
        state: r.state,
        totalCents: Number(r.total_cents),
        currency: r.currency,
        paymentMethod: r.payment_method,
        ...(r.token_hint ? { tokenHint: r.token_hint } : {}),
        ...(r.decline_reason ? { declineReason: r.decline_reason } : {}),
        ...(r.gateway_ref ? { gatewayRef: r.gateway_ref } : {}),
        lines: r.body.lines,
        createdAt: r.kit_created_at,
        receivedAt: new Date(r.received_at).toISOString(),
      })),
    };
  }

  /**
   * Units sold per SKU for an event across its kits (order_lines, migration 6): a SKU's own lines plus
   * what bundles took of it; and bundles sold. Orders released on their kit (a hold let go) gave their
   * units back and are left out; declined card orders are counted (their goods left the kit: the host
   * collects another way).
   */
  async unitsSold(eventId: string) {
    const res = await this.reads.query<{ sku: string; kind: string; units: string | number }>(
      `SELECT ol.sku, ol.kind, sum(ol.qty) AS units
       FROM order_lines ol
       JOIN order_status os ON os.kit_id = ol.kit_id AND os.order_id = ol.order_id
       WHERE os.event_id = $1 AND os.kit_status <> 'released'
       GROUP BY ol.sku, ol.kind ORDER BY ol.sku, ol.kind`,
      [eventId],
    );
    const skus = new Map<string, { sku: string; units: number; inBundles: number }>();
    const bundles: { bundleId: string; units: number }[] = [];
    for (const r of res.rows) {
      const n = Number(r.units);
      if (r.kind === 'bundle') {
        bundles.push({ bundleId: r.sku, units: n });
        continue;
      }
      const row = skus.get(r.sku) ?? { sku: r.sku, units: 0, inBundles: 0 };
      row.units += n;
      if (r.kind === 'component') row.inBundles += n;
      skus.set(r.sku, row);
    }
    return { eventId, skus: [...skus.values()], bundles };
  }

  async latestCatalogVersion(eventId: string): Promise<number> {
    const res = await this.db.query<{ v: number | null }>(
      'SELECT max(version) AS v FROM catalogs WHERE event_id = $1',
      [eventId],
    );
    return Number(res.rows[0]?.v ?? 0);
  }

  /**
   * Store a signed catalog; CATALOG_STALE when its version is not above the latest of its event.
   * `check` runs in the same transaction before the insert (a throw stores nothing).
   */
  async storeCatalog(
    eventId: string,
    version: number,
    signed: SignedCatalogT,
    check?: (tx: Queryable) => Promise<void>,
  ): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`catalog:${eventId}`]);
      const res = await tx.query<{ v: number | null }>(
        'SELECT max(version) AS v FROM catalogs WHERE event_id = $1',
        [eventId],
      );
      const latest = Number(res.rows[0]?.v ?? 0);
      if (version <= latest) {
        throw new KitError('CATALOG_STALE', `event ${eventId} already has catalog version ${latest}`);
      }
      await check?.(tx);
      await tx.query('INSERT INTO catalogs (event_id, version, signed) VALUES ($1, $2, $3::jsonb)', [
        eventId,
        version,
        JSON.stringify(signed),
      ]);
      // the creator's cross-event feed follows the catalog that names the creator (migration 11)
      await linkEventCreator(tx, eventId);
    });
  }

  /** The latest signed catalog of every event (republished retained when the hub connects). */
  async latestCatalogs(): Promise<{ eventId: string; signed: SignedCatalogT }[]> {
    const res = await this.db.query<{ event_id: string; signed: SignedCatalogT }>(
      `SELECT DISTINCT ON (event_id) event_id, signed FROM catalogs ORDER BY event_id, version DESC`,
    );
    return res.rows.map((r) => ({ eventId: r.event_id, signed: r.signed }));
  }
}

interface InsertedRow {
  order_id: string;
  state: AckItem['state'];
  decline_reason: string | null;
}

/** `fn` inside a savepoint: rolled back to it alone when it throws, so the transaction goes on. */
async function inSavepoint<T>(tx: Queryable, fn: () => Promise<T>): Promise<T> {
  await tx.query('SAVEPOINT entry');
  try {
    const out = await fn();
    await tx.query('RELEASE SAVEPOINT entry');
    return out;
  } catch (err) {
    await tx.query('ROLLBACK TO SAVEPOINT entry');
    throw err;
  }
}

/**
 * Insert the orders not in the ledger yet and, in the same statement, their order_lines rows (a line
 * per order line, plus one per bundle component: migration 6); a redelivered order adds neither.
 */
async function insertOrders(tx: Queryable, kitId: string, rows: NewOrderRow[]): Promise<InsertedRow[]> {
  const res = await tx.query<InsertedRow>(
    `WITH ins AS (INSERT INTO orders (kit_id, order_id, event_id, kit_created_at, total_cents, currency, payment_method,
       token_hint, state, decline_reason, gateway_ref, sealed_token, body, settled_at)
     SELECT $1, x.order_id, x.event_id, x.kit_created_at, x.total_cents, x.currency, x.payment_method,
       x.token_hint, x.state, x.decline_reason, x.gateway_ref, x.sealed_token, x.body,
       CASE WHEN x.state = 'forwarded' THEN NULL ELSE now() END
     FROM jsonb_to_recordset($2::jsonb) AS x(order_id text, event_id text, kit_created_at text,
       total_cents bigint, currency text, payment_method text, token_hint text, state text,
       decline_reason text, gateway_ref text, sealed_token jsonb, body jsonb)
     ON CONFLICT (kit_id, order_id) DO NOTHING
     RETURNING kit_id, order_id, state, decline_reason, body),
     lines AS (${ORDER_LINES_FROM('ins')} RETURNING 1)
     SELECT order_id, state, decline_reason FROM ins`,
    [kitId, JSON.stringify(rows)],
  );
  const inserted = res.rows.map((r) => r.order_id);
  await recordRedemptions(tx, kitId, inserted);
  return res.rows;
}

/**
 * An order event, a stock snapshot, a health report or a telemetry entry. An order event is kept as
 * it came, whether its order arrived yet or not: the `order_status` view reads the order's state from
 * the events there are (migration 5), so their order of arrival does not matter.
 */
async function recordOther(
  tx: Queryable,
  kitId: string,
  e: OtherEntryT,
  series: ReadonlyMap<string, SeriesBatchT>,
) {
  if ('release' in e) {
    // a kit's stock release: once by its id, and the transfer's grant with it (shared-stock.ts); one
    // made over the venue LAN carries the receiver's signed request instead of a hub request
    if (e.release.lan) await SharedStock.recordLanRelease(tx, kitId, e.release, e.release.lan);
    else await SharedStock.recordRelease(tx, kitId, e.release);
    return;
  }
  if ('lanGrant' in e) {
    // units this kit received over the venue LAN: the giver's signed receipt (shared-stock.ts)
    await SharedStock.recordLanGrant(tx, kitId, e.id, e.lanGrant);
    return;
  }
  if ('event' in e) {
    await tx.query(
      `INSERT INTO order_events (kit_id, entry_id, order_id, type, at, by, reason)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kit_id, entry_id) DO NOTHING`,
      [kitId, e.id, e.event.orderId, e.event.type, e.event.at, e.event.by ?? null, e.event.reason ?? null],
    );
    return;
  }
  if (e.lane === 'stock') {
    await tx.query(
      `UPDATE kits SET stock = $2::jsonb, stock_at = $3 WHERE kit_id = $1 AND (stock_at IS NULL OR stock_at < $3)`,
      [kitId, JSON.stringify(e.stock), e.at],
    );
    return;
  }
  const opened = e.lane === 'telemetry' ? series.get(e.id) : undefined;
  if (opened) {
    // the plaintext is stored as series; the sealed box itself is not kept
    await recordSeries(tx, kitId, opened);
    return;
  }
  if (e.lane === 'health') {
    await tx.query(
      `UPDATE kits SET health = $2::jsonb, health_at = $3 WHERE kit_id = $1 AND (health_at IS NULL OR health_at < $3)`,
      [kitId, JSON.stringify(e.body), e.at],
    );
  }
  await tx.query(
    `INSERT INTO kit_telemetry (kit_id, entry_id, lane, at, body) VALUES ($1, $2, $3, $4, $5::jsonb)
     ON CONFLICT (kit_id, entry_id) DO NOTHING`,
    [kitId, e.id, e.lane, e.at, JSON.stringify(e.body)],
  );
}

/** A dead letter for an entry the database refused (its SQLSTATE and message are the reason). */
function dbDeadLetter(lane: LaneName, id: string, err: unknown, entry: unknown): DeadLetter {
  const e = err as { code?: string; message?: string };
  return {
    lane,
    id,
    reason: safeReason([`database refused it (${e.code ?? '?'}): ${e.message ?? ''}`]),
    raw: Buffer.from(JSON.stringify(entry ?? null)),
  };
}

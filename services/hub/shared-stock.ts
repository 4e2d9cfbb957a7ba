// Shared stock across the kits of an event, the hub's side (docs/shared-stock.md). The hub's ledger of
// moves (stock_moves, migration 16) is the truth of who holds what: a kit's allocation is what it was
// granted less what it released. The hub never takes units from a kit: it asks the kit to release them
// (a release request), and only the kit's release, made in its own LMDB transaction and sent on the
// orders lane, lowers its allocation; the units released for a transfer are granted to the receiver
// in the same database transaction, under the same id. Grants come only from units no kit holds
// (the event's stock less every allocation) or from a release. Each kit hears its share as a signed
// statement, retained on kits/{kitId}/allocations/{eventId}.

import type { KeyObject } from 'node:crypto';
import { createPublicKey, randomUUID } from 'node:crypto';
import { signAllocation, signatureVerifies, signCatalog } from '../../core/catalog-signing.ts';
import type { CatalogPayloadT, SignedCatalogT } from '../../core/contracts/hub-wire.ts';
import { topics } from '../../core/contracts/hub-wire.ts';
import {
  LAN_LIMITS,
  type LanGrantReportT,
  type LanPeerT,
  type LanReceiptPayloadT,
  type LanRequestPayloadT,
  lanStockWire,
  type SignedLanMessageT,
} from '../../core/contracts/lan-stock.ts';
import type {
  AllocationPayloadT,
  AllocationsBodyT,
  StockMoveT,
  StockReleaseT,
  TransferBodyT,
} from '../../core/contracts/shared-stock.ts';
import { KitError } from '../../core/errors.ts';
import { moduleLogger } from '../../core/logger.ts';
import { type KitShare, type PlannedTransfer, planRebalance, splitEvenly } from '../../core/shared-stock.ts';
import type { Queryable, SqlDb } from './db.ts';

const log = moduleLogger('hub-shared-stock');

interface MoveRow {
  kind: 'grant' | 'release_request' | 'release';
  move_id: string;
  kit_id: string;
  sku: string;
  qty: number;
  transfer_to: string | null;
  via: 'hub' | 'lan';
  requested: number | null;
}

/**
 * Why the hub refuses a kit's report of a LAN transfer (a giver's release, a receiver's receipt): the
 * entry is dead-lettered with `code: message` as its reason, acked 'rejected', and nothing of it is
 * recorded. The codes are dead-letter reasons, not HTTP errors (docs/shared-stock.md).
 */
export type LanRefusalCode =
  /** the signed message is not our shape (envelope, JSON, payload contract) */
  | 'LAN_REPORT_MALFORMED'
  /** its signature does not verify against the signing kit's identity key as the hub knows it */
  | 'LAN_REPORT_FORGED'
  /** a kit of the transfer is not in the event (no stock moves) or the hub knows no identity key for it */
  | 'LAN_REPORT_UNKNOWN_KIT'
  /** the signed message and the report disagree (id, event, SKU, kits, quantities) */
  | 'LAN_REPORT_MISMATCH'
  /** the move is recorded already with other figures (the other side reported it differently) */
  | 'LAN_REPORT_CONFLICT';

export class LanRefused extends KitError {
  constructor(code: LanRefusalCode, message: string) {
    super(code, message);
    this.name = 'LanRefused';
  }
}

/** The figures of a LAN transfer both reports must agree on (the giver's release and the receipt). */
interface LanMove {
  id: string;
  eventId: string;
  from: string;
  to: string;
  sku: string;
  requested: number;
  released: number;
}

/** The event's stock per SKU by its latest catalog, and that catalog (signed). */
async function latestCatalog(
  q: Queryable,
  eventId: string,
): Promise<{ payload: CatalogPayloadT; signed: SignedCatalogT } | undefined> {
  const res = await q.query<{ signed: SignedCatalogT }>(
    'SELECT signed FROM catalogs WHERE event_id = $1 ORDER BY version DESC LIMIT 1',
    [eventId],
  );
  const signed = res.rows[0]?.signed;
  if (!signed) return undefined;
  return { payload: JSON.parse(signed.payload) as CatalogPayloadT, signed };
}

function stockOf(payload: CatalogPayloadT): Map<string, number> {
  return new Map(payload.catalog.items.map((i) => [i.sku, i.stock]));
}

async function movesOf(q: Queryable, eventId: string): Promise<MoveRow[]> {
  const res = await q.query<MoveRow>(
    `SELECT kind, move_id, kit_id, sku, qty, transfer_to, via, requested FROM stock_moves
     WHERE event_id = $1 ORDER BY created_at, move_id`,
    [eventId],
  );
  return res.rows.map((r) => ({
    ...r,
    qty: Number(r.qty),
    requested: r.requested === null ? null : Number(r.requested),
  }));
}

/** kit → sku → units allocated (granted − released; a pending request still counts as the kit's). */
export function allocationsFrom(moves: readonly MoveRow[]): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const m of moves) {
    if (m.kind === 'release_request') continue;
    const kit = out.get(m.kit_id) ?? new Map<string, number>();
    out.set(m.kit_id, kit);
    kit.set(m.sku, (kit.get(m.sku) ?? 0) + (m.kind === 'grant' ? m.qty : -m.qty));
  }
  return out;
}

function unallocated(
  stock: Map<string, number>,
  alloc: Map<string, Map<string, number>>,
  sku: string,
): number {
  let held = 0;
  for (const kit of alloc.values()) held += kit.get(sku) ?? 0;
  return (stock.get(sku) ?? 0) - held;
}

export interface SharedStockDeps {
  db: SqlDb;
  signingKey: KeyObject;
  /** publish retained, QoS 1 (the hub ingest's client) */
  publishRetained(topic: string, payload: string): Promise<void>;
  /** a catalog the hub re-signed with `sharedStock` (stored by the caller's ledger, then published) */
  storeAndPublishCatalog(eventId: string, version: number, signed: SignedCatalogT): Promise<void>;
}

export class SharedStock {
  constructor(private readonly deps: SharedStockDeps) {}

  private lock(tx: Queryable, eventId: string) {
    return tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`stock:${eventId}`]);
  }

  /**
   * Set each listed kit's allocation of each listed SKU (or split every SKU evenly among `kits`): a
   * rise is granted from the unallocated units (ALLOCATION_OVER_STOCK when there are not enough, and
   * nothing changes), a cut is a release request the kit answers with what it still has.
   */
  async setAllocations(eventId: string, body: AllocationsBodyT) {
    const cat = await latestCatalog(this.deps.db, eventId);
    if (!cat) throw new KitError('NOT_FOUND', `event ${eventId} has no catalog on this hub`);
    const stock = stockOf(cat.payload);
    const targets: Array<{ kitId: string; sku: string; qty: number }> = [];
    if ('split' in body) {
      for (const [sku, n] of stock)
        for (const [kitId, qty] of splitEvenly(n, body.kits)) targets.push({ kitId, sku, qty });
    } else targets.push(...body.allocations);
    for (const t of targets) {
      if (!stock.has(t.sku))
        throw new KitError('VALIDATION', `SKU ${t.sku} is not in event ${eventId}'s catalog`);
    }
    const touched = new Set<string>();
    await this.deps.db.transaction(async (tx) => {
      await this.lock(tx, eventId);
      const alloc = allocationsFrom(await movesOf(tx, eventId));
      const need = new Map<string, number>();
      const grants: Array<{ kitId: string; sku: string; qty: number }> = [];
      const cuts: Array<{ kitId: string; sku: string; qty: number }> = [];
      for (const t of targets) {
        const cur = alloc.get(t.kitId)?.get(t.sku) ?? 0;
        if (t.qty > cur) {
          grants.push({ ...t, qty: t.qty - cur });
          need.set(t.sku, (need.get(t.sku) ?? 0) + t.qty - cur);
        } else if (t.qty < cur) cuts.push({ ...t, qty: cur - t.qty });
      }
      for (const [sku, n] of need) {
        const free = unallocated(stock, alloc, sku);
        if (n > free) {
          throw new KitError('ALLOCATION_OVER_STOCK', `SKU ${sku}: ${n} units asked, ${free} unallocated`, {
            sku,
            asked: n,
            unallocated: free,
          });
        }
      }
      for (const g of grants)
        await this.insertMove(tx, eventId, 'grant', `a-${randomUUID()}`, g.kitId, g.sku, g.qty);
      for (const c of cuts)
        await this.insertMove(tx, eventId, 'release_request', `r-${randomUUID()}`, c.kitId, c.sku, c.qty);
      for (const t of targets) touched.add(t.kitId);
    });
    await this.ensureSharedCatalog(eventId, cat);
    await this.publishKits(eventId, touched);
    return this.view(eventId);
  }

  /** Ask `from` to release units for `to`; the grant follows the release (recordRelease). */
  async transfer(eventId: string, t: TransferBodyT): Promise<{ transferId: string }> {
    if (t.from === t.to) throw new KitError('VALIDATION', 'a transfer needs two kits');
    const transferId = `t-${randomUUID()}`;
    await this.deps.db.transaction(async (tx) => {
      await this.lock(tx, eventId);
      await this.insertMove(tx, eventId, 'release_request', transferId, t.from, t.sku, t.qty, t.to);
    });
    await this.publishKits(eventId, [t.from]);
    return { transferId };
  }

  /**
   * The automatic rule once, on what the ledger knows (orders received): the transfers asked. Planned
   * and asked in one transaction under the event's lock, and nothing is planned while a request is
   * still unanswered, so two hub workers running it at once ask once.
   */
  async rebalance(
    eventId: string,
    belowPercent = 20,
  ): Promise<{ transfers: Array<PlannedTransfer & { sku: string; transferId: string }> }> {
    const out: Array<PlannedTransfer & { sku: string; transferId: string }> = [];
    await this.deps.db.transaction(async (tx) => {
      out.length = 0;
      await this.lock(tx, eventId);
      const moves = await movesOf(tx, eventId);
      const answered = new Set(moves.filter((m) => m.kind === 'release').map((m) => m.move_id));
      if (moves.some((m) => m.kind === 'release_request' && !answered.has(m.move_id))) return;
      const alloc = allocationsFrom(moves);
      const sold = await this.soldByKit(eventId, tx);
      const skus = new Set<string>();
      for (const k of alloc.values()) for (const s of k.keys()) skus.add(s);
      for (const sku of [...skus].sort()) {
        const shares: KitShare[] = [...alloc].map(([kitId, m]) => ({
          kitId,
          allocated: m.get(sku) ?? 0,
          sold: sold.get(`${kitId}\u0000${sku}`) ?? 0,
        }));
        for (const p of planRebalance(shares, belowPercent)) {
          const transferId = `t-${randomUUID()}`;
          await this.insertMove(tx, eventId, 'release_request', transferId, p.from, sku, p.qty, p.to);
          out.push({ ...p, sku, transferId });
        }
      }
    });
    if (out.length > 0) await this.publishKits(eventId, new Set(out.map((t) => t.from)));
    return { transfers: out };
  }

  /** The rule on every event with allocations (the timer, POPKIT_HUB_REBALANCE_S): transfers asked. */
  async rebalanceAll(belowPercent: number): Promise<number> {
    const res = await this.deps.db.query<{ event_id: string }>('SELECT DISTINCT event_id FROM stock_moves');
    let n = 0;
    for (const r of res.rows) n += (await this.rebalance(r.event_id, belowPercent)).transfers.length;
    return n;
  }

  private async soldByKit(eventId: string, q: Queryable = this.deps.db): Promise<Map<string, number>> {
    const res = await q.query<{ kit_id: string; sku: string; units: string }>(
      `SELECT l.kit_id, l.sku, sum(l.qty) AS units FROM order_lines l
       JOIN orders o ON o.kit_id = l.kit_id AND o.order_id = l.order_id
       WHERE o.event_id = $1 AND l.kind <> 'bundle' GROUP BY l.kit_id, l.sku`,
      [eventId],
    );
    return new Map(res.rows.map((r) => [`${r.kit_id}\u0000${r.sku}`, Number(r.units)]));
  }

  private async insertMove(
    tx: Queryable,
    eventId: string,
    kind: MoveRow['kind'],
    id: string,
    kitId: string,
    sku: string,
    qty: number,
    transferTo?: string,
  ): Promise<boolean> {
    const res = await tx.query(
      `INSERT INTO stock_moves (event_id, kind, move_id, kit_id, sku, qty, transfer_to)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING move_id`,
      [eventId, kind, id, kitId, sku, qty, transferTo ?? null],
    );
    return res.rows.length > 0;
  }

  /**
   * Inside the batch's transaction: a kit's release, once by its id, only in answer to a request made
   * to that kit for that SKU; its units go to the transfer's receiver under the same id. The kits whose
   * statements change (to publish after the commit), empty for a replay.
   */
  static async recordRelease(tx: Queryable, kitId: string, r: StockReleaseT): Promise<string[]> {
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`stock:${r.eventId}`]);
    const req = await tx.query<{ transfer_to: string | null }>(
      `SELECT transfer_to FROM stock_moves
       WHERE event_id = $1 AND kind = 'release_request' AND move_id = $2 AND kit_id = $3 AND sku = $4 AND qty >= $5`,
      [r.eventId, r.id, kitId, r.sku, r.released],
    );
    const request = req.rows[0];
    if (!request) {
      log.warn({ kitId, id: r.id }, 'a release no request asked for: ignored');
      return [];
    }
    const ins = await tx.query(
      `INSERT INTO stock_moves (event_id, kind, move_id, kit_id, sku, qty, transfer_to)
       VALUES ($1, 'release', $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING move_id`,
      [r.eventId, r.id, kitId, r.sku, r.released, request.transfer_to],
    );
    if (ins.rows.length === 0) return [];
    const to = request.transfer_to;
    if (to && r.released > 0) {
      await tx.query(
        `INSERT INTO stock_moves (event_id, kind, move_id, kit_id, sku, qty, transfer_to)
         VALUES ($1, 'grant', $2, $3, $4, $5, NULL) ON CONFLICT DO NOTHING`,
        [r.eventId, r.id, to, r.sku, r.released],
      );
      return [kitId, to];
    }
    return [kitId];
  }

  /**
   * Inside the batch's transaction: a giver's release to another kit of the event over the venue LAN
   * (lan-stock.ts), in answer to the receiver's signed request rather than a hub request. The request
   * must verify against the receiver's identity key as the hub knows it and agree with the release (id,
   * event, SKU, kits, qty asked); then the release and the receiver's grant are recorded once by the
   * transfer's id, whether the receiver's report (recordLanGrant) came first or not. Anything that does
   * not verify throws LanRefused (the ledger dead-letters the entry). The kits whose statements change.
   */
  static async recordLanRelease(
    tx: Queryable,
    kitId: string,
    r: StockReleaseT,
    lan: NonNullable<StockReleaseT['lan']>,
  ): Promise<string[]> {
    if (lan.to === kitId)
      throw new LanRefused('LAN_REPORT_MISMATCH', 'a LAN release to the giving kit itself');
    const signed = lan.request;
    if (!lanStockWire.signed.check(signed))
      throw new LanRefused('LAN_REPORT_MALFORMED', 'the request is not signed');
    // the signature first, with the key of the kit that says it asked (lan.to), then what is inside
    const key = await peerKey(tx, r.eventId, lan.to);
    if (!signatureVerifies(key, signed))
      throw new LanRefused(
        'LAN_REPORT_FORGED',
        `the request does not verify with kit ${lan.to}'s identity key`,
      );
    const q = payloadOf<LanRequestPayloadT>(signed, lanStockWire.request.check, 'request');
    const wrong: string[] = [];
    if (q.id !== r.id) wrong.push('id');
    if (q.eventId !== r.eventId) wrong.push('eventId');
    if (q.from !== kitId) wrong.push('from');
    if (q.to !== lan.to) wrong.push('to');
    if (q.sku !== r.sku) wrong.push('sku');
    if (q.qty !== r.requested) wrong.push('qty');
    if (wrong.length > 0)
      throw new LanRefused(
        'LAN_REPORT_MISMATCH',
        `the release and its signed request differ: ${wrong.join(', ')}`,
      );
    if (r.released > r.requested)
      throw new LanRefused('LAN_REPORT_MISMATCH', `released ${r.released} > requested ${r.requested}`);
    await mustBeInEvent(tx, r.eventId, kitId);
    return recordLanMove(
      tx,
      {
        id: r.id,
        eventId: r.eventId,
        from: kitId,
        to: lan.to,
        sku: r.sku,
        requested: r.requested,
        released: r.released,
      },
      { kind: 'request', reportedBy: kitId, signed },
    );
  }

  /**
   * Inside the batch's transaction: a receiver's report of units it got over the venue LAN, the giver's
   * signed receipt. It must verify against the giver's (`from`) identity key as the hub knows it, be for
   * this kit (`to`) and carry the entry's id; then the same release and grant as recordLanRelease, once
   * by the transfer's id. Throws LanRefused when it does not verify. The event and the kits whose
   * statements change.
   */
  static async recordLanGrant(
    tx: Queryable,
    kitId: string,
    entryId: string,
    g: LanGrantReportT,
  ): Promise<{ eventId: string; kits: string[] }> {
    const signed = g.receipt;
    if (!lanStockWire.signed.check(signed))
      throw new LanRefused('LAN_REPORT_MALFORMED', 'the receipt is not signed');
    // the signer is named inside: its shape is checked before its key is looked up, nothing is used
    // before the signature verifies
    const p = payloadOf<LanReceiptPayloadT>(signed, lanStockWire.receipt.check, 'receipt');
    const key = await peerKey(tx, p.eventId, p.from);
    if (!signatureVerifies(key, signed))
      throw new LanRefused(
        'LAN_REPORT_FORGED',
        `the receipt does not verify with kit ${p.from}'s identity key`,
      );
    const wrong: string[] = [];
    if (p.id !== entryId) wrong.push('id');
    if (p.to !== kitId) wrong.push('to');
    if (p.from === p.to) wrong.push('from');
    if (wrong.length > 0)
      throw new LanRefused(
        'LAN_REPORT_MISMATCH',
        `the entry and its signed receipt differ: ${wrong.join(', ')}`,
      );
    if (p.released > p.requested)
      throw new LanRefused('LAN_REPORT_MISMATCH', `released ${p.released} > requested ${p.requested}`);
    await mustBeInEvent(tx, p.eventId, kitId);
    const kits = await recordLanMove(
      tx,
      {
        id: p.id,
        eventId: p.eventId,
        from: p.from,
        to: p.to,
        sku: p.sku,
        requested: p.requested,
        released: p.released,
      },
      { kind: 'receipt', reportedBy: kitId, signed },
    );
    return { eventId: p.eventId, kits };
  }

  /** Every catalog of an event with allocations says its stock is shared: re-signed once if not. */
  private async ensureSharedCatalog(
    eventId: string,
    cat: { payload: CatalogPayloadT; signed: SignedCatalogT },
  ): Promise<void> {
    if (cat.payload.catalog.sharedStock) return;
    const version = cat.payload.version + 1;
    const signed = signCatalog(this.deps.signingKey, { ...cat.payload.catalog, version, sharedStock: true });
    await this.deps.storeAndPublishCatalog(eventId, version, signed);
  }

  /**
   * Inside a new catalog's transaction: its stock of each SKU must cover what the event's kits already
   * hold of it (STOCK_BELOW_ALLOCATED otherwise, and the catalog is not stored). Units a kit holds may
   * be sold offline at any moment, so the hub cannot take them back by lowering the event's figure; the
   * creator first cuts allocations (release requests the kits answer), then lowers the stock. Under the
   * event's stock lock, so an allocation cannot slip in between the check and the insert.
   */
  static async checkStockCovers(
    tx: Queryable,
    eventId: string,
    items: ReadonlyArray<{ sku: string; stock: number }>,
  ): Promise<void> {
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`stock:${eventId}`]);
    const alloc = allocationsFrom(await movesOf(tx, eventId));
    for (const item of items) {
      let held = 0;
      for (const kit of alloc.values()) held += kit.get(item.sku) ?? 0;
      if (held > item.stock)
        throw new KitError(
          'STOCK_BELOW_ALLOCATED',
          `SKU ${item.sku}: the event's kits hold ${held} units, the catalog says ${item.stock}; cut their allocations first (PUT /v1/events/${eventId}/allocations)`,
          { sku: item.sku, stock: item.stock, allocated: held },
        );
    }
  }

  /** Does the event have allocations (a catalog stored for it must then say `sharedStock`)? */
  async hasAllocations(eventId: string): Promise<boolean> {
    const res = await this.deps.db.query('SELECT 1 FROM stock_moves WHERE event_id = $1 LIMIT 1', [eventId]);
    return res.rows.length > 0;
  }

  /**
   * The event's peers as every statement lists them: each kit with moves in the event whose identity
   * key the hub knows (from its status), sorted by kit id; the kit the statement is for is among them.
   */
  async peers(eventId: string, q: Queryable = this.deps.db): Promise<LanPeerT[]> {
    const res = await q.query<{ kit_id: string; identity_key: string }>(
      `SELECT kit_id, identity_key FROM kits
       WHERE identity_key IS NOT NULL AND kit_id IN (SELECT kit_id FROM stock_moves WHERE event_id = $1)`,
      [eventId],
    );
    const out = res.rows
      .map((r) => ({ kitId: r.kit_id, key: r.identity_key }))
      .sort((a, b) => (a.kitId < b.kitId ? -1 : a.kitId > b.kitId ? 1 : 0));
    if (out.length > LAN_LIMITS.peers) {
      log.warn({ eventId, peers: out.length }, 'more kits with keys than a statement lists: the first kept');
      out.length = LAN_LIMITS.peers;
    }
    return out;
  }

  /** Sign and publish, retained, the statement of each kit (a new version each). */
  async publishKits(eventId: string, kits: Iterable<string>): Promise<void> {
    const cat = await latestCatalog(this.deps.db, eventId);
    const stock = cat ? stockOf(cat.payload) : new Map<string, number>();
    for (const kitId of new Set(kits)) {
      const payload = await this.deps.db.transaction(async (tx) => {
        await this.lock(tx, eventId);
        const moves = await movesOf(tx, eventId);
        const done = new Set(
          moves.filter((m) => m.kind === 'release' && m.kit_id === kitId).map((m) => m.move_id),
        );
        const mine = moves.filter((m) => m.kit_id === kitId);
        const peers = await this.peers(eventId, tx);
        const v = await tx.query<{ version: number }>(
          `INSERT INTO stock_statements (event_id, kit_id, version) VALUES ($1, $2, 1)
           ON CONFLICT (event_id, kit_id) DO UPDATE SET version = stock_statements.version + 1 RETURNING version`,
          [eventId, kitId],
        );
        const move = (m: MoveRow): StockMoveT => ({ id: m.move_id, sku: m.sku, qty: m.qty });
        const body: AllocationPayloadT = {
          v: 1,
          use: 'stock-allocation',
          kitId,
          eventId,
          version: Number(v.rows[0]!.version),
          issuedAt: new Date().toISOString(),
          grants: mine.filter((m) => m.kind === 'grant' && m.qty > 0).map(move),
          releaseRequests: mine.filter((m) => m.kind === 'release_request' && !done.has(m.move_id)).map(move),
          eventStock: [...stock],
          allocated: [...(allocationsFrom(moves).get(kitId) ?? new Map<string, number>())],
          peers,
        };
        return body;
      });
      const signed = signAllocation(this.deps.signingKey, payload);
      try {
        await this.deps.publishRetained(topics.allocation(kitId, eventId), JSON.stringify(signed));
      } catch (err) {
        // stored: the next statement, or the republish on reconnect, carries it
        log.warn({ err: (err as Error).message, kitId, eventId }, 'allocation statement not published');
      }
    }
  }

  /** Every kit of one event with moves: after a release was recorded. */
  async publishEvent(eventId: string): Promise<void> {
    const res = await this.deps.db.query<{ kit_id: string }>(
      'SELECT DISTINCT kit_id FROM stock_moves WHERE event_id = $1',
      [eventId],
    );
    await this.publishKits(
      eventId,
      res.rows.map((r) => r.kit_id),
    );
  }

  /** Every kit of every event with moves: republished when the hub (re)connects. */
  async republishAll(): Promise<void> {
    const res = await this.deps.db.query<{ event_id: string; kit_id: string }>(
      'SELECT DISTINCT event_id, kit_id FROM stock_moves',
    );
    const byEvent = new Map<string, string[]>();
    for (const r of res.rows) byEvent.set(r.event_id, [...(byEvent.get(r.event_id) ?? []), r.kit_id]);
    for (const [eventId, kits] of byEvent) await this.publishKits(eventId, kits);
  }

  /** The event-wide view: stock, unallocated, and per kit allocated, sold (by the ledger) and moves. */
  async view(eventId: string) {
    const cat = await latestCatalog(this.deps.db, eventId);
    const stock = cat ? stockOf(cat.payload) : new Map<string, number>();
    const moves = await movesOf(this.deps.db, eventId);
    const alloc = allocationsFrom(moves);
    const sold = await this.soldByKit(eventId);
    const released = new Set(moves.filter((m) => m.kind === 'release').map((m) => m.move_id));
    return {
      eventId,
      skus: [...stock].map(([sku, n]) => ({
        sku,
        eventStock: n,
        unallocated: unallocated(stock, alloc, sku),
        kits: [...alloc].map(([kitId, m]) => ({
          kitId,
          allocated: m.get(sku) ?? 0,
          sold: sold.get(`${kitId}\u0000${sku}`) ?? 0,
        })),
      })),
      moves: moves.map((m) => ({
        kind: m.kind,
        id: m.move_id,
        kitId: m.kit_id,
        sku: m.sku,
        qty: m.qty,
        via: m.via,
        ...(m.transfer_to ? { to: m.transfer_to } : {}),
        ...(m.requested !== null ? { requested: m.requested } : {}),
        ...(m.kind === 'release_request' ? { answered: released.has(m.move_id) } : {}),
      })),
    };
  }
}

/** The event's shared-stock lock: every write of its moves, and every statement, is made under it. */
function lockEvent(tx: Queryable, eventId: string) {
  return tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`stock:${eventId}`]);
}

/** Is the kit in the event (it has stock moves there)? LAN_UNKNOWN_KIT when not. */
async function mustBeInEvent(tx: Queryable, eventId: string, kitId: string): Promise<void> {
  const res = await tx.query('SELECT 1 FROM stock_moves WHERE event_id = $1 AND kit_id = $2 LIMIT 1', [
    eventId,
    kitId,
  ]);
  if (res.rows.length === 0)
    throw new LanRefused('LAN_REPORT_UNKNOWN_KIT', `kit ${kitId} is not in event ${eventId}`);
}

/**
 * The identity key of a kit of the event, as the hub lists it to the event's peers: LAN_UNKNOWN_KIT
 * when the kit has no moves in the event or the hub knows no key for it.
 */
async function peerKey(tx: Queryable, eventId: string, kitId: string): Promise<KeyObject> {
  await mustBeInEvent(tx, eventId, kitId);
  const res = await tx.query<{ identity_key: string | null }>(
    'SELECT identity_key FROM kits WHERE kit_id = $1',
    [kitId],
  );
  const x = res.rows[0]?.identity_key;
  if (!x) throw new LanRefused('LAN_REPORT_UNKNOWN_KIT', `the hub knows no identity key for kit ${kitId}`);
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  } catch {
    throw new LanRefused('LAN_REPORT_UNKNOWN_KIT', `kit ${kitId}'s identity key is not an ed25519 key`);
  }
}

/** The payload of a signed LAN message, checked against its contract (no other field, no hostile value). */
function payloadOf<T>(signed: SignedLanMessageT, check: (v: unknown) => boolean, what: string): T {
  let value: unknown;
  try {
    value = JSON.parse(signed.payload);
  } catch {
    throw new LanRefused('LAN_REPORT_MALFORMED', `the ${what}'s payload is not JSON`);
  }
  if (!check(value))
    throw new LanRefused('LAN_REPORT_MALFORMED', `the ${what}'s payload is not a LAN ${what}`);
  return value as T;
}

/**
 * Record a verified LAN transfer once by its id: the giver's release (to the receiver, with what was
 * asked) and, for units given, the receiver's grant, both `via 'lan'`, under the event's lock. The
 * same move reported again (the other side, a replay, another hub worker) changes nothing; reported
 * with other figures, LAN_CONFLICT. The signed message is kept as the move's evidence. The kits whose
 * statements change: none for a move already recorded.
 */
async function recordLanMove(
  tx: Queryable,
  m: LanMove,
  proof: { kind: 'request' | 'receipt'; reportedBy: string; signed: SignedLanMessageT },
): Promise<string[]> {
  await lockEvent(tx, m.eventId);
  const prev = await tx.query<{
    kit_id: string;
    transfer_to: string | null;
    sku: string;
    qty: number;
    requested: number | null;
    via: string;
  }>(
    `SELECT kit_id, transfer_to, sku, qty, requested, via FROM stock_moves
     WHERE event_id = $1 AND kind = 'release' AND move_id = $2`,
    [m.eventId, m.id],
  );
  const had = prev.rows[0];
  let changed = false;
  if (had) {
    const same =
      had.via === 'lan' &&
      had.kit_id === m.from &&
      had.transfer_to === m.to &&
      had.sku === m.sku &&
      Number(had.qty) === m.released &&
      Number(had.requested) === m.requested;
    if (!same) throw new LanRefused('LAN_REPORT_CONFLICT', `transfer ${m.id} is recorded with other figures`);
  } else {
    await tx.query(
      `INSERT INTO stock_moves (event_id, kind, move_id, kit_id, sku, qty, transfer_to, via, requested)
       VALUES ($1, 'release', $2, $3, $4, $5, $6, 'lan', $7)`,
      [m.eventId, m.id, m.from, m.sku, m.released, m.to, m.requested],
    );
    if (m.released > 0) {
      await tx.query(
        `INSERT INTO stock_moves (event_id, kind, move_id, kit_id, sku, qty, transfer_to, via)
         VALUES ($1, 'grant', $2, $3, $4, $5, NULL, 'lan') ON CONFLICT DO NOTHING`,
        [m.eventId, m.id, m.to, m.sku, m.released],
      );
    }
    changed = true;
    // the kit releases only what it holds; the hub may not have heard yet of units the giver itself got
    // over the LAN, so it does not refuse a release beyond its own count, it says so (docs)
    const left = await tx.query<{ n: string | number | null }>(
      `SELECT sum(CASE WHEN kind = 'grant' THEN qty ELSE -qty END) AS n FROM stock_moves
       WHERE event_id = $1 AND kit_id = $2 AND sku = $3 AND kind <> 'release_request'`,
      [m.eventId, m.from, m.sku],
    );
    const n = Number(left.rows[0]?.n ?? 0);
    if (n < 0) {
      log.warn(
        { eventId: m.eventId, kitId: m.from, sku: m.sku, allocation: n, id: m.id },
        'a LAN release beyond what the hub counts for the giver (a move it has not heard of yet?)',
      );
    }
  }
  await tx.query(
    `INSERT INTO lan_proofs (event_id, move_id, kind, reported_by, signed) VALUES ($1, $2, $3, $4, $5::jsonb)
     ON CONFLICT DO NOTHING`,
    [m.eventId, m.id, proof.kind, proof.reportedBy, JSON.stringify(proof.signed)],
  );
  if (!changed) return [];
  return m.released > 0 ? [m.from, m.to] : [m.from];
}

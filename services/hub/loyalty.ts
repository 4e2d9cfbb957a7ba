// The hub's side of loyalty passes (docs/drops.md#loyalty): it issues them, signed with its catalog key
// (kits hold the public half and verify offline), keeps each pass's allowed uses, records every order
// that carried a discount as a redemption (with the order, in ledger.ts), and lists the passes used
// more often than allowed: kits offline from each other cannot stop that, the hub finds it.
import { type KeyObject, randomBytes } from 'node:crypto';
import { parseIsoTime } from '../../core/contracts/catalog.ts';
import { encodePass, type IssuePassBodyT, type PassPayloadT } from '../../core/contracts/loyalty.ts';
import { KitError } from '../../core/errors.ts';
import type { Queryable, SqlDb } from './db.ts';

/** Orders just inserted that carry a discount become redemptions (the same transaction as the orders). */
export async function recordRedemptions(tx: Queryable, kitId: string, orderIds: string[]): Promise<void> {
  if (orderIds.length === 0) return;
  await tx.query(
    `INSERT INTO loyalty_redemptions (kit_id, order_id, pass_id, event_id, holder, cents, kit_created_at)
     SELECT o.kit_id, o.order_id, o.body->'discount'->>'passId', o.event_id, o.body->'discount'->>'holder',
       (o.body->'discount'->>'cents')::bigint, o.kit_created_at
     FROM orders o
     WHERE o.kit_id = $1 AND o.order_id IN (SELECT jsonb_array_elements_text($2::jsonb))
       AND o.body ? 'discount'
     ON CONFLICT (kit_id, order_id) DO NOTHING`,
    [kitId, JSON.stringify(orderIds)],
  );
}

export interface DoubleUse {
  passId: string;
  eventId: string;
  holder: string;
  /** redemptions the hub holds for this pass at this event, and how many the pass allows */
  uses: number;
  allowed: number;
  /** false: the hub did not issue this pass (its allowance is taken as 1) */
  known: boolean;
  kits: number;
  discountCents: number;
  /** the discount of the redemptions beyond the allowed ones, oldest first by the kits' clocks */
  excessCents: number;
  redemptions: Array<{ kitId: string; orderId: string; cents: number; at: string }>;
}

export class LoyaltyBook {
  constructor(
    private readonly db: SqlDb,
    /** where the double-use report is read (the read replica, or the primary) */
    private readonly reads: Queryable = db,
  ) {}

  /** Issue a pass: draw its id, sign it, keep it. VALIDATION for an expiry not ahead or a pass too large. */
  async issue(
    key: KeyObject,
    body: IssuePassBodyT,
    now = Date.now(),
  ): Promise<{ pass: string; payload: PassPayloadT }> {
    const exp = parseIsoTime(body.expiresAt);
    if (Number.isNaN(exp)) throw new KitError('VALIDATION', 'expiresAt is not an ISO 8601 time with a zone');
    if (exp <= now) throw new KitError('VALIDATION', 'expiresAt is not in the future');
    const payload: PassPayloadT = {
      v: 1,
      id: randomBytes(12).toString('base64url'),
      holder: body.holder,
      tier: body.tier,
      rule: body.rule,
      scope: body.scope,
      uses: body.uses ?? 1,
      issuedAt: Math.floor(now / 1000),
      expiresAt: Math.floor(exp / 1000),
    };
    const pass = encodePass(key, payload);
    await this.db.query(
      `INSERT INTO loyalty_passes (pass_id, holder, tier, uses, expires_at, payload)
       VALUES ($1, $2, $3, $4, to_timestamp($5), $6::jsonb)`,
      [payload.id, payload.holder, payload.tier, payload.uses, payload.expiresAt, JSON.stringify(payload)],
    );
    return { pass, payload };
  }

  /** Passes redeemed more often at one event than they allow, across all kits, latest first. */
  async doubleUses(limit: number): Promise<DoubleUse[]> {
    const res = await this.reads.query<{
      pass_id: string;
      event_id: string;
      holder: string;
      uses: number;
      allowed: number | null;
      kits: number;
      redemptions: DoubleUse['redemptions'];
    }>(
      `SELECT r.pass_id, r.event_id, min(r.holder) AS holder, count(*)::int AS uses, p.uses AS allowed,
         count(DISTINCT r.kit_id)::int AS kits,
         jsonb_agg(jsonb_build_object('kitId', r.kit_id, 'orderId', r.order_id, 'cents', r.cents,
           'at', r.kit_created_at) ORDER BY r.kit_created_at, r.kit_id, r.order_id) AS redemptions
       FROM loyalty_redemptions r LEFT JOIN loyalty_passes p ON p.pass_id = r.pass_id
       GROUP BY r.pass_id, r.event_id, p.uses
       HAVING count(*) > COALESCE(p.uses, 1)
       ORDER BY max(r.received_at) DESC, r.pass_id, r.event_id
       LIMIT $1`,
      [limit],
    );
    return res.rows.map((r) => {
      const allowed = r.allowed ?? 1;
      const redemptions = r.redemptions.map((x) => ({ ...x, cents: Number(x.cents) }));
      const sum = (xs: typeof redemptions) => xs.reduce((s, x) => s + x.cents, 0);
      return {
        passId: r.pass_id,
        eventId: r.event_id,
        holder: r.holder,
        uses: r.uses,
        allowed,
        known: r.allowed !== null,
        kits: r.kits,
        discountCents: sum(redemptions),
        excessCents: sum(redemptions.slice(allowed)),
        redemptions,
      };
    });
  }
}

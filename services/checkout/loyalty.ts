// Loyalty at the edge (docs/drops.md#loyalty): an order feature that verifies a pass offline against
// the hub's public key, judges its expiry (by the order's clock) and scope (the catalog's creator and
// event), takes its discount off the total, and counts the use in the order's own transaction.
import type { KeyObject } from 'node:crypto';
import fs from 'node:fs';
import { Gauge, type Registry } from 'prom-client';
import { parsePublicKey } from '../../core/catalog-signing.ts';
import {
  assertPassUsable,
  decodePass,
  type PassPayloadT,
  ruleDiscount,
} from '../../core/contracts/loyalty.ts';
import { dataLayout, hubDataLayout } from '../../core/data-dir.ts';
import { KitError } from '../../core/errors.ts';
import type { KitStore, OrderLine } from '../../core/store/index.ts';
import { loyaltyTotals, passUses, redeemPassStep } from '../../core/store/loyalty.ts';
import type { CatalogView, InTxnStep, OrderDraft, OrderFeature } from './order-features.ts';

/**
 * Where checkout finds the hub's public key: POPKIT_HUB_PUBLIC_KEY (PEM or base64 SPKI DER, as sync
 * reads it), else the file POPKIT_HUB_PUBLIC_KEY_FILE, else the embedded hub's `hub/keys/hub-signing.pub`
 * under the data dir (`popkit up`). The text, or undefined when there is none yet.
 */
export function hubKeySource(cfg: {
  POPKIT_HUB_PUBLIC_KEY?: string | undefined;
  POPKIT_HUB_PUBLIC_KEY_FILE?: string | undefined;
  dataDir: string;
}): () => string | undefined {
  return () => {
    if (cfg.POPKIT_HUB_PUBLIC_KEY) return cfg.POPKIT_HUB_PUBLIC_KEY;
    if (cfg.POPKIT_HUB_PUBLIC_KEY_FILE) {
      try {
        return fs.readFileSync(cfg.POPKIT_HUB_PUBLIC_KEY_FILE, 'utf8');
      } catch (err) {
        throw new KitError('CONFIG_INVALID', `POPKIT_HUB_PUBLIC_KEY_FILE: ${(err as Error).message}`);
      }
    }
    const embedded = hubDataLayout(dataLayout(cfg.dataDir).hub).signingPub;
    return fs.existsSync(embedded) ? fs.readFileSync(embedded, 'utf8') : undefined;
  };
}

export interface LoyaltyOptions {
  /** the hub's public key text (read once it is there: `popkit up` writes it after the hub starts) */
  hubKey: () => string | undefined;
  /** a per-kit cap on one pass's uses per event, below the pass's own (POPKIT_LOYALTY_KIT_USES_MAX) */
  kitUsesMax?: number | undefined;
}

/** What a pass would do to these lines now: the discount and the uses left on this kit. */
export interface PassQuote {
  pass: PassPayloadT;
  subtotalCents: number;
  discountCents: number;
  totalCents: number;
  /** uses this kit allows for this pass at this event, and how many are left */
  allowed: number;
  usesLeft: number;
}

export class LoyaltyFeature implements OrderFeature {
  readonly name = 'loyalty';
  private key: KeyObject | undefined;

  constructor(
    private readonly store: KitStore,
    private readonly opts: LoyaltyOptions,
  ) {}

  /** The hub key, parsed once found (a key that is not ed25519 is a configuration error, said loudly). */
  publicKey(): KeyObject | undefined {
    if (!this.key) {
      const text = this.opts.hubKey();
      if (text) this.key = parsePublicKey(text);
    }
    return this.key;
  }

  /**
   * Verify and judge a pass against priced lines: PASS_INVALID, PASS_FORGED, PASS_EXPIRED,
   * PASS_OUT_OF_SCOPE (also when its rule applies to none of the lines), PASS_USED (none left here;
   * the order's transaction checks again), NOT_READY (no hub key on this kit). Writes nothing.
   */
  quote(text: string, cat: CatalogView, lines: readonly OrderLine[], now: number): PassQuote {
    const key = this.publicKey();
    if (!key)
      throw new KitError('NOT_READY', 'loyalty passes cannot be verified: no hub public key on this kit', {
        setting: 'POPKIT_HUB_PUBLIC_KEY',
      });
    const pass = decodePass(key, text);
    const { eventId, creatorId } = cat.catalog;
    assertPassUsable(pass, { now, eventId, creatorId });
    const subtotalCents = lines.reduce((s, l) => s + l.lineCents, 0);
    const discountCents = ruleDiscount(pass.rule, lines);
    if (discountCents <= 0)
      throw new KitError('PASS_OUT_OF_SCOPE', 'loyalty pass applies to none of these lines', {
        passId: pass.id,
        skus: pass.rule.skus ?? [],
      });
    const allowed = this.allowed(pass);
    const used = passUses(this.store, pass.id, eventId);
    if (used >= allowed)
      throw new KitError('PASS_USED', 'this loyalty pass has no use left on this kit', {
        passId: pass.id,
        uses: used,
        allowed,
      });
    return {
      pass,
      subtotalCents,
      discountCents,
      totalCents: subtotalCents - discountCents,
      allowed,
      usesLeft: allowed - used,
    };
  }

  private allowed(pass: PassPayloadT): number {
    return Math.min(pass.uses, this.opts.kitUsesMax ?? pass.uses);
  }

  adjust(d: OrderDraft): void {
    const text = d.body.loyaltyPass;
    if (text === undefined) return;
    const q = this.quote(text, d.cat, d.lines, d.now);
    // another feature may have lowered the total already: never below 0
    const cents = Math.min(q.discountCents, d.totalCents);
    d.totalCents -= cents;
    d.extra.subtotalCents = d.subtotalCents;
    d.extra.discount = { passId: q.pass.id, holder: q.pass.holder, cents };
    passes.set(d, { pass: q.pass, allowed: q.allowed, cents });
  }

  /** The tier of the pass this order uses (after `adjust`), for the audience's loyalty segments. */
  tierOf(d: OrderDraft): string | undefined {
    return passes.get(d)?.pass.tier;
  }

  commit(d: OrderDraft): InTxnStep | undefined {
    const p = passes.get(d);
    if (!p) return undefined;
    return redeemPassStep(this.store, {
      passId: p.pass.id,
      holder: p.pass.holder,
      eventId: d.cat.catalog.eventId,
      cents: p.cents,
      allowed: p.allowed,
    });
  }

  status(): Record<string, unknown> {
    return {
      loyalty: {
        verifying: this.safeKey() !== undefined,
        ...loyaltyTotals(this.store),
        kitUsesMax: this.opts.kitUsesMax ?? null,
      },
    };
  }

  private safeKey(): KeyObject | undefined {
    try {
      return this.publicKey();
    } catch {
      return undefined;
    }
  }

  metrics(registry: Registry): void {
    const store = this.store;
    new Gauge({
      name: 'popkit_loyalty_redemptions',
      help: 'Loyalty pass uses redeemed on this kit (from the store)',
      registers: [registry],
      collect() {
        this.set(loyaltyTotals(store).redemptions);
      },
    });
    new Gauge({
      name: 'popkit_loyalty_discount_cents',
      help: 'Discount given on this kit through loyalty passes, in cents (from the store)',
      registers: [registry],
      collect() {
        this.set(loyaltyTotals(store).discountCents);
      },
    });
  }
}

/** The verified pass of a draft, between its adjust and its commit step. */
const passes = new WeakMap<OrderDraft, { pass: PassPayloadT; allowed: number; cents: number }>();

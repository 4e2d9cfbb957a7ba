// A loyalty pass, declared once (docs/drops.md#loyalty): the hub signs it with its ed25519 key (the key
// that signs catalogs, so every kit already holds the public half) and a phone shows it as a QR. The
// text is `pk1.<base64url(payload JSON)>.<base64url(ed25519 signature over those payload bytes)>`; a
// kit verifies it offline, before it parses anything inside, then applies its discount rule.
import { type KeyObject, sign, verify } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import { KitError } from '../errors.ts';
import { contract, ID_LEVEL, IsoTime, Sku } from './common.ts';

export const PASS_PREFIX = 'pk1';

export const LOYALTY_LIMITS = {
  /** the whole pass text (the order body's `loyaltyPass` takes at most this) */
  passChars: 1024,
  skus: 16,
  events: 8,
  usesPerEvent: 100,
  /** the largest discount or cap a pass may name (the catalog's largest price) */
  cents: 100_000_000,
} as const;

/** The pass id: what a kit counts uses by and the hub finds double uses by. */
export const PassId = Type.String({ minLength: 8, maxLength: 32, pattern: '^[A-Za-z0-9_-]+$' });
/** A short holder id (a member number), never a name: the pass travels in the clear. */
export const HolderId = Type.String({ minLength: 1, maxLength: 32, pattern: '^[A-Za-z0-9_.-]+$' });
export const Tier = Type.String({ minLength: 1, maxLength: 24, pattern: '^[A-Za-z0-9_.-]+$' });
const PassCents = Type.Integer({ minimum: 1, maximum: LOYALTY_LIMITS.cents });
/** Which lines the rule applies to: absent, the whole order; else the lines of these SKUs or bundle ids. */
const PassSkus = Type.Array(Sku, { minItems: 1, maxItems: LOYALTY_LIMITS.skus });

/**
 * The discount: `percent` off (rounded down), or `fixed` cents off (per order; per unit of a listed
 * SKU when `skus` is set), never more than `capCents`, never more than what it applies to.
 */
export const DiscountRule = Type.Union([
  Type.Object(
    {
      kind: Type.Literal('percent'),
      percent: Type.Integer({ minimum: 1, maximum: 100 }),
      skus: Type.Optional(PassSkus),
      capCents: PassCents,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('fixed'),
      cents: PassCents,
      skus: Type.Optional(PassSkus),
      capCents: PassCents,
    },
    { additionalProperties: false },
  ),
]);
export type DiscountRuleT = Static<typeof DiscountRule>;

/** Where a pass may be used: the creator's catalogs (`creatorId` of the catalog), these events, or both. */
export const PassScope = Type.Object(
  {
    creatorId: Type.Optional(Type.String({ pattern: ID_LEVEL })),
    eventIds: Type.Optional(
      Type.Array(Type.String({ pattern: ID_LEVEL }), { minItems: 1, maxItems: LOYALTY_LIMITS.events }),
    ),
  },
  { additionalProperties: false },
);
export type PassScopeT = Static<typeof PassScope>;

/** Unix seconds: compact in a QR. */
const UnixSeconds = Type.Integer({ minimum: 0, maximum: 2 ** 32 });

export const PassPayload = Type.Object(
  {
    v: Type.Literal(1),
    id: PassId,
    holder: HolderId,
    tier: Tier,
    rule: DiscountRule,
    scope: PassScope,
    /** uses allowed per event */
    uses: Type.Integer({ minimum: 1, maximum: LOYALTY_LIMITS.usesPerEvent }),
    issuedAt: UnixSeconds,
    expiresAt: UnixSeconds,
  },
  { additionalProperties: false },
);
export type PassPayloadT = Static<typeof PassPayload>;
export const passPayload = contract(PassPayload);

/** The hub's `POST /v1/loyalty/passes` body (the hub draws the id and the issue time). */
export const IssuePassBody = Type.Object(
  {
    holder: HolderId,
    tier: Tier,
    rule: DiscountRule,
    scope: PassScope,
    uses: Type.Optional(Type.Integer({ minimum: 1, maximum: LOYALTY_LIMITS.usesPerEvent, default: 1 })),
    /** ISO 8601 with a zone */
    expiresAt: IsoTime,
  },
  { additionalProperties: false },
);
export type IssuePassBodyT = Static<typeof IssuePassBody>;

export const IssuedPass = Type.Object({ pass: Type.String(), payload: PassPayload });

/** The cross-field rules a schema cannot say, or undefined. */
export function passPayloadProblem(p: PassPayloadT): string | undefined {
  if (p.scope.creatorId === undefined && p.scope.eventIds === undefined)
    return 'scope names neither a creator nor events';
  if (p.expiresAt <= p.issuedAt) return 'expiresAt is not after issuedAt';
  return undefined;
}

// 64 signature bytes are 86 base64url characters without padding
const PASS_RE = /^pk1\.([A-Za-z0-9_-]{2,1000})\.([A-Za-z0-9_-]{86})$/;

/** Sign a payload into the text a phone shows. Throws VALIDATION for a payload no kit would accept. */
export function encodePass(privateKey: KeyObject, payload: PassPayloadT): string {
  if (!passPayload.check(payload))
    throw new KitError('VALIDATION', `invalid pass: ${passPayload.errors(payload).join('; ')}`);
  const problem = passPayloadProblem(payload);
  if (problem) throw new KitError('VALIDATION', `invalid pass: ${problem}`);
  const bytes = Buffer.from(JSON.stringify(payload), 'utf8');
  const sig = sign(null, bytes, privateKey);
  const text = `${PASS_PREFIX}.${bytes.toString('base64url')}.${sig.toString('base64url')}`;
  if (text.length > LOYALTY_LIMITS.passChars)
    throw new KitError('VALIDATION', `pass is ${text.length} characters, over ${LOYALTY_LIMITS.passChars}`);
  return text;
}

const invalid = (why: string) => new KitError('PASS_INVALID', `loyalty pass: ${why}`);

/**
 * The verified payload of a pass text, or a KitError: PASS_INVALID (not a pass, or a payload that is
 * not ours), PASS_FORGED (the signature is not the hub's). The signature is checked over the exact
 * payload bytes before they are parsed.
 */
export function decodePass(publicKey: KeyObject, text: string): PassPayloadT {
  if (typeof text !== 'string' || text.length > LOYALTY_LIMITS.passChars) throw invalid('too long');
  const m = PASS_RE.exec(text);
  if (!m) throw invalid(`not a ${PASS_PREFIX} pass`);
  const [, payloadB64 = '', sigB64 = ''] = m;
  const bytes = Buffer.from(payloadB64, 'base64url');
  const sig = Buffer.from(sigB64, 'base64url');
  // one text per payload: a re-encoding with other trailing bits is not accepted
  if (bytes.toString('base64url') !== payloadB64 || sig.toString('base64url') !== sigB64 || sig.length !== 64)
    throw invalid('not canonical base64url');
  let ok = false;
  try {
    ok = verify(null, bytes, publicKey, sig);
  } catch {
    ok = false;
  }
  if (!ok) throw new KitError('PASS_FORGED', 'loyalty pass: the signature is not the hub’s');
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw invalid('payload is not JSON');
  }
  if (!passPayload.check(value)) throw invalid(passPayload.errors(value, 3).join('; '));
  const problem = passPayloadProblem(value);
  if (problem) throw invalid(problem);
  return value;
}

/** Where the order is taken: the instant (the order's clock), the catalog's event and creator. */
export interface PassContext {
  now: number;
  eventId: string;
  creatorId?: string | undefined;
}

/** PASS_EXPIRED or PASS_OUT_OF_SCOPE when the pass may not be used here and now. */
export function assertPassUsable(p: PassPayloadT, ctx: PassContext): void {
  if (ctx.now >= p.expiresAt * 1000) {
    throw new KitError('PASS_EXPIRED', 'loyalty pass has expired', {
      passId: p.id,
      expiresAt: new Date(p.expiresAt * 1000).toISOString(),
    });
  }
  if (p.scope.creatorId !== undefined && p.scope.creatorId !== ctx.creatorId) {
    throw new KitError('PASS_OUT_OF_SCOPE', 'loyalty pass is for another creator', { passId: p.id });
  }
  if (p.scope.eventIds !== undefined && !p.scope.eventIds.includes(ctx.eventId)) {
    throw new KitError('PASS_OUT_OF_SCOPE', 'loyalty pass is not valid at this event', {
      passId: p.id,
      eventId: ctx.eventId,
    });
  }
}

/** A priced line as the rule sees it (an order line: `sku` is a SKU or a bundle id). */
export interface PricedLine {
  sku: string;
  qty: number;
  lineCents: number;
}

/**
 * The cents a rule takes off these lines: percent of the lines it applies to (rounded down), or a
 * fixed amount (per order, or per unit of a listed SKU, at most each line's own amount); then at most
 * the cap and at most what it applies to. Never negative, never above the sum of the lines.
 */
export function ruleDiscount(rule: DiscountRuleT, lines: readonly PricedLine[]): number {
  const listed = rule.skus ? new Set(rule.skus) : undefined;
  const applies = listed ? lines.filter((l) => listed.has(l.sku)) : lines;
  const base = applies.reduce((s, l) => s + l.lineCents, 0);
  let cents: number;
  if (rule.kind === 'percent') cents = Math.floor((base * rule.percent) / 100);
  else if (listed) cents = applies.reduce((s, l) => s + Math.min(l.lineCents, rule.cents * l.qty), 0);
  else cents = rule.cents;
  const total = lines.reduce((s, l) => s + l.lineCents, 0);
  return Math.max(0, Math.min(cents, rule.capCents, base, total));
}

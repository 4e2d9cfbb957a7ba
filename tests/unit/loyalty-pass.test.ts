// The loyalty pass codec and discount rules (core/contracts/loyalty.ts): what the hub signs a kit
// verifies, anything else is refused with its code; a rule never takes more than its cap, the lines
// it applies to, or the order.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  assertPassUsable,
  type DiscountRuleT,
  decodePass,
  encodePass,
  LOYALTY_LIMITS,
  type PassPayloadT,
  type PricedLine,
  ruleDiscount,
} from '../../core/contracts/loyalty.ts';
import { isKitError } from '../../core/errors.ts';

const hub = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const T0 = 1_800_000_000;

function payload(over: Partial<PassPayloadT> = {}): PassPayloadT {
  return {
    v: 1,
    id: 'pass-0001',
    holder: 'M-1234',
    tier: 'gold',
    rule: { kind: 'percent', percent: 10, capCents: 5000 },
    scope: { creatorId: 'creator-a' },
    uses: 1,
    issuedAt: T0,
    expiresAt: T0 + 86_400,
    ...over,
  };
}

/** A pass whose payload bytes are exactly `json`, signed by `key` (a hub that signs anything). */
function signRaw(key: KeyObject, json: string): string {
  const bytes = Buffer.from(json, 'utf8');
  return `pk1.${bytes.toString('base64url')}.${sign(null, bytes, key).toString('base64url')}`;
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isKitError(err)) return err.code;
    throw err;
  }
  return 'accepted';
}

describe('pass codec', () => {
  test('a pass the hub signed decodes to its payload, within the order body’s bounds', () => {
    const text = encodePass(hub.privateKey, payload());
    assert.match(text, /^pk1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$/);
    assert.ok(text.length <= LOYALTY_LIMITS.passChars);
    assert.deepEqual(decodePass(hub.publicKey, text), payload());
  });

  test('property: every valid payload round-trips; any changed character is refused', () => {
    const idChars = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-');
    const arbPayload = fc.record({
      v: fc.constant(1 as const),
      id: fc.string({ unit: idChars, minLength: 8, maxLength: 32 }),
      holder: fc.string({ unit: idChars, minLength: 1, maxLength: 32 }),
      tier: fc.string({ unit: idChars, minLength: 1, maxLength: 24 }),
      rule: fc.oneof(
        fc.record({
          kind: fc.constant('percent' as const),
          percent: fc.integer({ min: 1, max: 100 }),
          capCents: fc.integer({ min: 1, max: LOYALTY_LIMITS.cents }),
        }),
        fc.record({
          kind: fc.constant('fixed' as const),
          cents: fc.integer({ min: 1, max: LOYALTY_LIMITS.cents }),
          capCents: fc.integer({ min: 1, max: LOYALTY_LIMITS.cents }),
          skus: fc.array(
            fc.string({ unit: idChars, minLength: 1, maxLength: 12 }).map((x) => `S${x}`),
            {
              minLength: 1,
              maxLength: 4,
            },
          ),
        }),
      ),
      scope: fc.record({
        eventIds: fc.array(fc.constantFrom('ev-1', 'ev-2', 'x9'), { minLength: 1, maxLength: 3 }),
      }),
      uses: fc.integer({ min: 1, max: 100 }),
      issuedAt: fc.integer({ min: 0, max: 2 ** 31 }),
      expiresAt: fc.constant(2 ** 32),
    });
    fc.assert(
      fc.property(arbPayload, fc.nat(), fc.constantFrom(...'AQgz-_09'), (raw, at, ch) => {
        // plain objects, as JSON.parse gives them (fast-check's records have no prototype)
        const p = JSON.parse(JSON.stringify(raw)) as PassPayloadT;
        const text = encodePass(hub.privateKey, p);
        assert.deepEqual(decodePass(hub.publicKey, text), p);
        const i = 4 + (at % (text.length - 4));
        if (text[i] === ch || text[i] === '.') return;
        const changed = text.slice(0, i) + ch + text.slice(i + 1);
        assert.ok(['PASS_FORGED', 'PASS_INVALID'].includes(code(() => decodePass(hub.publicKey, changed))));
      }),
      { numRuns: 300 },
    );
  });

  test('a tampered payload, another key, a truncated signature: forged or invalid, never accepted', () => {
    const text = encodePass(hub.privateKey, payload());
    const [, body, sig] = text.split('.');
    const richer = Buffer.from(
      JSON.stringify(payload({ rule: { kind: 'percent', percent: 100, capCents: 5000 } })),
    );
    assert.equal(
      code(() => decodePass(hub.publicKey, `pk1.${richer.toString('base64url')}.${sig}`)),
      'PASS_FORGED',
    );
    assert.equal(
      code(() => decodePass(other.publicKey, text)),
      'PASS_FORGED',
    );
    assert.equal(
      code(() => decodePass(hub.publicKey, encodePass(other.privateKey, payload()))),
      'PASS_FORGED',
    );
    assert.equal(
      code(() => decodePass(hub.publicKey, `pk1.${body}.${sig?.slice(0, 80)}`)),
      'PASS_INVALID',
    );
    assert.equal(
      code(() => decodePass(hub.publicKey, `pk2.${body}.${sig}`)),
      'PASS_INVALID',
    );
  });

  test('hostile strings: NUL, huge, __proto__, wrong types, not JSON, even when signed by the hub key', () => {
    const k = hub.privateKey;
    const p = payload();
    const cases: Record<string, string> = {
      nul: signRaw(k, JSON.stringify({ ...p, holder: 'M\u00001234' })),
      proto: signRaw(k, JSON.stringify(p).replace('{', '{"__proto__":{"uses":99},')),
      protoScope: signRaw(k, JSON.stringify(p).replace('"scope":{', '"scope":{"__proto__":{"x":1},')),
      extra: signRaw(k, JSON.stringify({ ...p, admin: true })),
      wrongType: signRaw(k, JSON.stringify({ ...p, uses: '1' })),
      negative: signRaw(k, JSON.stringify({ ...p, rule: { kind: 'fixed', cents: -500, capCents: 10 } })),
      hugeHolder: signRaw(k, JSON.stringify({ ...p, holder: 'H'.repeat(500) })),
      notJson: signRaw(k, '{"v":1,'),
      badUtf8: `pk1.${Buffer.from([0xff, 0xfe, 0x7b]).toString('base64url')}.${sign(null, Buffer.from([0xff, 0xfe, 0x7b]), k).toString('base64url')}`,
      emptyScope: signRaw(k, JSON.stringify({ ...p, scope: {} })),
      expiresBeforeIssue: signRaw(k, JSON.stringify({ ...p, expiresAt: p.issuedAt })),
    };
    for (const [name, text] of Object.entries(cases))
      assert.equal(
        code(() => decodePass(hub.publicKey, text)),
        'PASS_INVALID',
        name,
      );
    assert.equal(
      code(() => decodePass(hub.publicKey, `pk1.${'A'.repeat(5000)}.x`)),
      'PASS_INVALID',
    );
    assert.equal(
      code(() => decodePass(hub.publicKey, 'pk1.\u0000.\u0000')),
      'PASS_INVALID',
    );
    assert.equal(
      code(() => decodePass(hub.publicKey, 42 as unknown as string)),
      'PASS_INVALID',
    );
    // the prototype was not touched by any of it
    assert.equal(({} as Record<string, unknown>)['uses'], undefined);
  });

  test('the hub refuses to sign what no kit would take', () => {
    assert.equal(
      code(() => encodePass(hub.privateKey, payload({ scope: {} }))),
      'VALIDATION',
    );
    assert.equal(
      code(() => encodePass(hub.privateKey, payload({ holder: 'a b' }))),
      'VALIDATION',
    );
    const skus = Array.from({ length: 16 }, (_, i) => `${'S'.repeat(60)}${String(i).padStart(4, '0')}`);
    const big = payload({ rule: { kind: 'percent', percent: 5, capCents: 100, skus } });
    assert.equal(
      code(() => encodePass(hub.privateKey, big)),
      'VALIDATION',
      'over 1024 characters',
    );
  });
});

describe('usable here and now', () => {
  const p = payload({ scope: { creatorId: 'creator-a', eventIds: ['ev-1', 'ev-2'] } });
  test('expiry by the order’s clock: usable until the second before expiresAt', () => {
    const ctx = { eventId: 'ev-1', creatorId: 'creator-a' };
    assert.equal(
      code(() => assertPassUsable(p, { ...ctx, now: p.expiresAt * 1000 - 1 })),
      'accepted',
    );
    assert.equal(
      code(() => assertPassUsable(p, { ...ctx, now: p.expiresAt * 1000 })),
      'PASS_EXPIRED',
    );
  });
  test('scope: both the creator and the event must match when both are named', () => {
    const now = T0 * 1000;
    assert.equal(
      code(() => assertPassUsable(p, { now, eventId: 'ev-2', creatorId: 'creator-a' })),
      'accepted',
    );
    assert.equal(
      code(() => assertPassUsable(p, { now, eventId: 'ev-3', creatorId: 'creator-a' })),
      'PASS_OUT_OF_SCOPE',
    );
    assert.equal(
      code(() => assertPassUsable(p, { now, eventId: 'ev-1', creatorId: 'creator-b' })),
      'PASS_OUT_OF_SCOPE',
    );
    assert.equal(
      code(() => assertPassUsable(p, { now, eventId: 'ev-1' })),
      'PASS_OUT_OF_SCOPE',
    );
    const eventsOnly = payload({ scope: { eventIds: ['ev-1'] } });
    assert.equal(
      code(() => assertPassUsable(eventsOnly, { now, eventId: 'ev-1' })),
      'accepted',
    );
  });
});

describe('discount rules', () => {
  const lines: PricedLine[] = [
    { sku: 'TEE', qty: 2, lineCents: 5000 },
    { sku: 'CAP', qty: 1, lineCents: 1500 },
    { sku: 'BUNDLE-1', qty: 1, lineCents: 4000 },
  ];
  const d = (rule: DiscountRuleT) => ruleDiscount(rule, lines);
  test('percent per order and per SKU list, rounded down, capped', () => {
    assert.equal(d({ kind: 'percent', percent: 10, capCents: 10_000 }), 1050);
    assert.equal(d({ kind: 'percent', percent: 10, capCents: 700 }), 700);
    assert.equal(d({ kind: 'percent', percent: 15, skus: ['CAP'], capCents: 10_000 }), 225);
    assert.equal(d({ kind: 'percent', percent: 33, skus: ['CAP'], capCents: 10_000 }), 495);
    assert.equal(d({ kind: 'percent', percent: 100, skus: ['BUNDLE-1'], capCents: 10_000 }), 4000);
  });
  test('fixed per order, per unit of listed SKUs, never above a line or the order', () => {
    assert.equal(d({ kind: 'fixed', cents: 500, capCents: 10_000 }), 500);
    assert.equal(d({ kind: 'fixed', cents: 300, skus: ['TEE'], capCents: 10_000 }), 600);
    assert.equal(d({ kind: 'fixed', cents: 3000, skus: ['TEE', 'CAP'], capCents: 100_000 }), 5000 + 1500);
    assert.equal(d({ kind: 'fixed', cents: 99_999, capCents: 100_000 }), 10_500);
    assert.equal(d({ kind: 'fixed', cents: 500, skus: ['NONE'], capCents: 10_000 }), 0);
  });
  test('property: 0 ≤ discount ≤ min(cap, the lines it applies to, the order)', () => {
    const arbLines = fc.array(
      fc.record({
        sku: fc.constantFrom('A', 'B', 'C', 'D'),
        qty: fc.integer({ min: 1, max: 1000 }),
        unit: fc.integer({ min: 0, max: LOYALTY_LIMITS.cents }),
      }),
      { minLength: 1, maxLength: 4 },
    );
    const arbRule = fc.oneof(
      fc.record({
        kind: fc.constant('percent' as const),
        percent: fc.integer({ min: 1, max: 100 }),
        capCents: fc.integer({ min: 1, max: LOYALTY_LIMITS.cents }),
        skus: fc.option(fc.array(fc.constantFrom('A', 'B', 'Z'), { minLength: 1, maxLength: 3 }), {
          nil: undefined,
        }),
      }),
      fc.record({
        kind: fc.constant('fixed' as const),
        cents: fc.integer({ min: 1, max: LOYALTY_LIMITS.cents }),
        capCents: fc.integer({ min: 1, max: LOYALTY_LIMITS.cents }),
        skus: fc.option(fc.array(fc.constantFrom('A', 'B', 'Z'), { minLength: 1, maxLength: 3 }), {
          nil: undefined,
        }),
      }),
    );
    fc.assert(
      fc.property(arbLines, arbRule, (raw, rule) => {
        const ls = raw.map((l) => ({ sku: l.sku, qty: l.qty, lineCents: l.qty * l.unit }));
        const r = (rule.skus === undefined ? (({ skus: _s, ...x }) => x)(rule) : rule) as DiscountRuleT;
        const cents = ruleDiscount(r, ls);
        const total = ls.reduce((s, l) => s + l.lineCents, 0);
        const applies = r.skus ? ls.filter((l) => r.skus?.includes(l.sku)) : ls;
        const base = applies.reduce((s, l) => s + l.lineCents, 0);
        assert.ok(Number.isSafeInteger(cents));
        assert.ok(cents >= 0 && cents <= r.capCents && cents <= base && cents <= total);
        if (r.kind === 'percent')
          assert.equal(cents, Math.min(r.capCents, Math.floor((base * r.percent) / 100)));
      }),
      { numRuns: 500 },
    );
  });
});

describe('popkit loyalty issue: the body it sends', () => {
  test('one of --percent or --fixed, a cap, a scope and an expiry; the rest as given', async () => {
    const { issueBody } = await import('../../cli/commands/loyalty.ts');
    const now = Date.UTC(2026, 0, 1);
    assert.deepEqual(
      issueBody(
        {
          holder: 'M-1',
          tier: 'gold',
          fixed: '300',
          cap: '900',
          skus: 'TEE, CAP',
          event: ['ev-1'],
          uses: '3',
          days: '2',
        },
        now,
      ),
      {
        holder: 'M-1',
        tier: 'gold',
        rule: { kind: 'fixed', cents: 300, capCents: 900, skus: ['TEE', 'CAP'] },
        scope: { eventIds: ['ev-1'] },
        uses: 3,
        expiresAt: '2026-01-03T00:00:00.000Z',
      },
    );
    const base = {
      holder: 'M-1',
      tier: 'gold',
      cap: '900',
      creator: 'anna',
      expires: '2026-02-01T00:00:00Z',
    };
    assert.throws(
      () => issueBody({ ...base, percent: '10', fixed: '100' }),
      /exactly one of --percent or --fixed/,
    );
    assert.throws(() => issueBody({ ...base, percent: '-10' }), /whole number/);
    assert.throws(() => issueBody({ ...base, percent: '10', cap: undefined }), /--cap/);
    assert.throws(() => issueBody({ ...base, percent: '10', creator: undefined }), /scope/);
    assert.throws(() => issueBody({ ...base, percent: '10', expires: undefined }), /--expires/);
  });
});

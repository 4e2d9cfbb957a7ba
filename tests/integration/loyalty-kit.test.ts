// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Loyalty passes on a real checkout (real LMDB, the HTTP API): a pass signed by the hub key is verified
// offline and discounts the order in its own transaction; forged, tampered, other-key, expired,
// out-of-scope, used-up and hostile passes are refused with their code and write nothing; concurrent
// orders with one pass never take more uses than it has on this kit.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { encodePass, type PassPayloadT } from '../../core/contracts/loyalty.ts';
import { allOrders, type KitStore, readAllStock } from '../../core/store/index.ts';
import { passUses } from '../../core/store/loyalty.ts';
import { ADMIN, asStaff, startCheckout } from '../support/checkout.ts';

const hub = generateKeyPairSync('ed25519');
const stranger = generateKeyPairSync('ed25519');
const HUB_PEM = hub.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const EVENT = 'ev-loyal';
const CATALOG = {
  version: 1,
  eventId: EVENT,
  currency: 'EUR',
  creatorId: 'creator-a',
  items: [
    { sku: 'TEE', name: 'Tee', priceCents: 2500, stock: 1000 },
    { sku: 'CAP', name: 'Cap', priceCents: 1500, stock: 1000 },
  ],
};
const nowS = () => Math.floor(Date.now() / 1000);
let serial = 0;

function payload(over: Partial<PassPayloadT> = {}): PassPayloadT {
  serial++;
  return {
    v: 1,
    id: `pass-${String(serial).padStart(6, '0')}`,
    holder: 'M-77',
    tier: 'gold',
    rule: { kind: 'percent', percent: 20, capCents: 1000 },
    scope: { creatorId: 'creator-a', eventIds: [EVENT] },
    uses: 1,
    issuedAt: nowS() - 60,
    expiresAt: nowS() + 3600,
    ...over,
  };
}
const pass = (over: Partial<PassPayloadT> = {}, key: KeyObject = hub.privateKey) =>
  encodePass(key, payload(over));
function signRaw(json: string): string {
  const b = Buffer.from(json, 'utf8');
  return `pk1.${b.toString('base64url')}.${sign(null, b, hub.privateKey).toString('base64url')}`;
}

type Kit = Awaited<ReturnType<typeof startCheckout>>;

async function kitWith(env: Record<string, string>): Promise<Kit> {
  const k = await startCheckout(env);
  const res = await k.app.inject({
    method: 'PUT',
    url: '/v1/catalog',
    headers: { authorization: `Bearer ${ADMIN}` },
    payload: CATALOG,
  });
  assert.equal(res.statusCode, 200, res.body);
  return k;
}

function snapshot(store: KitStore) {
  return { orders: [...allOrders(store)].length, stock: readAllStock(store) };
}

describe('loyalty passes on the kit', () => {
  let k: Kit;
  let staff: ReturnType<typeof asStaff>;
  const order = (loyaltyPass: string | undefined, lines = [{ sku: 'TEE', qty: 2 }], headers = {}) =>
    staff({
      method: 'POST',
      url: '/v1/orders',
      headers,
      payload: { lines, payment: { method: 'cash' }, ...(loyaltyPass === undefined ? {} : { loyaltyPass }) },
    });

  before(async () => {
    k = await kitWith({ POPKIT_HUB_PUBLIC_KEY: HUB_PEM, POPKIT_LOYALTY_CHECK_RATE_PER_MIN: '3' });
    staff = asStaff(k.app);
  });
  after(async () => {
    await k?.kit.close();
  });

  test('a valid pass discounts the order and counts one use in its transaction', async () => {
    const p = payload();
    const text = encodePass(hub.privateKey, p);
    const res = await order(text);
    assert.equal(res.statusCode, 201, res.body);
    const o = res.json();
    // 20 % of 5000, capped at 1000
    assert.equal(o.subtotalCents, 5000);
    assert.equal(o.totalCents, 4000);
    assert.deepEqual(o.discount, { passId: p.id, holder: 'M-77', cents: 1000 });
    const stored = k.kit.store.orders.get(o.id);
    assert.equal(stored?.totalCents, 4000);
    assert.equal(passUses(k.kit.store, o.discount.passId, EVENT), 1);
    const rec = k.kit.store.loyaltyUses.get(`${o.discount.passId}/${EVENT}`);
    assert.deepEqual(rec?.orderIds, [o.id]);

    // used up on this kit: refused, nothing written
    const before = snapshot(k.kit.store);
    const again = await order(text);
    assert.equal(again.statusCode, 409, again.body);
    assert.equal(again.json().error.code, 'PASS_USED');
    assert.deepEqual(snapshot(k.kit.store), before);

    const st = await staff({ method: 'GET', url: '/v1/status' });
    const loyalty = st.json().drops.loyalty;
    assert.equal(loyalty.verifying, true);
    assert.ok(loyalty.redemptions >= 1);
    assert.ok(loyalty.discountCents >= 1000);
    const metrics = await staff({ method: 'GET', url: '/metrics' });
    assert.match(metrics.body, /popkit_loyalty_redemptions [1-9]/);
    assert.match(metrics.body, /popkit_loyalty_discount_cents [1-9]\d{3}/);
  });

  test('the same Idempotency-Key answers the first order and takes no second use', async () => {
    const text = pass({ uses: 5 });
    const h = { 'idempotency-key': `loyal-${serial}` };
    const a = await order(text, undefined, h);
    const b = await order(text, undefined, h);
    assert.equal(a.statusCode, 201);
    assert.equal(b.statusCode, 200);
    assert.equal(b.json().id, a.json().id);
    assert.equal(passUses(k.kit.store, a.json().discount.passId, EVENT), 1);
  });

  test('forged, tampered, other key, expired, out of scope: coded refusals, nothing written', async () => {
    const good = pass();
    const [, body, sig] = good.split('.');
    const richer = Buffer.from(
      JSON.stringify({
        ...JSON.parse(Buffer.from(body ?? '', 'base64url').toString()),
        rule: { kind: 'percent', percent: 100, capCents: 100_000 },
      }),
    ).toString('base64url');
    const flipped = `${sig?.slice(0, 10)}${sig?.[10] === 'A' ? 'B' : 'A'}${sig?.slice(11)}`;
    const cases: Array<[string, string, number, string]> = [
      ['signature flipped', `pk1.${body}.${flipped}`, 400, 'PASS_FORGED'],
      ['payload tampered', `pk1.${richer}.${sig}`, 400, 'PASS_FORGED'],
      ['another key', pass({}, stranger.privateKey), 400, 'PASS_FORGED'],
      ['expired', pass({ issuedAt: nowS() - 7200, expiresAt: nowS() - 1 }), 422, 'PASS_EXPIRED'],
      ['other creator', pass({ scope: { creatorId: 'creator-b' } }), 422, 'PASS_OUT_OF_SCOPE'],
      ['other event', pass({ scope: { eventIds: ['ev-elsewhere'] } }), 422, 'PASS_OUT_OF_SCOPE'],
      [
        'no line it applies to',
        pass({ rule: { kind: 'fixed', cents: 500, capCents: 500, skus: ['HOODIE'] } }),
        422,
        'PASS_OUT_OF_SCOPE',
      ],
      ['not a pass', 'pk1.abc.def', 400, 'PASS_INVALID'],
      [
        '__proto__ in the signed payload',
        signRaw(JSON.stringify(payload()).replace('{', '{"__proto__":{"uses":50},')),
        400,
        'PASS_INVALID',
      ],
      [
        'NUL in the signed payload',
        signRaw(JSON.stringify({ ...payload(), tier: 'g\u0000ld' })),
        400,
        'PASS_INVALID',
      ],
      [
        'wrong type in the signed payload',
        signRaw(JSON.stringify({ ...payload(), uses: 1e9 })),
        400,
        'PASS_INVALID',
      ],
      ['NUL in the text', 'pk1.\u0000abc.def', 400, 'VALIDATION'],
      ['huge', `pk1.${'A'.repeat(2000)}.${sig}`, 400, 'VALIDATION'],
    ];
    const before = snapshot(k.kit.store);
    const usesBefore = [...k.kit.store.loyaltyUses.getRange()].length;
    for (const [name, text, status, codeWanted] of cases) {
      const res = await order(text);
      assert.equal(res.statusCode, status, `${name}: ${res.body}`);
      assert.equal(res.json().error.code, codeWanted, name);
    }
    const wrongType = await staff({
      method: 'POST',
      url: '/v1/orders',
      payload: {
        lines: [{ sku: 'TEE', qty: 1 }],
        payment: { method: 'cash' },
        loyaltyPass: { __proto__: 1 },
      },
    });
    assert.equal(wrongType.statusCode, 400);
    assert.deepEqual(snapshot(k.kit.store), before);
    assert.equal([...k.kit.store.loyaltyUses.getRange()].length, usesBefore);
  });

  test('concurrent orders with one pass: exactly its uses win, the rest PASS_USED', async () => {
    const text = pass({ uses: 3, rule: { kind: 'fixed', cents: 300, capCents: 300 } });
    const before = snapshot(k.kit.store);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => order(text, [{ sku: 'CAP', qty: 1 }])),
    );
    const codes = results.map((r) => r.statusCode).sort();
    assert.deepEqual(codes, [...Array(3).fill(201), ...Array(17).fill(409)]);
    for (const r of results.filter((x) => x.statusCode === 409))
      assert.equal(r.json().error.code, 'PASS_USED');
    const id = results.find((r) => r.statusCode === 201)?.json().discount.passId;
    assert.equal(passUses(k.kit.store, id, EVENT), 3);
    const after = snapshot(k.kit.store);
    assert.equal(after.orders, before.orders + 3);
    assert.equal(after.stock['CAP'], (before.stock['CAP'] ?? 0) - 3);
    for (const r of results.filter((x) => x.statusCode === 201)) assert.equal(r.json().totalCents, 1200);
  });

  test('preview: the discount a pass would give, nothing written, rate limited per address', async () => {
    const p = payload({ rule: { kind: 'percent', percent: 10, skus: ['CAP'], capCents: 10_000 } });
    const text = encodePass(hub.privateKey, p);
    const before = snapshot(k.kit.store);
    const check = () =>
      k.app.inject({
        method: 'POST',
        url: '/v1/loyalty/check',
        remoteAddress: '10.9.8.7',
        payload: {
          pass: text,
          lines: [
            { sku: 'TEE', qty: 1 },
            { sku: 'CAP', qty: 2 },
          ],
        },
      });
    const res = await check();
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), {
      passId: p.id,
      holder: 'M-77',
      tier: 'gold',
      expiresAt: new Date(p.expiresAt * 1000).toISOString(),
      subtotalCents: 5500,
      discountCents: 300,
      totalCents: 5200,
      allowed: 1,
      usesLeft: 1,
    });
    const forged = await k.app.inject({
      method: 'POST',
      url: '/v1/loyalty/check',
      remoteAddress: '10.9.8.6',
      payload: { pass: pass({}, stranger.privateKey), lines: [{ sku: 'TEE', qty: 1 }] },
    });
    assert.equal(forged.json().error.code, 'PASS_FORGED');
    assert.deepEqual(snapshot(k.kit.store), before);
    // the limit is 3 a minute here (POPKIT_LOYALTY_CHECK_RATE_PER_MIN): the 4th from one address waits
    assert.equal((await check()).statusCode, 200);
    assert.equal((await check()).statusCode, 200);
    const limited = await check();
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json().error.code, 'TOO_MANY_REQUESTS');
    // staff are not limited
    const asAdmin = await staff({
      method: 'POST',
      url: '/v1/loyalty/check',
      remoteAddress: '10.9.8.7',
      payload: { pass: text, lines: [{ sku: 'CAP', qty: 1 }] },
    });
    assert.equal(asAdmin.statusCode, 200);
  });
});

describe('per-kit bounds and configuration', () => {
  test('POPKIT_LOYALTY_KIT_USES_MAX caps a pass below its own uses on this kit', async () => {
    const k = await kitWith({ POPKIT_HUB_PUBLIC_KEY: HUB_PEM, POPKIT_LOYALTY_KIT_USES_MAX: '2' });
    try {
      const p = payload({ uses: 5 });
      const text = encodePass(hub.privateKey, p);
      const staff = asStaff(k.app);
      const place = () =>
        staff({
          method: 'POST',
          url: '/v1/orders',
          payload: { lines: [{ sku: 'CAP', qty: 1 }], payment: { method: 'cash' }, loyaltyPass: text },
        });
      assert.equal((await place()).statusCode, 201);
      assert.equal((await place()).statusCode, 201);
      const third = await place();
      assert.equal(third.statusCode, 409);
      assert.deepEqual(third.json().error.details, { passId: p.id, uses: 2, allowed: 2 });
      const st = await staff({ method: 'GET', url: '/v1/status' });
      assert.equal(st.json().drops.loyalty.kitUsesMax, 2);
    } finally {
      await k.kit.close();
    }
  });

  test('a hub key that is not an ed25519 key stops checkout at start', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    await assert.rejects(startCheckout({ POPKIT_HUB_PUBLIC_KEY: String(rsa) }), { code: 'CONFIG_INVALID' });
    await assert.rejects(startCheckout({ POPKIT_HUB_PUBLIC_KEY_FILE: '/nonexistent/hub.pub' }), {
      code: 'CONFIG_INVALID',
    });
  });

  test('a kit without the hub key refuses passes (NOT_READY) and still sells without one', async () => {
    const k = await kitWith({});
    try {
      const staff = asStaff(k.app);
      const res = await staff({
        method: 'POST',
        url: '/v1/orders',
        payload: { lines: [{ sku: 'CAP', qty: 1 }], payment: { method: 'cash' }, loyaltyPass: pass() },
      });
      assert.equal(res.statusCode, 503);
      assert.equal(res.json().error.code, 'NOT_READY');
      const plain = await staff({
        method: 'POST',
        url: '/v1/orders',
        payload: { lines: [{ sku: 'CAP', qty: 1 }], payment: { method: 'cash' } },
      });
      assert.equal(plain.statusCode, 201);
      assert.equal(plain.json().discount, undefined);
      const st = await staff({ method: 'GET', url: '/v1/status' });
      assert.equal(st.json().drops.loyalty.verifying, false);
    } finally {
      await k.kit.close();
    }
  });
});

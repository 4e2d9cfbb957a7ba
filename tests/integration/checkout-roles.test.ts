// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Who may do what on the kit API (docs/security.md#roles-and-credentials): buyers without credentials
// place card orders only, rate limited and capped; cash needs a paired terminal or the admin and has
// its own cap; terminals pair once with a short code, are refused once revoked, and cannot do what only
// the admin may; /v1/status and /metrics need a credential, /healthz says only {ok}.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  allOrders,
  createPairing,
  listTerminals,
  PAIRING_ATTEMPTS,
  PAIRING_TTL_MS,
  readAllStock,
  redeemPairing,
} from '../../core/store/index.ts';
import {
  auth,
  inspectStore,
  smallCatalog,
  startCheckout,
  startCheckoutWithCatalog,
} from '../support/checkout.ts';

type Kit = Awaited<ReturnType<typeof startCheckout>>;
const kits: Kit[] = [];
after(async () => {
  for (const k of kits) await k.kit.close();
});

async function kitWith(stock: Record<string, number>, env: Record<string, string> = {}): Promise<Kit> {
  const k = await startCheckoutWithCatalog(stock, env);
  kits.push(k);
  return k;
}

const cash = (sku: string, qty = 1) => ({ lines: [{ sku, qty }], payment: { method: 'cash' } });
const card = (sku: string, qty = 1) => ({
  lines: [{ sku, qty }],
  payment: { method: 'token', token: 'tok_sandbox_approve_0001' },
});
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

type Call = readonly [method: 'GET' | 'POST' | 'PUT', url: string, payload: object | undefined];

/** Every call, with `token` as the bearer, is answered `status` with error `code`. */
async function expectRefused(kit: Kit, token: string, calls: readonly Call[], status: number, code: string) {
  for (const [method, url, payload] of calls) {
    const res = await kit.app.inject({
      method,
      url,
      headers: bearer(token),
      ...(payload ? { payload } : {}),
    });
    assert.equal(res.statusCode, status, `${method} ${url}: ${res.body}`);
    assert.equal(res.json().error.code, code);
  }
}

/** A terminal paired through the API: the admin asks for a code, the terminal redeems it. */
async function pair(kit: Kit, name = 'till 1'): Promise<{ id: string; token: string; code: string }> {
  const p = await kit.app.inject({
    method: 'POST',
    url: '/v1/terminals/pairings',
    headers: auth,
    payload: { name },
  });
  assert.equal(p.statusCode, 201, p.body);
  const { code } = p.json();
  assert.match(code, /^[A-Z2-9]{8}$/);
  const r = await kit.app.inject({ method: 'POST', url: '/v1/terminals/redeem', payload: { code } });
  assert.equal(r.statusCode, 201, r.body);
  return { ...r.json(), code };
}

describe('buyers without credentials', () => {
  test('60 unauthenticated cash requests take nothing of a 50-unit hero drop', async () => {
    const kit = await kitWith({ HERO: 50 });
    const before = await inspectStore(kit.dataDir);
    const answers = await Promise.all(
      Array.from({ length: 60 }, () =>
        kit.app.inject({ method: 'POST', url: '/v1/orders', payload: cash('HERO') }),
      ),
    );
    for (const a of answers) {
      assert.ok([403, 429].includes(a.statusCode), a.body);
      assert.ok(['FORBIDDEN', 'TOO_MANY_REQUESTS'].includes(a.json().error.code));
    }
    assert.equal(
      answers.filter((a) => a.statusCode === 403).length,
      60,
      'all refused as forbidden, not just limited',
    );
    const after = await inspectStore(kit.dataDir);
    assert.deepEqual(after.stock, before.stock);
    assert.equal(after.orders.length, 0);
    assert.equal(after.outbox.length, 0);
  });

  test('a buyer may place a card order; over the buyer cap is VALIDATION and changes nothing', async () => {
    const kit = await kitWith({ A: 10 }, { POPKIT_BUYER_MAX_ORDER_CENTS: '2500' });
    const ok = await kit.app.inject({ method: 'POST', url: '/v1/orders', payload: card('A', 2) });
    assert.equal(ok.statusCode, 201, ok.body);
    const over = await kit.app.inject({ method: 'POST', url: '/v1/orders', payload: card('A', 3) });
    assert.equal(over.statusCode, 400, over.body);
    assert.equal(over.json().error.code, 'VALIDATION');
    assert.deepEqual(over.json().error.details, {
      limit: 'buyerMaxOrderCents',
      totalCents: 3000,
      buyerMaxOrderCents: 2500,
    });
    assert.equal(readAllStock(kit.kit.store).A, 8);
    // the same order from a terminal is not a buyer's
    const staff = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: auth,
      payload: card('A', 3),
    });
    assert.equal(staff.statusCode, 201, staff.body);
  });

  test('a buyer script is rate limited per address; staff are not', async () => {
    const kit = await kitWith({ A: 1000 }, { POPKIT_BUYER_RATE_PER_MIN: '5' });
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) {
      codes.push(
        (await kit.app.inject({ method: 'POST', url: '/v1/orders', payload: card('A') })).statusCode,
      );
    }
    assert.deepEqual(codes, [201, 201, 201, 201, 201, 429, 429, 429]);
    const limited = await kit.app.inject({ method: 'POST', url: '/v1/orders', payload: card('A') });
    assert.equal(limited.json().error.code, 'TOO_MANY_REQUESTS');
    assert.equal(limited.json().error.details.max, 5);
    assert.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After is sent');
    assert.equal([...allOrders(kit.kit.store)].length, 5);
    // another address is not limited by this one's script
    const other = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      payload: card('A'),
      remoteAddress: '10.0.0.7',
    });
    assert.equal(other.statusCode, 201, other.body);
    // staff from the limited address still sell (admin and a paired terminal)
    const t = await pair(kit);
    for (const headers of [auth, bearer(t.token)]) {
      const res = await kit.app.inject({ method: 'POST', url: '/v1/orders', headers, payload: cash('A') });
      assert.equal(res.statusCode, 201, res.body);
    }
  });
});

describe('cash orders', () => {
  test('ten trillion cents in cash is refused for everyone: the cash cap', async () => {
    // 100 lines of 1000 × 100 000 000 cents: 10^13 cents
    const kit = await startCheckout({ POPKIT_CASH_MAX_ORDER_CENTS: '100000' });
    kits.push(kit);
    const catalog = smallCatalog({ GOLD: 100_000 });
    catalog.items[0] = { ...catalog.items[0], priceCents: 100_000_000 } as (typeof catalog.items)[0];
    assert.equal(
      (await kit.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: catalog }))
        .statusCode,
      200,
    );
    const huge = {
      lines: Array.from({ length: 100 }, () => ({ sku: 'GOLD', qty: 1000 })),
      payment: { method: 'cash' },
    };
    const t = await pair(kit);
    for (const headers of [auth, bearer(t.token)]) {
      const res = await kit.app.inject({ method: 'POST', url: '/v1/orders', headers, payload: huge });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().error.code, 'VALIDATION');
      assert.deepEqual(res.json().error.details, {
        limit: 'cashMaxOrderCents',
        totalCents: 10_000_000_000_000,
        cashMaxOrderCents: 100_000,
      });
    }
    assert.equal([...allOrders(kit.kit.store)].length, 0);
    assert.equal(readAllStock(kit.kit.store).GOLD, 100_000);
    // at the cap it sells
    const one = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: auth,
      payload: cash('GOLD'),
    });
    assert.equal(one.statusCode, 400, 'one unit is 100 000 000 cents, still over');
    const small = await startCheckoutWithCatalog({ A: 5 }, { POPKIT_CASH_MAX_ORDER_CENTS: '2000' });
    kits.push(small);
    assert.equal(
      (await small.app.inject({ method: 'POST', url: '/v1/orders', headers: auth, payload: cash('A', 2) }))
        .statusCode,
      201,
    );
    assert.equal(
      (await small.app.inject({ method: 'POST', url: '/v1/orders', headers: auth, payload: cash('A', 3) }))
        .statusCode,
      400,
    );
  });
});

describe('staff terminals', () => {
  test('a pairing code works once; the terminal sells cash; revoked, it is refused everywhere', async () => {
    const kit = await kitWith({ A: 20 });
    const t = await pair(kit, 'front till');
    assert.match(t.token, /^pkt_[0-9a-f]{12}_/);
    // the code is single-use
    const again = await kit.app.inject({
      method: 'POST',
      url: '/v1/terminals/redeem',
      payload: { code: t.code },
    });
    assert.equal(again.statusCode, 401);
    assert.equal(again.json().error.code, 'UNAUTHORIZED');
    // the token is stored hashed, never as given
    const stored = listTerminals(kit.kit.store);
    assert.equal(stored.length, 1);
    assert.equal(stored[0]?.name, 'front till');
    assert.ok(!JSON.stringify(stored).includes(t.token.slice(17)), 'no token in the store');

    const sell = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: bearer(t.token),
      payload: cash('A'),
    });
    assert.equal(sell.statusCode, 201, sell.body);
    for (const url of ['/v1/status', '/metrics']) {
      assert.equal(
        (await kit.app.inject({ method: 'GET', url, headers: bearer(t.token) })).statusCode,
        200,
        url,
      );
    }
    // a terminal is not the admin
    await expectRefused(
      kit,
      t.token,
      [
        ['PUT', '/v1/catalog', smallCatalog({ A: 1 }, 2)],
        ['POST', '/v1/event/start', {}],
        ['POST', '/v1/terminals/pairings', {}],
        ['GET', '/v1/terminals', undefined],
      ],
      403,
      'FORBIDDEN',
    );

    const list = (await kit.app.inject({ method: 'GET', url: '/v1/terminals', headers: auth })).json();
    assert.deepEqual(
      list.terminals.map((x: { id: string; name: string }) => [x.id, x.name]),
      [[t.id, 'front till']],
    );
    const revoked = await kit.app.inject({ method: 'DELETE', url: `/v1/terminals/${t.id}`, headers: auth });
    assert.equal(revoked.statusCode, 200, revoked.body);
    assert.ok(revoked.json().revokedAt);
    const before = await inspectStore(kit.dataDir);
    await expectRefused(
      kit,
      t.token,
      [
        ['POST', '/v1/orders', cash('A')],
        ['POST', '/v1/orders', card('A')],
        ['GET', '/v1/status', undefined],
        ['GET', '/metrics', undefined],
      ],
      401,
      'UNAUTHORIZED',
    );
    const after = await inspectStore(kit.dataDir);
    assert.deepEqual(after.stock, before.stock);
    assert.equal(after.orders.length, before.orders.length);
    // a forged token of the right shape for the same id is refused too
    const forged = `pkt_${t.id}_${'A'.repeat(43)}`;
    const f = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: bearer(forged),
      payload: cash('A'),
    });
    assert.equal(f.statusCode, 401);
    const unknown = await kit.app.inject({
      method: 'DELETE',
      url: '/v1/terminals/0123456789ab',
      headers: auth,
    });
    assert.equal(unknown.statusCode, 404);
  });

  test('a pairing code expires, and a few wrong codes use it up', async () => {
    const kit = await kitWith({ A: 1 });
    const store = kit.kit.store;
    const t0 = Date.now();
    const expiring = await createPairing(store, 'late', t0);
    assert.equal(expiring.kind, 'created');
    if (expiring.kind !== 'created') return;
    assert.equal((await redeemPairing(store, expiring.code, t0 + PAIRING_TTL_MS + 1)).kind, 'refused');
    assert.equal((await redeemPairing(store, expiring.code, t0)).kind, 'refused', 'gone once expired');

    const guessed = await createPairing(store, 'guessed', t0);
    if (guessed.kind !== 'created') throw new Error('not created');
    for (let i = 0; i < PAIRING_ATTEMPTS; i++) {
      const wrong = await kit.app.inject({
        method: 'POST',
        url: '/v1/terminals/redeem',
        payload: { code: 'ZZZZZZZZ' },
      });
      assert.equal(wrong.statusCode, 401);
    }
    const late = await kit.app.inject({
      method: 'POST',
      url: '/v1/terminals/redeem',
      payload: { code: guessed.code },
    });
    assert.equal(late.statusCode, 401, 'the right code after too many wrong ones is refused');

    // typed with spaces, dashes and lower case, a fresh code still works
    const fresh = await createPairing(store, 'typed', Date.now());
    if (fresh.kind !== 'created') throw new Error('not created');
    const typed = `${fresh.code.slice(0, 4).toLowerCase()}-${fresh.code.slice(4)} `;
    const ok = await kit.app.inject({
      method: 'POST',
      url: '/v1/terminals/redeem',
      payload: { code: typed },
    });
    assert.equal(ok.statusCode, 201, ok.body);
    assert.equal(listTerminals(store).length, 1);
  });

  test('hostile pairing input is VALIDATION and changes nothing', async () => {
    const kit = await kitWith({ A: 1 });
    const hostile: unknown[] = [
      { code: 'AB\u0000CDEF' },
      { code: 'AB\u0001CDEF' },
      { code: '\ud800ABCDEFG' },
      { code: 'A'.repeat(10_000) },
      { code: 12345678 },
      { code: null },
      { code: ['ABCDEFGH'] },
      { code: 'ABCDEFGH', extra: 1 },
      JSON.parse('{"__proto__": {"code": "ABCDEFGH"}}'),
      {},
      'ABCDEFGH',
    ];
    for (const [i, payload] of hostile.entries()) {
      const res = await kit.app.inject({
        method: 'POST',
        url: '/v1/terminals/redeem',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
        // one address each: redemptions are rate limited per address (10 a minute)
        remoteAddress: `10.1.0.${i + 1}`,
      });
      assert.equal(res.statusCode, 400, `${JSON.stringify(payload)}: ${res.body}`);
      // `__proto__` never reaches the schema: the JSON parser refuses it (BAD_REQUEST)
      assert.ok(['VALIDATION', 'BAD_REQUEST'].includes(res.json().error.code), res.body);
    }
    for (const name of ['till\u0000', 'a\u001bb', '\udfff', 'x'.repeat(65), '', 7]) {
      const res = await kit.app.inject({
        method: 'POST',
        url: '/v1/terminals/pairings',
        headers: auth,
        payload: { name },
      });
      assert.equal(res.statusCode, 400, `${JSON.stringify(name)}: ${res.body}`);
    }
    for (const id of ['__proto__', 'constructor', '..%2F..', 'ABCDEF012345']) {
      const res = await kit.app.inject({ method: 'DELETE', url: `/v1/terminals/${id}`, headers: auth });
      assert.equal(res.statusCode, 400, `${id}: ${res.body}`);
    }
    for (const header of [
      'Bearer',
      'Bearer \u0000x',
      'Basic abc',
      `Bearer ${'x'.repeat(600)}`,
      'Bearer __proto__',
    ]) {
      const res = await kit.app.inject({
        method: 'GET',
        url: '/v1/status',
        headers: { authorization: header },
      });
      assert.equal(res.statusCode, 401, header.slice(0, 20));
    }
    assert.equal(listTerminals(kit.kit.store).length, 0);
    const list = (await kit.app.inject({ method: 'GET', url: '/v1/terminals', headers: auth })).json();
    assert.deepEqual(list, { terminals: [], pairings: [] });
  });
});

describe('status, metrics and health', () => {
  test('/v1/status and /metrics need a credential; /healthz says only {ok}', async () => {
    const bare = await startCheckout();
    kits.push(bare);
    for (const url of ['/v1/status', '/metrics']) {
      const none = await bare.app.inject({ method: 'GET', url });
      assert.equal(none.statusCode, 401, url);
      assert.equal(none.json().error.code, 'UNAUTHORIZED');
      assert.doesNotMatch(none.body, /kit-|orders/, 'nothing of the kit in the refusal');
      assert.equal((await bare.app.inject({ method: 'GET', url, headers: bearer('nope') })).statusCode, 401);
      assert.equal((await bare.app.inject({ method: 'GET', url, headers: auth })).statusCode, 200);
    }
    const notReady = await bare.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(notReady.statusCode, 503);
    assert.deepEqual(notReady.json(), { ok: false });
    const detailed = await bare.app.inject({ method: 'GET', url: '/healthz', headers: auth });
    assert.deepEqual(detailed.json(), { ok: false, problems: ['no catalog loaded'] });
    await bare.app.inject({
      method: 'PUT',
      url: '/v1/catalog',
      headers: auth,
      payload: smallCatalog({ A: 1 }),
    });
    const ready = await bare.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json(), { ok: true });
  });

  test('OpenAPI shows the admin and terminal bearer schemes, per route', async () => {
    const kit = await kitWith({ A: 1 });
    const oas = (await kit.app.inject({ method: 'GET', url: '/docs/openapi.json' })).json();
    assert.deepEqual(Object.keys(oas.components.securitySchemes).sort(), ['admin', 'terminal']);
    for (const s of Object.values(oas.components.securitySchemes) as Array<{
      type: string;
      scheme: string;
    }>) {
      assert.equal(s.type, 'http');
      assert.equal(s.scheme, 'bearer');
    }
    const schemes = (op: { security?: Array<Record<string, unknown>> }) =>
      (op.security ?? []).map((r) => Object.keys(r).join('') || 'none').sort();
    assert.deepEqual(schemes(oas.paths['/v1/catalog'].put), ['admin']);
    assert.deepEqual(schemes(oas.paths['/v1/event/start'].post), ['admin']);
    assert.deepEqual(schemes(oas.paths['/v1/terminals/pairings'].post), ['admin']);
    assert.deepEqual(schemes(oas.paths['/v1/terminals/{id}'].delete), ['admin']);
    assert.deepEqual(schemes(oas.paths['/v1/status'].get), ['admin', 'terminal']);
    assert.deepEqual(schemes(oas.paths['/v1/orders'].post), ['admin', 'none', 'terminal']);
    assert.deepEqual(schemes(oas.paths['/v1/terminals/redeem'].post), []);
  });
});

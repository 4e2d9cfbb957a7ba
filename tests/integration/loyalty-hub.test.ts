// Loyalty through a real hub link (private Mosquitto, PostgreSQL schema of its own): the hub issues a
// pass (API and `popkit loyalty issue`), two kits offline from each other both redeem it, sync, and the
// hub lists the double use with the kits, orders and the discount beyond what the pass allows.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { MonotonicIds } from '../../core/ids.ts';
import { LANES, readIdHighWater, replaceCatalog } from '../../core/store/index.ts';
import { LoyaltyFeature } from '../../services/checkout/loyalty.ts';
import { OrderService } from '../../services/checkout/orders.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { DoubleUse } from '../../services/hub/loyalty.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import { BIN } from '../support/checkout.ts';
import {
  dropSchema,
  type Mosquitto,
  makeKit,
  mosquitto,
  startHub,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_loyalty').replace(/-/g, '_');
const eventId = uniqueId('ev');
const exec = promisify(execFile);
/** the hub's answers this test reads: an issued pass, or the double-use list */
interface HubAnswer {
  pass: string;
  payload: { id: string; uses: number };
  doubleUses: DoubleUse[];
}
let broker: Mosquitto;
let hub: HubService;
const kits: Array<{ kit: TestKit; orders: OrderService; sync?: SyncService }> = [];

async function api(path: string, init: { method?: string; body?: unknown; auth?: boolean } = {}) {
  const headers: Record<string, string> = {};
  if (init.auth !== false) headers['authorization'] = `Bearer ${hub.adminToken}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${hub.httpUrl}${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as HubAnswer };
}

/** A kit whose order pipeline has the loyalty feature, trusting the hub's key file. */
async function loyalKit(): Promise<{ kit: TestKit; orders: OrderService }> {
  const kit = await makeKit(uniqueId('kit'));
  await replaceCatalog(
    kit.store,
    {
      version: 1,
      eventId,
      currency: 'EUR',
      creatorId: 'creator-hub',
      items: [{ sku: 'TEE', name: 'Tee', priceCents: 3000, stock: 100 }],
    },
    { source: 'local' },
  );
  const key = fs.readFileSync(hub.publicKeyFile, 'utf8');
  const big = 1_000_000_000_000;
  const orders = new OrderService(kit.store, new MonotonicIds(readIdHighWater(kit.store)), kit.vault, {
    kitId: kit.kitId,
    tokenTtlMs: 3600_000,
    limits: { maxOrderCents: big, maxUnsyncedCents: big, maxUnsyncedOrders: big, maxUnsyncedAgeS: big },
    features: [new LoyaltyFeature(kit.store, { hubKey: () => key })],
  });
  const k = { kit, orders };
  kits.push(k);
  return k;
}

const redeem = (k: { orders: OrderService }, pass: string) =>
  k.orders.create(
    { lines: [{ sku: 'TEE', qty: 1 }], payment: { method: 'cash' }, loyaltyPass: pass },
    undefined,
  );

const outboxOrders = (k: TestKit) =>
  k.store.outbox.getKeysCount({ start: [LANES.orders, ''], end: [LANES.orders + 1, ''] });

describe('loyalty passes through the hub', () => {
  before(async () => {
    broker = await mosquitto();
    hub = await startHub({ schema, brokerUrl: broker.url });
  });
  after(async () => {
    for (const k of kits) await k.sync?.stop();
    await hub?.stop();
    await broker?.stop();
    for (const k of kits) await k.kit.close();
    await dropSchema(schema);
  });

  test('the issue API: admin only, validated, signed with the catalog key', async () => {
    const body = {
      holder: 'M-1',
      tier: 'gold',
      rule: { kind: 'percent', percent: 10, capCents: 500 },
      scope: { eventIds: [eventId] },
      expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
    };
    assert.equal((await api('/v1/loyalty/passes', { method: 'POST', body, auth: false })).status, 401);
    for (const bad of [
      { ...body, holder: 'M\u00001' },
      { ...body, holder: 'H'.repeat(5000) },
      { ...body, scope: {} },
      { ...body, expiresAt: '2001-01-01T00:00:00Z' },
      { ...body, rule: { kind: 'percent', percent: 101, capCents: 1 } },
      JSON.parse(`{"__proto__":{"uses":9},${JSON.stringify(body).slice(1)}`),
    ]) {
      const res = await api('/v1/loyalty/passes', { method: 'POST', body: bad });
      assert.equal(res.status, 400, JSON.stringify(res.body));
    }
    const ok = await api('/v1/loyalty/passes', { method: 'POST', body });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.equal(ok.body.payload.uses, 1);
    assert.match(ok.body.pass, /^pk1\./);
    const k = await loyalKit();
    const r = await redeem(k, ok.body.pass);
    assert.equal(r.order.discount?.cents, 300);
  });

  test('two kits offline from each other both redeem a one-use pass: the hub reports the double use', async () => {
    // issued by the CLI, through the hub API
    const cli = await exec(
      process.execPath,
      [
        BIN,
        'loyalty',
        'issue',
        '--holder',
        'M-42',
        '--tier',
        'silver',
        '--fixed',
        '700',
        '--cap',
        '700',
        '--creator',
        'creator-hub',
        '--days',
        '30',
        '--json',
        '--hub',
        hub.httpUrl,
      ],
      { env: { PATH: process.env['PATH'], POPKIT_HUB_ADMIN_TOKEN: hub.adminToken, NODE_ENV: 'test' } },
    );
    const issued = JSON.parse(cli.stdout) as { pass: string; payload: { id: string } };
    // a two-use pass used once on each kit is within its allowance
    const twice = await api('/v1/loyalty/passes', {
      method: 'POST',
      body: {
        holder: 'M-43',
        tier: 'gold',
        rule: { kind: 'fixed', cents: 100, capCents: 100 },
        scope: { creatorId: 'creator-hub' },
        uses: 2,
        expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
      },
    });
    assert.equal(twice.status, 201);

    const a = await loyalKit();
    const b = await loyalKit();
    const ra = await redeem(a, issued.pass);
    const rb = await redeem(b, issued.pass);
    assert.equal(ra.order.totalCents, 2300);
    assert.equal(rb.order.totalCents, 2300);
    // each kit alone stops a second use on itself
    await assert.rejects(redeem(a, issued.pass), { code: 'PASS_USED' });
    await redeem(a, twice.body.pass);
    await redeem(b, twice.body.pass);

    for (const k of [a, b]) {
      const s = startSync(k.kit, broker.url);
      const entry = kits.find((x) => x.kit === k.kit);
      if (entry) entry.sync = s;
    }
    await waitFor(() => outboxOrders(a.kit) === 0 && outboxOrders(b.kit) === 0, 30_000, 'both kits synced');

    const res = await api('/v1/loyalty/double-uses');
    assert.equal(res.status, 200);
    const uses = res.body.doubleUses;
    assert.deepEqual(
      uses.map((d) => d.passId),
      [issued.payload.id],
      'only the one-use pass used twice',
    );
    const d = uses[0]!;
    assert.equal(d.eventId, eventId);
    assert.equal(d.holder, 'M-42');
    assert.equal(d.uses, 2);
    assert.equal(d.allowed, 1);
    assert.equal(d.known, true);
    assert.equal(d.kits, 2);
    assert.equal(d.discountCents, 1400);
    assert.equal(d.excessCents, 700);
    assert.deepEqual(
      d.redemptions.map((x) => `${x.kitId}/${x.orderId}`).sort(),
      [`${a.kit.kitId}/${ra.order.id}`, `${b.kit.kitId}/${rb.order.id}`].sort(),
    );
    assert.equal((await api('/v1/loyalty/double-uses', { auth: false })).status, 401);

    // the CLI shows the same list
    const list = await exec(process.execPath, [BIN, 'loyalty', 'double-uses', '--hub', hub.httpUrl], {
      env: { PATH: process.env['PATH'], POPKIT_HUB_ADMIN_TOKEN: hub.adminToken, NODE_ENV: 'test' },
    });
    assert.match(
      list.stdout,
      new RegExp(`${issued.payload.id} at ${eventId} \\(holder M-42\\): 2 uses of 1 on 2 kit`),
    );
  });
});

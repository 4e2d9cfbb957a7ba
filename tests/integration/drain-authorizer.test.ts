// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// The drain-proofing feature's settle step against an Authorizer (the seam the hub hop plugs into),
// on real LMDB through checkout's OrderService, and the hub's verdicts on held orders applied as sync
// applies them (applyHubAcks). The Authorizer here answers by the SandboxGateway's rule (a token
// containing `decline` is declined, `unavailable` cannot be reached) so each branch is driven.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { MonotonicIds } from '../../core/ids.ts';
import { dropReport } from '../../core/store/hold-ops.ts';
import {
  applyHubAcks,
  type KitStore,
  LANES,
  openKitStore,
  readAllStock,
  readStoredCatalog,
  replaceCatalog,
} from '../../core/store/index.ts';
import { TokenVault } from '../../core/token-vault.ts';
import type { AuthorizeRequestIn, Authorizer } from '../../services/checkout/authorizer.ts';
import { DeviceTokens } from '../../services/checkout/devices.ts';
import { DrainFeature } from '../../services/checkout/drain.ts';
import type { Caller } from '../../services/checkout/order-features.ts';
import { OrderService } from '../../services/checkout/orders.ts';
import { tempDir } from '../support/checkout.ts';

const CATALOG = {
  version: 1,
  eventId: 'ev-auth',
  currency: 'EUR',
  items: [
    { sku: 'ED', name: 'Edition', priceCents: 4000, stock: 10, scarce: true, maxPerOrder: 3 },
    { sku: 'TEE', name: 'Tee', priceCents: 2000, stock: 100 },
  ],
  pickupSlots: [
    { id: 'late', startsAt: '2099-01-01T21:00:00.000Z', endsAt: '2099-01-01T21:15:00.000Z', capacity: 50 },
  ],
};

/** An Authorizer by the sandbox's rule, recording what it was asked. */
class RuleAuthorizer implements Authorizer {
  up = true;
  asked: Array<{ req: AuthorizeRequestIn; budgetMs: number }> = [];
  online() {
    return this.up;
  }
  async authorize(req: AuthorizeRequestIn, budgetMs: number) {
    this.asked.push({ req, budgetMs });
    if (req.token.includes('throw')) throw new Error('link broke mid-call');
    if (req.token.includes('unavailable')) return { verdict: 'unavailable' as const, ms: budgetMs };
    if (req.token.includes('decline')) return { verdict: 'declined' as const, reason: 'stolen', ms: 3 };
    return { verdict: 'approved' as const, ref: `auth_${req.orderId}`, ms: 3 };
  }
}

let store: KitStore;
let orders: OrderService;
let devices: DeviceTokens;
let drain: DrainFeature;
const authorizer = new RuleAuthorizer();

async function buyer(
  token: string,
  qty = 1,
): Promise<{ caller: Caller; place: () => ReturnType<OrderService['create']> }> {
  const d = await devices.issue(Date.now());
  const caller: Caller = { role: 'buyer', ip: '127.0.0.5', deviceToken: d.token };
  return {
    caller,
    place: () =>
      orders.create({ lines: [{ sku: 'ED', qty }], payment: { method: 'token', token } }, undefined, caller),
  };
}

function state() {
  return JSON.stringify({
    stock: readAllStock(store),
    orders: [...store.orders.getRange({})].length,
    outbox: [...store.outbox.getKeys({})].length,
    devices: [...store.devices.getRange({})].map((e) => e.value),
  });
}

describe('drain-proofing settle against an Authorizer', () => {
  before(async () => {
    store = openKitStore(tempDir());
    await replaceCatalog(store, CATALOG, { source: 'local' });
    assert.ok(readStoredCatalog(store));
    devices = DeviceTokens.withKey(randomBytes(32), store);
    drain = new DrainFeature({
      store,
      devices,
      authorizer,
      authBudgetMs: 250,
      allowance: 0,
      holdTtlMs: 600_000,
      deviceOrdersPerMin: 100,
    });
    const big = 1_000_000_000;
    orders = new OrderService(store, new MonotonicIds(), new TokenVault(randomBytes(32)), {
      kitId: 'kit-auth',
      tokenTtlMs: 3600_000,
      limits: { maxOrderCents: big, maxUnsyncedCents: big, maxUnsyncedOrders: big, maxUnsyncedAgeS: big },
      features: [drain],
    });
  });
  after(() => store.close());

  test('approved: accepted before the answer, authRef kept, off the risk budget, share counted', async () => {
    const b = await buyer('tok_good_4242', 2);
    const { order } = await b.place();
    const last = authorizer.asked.at(-1);
    assert.deepEqual(last, {
      req: { orderId: order.id, token: 'tok_good_4242', amountCents: 8000, currency: 'EUR' },
      budgetMs: 250,
    });
    assert.equal(order.status, 'accepted');
    assert.equal(order.authRef, `auth_${order.id}`);
    assert.equal(store.riskq.get(order.id), undefined);
    assert.equal(store.outbox.get([LANES.orders, order.id])?.riskCents, undefined);
    const again = b.place();
    await assert.rejects(again, { code: 'DEVICE_SHARE_TAKEN' });
  });

  test('declined: PAYMENT_DECLINED and nothing written', async () => {
    const b = await buyer('tok_made_up_decline');
    const before = state();
    await assert.rejects(b.place(), (err: { code: string; details: { reason: string } }) => {
      assert.equal(err.code, 'PAYMENT_DECLINED');
      assert.equal(err.details.reason, 'stolen');
      return true;
    });
    assert.equal(state(), before);
  });

  test('unavailable, or an Authorizer that throws: the offline rule (held)', async () => {
    for (const token of ['tok_unavailable_1', 'tok_throw_1']) {
      const { order } = await (await buyer(token)).place();
      assert.equal(order.status, 'held', token);
      assert.ok(order.hold?.until);
    }
  });

  test('offline: the Authorizer is not asked', async () => {
    authorizer.up = false;
    const asked = authorizer.asked.length;
    const { order } = await (await buyer('tok_good_offline')).place();
    assert.equal(order.status, 'held');
    assert.equal(authorizer.asked.length, asked);
    authorizer.up = true;
  });

  test("the hub's verdicts on held orders: settled confirms, declined and rejected release at once", async () => {
    authorizer.up = false;
    const paid = (await (await buyer('tok_paid_later')).place()).order;
    const bad = (await (await buyer('tok_bad_later')).place()).order;
    const lost = (await (await buyer('tok_lost_later')).place()).order;
    const tee = (
      await orders.create(
        { lines: [{ sku: 'TEE', qty: 1 }], payment: { method: 'token', token: 'tok_tee_1234' } },
        undefined,
      )
    ).order;
    authorizer.up = true;
    const stock = readAllStock(store)['ED'] ?? 0;
    await applyHubAcks(store, [
      { lane: 'orders', id: paid.id, state: 'settled' },
      { lane: 'orders', id: bad.id, state: 'declined', reason: 'stolen' },
      { lane: 'orders', id: lost.id, state: 'rejected', reason: 'bad entry' },
      { lane: 'orders', id: tee.id, state: 'declined', reason: 'insufficient_funds' },
    ]);
    const p = store.orders.get(paid.id);
    assert.equal(p?.status, 'accepted');
    assert.equal(store.outbox.get([LANES.orders, `${paid.id}~confirmed`])?.body?.['by'], 'hub');
    const b = store.orders.get(bad.id);
    assert.equal(b?.status, 'released');
    assert.equal(b?.hold?.releaseReason, 'declined: stolen');
    assert.equal(b?.declineReason, 'stolen');
    assert.equal(store.orders.get(lost.id)?.status, 'released');
    assert.equal(readAllStock(store)['ED'], stock + 2, 'both units back in the same transaction');
    assert.ok(store.outbox.get([LANES.orders, `${bad.id}~released`]));
    // a non-held order keeps the existing behaviour
    assert.equal(store.orders.get(tee.id)?.status, 'accepted');
    assert.equal(store.orders.get(tee.id)?.syncState, 'declined');
    // duplicates change nothing
    const before = state();
    await applyHubAcks(store, [
      { lane: 'orders', id: paid.id, state: 'settled' },
      { lane: 'orders', id: bad.id, state: 'declined', reason: 'stolen' },
    ]);
    assert.equal(state(), before);
    assert.equal(readAllStock(store)['ED'], stock + 2);
  });

  test('a hold released before the hub charged it anyway shows as a refund due in the report', async () => {
    authorizer.up = false;
    const o = (await (await buyer('tok_race_1')).place()).order;
    authorizer.up = true;
    await drain.sweep(Date.parse(o.hold?.until ?? '') + 1);
    assert.equal(store.orders.get(o.id)?.status, 'released');
    await applyHubAcks(store, [{ lane: 'orders', id: o.id, state: 'settled' }]);
    const cat = readStoredCatalog(store);
    assert.ok(cat);
    const [ed] = dropReport(store, cat, ['ED']);
    assert.equal(ed?.refundDue, 1);
    assert.equal(ed?.balanced, true);
  });

  test('a hold with a pickup slot lasts to the end of the slot', async () => {
    authorizer.up = false;
    const d = await devices.issue(Date.now());
    const { order } = await orders.create(
      {
        lines: [{ sku: 'ED', qty: 1 }],
        payment: { method: 'token', token: 'tok_slot_1' },
        pickupSlotId: 'late',
      },
      undefined,
      { role: 'buyer', ip: '127.0.0.5', deviceToken: d.token },
    );
    authorizer.up = true;
    assert.equal(order.status, 'held');
    assert.equal(order.hold?.until, '2099-01-01T21:15:00.000Z');
  });

  test('the background sweeper releases a hold once its clock passes the end', async () => {
    let now = Date.now();
    const swept = new DrainFeature({
      store,
      devices,
      authorizer,
      authBudgetMs: 250,
      allowance: 0,
      holdTtlMs: 600_000,
      deviceOrdersPerMin: 100,
      sweepMs: 20,
      clock: () => now,
    });
    authorizer.up = false;
    const { order } = await (await buyer('tok_sweep_1')).place();
    authorizer.up = true;
    const stop = swept.start();
    try {
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(store.orders.get(order.id)?.status, 'held', 'not before its end');
      now = Date.parse(order.hold?.until ?? '') + 1;
      const deadline = Date.now() + 10_000;
      while (store.orders.get(order.id)?.status !== 'released' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(store.orders.get(order.id)?.status, 'released');
      assert.equal(store.orders.get(order.id)?.hold?.releaseReason, 'expired');
      assert.ok((swept.status()['drain'] as { outcomes: { expired: number } }).outcomes.expired >= 1);
    } finally {
      await stop();
    }
  });
});

// Checkout first (docs/scaling.md#checkout-first): under an injected "checkout busy" signal sync's batches
// and its ack transactions are bounded and it pauses between transactions; when idle it uses full
// batches and one transaction per ack message; nothing is lost or applied twice either way. The real
// signal (the orders lane's newest key) is driven by an injected clock: no wall-clock assertion here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type HubAck,
  LANES,
  newestOrderEntry,
  readRiskCounters,
  scanOutbox,
} from '../../core/store/index.ts';
import { applyAckMessage, applyAcksPaced } from '../../services/sync/acks.ts';
import { CheckoutLoad, type LoadSignal } from '../../services/sync/load.ts';
import { OutboxPump } from '../../services/sync/pump.ts';
import { makeKit, type TestKit, uniqueId } from '../support/hub-link.ts';

// fresh option objects each call: lmdb-js marks the ones it is given (getKeysCount sets onlyCount)
const ordersLane = () => ({
  start: [LANES.orders, ''] as [number, string],
  end: [LANES.orders + 1, ''] as [number, string],
});
const outboxOrders = (k: TestKit) => k.store.outbox.getKeysCount(ordersLane());
const orderKeys = (k: TestKit) => [...k.store.outbox.getKeys(ordersLane())].map((key) => key[1]);

/** A signal the test flips. */
function switchable(busy: boolean): LoadSignal & { busyNow: boolean; asked: number } {
  const s = {
    busyNow: busy,
    asked: 0,
    busy: () => {
      s.asked++;
      return s.busyNow;
    },
  };
  return s;
}

async function kitWith(n: number, tokenEvery = 0): Promise<{ kit: TestKit; ids: string[] }> {
  const kit = await makeKit(uniqueId('prio'));
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const token = tokenEvery > 0 && i % tokenEvery === 0;
    ids.push(await kit.place(token ? { method: 'token', token: `tok_prio_${i}` } : { method: 'cash' }));
  }
  return { kit, ids };
}

test("CheckoutLoad: busy after checkout commits an order, idle once the hold passes, deaf to sync's own deletes", async () => {
  const { kit } = await kitWith(3);
  let now = 1_000_000;
  try {
    const load = new CheckoutLoad(kit.store, 500, () => now);
    assert.equal(load.busy(), false, 'orders already there at start are not arrivals');
    await kit.place();
    assert.equal(load.busy(), true, 'a new order: busy');
    now += 499;
    assert.equal(load.busy(), true, 'still within the hold');
    now += 1;
    assert.equal(load.busy(), false, 'the hold has passed without a new order');
    // sync removing the newest entry (its ack), or the whole lane, is no arrival
    const newest = newestOrderEntry(kit.store);
    assert.ok(newest);
    await applyAcksPaced(kit.store, [{ lane: 'orders', id: newest, state: 'settled' }]);
    assert.equal(load.busy(), false, 'an ack moving the newest key back is not an order');
    await applyAcksPaced(
      kit.store,
      orderKeys(kit).map((id) => ({ lane: 'orders', id, state: 'settled' }) as HubAck),
    );
    assert.equal(newestOrderEntry(kit.store), undefined);
    assert.equal(load.busy(), false, 'an emptied lane is not an order');
    await kit.place();
    assert.equal(load.busy(), true, 'the first order after the lane emptied is an arrival');
  } finally {
    await kit.close();
  }
});

test('pump: small batches and a small window while checkout is busy, full ones when idle', async () => {
  const { kit } = await kitWith(500);
  const sent: { entries: string[] }[] = [];
  const load = switchable(true);
  const pump = new OutboxPump(
    kit.store,
    kit.vault,
    {
      ready: () => true,
      send: (_topic, payload) => {
        const body = JSON.parse(payload) as { entries: { id: string }[] };
        sent.push({ entries: body.entries.map((e) => e.id) });
      },
    },
    {
      kitId: kit.kitId,
      batchMax: 100,
      batchBytes: 1 << 20,
      window: 3,
      ackTimeoutMs: 60_000,
      busy: { batchMax: 10, window: 2, ackTxnMax: 5, yieldMs: 0 },
    },
    load,
  );
  try {
    pump.pump();
    assert.deepEqual(
      sent.map((b) => b.entries.length),
      [10, 10],
      'busy: two batches of ten',
    );
    assert.equal(pump.inflightCount, 20);
    pump.pump();
    assert.equal(sent.length, 2, 'busy: nothing more until an ack frees the window');
    // as sync does: the ack is applied to the store, then the entries leave the window
    const ack = async (batches: { entries: string[] }[]) => {
      const ids = batches.flatMap((b) => b.entries);
      await applyAcksPaced(
        kit.store,
        ids.map((id) => ({ lane: 'orders', id, state: 'settled' }) as HubAck),
      );
      pump.settle(ids.map((id) => ({ lane: LANES.orders, id })));
    };
    // the first batch is acked; the window takes one more small batch
    await ack(sent.slice(0, 1));
    pump.pump();
    assert.deepEqual(
      sent.map((b) => b.entries.length),
      [10, 10, 10],
    );

    load.busyNow = false;
    pump.pump();
    assert.deepEqual(
      sent.slice(3).map((b) => b.entries.length),
      [100],
      'idle: the window (3) fills with full batches',
    );
    await ack(sent.slice(1));
    pump.pump();
    assert.deepEqual(
      sent.slice(4).map((b) => b.entries.length),
      [100, 100, 100],
    );
    assert.deepEqual(pump.batchesBy, { busy: 3, idle: 4 });
    // every order was sent exactly once across both modes, none twice
    const all = sent.flatMap((b) => b.entries);
    assert.equal(new Set(all).size, all.length, 'no entry sent twice');
    assert.equal(all.length, 430);
    assert.equal(outboxOrders(kit), 500 - 130, 'what was acked left the outbox, nothing else');
  } finally {
    await kit.close();
  }
});

test('acks while busy: transactions of at most N with a pause between; idle: one transaction; nothing lost or applied twice', async () => {
  const { kit, ids } = await kitWith(60, 3);
  try {
    const riskBefore = readRiskCounters(kit.store);
    assert.equal(riskBefore.unsyncedTokenOrders, 20);
    const acked = ids.slice(0, 50);
    const acks: HubAck[] = acked.map((id) => ({ lane: 'orders', id, state: 'settled' }));
    const load = switchable(true);
    // what the outbox held at each pause: each transaction took at most 7 entries
    const atPause: number[] = [];
    const pacing = {
      load,
      limits: { ackTxnMax: 7, yieldMs: 3 },
      pause: async (ms: number) => {
        assert.equal(ms, 3);
        atPause.push(outboxOrders(kit));
      },
    };
    const payload = Buffer.from(JSON.stringify({ v: 1, kitId: kit.kitId, acks }));
    const res = await applyAckMessage(kit.store, kit.kitId, payload, pacing);
    assert.ok(res);
    assert.equal(res.txns, 8, '50 acks in transactions of at most 7');
    assert.deepEqual(
      atPause,
      [53, 46, 39, 32, 25, 18, 11],
      'one pause between two transactions, 7 gone each time',
    );
    assert.equal(outboxOrders(kit), 10);
    assert.deepEqual(orderKeys(kit), ids.slice(50), 'exactly the acked entries left, in order');
    for (const id of acked) assert.equal(kit.store.orders.get(id)?.syncState, 'settled');
    const riskAfter = readRiskCounters(kit.store);
    assert.equal(riskAfter.unsyncedTokenOrders, 3, 'the risk budget went down once per acked card order');

    // the same message again (a redelivery), now idle: one transaction, and it changes nothing
    load.busyNow = false;
    const again = await applyAckMessage(kit.store, kit.kitId, payload, pacing);
    assert.equal(again?.txns, 1);
    assert.equal(atPause.length, 7, 'no pause when idle');
    assert.deepEqual(orderKeys(kit), ids.slice(50));
    assert.deepEqual(readRiskCounters(kit.store), riskAfter, 'a replayed ack moves no counter');
  } finally {
    await kit.close();
  }
});

test('acks: a drain speeds up as soon as checkout goes idle; a verdict is never undone by a late duplicate', async () => {
  const { kit, ids } = await kitWith(40);
  try {
    const load = switchable(true);
    let pauses = 0;
    const pacing = {
      load,
      limits: { ackTxnMax: 5, yieldMs: 0 },
      pause: async () => {
        // checkout goes quiet during the second pause: the rest goes in one transaction
        if (++pauses === 2) load.busyNow = false;
      },
    };
    const settled: HubAck[] = ids.slice(0, 30).map((id) => ({ lane: 'orders', id, state: 'settled' }));
    assert.equal(await applyAcksPaced(kit.store, settled, pacing), 3, '5 + 5 + the remaining 20');
    // a late 'forwarded' for settled orders, paced again: the verdict stays, nothing comes back
    load.busyNow = true;
    const late: HubAck[] = ids.slice(0, 30).map((id) => ({ lane: 'orders', id, state: 'forwarded' }));
    await applyAcksPaced(kit.store, late, pacing);
    for (const id of ids.slice(0, 30)) assert.equal(kit.store.orders.get(id)?.syncState, 'settled');
    assert.deepEqual(orderKeys(kit), ids.slice(30));
    // the rest, paced: each entry goes once
    const rest: HubAck[] = ids.slice(30).map((id) => ({ lane: 'orders', id, state: 'settled' }));
    await applyAcksPaced(kit.store, rest, pacing);
    assert.equal([...scanOutbox(kit.store)].filter(({ key }) => key[0] === LANES.orders).length, 0);
  } finally {
    await kit.close();
  }
});

test('acks: a malformed or foreign message changes nothing, paced or not', async () => {
  const { kit, ids } = await kitWith(5);
  try {
    const load = switchable(true);
    const pacing = { load, limits: { ackTxnMax: 1, yieldMs: 0 }, pause: async () => {} };
    const acks = ids.map((id) => ({ lane: 'orders', id, state: 'settled' }));
    for (const payload of [
      JSON.stringify({ v: 1, kitId: 'another-kit', acks }),
      JSON.stringify({ v: 1, kitId: kit.kitId, acks: [{ lane: 'orders', id: ids[0], state: 'eaten' }] }),
      JSON.stringify({
        v: 1,
        kitId: kit.kitId,
        acks: [{ lane: 'orders', id: 'x'.repeat(65), state: 'settled' }],
      }),
      JSON.stringify({ v: 1, kitId: kit.kitId, acks: [{ lane: '__proto__', id: ids[0], state: 'settled' }] }),
      '{"v":1,',
      '\u0000',
    ]) {
      assert.equal(await applyAckMessage(kit.store, kit.kitId, Buffer.from(payload), pacing), undefined);
    }
    // an id the contract allows but no entry has (NUL, __proto__): applied, and it removes nothing
    const odd = JSON.stringify({
      v: 1,
      kitId: kit.kitId,
      acks: [
        { lane: 'orders', id: '__proto__\u0000', state: 'settled' },
        { lane: 'telemetry', id: '__proto__', state: 'settled' },
      ],
    });
    assert.equal((await applyAckMessage(kit.store, kit.kitId, Buffer.from(odd), pacing))?.txns, 2);
    assert.deepEqual(orderKeys(kit), ids);
  } finally {
    await kit.close();
  }
});

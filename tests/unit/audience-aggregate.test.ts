// core/store/audience.ts against a real LMDB store: what may leave a kit is per segment, over at least
// k people, without differencing leaks (a complement under k, a linked count under k, a retention tail
// under k), and it always fits the AudienceAggregate contract.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { audienceAggregate as aggregateContract } from '../../core/contracts/series.ts';
import {
  audienceAggregate,
  flushViewers,
  higherTier,
  type KitStore,
  linkOrderInTxn,
  openKitStore,
  recordConsent,
  type ViewerRecord,
  watchedMinutes,
} from '../../core/store/index.ts';
import { tempDir } from '../support/checkout.ts';

const T0 = 1_800_000_000;
const stores: KitStore[] = [];
after(async () => {
  for (const s of stores) await s.close();
});

function fresh(): KitStore {
  const s = openKitStore(tempDir('popkit-aud-'));
  stores.push(s);
  return s;
}

/** A viewer who watched `minutes` minutes in one session from T0. */
function viewer(id: string, minutes: number, inVenue: boolean, eventId = 'ev-1'): ViewerRecord {
  const end = T0 + minutes * 60;
  return {
    id,
    eventId,
    firstSeen: T0,
    lastSeen: end,
    watchSeconds: minutes * 60,
    sessions: [[T0, end]],
    inVenue,
  };
}

function checked(store: KitStore, eventId: string, k?: number) {
  const a = audienceAggregate(store, eventId, { ...(k === undefined ? {} : { k }), now: T0 + 7200 });
  assert.ok(aggregateContract.check(a), aggregateContract.errors(a).join('; '));
  return a;
}

describe('audienceAggregate', () => {
  test('a segment of 4 with k=5 is suppressed without figures; its complement too', async () => {
    const store = fresh();
    // 10 in the venue, 4 remote: remote is under k, and all − in_venue would tell remote's figures
    const vs = [
      ...Array.from({ length: 10 }, (_, i) => viewer(`v${i}`, 10, true)),
      ...Array.from({ length: 4 }, (_, i) => viewer(`r${i}`, 2, false)),
    ];
    await flushViewers(store, vs);
    const a = checked(store, 'ev-1', 5);
    const names = a.segments.map((s) => s.segment);
    assert.deepEqual(names, ['all']);
    assert.ok(a.suppressed.includes('remote'));
    assert.ok(a.suppressed.includes('in_venue'), 'in_venue would give remote away as all − in_venue');
    // watched_5m holds 10 of 14: its complement (4) is under k as well
    assert.ok(a.suppressed.includes('watched_5m'));
    const json = JSON.stringify(a);
    assert.ok(!json.includes('"viewers":4'), json);
    const all = a.segments.find((s) => s.segment === 'all');
    assert.equal(all?.viewers, 14);
    assert.equal(all?.watchSeconds, 10 * 600 + 4 * 120);
  });

  test('with k=4 the same audience is shown per segment', async () => {
    const store = fresh();
    await flushViewers(store, [
      ...Array.from({ length: 10 }, (_, i) => viewer(`v${i}`, 10, true)),
      ...Array.from({ length: 4 }, (_, i) => viewer(`r${i}`, 2, false)),
    ]);
    const a = checked(store, 'ev-1', 4);
    const remote = a.segments.find((s) => s.segment === 'remote');
    assert.equal(remote?.viewers, 4);
    assert.equal(a.segments.find((s) => s.segment === 'in_venue')?.viewers, 10);
    assert.deepEqual(a.suppressed, []);
  });

  test('the retention curve counts who still watched m minutes in, and stops before a count under k', async () => {
    const store = fresh();
    // 6 watch 3 minutes, 5 watch 8, one watches 30 (its tail must not show)
    await flushViewers(store, [
      ...Array.from({ length: 6 }, (_, i) => viewer(`a${i}`, 3, true)),
      ...Array.from({ length: 5 }, (_, i) => viewer(`b${i}`, 8, true)),
      viewer('c0', 30, true),
    ]);
    const all = checked(store, 'ev-1', 5).segments.find((s) => s.segment === 'all');
    assert.deepEqual(all?.retention, [12, 12, 12, 12, 6, 6, 6, 6, 6]);
  });

  test('retention follows sessions: a viewer away in between is not counted as watching', () => {
    const v: ViewerRecord = {
      ...viewer('x', 0, true),
      lastSeen: T0 + 600,
      sessions: [
        [T0, T0 + 90],
        [T0 + 400, T0 + 600],
      ],
    };
    assert.deepEqual(watchedMinutes(v), [0, 1, 7, 8, 9, 10]);
  });

  test('linked buyers: shown only over k (and when the rest of the linked are 0 or over k)', async () => {
    const store = fresh();
    await flushViewers(
      store,
      Array.from({ length: 12 }, (_, i) => viewer(`v${i}`, 10, i < 6)),
    );
    // 4 consenting buyers link orders: under k, their count is not shown anywhere
    for (let i = 0; i < 4; i++) {
      await recordConsent(store, `d${i}`, { granted: true, textVersion: 't1', at: new Date().toISOString() });
      await linkInTxn(store, `d${i}`, `v${i}`, `o${i}`, 'ev-1');
    }
    let a = checked(store, 'ev-1', 5);
    for (const s of a.segments) {
      assert.equal(s.linkedBuyers, 0, s.segment);
      assert.equal(s.linkedOrders, 0, s.segment);
    }
    assert.ok(a.suppressed.includes('new'));
    // a fifth: `all` shows 5 linked; in_venue holds 5 of them (v0..v4 are in the venue), remote 0
    await recordConsent(store, 'd4', { granted: true, textVersion: 't1', at: new Date().toISOString() });
    await linkInTxn(store, 'd4', 'v4', 'o4', 'ev-1');
    await linkInTxn(store, 'd4', 'v4', 'o5', 'ev-1');
    a = checked(store, 'ev-1', 5);
    const all = a.segments.find((s) => s.segment === 'all');
    assert.equal(all?.linkedBuyers, 5);
    assert.equal(all?.linkedOrders, 6);
    assert.equal(a.segments.find((s) => s.segment === 'new')?.viewers, 5);
    // a withdrawal deletes the links: the linked figures go at once
    await recordConsent(store, 'd0', { granted: false, textVersion: 't1', at: new Date().toISOString() });
    a = checked(store, 'ev-1', 5);
    assert.equal(a.segments.find((s) => s.segment === 'all')?.linkedBuyers, 0);
    assert.ok(a.suppressed.includes('new'));
  });

  test('returning and loyalty tiers come from consenting buyers; other events are not counted', async () => {
    const store = fresh();
    await flushViewers(store, [
      ...Array.from({ length: 10 }, (_, i) => viewer(`v${i}`, 10, true)),
      viewer('other', 10, true, 'ev-0'),
    ]);
    for (let i = 0; i < 10; i++) {
      await recordConsent(store, `d${i}`, { granted: true, textVersion: 't1', at: new Date().toISOString() });
      if (i < 5) await linkInTxn(store, `d${i}`, `old${i}`, `p${i}`, 'ev-0');
      await linkInTxn(store, `d${i}`, `v${i}`, `o${i}`, 'ev-1', 'gold');
    }
    const a = checked(store, 'ev-1', 5);
    assert.equal(a.segments.find((s) => s.segment === 'all')?.viewers, 10);
    assert.equal(a.segments.find((s) => s.segment === 'returning')?.viewers, 5);
    assert.equal(a.segments.find((s) => s.segment === 'new')?.viewers, 5);
    assert.equal(a.segments.find((s) => s.segment === 'loyalty_gold')?.viewers, 10);
  });

  test('k is clamped to the contract (2..1000)', async () => {
    const store = fresh();
    await flushViewers(store, [viewer('a', 1, true), viewer('b', 1, true)]);
    assert.equal(checked(store, 'ev-1', 1).k, 2);
    assert.equal(checked(store, 'ev-1', 1e9).k, 1000);
    assert.deepEqual(checked(store, 'ev-1', 1e9).segments, []);
  });

  test('higherTier ranks known tiers and keeps the first of unknown ones', () => {
    assert.equal(higherTier('silver', 'gold'), 'gold');
    assert.equal(higherTier('gold', 'silver'), 'gold');
    assert.equal(higherTier(undefined, 'x'), 'x');
    assert.equal(higherTier('vip-a', 'vip-b'), 'vip-a');
    assert.equal(higherTier('vip-a', 'bronze'), 'bronze');
  });
});

/** A link written as the order's transaction writes it. */
function linkInTxn(
  store: KitStore,
  deviceId: string,
  viewerId: string,
  orderId: string,
  eventId: string,
  tier?: string,
) {
  // the link step runs inside the order's transaction; here it gets one of its own
  return store.root.transaction(() =>
    linkOrderInTxn(store, deviceId, { viewerId, orderId, eventId, loyaltyTier: tier }),
  );
}

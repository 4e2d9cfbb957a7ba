// What sync tells the hub of the kit's clock (KitStatus.clock, core/store/clock.ts clockTrustNow) agrees
// with what checkout's ClockTrust judged and recorded, on a real LMDB store: nothing recorded → never_set;
// NTP or a staff override recorded this boot → trusted by it; a wall-clock jump → clock_jumped; a record
// of another boot says nothing; below the hub's signed time floor → below_hub_floor. And the payload
// carries it.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ClockTrust } from '../../core/clock-trust.ts';
import { wire } from '../../core/contracts/hub-wire.ts';
import { clockTrustNow, readClockTrust, recordHubTimeInTxn } from '../../core/store/clock.ts';
import { type KitStore, openKitStore } from '../../core/store/index.ts';
import { kitStatusPayload } from '../../services/sync/sync-status.ts';
import { tempDir } from '../support/checkout.ts';
import { CLOCK_OPTS, FakeClock, T0 } from '../support/drops-clock.ts';

const stores: KitStore[] = [];
after(async () => {
  for (const s of stores) await s.close();
});
function freshStore(): KitStore {
  const s = openKitStore(tempDir('popkit-clock-summary-'));
  stores.push(s);
  return s;
}

const seen = (store: KitStore, c: FakeClock) =>
  clockTrustNow(store, { wall: c.wall(), mono: c.mono(), bootId: c.bootId(), jumpToleranceMs: 2000 });

async function recorded(store: KitStore): Promise<void> {
  for (let i = 0; i < 200 && !readClockTrust(store); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(readClockTrust(store), 'checkout recorded its trust');
}

test('sync reports what checkout judged: never set, NTP, a jump, staff override', async () => {
  const store = freshStore();
  const c = new FakeClock();
  const checkout = new ClockTrust(store, c, CLOCK_OPTS);
  assert.deepEqual(seen(store, c), { trusted: false, reason: 'never_set' });
  c.ntp = true;
  await checkout.refreshNtp();
  assert.equal(checkout.judge().trusted, true);
  await recorded(store);
  assert.deepEqual(seen(store, c), { trusted: true, source: 'ntp' });
  c.tick(60_000);
  assert.deepEqual(seen(store, c), { trusted: true, source: 'ntp' });
  // the wall clock jumps an hour: checkout drops the trust, and so does what sync says
  c.jump(3_600_000);
  assert.equal(checkout.judge().reason, 'clock_jumped');
  assert.deepEqual(seen(store, c), { trusted: false, reason: 'clock_jumped' });
  await checkout.override('manager');
  assert.deepEqual(seen(store, c), { trusted: true, source: 'override' });
});

test("another boot's record says nothing; below the hub's signed time is untrusted", async () => {
  const store = freshStore();
  const c = new FakeClock();
  await new ClockTrust(store, c, CLOCK_OPTS).override('manager');
  assert.equal(seen(store, c).trusted, true);
  c.boot = 'boot-2';
  assert.deepEqual(seen(store, c), { trusted: false, reason: 'never_set' });
  c.boot = 'boot-1';
  await store.root.transaction(() =>
    recordHubTimeInTxn(store, {
      issuedAt: T0 + 86_400_000,
      receivedAt: T0,
      mono: c.mono(),
      bootId: 'boot-1',
    }),
  );
  assert.deepEqual(seen(store, c), { trusted: false, reason: 'below_hub_floor' });
});

test('the kit status carries the clock and passes the hub-wire contract; without it, no field', () => {
  const base = {
    kitId: 'kit-1',
    eventId: 'ev',
    lanes: { backlog: { orders: 0 }, oldestAgeMs: { orders: 0 } },
    lastAckAt: null,
    catalogVersion: null,
    kitd: undefined,
  };
  const s = kitStatusPayload({ ...base, clock: { trusted: false, reason: 'clock_jumped' } });
  assert.deepEqual(s.clock, { trusted: false, reason: 'clock_jumped' });
  assert.ok(wire.kitStatus.check(s));
  assert.equal('clock' in kitStatusPayload(base), false);
  // a hostile clock field is refused by the contract the hub parses with
  assert.equal(wire.kitStatus.check({ ...s, clock: { trusted: 'yes' } }), false);
  assert.equal(wire.kitStatus.check({ ...s, clock: { trusted: false, reason: 'x'.repeat(33) } }), false);
  assert.equal(wire.kitStatus.check({ ...s, clock: { trusted: false, reason: 'a\u0000b' } }), false);
  assert.equal(wire.kitStatus.check({ ...s, clock: { trusted: false, source: '\u001b[31m' } }), false);
});

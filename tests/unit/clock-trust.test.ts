// Trusted time (core/clock-trust.ts) with injected clocks and sources on a real LMDB store: no source
// → untrusted; NTP, RTC, hub and staff override each vouch; the hub floor; jumps forward and back
// drop the trust until a fresh source vouches; a trust record outlives a restart within the boot only.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { ClockTrust, type ClockTrustOptions } from '../../core/clock-trust.ts';
import { readClockTrust, recordHubTimeInTxn, writeClockTrust } from '../../core/store/clock.ts';
import { type KitStore, openKitStore } from '../../core/store/index.ts';
import { tempDir } from '../support/checkout.ts';
import { FakeClock, T0 } from '../support/drops-clock.ts';

const OPTS: ClockTrustOptions = {
  jumpToleranceMs: 2000,
  hubAgreeMs: 120_000,
  ntpPollMs: 60_000,
  assume: false,
};

const stores: KitStore[] = [];
after(async () => {
  for (const s of stores) await s.close();
});
function freshStore(): KitStore {
  const s = openKitStore(tempDir('popkit-clock-'));
  stores.push(s);
  return s;
}

async function putHubTime(store: KitStore, rec: Parameters<typeof recordHubTimeInTxn>[1]) {
  await store.root.transaction(() => recordHubTimeInTxn(store, rec));
}

describe('clock trust', () => {
  test('no NTP, no RTC, no hub time: not trusted (never_set)', () => {
    const c = new FakeClock();
    const t = new ClockTrust(freshStore(), c, OPTS);
    const j = t.judge();
    assert.equal(j.trusted, false);
    assert.equal(j.reason, 'never_set');
    assert.equal(t.view().sources.ntp, null);
  });

  test('NTP synchronized vouches once probed; unsynchronized does not', async () => {
    const c = new FakeClock();
    const t = new ClockTrust(freshStore(), c, OPTS);
    c.ntp = false;
    await t.refreshNtp();
    assert.equal(t.judge().trusted, false);
    c.ntp = true;
    await t.refreshNtp();
    const j = t.judge();
    assert.deepEqual([j.trusted, j.source], [true, 'ntp']);
  });

  test('an RTC that set the clock at boot vouches', () => {
    const c = new FakeClock();
    c.rtc = true;
    const j = new ClockTrust(freshStore(), c, OPTS).judge();
    assert.deepEqual([j.trusted, j.source], [true, 'rtc']);
  });

  test('a hub catalog received this boot whose issue time agrees with the clock vouches', async () => {
    const store = freshStore();
    const c = new FakeClock();
    await putHubTime(store, {
      issuedAt: T0 - 30_000,
      receivedAt: c.wallMs,
      mono: c.monoMs,
      bootId: 'boot-1',
    });
    c.tick(5000);
    const j = new ClockTrust(store, c, OPTS).judge();
    assert.deepEqual([j.trusted, j.source], [true, 'hub']);
  });

  test('an old hub catalog (issued long before arrival) is a floor only, not a source', async () => {
    const store = freshStore();
    const c = new FakeClock();
    await putHubTime(store, {
      issuedAt: T0 - 3_600_000,
      receivedAt: c.wallMs,
      mono: c.monoMs,
      bootId: 'boot-1',
    });
    const j = new ClockTrust(store, c, OPTS).judge();
    assert.deepEqual([j.trusted, j.reason], [false, 'never_set']);
  });

  test('hub time of another boot does not vouch', async () => {
    const store = freshStore();
    const c = new FakeClock();
    await putHubTime(store, { issuedAt: T0, receivedAt: T0, mono: c.monoMs, bootId: 'boot-0' });
    assert.equal(new ClockTrust(store, c, OPTS).judge().trusted, false);
  });

  test('a wall clock below the hub floor is wrong whatever vouches (NTP, RTC, override refused)', async () => {
    const store = freshStore();
    const c = new FakeClock();
    c.rtc = true;
    c.ntp = true;
    // the hub signed a catalog an hour after what this clock reads
    await putHubTime(store, { issuedAt: T0 + 3_600_000, receivedAt: T0, mono: 0, bootId: 'boot-0' });
    const t = new ClockTrust(store, c, OPTS);
    await t.refreshNtp();
    const j = t.judge();
    assert.deepEqual([j.trusted, j.reason], [false, 'below_hub_floor']);
    await assert.rejects(t.override('admin'), (e: { code?: string }) => e.code === 'CLOCK_UNTRUSTED');
    assert.equal(readClockTrust(store), undefined, 'a refused override writes nothing');
    assert.equal(t.view().hubFloor, new Date(T0 + 3_600_000).toISOString());
  });

  test('the floor only rises: an older issue time does not lower it', async () => {
    const store = freshStore();
    await putHubTime(store, { issuedAt: T0, receivedAt: T0, mono: 1, bootId: 'b' });
    await putHubTime(store, { issuedAt: T0 - 1000, receivedAt: T0, mono: 2, bootId: 'b' });
    const t = new ClockTrust(store, new FakeClock(), OPTS);
    assert.equal(t.view().hubFloor, new Date(T0).toISOString());
  });

  test('staff override trusts the clock for this boot only, and survives a restart within it', async () => {
    const store = freshStore();
    const c = new FakeClock();
    const t = new ClockTrust(store, c, OPTS);
    assert.equal(t.judge().trusted, false);
    const j = await t.override('admin');
    assert.deepEqual([j.trusted, j.source], [true, 'override']);
    c.tick(60_000);
    // checkout restarts in the same boot: the record is read back
    assert.deepEqual(new ClockTrust(store, c, OPTS).judge().source, 'override');
    // a reboot: another boot id, the monotonic clock starts again
    const rebooted = new FakeClock();
    rebooted.boot = 'boot-2';
    rebooted.wallMs = c.wallMs;
    rebooted.monoMs = 5;
    const r = new ClockTrust(store, rebooted, OPTS).judge();
    assert.deepEqual([r.trusted, r.reason], [false, 'never_set']);
  });

  for (const [name, jump] of [
    ['forward', 3_600_000],
    ['back', -3_600_000],
  ] as const) {
    test(`a jump ${name} drops the trust; the RTC does not restore it, a fresh NTP probe does`, async () => {
      const store = freshStore();
      const c = new FakeClock();
      c.rtc = true;
      const t = new ClockTrust(store, c, OPTS);
      assert.equal(t.judge().source, 'rtc');
      c.tick(30_000);
      assert.equal(t.judge().trusted, true, 'time passing on both clocks is no jump');
      c.jump(1500);
      assert.equal(t.judge().trusted, true, 'within the tolerance is no jump');
      c.jump(jump);
      const j = t.judge();
      assert.deepEqual([j.trusted, j.reason], [false, 'clock_jumped']);
      assert.equal(j.jumpMs, jump + 1500);
      assert.equal(t.view().jumpMs, jump + 1500);
      c.tick(1000);
      assert.equal(t.judge().trusted, false, 'still untrusted: nothing fresh vouched');
      // a restarted checkout in the same boot sees the jump too (the anchor is in LMDB)
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(new ClockTrust(store, c, OPTS).judge().reason, 'clock_jumped');
      c.ntp = true;
      await t.refreshNtp();
      const again = t.judge();
      assert.deepEqual([again.trusted, again.source], [true, 'ntp']);
      c.tick(10_000);
      assert.equal(t.judge().trusted, true, 're-based on the new offset');
    });
  }

  test('an NTP answer from before the jump does not restore the trust', async () => {
    const store = freshStore();
    const c = new FakeClock();
    c.ntp = true;
    const t = new ClockTrust(store, c, OPTS);
    await t.refreshNtp();
    assert.equal(t.judge().source, 'ntp');
    // the probe the jump triggers is still running: its answer will count, the old one does not
    let release: (v: boolean) => void = () => {};
    c.ntpSynced = () => new Promise<boolean>((r) => (release = r));
    c.tick(100);
    c.jump(-600_000);
    assert.equal(t.judge().reason, 'clock_jumped');
    assert.equal(t.judge().reason, 'clock_jumped');
    release(true);
    await t.refreshNtp();
    assert.equal(t.judge().source, 'ntp');
  });

  test('after a jump an override re-trusts at the new offset', async () => {
    const store = freshStore();
    const c = new FakeClock();
    const t = new ClockTrust(store, c, OPTS);
    await t.override('admin');
    c.jump(-10_000);
    assert.equal(t.judge().reason, 'clock_jumped');
    await t.override('admin');
    assert.equal(t.judge().trusted, true);
    assert.equal(readClockTrust(store)?.offsetMs, c.wallMs - c.monoMs);
  });

  test('a damaged trust record is ignored, not trusted', async () => {
    const store = freshStore();
    await writeClockTrust(store, { bootId: 'boot-1', source: 'override', offsetMs: Number.NaN, at: 'x' });
    const t = new ClockTrust(store, new FakeClock(), OPTS);
    assert.equal(t.judge().trusted, false);
  });

  test('assume: trusted as is (development), still not below the hub floor', async () => {
    const store = freshStore();
    const c = new FakeClock();
    const t = new ClockTrust(store, c, { ...OPTS, assume: true });
    assert.equal(t.judge().source, 'assumed');
    await putHubTime(store, { issuedAt: T0 + 86_400_000, receivedAt: T0, mono: 0, bootId: 'x' });
    assert.equal(t.judge().reason, 'below_hub_floor');
  });
});

// The battery model, VE.Direct over a reconnecting serial link with injected faults (silence, bad
// checksums, HEX frames, unplug/replug), and the sim power rig: all on fake timers.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { deviceConfigFromArgs, formatReading } from '../../cli/commands/power.ts';
import { backoffDelay } from '../../core/backoff.ts';
import { getBoardProfile } from '../../hardware/boards/index.ts';
import { VeDirectSource } from '../../hardware/drivers/vedirect.ts';
import { createPowerSources, createRealSource } from '../../hardware/factories/power-sources.ts';
import type { PowerReading } from '../../hardware/power/reading.ts';
import { SocEstimator } from '../../hardware/power/soc-estimator.ts';
import { type LinkState, ReconnectingLink, serialBackoff } from '../../hardware/serial/reconnecting-link.ts';
import { BatteryModel } from '../../hardware/sim/battery-model.ts';
import { SimSerialPair } from '../../hardware/sim/serial-pair.ts';
import { VeDirectSimulator } from '../../hardware/sim/vedirect-sim.ts';

const NOON = Date.UTC(2024, 5, 1, 12);
const HOUR = 3_600_000;

describe('BatteryModel', () => {
  test('charges by day, discharges by night, never leaves 0–100 %', () => {
    const b = new BatteryModel({
      socPct: 50,
      loadW: 20,
      solarPeakW: 300,
      startAtMs: Date.UTC(2024, 5, 1, 6),
    });
    const morning = b.snapshot();
    assert.equal(morning.chargeState, 'off');
    const noon = b.step(6 * HOUR);
    assert.ok(noon.socPct > 50, `${noon.socPct}`);
    assert.ok(noon.solarW > 0 && noon.batteryA !== 0);
    const night = b.step(8 * HOUR);
    assert.equal(night.solarW, 0);
    assert.ok(night.batteryA < 0);
    assert.equal(night.chargeState, 'off');
    b.setSocPct(0.5);
    const empty = b.step(10 * HOUR);
    assert.equal(empty.socPct, 0);
    assert.equal(empty.loadW, 0, 'an empty battery carries no load');
  });

  test('energy balance: solar = load + battery while charging; yields roll over at midnight', () => {
    const b = new BatteryModel({ socPct: 40, loadW: 30, startAtMs: NOON });
    b.setSolarW(200);
    const s = b.snapshot();
    assert.ok(Math.abs(s.solarW - (s.loadW + s.batteryA * s.batteryV)) < 0.5);
    assert.equal(s.chargeState, 'bulk');
    b.step(HOUR);
    assert.ok(b.snapshot().yieldTodayWh > 199 && b.snapshot().yieldTodayWh < 201);
    b.setSolarW(undefined);
    b.step(13 * HOUR); // past midnight
    assert.ok(b.snapshot().yieldTodayWh < 1, 'today resets at midnight');
    assert.ok(b.snapshot().yieldTotalWh > 200);
  });

  test('absorption then float as it fills; load switch; bad input is refused and changes nothing', () => {
    const b = new BatteryModel({ socPct: 95, loadW: 10, startAtMs: NOON });
    b.setSolarW(300);
    assert.equal(b.snapshot().chargeState, 'absorption');
    b.step(10 * HOUR);
    assert.equal(b.snapshot().chargeState, 'float');
    b.setLoadOn(false);
    assert.equal(b.snapshot().loadW, 0);
    const before = b.snapshot();
    assert.throws(() => b.setSocPct(101), { code: 'BAD_REQUEST' });
    assert.throws(() => b.setLoadW(-1), { code: 'BAD_REQUEST' });
    assert.throws(() => b.step(Number.NaN), { code: 'BAD_REQUEST' });
    assert.deepEqual(b.snapshot(), before);
  });

  test('sync() follows the clock times speed', () => {
    let now = 0;
    const b = new BatteryModel({ startAtMs: NOON, clock: () => now, speed: 60 });
    now = 60_000;
    assert.equal(b.sync().atMs, NOON + HOUR);
  });
});

describe('SOC estimator (INA2xx)', () => {
  test('waits for a rest voltage, then counts coulombs', () => {
    const e = new SocEstimator({ chemistry: 'lifepo4', cellsInSeries: 4, capacityAh: 100 });
    assert.equal(e.update(13.6, 10, 0), undefined, 'a charging voltage is not a SOC');
    const seeded = e.update(13.16, 0.5, 1000);
    assert.ok(seeded !== undefined && seeded > 40 && seeded < 60, `${seeded}`);
    const later = e.update(13.5, 10, 1000 + HOUR);
    assert.ok(
      later !== undefined && Math.abs(later - (seeded + 10)) < 0.01,
      'one hour at 10 A into 100 Ah is 10 %',
    );
  });
});

describe('serial backoff', () => {
  test('grows by the factor and stops at the cap; defaults 250 ms to 30 s', () => {
    assert.deepEqual(serialBackoff(), { initialMs: 250, maxMs: 30_000, factor: 2 });
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 10].map((a) =>
        backoffDelay(a, serialBackoff({ initialDelayMs: 250, maxDelayMs: 4000 })),
      ),
      [250, 500, 1000, 2000, 4000, 4000, 4000],
    );
  });
});

describe('VE.Direct source over a reconnecting link (fake timers)', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: NOON }));
  afterEach(() => mock.timers.reset());

  async function advance(ms: number, step = 50): Promise<void> {
    for (let t = 0; t < ms; t += step) {
      mock.timers.tick(step);
      // let queued microtasks (serial delivery, async opens) run
      for (let i = 0; i < 5; i++) await Promise.resolve();
    }
  }

  async function setup(kind: 'mppt' | 'bmv' = 'mppt') {
    const battery = new BatteryModel({ socPct: 66, loadW: 12, startAtMs: NOON });
    battery.setSolarW(90);
    const pair = new SimSerialPair('/dev/serial/by-id/usb-VictronEnergy_BV_VE_Direct_cable_SIM-if00-port0');
    const device = new VeDirectSimulator({ link: pair.device, battery, kind });
    const link = new ReconnectingLink(pair.host.path, () => pair.hostLink(), {
      initialDelayMs: 250,
      maxDelayMs: 2000,
    });
    const states: LinkState[] = [];
    link.onState((s) => states.push(s));
    const source = new VeDirectSource({ device: 'mppt', link });
    const readings: PowerReading[] = [];
    source.onReading((r) => readings.push(r));
    await device.start();
    await source.start();
    await advance(1100);
    return { battery, pair, device, link, states, source, readings };
  }

  test('normal operation: readings follow the battery model', async () => {
    const { source, battery } = await setup();
    const r = source.latest()!;
    assert.equal(r.stale, false);
    assert.equal(r.driver, 'vedirect');
    assert.ok(Math.abs(r.batteryV! - battery.snapshot().batteryV) < 0.002);
    assert.equal(r.solarW, 90);
    assert.equal(r.chargeState, 'bulk');
    assert.ok(Math.abs(r.loadW! - 12) < 0.1);
    await source.stop();
  });

  test('silence → stale after three periods, recovery when blocks return', async () => {
    const { source, device } = await setup();
    device.inject({ silent: true });
    await advance(2000);
    assert.equal(source.latest()!.stale, false, 'two periods are not yet stale');
    await advance(1500);
    assert.equal(source.latest()!.stale, true);
    assert.match(source.latest()!.staleReason!, /no valid VE.Direct block for 3 s/);
    device.clearFaults();
    await advance(1100);
    assert.equal(source.latest()!.stale, false);
    await source.stop();
  });

  test('bad checksums are rejected (stale while only bad ones arrive); HEX frames and ":" checksums are fine', async () => {
    const { source, device } = await setup();
    device.inject({ badChecksums: 5 });
    await advance(4100);
    assert.equal(source.latest()!.stale, true);
    assert.match(source.latest()!.staleReason!, /rejected so far/);
    await advance(2000);
    assert.equal(source.latest()!.stale, false);
    const rejected = source.parser.stats.rejectedChecksum;
    assert.equal(rejected, 5);
    device.inject({ hexAfterChecksum: true, colonChecksum: true, garbage: 2 });
    const accepted = source.parser.stats.accepted;
    await advance(3000);
    assert.equal(source.parser.stats.accepted - accepted, 3);
    assert.ok(source.parser.stats.hexFrames >= 3);
    assert.equal(source.parser.stats.rejectedChecksum, rejected, 'nothing more rejected');
    assert.equal(source.latest()!.stale, false);
    await source.stop();
  });

  test('unplug → stale at once, reopen with growing backoff, replug → recovers by itself', async () => {
    const { source, pair, states } = await setup();
    pair.unplug();
    await advance(0 + 50);
    assert.equal(source.latest()!.stale, true);
    assert.match(source.latest()!.staleReason!, /serial link lost: EIO/);
    await advance(6000);
    const retries = states
      .filter((s) => s.state === 'closed' && s.retryInMs !== undefined)
      .map((s) => (s as { retryInMs: number }).retryInMs);
    assert.deepEqual(retries.slice(0, 5), [250, 500, 1000, 2000, 2000]);
    assert.match(source.latest()!.staleReason!, /cannot open .*ENOENT/);
    pair.replug();
    await advance(3500);
    assert.equal(states.at(-1)!.state, 'open');
    assert.equal(source.latest()!.stale, false);
    // After valid frames the backoff starts small again.
    pair.unplug();
    await advance(100);
    const after = states.filter((s) => s.state === 'closed' && s.retryInMs !== undefined).at(-1) as {
      retryInMs: number;
    };
    assert.equal(after.retryInMs, 250);
    await source.stop();
  });

  test('a BMV/SmartShunt sends two blocks that merge into one reading', async () => {
    const { source } = await setup('bmv');
    const r = source.latest()!;
    assert.equal(r.socPct, 66);
    assert.ok(r.batteryTempC !== undefined);
    assert.equal(typeof (r.extras?.['history'] as Record<string, number> | undefined)?.['H1'], 'number');
    assert.equal(r.solarW, undefined);
    await source.stop();
  });
});

describe('createPowerSources', () => {
  test('sim: every device of the sim profile reads the same battery', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: NOON });
    try {
      const battery = new BatteryModel({ socPct: 47, loadW: 18, startAtMs: NOON });
      const profile = getBoardProfile('sim');
      profile.powerDevices.push(
        { name: 'rover', driver: 'renogy', port: 'sim' },
        { name: 'tracer', driver: 'epever', port: 'sim' },
        { name: 'ups', driver: 'ina219', bus: 1, address: 0x42, shuntOhms: 0.01, maxCurrentA: 8 },
      );
      const sources = createPowerSources(profile, { sim: true, battery, pollMs: 100 });
      for (const s of sources) await s.start();
      for (let t = 0; t < 600; t += 10) {
        mock.timers.tick(10);
        for (let i = 0; i < 10; i++) await Promise.resolve();
      }
      const v = battery.snapshot().batteryV;
      for (const s of sources) {
        const r = s.latest();
        assert.ok(r && !r.stale, `${s.device}: ${JSON.stringify(r)}`);
        const pack = r.driver === 'max17048' ? r.batteryV! * 4 : r.batteryV!;
        assert.ok(Math.abs(pack - v) < 0.06, `${s.device} ${pack} vs ${v}`);
      }
      for (const s of sources) await s.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test('real: nothing is opened at construction; a missing serial driver port is a coded error', () => {
    for (const c of getBoardProfile('pi4').powerDevices)
      assert.equal(createRealSource(c).latest(), undefined);
    assert.throws(() => createRealSource({ name: 'x', driver: 'renogy' }), { code: 'BAD_REQUEST' });
  });
});

describe('popkit power read arguments', () => {
  test('valid combinations', () => {
    const a = deviceConfigFromArgs([
      '--driver',
      'ina226',
      '--bus',
      '7',
      '--address',
      '0x41',
      '--once',
      '--json',
    ]);
    assert.deepEqual(a.config, { name: 'ina226', driver: 'ina226', bus: 7, address: 0x41 });
    assert.equal(a.once, true);
    assert.equal(a.json, true);
    const b = deviceConfigFromArgs(['--driver', 'renogy', '--port', '/dev/ttyUSB0', '--unit', 'scan']);
    assert.equal(b.config.unitId, 'scan');
    assert.equal(deviceConfigFromArgs(['--driver', 'vedirect', '--sim']).config.port, 'sim');
  });

  test('bad input is a coded error', () => {
    for (const argv of [
      [],
      ['--driver', 'acme'],
      ['--driver', 'vedirect'],
      ['--driver', 'ina219', '--port', '/dev/ttyUSB0'],
      ['--driver', 'renogy', '--port', 'x', '--bus', '1'],
      ['--driver', 'ina219', '--address', '0x99'],
      ['--driver', 'ina219', '--bus', 'one'],
      ['--driver', 'renogy', '--port', 'x', '--unit', '0'],
    ]) {
      assert.throws(() => deviceConfigFromArgs(argv), { code: 'BAD_REQUEST' }, argv.join(' '));
    }
    assert.throws(() => deviceConfigFromArgs(['--driver', 'ina219', '--frobnicate']));
  });

  test('human output shows units and staleness', () => {
    const line = formatReading({
      device: 'mppt',
      driver: 'vedirect',
      batteryV: 12.5,
      solarW: 80,
      chargeState: 'bulk',
      stale: true,
      staleReason: 'no valid VE.Direct block for 3 s',
      at: '2024-06-01T12:00:00.000Z',
    });
    assert.match(line, /12\.50 V.*solar 80 W.*bulk.*STALE: no valid VE.Direct block/);
  });
});

// INA219 / INA226 / MAX17048 drivers against the simulated I2C bus: calibration maths, SMBus byte
// order, signed registers, brown-out re-calibration, NACK and stuck-value faults as status.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { computeCalibration, Ina2xx, InaSource } from '../../hardware/drivers/ina2xx.ts';
import { Max17048, Max17048Source } from '../../hardware/drivers/max17048.ts';
import { readRegisterBE, swap16, toSigned16, writeRegisterBE } from '../../hardware/i2c/words.ts';
import { BatteryModel } from '../../hardware/sim/battery-model.ts';
import { Ina219Model, Ina226Model, Max17048Model, SimI2cBus } from '../../hardware/sim/i2c-sim.ts';

function world(opts: { socPct?: number; loadW?: number; solarW?: number } = {}) {
  const battery = new BatteryModel({ socPct: opts.socPct ?? 55, loadW: opts.loadW ?? 24, clock: () => 0 });
  battery.setSolarW(opts.solarW ?? 0);
  const bus = new SimI2cBus(1)
    .attach(0x40, new Ina226Model(battery, 0.002))
    .attach(0x42, new Ina219Model(battery, 0.01))
    .attach(0x36, new Max17048Model(battery, 4));
  return { battery, bus };
}

describe('SMBus word order', () => {
  test('readWord returns the first wire byte low; drivers swap to the chip order', async () => {
    const { bus } = world();
    // INA226 die id 0x2260 goes out 0x22 then 0x60; readWord gives 0x6022.
    assert.equal(await bus.readWord(0x40, 0xff), 0x6022);
    assert.equal(await readRegisterBE(bus, 0x40, 0xff), 0x2260);
    await writeRegisterBE(bus, 0x40, 0x05, 0x1234);
    assert.equal(await bus.readWord(0x40, 0x05), 0x3412);
    assert.equal(await readRegisterBE(bus, 0x40, 0x05), 0x1234, 'round trip through the register model');
    assert.equal(swap16(0xabcd), 0xcdab);
    assert.equal(toSigned16(0xfffe), -2);
    assert.equal(toSigned16(0x7fff), 32767);
  });
});

describe('calibration', () => {
  test('INA219: 0.04096 / (I_LSB × R), bit 0 cleared, PGA from the shunt drop', () => {
    const c = computeCalibration('ina219', 0.1, 3.2);
    // I_LSB = 3.2 A / 32768 = 97.66 µA → 0.04096 / (97.66e-6 × 0.1) = 4194.3 → 4194 (even).
    assert.equal(c.calibration, 4194);
    assert.equal(c.config, 0x399f, 'the kernel default at PGA /8');
    assert.ok(Math.abs(c.currentLsb - 0.04096 / (4194 * 0.1)) < 1e-15, 'LSB follows the written value');
    assert.ok(Math.abs(c.powerLsb - 20 * c.currentLsb) < 1e-15);
    assert.equal(computeCalibration('ina219', 0.08, 3.2768).calibration, 5120, 'a 100 µA LSB');
    const small = computeCalibration('ina219', 0.01, 2);
    assert.equal(small.config & 0x1800, 0x0000, '20 mV full scale fits PGA /1');
    assert.equal(small.calibration & 1, 0);
    assert.throws(() => computeCalibration('ina219', 0.1, 5), { code: 'BAD_REQUEST' });
    assert.throws(() => computeCalibration('ina219', 0, 1), { code: 'BAD_REQUEST' });
  });

  test('INA226: 0.00512 / (I_LSB × R)', () => {
    const c = computeCalibration('ina226', 0.002, 20);
    assert.equal(c.calibration, Math.trunc(0.00512 / ((20 / 32768) * 0.002)));
    assert.ok(Math.abs(c.powerLsb / c.currentLsb - 25) < 1e-9);
    assert.throws(() => computeCalibration('ina226', 0.01, 20), { code: 'BAD_REQUEST' });
  });
});

describe('INA2xx against register models', () => {
  for (const [chip, address, ohms, maxA] of [
    ['ina219', 0x42, 0.01, 8],
    ['ina226', 0x40, 0.002, 20],
  ] as const) {
    test(`${chip}: volts, signed amps and power match the battery model`, async () => {
      const { battery, bus } = world({ loadW: 40 });
      const ina = new Ina2xx(chip, bus, address, ohms, maxA);
      await ina.init();
      assert.equal(await readRegisterBE(bus, address, 0x05), ina.cal.calibration);
      const m = await ina.read();
      const s = battery.snapshot();
      assert.ok(s.batteryA < 0, 'discharging at night');
      assert.ok(Math.abs(m.busV - s.batteryV) < 0.02, `${m.busV} vs ${s.batteryV}`);
      assert.ok(m.currentA! < 0, 'negative current survives the signed register');
      assert.ok(Math.abs(m.currentA! - s.batteryA) < 0.05, `${m.currentA} vs ${s.batteryA}`);
      assert.ok(Math.abs(m.powerW! - Math.abs(s.batteryA * s.batteryV)) < 0.6, `${m.powerW}`);
      assert.equal(m.recalibrated, false);
    });

    test(`${chip}: brown-out (calibration reads 0) is detected and re-written`, async () => {
      const { bus } = world({ loadW: 40 });
      const ina = new Ina2xx(chip, bus, address, ohms, maxA);
      await ina.init();
      bus.injectBrownOut(address);
      assert.equal(await readRegisterBE(bus, address, 0x05), 0);
      assert.equal(await readRegisterBE(bus, address, 0x04), 0, 'without calibration the chip reports 0 A');
      const m = await ina.read();
      assert.equal(m.recalibrated, true);
      assert.equal(ina.recalibrations, 1);
      assert.ok(m.currentA! < -1);
      assert.equal(await readRegisterBE(bus, address, 0x05), ina.cal.calibration);
    });
  }

  // TI SBOS448 (INA219), Bus Voltage Register (02h) bit 0 and TI SBOS547 (INA226), Mask/Enable
  // Register (06h) bit 2: OVF, the current or power arithmetic went out of range. The register
  // models compute it from their own arithmetic, so a current past the calibrated range sets it.
  for (const [chip, address, ohms, maxA] of [
    ['ina219', 0x42, 0.01, 8],
    ['ina226', 0x40, 0.002, 20],
  ] as const) {
    test(`${chip}: a current past the calibrated range sets OVF in the model; the driver gives no current or power`, async () => {
      // ~160 W of load on a 12.8 V battery is past 8 A (INA219) but within 20 A (INA226) at first.
      const { battery, bus } = world({ loadW: 160 });
      const tight = new Ina2xx(chip, bus, address, ohms, chip === 'ina219' ? maxA : 8);
      await tight.init();
      assert.ok(battery.snapshot().batteryA < -9, `${battery.snapshot().batteryA} A`);
      if (chip === 'ina219') {
        assert.equal((await readRegisterBE(bus, address, 0x02)) & 1, 1, 'OVF in the bus register');
      } else {
        assert.equal((await readRegisterBE(bus, address, 0x06)) & 4, 4, 'OVF in Mask/Enable');
      }
      const m = await tight.read();
      assert.equal(m.overflow, true);
      assert.equal(m.currentA, undefined);
      assert.equal(m.powerW, undefined);
      assert.ok(Math.abs(m.busV - battery.snapshot().batteryV) < 0.02, 'the voltage is still a value');
      // The same load under a calibration that covers it: no flag, and the model and driver agree.
      const roomy = new Ina2xx(chip, bus, address, ohms, chip === 'ina219' ? 30 : 40);
      await roomy.init();
      const ok = await roomy.read();
      assert.equal(ok.overflow, false);
      assert.ok(Math.abs(ok.currentA! - battery.snapshot().batteryA) < 0.1, `${ok.currentA}`);
    });
  }

  test('hostile flag registers: a Mask/Enable stuck at 0xFFFF or a bus word with bit 0 set is an overflow', async () => {
    const { bus } = world({ loadW: 40 });
    const ina226 = new Ina2xx('ina226', bus, 0x40, 0.002, 20);
    await ina226.init();
    bus.injectStuck(0x40, 0x06, 0xffff);
    const a = await ina226.read();
    assert.equal(a.overflow, true);
    assert.equal(a.currentA, undefined);
    bus.clearStuck(0x40);
    assert.equal((await ina226.read()).overflow, false, 'the flag clears with the register');
    const ina219 = new Ina2xx('ina219', bus, 0x42, 0.01, 8);
    await ina219.init();
    bus.injectStuck(0x42, 0x02, 0x5dc3); // 12 V, CNVR, OVF
    const b = await ina219.read();
    assert.deepEqual([b.overflow, b.currentA, b.powerW, b.busV], [true, undefined, undefined, 12]);
    bus.injectStuck(0x42, 0x02, 0x5dc2); // CNVR alone is no overflow
    assert.equal((await ina219.read()).overflow, false);
  });

  test('INA226 init refuses a chip that is not one', async () => {
    const { bus } = world();
    bus.injectStuck(0x40, 0xff, 0x1234);
    await assert.rejects(new Ina2xx('ina226', bus, 0x40, 0.002, 20).init(), { code: 'HW_UNAVAILABLE' });
  });
});

describe('MAX17048', () => {
  test('VCELL, SOC, CRATE sign and alerts; alert flags are cleared after reading', async () => {
    const { battery, bus } = world({ socPct: 18, loadW: 60 });
    const g = new Max17048(bus);
    const r = await g.read();
    const s = battery.snapshot();
    assert.ok(Math.abs(r.cellV - s.batteryV / 4) < 0.001);
    assert.ok(Math.abs(r.socPct - 18) < 0.01);
    assert.ok(r.chargeRatePctPerH < 0, 'discharging gives a negative CRATE');
    assert.equal(r.version, 0x0012);
    assert.ok(r.alerts.includes('reset'), 'RI set after power-on');
    assert.equal(r.wasReset, true);
    const again = await g.read();
    assert.equal(again.wasReset, false, 'RI cleared by the driver');
    await g.setEmptyAlertPct(20);
    assert.ok((await g.read()).alerts.includes('SOC low'));
    await assert.rejects(g.setEmptyAlertPct(40), { code: 'BAD_REQUEST' });
    await g.powerOnReset();
    assert.equal((await g.read()).wasReset, true);
  });
});

describe('I2C sources: faults are statuses', () => {
  test('NACKs: the first failed poll before any good one is stale; a recovery clears it', async () => {
    const { bus } = world();
    bus.injectNack(0x40, 2);
    let now = 1_000;
    const src = new InaSource({
      device: 'shunt',
      chip: 'ina226',
      bus,
      address: 0x40,
      shuntOhms: 0.002,
      maxCurrentA: 20,
      pollMs: 1000,
      clock: () => now,
    });
    await src.pollOnce();
    assert.equal(src.latest()?.stale, true);
    assert.match(src.latest()!.staleReason!, /HW_I2C_NACK/);
    now += 1000;
    await src.pollOnce();
    assert.equal(src.latest()?.stale, true);
    now += 1000;
    await src.pollOnce();
    assert.equal(src.latest()?.stale, false);
    assert.ok(src.latest()!.batteryV! > 10);
    // After good readings, one NACK is tolerated; three in a row go stale.
    bus.injectNack(0x40, 1);
    now += 1000;
    await src.pollOnce();
    assert.equal(src.latest()?.stale, false);
    bus.injectNack(0x40, Number.POSITIVE_INFINITY);
    for (let i = 0; i < 3; i++) {
      now += 1000;
      await src.pollOnce();
    }
    assert.equal(src.latest()?.stale, true);
    assert.ok(src.latest()!.batteryV! > 10, 'last values kept');
    bus.injectNack(0x40, 0);
    await src.pollOnce();
    assert.equal(src.latest()?.stale, false);
  });

  test('a stuck register turns the reading stale; the driver never crashes', async () => {
    const { bus } = world();
    let now = 0;
    const src = new Max17048Source({ device: 'gauge', bus, pollMs: 100, stuckAfter: 5, clock: () => now });
    await src.pollOnce();
    assert.equal(src.latest()?.stale, false);
    bus.injectStuck(0x36, 0x02, 0xa000);
    for (let i = 0; i < 10; i++) {
      now += 100;
      await src.pollOnce();
    }
    assert.equal(src.latest()?.stale, true);
    assert.match(src.latest()!.staleReason!, /stuck/);
    bus.clearStuck(0x36);
    now += 100;
    await src.pollOnce();
    assert.equal(src.latest()?.stale, false);
  });

  test('an overflowed reading publishes the voltage but no current, power or charge estimate', async () => {
    const { bus } = world({ loadW: 160 });
    let now = 0;
    const src = new InaSource({
      device: 'ups',
      chip: 'ina219',
      bus,
      address: 0x42,
      shuntOhms: 0.01,
      maxCurrentA: 8,
      chemistry: 'lifepo4',
      cellsInSeries: 4,
      clock: () => now,
    });
    await src.pollOnce();
    const r = src.latest()!;
    assert.equal(r.stale, false);
    assert.ok(r.batteryV! > 10);
    assert.equal(r.batteryA, undefined);
    assert.equal(r.socPct, undefined);
    assert.equal(r.extras?.['overflow'], true);
    assert.equal('powerW' in (r.extras ?? {}), false);
    now += 1000;
    // the same chip under a calibration that fits the current
    const roomy = new InaSource({
      device: 'ups2',
      chip: 'ina219',
      bus,
      address: 0x42,
      shuntOhms: 0.01,
      maxCurrentA: 30,
      clock: () => now,
    });
    await roomy.pollOnce();
    assert.ok(roomy.latest()!.batteryA! < -9);
    assert.equal(roomy.latest()!.extras?.['overflow'], false);
    assert.equal(typeof roomy.latest()!.extras?.['powerW'], 'number');
  });

  test('bad construction parameters are coded errors', () => {
    const { bus } = world();
    assert.throws(
      () =>
        new InaSource({ device: 'x', chip: 'ina219', bus, address: 0x99, shuntOhms: 0.1, maxCurrentA: 1 }),
      {
        code: 'BAD_REQUEST',
      },
    );
    assert.throws(
      () =>
        new InaSource({ device: 'x', chip: 'ina219', bus, address: 0x40, shuntOhms: 0.1, maxCurrentA: 9 }),
      {
        code: 'BAD_REQUEST',
      },
    );
  });
});

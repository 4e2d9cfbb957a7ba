// Modbus RTU framing (CRC vectors from docs/hardware-facts.md#crc-test-vectors), Renogy and EPEver decoding, and the real
// drivers against the simulated controllers over an in-process serial pair.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KitError } from '../../core/errors.ts';
import { decodeEpever, EpeverSource, epeverChargeState } from '../../hardware/drivers/epever-tracer.ts';
import {
  crc16modbus,
  crcOk,
  encodeReadRequest,
  encodeReadResponse,
  encodeWriteSingle,
  type ModbusFrame,
  ModbusRtuMaster,
  ModbusRtuParser,
} from '../../hardware/drivers/modbus-rtu.ts';
import {
  decodeRenogyStatus,
  discoveryOrder,
  LIKELY_UNITS,
  RenogyRover,
  RenogySource,
  SWEEP_CHUNK,
  signMagnitude8,
} from '../../hardware/drivers/renogy-rover.ts';
import type { PowerReading } from '../../hardware/power/reading.ts';
import { BatteryModel } from '../../hardware/sim/battery-model.ts';
import { EpeverSimulator, RenogySimulator } from '../../hardware/sim/modbus-sims.ts';
import { SimSerialPair } from '../../hardware/sim/serial-pair.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex').toUpperCase().replace(/(..)/g, '$1 ').trim();

describe('CRC-16/Modbus', () => {
  test('CRC vectors (docs/hardware-facts.md): Renogy load on / load off at unit 255', () => {
    assert.equal(hex(encodeWriteSingle(0xff, 0x010a, 1)), 'FF 06 01 0A 00 01 7C 2A');
    assert.equal(hex(encodeWriteSingle(0xff, 0x010a, 0)), 'FF 06 01 0A 00 00 BD EA');
  });

  test('the catalogue check value and a well-known read request', () => {
    assert.equal(crc16modbus(Buffer.from('123456789')), 0x4b37);
    // Read 1 holding register at 0x0000 from unit 1: 01 03 00 00 00 01 84 0A.
    assert.equal(hex(encodeReadRequest(1, 3, 0, 1)), '01 03 00 00 00 01 84 0A');
    assert.ok(crcOk(Buffer.from('FF06010A00017C2A', 'hex')));
    assert.ok(!crcOk(Buffer.from('FF06010A00017C2B', 'hex')));
  });

  test('bad arguments are coded errors', () => {
    assert.throws(() => encodeReadRequest(1, 3, 0, 0), { code: 'BAD_REQUEST' });
    assert.throws(() => encodeReadRequest(1, 3, 0x10000, 1), { code: 'BAD_REQUEST' });
    assert.throws(() => encodeWriteSingle(256, 1, 1), { code: 'BAD_REQUEST' });
  });
});

describe('RTU stream parser', () => {
  test('resyncs across noise and split chunks, and drops frames with a bad CRC', () => {
    const frames: ModbusFrame[] = [];
    const p = new ModbusRtuParser('master', (f) => frames.push(f));
    const good = encodeReadResponse(1, 3, [0x1234, 0xfffe]);
    const corrupt = Buffer.from(good);
    corrupt[4] = corrupt[4]! ^ 1;
    const stream = Buffer.concat([
      Buffer.of(0x00, 0x99, 0x03),
      corrupt,
      good,
      encodeWriteSingle(1, 0x10a, 1),
    ]);
    for (let i = 0; i < stream.length; i += 3) p.push(stream.subarray(i, i + 3));
    assert.equal(frames.length, 2);
    assert.deepEqual(frames[0]!.kind === 'read-response' && frames[0]!.registers, [0x1234, 0xfffe]);
    assert.equal(frames[1]!.kind, 'write-single');
    assert.ok(p.stats.crcErrors >= 1);
  });

  test('slave role reads requests', () => {
    const frames: ModbusFrame[] = [];
    const p = new ModbusRtuParser('slave', (f) => frames.push(f));
    p.push(encodeReadRequest(255, 3, 0x100, 35));
    assert.deepEqual(
      frames.map((f) => f.kind === 'read-request' && [f.unit, f.fc, f.address, f.count]),
      [[255, 3, 0x100, 35]],
    );
  });
});

describe('Renogy Rover decoding', () => {
  test('sign-magnitude temperatures', () => {
    assert.equal(signMagnitude8(0x19), 25);
    assert.equal(signMagnitude8(0x85), -5);
    assert.equal(signMagnitude8(0x80), -0);
  });

  test('a 0x0100 block decodes with scales, 32-bit totals high word first, state and faults', () => {
    const r = new Array<number>(0x23).fill(0);
    const set = (reg: number, v: number) => {
      r[reg - 0x100] = v;
    };
    set(0x100, 87);
    set(0x101, 132); // 13.2 V
    set(0x102, 512); // 5.12 A
    set(0x103, (0x1e << 8) | 0x83); // controller 30 °C, battery -3 °C
    set(0x104, 132);
    set(0x105, 120);
    set(0x106, 16);
    set(0x107, 185);
    set(0x108, 380);
    set(0x109, 70);
    set(0x113, 1234); // Wh today → 1.234 kWh
    set(0x114, 7); // Wh consumed today → 0.007 kWh
    set(0x11c, 0x0001);
    set(0x11d, 0x86a0); // 0x000186A0 = 100000 Wh → 100 kWh
    set(0x11e, 0x0000);
    set(0x11f, 0x03e8); // 1000 Wh → 1 kWh
    set(0x120, 0x8005); // load on, floating
    set(0x121, 0x0004); // bit 18: battery under-voltage warning
    const s = decodeRenogyStatus(r);
    assert.equal(s.socPct, 87);
    assert.equal(s.batteryV, 13.2);
    assert.equal(s.chargeA, 5.12);
    assert.equal(s.controllerTempC, 30);
    assert.equal(s.batteryTempC, -3);
    assert.equal(s.pvV, 18.5);
    assert.equal(s.pvA, 3.8);
    assert.equal(s.pvW, 70);
    // Renogy's protocol document counts these registers in Wh (not kWh/10000): read 10× low before.
    assert.equal(s.today.generationKWh, 1.234);
    assert.equal(s.today.consumptionKWh, 0.007);
    assert.equal(s.totalGenerationKWh, 100);
    assert.equal(s.totalConsumptionKWh, 1);
    assert.equal(s.loadOn, true);
    assert.equal(s.chargeState, 'float');
    assert.deepEqual(s.faults, ['battery under-voltage warning']);
    assert.throws(() => decodeRenogyStatus([1, 2, 3]), { code: 'BAD_REQUEST' });
  });

  test('energy registers at their limits: u16 and u32 full scale stay exact Wh / 1000', () => {
    const r = new Array<number>(0x23).fill(0);
    r[0x113 - 0x100] = 0xffff; // 65535 Wh
    r[0x11c - 0x100] = 0xffff;
    r[0x11d - 0x100] = 0xffff; // 4294967295 Wh, high word first
    r[0x11e - 0x100] = 0x0001; // high word only: 65536 Wh (a low-word-first reader would say 1 Wh)
    const s = decodeRenogyStatus(r);
    assert.equal(s.today.generationKWh, 65.535);
    assert.equal(s.totalGenerationKWh, 4294967.295);
    assert.equal(s.totalConsumptionKWh, 65.536);
    assert.equal(s.today.consumptionKWh, 0);
  });

  test('discovery order tries 1, 16, 255 first and covers 1–247', () => {
    const order = discoveryOrder();
    assert.deepEqual(order.slice(0, 3), [1, 16, 255]);
    assert.equal(new Set(order).size, 248);
    assert.ok(!order.includes(0) && !order.includes(248));
  });

  test('discovery tries the likely ids again after every chunk of the sweep, the unit found last first', () => {
    const order = discoveryOrder(LIKELY_UNITS, 255);
    assert.deepEqual(order.slice(0, 3), [255, 1, 16]);
    // one missed answer costs at most a chunk: never more than SWEEP_CHUNK other ids between two tries of 255
    const at = order.flatMap((u, i) => (u === 255 ? [i] : []));
    for (let k = 1; k < at.length; k++) assert.ok(at[k]! - at[k - 1]! <= SWEEP_CHUNK + 3, `gap at ${at[k]}`);
    assert.ok(order.length - 1 - at[at.length - 1]! <= SWEEP_CHUNK + 2, 'tried again after the last chunk');
    assert.equal(new Set(order).size, 248);
    // an id outside the likely ones found last time leads, once per round
    const other = discoveryOrder([1], 42);
    assert.deepEqual(other.slice(0, 2), [42, 1]);
    assert.equal(new Set(other).size, 247);
    assert.ok(!other.includes(255), 'EPEver: 1–247 only');
  });
});

describe('EPEver decoding', () => {
  test('×100 scaling, 32-bit low word first, signed temperatures, status bits', () => {
    const realtime = new Array<number>(0x12).fill(0);
    realtime[0x00] = 1850; // PV 18.5 V
    realtime[0x01] = 300;
    realtime[0x02] = 0x2710; // 0x3102 low word
    realtime[0x03] = 0x0001; // 0x3103 high word → 0x12710 = 75536 → 755.36 W
    realtime[0x04] = 1325;
    realtime[0x05] = 410;
    realtime[0x0e] = 2000; // load 20 W
    realtime[0x10] = 0xfe0c; // -5.00 °C
    const s = decodeEpever(realtime, 64, [0x0000, (2 << 2) | 1]);
    assert.equal(s.pvV, 18.5);
    assert.equal(s.pvW, 755.36);
    assert.equal(s.batteryV, 13.25);
    assert.equal(s.loadW, 20);
    assert.equal(s.batteryTempC, -5);
    assert.equal(s.socPct, 64);
    assert.equal(s.chargeState, 'bulk');
    assert.equal(epeverChargeState(1 << 2), 'float');
    assert.equal(epeverChargeState(3 << 2), 'equalize');
    assert.equal(epeverChargeState(0x0002), 'fault');
    assert.equal(epeverChargeState(0), 'off');
  });
});

function rig(unitId = 1) {
  const battery = new BatteryModel({ socPct: 72, loadW: 20, startAtMs: Date.UTC(2024, 5, 1, 12) });
  battery.setSolarW(150);
  const pair = new SimSerialPair();
  return { battery, pair, unitId };
}

describe('drivers against simulated controllers (in-process)', () => {
  test('Renogy discovery: an answer the unit missed costs one chunk of the sweep, not the whole sweep', async () => {
    // a master whose unit 255 misses its first probe (a reply later than the timeout), then answers
    const probes: number[] = [];
    let missed = false;
    const master = {
      async readRegisters(unit: number): Promise<number[]> {
        probes.push(unit);
        if (unit !== 255) throw new KitError('HW_STALE', 'no answer');
        if (!missed) {
          missed = true;
          throw new KitError('HW_STALE', 'late answer');
        }
        return [0];
      },
    } as unknown as ModbusRtuMaster;
    const rover = new RenogyRover(master, 1);
    assert.equal(await rover.discover({ units: discoveryOrder() }), 255);
    assert.ok(probes.length <= 3 + SWEEP_CHUNK + 3, `found after ${probes.length} probes`);
    assert.deepEqual(probes.slice(0, 3), [1, 16, 255]);
  });

  test('Renogy: bulk read, info, load off/on through FC 0x06', async () => {
    const { battery, pair } = rig();
    const sim = new RenogySimulator({ link: pair.device, battery, unitId: 1 });
    await sim.start();
    await pair.host.open();
    const master = new ModbusRtuMaster(pair.host, { timeoutMs: 200 });
    const rover = new RenogyRover(master, 1);
    const s = await rover.readStatus();
    assert.equal(s.socPct, 72);
    assert.ok(Math.abs(s.batteryV - battery.snapshot().batteryV) <= 0.06);
    assert.equal(s.pvW, 150);
    assert.equal(s.loadOn, true);
    const info = await rover.readInfo();
    assert.equal(info.model, 'RNG-CTRL-RVR40');
    assert.equal(info.ratedChargeA, 40);
    await rover.setLoad(false);
    assert.equal(battery.snapshot().loadOn, false);
    assert.equal((await rover.readStatus()).loadOn, false);
    await rover.setLoad(true);
    assert.equal(battery.snapshot().loadOn, true);
    await assert.rejects(master.readRegisters(1, 3, 0x2000, 1), { code: 'HW_MODBUS_EXCEPTION' });
    master.detach();
    await sim.stop();
  });

  test('Renogy: the simulator writes energy in Wh and the driver reads back the same kWh (round trip)', async () => {
    const { battery, pair } = rig();
    battery.step(3 * 3600_000); // three simulated hours of 150 W sun: hundreds of Wh
    const snap = battery.snapshot();
    assert.ok(snap.yieldTodayWh > 100, `yield ${snap.yieldTodayWh} Wh`);
    const sim = new RenogySimulator({ link: pair.device, battery, unitId: 1 });
    // the register words themselves: 1 count = 1 Wh
    const regs = sim.statusRegisters(snap);
    assert.equal(regs[0x13], Math.round(snap.yieldTodayWh));
    assert.equal(regs[0x1c]! * 0x10000 + regs[0x1d]!, Math.round(snap.yieldTotalWh));
    await sim.start();
    await pair.host.open();
    const master = new ModbusRtuMaster(pair.host, { timeoutMs: 200 });
    const s = await new RenogyRover(master, 1).readStatus();
    const now = battery.snapshot();
    assert.equal(s.today.generationKWh, Math.round(now.yieldTodayWh) / 1000);
    assert.equal(s.totalGenerationKWh, Math.round(now.yieldTotalWh) / 1000);
    master.detach();
    await sim.stop();
  });

  test('Renogy: discovery finds a unit at 255; a silent unit times out with HW_STALE', async () => {
    const { battery, pair } = rig();
    const sim = new RenogySimulator({ link: pair.device, battery, unitId: 255 });
    await sim.start();
    await pair.host.open();
    const master = new ModbusRtuMaster(pair.host, { timeoutMs: 30 });
    const rover = new RenogyRover(master, 1);
    assert.equal(await rover.discover({ timeoutMs: 30 }), 255);
    assert.equal(rover.unit, 255);
    sim.inject({ silent: true });
    await assert.rejects(rover.readStatus(), { code: 'HW_STALE' });
    sim.clearFaults();
    sim.inject({ badCrc: 1 });
    await assert.rejects(rover.readStatus(), { code: 'HW_STALE' }, 'a bad CRC is no answer');
    assert.equal((await rover.readStatus()).socPct, 72);
    master.detach();
  });

  test('RenogySource and EpeverSource emit normalized readings, then stale on silence', async () => {
    const { battery, pair } = rig();
    const pair2 = new SimSerialPair();
    const r = new RenogySimulator({ link: pair.device, battery });
    const e = new EpeverSimulator({ link: pair2.device, battery });
    await r.start();
    await e.start();
    const rs = new RenogySource({ device: 'rover', link: pair.host, pollMs: 20, timeoutMs: 15 });
    const es = new EpeverSource({ device: 'tracer', link: pair2.host, pollMs: 20, timeoutMs: 15 });
    const seen: PowerReading[] = [];
    rs.onReading((x) => seen.push(x));
    await rs.start();
    await es.start();
    await until(() => rs.latest() !== undefined && es.latest() !== undefined);
    const a = rs.latest()!;
    const b = es.latest()!;
    for (const x of [a, b]) {
      assert.equal(x.stale, false);
      assert.equal(x.socPct, 72);
      assert.equal(x.solarW, 150);
      assert.equal(x.loadW, 20);
      assert.equal(x.chargeState, 'bulk');
      assert.ok(Math.abs(x.batteryV! - battery.snapshot().batteryV) < 0.06);
    }
    r.inject({ silent: true });
    await until(() => rs.latest()?.stale === true);
    assert.match(rs.latest()!.staleReason!, /no valid Modbus answer/);
    assert.equal(rs.latest()!.socPct, 72, 'last values stay, flagged stale');
    r.clearFaults();
    await until(() => rs.latest()?.stale === false);
    await rs.stop();
    await es.stop();
    assert.ok(seen.some((x) => x.stale) && seen.at(-1)!.stale === false);
  });
});

async function until(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

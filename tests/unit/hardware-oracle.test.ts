// The real INA219/INA226/MAX17048, Renogy and EPEver drivers against literal register words and
// frames from tests/fixtures/ (datasheet scales and published readings), never against hardware/sim:
// a scale changed in both a driver and its simulator still fails here.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { decodeEpever, readEpever } from '../../hardware/drivers/epever-tracer.ts';
import { Ina2xx, type InaChip } from '../../hardware/drivers/ina2xx.ts';
import { Max17048 } from '../../hardware/drivers/max17048.ts';
import { encodeWriteSingle, ModbusRtuMaster } from '../../hardware/drivers/modbus-rtu.ts';
import { RenogyRover } from '../../hardware/drivers/renogy-rover.ts';
import type { I2cBus } from '../../hardware/i2c/types.ts';
import type { SerialLink } from '../../hardware/serial/types.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const load = <T>(rel: string): T => JSON.parse(readFileSync(path.join(fixtures, rel), 'utf8')) as T;
const word = (v: string | number): number => (typeof v === 'number' ? v : Number.parseInt(v, 16));

/** Equal to within float rounding of the datasheet arithmetic; one LSB off is far outside it. */
function near(actual: number, expected: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)),
    `${what}: got ${actual}, datasheet says ${expected}`,
  );
}

/**
 * A bus that holds register words as the chip sends them (MSB first) and speaks SMBus word order:
 * readWord's low byte is the first byte on the wire; writeWord sends its low byte first.
 */
class LiteralBus implements I2cBus {
  readonly busNumber = 1;
  readonly writes: Array<[number, number]> = [];
  constructor(
    readonly address: number,
    readonly regs: Map<number, number>,
  ) {}
  async readWord(address: number, command: number): Promise<number> {
    assert.equal(address, this.address);
    const w = this.regs.get(command);
    if (w === undefined) throw new Error(`read of unlisted register 0x${command.toString(16)}`);
    const [first, second] = [w >> 8, w & 0xff];
    return first | (second << 8);
  }
  async writeWord(address: number, command: number, w: number): Promise<void> {
    assert.equal(address, this.address);
    const [first, second] = [w & 0xff, w >> 8];
    const value = (first << 8) | second;
    this.writes.push([command, value]);
    this.regs.set(command, value);
  }
  async readByte(): Promise<number> {
    throw new Error('not used');
  }
  async writeByte(): Promise<void> {
    throw new Error('not used');
  }
  async close(): Promise<void> {}
}

interface InaFixture {
  source: string;
  calibration: { shuntOhms: number; maxCurrentA: number; calibrationRegister: string };
  identity?: { manufacturer: string; dieId: string };
  vectors: Array<{
    name: string;
    /** `maskEnable`: the INA226's register 0x06, which the driver reads for the overflow flag. */
    registers: { shunt: string; bus: string; current: string; power: string; maskEnable?: string };
    /** `null`: the chip flagged a math overflow, so the driver must not give a value. */
    expect: {
      busV: number;
      shuntV: number;
      currentA: number | null;
      powerW: number | null;
      overflow?: boolean;
    };
  }>;
}

for (const [chip, file] of [
  ['ina226', 'i2c/ina226-ti-datasheet.json'],
  ['ina219', 'i2c/ina219-ti-datasheet.json'],
] as Array<[InaChip, string]>) {
  const fx = load<InaFixture>(file);
  describe(`${chip} decodes datasheet register words (${file})`, () => {
    test('source is cited', () => assert.match(fx.source, chip === 'ina226' ? /SBOS547/ : /SBOS448/));
    for (const v of fx.vectors) {
      test(v.name, async () => {
        const regs = new Map<number, number>([
          [0x01, word(v.registers.shunt)],
          [0x02, word(v.registers.bus)],
          [0x03, word(v.registers.power)],
          [0x04, word(v.registers.current)],
        ]);
        if (v.registers.maskEnable !== undefined) regs.set(0x06, word(v.registers.maskEnable));
        if (fx.identity) {
          regs.set(0xfe, word(fx.identity.manufacturer));
          regs.set(0xff, word(fx.identity.dieId));
        }
        const bus = new LiteralBus(0x40, regs);
        const ina = new Ina2xx(chip, bus, 0x40, fx.calibration.shuntOhms, fx.calibration.maxCurrentA);
        await ina.init();
        // the calibration the driver writes is the datasheet's, byte for byte
        assert.deepEqual(
          bus.writes.find(([reg]) => reg === 0x05),
          [0x05, word(fx.calibration.calibrationRegister)],
        );
        const m = await ina.read();
        assert.equal(m.recalibrated, false);
        near(m.busV, v.expect.busV, 'bus V');
        near(m.shuntV, v.expect.shuntV, 'shunt V');
        if (v.expect.currentA === null) assert.equal(m.currentA, undefined, 'no current from an overflow');
        else near(m.currentA!, v.expect.currentA, 'current A');
        if (v.expect.powerW === null) assert.equal(m.powerW, undefined, 'no power from an overflow');
        else near(m.powerW!, v.expect.powerW, 'power W');
        if (v.expect.overflow !== undefined) assert.equal(m.overflow, v.expect.overflow);
      });
    }
  });
}

interface MaxFixture {
  vectors: Array<{
    name: string;
    registers: Record<'vcell' | 'soc' | 'crate' | 'version' | 'status' | 'config', string>;
    expect: { cellV: number; socPct: number; chargeRatePctPerH: number; alerts: string[]; wasReset: boolean };
  }>;
}

describe('max17048 decodes datasheet and published register words (i2c/max17048-maxim-datasheet.json)', () => {
  const fx = load<MaxFixture>('i2c/max17048-maxim-datasheet.json');
  for (const v of fx.vectors) {
    test(v.name, async () => {
      const r = v.registers;
      const bus = new LiteralBus(
        0x36,
        new Map([
          [0x02, word(r.vcell)],
          [0x04, word(r.soc)],
          [0x16, word(r.crate)],
          [0x08, word(r.version)],
          [0x1a, word(r.status)],
          [0x0c, word(r.config)],
        ]),
      );
      const got = await new Max17048(bus).read();
      near(got.cellV, v.expect.cellV, 'VCELL V');
      near(got.socPct, v.expect.socPct, 'SOC %');
      near(got.chargeRatePctPerH, v.expect.chargeRatePctPerH, 'CRATE %/h');
      assert.deepEqual([...got.alerts].sort(), [...v.expect.alerts].sort());
      assert.equal(got.wasReset, v.expect.wasReset);
    });
  }
});

/** CRC-16/Modbus written out bit by bit, apart from the driver's table; checked below on HARDWARE.md's vectors. */
function crcBitwise(bytes: number[]): number {
  let crc = 0xffff;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >> 1) ^ 0xa001 : crc >> 1;
  }
  return crc;
}
const framed = (body: number[]): Buffer => {
  const c = crcBitwise(body);
  return Buffer.from([...body, c & 0xff, c >> 8]);
};
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A serial link that answers literal request bytes with literal reply bytes. */
class ScriptedLink implements SerialLink {
  readonly path = '/dev/literal';
  readonly isOpen = true;
  readonly unanswered: string[] = [];
  private readonly listeners = new Set<(c: Buffer) => void>();
  constructor(private readonly answers: Map<string, Buffer>) {}
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async write(data: Uint8Array): Promise<void> {
    const reply = this.answers.get(Buffer.from(data).toString('hex'));
    if (!reply) {
      this.unanswered.push(Buffer.from(data).toString('hex'));
      return;
    }
    // two chunks, as a UART delivers them
    setImmediate(() => {
      for (const l of this.listeners) l(reply.subarray(0, 5));
      setImmediate(() => {
        for (const l of this.listeners) l(reply.subarray(5));
      });
    });
  }
  onData(cb: (c: Buffer) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }
  onClose(): () => void {
    return () => {};
  }
}

/** Request and reply frames for a read, from the fixture's words (big-endian on the wire). */
function readExchange(unit: number, fc: number, address: number, words: number[]): [string, Buffer] {
  const req = framed([unit, fc, address >> 8, address & 0xff, 0, words.length]);
  const data = words.flatMap((w) => [w >> 8, w & 0xff]);
  return [req.toString('hex'), framed([unit, fc, data.length, ...data])];
}

describe('Modbus RTU framing against literal frames', () => {
  test('the independent CRC reproduces the Renogy load-switch vectors from HARDWARE.md', () => {
    assert.deepEqual(framed([0xff, 0x06, 0x01, 0x0a, 0x00, 0x01]), hex('FF 06 01 0A 00 01 7C 2A'));
    assert.deepEqual(framed([0xff, 0x06, 0x01, 0x0a, 0x00, 0x00]), hex('FF 06 01 0A 00 00 BD EA'));
  });

  test('the driver encodes the load-switch frames byte for byte and accepts their echo', async () => {
    assert.deepEqual(encodeWriteSingle(255, 0x010a, 1), hex('FF 06 01 0A 00 01 7C 2A'));
    assert.deepEqual(encodeWriteSingle(255, 0x010a, 0), hex('FF 06 01 0A 00 00 BD EA'));
    const on = hex('FF 06 01 0A 00 01 7C 2A');
    const off = hex('FF 06 01 0A 00 00 BD EA');
    const link = new ScriptedLink(
      new Map([
        [on.toString('hex'), on],
        [off.toString('hex'), off],
      ]),
    );
    const rover = new RenogyRover(new ModbusRtuMaster(link, { timeoutMs: 1000 }), 255);
    await rover.setLoad(true);
    await rover.setLoad(false);
    assert.deepEqual(link.unanswered, []);
  });
});

interface RenogyFixture {
  request: { unit: number; address: string; count: number };
  registers: Record<string, number | string>;
  expect: Record<string, unknown> & { today: Record<string, number> };
}

describe('Renogy Rover decodes a published RNG-CTRL-RVRPG40 reading (modbus/renogy-rover-rvrpg40-solarthing.json)', () => {
  const fx = load<RenogyFixture>('modbus/renogy-rover-rvrpg40-solarthing.json');
  const start = word(fx.request.address);
  const words = Array.from({ length: fx.request.count }, (_, i) => {
    const key = `0x${(start + i).toString(16).toUpperCase().padStart(4, '0')}`;
    const v = fx.registers[key];
    assert.ok(v !== undefined, `fixture lacks ${key}`);
    return word(v);
  });

  test('one bulk read of 0x0100 over framed bytes gives the published values', async () => {
    const link = new ScriptedLink(new Map([readExchange(fx.request.unit, 3, start, words)]));
    const s = await new RenogyRover(new ModbusRtuMaster(link, { timeoutMs: 1000 }), 1).readStatus();
    assert.deepEqual(link.unanswered, []);
    const { today, ...rest } = fx.expect;
    for (const [k, v] of Object.entries(rest)) {
      assert.deepEqual((s as unknown as Record<string, unknown>)[k], v, k);
    }
    for (const [k, v] of Object.entries(today)) {
      assert.equal((s.today as Record<string, number>)[k], v, `today.${k}`);
    }
  });

  test('a reply with one corrupted data byte is not decoded (times out instead)', async () => {
    const [req, reply] = readExchange(fx.request.unit, 3, start, words);
    const bad = Buffer.from(reply);
    bad[4] = (bad[4] ?? 0) ^ 0x01; // battery SOC low byte
    const link = new ScriptedLink(new Map([[req, bad]]));
    const rover = new RenogyRover(new ModbusRtuMaster(link, { timeoutMs: 150 }), 1);
    await assert.rejects(rover.readStatus(), /no valid Modbus answer/);
  });
});

interface EpeverVectors {
  registers: Record<string, number | string>;
  expect: Record<string, unknown>;
}
interface EpeverFixture extends EpeverVectors {
  requests: Array<{ unit: number; fc: number; address: string; count: number }>;
  protocolVectors: EpeverVectors;
}

function epeverExchanges(fx: EpeverFixture, regs: Record<string, number | string>): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (const r of fx.requests) {
    const start = word(r.address);
    const words = Array.from({ length: r.count }, (_, i) => {
      const v = regs[`0x${(start + i).toString(16).toUpperCase().padStart(4, '0')}`];
      assert.ok(v !== undefined);
      return word(v);
    });
    const [req, reply] = readExchange(r.unit, r.fc, start, words);
    m.set(req, reply);
  }
  return m;
}

describe('EPEver Tracer decodes literal input-register replies (modbus/epever-tracer-solarthing.json)', () => {
  const fx = load<EpeverFixture>('modbus/epever-tracer-solarthing.json');
  for (const [name, set] of [
    ['a published Tracer reading', fx],
    ['the protocol rules: 32-bit low word first, signed temperatures, status bits', fx.protocolVectors],
  ] as Array<[string, EpeverVectors]>) {
    test(name, async () => {
      const link = new ScriptedLink(epeverExchanges(fx, set.registers));
      const s = await readEpever(new ModbusRtuMaster(link, { timeoutMs: 1000 }), 1);
      assert.deepEqual(link.unanswered, []);
      for (const [k, v] of Object.entries(set.expect)) {
        const got = (s as unknown as Record<string, unknown>)[k];
        if (typeof v === 'number') near(got as number, v, k);
        else assert.deepEqual(got, v, k);
      }
    });
  }
});

test('self-check: the comparison catches one scale step off (INA226 1.5 mV, MAX17048 80 µV)', () => {
  assert.throws(() => near(9600 * 0.0015, 12.0, 'bus V'));
  assert.throws(() => near(42143 * 80e-6, 3.292421875, 'VCELL V'));
  // and decodeEpever read with high word first would be caught too
  const swapped = decodeEpever([0, 0, 0x0001, 0x86a0], 0, [0, 0]);
  assert.notEqual(swapped.pvW, 1000);
});

// A simulated I2C bus with register models of the INA219, INA226 and MAX17048. Transfers follow
// SMBus word order (first byte on the wire = low byte of readWord), so the real drivers' byte
// swapping is exercised. Faults: NACK, brown-out reset, stuck register.
import { KitError } from '../../core/errors.ts';
import type { I2cBus } from '../i2c/types.ts';
import { swap16 } from '../i2c/words.ts';
import type { BatteryModel, BatterySnapshot } from './battery-model.ts';

export interface I2cRegisterModel {
  /** 16-bit register value, MSB first as the chip would send it. */
  readRegister(reg: number): number;
  writeRegister(reg: number, value: number): void;
  /** Power-on defaults (what a brown-out leaves behind). */
  reset(): void;
}

interface AttachedDevice {
  model: I2cRegisterModel;
  nackLeft: number;
  stuck: Map<number, number>;
}

export class SimI2cBus implements I2cBus {
  readonly busNumber: number;
  private readonly devices = new Map<number, AttachedDevice>();
  private closed = false;
  transfers = 0;

  constructor(busNumber = 1) {
    this.busNumber = busNumber;
  }

  attach(address: number, model: I2cRegisterModel): this {
    this.devices.set(address, { model, nackLeft: 0, stuck: new Map() });
    return this;
  }

  detach(address: number): void {
    this.devices.delete(address);
  }

  model<T extends I2cRegisterModel>(address: number): T {
    const d = this.devices.get(address);
    if (!d) throw new KitError('NOT_FOUND', `no simulated device at 0x${address.toString(16)}`);
    return d.model as T;
  }

  /** The next `count` transfers to `address` are not acknowledged (Infinity: until cleared with 0). */
  injectNack(address: number, count = 1): void {
    const d = this.devices.get(address);
    if (d) d.nackLeft = count;
  }

  /** Brown-out: the chip loses its configuration and calibration. */
  injectBrownOut(address: number): void {
    this.devices.get(address)?.model.reset();
  }

  /** The register reads `value` whatever happens, until `clearStuck`. */
  injectStuck(address: number, reg: number, value: number): void {
    this.devices.get(address)?.stuck.set(reg, value & 0xffff);
  }

  clearStuck(address: number, reg?: number): void {
    const d = this.devices.get(address);
    if (!d) return;
    if (reg === undefined) d.stuck.clear();
    else d.stuck.delete(reg);
  }

  private dev(address: number, what: string): AttachedDevice {
    if (this.closed) throw new KitError('HW_UNAVAILABLE', `I2C bus ${this.busNumber} is closed`);
    this.transfers++;
    const d = this.devices.get(address);
    if (!d) throw nack(this.busNumber, address, what);
    if (d.nackLeft > 0) {
      d.nackLeft--;
      throw nack(this.busNumber, address, what);
    }
    return d;
  }

  async readWord(address: number, command: number): Promise<number> {
    const d = this.dev(address, `read 0x${command.toString(16)}`);
    const v = d.stuck.get(command) ?? d.model.readRegister(command) & 0xffff;
    return swap16(v);
  }

  async writeWord(address: number, command: number, word: number): Promise<void> {
    const d = this.dev(address, `write 0x${command.toString(16)}`);
    d.model.writeRegister(command, swap16(word & 0xffff));
  }

  async readByte(address: number, command: number): Promise<number> {
    const d = this.dev(address, `read 0x${command.toString(16)}`);
    return ((d.stuck.get(command) ?? d.model.readRegister(command)) >> 8) & 0xff;
  }

  async writeByte(address: number, command: number, byte: number): Promise<void> {
    const d = this.dev(address, `write 0x${command.toString(16)}`);
    d.model.writeRegister(command, (byte & 0xff) << 8);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

function nack(bus: number, address: number, what: string): KitError {
  return new KitError(
    'HW_I2C_NACK',
    `i2c-${bus} 0x${address.toString(16)} ${what}: EREMOTEIO (no acknowledge)`,
  );
}

/** Deterministic ±1 LSB jitter, as a real ADC shows, so "stuck" detection has something to tell apart. */
function jitter(seed: { n: number }): number {
  seed.n = (seed.n * 1103515245 + 12345) & 0x7fffffff;
  return (seed.n % 3) - 1;
}

/** Battery current as the shunt sees it: positive = charging, unless wired the other way. */
export interface ShuntWiring {
  /** Which current the shunt carries: the battery's (default) or the load's. */
  measures?: 'battery' | 'load';
}

abstract class InaModelBase implements I2cRegisterModel {
  protected regs = new Map<number, number>();
  protected readonly seed = { n: 7 };

  constructor(
    protected readonly battery: BatteryModel,
    protected readonly shuntOhms: number,
    protected readonly wiring: ShuntWiring = {},
  ) {
    this.reset();
  }

  abstract reset(): void;
  protected abstract readonly shuntLsbV: number;
  protected abstract readonly calConstant: number;
  protected abstract readonly powerFactor: number;
  protected abstract busRaw(v: number): number;
  protected abstract readonly fixedRegs: ReadonlySet<number>;

  protected snap(): BatterySnapshot {
    return this.battery.sync();
  }

  private amps(s: BatterySnapshot): number {
    return this.wiring.measures === 'load' ? -s.loadA : s.batteryA;
  }

  readRegister(reg: number): number {
    const s = this.snap();
    const cal = this.regs.get(0x05) ?? 0;
    const shuntRaw = clamp16(
      Math.round((this.amps(s) * this.shuntOhms) / this.shuntLsbV) + jitter(this.seed),
    );
    // The chip's own arithmetic: current = shunt × cal / 4096 (INA219) or / 2048 (INA226); power =
    // current × bus / 5000 (INA219) or / 20000 (INA226) in register units, which in volts is
    // |current| × busV / powerFactor. A result past 16 bits sets the math overflow flag (OVF) and
    // leaves the register clamped.
    const current = Math.trunc((shuntRaw * cal) / this.calConstant);
    const busV = this.busVolts(this.busRaw(s.batteryV));
    const power = Math.trunc((Math.abs(current) * busV) / this.powerFactor);
    const overflow = current > 32767 || current < -32768 || power > 0xffff;
    switch (reg) {
      case 0x01:
        return shuntRaw & 0xffff;
      case 0x02:
        return this.busRaw(s.batteryV + jitter(this.seed) * 0.002) | this.busOverflowBits(overflow);
      case 0x04:
        return clamp16(current) & 0xffff;
      case 0x03:
        return Math.min(0xffff, Math.trunc((Math.abs(clamp16(current)) * busV) / this.powerFactor));
      default:
        return (this.regs.get(reg) ?? 0) | this.otherOverflowBits(reg, overflow);
    }
  }

  /** Where the chip reports OVF in the bus voltage register (INA219: bit 0). */
  protected abstract busOverflowBits(overflow: boolean): number;
  /** Where the chip reports OVF elsewhere (INA226: Mask/Enable bit 2). */
  protected abstract otherOverflowBits(reg: number, overflow: boolean): number;

  protected abstract busVolts(raw: number): number;

  writeRegister(reg: number, value: number): void {
    if (this.fixedRegs.has(reg)) return; // read-only registers ignore writes
    if (reg === 0x00 && value & 0x8000) {
      this.reset(); // RST bit
      return;
    }
    this.regs.set(reg, value & 0xffff);
  }
}

function clamp16(v: number): number {
  return Math.max(-32768, Math.min(32767, v));
}

export class Ina219Model extends InaModelBase {
  protected readonly shuntLsbV = 10e-6;
  protected readonly calConstant = 4096;
  protected readonly powerFactor = 20;
  protected readonly fixedRegs = new Set([0x01, 0x02, 0x03, 0x04]);

  reset(): void {
    this.regs = new Map([
      [0x00, 0x399f],
      [0x05, 0],
    ]);
  }

  protected busRaw(v: number): number {
    // Bits 15..3 hold the voltage in 4 mV steps; bit 1 CNVR is set after each conversion.
    return ((Math.max(0, Math.min(32.76, v)) / 0.004) << 3) | 0x2;
  }

  protected busVolts(raw: number): number {
    return (raw >> 3) * 0.004;
  }

  protected busOverflowBits(overflow: boolean): number {
    return overflow ? 0x1 : 0; // bit 0 OVF (SBOS448, Bus Voltage Register)
  }

  protected otherOverflowBits(): number {
    return 0;
  }
}

export class Ina226Model extends InaModelBase {
  protected readonly shuntLsbV = 2.5e-6;
  protected readonly calConstant = 2048;
  protected readonly powerFactor = 25;
  protected readonly fixedRegs = new Set([0x01, 0x02, 0x03, 0x04, 0xfe, 0xff]);

  reset(): void {
    this.regs = new Map([
      [0x00, 0x4127],
      [0x05, 0],
      [0x06, 0],
      [0x07, 0],
      [0xfe, 0x5449],
      [0xff, 0x2260],
    ]);
  }

  protected busRaw(v: number): number {
    return Math.round(Math.max(0, Math.min(40.96, v)) / 0.00125) & 0x7fff;
  }

  protected busVolts(raw: number): number {
    return raw * 0.00125;
  }

  protected busOverflowBits(): number {
    return 0;
  }

  protected otherOverflowBits(reg: number, overflow: boolean): number {
    return reg === 0x06 && overflow ? 0x4 : 0; // Mask/Enable bit 2 OVF (SBOS547)
  }
}

/** MAX17048 register model: VCELL and SOC from the battery model (one cell), CRATE from its current. */
export class Max17048Model implements I2cRegisterModel {
  private regs = new Map<number, number>();
  private readonly seed = { n: 3 };

  constructor(
    private readonly battery: BatteryModel,
    private readonly cellsInSeries = battery.cellsInSeries,
  ) {
    this.reset();
  }

  reset(): void {
    this.regs = new Map([
      [0x06, 0],
      [0x08, 0x0012],
      [0x0a, 0x8030],
      [0x0c, 0x971c],
      [0x14, 0x00ff],
      [0x18, 0x9600],
      [0x1a, 0x0100], // RI: reset indicator
    ]);
  }

  readRegister(reg: number): number {
    const s = this.battery.sync();
    switch (reg) {
      case 0x02:
        return Math.max(
          0,
          Math.min(0xffff, Math.round(s.batteryV / this.cellsInSeries / 78.125e-6) + jitter(this.seed)),
        );
      case 0x04:
        return Math.round(Math.min(100, Math.max(0, s.socPct)) * 256);
      case 0x16: {
        const capacityAh = this.battery.capacityWh / Math.max(0.1, s.batteryV);
        const pctPerH = (s.batteryA / capacityAh) * 100;
        return clamp16(Math.round(pctPerH / 0.208)) & 0xffff;
      }
      case 0x1a: {
        let st = this.regs.get(0x1a) ?? 0;
        if (s.socPct <= 32 - ((this.regs.get(0x0c) ?? 0) & 0x1f)) st |= 0x1000; // HD: SOC low
        return st;
      }
      default:
        return this.regs.get(reg) ?? 0;
    }
  }

  writeRegister(reg: number, value: number): void {
    if (reg === 0xfe) {
      if (value === 0x5400) this.reset();
      return;
    }
    if (reg === 0x02 || reg === 0x04 || reg === 0x08 || reg === 0x16) return;
    this.regs.set(reg, value & 0xffff);
  }
}

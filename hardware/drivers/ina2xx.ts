// TI INA219 and INA226 current/power monitors over I2C: calibration from shunt resistance and
// maximum current, MSB-first words over SMBus, signed registers, and re-calibration after a
// brown-out reset (the calibration register then reads 0 and current/power read 0).
// A conversion whose current or power arithmetic overflowed has no current or power: the INA219
// flags it in bit 0 (OVF) of the bus voltage register (TI SBOS448, "Bus Voltage Register (02h)"),
// the INA226 in bit 2 (OVF) of the Mask/Enable register (TI SBOS547, "Mask/Enable Register (06h)").
import { KitError } from '../../core/errors.ts';
import { moduleLogger } from '../../core/logger.ts';
import type { I2cBus } from '../i2c/types.ts';
import { readRegisterBE, toSigned16, writeRegisterBE } from '../i2c/words.ts';
import { I2cPollSource } from '../power/i2c-poll-source.ts';
import { round } from '../power/reading.ts';
import type { Chemistry } from '../power/soc-curve.ts';
import { SocEstimator } from '../power/soc-estimator.ts';
import type { ReadingValues } from '../power/source-base.ts';

const log = moduleLogger('hardware.ina2xx');

export const REG_CONFIG = 0x00;
export const REG_SHUNT = 0x01;
export const REG_BUS = 0x02;
export const REG_POWER = 0x03;
export const REG_CURRENT = 0x04;
export const REG_CALIBRATION = 0x05;
/** INA226 only: alert mask and flags, among them the math overflow flag. */
export const INA226_REG_MASK_ENABLE = 0x06;
/** INA219: bus voltage register bit 0, "Math Overflow Flag". */
export const INA219_BUS_OVF = 0x0001;
/** INA226: Mask/Enable bit 2, "Math Overflow Flag". */
export const INA226_MASK_OVF = 0x0004;
export const INA226_REG_MANUFACTURER = 0xfe;
export const INA226_REG_DIE_ID = 0xff;
export const INA219_DEFAULT_CONFIG = 0x399f;
export const INA226_DEFAULT_CONFIG = 0x4127;
export const INA226_DIE_ID = 0x2260;
export const TI_MANUFACTURER_ID = 0x5449;

export type InaChip = 'ina219' | 'ina226';

export interface InaCalibration {
  config: number;
  calibration: number;
  /** Amperes per current-register LSB, as implied by the (truncated) calibration value. */
  currentLsb: number;
  powerLsb: number;
}

/** Chooses the INA219 PGA so the shunt's full-scale drop fits (±40/80/160/320 mV). */
function ina219Config(maxShuntV: number): number {
  const pg = maxShuntV <= 0.04 ? 0 : maxShuntV <= 0.08 ? 1 : maxShuntV <= 0.16 ? 2 : 3;
  // 32 V bus range, 12-bit bus and shunt ADC, continuous shunt+bus: 0x399F at PGA /8.
  return 0x2000 | (pg << 11) | 0x019f;
}

export function computeCalibration(chip: InaChip, shuntOhms: number, maxCurrentA: number): InaCalibration {
  if (!(shuntOhms > 0) || !(maxCurrentA > 0)) {
    throw new KitError('BAD_REQUEST', `${chip} calibration needs shuntOhms > 0 and maxCurrentA > 0`);
  }
  const lsb = maxCurrentA / 32768;
  if (chip === 'ina219') {
    if (maxCurrentA * shuntOhms > 0.32 + 1e-9) {
      throw new KitError(
        'BAD_REQUEST',
        `INA219 shunt drop ${round(maxCurrentA * shuntOhms * 1000, 1)} mV exceeds its 320 mV range`,
      );
    }
    // Bit 0 of the calibration register does not exist; keep the LSB consistent with what is written.
    const cal = Math.min(0xfffe, Math.trunc(0.04096 / (lsb * shuntOhms))) & 0xfffe;
    const currentLsb = 0.04096 / (cal * shuntOhms);
    return {
      config: ina219Config(maxCurrentA * shuntOhms),
      calibration: cal,
      currentLsb,
      powerLsb: 20 * currentLsb,
    };
  }
  if (maxCurrentA * shuntOhms > 0.08192 + 1e-9) {
    throw new KitError(
      'BAD_REQUEST',
      `INA226 shunt drop ${round(maxCurrentA * shuntOhms * 1000, 1)} mV exceeds its 81.92 mV range`,
    );
  }
  const cal = Math.min(0x7fff, Math.trunc(0.00512 / (lsb * shuntOhms)));
  const currentLsb = 0.00512 / (cal * shuntOhms);
  // 16 averages, 1.1 ms conversions, continuous: steadier numbers for the same poll rate.
  return { config: 0x4527, calibration: cal, currentLsb, powerLsb: 25 * currentLsb };
}

export interface InaMeasurement {
  busV: number;
  shuntV: number;
  /** Absent when the chip flagged a math overflow: the register then holds no value. */
  currentA: number | undefined;
  /** Absent when the chip flagged a math overflow. */
  powerW: number | undefined;
  /** The chip's math overflow flag (current or power beyond the calibrated range). */
  overflow: boolean;
  recalibrated: boolean;
  /** `maskEnable` is the INA226's register 0x06 (undefined on an INA219). */
  raw: { bus: number; shunt: number; current: number; power: number; maskEnable?: number };
}

export class Ina2xx {
  readonly cal: InaCalibration;
  recalibrations = 0;

  constructor(
    readonly chip: InaChip,
    readonly bus: I2cBus,
    readonly address: number,
    shuntOhms: number,
    maxCurrentA: number,
  ) {
    this.cal = computeCalibration(chip, shuntOhms, maxCurrentA);
  }

  /** Writes config and calibration; on an INA226 first checks that the chip is one. */
  async init(): Promise<void> {
    if (this.chip === 'ina226') {
      const mfr = await readRegisterBE(this.bus, this.address, INA226_REG_MANUFACTURER);
      const die = await readRegisterBE(this.bus, this.address, INA226_REG_DIE_ID);
      if (mfr !== TI_MANUFACTURER_ID || die !== INA226_DIE_ID) {
        throw new KitError(
          'HW_UNAVAILABLE',
          `no INA226 at 0x${this.address.toString(16)}: manufacturer 0x${mfr.toString(16)}, die 0x${die.toString(16)}`,
        );
      }
    }
    await writeRegisterBE(this.bus, this.address, REG_CONFIG, this.cal.config);
    await writeRegisterBE(this.bus, this.address, REG_CALIBRATION, this.cal.calibration);
  }

  async read(): Promise<InaMeasurement> {
    let recalibrated = false;
    const cal = await readRegisterBE(this.bus, this.address, REG_CALIBRATION);
    if (cal !== this.cal.calibration) {
      // A brown-out reset leaves calibration at 0, so current and power would read 0 forever.
      log.warn({ chip: this.chip, address: this.address, cal }, 'calibration lost (brown-out?), re-writing');
      await this.init();
      this.recalibrations++;
      recalibrated = true;
    }
    const shunt = await readRegisterBE(this.bus, this.address, REG_SHUNT);
    const busRaw = await readRegisterBE(this.bus, this.address, REG_BUS);
    const current = await readRegisterBE(this.bus, this.address, REG_CURRENT);
    const power = await readRegisterBE(this.bus, this.address, REG_POWER);
    const is219 = this.chip === 'ina219';
    // Read after the data registers: the flag then speaks for the conversion just read (or a newer one).
    const maskEnable = is219
      ? undefined
      : await readRegisterBE(this.bus, this.address, INA226_REG_MASK_ENABLE);
    const overflow = is219 ? (busRaw & INA219_BUS_OVF) !== 0 : ((maskEnable ?? 0) & INA226_MASK_OVF) !== 0;
    if (overflow) {
      log.warn({ chip: this.chip, address: this.address }, 'math overflow: current and power not published');
    }
    return {
      busV: is219 ? (busRaw >> 3) * 0.004 : busRaw * 0.00125,
      shuntV: toSigned16(shunt) * (is219 ? 10e-6 : 2.5e-6),
      currentA: overflow ? undefined : toSigned16(current) * this.cal.currentLsb,
      powerW: overflow ? undefined : power * this.cal.powerLsb,
      overflow,
      recalibrated,
      raw: { bus: busRaw, shunt, current, power, ...(is219 ? {} : { maskEnable }) },
    };
  }
}

export interface InaSourceOptions {
  device: string;
  chip: InaChip;
  /** A bus, or a function that opens one on start (the real adapter loads a native module). */
  bus: I2cBus | (() => Promise<I2cBus>);
  address: number;
  shuntOhms: number;
  maxCurrentA: number;
  pollMs?: number;
  /** Flip the sign when the shunt is wired so that charging reads negative. */
  invertCurrent?: boolean;
  chemistry?: Chemistry;
  cellsInSeries?: number;
  capacityAh?: number;
  /** Identical raw bus readings in a row before the sensor is called stuck (real ADCs jitter). */
  stuckAfter?: number;
  clock?: () => number;
}

export class InaSource extends I2cPollSource {
  private chipDriver: Ina2xx | undefined;
  private busHandle: I2cBus | undefined;
  private readonly soc: SocEstimator | undefined;
  private sameCount = 0;
  private lastRawBus = -1;

  constructor(private readonly o: InaSourceOptions) {
    super(o.device, o.chip, o.pollMs ?? 1000, o.clock);
    if (!Number.isInteger(o.address) || o.address < 0x03 || o.address > 0x77) {
      throw new KitError('BAD_REQUEST', `I2C address must be 0x03–0x77, got ${o.address}`);
    }
    computeCalibration(o.chip, o.shuntOhms, o.maxCurrentA); // bad parameters fail here, at construction
    this.soc = o.chemistry
      ? new SocEstimator({ chemistry: o.chemistry, cellsInSeries: o.cellsInSeries, capacityAh: o.capacityAh })
      : undefined;
  }

  get ina(): Ina2xx | undefined {
    return this.chipDriver;
  }

  protected async read(): Promise<ReadingValues> {
    if (!this.chipDriver) {
      this.busHandle ??= typeof this.o.bus === 'function' ? await this.o.bus() : this.o.bus;
      const d = new Ina2xx(this.o.chip, this.busHandle, this.o.address, this.o.shuntOhms, this.o.maxCurrentA);
      await d.init();
      this.chipDriver = d;
    }
    const m = await this.chipDriver.read();
    if (m.raw.bus === this.lastRawBus) this.sameCount++;
    else this.sameCount = 0;
    this.lastRawBus = m.raw.bus;
    const stuckAfter = this.o.stuckAfter ?? 60;
    if (this.sameCount >= stuckAfter) {
      this.stuck(`bus voltage register stuck at 0x${m.raw.bus.toString(16)} for ${this.sameCount + 1} reads`);
    }
    // An overflowed conversion has no current: publish the voltage only, and leave the charge
    // estimate out (coulomb counting cannot integrate an unknown current).
    const amps = m.currentA === undefined ? undefined : this.o.invertCurrent ? -m.currentA : m.currentA;
    const socPct = amps === undefined ? undefined : this.soc?.update(m.busV, amps, this.clock());
    return {
      batteryV: round(m.busV, 3),
      batteryA: amps === undefined ? undefined : round(amps, 4),
      socPct: socPct === undefined ? undefined : round(socPct, 1),
      extras: {
        shuntMv: round(m.shuntV * 1000, 4),
        ...(m.powerW === undefined ? {} : { powerW: round(m.powerW, 3) }),
        overflow: m.overflow,
        recalibrations: this.chipDriver.recalibrations,
        ...(socPct !== undefined ? { socEstimated: true } : {}),
      },
    };
  }

  protected async close(): Promise<void> {
    // A bus handed in belongs to the caller; one opened here is ours to close.
    if (typeof this.o.bus === 'function') await this.busHandle?.close().catch(() => {});
    this.busHandle = undefined;
    this.chipDriver = undefined;
  }
}

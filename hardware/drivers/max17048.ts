// Maxim MAX17048 fuel gauge (ModelGauge, 1S Li-ion) over I2C: VCELL, SOC, CRATE, version and alerts.
import { KitError } from '../../core/errors.ts';
import type { I2cBus } from '../i2c/types.ts';
import { readRegisterBE, toSigned16, writeRegisterBE } from '../i2c/words.ts';
import { I2cPollSource } from '../power/i2c-poll-source.ts';
import { round } from '../power/reading.ts';
import type { ReadingValues } from '../power/source-base.ts';

export const MAX17048_ADDRESS = 0x36;
export const REG_VCELL = 0x02;
export const REG_SOC = 0x04;
export const REG_MODE = 0x06;
export const REG_VERSION = 0x08;
export const REG_HIBRT = 0x0a;
export const REG_CONFIG = 0x0c;
export const REG_VALRT = 0x14;
export const REG_CRATE = 0x16;
export const REG_VRESET_ID = 0x18;
export const REG_STATUS = 0x1a;
export const REG_CMD = 0xfe;
export const CMD_POWER_ON_RESET = 0x5400;

/** STATUS register flags (high byte). */
export const STATUS_FLAGS: ReadonlyArray<readonly [number, string]> = [
  [0x0100, 'reset'],
  [0x0200, 'voltage high'],
  [0x0400, 'voltage low'],
  [0x0800, 'voltage reset'],
  [0x1000, 'SOC low'],
  [0x2000, 'SOC changed'],
];
const CONFIG_ALRT = 0x0020;

export interface Max17048Reading {
  cellV: number;
  socPct: number;
  chargeRatePctPerH: number;
  version: number;
  alerts: string[];
  /** The chip had reset (RI) since the last read: its model restarted from the voltage. */
  wasReset: boolean;
  raw: { vcell: number; soc: number; crate: number; status: number; config: number };
}

export class Max17048 {
  constructor(
    readonly bus: I2cBus,
    readonly address = MAX17048_ADDRESS,
  ) {}

  async version(): Promise<number> {
    return readRegisterBE(this.bus, this.address, REG_VERSION);
  }

  async read(): Promise<Max17048Reading> {
    const vcell = await readRegisterBE(this.bus, this.address, REG_VCELL);
    const soc = await readRegisterBE(this.bus, this.address, REG_SOC);
    const crate = await readRegisterBE(this.bus, this.address, REG_CRATE);
    const version = await readRegisterBE(this.bus, this.address, REG_VERSION);
    const status = await readRegisterBE(this.bus, this.address, REG_STATUS);
    const config = await readRegisterBE(this.bus, this.address, REG_CONFIG);
    const alerts = STATUS_FLAGS.filter(([bit]) => (status & bit) !== 0).map(([, n]) => n);
    // Clear what we reported so the next alert is a new one (flags and the ALRT bit are sticky).
    if (status & 0x3f00) await writeRegisterBE(this.bus, this.address, REG_STATUS, status & ~0x3f00);
    if (config & CONFIG_ALRT)
      await writeRegisterBE(this.bus, this.address, REG_CONFIG, config & ~CONFIG_ALRT);
    return {
      cellV: vcell * 78.125e-6,
      socPct: soc / 256,
      chargeRatePctPerH: toSigned16(crate) * 0.208,
      version,
      alerts,
      wasReset: (status & 0x0100) !== 0,
      raw: { vcell, soc, crate, status, config },
    };
  }

  /** Sets the empty-alert threshold (1–32 %). */
  async setEmptyAlertPct(pct: number): Promise<void> {
    if (!Number.isInteger(pct) || pct < 1 || pct > 32)
      throw new KitError('BAD_REQUEST', `alert threshold must be 1–32 %, got ${pct}`);
    const config = await readRegisterBE(this.bus, this.address, REG_CONFIG);
    await writeRegisterBE(this.bus, this.address, REG_CONFIG, (config & ~0x1f) | (32 - pct));
  }

  async powerOnReset(): Promise<void> {
    await writeRegisterBE(this.bus, this.address, REG_CMD, CMD_POWER_ON_RESET);
  }
}

export interface Max17048SourceOptions {
  device: string;
  bus: I2cBus | (() => Promise<I2cBus>);
  address?: number;
  pollMs?: number;
  stuckAfter?: number;
  clock?: () => number;
}

export class Max17048Source extends I2cPollSource {
  private gauge: Max17048 | undefined;
  private busHandle: I2cBus | undefined;
  private sameCount = 0;
  private lastRaw = -1;

  constructor(private readonly o: Max17048SourceOptions) {
    super(o.device, 'max17048', o.pollMs ?? 1000, o.clock);
  }

  protected async read(): Promise<ReadingValues> {
    if (!this.gauge) {
      this.busHandle ??= typeof this.o.bus === 'function' ? await this.o.bus() : this.o.bus;
      const g = new Max17048(this.busHandle, this.o.address ?? MAX17048_ADDRESS);
      const v = await g.version();
      if ((v & 0xfff0) !== 0x0010) {
        throw new KitError(
          'HW_UNAVAILABLE',
          `no MAX17048/9 at 0x${g.address.toString(16)} (version 0x${v.toString(16)})`,
        );
      }
      this.gauge = g;
    }
    const r = await this.gauge.read();
    if (r.raw.vcell === this.lastRaw) this.sameCount++;
    else this.sameCount = 0;
    this.lastRaw = r.raw.vcell;
    if (this.sameCount >= (this.o.stuckAfter ?? 60)) {
      this.stuck(`VCELL register stuck at 0x${r.raw.vcell.toString(16)} for ${this.sameCount + 1} reads`);
    }
    return {
      batteryV: round(r.cellV, 4),
      socPct: round(Math.min(100, r.socPct), 2),
      extras: {
        chargeRatePctPerH: round(r.chargeRatePctPerH, 3),
        alerts: r.alerts,
        version: r.version,
        ...(r.wasReset ? { wasReset: true } : {}),
      },
    };
  }

  protected async close(): Promise<void> {
    if (typeof this.o.bus === 'function') await this.busHandle?.close().catch(() => {});
    this.busHandle = undefined;
    this.gauge = undefined;
  }
}

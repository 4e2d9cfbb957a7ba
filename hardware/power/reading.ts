// The one normalized power reading every driver produces (docs/contracts.md#power-readings), and the
// PowerSource seam that firmware (power policy) and /v1/status consume.

export const CHARGE_STATES = ['off', 'bulk', 'absorption', 'float', 'equalize', 'fault', 'other'] as const;
export type ChargeState = (typeof CHARGE_STATES)[number];

export const POWER_DRIVERS = ['vedirect', 'renogy', 'epever', 'ina219', 'ina226', 'max17048'] as const;
export type PowerDriver = (typeof POWER_DRIVERS)[number];

/**
 * Volts, amperes (positive = charging the battery), percent, °C, watts. Absent fields are omitted,
 * never guessed. `at` is the ISO 8601 time the values were measured. A stale reading keeps the last
 * measured values and their `at` (so their age shows), with `staleReason` and `extras.staleSince`;
 * when nothing was ever measured it carries no values and `at` is when staleness was declared.
 */
export interface PowerReading {
  device: string;
  driver: PowerDriver;
  batteryV?: number;
  batteryA?: number;
  socPct?: number;
  batteryTempC?: number;
  solarV?: number;
  solarW?: number;
  loadW?: number;
  chargeState?: ChargeState;
  stale: boolean;
  staleReason?: string;
  at: string;
  /** Driver-specific values that ride along (yield history, alarms, raw fields, model …). */
  extras?: Record<string, unknown>;
}

export interface PowerSource {
  /** Stable device name, e.g. `mppt`, `ups-hat`, from the board profile's power device config. */
  readonly device: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  latest(): PowerReading | undefined;
  /** Every new reading, stale ones included; returns an unsubscribe function. */
  onReading(cb: (r: PowerReading) => void): () => void;
}

/** Rounds to a fixed number of decimals so readings print and compare cleanly. */
export function round(v: number, decimals = 3): number {
  const f = 10 ** decimals;
  return Math.round(v * f) / f;
}

/** How a board (or `popkit power read`) names one power device to read. */
export interface PowerDeviceConfig {
  /** Device name in readings, e.g. `mppt`. */
  name: string;
  driver: PowerDriver;
  /** Serial drivers: `/dev/serial/by-id/…` preferred, `/dev/ttyUSB0` accepted. */
  port?: string;
  /** Modbus unit id (Renogy, EPEver); `'scan'` probes 1–247 and 255. */
  unitId?: number | 'scan';
  /** I2C drivers. */
  bus?: number;
  address?: number;
  /** INA219/INA226 calibration inputs. */
  shuntOhms?: number;
  maxCurrentA?: number;
  /** Nominal pack for SOC estimation from voltage where a device has no SOC (INA2xx). */
  chemistry?: 'lifepo4' | 'lead-acid' | 'li-ion';
  cellsInSeries?: number;
  capacityAh?: number;
  /** Poll period for polled devices; VE.Direct pushes about once a second on its own. */
  pollMs?: number;
}

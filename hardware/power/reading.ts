// The one normalized power reading every driver produces (docs/contracts.md#power-readings), and the
// PowerSource seam that firmware (power policy) and /v1/status consume.

// The reading crosses processes (kitd's run status, /v1/status, the hub), so its one declaration is the
// contract's; drivers and sources use it from there.
export {
  CHARGE_STATES,
  type ChargeState,
  POWER_DRIVERS,
  type PowerDriver,
  type PowerReading,
} from '../../core/contracts/power.ts';

import type { PowerDriver, PowerReading } from '../../core/contracts/power.ts';

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

// State of charge for monitors that measure only volts and amps (INA219/INA226): seeded from the
// chemistry's rest-voltage curve, then coulomb-counted, and re-seeded after a long rest.
import { type Chemistry, defaultCells, socAtCellVolts } from './soc-curve.ts';

export interface SocEstimatorOptions {
  chemistry: Chemistry;
  cellsInSeries?: number;
  /** Without a capacity the estimate is voltage-only. */
  capacityAh?: number;
  /** Below this current (A) the battery counts as resting. */
  restA?: number;
  /** How long a rest must last before its voltage is trusted again. */
  restMs?: number;
}

export class SocEstimator {
  private soc: number | undefined;
  private lastAt = 0;
  private restSince: number | undefined;
  private readonly cells: number;

  constructor(private readonly o: SocEstimatorOptions) {
    this.cells = o.cellsInSeries ?? defaultCells(o.chemistry);
  }

  /** Undefined until the battery has been seen near rest: a loaded voltage would be a guess. */
  update(volts: number, amps: number, atMs: number): number | undefined {
    const fromVoltage = socAtCellVolts(this.o.chemistry, volts / this.cells);
    const restA = this.o.restA ?? (this.o.capacityAh ? this.o.capacityAh * 0.02 : 0.05);
    const resting = Math.abs(amps) < restA;
    if (resting) this.restSince ??= atMs;
    else this.restSince = undefined;
    if (!this.o.capacityAh) {
      this.soc = resting ? fromVoltage : this.soc;
    } else if (this.soc === undefined) {
      if (resting) this.soc = fromVoltage;
    } else {
      const dtH = Math.max(0, atMs - this.lastAt) / 3_600_000;
      this.soc = Math.min(100, Math.max(0, this.soc + ((amps * dtH) / this.o.capacityAh) * 100));
      if (this.restSince !== undefined && atMs - this.restSince >= (this.o.restMs ?? 30 * 60_000)) {
        this.soc = fromVoltage;
        this.restSince = atMs;
      }
    }
    this.lastAt = atMs;
    return this.soc;
  }
}

// The one normalized power reading every driver produces, as it crosses processes: kitd writes it into
// its run status and onto the local bus, checkout serves it in /v1/status, sync sends the main battery
// to the hub (docs/contracts.md#power-readings).
import { type Static, Type } from '@sinclair/typebox';
import { IsoTime } from './common.ts';

export const CHARGE_STATES = ['off', 'bulk', 'absorption', 'float', 'equalize', 'fault', 'other'] as const;
export type ChargeState = (typeof CHARGE_STATES)[number];

export const POWER_DRIVERS = ['vedirect', 'renogy', 'epever', 'ina219', 'ina226', 'max17048'] as const;
export type PowerDriver = (typeof POWER_DRIVERS)[number];

const Num = Type.Number();

/**
 * Volts, amperes (positive = charging the battery), percent, °C, watts. Absent fields are omitted,
 * never guessed. `at` is the ISO 8601 time the values were measured. A stale reading keeps the last
 * measured values and their `at` (so their age shows), with `staleReason` and `extras.staleSince`;
 * when nothing was ever measured it carries no values and `at` is when staleness was declared.
 */
export const PowerReadingSchema = Type.Object({
  device: Type.String({ minLength: 1, maxLength: 64 }),
  driver: Type.Union(POWER_DRIVERS.map((d) => Type.Literal(d))),
  batteryV: Type.Optional(Num),
  batteryA: Type.Optional(Num),
  socPct: Type.Optional(Num),
  batteryTempC: Type.Optional(Num),
  solarV: Type.Optional(Num),
  solarW: Type.Optional(Num),
  loadW: Type.Optional(Num),
  chargeState: Type.Optional(Type.Union(CHARGE_STATES.map((c) => Type.Literal(c)))),
  stale: Type.Boolean(),
  staleReason: Type.Optional(Type.String()),
  at: IsoTime,
  /** Driver-specific values that ride along (yield history, alarms, raw fields, model …). */
  extras: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type PowerReading = Static<typeof PowerReadingSchema>;

/** kitd's power policy folds the readings into one battery: SOC, net power, time-to-go. */
export const BatterySummarySchema = Type.Object({
  device: Type.Optional(Type.String()),
  socPct: Type.Optional(Num),
  /** positive while charging */
  netW: Type.Optional(Num),
  /** minutes until empty at the present draw; undefined while charging or unknown */
  ttgMin: Type.Optional(Num),
  stale: Type.Boolean(),
});
export type BatterySummary = Static<typeof BatterySummarySchema>;

/** The battery a kit shows the hub's fleet view: the reading that says most (the first with a SOC). */
export const BatterySummaryWire = Type.Object({
  device: Type.Optional(Type.String()),
  socPct: Type.Optional(Num),
  batteryV: Type.Optional(Num),
  chargeState: Type.Optional(Type.String()),
  stale: Type.Optional(Type.Boolean()),
});
export type BatterySummaryWireT = Static<typeof BatterySummaryWire>;

/** The main battery of a list of readings, as the hub sees it (undefined when there is none). */
export function mainBattery(readings: readonly PowerReading[]): BatterySummaryWireT | undefined {
  const main = readings.find((r) => typeof r.socPct === 'number') ?? readings[0];
  if (!main) return undefined;
  const out: BatterySummaryWireT = { device: main.device, stale: main.stale };
  if (main.socPct !== undefined) out.socPct = main.socPct;
  if (main.batteryV !== undefined) out.batteryV = main.batteryV;
  if (main.chargeState !== undefined) out.chargeState = main.chargeState;
  return out;
}

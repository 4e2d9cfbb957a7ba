// One battery, one panel and one load whose numbers every simulated device reports, so that a
// VE.Direct charger, a shunt and a fuel gauge on the same simulated kit agree with each other.
import { KitError } from '../../core/errors.ts';
import type { ChargeState } from '../power/reading.ts';
import { type Chemistry, cellVoltsAtSoc, defaultCells } from '../power/soc-curve.ts';

export interface BatteryModelOptions {
  capacityWh?: number;
  chemistry?: Chemistry;
  cellsInSeries?: number;
  socPct?: number;
  loadW?: number;
  /** Panel peak at solar noon, W. */
  solarPeakW?: number;
  /** Largest charge current the controller delivers, A. */
  maxChargeA?: number;
  /** Simulated start time (ms since epoch); the solar curve follows its local hour of day. */
  startAtMs?: number;
  /** Real clock for `sync()`; Date.now by default (mock.timers can drive it). */
  clock?: () => number;
  /** Simulated seconds per real second when `sync()` advances the model. */
  speed?: number;
  /** Internal resistance of the whole pack, ohms. */
  internalOhms?: number;
  ambientC?: number;
}

export interface BatterySnapshot {
  atMs: number;
  socPct: number;
  batteryV: number;
  /** Positive while charging. */
  batteryA: number;
  solarV: number;
  solarW: number;
  loadW: number;
  loadA: number;
  loadOn: boolean;
  chargeState: ChargeState;
  temperatureC: number;
  yieldTodayWh: number;
  yieldTotalWh: number;
  maxPowerTodayW: number;
  /** Charge consumed since full, Ah (negative, as a BMV reports CE). */
  consumedAh: number;
}

const HOUR = 3_600_000;

export class BatteryModel {
  readonly capacityWh: number;
  readonly chemistry: Chemistry;
  readonly cellsInSeries: number;
  readonly solarPeakW: number;
  readonly maxChargeA: number;
  private readonly internalOhms: number;
  private readonly clock: () => number;
  private readonly speed: number;
  private simMs: number;
  private lastRealMs: number;
  private soc: number; // 0..1
  private loadWanted: number;
  private loadOn = true;
  private solarOverride: number | undefined;
  private cloud = 1;
  private ambientC: number;
  private tempOverride: number | undefined;
  private yieldToday = 0;
  private yieldTotal = 0;
  private maxPowerToday = 0;
  private day: number;
  private last: BatterySnapshot;

  constructor(opts: BatteryModelOptions = {}) {
    this.chemistry = opts.chemistry ?? 'lifepo4';
    this.cellsInSeries = opts.cellsInSeries ?? defaultCells(this.chemistry);
    this.capacityWh = opts.capacityWh ?? 1280;
    if (!(this.capacityWh > 0)) throw new KitError('BAD_REQUEST', 'battery capacityWh must be > 0');
    this.solarPeakW = opts.solarPeakW ?? 200;
    this.maxChargeA = opts.maxChargeA ?? 15;
    this.internalOhms = opts.internalOhms ?? 0.02;
    this.clock = opts.clock ?? Date.now;
    this.speed = opts.speed ?? 1;
    this.ambientC = opts.ambientC ?? 22;
    this.lastRealMs = this.clock();
    this.simMs = opts.startAtMs ?? this.lastRealMs;
    this.day = Math.floor(this.simMs / (24 * HOUR));
    this.soc = clamp01((opts.socPct ?? 80) / 100);
    this.loadWanted = opts.loadW ?? 15;
    this.last = this.compute();
  }

  /** Advance the simulated world by `dtMs` of simulated time. */
  step(dtMs: number): BatterySnapshot {
    if (!(dtMs >= 0) || !Number.isFinite(dtMs))
      throw new KitError('BAD_REQUEST', `step(dtMs) needs dtMs >= 0, got ${dtMs}`);
    let left = dtMs;
    // Sub-steps keep a long jump (a simulated day) from overshooting full or empty.
    while (left > 0) {
      const dt = Math.min(left, 60_000);
      this.integrate(dt);
      left -= dt;
    }
    this.last = this.compute();
    return this.last;
  }

  /** Advance by the real time elapsed since the last sync, times `speed`. */
  sync(): BatterySnapshot {
    const now = this.clock();
    const dt = Math.max(0, now - this.lastRealMs) * this.speed;
    this.lastRealMs = now;
    return dt > 0 ? this.step(dt) : this.last;
  }

  snapshot(): BatterySnapshot {
    return this.last;
  }

  setSocPct(pct: number): void {
    if (!(pct >= 0 && pct <= 100)) throw new KitError('BAD_REQUEST', `SOC must be 0–100 %, got ${pct}`);
    this.soc = pct / 100;
    this.last = this.compute();
  }

  setLoadW(w: number): void {
    if (!(w >= 0) || !Number.isFinite(w)) throw new KitError('BAD_REQUEST', `load must be >= 0 W, got ${w}`);
    this.loadWanted = w;
    this.last = this.compute();
  }

  /** The controller's load output switch (Renogy 0x010A, VE.Direct LOAD). */
  setLoadOn(on: boolean): void {
    this.loadOn = on;
    this.last = this.compute();
  }

  /** Fix the panel's available power (W), or `undefined` to follow the time-of-day curve again. */
  setSolarW(w: number | undefined): void {
    if (w !== undefined && !(w >= 0)) throw new KitError('BAD_REQUEST', `solar must be >= 0 W, got ${w}`);
    this.solarOverride = w;
    this.last = this.compute();
  }

  /** 0 (overcast) … 1 (clear sky), scales the solar curve. */
  setCloudFactor(f: number): void {
    this.cloud = clamp01(f);
    this.last = this.compute();
  }

  setTemperatureC(c: number | undefined): void {
    this.tempOverride = c;
    this.last = this.compute();
  }

  /** Solar power the panel could deliver at a simulated time: a sine from 06:00 to 18:00 UTC. */
  solarAvailableW(atMs = this.simMs): number {
    if (this.solarOverride !== undefined) return this.solarOverride;
    const hour = (atMs % (24 * HOUR)) / HOUR;
    if (hour <= 6 || hour >= 18) return 0;
    return this.solarPeakW * this.cloud * Math.sin((Math.PI * (hour - 6)) / 12);
  }

  private openCircuitV(): number {
    return cellVoltsAtSoc(this.chemistry, this.soc * 100) * this.cellsInSeries;
  }

  /** The most the battery takes now: full current in bulk, tapering through absorption, none when full. */
  private acceptanceW(): number {
    const v = this.openCircuitV();
    const taper = this.soc < 0.9 ? 1 : Math.max(0, (1 - this.soc) / 0.1);
    return this.maxChargeA * taper * v;
  }

  private effectiveLoadW(): number {
    return this.loadOn && this.soc > 0 ? this.loadWanted : 0;
  }

  private flows(): { solarW: number; batteryW: number; loadW: number; available: number } {
    const available = this.solarAvailableW();
    const loadW = this.effectiveLoadW();
    const surplus = available - loadW;
    const batteryW = surplus >= 0 ? Math.min(surplus, this.acceptanceW()) : surplus;
    const solarW = surplus >= 0 ? loadW + batteryW : available;
    return { solarW, batteryW, loadW, available };
  }

  private integrate(dtMs: number): void {
    const { solarW, batteryW } = this.flows();
    this.soc = clamp01(this.soc + (batteryW * dtMs) / HOUR / this.capacityWh);
    const wh = (solarW * dtMs) / HOUR;
    this.simMs += dtMs;
    const day = Math.floor(this.simMs / (24 * HOUR));
    if (day !== this.day) {
      this.day = day;
      this.yieldToday = 0;
      this.maxPowerToday = 0;
    }
    this.yieldToday += wh;
    this.yieldTotal += wh;
    this.maxPowerToday = Math.max(this.maxPowerToday, solarW);
  }

  private compute(): BatterySnapshot {
    const { solarW, batteryW, loadW, available } = this.flows();
    const ocv = this.openCircuitV();
    // Solve V = OCV + I·R with I = P / V well enough by one fixed-point step.
    let v = ocv;
    v = ocv + (batteryW / v) * this.internalOhms;
    const batteryA = batteryW / v;
    let chargeState: ChargeState = 'off';
    if (available > 0.5) chargeState = this.soc < 0.9 ? 'bulk' : this.soc < 0.995 ? 'absorption' : 'float';
    const hour = (this.simMs % (24 * HOUR)) / HOUR;
    const temperatureC = this.tempOverride ?? this.ambientC + 4 * Math.sin((Math.PI * (hour - 9)) / 12);
    const solarV =
      available > 0.5 ? v + 4 + 3 * Math.min(1, available / this.solarPeakW) : 0.3 * (available > 0 ? 1 : 0);
    return {
      atMs: this.simMs,
      socPct: this.soc * 100,
      batteryV: v,
      batteryA,
      solarV,
      solarW,
      loadW,
      loadA: v > 0 ? loadW / v : 0,
      loadOn: this.loadOn,
      chargeState,
      temperatureC,
      yieldTodayWh: this.yieldToday,
      yieldTotalWh: this.yieldTotal,
      maxPowerTodayW: this.maxPowerToday,
      consumedAh: (-(1 - this.soc) * this.capacityWh) / (ocv || 1),
    };
  }
}

function clamp01(v: number): number {
  return Math.min(1, Math.max(0, v));
}

// Power policy: from the power readings to one battery summary (SOC, net power, time-to-go), then to a
// level (normal, low, critical) with hysteresis, and to actions. Low: step media down and tell the
// host. Critical: stop new media, flush sync as far as the link allows, shut down safely before the
// battery browns out. Checkout is never touched: orders are taken for as long as there is power.
import type { MediaCommand } from '../core/contracts/media.ts';
import type { BatterySummary, PowerReading } from '../core/contracts/power.ts';
import type { PowerPolicyViewT } from '../core/contracts/run-status.ts';
import { moduleLogger } from '../core/logger.ts';
import type { BoardProfile } from '../hardware/boards/index.ts';

export type { BatterySummary, MediaCommand };

const NOMINAL_CELL_V = { lifepo4: 3.2, 'li-ion': 3.6, 'lead-acid': 2.0 } as const;

/** Usable energy the board's power devices describe (capacityAh × nominal pack voltage), if any. */
export function capacityWhFromProfile(profile: BoardProfile): number | undefined {
  for (const d of profile.powerDevices) {
    if (d.capacityAh && d.chemistry) {
      const cells = d.cellsInSeries ?? (d.chemistry === 'lifepo4' ? 4 : d.chemistry === 'lead-acid' ? 6 : 1);
      return d.capacityAh * NOMINAL_CELL_V[d.chemistry] * cells;
    }
  }
  return undefined;
}

/**
 * The battery as kitd sees it: the lowest SOC among fresh readings (the cautious choice when a fuel
 * gauge and a shunt disagree), net power from the same device where it has V and A, else load minus
 * solar; time-to-go from the device when it reports one (a BMV's TTG), else from capacity.
 */
export function summarizeBattery(readings: PowerReading[], capacityWh?: number): BatterySummary {
  const fresh = readings.filter((r) => !r.stale);
  const withSoc = fresh.filter((r) => typeof r.socPct === 'number');
  if (withSoc.length === 0) return { stale: readings.length > 0 && fresh.length === 0 };
  const primary = withSoc.reduce((a, b) => ((b.socPct ?? 101) < (a.socPct ?? 101) ? b : a));
  const out: BatterySummary = { device: primary.device, socPct: primary.socPct, stale: false };
  if (primary.batteryV !== undefined && primary.batteryA !== undefined) {
    out.netW = primary.batteryV * primary.batteryA;
  } else {
    const load = fresh.find((r) => r.loadW !== undefined)?.loadW;
    const solar = fresh.find((r) => r.solarW !== undefined)?.solarW ?? 0;
    if (load !== undefined) out.netW = solar - load;
  }
  const reported = fresh.map((r) => r.extras?.['ttgMin']).find((v) => typeof v === 'number') as
    | number
    | undefined;
  if (reported !== undefined && reported >= 0) out.ttgMin = reported;
  else if (reported === undefined && out.netW !== undefined && out.netW < 0 && capacityWh) {
    out.ttgMin = Math.round((((out.socPct ?? 0) / 100) * capacityWh * 60) / -out.netW);
  }
  if (out.netW !== undefined) out.netW = Math.round(out.netW * 10) / 10;
  return out;
}

export type PowerPolicyView = PowerPolicyViewT;
export type PowerLevel = PowerPolicyView['level'];

export interface PowerPolicyOptions {
  lowSocPct: number;
  criticalSocPct: number;
  criticalTtgMin: number;
  hysteresisPct: number;
  /** each further this many SOC points lost while low steps media down once more */
  stepEveryPct: number;
  maxSteps: number;
  flushTimeoutMs: number;
}

export const DEFAULT_POWER_POLICY: PowerPolicyOptions = {
  lowSocPct: 30,
  criticalSocPct: 8,
  criticalTtgMin: 10,
  hysteresisPct: 5,
  stepEveryPct: 5,
  maxSteps: 3,
  flushTimeoutMs: 60_000,
};

export interface PowerActions {
  media(cmd: MediaCommand): void;
  /** a notice for the host (dashboard, bus event) */
  notify(e: { type: string; [k: string]: unknown }): void;
  /** push the outbox out as far as the link allows within `timeoutMs`; what is left stays on disk */
  flushSync(timeoutMs: number): Promise<{ remaining: number; drained: boolean }>;
  shutdown(reason: string): Promise<void>;
}

export class PowerPolicy {
  private readonly log = moduleLogger('power-policy');
  private readonly opts: PowerPolicyOptions;
  private lvl: PowerLevel = 'unknown';
  private since: number;
  private battery: BatterySummary = { stale: false };
  private neededMin = 0;
  private steps = 0;
  private socAtLastStep = 100;
  private shutdownState: PowerPolicyView['shutdown'];
  private shutdownRun: Promise<void> | undefined;

  constructor(
    private readonly actions: PowerActions,
    opts: Partial<PowerPolicyOptions> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.opts = { ...DEFAULT_POWER_POLICY, ...opts };
    this.since = now();
  }

  get level(): PowerLevel {
    return this.lvl;
  }

  /** Resolves when a critical shutdown sequence has finished (for tests and the CLI). */
  get shutdownDone(): Promise<void> | undefined {
    return this.shutdownRun;
  }

  /** Feed one summary and what is left of the planned event (minutes); returns the level. */
  evaluate(battery: BatterySummary, neededMin: number): PowerLevel {
    this.battery = battery;
    this.neededMin = neededMin;
    if (this.lvl === 'critical') return this.lvl; // latched: the shutdown sequence is under way
    const soc = battery.socPct;
    if (soc === undefined) {
      // no fresh reading: a device fault is a status, never a reason to act
      if (this.lvl === 'normal') this.setLevel('unknown');
      return this.lvl;
    }
    const o = this.opts;
    const ttg = battery.ttgMin;
    if (soc <= o.criticalSocPct || (ttg !== undefined && ttg <= o.criticalTtgMin)) {
      this.enterCritical(soc, ttg);
      return this.lvl;
    }
    const short = ttg !== undefined && neededMin > 0 && ttg < neededMin;
    const isLow = soc <= o.lowSocPct || short;
    if (this.lvl === 'low') {
      const recovered = soc >= o.lowSocPct + o.hysteresisPct && (ttg === undefined || ttg >= neededMin * 1.1);
      if (recovered) {
        this.setLevel('normal');
        if (this.steps > 0) this.actions.media({ v: 1, cmd: 'set-step', step: 0 });
        this.steps = 0;
        this.actions.notify({ type: 'power-ok', socPct: soc, ttgMin: ttg });
      } else if (this.steps < o.maxSteps && soc <= this.socAtLastStep - o.stepEveryPct) {
        this.stepDown(soc);
      }
      return this.lvl;
    }
    if (isLow) {
      this.setLevel('low');
      this.actions.notify({ type: 'power-low', socPct: soc, ttgMin: ttg, neededMin });
      this.stepDown(soc);
    } else if (this.lvl !== 'normal') {
      this.setLevel('normal');
    }
    return this.lvl;
  }

  view(): PowerPolicyView {
    const v: PowerPolicyView = {
      level: this.lvl,
      since: new Date(this.since).toISOString(),
      battery: this.battery,
      neededMin: this.neededMin,
      mediaSteps: this.steps,
      thresholds: {
        lowSocPct: this.opts.lowSocPct,
        criticalSocPct: this.opts.criticalSocPct,
        criticalTtgMin: this.opts.criticalTtgMin,
        hysteresisPct: this.opts.hysteresisPct,
      },
    };
    if (this.shutdownState) v.shutdown = { ...this.shutdownState };
    return v;
  }

  private stepDown(soc: number): void {
    this.steps++;
    this.socAtLastStep = soc;
    this.actions.media({ v: 1, cmd: 'step-down' });
  }

  private setLevel(l: PowerLevel): void {
    if (l === this.lvl) return;
    this.log.warn({ from: this.lvl, to: l, battery: this.battery }, 'power level');
    this.lvl = l;
    this.since = this.now();
  }

  private enterCritical(soc: number, ttg: number | undefined): void {
    this.setLevel('critical');
    this.actions.notify({ type: 'power-critical', socPct: soc, ttgMin: ttg });
    this.actions.media({ v: 1, cmd: 'pause' });
    this.shutdownRun = this.runShutdown();
  }

  private async runShutdown(): Promise<void> {
    this.shutdownState = { phase: 'flushing' };
    try {
      const r = await this.actions.flushSync(this.opts.flushTimeoutMs);
      this.shutdownState = { phase: 'shutting-down', remaining: r.remaining };
      this.log.warn({ remaining: r.remaining, drained: r.drained }, 'critical power: flushed, shutting down');
      await this.actions.shutdown('power-critical');
      this.shutdownState = { phase: 'done', remaining: r.remaining };
    } catch (err) {
      this.shutdownState = { ...this.shutdownState, phase: 'failed', error: (err as Error).message };
      this.log.error({ err }, 'critical power: safe shutdown failed');
    }
  }
}

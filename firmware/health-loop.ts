// kitd's health probes: every `everyMs` (never two at once) CPU load, an fsync in the data dir, jitter
// and loss to the hub, the power policy's battery and the watchdog's services, scored into one view.
import type { HealthComponent } from '../core/contracts/run-status.ts';
import { dataLayout } from '../core/data-dir.ts';
import { moduleLogger } from '../core/logger.ts';
import {
  combineHealth,
  fsyncProbe,
  HEALTH_WEIGHTS,
  type HealthView,
  networkProbe,
  readLoadPerCore,
  scoreBattery,
  scoreCpu,
  scoreDisk,
  scoreNetwork,
  scoreServices,
} from './health.ts';
import type { PowerPolicy } from './power-policy.ts';
import type { Watchdog } from './watchdog.ts';

export interface HealthLoopDeps {
  dataDir: string;
  /** hub HTTP base for the network probe; none, no probe */
  hubHttpUrl?: string;
  everyMs: number;
  now(): number;
  policy: PowerPolicy;
  watchdog: Watchdog;
}

export class HealthLoop {
  private readonly log = moduleLogger('kitd');
  view: HealthView = { score: 0, components: {}, at: new Date(0).toISOString() };
  private running = false;
  private lastAt = -Infinity;

  constructor(private readonly deps: HealthLoopDeps) {}

  /** Starts a measurement in the background when one is due. */
  maybeRun(): void {
    const now = this.deps.now();
    if (this.running || now - this.lastAt < this.deps.everyMs) return;
    this.lastAt = now;
    this.running = true;
    this.measure()
      .then((h) => {
        this.view = h;
      })
      .catch((err: unknown) => this.log.warn({ err }, 'health probe failed'))
      .finally(() => {
        this.running = false;
      });
  }

  /** the CPU has been measured and the score is under 50 */
  get low(): boolean {
    return this.view.components['cpu'] !== undefined && this.view.score < 50;
  }

  /** Runs every probe once and scores them. */
  async measure(): Promise<HealthView> {
    const components: Record<string, HealthComponent> = { cpu: cpuComponent() };
    components['disk'] = await diskComponent(dataLayout(this.deps.dataDir).run);
    if (this.deps.hubHttpUrl) components['network'] = await networkComponent(this.deps.hubHttpUrl);
    components['battery'] = batteryComponent(this.deps.policy);
    const ws = this.deps.watchdog.summary();
    components['services'] = {
      score: scoreServices(ws),
      weight: HEALTH_WEIGHTS.services,
      ...ws,
      detail: `${ws.down} down, ${ws.recentRestarts} restarted lately`,
    };
    return { score: combineHealth(components), components, at: new Date(this.deps.now()).toISOString() };
  }
}

function cpuComponent(): HealthComponent {
  const load = readLoadPerCore();
  return {
    score: scoreCpu(load),
    weight: HEALTH_WEIGHTS.cpu,
    loadPerCore: Math.round(load * 100) / 100,
    detail: `load ${load.toFixed(2)} per core`,
  };
}

async function diskComponent(dir: string): Promise<HealthComponent> {
  try {
    const ms = await fsyncProbe(dir);
    return {
      score: scoreDisk(ms),
      weight: HEALTH_WEIGHTS.disk,
      fsyncMs: Math.round(ms * 10) / 10,
      detail: `fsync ${ms.toFixed(1)} ms`,
    };
  } catch (err) {
    return { score: 0, weight: HEALTH_WEIGHTS.disk, detail: `fsync failed: ${(err as Error).message}` };
  }
}

async function networkComponent(hubHttpUrl: string): Promise<HealthComponent> {
  const n = await networkProbe(`${hubHttpUrl}/healthz`, { count: 3, timeoutMs: 1500 });
  return {
    score: scoreNetwork(n),
    weight: HEALTH_WEIGHTS.network,
    ...n,
    detail: n.received === 0 ? 'hub unreachable' : `loss ${n.lossPct} %, jitter ${n.jitterMs} ms`,
  };
}

function batteryComponent(policy: PowerPolicy): HealthComponent {
  const b = policy.view();
  const { socPct, ttgMin } = b.battery;
  return {
    score: scoreBattery({ ...b.battery, neededMin: b.neededMin }),
    weight: HEALTH_WEIGHTS.battery,
    socPct,
    ttgMin,
    neededMin: Math.round(b.neededMin),
    detail:
      socPct === undefined
        ? 'no battery reading'
        : `SOC ${socPct.toFixed(0)} %${ttgMin !== undefined ? `, ${ttgMin} min to go` : ''}`,
  };
}

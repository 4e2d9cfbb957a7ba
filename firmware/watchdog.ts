// Watchdog: a service whose heartbeat stops is restarted, with exponential backoff. Heartbeats are
// the newest of what the local bus carried and of the service's run-status file, so either path
// alone keeps a healthy service alive. The restart itself is the caller's (the balena supervisor's
// restart-service, or `popkit up`'s process supervisor over the bus).
import { backoffDelay } from '../core/backoff.ts';
import {
  RUN_SERVICES,
  type RunService,
  readRunStatus,
  type ServiceWatch,
} from '../core/contracts/run-status.ts';
import { moduleLogger } from '../core/logger.ts';

export interface WatchdogOptions {
  services: string[];
  staleMs: number;
  /** after kitd starts (or a restart), how long a silent service is given before it counts as down */
  graceMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** a service up this long after its last restart has its backoff reset */
  resetAfterMs: number;
}

export const DEFAULT_WATCHDOG: WatchdogOptions = {
  services: ['checkout', 'sync', 'media'],
  staleMs: 15_000,
  graceMs: 60_000,
  backoffInitialMs: 10_000,
  backoffMaxMs: 300_000,
  resetAfterMs: 120_000,
};

export type { ServiceWatch };
export type ServiceHealth = ServiceWatch['state'];

interface Entry {
  heartbeat: number | undefined;
  restarts: number;
  consecutive: number;
  lastRestart: number | undefined;
  nextAllowed: number;
  inFlight: boolean;
  lastError: string | undefined;
  state: ServiceHealth;
}

export class Watchdog {
  private readonly log = moduleLogger('watchdog');
  private readonly opts: WatchdogOptions;
  private readonly entries = new Map<string, Entry>();
  private readonly startedAt: number;

  constructor(
    /** the newest heartbeat time (ms) known from elsewhere, e.g. the run-status file's updatedAt */
    private readonly otherHeartbeat: (service: string) => number | undefined,
    private readonly restart: (service: string) => Promise<void>,
    opts: Partial<WatchdogOptions> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.opts = { ...DEFAULT_WATCHDOG, ...opts };
    this.startedAt = now();
    for (const s of this.opts.services) {
      this.entries.set(s, {
        heartbeat: undefined,
        restarts: 0,
        consecutive: 0,
        lastRestart: undefined,
        nextAllowed: 0,
        inFlight: false,
        lastError: undefined,
        state: 'starting',
      });
    }
  }

  heartbeat(service: string, atMs = this.now()): void {
    const e = this.entries.get(service);
    if (e && (e.heartbeat === undefined || atMs > e.heartbeat)) e.heartbeat = atMs;
  }

  /** Evaluate every service once; returns the services a restart was requested for. */
  check(): string[] {
    const now = this.now();
    const restarted: string[] = [];
    for (const [name, e] of this.entries) {
      const other = this.otherHeartbeat(name);
      const seen = Math.max(e.heartbeat ?? -Infinity, other ?? -Infinity);
      const fresh = Number.isFinite(seen) && now - seen <= this.opts.staleMs;
      const graceFrom = Math.max(this.startedAt, e.lastRestart ?? -Infinity);
      if (fresh && (e.lastRestart === undefined || seen > e.lastRestart)) {
        e.state = 'up';
        if (
          e.consecutive > 0 &&
          e.lastRestart !== undefined &&
          now - e.lastRestart >= this.opts.resetAfterMs
        ) {
          e.consecutive = 0;
        }
        continue;
      }
      if (now - graceFrom < this.opts.graceMs && !(Number.isFinite(seen) && seen > graceFrom)) {
        e.state = e.lastRestart === undefined ? 'starting' : 'restarting';
        continue;
      }
      if (fresh) continue;
      e.state = 'down';
      if (e.inFlight || now < e.nextAllowed) continue;
      e.inFlight = true;
      e.restarts++;
      e.consecutive++;
      e.lastRestart = now;
      const backoff = backoffDelay(e.consecutive - 1, {
        initialMs: this.opts.backoffInitialMs,
        maxMs: this.opts.backoffMaxMs,
      });
      e.nextAllowed = now + backoff;
      e.state = 'restarting';
      restarted.push(name);
      this.log.warn(
        { service: name, restarts: e.restarts, backoffMs: backoff },
        'heartbeat lost: restarting',
      );
      this.restart(name).then(
        () => {
          e.inFlight = false;
          e.lastError = undefined;
        },
        (err: unknown) => {
          e.inFlight = false;
          e.lastError = (err as Error).message;
          this.log.error({ err, service: name }, 'restart failed');
        },
      );
    }
    return restarted;
  }

  view(): Record<string, ServiceWatch> {
    const out: Record<string, ServiceWatch> = {};
    for (const [name, e] of this.entries) {
      const other = this.otherHeartbeat(name);
      const seen = Math.max(e.heartbeat ?? -Infinity, other ?? -Infinity);
      const w: ServiceWatch = { state: e.state, restarts: e.restarts, consecutive: e.consecutive };
      if (Number.isFinite(seen)) w.lastSeen = new Date(seen).toISOString();
      if (e.lastRestart !== undefined) {
        w.lastRestartAt = new Date(e.lastRestart).toISOString();
        w.nextRestartAt = new Date(e.nextAllowed).toISOString();
      }
      if (e.lastError) w.lastError = e.lastError;
      out[name] = w;
    }
    return out;
  }

  /** Services down now, and restarts within the last `windowMs`, for the health score. */
  summary(windowMs = 10 * 60_000): { down: number; recentRestarts: number } {
    const now = this.now();
    let down = 0;
    let recent = 0;
    for (const e of this.entries.values()) {
      if (e.state === 'down' || e.state === 'restarting') down++;
      if (e.lastRestart !== undefined && now - e.lastRestart <= windowMs) recent += e.consecutive > 0 ? 1 : 0;
    }
    return { down, recentRestarts: recent };
  }
}

/** A service's last run-status write, as a heartbeat for the watchdog. */
export function runStatusHeartbeat(dataDir: string, service: string): number | undefined {
  if (!(RUN_SERVICES as string[]).includes(service)) return undefined;
  const t = Date.parse(readRunStatus(dataDir, service as RunService)?.updatedAt ?? '');
  return Number.isFinite(t) ? t : undefined;
}

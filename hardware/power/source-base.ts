// What every PowerSource shares: listeners, the latest reading, and turning a fault into a stale
// reading (a status) instead of an exception.
import { moduleLogger } from '../../core/logger.ts';
import type { PowerDriver, PowerReading, PowerSource } from './reading.ts';

const log = moduleLogger('hardware.power');

export type ReadingValues = Omit<PowerReading, 'device' | 'driver' | 'stale' | 'staleReason' | 'at'>;

export abstract class PowerSourceBase implements PowerSource {
  readonly device: string;
  readonly driver: PowerDriver;
  protected readonly clock: () => number;
  private readonly listeners = new Set<(r: PowerReading) => void>();
  private last: PowerReading | undefined;
  private lastGoodAt = 0;

  constructor(device: string, driver: PowerDriver, clock: () => number = Date.now) {
    this.device = device;
    this.driver = driver;
    this.clock = clock;
  }

  abstract start(): Promise<void>;
  abstract stop(): Promise<void>;

  latest(): PowerReading | undefined {
    return this.last;
  }

  onReading(cb: (r: PowerReading) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Time of the last good (non-stale) reading, ms since epoch; 0 when there has been none. */
  lastGoodAtMs(): number {
    return this.lastGoodAt;
  }

  protected emitValues(values: ReadingValues): PowerReading {
    const now = this.clock();
    this.lastGoodAt = now;
    const r: PowerReading = {
      device: this.device,
      driver: this.driver,
      ...dropUndefined(values),
      stale: false,
      at: new Date(now).toISOString(),
    };
    this.publish(r);
    return r;
  }

  /**
   * The last measured values stay (with their own `at`), flagged stale, so a screen can show
   * "12.8 V, 40 s old" and a policy can refuse to act on it. Repeats with the same reason are quiet.
   */
  protected markStale(reason: string): void {
    const prev = this.last;
    if (prev?.stale && prev.staleReason === reason) return;
    const now = this.clock();
    const base: PowerReading = prev
      ? { ...prev }
      : { device: this.device, driver: this.driver, stale: true, at: new Date(now).toISOString() };
    const r: PowerReading = {
      ...base,
      stale: true,
      staleReason: reason,
      extras: { ...(prev?.extras ?? {}), staleSince: new Date(now).toISOString() },
    };
    log.warn({ device: this.device, reason }, 'power source stale');
    this.publish(r);
  }

  private publish(r: PowerReading): void {
    this.last = r;
    for (const cb of [...this.listeners]) {
      try {
        cb(r);
      } catch (err) {
        log.error({ err, device: this.device }, 'power reading listener threw');
      }
    }
  }
}

function dropUndefined<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    if (typeof v === 'number' && !Number.isFinite(v)) continue;
    out[k] = v;
  }
  return out as T;
}

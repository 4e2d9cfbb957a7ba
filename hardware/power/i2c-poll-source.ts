// Polling for I2C monitors: a failed transfer (NACK, bus gone) is a status; three poll periods or
// three polls in a row without a good read make the reading stale.

import { alignedDelay } from '../../core/poll-loop.ts';
import type { PowerDriver } from './reading.ts';
import { PowerSourceBase, type ReadingValues } from './source-base.ts';

export abstract class I2cPollSource extends PowerSourceBase {
  protected readonly pollMs: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private lastOkAt = 0;
  private startedAt = 0;
  private failures = 0;
  private inFlight: Promise<void> | undefined;

  constructor(device: string, driver: PowerDriver, pollMs: number, clock?: () => number) {
    super(device, driver, clock);
    this.pollMs = pollMs;
  }

  protected abstract read(): Promise<ReadingValues>;
  protected abstract close(): Promise<void>;

  async start(): Promise<void> {
    this.running = true;
    this.startedAt = this.clock();
    await this.pollOnce();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight?.catch(() => {});
    await this.close();
  }

  async pollOnce(): Promise<void> {
    try {
      const values = await this.read();
      this.failures = 0;
      this.lastOkAt = this.clock();
      this.emitValues(values);
    } catch (err) {
      this.failures++;
      const since = this.lastOkAt || this.startedAt;
      if (this.failures >= 3 || this.clock() - since >= 3 * this.pollMs || this.lastOkAt === 0) {
        const e = err as { code?: string; message: string };
        this.markStale(e.code ? `${e.code}: ${e.message}` : e.message);
      }
    }
  }

  /** Set when a driver decides its values cannot be trusted although transfers succeed. */
  protected stuck(reason: string): never {
    throw Object.assign(new Error(reason), { code: 'HW_STALE' });
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(
      () => {
        this.inFlight = this.pollOnce().finally(() => {
          this.inFlight = undefined;
          this.schedule();
        });
      },
      alignedDelay(this.pollMs, this.clock()),
    );
  }
}

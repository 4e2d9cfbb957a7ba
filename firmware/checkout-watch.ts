// What kitd knows of checkout: its last /v1/status (parsed with the contract) and when it last
// answered. A failed poll keeps the last answer; silence longer than the fault window is a fault.
import type { CheckoutClient } from '../core/checkout-client.ts';
import type { KitStatusViewT } from '../core/contracts/kit-status.ts';
import { moduleLogger } from '../core/logger.ts';

export class CheckoutWatch {
  private readonly log = moduleLogger('kitd');
  last: KitStatusViewT | undefined;
  private lastOkAt: number;

  constructor(
    readonly client: CheckoutClient,
    private readonly now: () => number,
  ) {
    this.lastOkAt = now();
  }

  async poll(): Promise<void> {
    try {
      this.last = await this.client.status();
      this.lastOkAt = this.now();
    } catch (err) {
      this.log.debug({ err }, 'checkout status unavailable');
    }
  }

  get live(): boolean {
    return this.last?.event.live === true;
  }

  /** orders waiting in the outbox */
  get backlog(): number {
    return Number(this.last?.sync.backlog['orders'] ?? 0);
  }

  /** the hub link as sync reports it, undefined before checkout first answered */
  get link(): string | undefined {
    return this.last?.sync.link;
  }

  /** checkout has not answered for `faultMs` */
  silentFor(faultMs: number): boolean {
    return this.now() - this.lastOkAt >= faultMs;
  }

  /** minutes left of a `plannedMin` event (all of it when none is live) */
  minutesLeft(plannedMin: number): number {
    const startedAt = this.last?.event.startedAt ? Date.parse(this.last.event.startedAt) : Number.NaN;
    return this.live && Number.isFinite(startedAt)
      ? Math.max(0, plannedMin - (this.now() - startedAt) / 60_000)
      : plannedMin;
  }
}

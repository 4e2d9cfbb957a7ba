// When the kit may update: kitd holds the balena update lock while an event is live or orders are
// unsynced (unless the policy is `immediate`), polls the supervisor for a pending update, and under
// `after-event` releases a pending update once the reason for the lock is gone.
import type { UpdatePolicy } from '../core/contracts/run-status.ts';
import { moduleLogger } from '../core/logger.ts';
import type { SupervisorClient, SupervisorDevice } from './supervisor-client.ts';
import type { UpdateLock } from './update-lock.ts';

export type { UpdatePolicy };

export interface UpdateControlDeps {
  lock: UpdateLock;
  supervisor?: SupervisorClient;
  policy: UpdatePolicy;
  deviceEveryMs: number;
  now(): number;
}

export class UpdateControl {
  private readonly log = moduleLogger('kitd');
  pendingUpdate: (SupervisorDevice & { checkedAt: string }) | null = null;
  private triggered = false;
  private wanted: string | null = null;
  private lastDeviceAt = -Infinity;

  constructor(private readonly deps: UpdateControlDeps) {}

  /** Take, keep or give back the lock for what the kit is doing; trigger a held-back update after an event. */
  reconcile(s: { live: boolean; backlog: number; shuttingDown: boolean }): void {
    const { lock, policy } = this.deps;
    let want: string | null = null;
    if (policy !== 'immediate' && !s.shuttingDown) {
      if (s.live) want = 'event-live';
      else if (s.backlog > 0) want = 'unsynced-orders';
    }
    const wasWanted = this.wanted;
    this.wanted = want;
    lock.reconcile(want);
    if (wasWanted && !want) this.triggered = false;
    if (!want && policy === 'after-event' && !this.triggered && this.pendingUpdate?.update_pending) {
      this.triggered = true;
      this.deps.supervisor
        ?.update({ force: false })
        .then(() => this.log.info('event over: pending update released'))
        .catch((err: unknown) => this.log.warn({ err }, 'update trigger failed'));
    }
  }

  /** Asks the supervisor for the device state when it is due (in the background). */
  maybePollDevice(): void {
    const sup = this.deps.supervisor;
    const now = this.deps.now();
    if (!sup || now - this.lastDeviceAt < this.deps.deviceEveryMs) return;
    this.lastDeviceAt = now;
    sup
      .device()
      .then((d) => {
        this.pendingUpdate = { ...d, checkedAt: new Date(this.deps.now()).toISOString() };
      })
      .catch((err: unknown) => this.log.debug({ err }, 'supervisor device state unavailable'));
  }

  view() {
    return { ...this.deps.lock.view(), policy: this.deps.policy };
  }
}

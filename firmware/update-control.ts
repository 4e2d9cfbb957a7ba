// When the kit may update: kitd holds the balena update lock while an event is live, orders are
// unsynced or the primary network link is metered (unless the policy is `immediate`), polls the
// supervisor for a pending update, and under `after-event` releases a pending update once the reason
// for the lock is gone (an unmetered link became primary, for one).
import type { UpdateLockReason, UpdatePolicy } from '../core/contracts/run-status.ts';
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

export interface UpdateSituation {
  live: boolean;
  backlog: number;
  shuttingDown: boolean;
  /** the primary network link is metered (firmware/links.ts `meteredHold`); absent: not known to be */
  meteredLink?: boolean;
}

/** Why the lock should be held now, or null. The first reason that stands names it. */
export function lockReason(policy: UpdatePolicy, s: UpdateSituation): UpdateLockReason | null {
  if (policy === 'immediate' || s.shuttingDown) return null;
  if (s.live) return 'event-live';
  if (s.backlog > 0) return 'unsynced-orders';
  // a release downloaded over a cellular modem costs the creator per megabyte: wait for venue Ethernet or Wi-Fi
  if (s.meteredLink) return 'metered-link';
  return null;
}

export class UpdateControl {
  private readonly log = moduleLogger('kitd');
  pendingUpdate: (SupervisorDevice & { checkedAt: string }) | null = null;
  private triggered = false;
  private wanted: string | null = null;
  private lastDeviceAt = -Infinity;

  constructor(private readonly deps: UpdateControlDeps) {}

  /** Take, keep or give back the lock for what the kit is doing; trigger a held-back update after an event. */
  reconcile(s: UpdateSituation): void {
    const { lock, policy } = this.deps;
    const want = lockReason(policy, s);
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

// The kit's lifecycle: booting → preflight → ready ⇄ live → draining → ready | off, with degraded and
// fault overlays (sets of reasons) on top of whatever state the kit is in. Every transition is
// logged and handed to listeners (kitd publishes them on the local bus).
import { LIFECYCLE_STATES, type LifecycleState } from '../core/contracts/run-status.ts';
import { KitError } from '../core/errors.ts';
import { moduleLogger } from '../core/logger.ts';

export { LIFECYCLE_STATES, type LifecycleState };
export type OverlayKind = 'degraded' | 'fault';

const ALLOWED: Record<LifecycleState, readonly LifecycleState[]> = {
  booting: ['preflight', 'off'],
  preflight: ['ready', 'live', 'off'],
  // draining from ready: a safe shutdown flushes sync first even when no event is live
  ready: ['live', 'draining', 'off'],
  live: ['draining', 'ready', 'off'],
  draining: ['ready', 'live', 'off'],
  off: [],
};

export interface Transition {
  v: 1;
  from: LifecycleState;
  to: LifecycleState;
  reason: string;
  at: string;
}

export interface OverlayChange {
  v: 1;
  overlay: OverlayKind;
  reason: string;
  active: boolean;
  at: string;
}

export interface LifecycleView {
  state: LifecycleState;
  since: string;
  overlays: Array<{ kind: OverlayKind; reason: string; since: string }>;
}

export class Lifecycle {
  private readonly log = moduleLogger('lifecycle');
  private current: LifecycleState = 'booting';
  private since: number;
  private readonly overlays = new Map<string, { kind: OverlayKind; reason: string; since: number }>();
  private readonly listeners = new Set<(e: Transition | OverlayChange) => void>();

  constructor(private readonly now: () => number = Date.now) {
    this.since = now();
  }

  get state(): LifecycleState {
    return this.current;
  }

  can(to: LifecycleState): boolean {
    return ALLOWED[this.current].includes(to);
  }

  /** Moves to `to`; a transition the table does not allow is a coded error and changes nothing. */
  transition(to: LifecycleState, reason: string): Transition {
    if (!(LIFECYCLE_STATES as readonly string[]).includes(to)) {
      throw new KitError('BAD_REQUEST', `unknown lifecycle state '${String(to)}'`);
    }
    if (!this.can(to)) {
      throw new KitError('LIFECYCLE_TRANSITION', `cannot go from ${this.current} to ${to}`, {
        from: this.current,
        to,
      });
    }
    const t: Transition = { v: 1, from: this.current, to, reason, at: new Date(this.now()).toISOString() };
    this.current = to;
    this.since = this.now();
    this.log.info({ from: t.from, to, reason }, 'lifecycle transition');
    this.emit(t);
    return t;
  }

  /** Like transition(), but a no-op when already there or not allowed (for level-triggered inputs). */
  tryTransition(to: LifecycleState, reason: string): Transition | undefined {
    if (this.current === to || !this.can(to)) return undefined;
    return this.transition(to, reason);
  }

  /** Raise or clear one overlay reason; returns true when that changed anything. */
  setOverlay(kind: OverlayKind, reason: string, active: boolean): boolean {
    const key = `${kind}:${reason}`;
    if (active === this.overlays.has(key)) return false;
    if (active) this.overlays.set(key, { kind, reason, since: this.now() });
    else this.overlays.delete(key);
    const e: OverlayChange = { v: 1, overlay: kind, reason, active, at: new Date(this.now()).toISOString() };
    this.log[kind === 'fault' && active ? 'error' : 'warn']({ overlay: kind, reason, active }, 'overlay');
    this.emit(e);
    return true;
  }

  has(kind: OverlayKind): boolean {
    for (const o of this.overlays.values()) if (o.kind === kind) return true;
    return false;
  }

  reasons(kind: OverlayKind): string[] {
    return [...this.overlays.values()].filter((o) => o.kind === kind).map((o) => o.reason);
  }

  onChange(cb: (e: Transition | OverlayChange) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  view(): LifecycleView {
    return {
      state: this.current,
      since: new Date(this.since).toISOString(),
      overlays: [...this.overlays.values()].map((o) => ({
        kind: o.kind,
        reason: o.reason,
        since: new Date(o.since).toISOString(),
      })),
    };
  }

  private emit(e: Transition | OverlayChange): void {
    for (const cb of [...this.listeners]) {
      try {
        cb(e);
      } catch (err) {
        this.log.warn({ err }, 'lifecycle listener failed');
      }
    }
  }
}

import type { LinksView } from '../core/contracts/links.ts';
import type { KitdCommand } from '../core/contracts/local-bus.ts';
import type { PowerReading } from '../core/contracts/power.ts';
import { writeRunStatus } from '../core/contracts/run-status.ts';
import { moduleLogger } from '../core/logger.ts';
import { type PollLoop, pollLoop } from '../core/poll-loop.ts';
import { type ActionTaken, KitdActions } from './actions.ts';
import type { ButtonAction } from './buttons.ts';
import { CheckoutWatch } from './checkout-watch.ts';
import { FrontPanel } from './front-panel.ts';
import type { HealthView } from './health.ts';
import { HealthLoop } from './health-loop.ts';
import type { KitdDeps, KitdSettings } from './kitd-deps.ts';
import { buildKitdStatus, type KitdStatus } from './kitd-status.ts';
import { Lifecycle } from './lifecycle.ts';
import { PowerPolicy, summarizeBattery } from './power-policy.ts';
import { UpdateControl, type UpdatePolicy } from './update-control.ts';
import { runStatusHeartbeat, Watchdog } from './watchdog.ts';

const LINKS_OFF: LinksView = {
  source: 'off',
  state: 'off',
  links: [],
  primaryMetered: null,
  checkedAt: null,
  lastOkAt: null,
  problems: [],
};

export type { KitdDeps, KitdSettings, UpdatePolicy };

export class Kitd {
  private readonly log = moduleLogger('kitd');
  readonly lifecycle: Lifecycle;
  readonly policy: PowerPolicy;
  readonly watchdog: Watchdog;
  private readonly panel: FrontPanel;
  private readonly checkout: CheckoutWatch;
  private readonly actions: KitdActions;
  private readonly health: HealthLoop;
  private readonly updates: UpdateControl;
  private readonly unsubs: Array<() => void> = [];
  private tick: PollLoop | undefined;
  private polling = false;

  constructor(private readonly deps: KitdDeps) {
    const { settings, timers } = deps;
    const now = () => timers.now();
    this.lifecycle = new Lifecycle(now);
    this.checkout = new CheckoutWatch(deps.checkout, now);
    const onPress = (p: Parameters<KitdActions['onPress']>[0]) => void this.actions.onPress(p);
    this.panel = new FrontPanel({ ...deps, ...settings, lifecycle: this.lifecycle, onPress });
    this.actions = new KitdActions({
      ...deps,
      checkout: this.checkout,
      panel: this.panel,
      lifecycle: this.lifecycle,
      buttons: settings.buttons,
      powerLevel: () => this.policy.level,
      step: () => this.step(),
      publish: () => this.publish(),
    });
    this.policy = new PowerPolicy(
      {
        media: (cmd) => this.actions.media(cmd),
        notify: (e) => deps.bus?.publishEvent({ ...e, at: new Date(now()).toISOString() }),
        flushSync: (ms) => this.actions.flushSync(ms),
        shutdown: (reason) => this.actions.safeShutdown(reason),
      },
      settings.power,
      now,
    );
    this.watchdog = new Watchdog(
      (svc) => runStatusHeartbeat(deps.dataDir, svc),
      (svc) => this.actions.restartService(svc),
      settings.watchdog,
      now,
    );
    const { policy, watchdog } = this;
    const hub = settings.hubHttpUrl ? { hubHttpUrl: settings.hubHttpUrl } : {};
    this.health = new HealthLoop({ ...deps, ...hub, everyMs: settings.healthEveryMs, now, policy, watchdog });
    const { updatePolicy, deviceEveryMs } = settings;
    this.updates = new UpdateControl({ ...deps, policy: updatePolicy, deviceEveryMs, now });
  }

  get actionsTaken(): readonly ActionTaken[] {
    return this.actions.taken;
  }

  async start(): Promise<void> {
    const { deps } = this;
    this.unsubs.push(
      this.lifecycle.onChange((e) => {
        deps.bus?.publishEvent(e as unknown as Record<string, unknown>);
        this.repaint();
      }),
    );
    deps.lock.healStale();
    await this.panel.open();
    this.lifecycle.transition('preflight', 'hardware opened');
    deps.links?.start();
    for (const s of deps.powerSources) {
      await s
        .start()
        .catch((err: unknown) => this.log.error({ err, device: s.device }, 'power source failed'));
    }
    deps.bus?.onHeartbeat((svc, at) => this.watchdog.heartbeat(svc, at));
    deps.bus?.onCommand((cmd) => void this.command(cmd));
    const onError = (err: unknown) => this.log.warn({ err }, 'kitd tick failed');
    this.tick = pollLoop(1000, () => this.step(), { aligned: true, timers: deps.timers, onError });
    await this.step();
  }

  async stop(): Promise<void> {
    this.tick?.stop();
    await this.deps.links?.stop();
    for (const u of this.unsubs.splice(0)) u();
    await this.panel.close();
    for (const s of this.deps.powerSources) await s.stop().catch(() => undefined);
    // the lock is a lease on a live kit; a kitd that stops on purpose gives it back
    this.deps.lock.release();
    await this.panel.release();
  }

  /** One tick; public so tests can drive it without waiting a second. */
  async step(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      await this.checkout.poll();
      this.evaluate();
      this.health.maybeRun();
      this.updates.maybePollDevice();
      this.publish();
    } finally {
      this.polling = false;
    }
  }

  status(): KitdStatus {
    const { lifecycle, panel, policy, updates, watchdog } = this;
    return buildKitdStatus({
      ...{ lifecycle, panel, policy, updates, watchdog },
      readings: this.readings(),
      health: this.health.view,
      moments: this.actions.moments,
      bus: this.deps.bus,
      supervisor: this.deps.supervisor !== undefined,
      links: this.deps.links?.view() ?? LINKS_OFF,
    });
  }

  safeShutdown(reason: string): Promise<void> {
    return this.actions.safeShutdown(reason);
  }

  perform(action: ButtonAction): Promise<void> {
    return this.actions.perform(action);
  }

  /** A command from the local bus (or a test), already checked against the contract. */
  command(cmd: KitdCommand): Promise<{ ok: boolean; error?: string }> {
    return this.actions.command(cmd);
  }

  /** Runs every health probe once and scores them; exposed for `popkit status` and tests. */
  measureHealth(): Promise<HealthView> {
    return this.health.measure();
  }

  private readings(): PowerReading[] {
    return this.deps.powerSources.map((s) => s.latest()).filter((r): r is PowerReading => r !== undefined);
  }

  private evaluate(): void {
    const { settings } = this.deps;
    const { lifecycle: lc, checkout: co } = this;
    const shuttingDown = this.actions.shutdownStarted;
    lc.setOverlay('fault', 'checkout-unreachable', co.silentFor(settings.checkoutFaultMs));
    if (lc.state !== 'off' && !shuttingDown && co.last) {
      if (lc.state === 'preflight') lc.tryTransition(co.live ? 'live' : 'ready', 'checkout answering');
      else if (co.live) lc.tryTransition('live', 'event started');
      else if (lc.state === 'live') lc.tryTransition(co.backlog > 0 ? 'draining' : 'ready', 'event stopped');
      else if (lc.state === 'draining' && co.backlog === 0) lc.tryTransition('ready', 'backlog drained');
    }

    const battery = summarizeBattery(this.readings(), settings.capacityWh);
    lc.setOverlay('fault', 'power-readings-stale', battery.stale);
    const level = this.policy.evaluate(battery, co.minutesLeft(settings.plannedEventMin));
    lc.setOverlay('degraded', 'power-low', level === 'low');
    lc.setOverlay('fault', 'power-critical', level === 'critical');

    const meteredLink = this.deps.links?.meteredHold() ?? false;
    this.updates.reconcile({ live: co.live, backlog: co.backlog, shuttingDown, meteredLink });

    this.watchdog.check();
    lc.setOverlay('degraded', 'service-down', this.watchdog.summary().down > 0);
    lc.setOverlay('degraded', 'health-low', this.health.low);
    this.repaint();
  }

  private repaint(): void {
    const { lifecycle: lc, checkout: co } = this;
    this.panel.repaint({
      state: lc.state,
      fault: lc.has('fault'),
      degraded: lc.has('degraded'),
      offlineQueueing: co.backlog > 0 && co.link !== undefined && co.link !== 'up',
    });
  }

  private publish(): void {
    const s = this.status();
    try {
      writeRunStatus(this.deps.dataDir, 'kitd', s);
    } catch (err) {
      this.log.warn({ err }, 'cannot write status file');
    }
    this.deps.bus?.publishStatus(s);
  }
}

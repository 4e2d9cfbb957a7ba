// kitd: the kit's control plane. Collaborators come in through the constructor (cli/commands/kitd.ts
// wires the real ones, tests the simulated ones); start() opens the lines and runs one aligned tick a
// second that reads checkout's state, steps the lifecycle, the power policy, the update lock and the
// watchdog, repaints the LEDs and writes the status that /v1/status and the local bus show.

import { KitError } from '../core/errors.ts';
import { moduleLogger } from '../core/logger.ts';
import { readServiceStatus, writeServiceStatus } from '../core/run-status.ts';
import type { BoardProfile } from '../hardware/boards/index.ts';
import type { GpioChipProvider, GpioLine } from '../hardware/gpio/types.ts';
import type { PowerReading, PowerSource } from '../hardware/power/reading.ts';
import type { SimGpio } from '../hardware/sim/gpio-sim.ts';
import {
  BUTTON_ACTIONS,
  type ButtonAction,
  ButtonClassifier,
  type ButtonHealth,
  type ButtonMap,
  type ButtonOptions,
  type PressEvent,
} from './buttons.ts';
import type { CheckoutClient, CheckoutStatus } from './checkout-client.ts';
import { type EdgeTimer, periodicTimer, type TimerHost } from './edge-timer.ts';
import {
  combineHealth,
  fsyncProbe,
  HEALTH_WEIGHTS,
  type HealthComponent,
  type HealthView,
  networkProbe,
  readLoadPerCore,
  scoreBattery,
  scoreCpu,
  scoreDisk,
  scoreNetwork,
  scoreServices,
} from './health.ts';
import { LedDriver, ledsFor } from './led-patterns.ts';
import { Lifecycle } from './lifecycle.ts';
import type { KitdBus } from './local-bus.ts';
import { type MediaCommand, PowerPolicy, type PowerPolicyOptions, summarizeBattery } from './power-policy.ts';
import type { SupervisorClient, SupervisorDevice } from './supervisor-client.ts';
import type { UpdateLock } from './update-lock.ts';
import { Watchdog, type WatchdogOptions } from './watchdog.ts';

export type UpdatePolicy = 'after-event' | 'when-idle' | 'immediate';

export interface KitdSettings {
  plannedEventMin: number;
  capacityWh?: number;
  power: Partial<PowerPolicyOptions>;
  buttons: ButtonMap;
  buttonOptions: Partial<ButtonOptions>;
  watchdog: Partial<WatchdogOptions>;
  updatePolicy: UpdatePolicy;
  /** hub HTTP base for the network health probe */
  hubHttpUrl?: string;
  healthEveryMs: number;
  deviceEveryMs: number;
  /** checkout silent this long raises the fault overlay */
  checkoutFaultMs: number;
  /** buttons wired to ground with pull-ups read active-low; the simulator speaks logical levels */
  buttonsActiveLow: boolean;
}

export interface KitdDeps {
  kitId: string;
  dataDir: string;
  board: BoardProfile;
  gpio: GpioChipProvider;
  powerSources: PowerSource[];
  checkout: CheckoutClient;
  lock: UpdateLock;
  timers: TimerHost;
  settings: KitdSettings;
  bus?: KitdBus;
  supervisor?: SupervisorClient;
  /** the simulated chip when the board is `sim`, for `press` commands */
  simGpio?: SimGpio;
}

export class Kitd {
  private readonly log = moduleLogger('kitd');
  readonly lifecycle: Lifecycle;
  readonly policy: PowerPolicy;
  readonly watchdog: Watchdog;
  private leds: LedDriver | undefined;
  private readonly lines: GpioLine[] = [];
  private readonly buttons = new Map<string, ButtonClassifier>();
  private readonly unsubs: Array<() => void> = [];
  private tick: EdgeTimer | undefined;
  private polling = false;
  private last: CheckoutStatus | undefined;
  private lastOkAt: number;
  private health: HealthView = { score: 0, components: {}, at: new Date(0).toISOString() };
  private healthRunning = false;
  private lastHealthAt = -Infinity;
  private lastDeviceAt = -Infinity;
  private pendingUpdate: (SupervisorDevice & { checkedAt: string }) | null = null;
  private updateTriggered = false;
  private lockWanted: string | null = null;
  private moments = 0;
  private shuttingDown: Promise<void> | undefined;
  readonly actionsTaken: Array<{ action: ButtonAction; press: PressEvent; ok: boolean; error?: string }> = [];

  constructor(private readonly deps: KitdDeps) {
    const now = () => deps.timers.now();
    this.lastOkAt = now();
    this.lifecycle = new Lifecycle(now);
    this.policy = new PowerPolicy(
      {
        media: (cmd) => this.mediaCommand(cmd),
        notify: (e) => deps.bus?.publishEvent({ ...e, at: new Date(now()).toISOString() }),
        flushSync: (ms) => this.flushSync(ms),
        shutdown: (reason) => this.safeShutdown(reason),
      },
      deps.settings.power,
      now,
    );
    this.watchdog = new Watchdog(
      (svc) => {
        const t = Date.parse(readServiceStatus(deps.dataDir, svc)?.updatedAt ?? '');
        return Number.isFinite(t) ? t : undefined;
      },
      (svc) => this.restartService(svc),
      deps.settings.watchdog,
      now,
    );
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
    await this.openLines();
    this.lifecycle.transition('preflight', 'hardware opened');
    for (const s of deps.powerSources) {
      await s
        .start()
        .catch((err: unknown) => this.log.error({ err, device: s.device }, 'power source failed'));
    }
    deps.bus?.onHeartbeat((svc, at) => this.watchdog.heartbeat(svc, at));
    deps.bus?.onCommand((cmd) => void this.command(cmd));
    this.tick = periodicTimer(deps.timers, 1000, () => void this.step());
    await this.step();
  }

  async stop(): Promise<void> {
    this.tick?.disarm();
    for (const u of this.unsubs.splice(0)) u();
    for (const b of this.buttons.values()) b.close();
    this.leds?.stop();
    for (const s of this.deps.powerSources) await s.stop().catch(() => undefined);
    // the lock is a lease on a live kit; a kitd that stops on purpose gives it back
    this.deps.lock.release();
    for (const l of this.lines.splice(0)) await l.close().catch(() => undefined);
  }

  /** One tick; public so tests can drive it without waiting a second. */
  async step(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      await this.pollCheckout();
      this.evaluate();
      this.maybeHealth();
      this.maybeDevice();
      this.publish();
    } finally {
      this.polling = false;
    }
  }

  status(): Record<string, unknown> {
    const lc = this.lifecycle.view();
    return {
      state: lc.state,
      since: lc.since,
      overlays: lc.overlays,
      leds: this.leds?.view() ?? null,
      power: this.readings(),
      health: this.health,
      powerPolicy: this.policy.view(),
      updateLock: { ...this.deps.lock.view(), policy: this.deps.settings.updatePolicy },
      pendingUpdate: this.pendingUpdate,
      services: this.watchdog.view(),
      buttons: Object.fromEntries([...this.buttons].map(([k, b]) => [k, b.health])),
      moments: this.moments,
      bus: this.deps.bus ? { connected: this.deps.bus.connected } : null,
      supervisor: this.deps.supervisor ? 'balena' : 'none',
    };
  }

  /** Flush, release the lock, go off, and ask the host to power down (balena) when there is one. */
  safeShutdown(reason: string): Promise<void> {
    this.shuttingDown ??= this.runShutdown(reason);
    return this.shuttingDown;
  }

  private async runShutdown(reason: string): Promise<void> {
    const lc = this.lifecycle;
    lc.tryTransition('draining', `shutdown: ${reason}`);
    this.mediaCommand({ v: 1, cmd: 'pause' });
    const r = this.policy.level === 'critical' ? { remaining: 0 } : await this.flushSync(30_000);
    this.deps.lock.release();
    lc.tryTransition('off', `shutdown: ${reason} (${r.remaining} orders left on disk)`);
    this.publish();
    const sup = this.deps.supervisor;
    if (!sup) {
      this.log.warn({ reason }, 'no balena supervisor: kitd stays off, the host keeps running');
      return;
    }
    try {
      await sup.shutdown({ force: false });
    } catch (err) {
      // another service's lock: a brown-out would be worse than overriding it
      if ((err as { code?: string }).code !== 'LOCKED') throw err;
      this.log.warn('shutdown refused by an update lock; forcing');
      await sup.shutdown({ force: true });
    }
  }

  private readings(): PowerReading[] {
    return this.deps.powerSources.map((s) => s.latest()).filter((r): r is PowerReading => r !== undefined);
  }

  private async openLines(): Promise<void> {
    const { gpio, board, timers, settings } = this.deps;
    try {
      const green = await gpio.open('ledGreen', board.gpio.ledGreen, { direction: 'out' });
      const red = await gpio.open('ledRed', board.gpio.ledRed, { direction: 'out' });
      this.lines.push(green, red);
      this.leds = new LedDriver(green, red, timers);
      this.leds.start();
    } catch (err) {
      this.lifecycle.setOverlay('fault', 'leds-unavailable', true);
      this.log.error({ err }, 'LED lines unavailable');
    }
    for (const [id, key] of [
      ['a', 'buttonA'],
      ['b', 'buttonB'],
    ] as const) {
      try {
        const line = await gpio.open(key, board.gpio[key], {
          direction: 'in',
          edge: 'both',
          debounceMs: 20,
          activeLow: settings.buttonsActiveLow,
        });
        this.lines.push(line);
        const cls = new ButtonClassifier(
          id,
          timers,
          (p) => void this.onPress(p),
          (h) => this.onButtonHealth(id, h.health),
          settings.buttonOptions,
        );
        cls.initial(await line.read());
        this.unsubs.push(line.watch((v, at) => cls.input(v, at)));
        this.buttons.set(id, cls);
      } catch (err) {
        this.lifecycle.setOverlay('degraded', `button-${id}-unavailable`, true);
        this.log.error({ err, button: id }, 'button line unavailable');
      }
    }
  }

  private onButtonHealth(id: string, h: ButtonHealth): void {
    this.lifecycle.setOverlay('degraded', `button-${id}-stuck`, h === 'stuck');
    this.lifecycle.setOverlay('degraded', `button-${id}-chattering`, h === 'chattering');
  }

  private async onPress(p: PressEvent): Promise<void> {
    const action = this.deps.settings.buttons.get(`${p.button as 'a' | 'b'}.${p.kind}`) ?? 'none';
    this.deps.bus?.publishEvent({ type: 'button', button: p.button, press: p.kind, action });
    if (action === 'none') return;
    try {
      await this.perform(action);
      this.actionsTaken.push({ action, press: p, ok: true });
    } catch (err) {
      this.actionsTaken.push({ action, press: p, ok: false, error: (err as Error).message });
      this.log.warn({ err, action }, 'button action failed');
    }
  }

  async perform(action: ButtonAction): Promise<void> {
    const { checkout, bus, supervisor } = this.deps;
    switch (action) {
      case 'start-event':
        await checkout.startEvent();
        break;
      case 'stop-event':
        await checkout.stopEvent();
        break;
      case 'toggle-event':
        if (this.last?.event?.live) await checkout.stopEvent();
        else await checkout.startEvent();
        break;
      case 'mark-moment':
        this.moments++;
        bus?.publishEvent({
          type: 'moment',
          n: this.moments,
          at: new Date(this.deps.timers.now()).toISOString(),
        });
        break;
      case 'identify':
        this.leds?.identify();
        await supervisor?.blink().catch((err: unknown) => this.log.warn({ err }, 'supervisor blink failed'));
        break;
      case 'safe-shutdown':
        await this.safeShutdown('button');
        break;
      case 'none':
        break;
    }
    await this.step();
  }

  /**
   * Commands on the local bus: `identify`, `action` (any button action by name) and, on the sim
   * board, `press` (a simulated button press, so a laptop kit can be driven like a real box).
   */
  async command(cmd: Record<string, unknown>): Promise<{ ok: boolean; error?: string }> {
    try {
      if (cmd['cmd'] === 'identify') await this.perform('identify');
      else if (cmd['cmd'] === 'action' && typeof cmd['action'] === 'string') {
        if (!(BUTTON_ACTIONS as readonly string[]).includes(cmd['action'])) {
          throw new KitError('BAD_REQUEST', `unknown action '${cmd['action']}'`);
        }
        await this.perform(cmd['action'] as ButtonAction);
      } else if (cmd['cmd'] === 'press') {
        const sim = this.deps.simGpio;
        const button = cmd['button'];
        const ms = typeof cmd['ms'] === 'number' && cmd['ms'] > 0 && cmd['ms'] <= 60_000 ? cmd['ms'] : 150;
        if (!sim) throw new KitError('BAD_REQUEST', 'press is only for the simulated board');
        if (button !== 'a' && button !== 'b') throw new KitError('BAD_REQUEST', "button must be 'a' or 'b'");
        await sim.press(button === 'a' ? 'buttonA' : 'buttonB', ms);
      } else throw new KitError('BAD_REQUEST', `unknown kitd command ${JSON.stringify(cmd['cmd'])}`);
      return { ok: true };
    } catch (err) {
      this.log.warn({ err, cmd }, 'kitd command refused');
      return { ok: false, error: (err as Error).message };
    }
  }

  private async pollCheckout(): Promise<void> {
    try {
      this.last = await this.deps.checkout.status();
      this.lastOkAt = this.deps.timers.now();
    } catch (err) {
      this.log.debug({ err }, 'checkout status unavailable');
    }
  }

  private evaluate(): void {
    const { settings, timers, lock } = this.deps;
    const now = timers.now();
    const lc = this.lifecycle;
    const st = this.last;
    const live = st?.event?.live === true;
    const backlog = Number(st?.sync?.backlog?.orders ?? 0);
    const reachable = now - this.lastOkAt < settings.checkoutFaultMs && st !== undefined;
    lc.setOverlay(
      'fault',
      'checkout-unreachable',
      !reachable && now - this.lastOkAt >= settings.checkoutFaultMs,
    );

    if (lc.state !== 'off' && !this.shuttingDown && st) {
      if (lc.state === 'preflight') lc.tryTransition(live ? 'live' : 'ready', 'checkout answering');
      else if (live) lc.tryTransition('live', 'event started');
      else if (lc.state === 'live') lc.tryTransition(backlog > 0 ? 'draining' : 'ready', 'event stopped');
      else if (lc.state === 'draining' && backlog === 0) lc.tryTransition('ready', 'backlog drained');
    }

    // power
    const readings = this.readings();
    const battery = summarizeBattery(readings, settings.capacityWh);
    lc.setOverlay('fault', 'power-readings-stale', battery.stale);
    const startedAt = st?.event?.startedAt ? Date.parse(st.event.startedAt) : Number.NaN;
    const neededMin =
      live && Number.isFinite(startedAt)
        ? Math.max(0, settings.plannedEventMin - (now - startedAt) / 60_000)
        : settings.plannedEventMin;
    const level = this.policy.evaluate(battery, neededMin);
    lc.setOverlay('degraded', 'power-low', level === 'low');
    lc.setOverlay('fault', 'power-critical', level === 'critical');

    // update lock
    let want: string | null = null;
    if (settings.updatePolicy !== 'immediate' && !this.shuttingDown) {
      if (live) want = 'event-live';
      else if (backlog > 0) want = 'unsynced-orders';
    }
    const wasWanted = this.lockWanted;
    this.lockWanted = want;
    lock.reconcile(want);
    if (wasWanted && !want) this.updateTriggered = false;
    if (
      !want &&
      settings.updatePolicy === 'after-event' &&
      !this.updateTriggered &&
      this.pendingUpdate?.update_pending
    ) {
      this.updateTriggered = true;
      this.deps.supervisor
        ?.update({ force: false })
        .then(() => this.log.info('event over: pending update released'))
        .catch((err: unknown) => this.log.warn({ err }, 'update trigger failed'));
    }

    // services
    this.watchdog.check();
    const ws = this.watchdog.summary();
    lc.setOverlay('degraded', 'service-down', ws.down > 0);
    lc.setOverlay(
      'degraded',
      'health-low',
      this.health.components['cpu'] !== undefined && this.health.score < 50,
    );
    this.repaint();
  }

  private repaint(): void {
    if (!this.leds) return;
    const st = this.last;
    const backlog = Number(st?.sync?.backlog?.orders ?? 0);
    const link = st?.sync?.link;
    const leds = ledsFor({
      state: this.lifecycle.state,
      fault: this.lifecycle.has('fault'),
      degraded: this.lifecycle.has('degraded'),
      offlineQueueing: backlog > 0 && link !== undefined && link !== 'up',
    });
    this.leds.set(leds.green, leds.red);
  }

  private maybeHealth(): void {
    const now = this.deps.timers.now();
    if (this.healthRunning || now - this.lastHealthAt < this.deps.settings.healthEveryMs) return;
    this.lastHealthAt = now;
    this.healthRunning = true;
    this.measureHealth()
      .then((h) => {
        this.health = h;
      })
      .catch((err: unknown) => this.log.warn({ err }, 'health probe failed'))
      .finally(() => {
        this.healthRunning = false;
      });
  }

  /** Runs every probe once and scores them; exposed for `popkit status` and tests. */
  async measureHealth(): Promise<HealthView> {
    const { settings, dataDir } = this.deps;
    const components: Record<string, HealthComponent> = {};
    const load = readLoadPerCore();
    components['cpu'] = {
      score: scoreCpu(load),
      weight: HEALTH_WEIGHTS.cpu,
      loadPerCore: Math.round(load * 100) / 100,
      detail: `load ${load.toFixed(2)} per core`,
    };
    try {
      const ms = await fsyncProbe(`${dataDir}/run`);
      components['disk'] = {
        score: scoreDisk(ms),
        weight: HEALTH_WEIGHTS.disk,
        fsyncMs: Math.round(ms * 10) / 10,
        detail: `fsync ${ms.toFixed(1)} ms`,
      };
    } catch (err) {
      components['disk'] = {
        score: 0,
        weight: HEALTH_WEIGHTS.disk,
        detail: `fsync failed: ${(err as Error).message}`,
      };
    }
    if (settings.hubHttpUrl) {
      const n = await networkProbe(`${settings.hubHttpUrl}/healthz`, { count: 3, timeoutMs: 1500 });
      components['network'] = {
        score: scoreNetwork(n),
        weight: HEALTH_WEIGHTS.network,
        ...n,
        detail: n.received === 0 ? 'hub unreachable' : `loss ${n.lossPct} %, jitter ${n.jitterMs} ms`,
      };
    }
    const b = this.policy.view();
    components['battery'] = {
      score: scoreBattery({ ...b.battery, neededMin: b.neededMin }),
      weight: HEALTH_WEIGHTS.battery,
      socPct: b.battery.socPct,
      ttgMin: b.battery.ttgMin,
      neededMin: Math.round(b.neededMin),
      detail:
        b.battery.socPct === undefined
          ? 'no battery reading'
          : `SOC ${b.battery.socPct.toFixed(0)} %${b.battery.ttgMin !== undefined ? `, ${b.battery.ttgMin} min to go` : ''}`,
    };
    const ws = this.watchdog.summary();
    components['services'] = {
      score: scoreServices(ws),
      weight: HEALTH_WEIGHTS.services,
      ...ws,
      detail: `${ws.down} down, ${ws.recentRestarts} restarted lately`,
    };
    return {
      score: combineHealth(components),
      components,
      at: new Date(this.deps.timers.now()).toISOString(),
    };
  }

  private maybeDevice(): void {
    const sup = this.deps.supervisor;
    const now = this.deps.timers.now();
    if (!sup || now - this.lastDeviceAt < this.deps.settings.deviceEveryMs) return;
    this.lastDeviceAt = now;
    sup
      .device()
      .then((d) => {
        this.pendingUpdate = { ...d, checkedAt: new Date(this.deps.timers.now()).toISOString() };
      })
      .catch((err: unknown) => this.log.debug({ err }, 'supervisor device state unavailable'));
  }

  private publish(): void {
    const s = this.status();
    try {
      writeServiceStatus(this.deps.dataDir, 'kitd', s);
    } catch (err) {
      this.log.warn({ err }, 'cannot write status file');
    }
    this.deps.bus?.publishStatus(s);
  }

  private mediaCommand(cmd: MediaCommand): void {
    this.log.info({ cmd }, 'media command');
    this.deps.bus?.command('media', cmd as unknown as Record<string, unknown>);
  }

  private async restartService(service: string): Promise<void> {
    const sup = this.deps.supervisor;
    if (sup) {
      // the supervisor refuses restart-service while an update lock exists; when the lock is ours (a
      // live event) it guards against OTA, not against reviving a dead service, so override it
      await sup.restartService(service, { force: this.deps.lock.view().held });
      return;
    }
    if (!this.deps.bus) throw new Error('no supervisor and no local bus to ask for a restart');
    this.deps.bus.command('supervisor', { cmd: 'restart', service });
  }

  /** Ask sync to push everything now; wait until no orders are left or the link cannot take more. */
  private async flushSync(timeoutMs: number): Promise<{ remaining: number; drained: boolean }> {
    this.deps.bus?.command('sync', { cmd: 'flush' });
    const { timers } = this.deps;
    const deadline = timers.now() + timeoutMs;
    let remaining = Number(this.last?.sync?.backlog?.orders ?? 0);
    while (timers.now() < deadline) {
      await this.pollCheckout();
      remaining = Number(this.last?.sync?.backlog?.orders ?? 0);
      if (remaining === 0) return { remaining, drained: true };
      if (this.last?.sync?.link !== undefined && this.last.sync.link !== 'up') break;
      await new Promise<void>((r) => timers.setTimeout(r, 1000));
    }
    return { remaining, drained: remaining === 0 };
  }
}

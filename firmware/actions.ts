// What kitd does when asked, by a button or a command on the local bus: start or stop the event,
// mark a moment, identify the box, shut down safely; and the requests it makes of other processes
// on the way (media steps, sync flush, service restarts).
import type { KitdCommand } from '../core/contracts/local-bus.ts';
import type { MediaCommand } from '../core/contracts/media.ts';
import { KitError } from '../core/errors.ts';
import { moduleLogger } from '../core/logger.ts';
import type { SimGpio } from '../hardware/sim/gpio-sim.ts';
import type { ButtonAction, ButtonMap, PressEvent } from './buttons.ts';
import type { CheckoutWatch } from './checkout-watch.ts';
import type { TimerHost } from './edge-timer.ts';
import type { FrontPanel } from './front-panel.ts';
import type { Lifecycle } from './lifecycle.ts';
import type { KitdBus } from './local-bus.ts';
import type { PowerLevel } from './power-policy.ts';
import type { SupervisorClient } from './supervisor-client.ts';
import type { UpdateLock } from './update-lock.ts';

export interface ActionsDeps {
  checkout: CheckoutWatch;
  panel: FrontPanel;
  lifecycle: Lifecycle;
  lock: UpdateLock;
  timers: TimerHost;
  buttons: ButtonMap;
  bus?: KitdBus;
  supervisor?: SupervisorClient;
  /** services that are threads of kitd's own process (KitdDeps.inProcess) */
  inProcess?: readonly string[];
  /** the simulated chip when the board is `sim`, for `press` commands */
  simGpio?: SimGpio;
  powerLevel(): PowerLevel;
  /** one kitd tick, run after every action so its effect shows at once */
  step(): Promise<void>;
  publish(): void;
}

export interface ActionTaken {
  action: ButtonAction;
  press: PressEvent;
  ok: boolean;
  error?: string;
}

export class KitdActions {
  private readonly log = moduleLogger('kitd');
  moments = 0;
  readonly taken: ActionTaken[] = [];
  private shuttingDown: Promise<void> | undefined;

  constructor(private readonly deps: ActionsDeps) {}

  get shutdownStarted(): boolean {
    return this.shuttingDown !== undefined;
  }

  async onPress(p: PressEvent): Promise<void> {
    const action = this.deps.buttons.get(`${p.button as 'a' | 'b'}.${p.kind}`) ?? 'none';
    this.deps.bus?.publishEvent({ type: 'button', button: p.button, press: p.kind, action });
    if (action === 'none') return;
    try {
      await this.perform(action);
      this.taken.push({ action, press: p, ok: true });
    } catch (err) {
      this.taken.push({ action, press: p, ok: false, error: (err as Error).message });
      this.log.warn({ err, action }, 'button action failed');
    }
  }

  async perform(action: ButtonAction): Promise<void> {
    const { checkout, bus, supervisor } = this.deps;
    switch (action) {
      case 'start-event':
        await checkout.client.startEvent();
        break;
      case 'stop-event':
        await checkout.client.stopEvent();
        break;
      case 'toggle-event':
        if (checkout.live) await checkout.client.stopEvent();
        else await checkout.client.startEvent();
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
        this.deps.panel.identify();
        await supervisor?.blink().catch((err: unknown) => this.log.warn({ err }, 'supervisor blink failed'));
        break;
      case 'safe-shutdown':
        await this.safeShutdown('button');
        break;
      case 'none':
        break;
    }
    await this.deps.step();
  }

  /**
   * Commands on the local bus: `identify`, `action` (any button action by name) and, on the sim
   * board, `press` (a simulated button press, so a laptop kit can be driven like a real box).
   */
  async command(cmd: KitdCommand): Promise<{ ok: boolean; error?: string }> {
    try {
      if (cmd.cmd === 'identify') await this.perform('identify');
      else if (cmd.cmd === 'action') await this.perform(cmd.action);
      else {
        const sim = this.deps.simGpio;
        if (!sim) throw new KitError('BAD_REQUEST', 'press is only for the simulated board');
        await sim.press(cmd.button === 'a' ? 'buttonA' : 'buttonB', cmd.ms ?? 150);
      }
      return { ok: true };
    } catch (err) {
      this.log.warn({ err, cmd }, 'kitd command refused');
      return { ok: false, error: (err as Error).message };
    }
  }

  /** Flush, release the lock, go off, and ask the host to power down (balena) when there is one. */
  safeShutdown(reason: string): Promise<void> {
    this.shuttingDown ??= this.runShutdown(reason);
    return this.shuttingDown;
  }

  private async runShutdown(reason: string): Promise<void> {
    const lc = this.deps.lifecycle;
    lc.tryTransition('draining', `shutdown: ${reason}`);
    this.media({ v: 1, cmd: 'pause' });
    const r = this.deps.powerLevel() === 'critical' ? { remaining: 0 } : await this.flushSync(30_000);
    this.deps.lock.release();
    lc.tryTransition('off', `shutdown: ${reason} (${r.remaining} orders left on disk)`);
    this.deps.publish();
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

  media(cmd: MediaCommand): void {
    this.log.info({ cmd }, 'media command');
    this.deps.bus?.commandMedia(cmd);
  }

  async restartService(service: string): Promise<void> {
    const sup = this.deps.supervisor;
    // a thread of this very process (the combined kit): no balena service of that name exists, the
    // kit process restarts the thread when asked over the local bus
    const inProcess = this.deps.inProcess?.includes(service) === true;
    if (sup && !inProcess) {
      // the supervisor refuses restart-service while an update lock exists; when the lock is ours (a
      // live event) it guards against OTA, not against reviving a dead service, so override it
      await sup.restartService(service, { force: this.deps.lock.view().held });
      return;
    }
    if (!this.deps.bus) throw new Error('no supervisor and no local bus to ask for a restart');
    this.deps.bus.requestRestart(service);
  }

  /** Ask sync to push everything now; wait until no orders are left or the link cannot take more. */
  async flushSync(timeoutMs: number): Promise<{ remaining: number; drained: boolean }> {
    const { bus, timers, checkout } = this.deps;
    bus?.flushSync();
    const deadline = timers.now() + timeoutMs;
    let remaining = checkout.backlog;
    while (timers.now() < deadline) {
      await checkout.poll();
      remaining = checkout.backlog;
      if (remaining === 0) return { remaining, drained: true };
      if (checkout.link !== undefined && checkout.link !== 'up') break;
      await new Promise<void>((r) => timers.setTimeout(r, 1000));
    }
    return { remaining, drained: remaining === 0 };
  }
}

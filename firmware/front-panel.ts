// kitd's front panel: the two LEDs (state on green, trouble on red) and the two buttons. Opening a line
// that is not there becomes an overlay on the lifecycle (fault for the LEDs, degraded for a button),
// never a crash; a stuck or chattering button is an overlay too until it calms down.
import { moduleLogger } from '../core/logger.ts';
import type { BoardProfile } from '../hardware/boards/index.ts';
import type { GpioChipProvider, GpioLine } from '../hardware/gpio/types.ts';
import { ButtonClassifier, type ButtonHealth, type ButtonOptions, type PressEvent } from './buttons.ts';
import type { TimerHost } from './edge-timer.ts';
import { LedDriver, type LedInputs, type LedView, ledsFor } from './led-patterns.ts';
import type { Lifecycle } from './lifecycle.ts';

export interface FrontPanelDeps {
  gpio: GpioChipProvider;
  board: BoardProfile;
  timers: TimerHost;
  lifecycle: Lifecycle;
  buttonOptions: Partial<ButtonOptions>;
  /** buttons wired to ground with pull-ups read active-low; the simulator speaks logical levels */
  buttonsActiveLow: boolean;
  onPress(p: PressEvent): void;
}

export class FrontPanel {
  private readonly log = moduleLogger('kitd');
  private leds: LedDriver | undefined;
  private readonly lines: GpioLine[] = [];
  private readonly buttons = new Map<string, ButtonClassifier>();
  private readonly unwatch: Array<() => void> = [];

  constructor(private readonly deps: FrontPanelDeps) {}

  async open(): Promise<void> {
    await this.openLeds();
    await this.openButton('a', 'buttonA');
    await this.openButton('b', 'buttonB');
  }

  async close(): Promise<void> {
    for (const u of this.unwatch.splice(0)) u();
    for (const b of this.buttons.values()) b.close();
    this.leds?.stop();
  }

  /** Gives the GPIO lines back (after whatever else must happen while the LEDs still show it). */
  async release(): Promise<void> {
    for (const l of this.lines.splice(0)) await l.close().catch(() => undefined);
  }

  repaint(s: LedInputs): void {
    if (!this.leds) return;
    const leds = ledsFor(s);
    this.leds.set(leds.green, leds.red);
  }

  identify(): void {
    this.leds?.identify();
  }

  ledView(): LedView | null {
    return this.leds?.view() ?? null;
  }

  buttonHealth(): Record<string, ButtonHealth> {
    return Object.fromEntries([...this.buttons].map(([k, b]) => [k, b.health]));
  }

  private async openLeds(): Promise<void> {
    const { gpio, board, timers, lifecycle } = this.deps;
    try {
      const green = await gpio.open('ledGreen', board.gpio.ledGreen, { direction: 'out' });
      const red = await gpio.open('ledRed', board.gpio.ledRed, { direction: 'out' });
      this.lines.push(green, red);
      this.leds = new LedDriver(green, red, timers);
      this.leds.start();
    } catch (err) {
      lifecycle.setOverlay('fault', 'leds-unavailable', true);
      this.log.error({ err }, 'LED lines unavailable');
    }
  }

  private async openButton(id: 'a' | 'b', key: 'buttonA' | 'buttonB'): Promise<void> {
    const { gpio, board, timers, lifecycle } = this.deps;
    try {
      const line = await gpio.open(key, board.gpio[key], {
        direction: 'in',
        edge: 'both',
        debounceMs: 20,
        activeLow: this.deps.buttonsActiveLow,
      });
      this.lines.push(line);
      const cls = new ButtonClassifier(
        id,
        timers,
        (p) => this.deps.onPress(p),
        (h) => this.onButtonHealth(id, h.health),
        this.deps.buttonOptions,
      );
      cls.initial(await line.read());
      this.unwatch.push(line.watch((v, at) => cls.input(v, at)));
      this.buttons.set(id, cls);
    } catch (err) {
      lifecycle.setOverlay('degraded', `button-${id}-unavailable`, true);
      this.log.error({ err, button: id }, 'button line unavailable');
    }
  }

  private onButtonHealth(id: string, h: ButtonHealth): void {
    const lc = this.deps.lifecycle;
    lc.setOverlay('degraded', `button-${id}-stuck`, h === 'stuck');
    lc.setOverlay('degraded', `button-${id}-chattering`, h === 'chattering');
  }
}

// Buttons: debounced edges in, press classes out (short, long ≥ 3 s, double), mapped by config to
// actions. Presses are grouped into bursts that end when the button stays up for `gapMs`; only a
// burst that is exactly one short, one long, or two shorts acts, so contact chatter or a fist on the
// button never does anything. A button held past `stuckMs` (or already down at boot) is stuck, and
// one that keeps toggling is chattering: both are reported and ignored until they calm down.
import { BUTTON_ACTIONS, type ButtonAction } from '../core/contracts/local-bus.ts';
import { KitError } from '../core/errors.ts';
import { moduleLogger } from '../core/logger.ts';
import type { GpioValue } from '../hardware/gpio/types.ts';
import type { TimerHost } from './edge-timer.ts';

export const PRESS_CLASSES = ['short', 'long', 'double'] as const;
export type PressClass = (typeof PRESS_CLASSES)[number];
export type ButtonHealth = 'ok' | 'stuck' | 'chattering';

export { BUTTON_ACTIONS, type ButtonAction };
export const BUTTON_IDS = ['a', 'b'] as const;
export type ButtonId = (typeof BUTTON_IDS)[number];

export interface ButtonOptions {
  longMs: number;
  gapMs: number;
  stuckMs: number;
  /** a press shorter than this is a glitch that spoils its burst */
  minPressMs: number;
  chatterEdges: number;
  chatterWindowMs: number;
  /** how long a chattering button must stay still before it is trusted again */
  quietMs: number;
}

export const DEFAULT_BUTTON_OPTIONS: ButtonOptions = {
  longMs: 3000,
  gapMs: 400,
  stuckMs: 15_000,
  minPressMs: 30,
  chatterEdges: 12,
  chatterWindowMs: 2000,
  quietMs: 3000,
};

export interface PressEvent {
  button: string;
  kind: PressClass;
  atMs: number;
}

export interface ButtonFaultEvent {
  button: string;
  health: ButtonHealth;
  atMs: number;
}

export class ButtonClassifier {
  private readonly log = moduleLogger('buttons');
  private readonly opts: ButtonOptions;
  private downAt: number | undefined;
  private burst: number[] = [];
  private burstSpoiled = false;
  private burstTimer: unknown;
  private stuckTimer: unknown;
  private quietTimer: unknown;
  private edges: number[] = [];
  private healthState: ButtonHealth = 'ok';
  private level: GpioValue = 0;

  constructor(
    readonly name: string,
    private readonly timers: TimerHost,
    private readonly onPress: (e: PressEvent) => void,
    private readonly onHealth: (e: ButtonFaultEvent) => void,
    opts: Partial<ButtonOptions> = {},
  ) {
    this.opts = { ...DEFAULT_BUTTON_OPTIONS, ...opts };
  }

  get health(): ButtonHealth {
    return this.healthState;
  }

  /** The level read when the line was opened: a button already down at boot is treated as stuck. */
  initial(value: GpioValue): void {
    this.level = value;
    if (value === 1) this.setHealth('stuck', this.timers.now());
  }

  input(value: GpioValue, atMs: number): void {
    if (value === this.level) return;
    this.level = value;
    this.edges.push(atMs);
    const from = atMs - this.opts.chatterWindowMs;
    while ((this.edges[0] ?? atMs) < from) this.edges.shift();

    if (this.healthState === 'chattering') {
      this.armQuiet();
      return;
    }
    if (this.edges.length >= this.opts.chatterEdges) {
      this.cancelBurst();
      this.clearStuck();
      this.setHealth('chattering', atMs);
      this.armQuiet();
      return;
    }
    if (this.healthState === 'stuck') {
      // released at last: trusted again, but this press was never a command
      if (value === 0) this.setHealth('ok', atMs);
      return;
    }
    if (value === 1) this.pressed(atMs);
    else this.released(atMs);
  }

  close(): void {
    this.cancelBurst();
    this.clearStuck();
    if (this.quietTimer !== undefined) this.timers.clearTimeout(this.quietTimer);
    this.quietTimer = undefined;
  }

  private pressed(atMs: number): void {
    this.downAt = atMs;
    if (this.burstTimer !== undefined) this.timers.clearTimeout(this.burstTimer);
    this.burstTimer = undefined;
    this.stuckTimer = this.timers.setTimeout(() => {
      this.stuckTimer = undefined;
      this.cancelBurst();
      this.setHealth('stuck', this.timers.now());
    }, this.opts.stuckMs);
  }

  private released(atMs: number): void {
    this.clearStuck();
    if (this.downAt === undefined) return;
    const held = atMs - this.downAt;
    this.downAt = undefined;
    if (held < this.opts.minPressMs) this.burstSpoiled = true;
    this.burst.push(held);
    this.burstTimer = this.timers.setTimeout(() => {
      this.burstTimer = undefined;
      this.endBurst(this.timers.now());
    }, this.opts.gapMs);
  }

  private endBurst(atMs: number): void {
    const burst = this.burst;
    const spoiled = this.burstSpoiled;
    this.burst = [];
    this.burstSpoiled = false;
    if (spoiled) {
      this.log.debug({ button: this.name, burst }, 'burst with a glitch ignored');
      return;
    }
    const long = (ms: number) => ms >= this.opts.longMs;
    let kind: PressClass | undefined;
    if (burst.length === 1) kind = long(burst[0] ?? 0) ? 'long' : 'short';
    else if (burst.length === 2 && !burst.some(long)) kind = 'double';
    if (!kind) {
      this.log.info({ button: this.name, presses: burst.length }, 'press pattern not recognised; ignored');
      return;
    }
    this.onPress({ button: this.name, kind, atMs });
  }

  private cancelBurst(): void {
    if (this.burstTimer !== undefined) this.timers.clearTimeout(this.burstTimer);
    this.burstTimer = undefined;
    this.burst = [];
    this.burstSpoiled = false;
    this.downAt = undefined;
  }

  private clearStuck(): void {
    if (this.stuckTimer !== undefined) this.timers.clearTimeout(this.stuckTimer);
    this.stuckTimer = undefined;
  }

  private armQuiet(): void {
    if (this.quietTimer !== undefined) this.timers.clearTimeout(this.quietTimer);
    this.quietTimer = this.timers.setTimeout(() => {
      this.quietTimer = undefined;
      this.edges = [];
      // still held down after the chatter: stuck until released
      this.setHealth(this.level === 1 ? 'stuck' : 'ok', this.timers.now());
    }, this.opts.quietMs);
  }

  private setHealth(h: ButtonHealth, atMs: number): void {
    if (h === this.healthState) return;
    this.healthState = h;
    this.log.warn({ button: this.name, health: h }, 'button health');
    this.onHealth({ button: this.name, health: h, atMs });
  }
}

export type ButtonMap = Map<`${ButtonId}.${PressClass}`, ButtonAction>;

/** `a.short=mark-moment,b.long=safe-shutdown` → map; anything unknown is a CONFIG_INVALID error. */
export function parseButtonMap(spec: string): ButtonMap {
  const map: ButtonMap = new Map();
  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (!item) continue;
    const m = /^([a-z]+)\.([a-z]+)=([a-z-]+)$/.exec(item);
    const [, button, kind, action] = m ?? [];
    if (!m || !button || !kind || !action) {
      throw new KitError('CONFIG_INVALID', `POPKIT_BUTTONS: '${item}' is not button.class=action`);
    }
    if (!(BUTTON_IDS as readonly string[]).includes(button)) {
      throw new KitError('CONFIG_INVALID', `POPKIT_BUTTONS: unknown button '${button}' (a or b)`);
    }
    if (!(PRESS_CLASSES as readonly string[]).includes(kind)) {
      throw new KitError(
        'CONFIG_INVALID',
        `POPKIT_BUTTONS: unknown press '${kind}' (${PRESS_CLASSES.join(', ')})`,
      );
    }
    if (!(BUTTON_ACTIONS as readonly string[]).includes(action)) {
      throw new KitError(
        'CONFIG_INVALID',
        `POPKIT_BUTTONS: unknown action '${action}' (${BUTTON_ACTIONS.join(', ')})`,
      );
    }
    map.set(`${button as ButtonId}.${kind as PressClass}`, action as ButtonAction);
  }
  return map;
}

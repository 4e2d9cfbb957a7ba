// The kit's LED language (docs/leds.md is the human table; a test keeps the two in step) and the
// driver that plays it on two GPIO lines. Timings follow CANopen CiA 303-3 (flicker, blink, single/
// double/triple flash, on) plus a heartbeat and balena's 15 s identify.
import type { LedViewT } from '../core/contracts/run-status.ts';
import { moduleLogger } from '../core/logger.ts';
import type { GpioLine, GpioValue } from '../hardware/gpio/types.ts';
import { EdgeTimer, type TimerHost } from './edge-timer.ts';

export const PATTERN_NAMES = [
  'off',
  'on',
  'blink-slow',
  'blink',
  'flicker',
  'single-flash',
  'double-flash',
  'triple-flash',
  'heartbeat',
  'identify',
] as const;
export type PatternName = (typeof PATTERN_NAMES)[number];

export interface PatternDef {
  /** Alternating durations in ms, starting with ON; empty for a constant level. */
  steps: readonly number[];
  constant?: GpioValue;
}

export const PATTERNS: Record<PatternName, PatternDef> = {
  off: { steps: [], constant: 0 },
  on: { steps: [], constant: 1 },
  'blink-slow': { steps: [500, 500] },
  blink: { steps: [200, 200] },
  flicker: { steps: [50, 50] },
  'single-flash': { steps: [200, 1000] },
  'double-flash': { steps: [200, 200, 200, 1000] },
  'triple-flash': { steps: [200, 200, 200, 200, 200, 1000] },
  heartbeat: { steps: [100, 150, 100, 650] },
  identify: { steps: [125, 125] },
};

export const IDENTIFY_MS = 15_000;

export function periodOf(p: PatternName): number {
  return PATTERNS[p].steps.reduce((a, b) => a + b, 0);
}

/** The level a pattern started at `epoch` shows at time `t`. */
export function levelAt(p: PatternName, epoch: number, t: number): GpioValue {
  const def = PATTERNS[p];
  if (def.constant !== undefined) return def.constant;
  const period = periodOf(p);
  let phase = (((t - epoch) % period) + period) % period;
  for (let i = 0; i < def.steps.length; i++) {
    const d = def.steps[i] ?? 0;
    if (phase < d) return i % 2 === 0 ? 1 : 0;
    phase -= d;
  }
  return 0;
}

/** The first edge strictly after `after` of a pattern started at `epoch`; undefined for constants. */
export function nextEdge(p: PatternName, epoch: number, after: number): number | undefined {
  const def = PATTERNS[p];
  if (def.constant !== undefined) return undefined;
  const period = periodOf(p);
  const cycles = Math.floor((after - epoch) / period);
  let t = epoch + cycles * period;
  for (;;) {
    for (const d of def.steps) {
      t += d;
      if (t > after) return t;
    }
  }
}

export type RedMode = PatternName | 'mirror';

/** what the LEDs show, as kitd's run status carries it: `pattern` is a PatternName or `mirror` */
export type LedView = LedViewT;

export interface LedInputs {
  state: string;
  fault: boolean;
  degraded: boolean;
  /** hub link down with orders waiting: red mirrors green, which a bicolour LED shows as amber */
  offlineQueueing: boolean;
}

const STATE_GREEN: Record<string, PatternName> = {
  booting: 'blink-slow',
  preflight: 'blink',
  ready: 'on',
  live: 'heartbeat',
  draining: 'single-flash',
  off: 'off',
};

/** State on the green LED, trouble on the red one; a fault outranks degraded, which outranks amber. */
export function ledsFor(s: LedInputs): { green: PatternName; red: RedMode } {
  const green = STATE_GREEN[s.state] ?? 'blink-slow';
  if (s.state === 'off') return { green: 'off', red: 'off' };
  if (s.fault) return { green, red: 'flicker' };
  if (s.degraded) return { green, red: 'double-flash' };
  if (s.offlineQueueing) return { green, red: 'mirror' };
  return { green, red: 'off' };
}

interface Channel {
  line: GpioLine;
  pattern: PatternName;
  epoch: number;
  level: GpioValue | undefined;
}

/**
 * Plays patterns on the green and red lines from one EdgeTimer: it wakes only at the next edge of
 * either LED. A GPIO write that fails marks the driver faulted (a status), never throws.
 */
export class LedDriver {
  private readonly log = moduleLogger('leds');
  private readonly green: Channel;
  private readonly red: Channel;
  private redMode: RedMode = 'off';
  private identifyUntil: number | undefined;
  private wanted: { green: PatternName; red: RedMode } = { green: 'off', red: 'off' };
  private readonly timer: EdgeTimer;
  writeErrors = 0;

  constructor(
    greenLine: GpioLine,
    redLine: GpioLine,
    private readonly timers: TimerHost,
  ) {
    const now = timers.now();
    this.green = { line: greenLine, pattern: 'off', epoch: now, level: undefined };
    this.red = { line: redLine, pattern: 'off', epoch: now, level: undefined };
    this.timer = new EdgeTimer(
      timers,
      (after) => this.nextWake(after),
      (now) => this.render(now),
    );
  }

  start(): void {
    this.render(this.timers.now());
    this.timer.arm();
  }

  stop(): void {
    this.timer.disarm();
  }

  /** Select patterns; an unchanged pattern keeps its phase so a repeated call causes no glitch. */
  set(green: PatternName, red: RedMode): void {
    this.wanted = { green, red };
    this.apply(this.timers.now());
  }

  identify(ms = IDENTIFY_MS): void {
    this.identifyUntil = this.timers.now() + ms;
    this.apply(this.timers.now());
  }

  view(): LedView {
    const v: LedView = {
      green: { pattern: this.green.pattern, on: this.green.level === 1 },
      red: { pattern: this.redMode, on: this.red.level === 1 },
    };
    if (this.identifyUntil !== undefined) v.identifyUntil = new Date(this.identifyUntil).toISOString();
    return v;
  }

  private apply(now: number): void {
    let green = this.wanted.green;
    let red: RedMode = this.wanted.red;
    if (this.identifyUntil !== undefined) {
      if (now < this.identifyUntil) {
        green = 'identify';
        red = 'identify';
      } else {
        this.identifyUntil = undefined;
      }
    }
    if (green !== this.green.pattern) {
      this.green.pattern = green;
      this.green.epoch = now;
    }
    const redPattern: PatternName = red === 'mirror' ? this.green.pattern : red;
    const redEpoch = red === 'mirror' || red === 'identify' ? this.green.epoch : now;
    if (redPattern !== this.red.pattern || red !== this.redMode) {
      this.red.pattern = redPattern;
      this.red.epoch = redEpoch;
    }
    this.redMode = red;
    this.render(now);
    this.timer.arm();
  }

  private nextWake(after: number): number | undefined {
    const edges = [
      nextEdge(this.green.pattern, this.green.epoch, after),
      nextEdge(this.red.pattern, this.red.epoch, after),
    ];
    if (this.identifyUntil !== undefined && this.identifyUntil > after) edges.push(this.identifyUntil);
    const due = edges.filter((t): t is number => t !== undefined);
    return due.length > 0 ? Math.min(...due) : undefined;
  }

  private render(now: number): void {
    if (this.identifyUntil !== undefined && now >= this.identifyUntil) {
      this.apply(now);
      return;
    }
    for (const ch of [this.green, this.red]) {
      const level = levelAt(ch.pattern, ch.epoch, now);
      if (level === ch.level) continue;
      ch.level = level;
      ch.line.write(level).catch((err: unknown) => {
        this.writeErrors++;
        this.log.warn({ err, line: ch.line.name }, 'LED write failed');
      });
    }
  }
}

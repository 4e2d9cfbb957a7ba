// Drift-free scheduling: every wake-up is computed from a fixed epoch (t0 + the pattern's own
// durations), never from "the last time the timer fired", so a late timer costs that one edge a few
// milliseconds and never shifts the edges after it. Between edges nothing runs: a solid LED costs no
// timer at all, a blinking one two wake-ups per period.

export interface TimerHost {
  now(): number;
  setTimeout(cb: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

// Looked up at call time so that node:test's mock.timers (which swaps the globals) drives them.
export const systemTimers: TimerHost = {
  now: () => Date.now(),
  setTimeout: (cb, ms) => {
    const t = setTimeout(cb, ms);
    // an LED or a poll must never keep a finished process alive
    (t as { unref?: () => void }).unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as Parameters<typeof clearTimeout>[0]),
};

/** Runs `fn(now)` at each absolute time that `next(after)` returns; `undefined` means idle. */
export class EdgeTimer {
  private handle: unknown;
  private running = false;

  constructor(
    private readonly timers: TimerHost,
    private readonly next: (after: number) => number | undefined,
    private readonly fn: (now: number) => void,
  ) {}

  /** (Re)arms from the current time: call after the schedule changed. */
  arm(): void {
    this.disarm();
    this.running = true;
    this.schedule(this.timers.now());
  }

  disarm(): void {
    if (this.handle !== undefined) this.timers.clearTimeout(this.handle);
    this.handle = undefined;
    this.running = false;
  }

  get armed(): boolean {
    return this.handle !== undefined;
  }

  private schedule(after: number): void {
    const at = this.next(after);
    if (at === undefined || !this.running) {
      this.handle = undefined;
      return;
    }
    const delay = Math.max(0, at - this.timers.now());
    this.handle = this.timers.setTimeout(() => {
      this.handle = undefined;
      const now = this.timers.now();
      this.fn(now);
      // fn may have re-armed (a schedule change); that arm already scheduled the next wake-up
      if (this.handle !== undefined || !this.running) return;
      // the next edge strictly after both the planned one and now: a late wake-up skips, never bunches
      this.schedule(Math.max(now, at));
    }, delay);
  }
}

/**
 * A fixed-period tick aligned to an epoch (the k-th tick at epoch + k·period) for polls that must
 * not creep, e.g. kitd's once-a-second status write.
 */
export function periodicTimer(
  timers: TimerHost,
  periodMs: number,
  fn: (now: number) => void,
  epoch = timers.now(),
): EdgeTimer {
  const next = (after: number) => epoch + (Math.floor((after - epoch) / periodMs) + 1) * periodMs;
  const t = new EdgeTimer(timers, next, fn);
  t.arm();
  return t;
}

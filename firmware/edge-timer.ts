// Drift-free scheduling: every wake-up is computed from a fixed epoch (t0 + the pattern's own
// durations), never from "the last time the timer fired", so a late timer costs that one edge a few
// milliseconds and never shifts the edges after it. Between edges nothing runs: a solid LED costs no
// timer at all, a blinking one two wake-ups per period.

import type { TimerHost } from '../core/poll-loop.ts';

export type { TimerHost };

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

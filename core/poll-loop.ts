// The one periodic loop: run a task every `periodMs`, never two runs of it at once (a slow run makes
// the next tick skip, not pile up), errors reported and the loop kept alive. `aligned` puts the ticks
// on shared wall-clock boundaries, so N loops of the same period cost one timer wakeup per tick
// instead of N (on a Pi a wakeup, not the work, is most of what sampling costs: bench/hardware.ts).

export interface PollLoop {
  stop(): void;
}

/** A clock and timers that can be swapped (kitd's tests and LED driver pass their own). */
export interface TimerHost {
  now(): number;
  setTimeout(cb: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

// Looked up at call time so that node:test's mock.timers (which swaps the globals) drives them.
const globalTimers: TimerHost = {
  now: () => Date.now(),
  setTimeout: (cb, ms) => setTimeout(cb, ms),
  clearTimeout: (h) => clearTimeout(h as Parameters<typeof clearTimeout>[0]),
};

export interface PollLoopOptions {
  onError?: (err: unknown) => void;
  aligned?: boolean;
  /** run once at start instead of after the first period */
  immediate?: boolean;
  /** the clock and timers to use; the global ones unless said */
  timers?: TimerHost;
  /** do not keep the process alive for this loop alone (Node's `timer.unref()`) */
  unref?: boolean;
}

/** Milliseconds until the next multiple of `periodMs` of the wall clock. */
export function alignedDelay(periodMs: number, now: number = Date.now()): number {
  const rest = now % periodMs;
  return rest === 0 ? periodMs : periodMs - rest;
}

export function pollLoop(periodMs: number, task: () => unknown, opts: PollLoopOptions = {}): PollLoop {
  const timers = opts.timers ?? globalTimers;
  let timer: unknown;
  let stopped = false;
  let running = false;
  const report = (err: unknown) => opts.onError?.(err);
  const run = () => {
    if (stopped || running) return;
    running = true;
    let result: unknown;
    try {
      result = task();
    } catch (err) {
      running = false;
      report(err);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        () => {
          running = false;
        },
        (err: unknown) => {
          running = false;
          report(err);
        },
      );
    } else running = false;
  };
  // An aligned tick is due at a wall-clock boundary. Node's timers count from the event loop's cached
  // time, which lags the wall clock by the work done since the loop woke (the task that just ran), so
  // a timer armed right after a task fires that much before the boundary: then it waits out the rest
  // instead of running early (a 1 s loop would otherwise tick twice in one second and none in the next).
  const schedule = (ms: number, due: number | undefined) => {
    timer = timers.setTimeout(() => {
      if (stopped) return;
      if (due !== undefined) {
        const early = due - timers.now();
        // (more than a period early is the wall clock stepped back, NTP: run and align to it anew)
        if (early > 0 && early <= periodMs) return schedule(early, due);
      }
      run();
      arm();
    }, ms);
    if (opts.unref) (timer as { unref?: () => void } | undefined)?.unref?.();
  };
  const arm = () => {
    if (!opts.aligned) return schedule(periodMs, undefined);
    const now = timers.now();
    const ms = alignedDelay(periodMs, now);
    schedule(ms, now + ms);
  };
  if (opts.immediate) run();
  arm();
  return {
    stop() {
      stopped = true;
      if (timer !== undefined) timers.clearTimeout(timer);
    },
  };
}

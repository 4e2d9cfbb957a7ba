// Polls land on shared wall-clock boundaries (every device with a 100 ms period wakes at the same
// instant), so N devices cost one timer wakeup per tick instead of N. On this class of machine a
// wakeup, not the parsing, is most of what sampling costs (bench/hardware.ts).

export function alignedDelay(periodMs: number, now: number = Date.now()): number {
  const rest = now % periodMs;
  return rest === 0 ? periodMs : periodMs - rest;
}

/** Calls `fn` on every period boundary until the returned function is called. */
export function everyAligned(periodMs: number, fn: () => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const arm = () => {
    timer = setTimeout(() => {
      if (stopped) return;
      fn();
      arm();
    }, alignedDelay(periodMs));
  };
  arm();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

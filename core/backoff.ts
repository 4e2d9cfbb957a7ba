// The one backoff: exponential delays between an initial and a maximum, with optional "equal jitter"
// (half fixed, half random) so that a venue full of kits coming back after an uplink cut does not hit
// the broker in lockstep. Used for reconnects (sync, serial links), restarts (process supervisor,
// watchdogs) and retries (the hub's database writes).

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** growth per attempt; 2 unless said */
  factor?: number;
  /** 'equal': each delay is uniformly random in [ceiling/2, ceiling]; 'none' (default): the ceiling */
  jitter?: 'none' | 'equal';
}

/** The delay before retry number `attempt` (0 for the first retry). */
export function backoffDelay(attempt: number, p: BackoffPolicy, random: () => number = Math.random): number {
  const factor = p.factor ?? 2;
  const ceiling = Math.min(p.maxMs, p.initialMs * factor ** Math.min(Math.max(0, attempt), 60));
  if (p.jitter !== 'equal') return ceiling;
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Stateful form: `next()` gives the next delay and counts the attempt; `reset()` after a success. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    return backoffDelay(this.attempt++, this.policy, this.random);
  }

  /** the delay `next()` would give, without counting an attempt */
  peek(): number {
    return backoffDelay(this.attempt, { ...this.policy, jitter: 'none' });
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

/**
 * Run `fn` until it succeeds, waiting `backoff` between tries, as long as `retryable(err)` says so and
 * `shouldStop()` does not; any other error is thrown at once.
 */
export async function retryWithBackoff<T>(
  fn: () => Promise<T>,
  o: {
    policy: BackoffPolicy;
    retryable: (err: unknown) => boolean;
    shouldStop?: () => boolean;
    onRetry?: (err: unknown, delayMs: number, attempt: number) => void;
    sleep?: (ms: number) => Promise<void>;
  },
): Promise<T> {
  const backoff = new Backoff(o.policy);
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (o.shouldStop?.() || !o.retryable(err)) throw err;
      const delay = backoff.next();
      o.onRetry?.(err, delay, backoff.attempts);
      await sleep(delay);
    }
  }
}

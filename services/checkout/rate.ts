// Events per second over a sliding window (one-second buckets): checkout's accepted orders, which
// media reads from checkout's run status to yield CPU during a rush.
export class RateWindow {
  private readonly buckets: number[];
  private head = 0;
  private headSec: number;

  constructor(
    private readonly windowS = 5,
    private readonly clock: () => number = Date.now,
  ) {
    this.buckets = new Array(windowS).fill(0);
    this.headSec = Math.floor(clock() / 1000);
  }

  private advance(): void {
    const sec = Math.floor(this.clock() / 1000);
    const steps = Math.min(sec - this.headSec, this.windowS);
    for (let i = 0; i < steps; i++) {
      this.head = (this.head + 1) % this.windowS;
      this.buckets[this.head] = 0;
    }
    if (sec > this.headSec) this.headSec = sec;
  }

  add(n = 1): void {
    this.advance();
    this.buckets[this.head] = (this.buckets[this.head] ?? 0) + n;
  }

  /** Events per second over the window (the current, partial second included). */
  perSecond(): number {
    this.advance();
    let sum = 0;
    for (const b of this.buckets) sum += b;
    return sum / this.windowS;
  }
}

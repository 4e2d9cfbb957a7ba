// Decides when the pipeline is dead or dying and how long to wait before the next restart. Pure: the
// caller passes the time and what it observed, so stalls and backoff are unit-tested with plain numbers.
import { backoffDelay } from '../../core/backoff.ts';

export interface WatchdogPolicy {
  /** No new frame for this long (after the start grace) means stalled. */
  stallMs: number;
  /** A fresh pipeline gets this long to produce its first frame. */
  startGraceMs: number;
  /** A drop ratio above this ... */
  dropRestartRatio: number;
  /** ... for this many consecutive samples means the pipeline is wedged, not merely loaded. */
  dropRestartSamples: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Running this long without a restart forgets earlier failures (backoff back to zero). */
  stableAfterMs: number;
}

export const DEFAULT_WATCHDOG: WatchdogPolicy = {
  stallMs: 3000,
  startGraceMs: 5000,
  dropRestartRatio: 0.5,
  dropRestartSamples: 5,
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  stableAfterMs: 30_000,
};

export type WatchdogVerdict = { restart: false } | { restart: true; reason: string };

export class Watchdog {
  private readonly policy: WatchdogPolicy;
  private startedAt = 0;
  private lastFrameAt = 0;
  private lastFrames = -1;
  private sawFrame = false;
  private dropStreak = 0;
  private consecutive = 0;
  private running = false;

  constructor(policy: Partial<WatchdogPolicy> = {}) {
    this.policy = { ...DEFAULT_WATCHDOG, ...policy };
  }

  /** Restarts since the pipeline last ran stably (0 after a stable run). */
  get consecutiveFailures(): number {
    return this.consecutive;
  }

  /** A (re)started pipeline begins now. */
  started(nowMs: number): void {
    this.running = true;
    this.startedAt = nowMs;
    this.lastFrameAt = nowMs;
    this.lastFrames = -1;
    this.sawFrame = false;
    this.dropStreak = 0;
  }

  /** Deliberately stopped (paused rung, shutdown): not a failure, nothing to watch. */
  stopped(): void {
    this.running = false;
  }

  /** A hard failure reported by the pipeline itself (error or end of stream on a live source). */
  failed(): WatchdogVerdict {
    return { restart: true, reason: 'pipeline error' };
  }

  /**
   * One observation: the meter's cumulative frame count and the recent drop ratio. Call a few times
   * a second; a restart verdict counts as a failure for the backoff.
   */
  observe(nowMs: number, frames: number, dropRatio: number): WatchdogVerdict {
    if (!this.running) return { restart: false };
    if (frames > this.lastFrames) {
      if (this.lastFrames >= 0 || frames > 0) {
        this.lastFrameAt = nowMs;
        this.sawFrame = this.sawFrame || frames > 0;
      }
      this.lastFrames = frames;
    }
    const p = this.policy;
    if (this.sawFrame && nowMs - this.startedAt >= p.stableAfterMs) this.consecutive = 0;
    if (!this.sawFrame) {
      if (nowMs - this.startedAt > p.startGraceMs) return { restart: true, reason: 'no first frame' };
      return { restart: false };
    }
    if (nowMs - this.lastFrameAt > p.stallMs) return { restart: true, reason: 'stalled: no new frame' };
    this.dropStreak = dropRatio > p.dropRestartRatio ? this.dropStreak + 1 : 0;
    if (this.dropStreak >= p.dropRestartSamples)
      return { restart: true, reason: 'frame drops above threshold' };
    return { restart: false };
  }

  /** Called when a restart is about to happen: how long to wait first (0, base, 2×base, … max). */
  nextDelayMs(): number {
    const n = this.consecutive;
    this.consecutive += 1;
    this.running = false;
    if (n === 0) return 0;
    return backoffDelay(n - 1, { initialMs: this.policy.backoffBaseMs, maxMs: this.policy.backoffMaxMs });
  }
}

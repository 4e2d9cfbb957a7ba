// The degradation ladder: bitrate first, then frame rate, then resolution, then paused; and back up
// with hysteresis. Pure (time is a parameter), so every rule is unit-testable without GStreamer.

import { KitError } from '../../core/errors.ts';
import type { VideoProfile } from '../../hardware/boards/index.ts';

export interface LadderStep {
  index: number;
  width: number;
  height: number;
  fps: number;
  bitrateKbps: number;
  paused: boolean;
}

export interface LadderTop {
  width: number;
  height: number;
  fps: number;
  bitrateKbps: number;
}

const even = (n: number) => Math.max(2, Math.round(n / 2) * 2);

/**
 * Rungs below the top: two bitrate cuts, then half the frame rate, then half the resolution, then
 * paused. Each rung also lowers the bitrate so that fewer pixels never cost more bits per pixel.
 */
export function buildLadder(top: LadderTop): LadderStep[] {
  const halfFps = Math.max(1, Math.round(top.fps / 2));
  const rungs: Omit<LadderStep, 'index'>[] = [
    { ...top, paused: false },
    { ...top, bitrateKbps: Math.round(top.bitrateKbps * 0.6), paused: false },
    { ...top, bitrateKbps: Math.round(top.bitrateKbps * 0.35), paused: false },
    { ...top, fps: halfFps, bitrateKbps: Math.round(top.bitrateKbps * 0.25), paused: false },
    {
      width: even(top.width / 2),
      height: even(top.height / 2),
      fps: halfFps,
      bitrateKbps: Math.max(64, Math.round(top.bitrateKbps * 0.12)),
      paused: false,
    },
    {
      width: even(top.width / 2),
      height: even(top.height / 2),
      fps: halfFps,
      bitrateKbps: Math.max(64, Math.round(top.bitrateKbps * 0.12)),
      paused: true,
    },
  ];
  return rungs.map((r, index) => ({ ...r, index }));
}

/** The top rung a board can carry: the configured wish clamped to the profile's limits. */
export function ladderTopFor(video: VideoProfile, wish: Partial<LadderTop> = {}): LadderTop {
  return {
    width: even(Math.min(wish.width ?? video.maxWidth, video.maxWidth)),
    height: even(Math.min(wish.height ?? video.maxHeight, video.maxHeight)),
    fps: Math.max(1, Math.min(wish.fps ?? video.maxFps, video.maxFps)),
    bitrateKbps: Math.max(64, Math.min(wish.bitrateKbps ?? video.maxBitrateKbps, video.maxBitrateKbps)),
  };
}

export type Transition =
  | { kind: 'none' }
  | { kind: 'live-bitrate'; bitrateKbps: number }
  | { kind: 'rebuild'; why: 'bitrate-fixed-while-playing' | 'caps-change' }
  | { kind: 'pause' }
  | { kind: 'resume' };

/**
 * How to move the running pipeline from one rung to another. A bitrate-only change is applied to the
 * playing encoder where the board allows it (`runtimeBitrate`); where it does not, and for any
 * resolution or frame-rate change, the pipeline is rebuilt, which starts
 * the new stream on an IDR so the next segment opens cleanly.
 */
export function planTransition(video: VideoProfile, from: LadderStep, to: LadderStep): Transition {
  if (from.paused && to.paused) return { kind: 'none' };
  if (to.paused) return { kind: 'pause' };
  if (from.paused) return { kind: 'resume' };
  const sameCaps = from.width === to.width && from.height === to.height && from.fps === to.fps;
  if (!sameCaps) return { kind: 'rebuild', why: 'caps-change' };
  if (from.bitrateKbps === to.bitrateKbps) return { kind: 'none' };
  return video.runtimeBitrate
    ? { kind: 'live-bitrate', bitrateKbps: to.bitrateKbps }
    : { kind: 'rebuild', why: 'bitrate-fixed-while-playing' };
}

/** v4l2h264enc's controls (a GstStructure in `extra-controls`): the bitrate and an IDR every `gop` frames. */
export function v4l2Controls(bitrateKbps: number, gop: number): string {
  return `controls,video_bitrate=${bitrateKbps * 1000},h264_i_frame_period=${gop},repeat_sequence_header=1`;
}

/**
 * The property set on the playing encoder for a live bitrate change, or undefined where the board's
 * encoder cannot take one and the pipeline is rebuilt instead. `gop`: frames between IDRs (one part).
 *
 * v4l2h264enc (Pi 4, Pi Zero 2 W) takes its bitrate only inside `extra-controls`, a GstStructure;
 * GStreamer applies a new structure to the open device while it streams. gstreamer-superficial as
 * published turns a JS string into a string GValue, which GObject refuses for a GstStructure property,
 * so Popkit patches the binding (patches/gstreamer-superficial+1.7.4.patch, applied at npm install) to
 * parse such strings as gst-launch does. The media service reads the property back after setting it
 * and rebuilds the pipeline when the value did not take (an unpatched binding). Setting the control
 * from outside with `v4l2-ctl --set-ctrl` would not do: a V4L2 mem-to-mem device keeps its controls per
 * open file handle (bcm2835-codec makes a context per open()), so another process changes a context
 * nobody streams on.
 */
export function liveBitrateSetting(
  video: VideoProfile,
  kbps: number,
  gop: number,
): { property: 'bitrate' | 'extra-controls'; value: number | string } | undefined {
  if (!video.runtimeBitrate) return undefined;
  switch (video.encoder) {
    case 'x264enc':
      return { property: 'bitrate', value: kbps };
    case 'nvv4l2h264enc':
      return { property: 'bitrate', value: kbps * 1000 };
    case 'v4l2h264enc':
      return { property: 'extra-controls', value: v4l2Controls(kbps, gop) };
  }
}

/** Did the encoder take the setting? (read back: a structure reads as `controls, video_bitrate=(int)N, …`) */
export function settingTook(
  setting: { property: string; value: number | string },
  readBack: unknown,
): boolean {
  if (typeof setting.value === 'number') return Number(readBack) === setting.value;
  const want = /video_bitrate=(\d+)/.exec(setting.value)?.[1];
  return want !== undefined && new RegExp(`video_bitrate=(\\(int\\))?${want}\\b`).test(String(readBack));
}

export type LadderCommand =
  | { cmd: 'step-down' }
  | { cmd: 'step-up' }
  | { cmd: 'pause' }
  | { cmd: 'resume' }
  | { cmd: 'set-step'; step: number };

export interface LoadSample {
  /** Frames dropped / frames expected over the last sample window, 0..1. */
  dropRatio: number;
  /** Whole-machine CPU busy fraction, 0..1. */
  cpuLoad: number;
  /** Checkout's finalized orders per second, when checkout publishes it. */
  ordersPerSec?: number | undefined;
}

export interface LadderPolicy {
  dropHigh: number;
  dropCalm: number;
  cpuHigh: number;
  cpuCalm: number;
  /** Orders/s at which media yields CPU to checkout at once (a merch drop). */
  ordersHigh: number;
  /** Consecutive pressured samples before an automatic step down. */
  downAfter: number;
  /** Consecutive calm samples before an automatic step back up. */
  upAfter: number;
  /** No automatic move sooner than this after any move, so one change settles before the next. */
  minDwellMs: number;
}

export const DEFAULT_POLICY: LadderPolicy = {
  dropHigh: 0.05,
  dropCalm: 0.01,
  cpuHigh: 0.92,
  cpuCalm: 0.7,
  ordersHigh: 20,
  downAfter: 2,
  upAfter: 10,
  minDwellMs: 3000,
};

export interface LadderDecision {
  step: LadderStep;
  changed: boolean;
  reason: string;
}

/**
 * The effective rung is the commanded floor (kitd's power policy speaks through commands) plus an
 * automatic offset driven by load. Load never pauses the stream by itself: only a command does, so a
 * venue screen does not go dark because of a CPU spike. Load backs off quickly and recovers slowly.
 */
export class DegradationLadder {
  readonly steps: readonly LadderStep[];
  private readonly policy: LadderPolicy;
  private floor = 0;
  private autoOffset = 0;
  private paused = false;
  private pressured = 0;
  private calm = 0;
  private lastMoveAt = Number.NEGATIVE_INFINITY;

  constructor(steps: readonly LadderStep[], policy: Partial<LadderPolicy> = {}) {
    if (steps.length < 2 || !steps[steps.length - 1]?.paused) {
      throw new KitError('BAD_REQUEST', 'a ladder needs at least one playing rung and a paused last rung');
    }
    this.steps = steps;
    this.policy = { ...DEFAULT_POLICY, ...policy };
  }

  /** Index of the last rung that still plays. */
  get lastPlaying(): number {
    return this.steps.length - 2;
  }

  get current(): LadderStep {
    if (this.paused) return this.steps[this.steps.length - 1]!;
    return this.steps[Math.min(this.floor + this.autoOffset, this.lastPlaying)]!;
  }

  get commandedFloor(): number {
    return this.floor;
  }

  command(c: LadderCommand, nowMs: number): LadderDecision {
    const before = this.current;
    switch (c.cmd) {
      case 'step-down':
        if (this.floor + this.autoOffset >= this.lastPlaying) this.paused = true;
        else this.floor = Math.min(this.floor + 1, this.lastPlaying);
        break;
      case 'step-up':
        if (this.paused) this.paused = false;
        else if (this.floor > 0) this.floor -= 1;
        else this.autoOffset = Math.max(0, this.autoOffset - 1);
        break;
      case 'pause':
        this.paused = true;
        break;
      case 'resume':
        this.paused = false;
        break;
      case 'set-step': {
        if (!Number.isInteger(c.step) || c.step < 0 || c.step >= this.steps.length) {
          throw new KitError('BAD_REQUEST', `step must be an integer 0..${this.steps.length - 1}`);
        }
        this.paused = c.step === this.steps.length - 1;
        if (!this.paused) {
          this.floor = c.step;
          this.autoOffset = 0;
        }
        break;
      }
    }
    return this.decide(before, nowMs, `command ${c.cmd}`);
  }

  /** One load sample (about once a second). */
  sample(s: LoadSample, nowMs: number): LadderDecision {
    const before = this.current;
    const p = this.policy;
    const spike = (s.ordersPerSec ?? 0) >= p.ordersHigh;
    const pressure = s.dropRatio > p.dropHigh || s.cpuLoad > p.cpuHigh;
    const quiet =
      s.dropRatio <= p.dropCalm && s.cpuLoad < p.cpuCalm && (s.ordersPerSec ?? 0) < p.ordersHigh / 2;
    this.pressured = pressure || spike ? this.pressured + 1 : 0;
    this.calm = quiet ? this.calm + 1 : 0;
    if (this.paused) return { step: before, changed: false, reason: 'paused' };

    const atBottom = this.floor + this.autoOffset >= this.lastPlaying;
    // A checkout spike is acted on at once and skips the dwell: orders matter more than pictures.
    if (spike && !atBottom && this.pressured === 1) {
      this.autoOffset += 1;
      return this.decide(before, nowMs, 'checkout load');
    }
    const dwelt = nowMs - this.lastMoveAt >= p.minDwellMs;
    if ((pressure || spike) && !atBottom && this.pressured >= p.downAfter && dwelt) {
      this.autoOffset += 1;
      this.pressured = 0;
      const why = spike ? 'checkout load' : s.dropRatio > p.dropHigh ? 'frame drops' : 'cpu load';
      return this.decide(before, nowMs, why);
    }
    if (quiet && this.autoOffset > 0 && this.calm >= p.upAfter && dwelt) {
      this.autoOffset -= 1;
      this.calm = 0;
      return this.decide(before, nowMs, 'load eased');
    }
    return { step: before, changed: false, reason: 'steady' };
  }

  private decide(before: LadderStep, nowMs: number, reason: string): LadderDecision {
    const step = this.current;
    const changed = step.index !== before.index;
    if (changed) this.lastMoveAt = nowMs;
    return { step, changed, reason };
  }
}

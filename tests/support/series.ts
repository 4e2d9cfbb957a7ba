// Run-status bodies of media and kitd as their processes write them (core/contracts/run-status.ts), for
// tests of what checkout reads from them (the live series, /metrics).
import type { KitdRunStatusT, RunStatusBody } from '../../core/contracts/run-status.ts';

export function mediaRunStatus(over: Partial<RunStatusBody<'media'>> = {}): RunStatusBody<'media'> {
  return {
    state: 'playing',
    board: 'sim',
    encoder: 'x264',
    fps: 30,
    droppedFrames: 0,
    bitrateKbps: 2500,
    measuredKbps: 2400,
    ladderStep: 0,
    ladderSteps: 4,
    width: 1280,
    height: 720,
    targetFps: 30,
    restarts: 0,
    rebuilds: 0,
    newestSegmentAgeMs: 1200,
    cpuCores: 0.6,
    machineCpu: 0.4,
    playlist: 'index.m3u8',
    ...over,
  };
}

export function kitdRunStatus(over: Partial<KitdRunStatusT> = {}): KitdRunStatusT {
  const at = new Date().toISOString();
  return {
    state: 'live',
    since: at,
    overlays: [],
    leds: null,
    power: [
      {
        device: 'mppt',
        driver: 'vedirect',
        batteryV: 12.8,
        socPct: 64,
        solarW: 35,
        loadW: 12,
        stale: false,
        at,
      },
      { device: 'shunt', driver: 'ina226', loadW: 3, stale: false, at },
      { device: 'old', driver: 'ina226', socPct: 10, solarW: 999, stale: true, at },
    ],
    health: { score: 87, components: { power: { score: 90, weight: 1, detail: 'ok' } }, at },
    powerPolicy: {
      level: 'normal',
      since: at,
      battery: { socPct: 64, stale: false },
      neededMin: 0,
      mediaSteps: 0,
      thresholds: { lowSocPct: 30, criticalSocPct: 10, criticalTtgMin: 20, hysteresisPct: 5 },
    },
    updateLock: {
      held: false,
      reason: null,
      since: null,
      expiresAt: null,
      leaseExpired: false,
      foreign: false,
      healedAtBoot: false,
      path: '/tmp/updates.lock',
      policy: 'after-event',
    },
    pendingUpdate: null,
    services: {},
    buttons: {},
    moments: 0,
    bus: null,
    supervisor: 'none',
    ...over,
  };
}

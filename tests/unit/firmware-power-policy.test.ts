import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PowerReading } from '../../core/contracts/power.ts';
import {
  capacityWhFromProfile,
  type MediaCommand,
  type PowerActions,
  PowerPolicy,
  summarizeBattery,
} from '../../firmware/power-policy.ts';
import { getBoardProfile } from '../../hardware/boards/index.ts';
import { BatteryModel } from '../../hardware/sim/battery-model.ts';

function reading(m: BatteryModel, stale = false): PowerReading {
  const s = m.snapshot();
  return {
    device: 'shunt',
    driver: 'ina226',
    batteryV: s.batteryV,
    batteryA: s.batteryA,
    socPct: s.socPct,
    loadW: s.loadW,
    solarW: s.solarW,
    stale,
    at: new Date(s.atMs).toISOString(),
  };
}

function recorder(opts: { flushRemaining?: number } = {}) {
  const log: string[] = [];
  const media: MediaCommand[] = [];
  let shutdowns = 0;
  const actions: PowerActions = {
    media: (c) => {
      media.push(c);
      log.push(`media:${c.cmd}${c.cmd === 'set-step' ? `:${c.step}` : ''}`);
    },
    notify: (e) => log.push(`notify:${e.type}`),
    flushSync: async () => {
      log.push('flush');
      return { remaining: opts.flushRemaining ?? 0, drained: (opts.flushRemaining ?? 0) === 0 };
    },
    shutdown: async (reason) => {
      shutdowns++;
      log.push(`shutdown:${reason}`);
    },
  };
  return { actions, log, media, shutdowns: () => shutdowns };
}

describe('power policy with the simulated battery draining', () => {
  test('low steps media down (and again as SOC keeps falling), critical flushes then shuts down once', async () => {
    const model = new BatteryModel({
      socPct: 40,
      capacityWh: 1280,
      loadW: 200,
      startAtMs: Date.UTC(2026, 0, 1, 22),
    });
    model.setSolarW(0);
    const rec = recorder({ flushRemaining: 3 });
    const policy = new PowerPolicy(rec.actions, { lowSocPct: 30, criticalSocPct: 8, criticalTtgMin: 10 });
    const levels = new Set<string>();
    for (let i = 0; i < 400 && policy.level !== 'critical'; i++) {
      model.step(60_000);
      levels.add(policy.evaluate(summarizeBattery([reading(model)], 1280), 0));
    }
    assert.deepEqual([...levels], ['normal', 'low', 'critical']);
    await policy.shutdownDone;
    // three step-downs while low (at ≤30, ≤25, ≤20 %), then pause, flush, shutdown, in that order
    assert.deepEqual(rec.log, [
      'notify:power-low',
      'media:step-down',
      'media:step-down',
      'media:step-down',
      'notify:power-critical',
      'media:pause',
      'flush',
      'shutdown:power-critical',
    ]);
    assert.equal(rec.shutdowns(), 1);
    const v = policy.view();
    assert.equal(v.shutdown?.phase, 'done');
    assert.equal(v.shutdown?.remaining, 3);
    // latched: more readings (even a recovering battery) do not restart the sequence
    model.setSocPct(90);
    policy.evaluate(summarizeBattery([reading(model)], 1280), 0);
    assert.equal(policy.level, 'critical');
    assert.equal(rec.shutdowns(), 1);
  });

  test('time-to-go shorter than the rest of the planned event counts as low even at a high SOC', () => {
    const model = new BatteryModel({ socPct: 60, capacityWh: 500, loadW: 250 });
    model.setSolarW(0);
    const rec = recorder();
    const policy = new PowerPolicy(rec.actions);
    const summary = summarizeBattery([reading(model)], 500);
    assert.ok(
      summary.ttgMin !== undefined && summary.ttgMin > 60 && summary.ttgMin < 80,
      `ttg ${summary.ttgMin}`,
    );
    assert.equal(policy.evaluate(summary, 240), 'low');
    assert.deepEqual(rec.log, ['notify:power-low', 'media:step-down']);
    // the same battery is fine for a 30-minute remainder
    const policy2 = new PowerPolicy(recorder().actions);
    assert.equal(policy2.evaluate(summary, 30), 'normal');
  });

  test('hysteresis: low is left only 5 points above the threshold, and media steps back up', () => {
    const model = new BatteryModel({ socPct: 29, capacityWh: 1280, loadW: 20 });
    model.setSolarW(0);
    const rec = recorder();
    const policy = new PowerPolicy(rec.actions, { lowSocPct: 30, hysteresisPct: 5 });
    assert.equal(policy.evaluate(summarizeBattery([reading(model)], 1280), 0), 'low');
    model.setSocPct(33);
    assert.equal(policy.evaluate(summarizeBattery([reading(model)], 1280), 0), 'low');
    model.setSocPct(36);
    assert.equal(policy.evaluate(summarizeBattery([reading(model)], 1280), 0), 'normal');
    assert.deepEqual(rec.log, ['notify:power-low', 'media:step-down', 'media:set-step:0', 'notify:power-ok']);
  });

  test('stale or missing readings are a status, never a reason to act', () => {
    const model = new BatteryModel({ socPct: 3 });
    const rec = recorder();
    const policy = new PowerPolicy(rec.actions);
    const s = summarizeBattery([reading(model, true)], 1280);
    assert.equal(s.stale, true);
    assert.equal(s.socPct, undefined);
    assert.equal(policy.evaluate(s, 240), 'unknown');
    assert.equal(policy.evaluate(summarizeBattery([], 1280), 240), 'unknown');
    assert.deepEqual(rec.log, []);
  });

  test('summary: lowest fresh SOC wins; a device TTG is used; charging has no time-to-go', () => {
    const at = new Date().toISOString();
    const s = summarizeBattery(
      [
        { device: 'gauge', driver: 'max17048', socPct: 55, stale: false, at },
        {
          device: 'bmv',
          driver: 'vedirect',
          socPct: 48,
          batteryV: 12.8,
          batteryA: -5,
          stale: false,
          at,
          extras: { ttgMin: 400 },
        },
        { device: 'old', driver: 'ina219', socPct: 10, stale: true, at },
      ],
      1000,
    );
    assert.equal(s.device, 'bmv');
    assert.equal(s.socPct, 48);
    assert.equal(s.ttgMin, 400);
    assert.equal(s.netW, -64);
    const charging = summarizeBattery(
      [{ device: 'x', driver: 'ina226', socPct: 50, batteryV: 13, batteryA: 4, stale: false, at }],
      1000,
    );
    assert.equal(charging.ttgMin, undefined);
  });

  test('capacity comes from the board profile where it says so', () => {
    assert.equal(capacityWhFromProfile(getBoardProfile('sim')), 100 * 3.2 * 4);
    assert.equal(capacityWhFromProfile(getBoardProfile('pi-zero-2w')), undefined);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Watchdog } from '../../services/media/watchdog.ts';

const policy = {
  stallMs: 1000,
  startGraceMs: 2000,
  dropRestartRatio: 0.5,
  dropRestartSamples: 3,
  backoffBaseMs: 500,
  backoffMaxMs: 4000,
  stableAfterMs: 10_000,
};

describe('media watchdog', () => {
  test('frames flowing: no restart; frames stop for longer than stallMs: restart', () => {
    const w = new Watchdog(policy);
    w.started(0);
    for (let t = 250, f = 8; t <= 3000; t += 250, f += 8) assert.equal(w.observe(t, f, 0).restart, false);
    assert.equal(w.observe(3500, 96, 0).restart, false);
    assert.equal(w.observe(4000, 96, 0).restart, false);
    const v = w.observe(4100, 96, 0);
    assert.deepEqual(v, { restart: true, reason: 'stalled: no new frame' });
  });

  test('a fresh pipeline gets a grace period for its first frame', () => {
    const w = new Watchdog(policy);
    w.started(0);
    assert.equal(w.observe(1900, 0, 0).restart, false);
    assert.deepEqual(w.observe(2100, 0, 0), { restart: true, reason: 'no first frame' });
  });

  test('a drop ratio above the threshold for several samples restarts; a single burst does not', () => {
    const w = new Watchdog(policy);
    w.started(0);
    let f = 0;
    const step = (t: number, ratio: number) => {
      f += 5;
      return w.observe(t, f, ratio);
    };
    assert.equal(step(250, 0.9).restart, false);
    assert.equal(step(500, 0.9).restart, false);
    assert.equal(step(750, 0.1).restart, false);
    assert.equal(step(1000, 0.9).restart, false);
    assert.equal(step(1250, 0.9).restart, false);
    assert.deepEqual(step(1500, 0.9), { restart: true, reason: 'frame drops above threshold' });
  });

  test('backoff: first restart at once, then doubling up to the ceiling; a stable run resets it', () => {
    const w = new Watchdog(policy);
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5].map(() => w.nextDelayMs()),
      [0, 500, 1000, 2000, 4000, 4000],
    );
    assert.equal(w.consecutiveFailures, 6);
    w.started(100_000);
    w.observe(100_100, 5, 0);
    w.observe(109_000, 10, 0);
    assert.equal(w.consecutiveFailures, 6);
    w.observe(110_200, 15, 0);
    assert.equal(w.consecutiveFailures, 0);
    assert.equal(w.nextDelayMs(), 0);
  });

  test('a deliberately stopped pipeline (paused rung) is not watched', () => {
    const w = new Watchdog(policy);
    w.started(0);
    w.observe(100, 3, 0);
    w.stopped();
    assert.equal(w.observe(60_000, 3, 0).restart, false);
  });
});

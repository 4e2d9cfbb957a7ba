import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Watchdog } from '../../firmware/watchdog.ts';

function rig(opts: { failRestart?: boolean } = {}) {
  let now = 1_000_000;
  const fileBeats = new Map<string, number>();
  const restarts: Array<{ service: string; at: number }> = [];
  const wd = new Watchdog(
    (s) => fileBeats.get(s),
    async (s) => {
      restarts.push({ service: s, at: now });
      if (opts.failRestart) throw new Error('supervisor said no');
    },
    {
      services: ['checkout', 'media'],
      staleMs: 15_000,
      graceMs: 30_000,
      backoffInitialMs: 10_000,
      backoffMaxMs: 40_000,
      resetAfterMs: 60_000,
    },
    () => now,
  );
  // async so that a restart's promise settles between ticks, as it does on a real kit
  const advance = async (ms: number, beat: string[] = []) => {
    for (let t = 0; t < ms; t += 1000) {
      now += 1000;
      for (const s of beat) wd.heartbeat(s, now);
      wd.check();
      await new Promise((res) => setImmediate(res));
    }
  };
  return { wd, fileBeats, restarts, advance, now: () => now };
}

describe('watchdog', () => {
  test('a service whose heartbeat stops is restarted, with growing backoff, and recovers', async () => {
    const r = rig();
    await r.advance(20_000, ['checkout', 'media']);
    assert.equal(r.restarts.length, 0);
    assert.equal(r.wd.view()['media']?.state, 'up');
    // media goes silent; checkout keeps beating through its status file only
    const stopAt = r.now();
    for (let i = 0; i < 200; i++) {
      r.fileBeats.set('checkout', r.now());
      await r.advance(1000, []);
    }
    const media = r.restarts.filter((x) => x.service === 'media').map((x) => x.at - stopAt);
    assert.equal(r.restarts.filter((x) => x.service === 'checkout').length, 0, 'file heartbeats count');
    assert.ok(media.length >= 3, `restarted repeatedly: ${media}`);
    assert.ok(
      (media[0] ?? 0) > 15_000 && (media[0] ?? 0) <= 17_000,
      `first restart after staleness: ${media[0]}`,
    );
    // grace after a restart, then backoff doubling to the cap: gaps grow and never exceed 40 s
    const gaps = media.slice(1).map((t, i) => t - (media[i] ?? 0));
    for (let i = 1; i < gaps.length; i++) assert.ok((gaps[i] ?? 0) >= (gaps[i - 1] ?? 0), `gaps ${gaps}`);
    assert.ok(
      gaps.every((g) => g <= 41_000),
      `capped: ${gaps}`,
    );
    assert.equal(r.wd.summary().down, 1);
    // it comes back
    await r.advance(5000, ['media']);
    assert.equal(r.wd.view()['media']?.state, 'up');
    assert.equal(r.wd.summary().down, 0);
    const restartsSoFar = r.restarts.length;
    await r.advance(70_000, ['media', 'checkout']);
    assert.equal(r.restarts.length, restartsSoFar);
    assert.equal(r.wd.view()['media']?.consecutive, 0, 'backoff reset after a healthy spell');
  });

  test('a service never seen gets the start-up grace before it is restarted', async () => {
    const r = rig();
    await r.advance(29_000, ['checkout']);
    assert.equal(r.restarts.length, 0);
    assert.equal(r.wd.view()['media']?.state, 'starting');
    await r.advance(2000, ['checkout']);
    assert.deepEqual(
      r.restarts.map((x) => x.service),
      ['media'],
    );
  });

  test('a failing restart is recorded and retried after the backoff', async () => {
    const r = rig({ failRestart: true });
    await r.advance(31_000, ['checkout']);
    await new Promise((res) => setImmediate(res));
    assert.equal(r.wd.view()['media']?.lastError, 'supervisor said no');
    await r.advance(45_000, ['checkout']);
    assert.ok(r.restarts.length >= 2);
  });
});

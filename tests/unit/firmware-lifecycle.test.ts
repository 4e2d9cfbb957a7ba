import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isKitError } from '../../core/errors.ts';
import { Lifecycle, type OverlayChange, type Transition } from '../../firmware/lifecycle.ts';

describe('lifecycle', () => {
  test('booting → preflight → ready → live → draining → ready → off, each transition announced', () => {
    let t = 0;
    const lc = new Lifecycle(() => t);
    const seen: Array<Transition | OverlayChange> = [];
    lc.onChange((e) => seen.push(e));
    for (const to of [
      'preflight',
      'ready',
      'live',
      'draining',
      'ready',
      'live',
      'ready',
      'draining',
      'off',
    ] as const) {
      t += 1000;
      lc.transition(to, `to ${to}`);
    }
    assert.equal(lc.state, 'off');
    const path = seen.map((e) => ('to' in e ? `${e.from}>${e.to}` : ''));
    assert.deepEqual(path, [
      'booting>preflight',
      'preflight>ready',
      'ready>live',
      'live>draining',
      'draining>ready',
      'ready>live',
      'live>ready',
      'ready>draining',
      'draining>off',
    ]);
    assert.equal((seen[0] as Transition).at, new Date(1000).toISOString());
    assert.equal((seen[0] as Transition).v, 1);
  });

  test('a transition the table forbids is a coded error and changes nothing', () => {
    const lc = new Lifecycle();
    for (const to of ['live', 'ready', 'draining'] as const) {
      assert.throws(
        () => lc.transition(to, 'too early'),
        (e: unknown) => isKitError(e) && e.code === 'LIFECYCLE_TRANSITION',
      );
    }
    assert.throws(
      () => lc.transition('nirvana' as 'off', 'x'),
      (e: unknown) => isKitError(e) && e.code === 'BAD_REQUEST',
    );
    assert.equal(lc.state, 'booting');
    lc.transition('off', 'power cut');
    assert.throws(() => lc.transition('booting' as 'off', 'again'));
    assert.equal(lc.tryTransition('ready', 'level-triggered'), undefined);
    assert.equal(lc.state, 'off');
  });

  test('overlays stack by reason and clear independently of the state', () => {
    const lc = new Lifecycle();
    const seen: OverlayChange[] = [];
    lc.onChange((e) => {
      if ('overlay' in e) seen.push(e);
    });
    lc.transition('preflight', 'x');
    assert.equal(lc.setOverlay('degraded', 'power-low', true), true);
    assert.equal(lc.setOverlay('degraded', 'power-low', true), false, 'idempotent');
    lc.setOverlay('degraded', 'service-down', true);
    lc.setOverlay('fault', 'checkout-unreachable', true);
    lc.transition('ready', 'y');
    assert.ok(lc.has('degraded') && lc.has('fault'));
    assert.deepEqual(lc.reasons('degraded').sort(), ['power-low', 'service-down']);
    lc.setOverlay('degraded', 'power-low', false);
    assert.ok(lc.has('degraded'));
    lc.setOverlay('degraded', 'service-down', false);
    lc.setOverlay('fault', 'checkout-unreachable', false);
    assert.ok(!lc.has('degraded') && !lc.has('fault'));
    assert.equal(seen.length, 6);
    assert.equal(lc.view().state, 'ready');
    assert.deepEqual(lc.view().overlays, []);
  });

  test('a listener that throws does not stop the transition or the other listeners', () => {
    const lc = new Lifecycle();
    let second = 0;
    lc.onChange(() => {
      throw new Error('boom');
    });
    lc.onChange(() => second++);
    lc.transition('preflight', 'x');
    assert.equal(second, 1);
    assert.equal(lc.state, 'preflight');
  });
});

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { isKitError } from '../../core/errors.ts';
import {
  ButtonClassifier,
  type ButtonFaultEvent,
  type PressEvent,
  parseButtonMap,
} from '../../firmware/buttons.ts';
import { systemTimers } from '../../firmware/edge-timer.ts';
import { getBoardProfile } from '../../hardware/boards/index.ts';
import { SimGpio } from '../../hardware/sim/gpio-sim.ts';

const profile = getBoardProfile('sim');

describe('button classifier on a debounced simulated button (fake timers)', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 5_000_000 }));
  afterEach(() => mock.timers.reset());
  const walk = (ms: number) => {
    for (let i = 0; i < ms; i++) mock.timers.tick(1);
  };

  async function rig(initial: 0 | 1 = 0) {
    const gpio = new SimGpio();
    if (initial) gpio.setInput('buttonA', 1);
    const line = await gpio.open('buttonA', profile.gpio.buttonA, {
      direction: 'in',
      edge: 'both',
      debounceMs: 20,
    });
    const presses: PressEvent[] = [];
    const health: ButtonFaultEvent[] = [];
    const cls = new ButtonClassifier(
      'a',
      systemTimers,
      (p) => presses.push(p),
      (h) => health.push(h),
    );
    cls.initial(await line.read());
    line.watch((v, at) => cls.input(v, at));
    /** hold for `ms`, then release and let the line settle */
    const press = (ms: number) => {
      gpio.setInput('buttonA', 1);
      walk(ms);
      gpio.setInput('buttonA', 0);
      walk(25);
    };
    return { gpio, cls, presses, health, press };
  }

  test('short press: one short, after the double-press window', async () => {
    const r = await rig();
    r.press(150);
    assert.equal(r.presses.length, 0, 'not decided while a second press could still come');
    walk(400);
    assert.deepEqual(
      r.presses.map((p) => p.kind),
      ['short'],
    );
  });

  test('long press: held 3 s or more', async () => {
    const r = await rig();
    r.press(3100);
    walk(500);
    assert.deepEqual(
      r.presses.map((p) => p.kind),
      ['long'],
    );
    r.press(2900);
    walk(500);
    assert.deepEqual(
      r.presses.map((p) => p.kind),
      ['long', 'short'],
    );
  });

  test('double press: two shorts within the gap', async () => {
    const r = await rig();
    r.press(120);
    walk(150);
    r.press(120);
    walk(500);
    assert.deepEqual(
      r.presses.map((p) => p.kind),
      ['double'],
    );
  });

  test('contact bounce is filtered by the debounce and still reads as one short press', async () => {
    const r = await rig();
    r.gpio.bounce('buttonA', 1, 6, 2);
    walk(200);
    r.gpio.bounce('buttonA', 0, 6, 2);
    walk(600);
    assert.deepEqual(
      r.presses.map((p) => p.kind),
      ['short'],
    );
  });

  test('a chattering button is detected and never acted on, then trusted again after a quiet spell', async () => {
    const r = await rig();
    // 40 ms on / 40 ms off for 3 s: each edge survives the 20 ms debounce
    for (let i = 0; i < 38; i++) {
      r.gpio.setInput('buttonA', 1);
      walk(40);
      r.gpio.setInput('buttonA', 0);
      walk(40);
    }
    walk(500);
    assert.equal(r.presses.length, 0, 'no action from chatter');
    assert.equal(r.cls.health, 'chattering');
    assert.deepEqual(
      r.health.map((h) => h.health),
      ['chattering'],
    );
    walk(3000);
    assert.equal(r.cls.health, 'ok');
    r.press(100);
    walk(500);
    assert.deepEqual(
      r.presses.map((p) => p.kind),
      ['short'],
    );
  });

  test('three quick presses are not a command', async () => {
    const r = await rig();
    for (let i = 0; i < 3; i++) {
      r.press(100);
      walk(100);
    }
    walk(600);
    assert.equal(r.presses.length, 0);
    assert.equal(r.cls.health, 'ok');
  });

  test('a stuck button is reported, ignored, and its release is not a press', async () => {
    const r = await rig();
    r.gpio.setInput('buttonA', 1);
    walk(16_000);
    assert.equal(r.cls.health, 'stuck');
    r.gpio.setInput('buttonA', 0);
    walk(600);
    assert.equal(r.presses.length, 0);
    assert.equal(r.cls.health, 'ok');
    assert.deepEqual(
      r.health.map((h) => h.health),
      ['stuck', 'ok'],
    );
  });

  test('a button already down at boot is stuck until released', async () => {
    const r = await rig(1);
    assert.equal(r.cls.health, 'stuck');
    walk(5000);
    r.gpio.setInput('buttonA', 0);
    walk(600);
    assert.equal(r.presses.length, 0);
    assert.equal(r.cls.health, 'ok');
  });
});

describe('button map (POPKIT_BUTTONS)', () => {
  test('parses button.class=action pairs', () => {
    const m = parseButtonMap('a.short=mark-moment, a.long=toggle-event,b.double=identify');
    assert.equal(m.get('a.short'), 'mark-moment');
    assert.equal(m.get('a.long'), 'toggle-event');
    assert.equal(m.get('b.double'), 'identify');
    assert.equal(m.get('b.short'), undefined);
  });

  for (const bad of [
    'a.short',
    'c.short=identify',
    'a.triple=identify',
    'a.long=self-destruct',
    'a.short=identify;rm',
  ]) {
    test(`refuses '${bad}' with CONFIG_INVALID`, () => {
      assert.throws(
        () => parseButtonMap(bad),
        (e: unknown) => isKitError(e) && e.code === 'CONFIG_INVALID',
      );
    });
  }
});

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { systemTimers, type TimerHost } from '../../firmware/edge-timer.ts';
import {
  LedDriver,
  ledsFor,
  levelAt,
  nextEdge,
  PATTERN_NAMES,
  PATTERNS,
  periodOf,
} from '../../firmware/led-patterns.ts';
import { getBoardProfile } from '../../hardware/boards/index.ts';
import { SimGpio } from '../../hardware/sim/gpio-sim.ts';

const profile = getBoardProfile('sim');

async function openLeds(gpio: SimGpio, timers: TimerHost) {
  const green = await gpio.open('ledGreen', profile.gpio.ledGreen, { direction: 'out' });
  const red = await gpio.open('ledRed', profile.gpio.ledRed, { direction: 'out' });
  const driver = new LedDriver(green, red, timers);
  gpio.clearHistory();
  return driver;
}

/** The edges a pattern should produce from `epoch` up to `until`: [time, level]. */
function expectedEdges(
  p: (typeof PATTERN_NAMES)[number],
  epoch: number,
  until: number,
): Array<[number, number]> {
  const out: Array<[number, number]> = [[epoch, levelAt(p, epoch, epoch)]];
  let t = epoch;
  for (;;) {
    const n = nextEdge(p, epoch, t);
    if (n === undefined || n > until) break;
    out.push([n, levelAt(p, epoch, n)]);
    t = n;
  }
  return out;
}

describe('LED pattern language', () => {
  test('every pattern alternates on/off from its start and repeats with its period', () => {
    for (const p of PATTERN_NAMES) {
      const def = PATTERNS[p];
      if (def.constant !== undefined) {
        assert.equal(levelAt(p, 0, 12345), def.constant);
        assert.equal(nextEdge(p, 0, 12345), undefined);
        continue;
      }
      assert.equal(def.steps.length % 2, 0, `${p} must end on an off step`);
      assert.equal(levelAt(p, 1000, 1000), 1, `${p} starts on`);
      const period = periodOf(p);
      for (const t of [0, 37, 199, 600, 1234]) assert.equal(levelAt(p, 0, t), levelAt(p, 0, t + 7 * period));
    }
  });

  test('docs/leds.md lists every pattern with the timings the code uses', () => {
    const doc = fs.readFileSync(path.join(import.meta.dirname, '../../docs/leds.md'), 'utf8');
    for (const p of PATTERN_NAMES) {
      const row = doc.split('\n').find((l) => new RegExp(`^\\|\\s*\`${p}\`\\s*\\|`).test(l));
      assert.ok(row, `docs/leds.md has a row for ${p}`);
      const timing = row.split('|')[2] ?? '';
      const numbers = [...timing.matchAll(/(\d+)/g)].map((m) => Number(m[1]));
      assert.deepEqual(numbers, [...PATTERNS[p].steps], `timings of ${p} in docs/leds.md`);
    }
  });

  test('state and overlays map to green and red as the docs say', () => {
    const base = { fault: false, degraded: false, offlineQueueing: false };
    assert.deepEqual(ledsFor({ ...base, state: 'booting' }), { green: 'blink-slow', red: 'off' });
    assert.deepEqual(ledsFor({ ...base, state: 'ready' }), { green: 'on', red: 'off' });
    assert.deepEqual(ledsFor({ ...base, state: 'live' }), { green: 'heartbeat', red: 'off' });
    assert.deepEqual(ledsFor({ ...base, state: 'live', offlineQueueing: true }), {
      green: 'heartbeat',
      red: 'mirror',
    });
    assert.deepEqual(ledsFor({ ...base, state: 'live', degraded: true, offlineQueueing: true }), {
      green: 'heartbeat',
      red: 'double-flash',
    });
    assert.deepEqual(ledsFor({ ...base, state: 'ready', degraded: true, fault: true }), {
      green: 'on',
      red: 'flicker',
    });
    assert.deepEqual(ledsFor({ ...base, state: 'off', fault: true }), { green: 'off', red: 'off' });
  });
});

describe('LedDriver on the simulated GPIO chip (fake timers)', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());
  // mock.timers.tick(n) moves the clock by n before it runs what fell due, so walk in 1 ms steps to
  // let each callback see its own time
  const walk = (ms: number) => {
    for (let i = 0; i < ms; i++) mock.timers.tick(1);
  };

  test('heartbeat on green writes exactly the pattern edges over 5 s; red stays dark', async () => {
    const gpio = new SimGpio();
    const leds = await openLeds(gpio, systemTimers);
    leds.start();
    gpio.clearHistory();
    leds.set('heartbeat', 'off');
    const t0 = Date.now();
    walk(5000);
    const got = gpio.history('ledGreen').map((w) => [w.atMs, w.value]);
    assert.deepEqual(got, expectedEdges('heartbeat', t0, t0 + 5000));
    assert.deepEqual(
      gpio.history('ledRed').map((w) => w.value),
      [],
    );
    assert.equal(gpio.level('ledRed'), 0);
    leds.stop();
  });

  test('late timers never accumulate drift: edge k stays within the lateness of t0 + k·period', async () => {
    // every wake-up arrives up to 40 ms late, deterministically
    let seed = 7;
    let wakeups = 0;
    const late: TimerHost = {
      now: () => Date.now(),
      setTimeout: (cb, ms) => {
        wakeups++;
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return setTimeout(cb, ms + (seed % 41));
      },
      clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
    };
    const gpio = new SimGpio();
    const leds = await openLeds(gpio, late);
    leds.start();
    gpio.clearHistory();
    leds.set('blink', 'off');
    const t0 = Date.now();
    const cycles = 200; // 80 s of blinking
    walk(cycles * 400 + 100);
    const writes = gpio.history('ledGreen');
    assert.ok(writes.length >= cycles * 2, `about two writes per cycle, got ${writes.length}`);
    for (const w of writes) {
      const k = Math.round((w.atMs - t0) / 200) * 200;
      const off = w.atMs - (t0 + k);
      assert.ok(off >= 0 && off <= 40, `edge at +${w.atMs - t0} ms is ${off} ms off its slot`);
      assert.equal(w.value, levelAt('blink', t0, t0 + k));
    }
    const last = writes.at(-1)!;
    assert.ok(last.atMs - t0 >= cycles * 400 - 400, 'still blinking at the end, no edges lost');
    assert.ok(wakeups <= cycles * 2 + 5, `one wake-up per edge, got ${wakeups}`);
    leds.stop();
  });

  test('a solid or dark LED costs no timer at all', async () => {
    let wakeups = 0;
    const counting: TimerHost = {
      ...systemTimers,
      setTimeout: (cb, ms) => {
        wakeups++;
        return setTimeout(cb, ms);
      },
    };
    const gpio = new SimGpio();
    const leds = await openLeds(gpio, counting);
    leds.start();
    gpio.clearHistory();
    leds.set('on', 'off');
    walk(60_000);
    assert.equal(wakeups, 0);
    assert.equal(gpio.level('ledGreen'), 1);
    assert.equal(gpio.history('ledGreen').length, 1);
  });

  test('amber: red mirrors green in phase; a repeated set() keeps the phase', async () => {
    const gpio = new SimGpio();
    const leds = await openLeds(gpio, systemTimers);
    leds.start();
    leds.set('single-flash', 'mirror');
    for (let i = 0; i < 3000; i++) {
      mock.timers.tick(1);
      if (i % 500 === 0) leds.set('single-flash', 'mirror');
      assert.equal(gpio.level('ledRed'), gpio.level('ledGreen'));
    }
    const g = gpio.history('ledGreen').map((w) => w.atMs);
    const r = gpio.history('ledRed').map((w) => w.atMs);
    assert.deepEqual(r, g);
    assert.equal(leds.view().red.pattern, 'mirror');
  });

  test('identify blinks both LEDs for 15 s, then the previous patterns come back', async () => {
    const gpio = new SimGpio();
    const leds = await openLeds(gpio, systemTimers);
    leds.start();
    leds.set('on', 'off');
    const t0 = Date.now();
    leds.identify();
    assert.equal(leds.view().green.pattern, 'identify');
    walk(14_990);
    const during = gpio.history('ledRed').filter((w) => w.atMs < t0 + 15_000);
    assert.ok(during.length >= 110, `red toggled about 120 times, got ${during.length}`);
    walk(20);
    assert.equal(leds.view().green.pattern, 'on');
    assert.equal(leds.view().red.pattern, 'off');
    assert.equal(gpio.level('ledGreen'), 1);
    assert.equal(gpio.level('ledRed'), 0);
    assert.equal(leds.view().identifyUntil, undefined);
  });

  test('a failing GPIO write is counted, never thrown', async () => {
    const gpio = new SimGpio();
    const green = await gpio.open('ledGreen', profile.gpio.ledGreen, { direction: 'out' });
    const red = await gpio.open('ledRed', profile.gpio.ledRed, { direction: 'out' });
    await red.close();
    const leds = new LedDriver(green, red, systemTimers);
    leds.start();
    leds.set('blink', 'blink');
    walk(1000);
    await new Promise((r) => setImmediate(r));
    assert.ok(leds.writeErrors > 0);
    assert.ok(gpio.history('ledGreen').length > 3);
  });
});

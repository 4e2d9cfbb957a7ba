// Active-low buttons on every real board: the buttons are wired to ground with pull-ups, so the pin
// rests high and a press pulls it to 0. kitd's settings for each real board profile open the button
// lines active-low, and through the front panel on the sim GPIO a level 0 on the pin is a press, a
// high pin at boot is a released button (not a stuck one). The test drives electrical levels on the
// pins: the sim's logical setInput is translated with the options kitd actually opened the line with.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../core/config.ts';
import type { PressEvent } from '../../firmware/buttons.ts';
import { KitdConfig } from '../../firmware/config.ts';
import { systemTimers } from '../../firmware/edge-timer.ts';
import { FrontPanel } from '../../firmware/front-panel.ts';
import { kitdSettings } from '../../firmware/kitd-deps.ts';
import { Lifecycle } from '../../firmware/lifecycle.ts';
import { BOARD_IDS, type BoardProfile, getBoardProfile } from '../../hardware/boards/index.ts';
import type { GpioChipProvider, GpioOpenOptions, GpioValue } from '../../hardware/gpio/types.ts';
import { SimGpio } from '../../hardware/sim/gpio-sim.ts';

const REAL_BOARDS = BOARD_IDS.filter((id) => id !== 'sim');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The sim chip, plus the options each line was opened with and a way to set a pin's electrical level. */
function wiredChip() {
  const sim = new SimGpio();
  const opened = new Map<string, GpioOpenOptions>();
  const chip: GpioChipProvider = {
    open: (name, ref, opts) => {
      opened.set(name, opts);
      return sim.open(name, ref, opts);
    },
  };
  const drivePin = (name: string, level: GpioValue) => {
    // before the line is open the sim has no polarity: the level is the pin's
    const activeLow = opened.get(name)?.activeLow ?? false;
    sim.setInput(name, activeLow ? ((1 - level) as GpioValue) : level);
    assert.equal(sim.physical(name), level, `${name} pin is not at ${level}`);
  };
  return { sim, chip, opened, drivePin };
}

async function panelOn(board: BoardProfile, buttonsActiveLow: boolean) {
  const w = wiredChip();
  // pull-ups: before kitd opens anything, both button pins rest high
  w.drivePin('buttonA', 1);
  w.drivePin('buttonB', 1);
  const presses: PressEvent[] = [];
  const panel = new FrontPanel({
    gpio: w.chip,
    board,
    timers: systemTimers,
    lifecycle: new Lifecycle(),
    buttonOptions: {},
    buttonsActiveLow,
    onPress: (p) => presses.push(p),
  });
  await panel.open();
  return { ...w, panel, presses };
}

async function pressA(rig: Awaited<ReturnType<typeof panelOn>>) {
  rig.drivePin('buttonA', 0);
  await sleep(120);
  rig.drivePin('buttonA', 1);
  // debounce (20 ms) and the double-press gap (400 ms) before a short press is final
  await sleep(700);
}

for (const id of REAL_BOARDS) {
  test(`${id}: buttons open active-low; a high pin at rest is released, a pin pulled to 0 is a press`, async () => {
    const board = getBoardProfile(id);
    const settings = kitdSettings(loadConfig(KitdConfig, { POPKIT_BOARD: id }), board);
    assert.equal(settings.buttonsActiveLow, true, `${id} must read its buttons active-low`);
    const rig = await panelOn(board, settings.buttonsActiveLow);
    try {
      assert.equal(rig.opened.get('buttonA')?.activeLow, true);
      assert.equal(rig.opened.get('buttonB')?.activeLow, true);
      assert.deepEqual(rig.panel.buttonHealth(), { a: 'ok', b: 'ok' }, 'a released button read as held');
      assert.equal(rig.sim.level('buttonA'), 0, 'a high pin must read as released');
      await pressA(rig);
      assert.deepEqual(
        rig.presses.map((p) => `${p.button}.${p.kind}`),
        ['a.short'],
        'the pin going to 0 and back must be one short press of A',
      );
      assert.deepEqual(rig.panel.buttonHealth(), { a: 'ok', b: 'ok' });
    } finally {
      await rig.panel.close();
      await rig.panel.release();
    }
  });
}

test('self-check: the same wiring read active-high is a stuck button and no press', async () => {
  const rig = await panelOn(getBoardProfile('pi5'), false);
  try {
    assert.equal(rig.panel.buttonHealth()['a'], 'stuck');
    await pressA(rig);
    assert.deepEqual(rig.presses, []);
  } finally {
    await rig.panel.close();
    await rig.panel.release();
  }
});

test('the sim board keeps logical levels (its buttons are not inverted)', () => {
  const board = getBoardProfile('sim');
  assert.equal(kitdSettings(loadConfig(KitdConfig, { POPKIT_BOARD: 'sim' }), board).buttonsActiveLow, false);
});

// Board profiles and detection, GPIO base detection from fake sysfs trees (Pi 4 on 6.6, Pi 5, an
// image without /sys/class/gpio), provider choice, and the simulated GPIO chip on fake timers.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, mock, test } from 'node:test';
import { BOARD_IDS, boardFromDeviceType, detectBoard, getBoardProfile } from '../../hardware/boards/index.ts';
import { chooseGpioBackend, createGpioProvider } from '../../hardware/factories/gpio-providers.ts';
import {
  checkLibgpiodVersion,
  findCharDevChip,
  LIBGPIOD_FIX,
  type LibgpiodChip,
  type LibgpiodModule,
  LibgpiodProvider,
  loadLibgpiod,
  NODE_LIBGPIOD_VERSION,
} from '../../hardware/gpio/libgpiod-provider.ts';
import { OnoffGpioProvider } from '../../hardware/gpio/onoff-provider.ts';
import { findChipBase, listSysfsGpioChips, sysfsGpioNumber } from '../../hardware/gpio/sysfs-base.ts';
import { SimGpio } from '../../hardware/sim/gpio-sim.ts';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

type Chip = { dir: string; label: string; base: number; ngpio: number };

function fakeTree(opts: { model?: string; chips?: Chip[] }): NodeJS.ProcessEnv {
  const root = mkdtempSync(path.join(os.tmpdir(), 'popkit-sysfs-'));
  roots.push(root);
  if (opts.model !== undefined) {
    mkdirSync(path.join(root, 'proc/device-tree'), { recursive: true });
    writeFileSync(path.join(root, 'proc/device-tree/model'), `${opts.model}\0`);
  }
  if (opts.chips) {
    mkdirSync(path.join(root, 'sys/class/gpio'), { recursive: true });
    writeFileSync(path.join(root, 'sys/class/gpio/export'), '');
    for (const c of opts.chips) {
      const d = path.join(root, 'sys/class/gpio', c.dir);
      mkdirSync(d, { recursive: true });
      writeFileSync(path.join(d, 'label'), `${c.label}\n`);
      writeFileSync(path.join(d, 'base'), `${c.base}\n`);
      writeFileSync(path.join(d, 'ngpio'), `${c.ngpio}\n`);
    }
  }
  return { POPKIT_HOST_ROOT: root };
}

// What these boards show on Raspberry Pi OS Bookworm (kernel 6.6).
const PI4_66: Chip[] = [
  { dir: 'gpiochip512', label: 'pinctrl-bcm2711', base: 512, ngpio: 58 },
  { dir: 'gpiochip570', label: 'raspberrypi-exp-gpio', base: 570, ngpio: 8 },
];
const PI5: Chip[] = [
  { dir: 'gpiochip512', label: 'gpio-brcmstb@107d508500', base: 512, ngpio: 32 },
  { dir: 'gpiochip544', label: 'gpio-brcmstb@107d508520', base: 544, ngpio: 4 },
  { dir: 'gpiochip548', label: 'gpio-brcmstb@107d517c00', base: 548, ngpio: 17 },
  { dir: 'gpiochip565', label: 'gpio-brcmstb@107d517c20', base: 565, ngpio: 6 },
  { dir: 'gpiochip571', label: 'pinctrl-rp1', base: 571, ngpio: 54 },
];

describe('board profiles', () => {
  test('every board has LEDs, buttons, an I2C bus, power devices and an encoder', () => {
    for (const id of BOARD_IDS) {
      const p = getBoardProfile(id);
      assert.equal(p.id, id);
      for (const k of ['ledGreen', 'ledRed', 'buttonA', 'buttonB'] as const)
        assert.ok(p.gpio[k].chip && p.gpio[k].line >= 0);
      assert.ok(p.powerDevices.length > 0);
      assert.ok(p.video.maxWidth > 0 && p.video.maxFps > 0);
    }
  });

  test('encoder facts per docs/hardware-facts.md', () => {
    const pi4 = getBoardProfile('pi4').video;
    assert.deepEqual([pi4.encoder, pi4.runtimeBitrate, pi4.needsLevelCaps], ['v4l2h264enc', true, true]);
    assert.ok(pi4.maxWidth <= 2032 && pi4.maxBitrateKbps <= 20000);
    const nx = getBoardProfile('jetson-orin-nx').video;
    assert.deepEqual([nx.encoder, nx.runtimeBitrate], ['nvv4l2h264enc', true]);
    for (const id of ['pi5', 'jetson-orin-nano', 'sim'] as const) {
      const v = getBoardProfile(id).video;
      assert.deepEqual([v.encoder, v.runtimeBitrate], ['x264enc', true], id);
    }
    assert.equal(getBoardProfile('sim').video.source, 'videotestsrc');
    assert.equal(getBoardProfile('pi4').gpio.ledGreen.chip, 'pinctrl-bcm2711');
    assert.equal(getBoardProfile('pi5').gpio.ledGreen.chip, 'pinctrl-rp1');
  });

  test('profiles are copies', () => {
    getBoardProfile('pi4').powerDevices.length = 0;
    assert.ok(getBoardProfile('pi4').powerDevices.length > 0);
  });
});

describe('board detection', () => {
  test('POPKIT_BOARD wins, auto falls through, a bad name is a coded error', () => {
    const env = fakeTree({ model: 'Raspberry Pi 4 Model B Rev 1.4' });
    assert.equal(detectBoard({ ...env, POPKIT_BOARD: 'jetson-orin-nx' }).id, 'jetson-orin-nx');
    assert.equal(detectBoard({ ...env, POPKIT_BOARD: 'auto' }).id, 'pi4');
    assert.throws(() => detectBoard({ ...env, POPKIT_BOARD: 'pi9' }), { code: 'CONFIG_INVALID' });
  });

  test('BALENA_DEVICE_TYPE before the device tree', () => {
    const env = fakeTree({ model: 'Raspberry Pi 4 Model B Rev 1.4' });
    assert.equal(detectBoard({ ...env, BALENA_DEVICE_TYPE: 'raspberrypi5' }).id, 'pi5');
    assert.equal(boardFromDeviceType('raspberrypi0-2w-64'), 'pi-zero-2w');
    assert.equal(boardFromDeviceType('jetson-orin-nano-devkit-nvme'), 'jetson-orin-nano');
    assert.equal(boardFromDeviceType('jetson-orin-nx-xavier-nx-devkit'), 'jetson-orin-nx');
    assert.equal(boardFromDeviceType('intel-nuc'), undefined);
    // An unknown device type falls through to the device tree.
    assert.equal(detectBoard({ ...env, BALENA_DEVICE_TYPE: 'intel-nuc' }).id, 'pi4');
  });

  test('device-tree models (NUL-terminated) map to boards; nothing found is sim', () => {
    const cases: Array<[string, string]> = [
      ['Raspberry Pi 5 Model B Rev 1.0', 'pi5'],
      ['Raspberry Pi Zero 2 W Rev 1.0', 'pi-zero-2w'],
      ['Raspberry Pi Compute Module 4 Rev 1.1', 'pi4'],
      ['NVIDIA Jetson Orin Nano Developer Kit', 'jetson-orin-nano'],
      ['NVIDIA Jetson Orin NX Engineering Reference Developer Kit', 'jetson-orin-nx'],
    ];
    for (const [model, id] of cases) {
      const p = detectBoard(fakeTree({ model }));
      assert.equal(p.id, id, model);
      assert.equal(p.model, model, 'the real model string is kept');
    }
    assert.equal(detectBoard(fakeTree({})).id, 'sim');
    assert.equal(detectBoard(fakeTree({ model: 'QEMU Virtual Machine' })).id, 'sim');
  });
});

describe('GPIO base detection (sysfs)', () => {
  test('Pi 4 on kernel 6.6: pinctrl-bcm2711 at base 512, GPIO17 is 529', () => {
    const env = fakeTree({ chips: PI4_66 });
    assert.equal(findChipBase('pinctrl-bcm2711', env).base, 512);
    assert.equal(sysfsGpioNumber(getBoardProfile('pi4').gpio.ledGreen, env), 529);
    assert.equal(sysfsGpioNumber(getBoardProfile('pi4').gpio.buttonA, env), 517);
  });

  test('Pi 5: the header is pinctrl-rp1 at base 571, not the first chip', () => {
    const env = fakeTree({ chips: PI5 });
    assert.equal(listSysfsGpioChips(env).length, 5);
    assert.equal(sysfsGpioNumber(getBoardProfile('pi5').gpio.ledGreen, env), 588);
    assert.equal(sysfsGpioNumber(getBoardProfile('pi5').gpio.buttonB, env), 577);
  });

  test('a wrong profile or a line past the chip is a clear coded error', () => {
    const env = fakeTree({ chips: PI4_66 });
    assert.throws(() => sysfsGpioNumber(getBoardProfile('pi5').gpio.ledGreen, env), {
      code: 'HW_UNAVAILABLE',
      message: /no GPIO chip labelled 'pinctrl-rp1'.*pinctrl-bcm2711@512/,
    });
    assert.throws(() => sysfsGpioNumber({ chip: 'raspberrypi-exp-gpio', line: 8 }, env), {
      code: 'BAD_REQUEST',
    });
  });

  test('no /sys/class/gpio: the message names the fix', async () => {
    const env = fakeTree({ model: 'Raspberry Pi 5 Model B Rev 1.0' });
    assert.throws(() => listSysfsGpioChips(env), {
      code: 'HW_GPIO_UNSUPPORTED',
      message: /no \/sys\/class\/gpio.*libgpiod-dev.*node-libgpiod/,
    });
    // The onoff provider fails the same clear way before touching onoff.
    await assert.rejects(
      new OnoffGpioProvider(env).open('ledGreen', getBoardProfile('pi5').gpio.ledGreen, { direction: 'out' }),
      {
        code: 'HW_GPIO_UNSUPPORTED',
      },
    );
    // Without sysfs the libgpiod backend is chosen, and without node-libgpiod it names the fix.
    assert.equal(chooseGpioBackend(getBoardProfile('pi5'), env), 'libgpiod');
    await assert.rejects(loadLibgpiod('popkit-no-such-libgpiod-module'), {
      code: 'HW_GPIO_UNSUPPORTED',
      message: LIBGPIOD_FIX,
    });
    assert.ok(createGpioProvider(getBoardProfile('pi5'), env) instanceof LibgpiodProvider);
  });

  test('backend choice: sim board → sim, sysfs present → sysfs, POPKIT_GPIO forces, bad value refused', () => {
    const env = fakeTree({ chips: PI4_66 });
    assert.equal(chooseGpioBackend(getBoardProfile('sim'), env), 'sim');
    assert.equal(chooseGpioBackend(getBoardProfile('pi4'), env), 'sysfs');
    assert.equal(chooseGpioBackend(getBoardProfile('pi4'), { ...env, POPKIT_GPIO: 'sim' }), 'sim');
    assert.throws(() => chooseGpioBackend(getBoardProfile('pi4'), { ...env, POPKIT_GPIO: 'magic' }), {
      code: 'CONFIG_INVALID',
    });
    assert.ok(createGpioProvider(getBoardProfile('sim'), env) instanceof SimGpio);
  });
});

describe('libgpiod adapter (node-libgpiod 0.5, character device)', () => {
  /** A host tree for the character-device lookup: files under /sys and empty /dev nodes. */
  function cdevTree(files: Record<string, string>, devs: string[]): NodeJS.ProcessEnv {
    const root = mkdtempSync(path.join(os.tmpdir(), 'popkit-cdev-'));
    roots.push(root);
    mkdirSync(path.join(root, 'dev'), { recursive: true });
    for (const d of devs) writeFileSync(path.join(root, 'dev', d), '');
    for (const [f, body] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      writeFileSync(path.join(root, f), body);
    }
    return { POPKIT_HOST_ROOT: root };
  }

  test('chip lookup reads /sys/class/gpio/chipN/label, N being the /dev/gpiochipN number', () => {
    // Documentation/ABI/obsolete/sysfs-gpio: "/chipX ... #X is the gpio device ID ... /label".
    // A Pi 5 on a kernel with the per-chip interface: RP1's pins are /dev/gpiochip0 (base 571).
    const env = cdevTree(
      {
        'sys/class/gpio/gpiochip571/label': 'pinctrl-rp1\n',
        'sys/class/gpio/gpiochip571/base': '571\n',
        'sys/class/gpio/chip0/label': 'pinctrl-rp1\n',
        'sys/class/gpio/chip10/label': 'gpio-brcmstb@107d508500\n',
      },
      ['gpiochip0', 'gpiochip10'],
    );
    assert.equal(findCharDevChip('pinctrl-rp1', env), 0);
    assert.equal(findCharDevChip('gpio-brcmstb@107d508500', env), 10);
    assert.equal(findCharDevChip('no-such-chip', env), -1, 'unknown to sysfs: ask the device');
  });

  test('the files that are not the chip label by device number are not taken for it', () => {
    // The old lookup read of_node/label (a device-tree property) and would have answered 3 here;
    // gpiochip571 is keyed by its base, not by the /dev number.
    const env = cdevTree(
      {
        'sys/bus/gpio/devices/gpiochip3/of_node/label': 'pinctrl-rp1\0',
        'sys/class/gpio/gpiochip571/label': 'pinctrl-rp1\n',
      },
      ['gpiochip0', 'gpiochip3'],
    );
    assert.equal(findCharDevChip('pinctrl-rp1', env), -1);
  });

  test('no /dev/gpiochip* at all is a coded error naming the fix; a label file of junk matches nothing', () => {
    assert.throws(() => findCharDevChip('pinctrl-rp1', cdevTree({}, ['ttyUSB0', 'gpiochip'])), {
      code: 'HW_GPIO_UNSUPPORTED',
      message: /no \/dev\/gpiochip\* devices/,
    });
    const env = cdevTree({ 'sys/class/gpio/chip0/label': '\0\0'.repeat(4096) }, ['gpiochip0']);
    assert.equal(findCharDevChip('', env), 0, 'an all-NUL label is the empty label, nothing more');
    assert.equal(findCharDevChip('pinctrl-rp1', env), -1);
  });

  test('one minor version: 0.5.x loads, 0.4 (the other argument order) and others are refused', () => {
    assert.equal(NODE_LIBGPIOD_VERSION, '0.5.3');
    checkLibgpiodVersion('0.5.3');
    checkLibgpiodVersion('0.5.0');
    for (const bad of ['0.4.6', '0.3.0', '1.0.0', '0.50.0', '', 'latest', undefined, 5, 'x'.repeat(5000)]) {
      assert.throws(
        () => checkLibgpiodVersion(bad),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'HW_GPIO_UNSUPPORTED');
          assert.match(err.message, /node-libgpiod@0\.5\.3/);
          assert.ok(err.message.length < 300, 'a hostile version string is not echoed whole');
          return true;
        },
      );
    }
  });

  test('loadLibgpiod checks the installed package version before loading it', async () => {
    // one directory per version: require() caches a package.json once read
    const pkg = (version: string) => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'popkit-gpiod-pkg-'));
      roots.push(dir);
      writeFileSync(
        path.join(dir, 'package.json'),
        JSON.stringify({ name: 'node-libgpiod', version, main: 'index.js' }),
      );
      writeFileSync(
        path.join(dir, 'index.js'),
        'module.exports = { version: "1.6.3", getChipNames: () => [], Chip: class {}, Line: class {} };\n',
      );
      return dir;
    };
    await assert.rejects(loadLibgpiod(pkg('0.4.6')), {
      code: 'HW_GPIO_UNSUPPORTED',
      message: /0\.4\.6 is installed/,
    });
    const lib = await loadLibgpiod(pkg('0.5.3'));
    assert.equal(typeof lib.Chip, 'function');
    assert.deepEqual(lib.getChipNames(), []);
    const broken = pkg('0.5.3');
    writeFileSync(path.join(broken, 'index.js'), 'module.exports = { Chip: 42 };\n');
    await assert.rejects(loadLibgpiod(broken), { code: 'HW_GPIO_UNSUPPORTED', message: /lacks Chip/ });
  });

  /**
   * A stand-in for node-libgpiod 0.5.3's JavaScript surface (lib/chip.js, lib/line.js of the
   * published package): getters on Chip, consumer before value in requestOutputMode. It records
   * the calls so the adapter's use of that surface is checked; the native part is not emulated.
   */
  function fakeLib(chips: Array<{ name: string; label: string; lines: number }>) {
    const calls: string[] = [];
    const values = new Map<string, 0 | 1>();
    class Chip implements LibgpiodChip {
      readonly name: string;
      readonly label: string;
      readonly numberOfLines: number;
      constructor(id: number | string) {
        const c = chips.find((x) => x.name === (typeof id === 'number' ? `gpiochip${id}` : id));
        if (!c) throw new Error(`cannot open ${id}`);
        this.name = c.name;
        this.label = c.label;
        this.numberOfLines = c.lines;
        calls.push(`chip ${id}`);
      }
    }
    class Line {
      constructor(
        readonly chip: LibgpiodChip,
        readonly offset: number,
      ) {}
      requestInputMode(consumer = '') {
        calls.push(`in ${this.offset} ${consumer}`);
      }
      requestOutputMode(consumer = '', defaultValue: 0 | 1 = 0) {
        if (typeof consumer !== 'string' || (defaultValue !== 0 && defaultValue !== 1))
          throw new TypeError('requestOutputMode(consumer, defaultValue)');
        calls.push(`out ${this.offset} ${consumer} ${defaultValue}`);
        values.set(`${this.chip.name}:${this.offset}`, defaultValue);
      }
      getValue() {
        return values.get(`${this.chip.name}:${this.offset}`) ?? 0;
      }
      setValue(v: 0 | 1) {
        calls.push(`set ${this.offset} ${v}`);
        values.set(`${this.chip.name}:${this.offset}`, v);
      }
      release() {
        calls.push(`release ${this.offset}`);
      }
    }
    const lib: LibgpiodModule = { getChipNames: () => chips.map((c) => c.name), Chip, Line };
    return { lib, calls };
  }

  const PI5_CHIPS = [
    { name: 'gpiochip0', label: 'gpio-brcmstb@107d508500', lines: 32 },
    { name: 'gpiochip4', label: 'pinctrl-rp1', lines: 54 },
  ];

  test('open: finds the chip through the device when sysfs cannot tell, requests with the 0.5 argument order', async () => {
    const env = cdevTree({}, ['gpiochip0', 'gpiochip4']);
    const { lib, calls } = fakeLib(PI5_CHIPS);
    const gpio = new LibgpiodProvider(env, 10, async () => lib);
    const ref = getBoardProfile('pi5').gpio.ledGreen;
    const led = await gpio.open('ledGreen', ref, { direction: 'out', activeLow: true });
    assert.ok(calls.includes(`out ${ref.line} popkit-ledGreen 1`), calls.join(' | '));
    await led.write(1);
    assert.equal(calls.at(-1), `set ${ref.line} 0`, 'active-low: on drives the line low');
    assert.equal(await led.read(), 1);
    await led.close();
    assert.equal(calls.at(-1), `release ${ref.line}`);
    const button = await gpio.open('buttonA', getBoardProfile('pi5').gpio.buttonA, { direction: 'in' });
    assert.ok(calls.some((c) => c.startsWith('in ') && c.endsWith('popkit-buttonA')));
    await button.close();
  });

  test('open: uses /sys/class/gpio/chipN when present, and refuses a device whose label disagrees', async () => {
    const { lib, calls } = fakeLib(PI5_CHIPS);
    const agree = cdevTree({ 'sys/class/gpio/chip4/label': 'pinctrl-rp1\n' }, ['gpiochip0', 'gpiochip4']);
    const led = await new LibgpiodProvider(agree, 10, async () => lib).open(
      'ledRed',
      getBoardProfile('pi5').gpio.ledRed,
      { direction: 'out' },
    );
    assert.deepEqual(
      calls.filter((c) => c.startsWith('chip')),
      ['chip 4'],
      'straight to the chip sysfs named',
    );
    await led.close();
    const stale = cdevTree({ 'sys/class/gpio/chip0/label': 'pinctrl-rp1\n' }, ['gpiochip0', 'gpiochip4']);
    await assert.rejects(
      new LibgpiodProvider(stale, 10, async () => lib).open('ledRed', getBoardProfile('pi5').gpio.ledRed, {
        direction: 'out',
      }),
      { code: 'HW_UNAVAILABLE', message: /gpiochip0 is labelled 'gpio-brcmstb@107d508500'/ },
    );
  });

  test('open: a wrong board or a line past the chip is a coded error', async () => {
    const env = cdevTree({}, ['gpiochip0', 'gpiochip4']);
    const { lib } = fakeLib(PI5_CHIPS);
    const gpio = new LibgpiodProvider(env, 10, async () => lib);
    await assert.rejects(gpio.open('ledGreen', getBoardProfile('pi4').gpio.ledGreen, { direction: 'out' }), {
      code: 'HW_UNAVAILABLE',
      message:
        /no GPIO chip labelled 'pinctrl-bcm2711' \(found: gpiochip0=gpio-brcmstb@107d508500, gpiochip4=pinctrl-rp1\)/,
    });
    for (const line of [54, -1, 1.5]) {
      await assert.rejects(gpio.open('x', { chip: 'pinctrl-rp1', line }, { direction: 'out' }), {
        code: 'BAD_REQUEST',
      });
    }
  });
});

describe('SimGpio', () => {
  const sim = getBoardProfile('sim').gpio;

  test('LED writes are readable with their history; inputs refuse writes; busy lines refuse a second open', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 10_000 });
    try {
      const g = new SimGpio();
      const led = await g.open('ledGreen', sim.ledGreen, { direction: 'out' });
      await led.write(1);
      mock.timers.tick(250);
      await led.write(0);
      assert.equal(g.level('ledGreen'), 0);
      assert.deepEqual(g.history('ledGreen'), [
        { value: 1, atMs: 10_000 },
        { value: 0, atMs: 10_250 },
      ]);
      const btn = await g.open('buttonA', sim.buttonA, { direction: 'in', edge: 'both' });
      await assert.rejects(btn.write(1), { code: 'BAD_REQUEST' });
      await assert.rejects(g.open('ledGreen', sim.ledGreen, { direction: 'out' }), {
        code: 'HW_UNAVAILABLE',
      });
      await led.close();
      await assert.rejects(led.write(1), { code: 'HW_UNAVAILABLE' });
      // active-low: logical 1 drives the pin low
      const red = await g.open('ledRed', sim.ledRed, { direction: 'out', activeLow: true });
      await red.write(1);
      assert.equal(g.level('ledRed'), 1);
      assert.equal(g.physical('ledRed'), 0);
    } finally {
      mock.timers.reset();
    }
  });

  test('press() with debounce reports one press and one release, at the debounced times', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    try {
      const g = new SimGpio();
      const btn = await g.open('buttonA', sim.buttonA, {
        direction: 'in',
        edge: 'both',
        debounceMs: 20,
        activeLow: true,
      });
      const events: Array<[number, number]> = [];
      btn.watch((v, at) => events.push([v, at]));
      const done = g.press('buttonA', 300);
      assert.equal(g.physical('buttonA'), 0, 'active-low button pulls the pin low');
      mock.timers.tick(19);
      assert.deepEqual(events, [], 'nothing before the debounce time');
      mock.timers.tick(1);
      assert.deepEqual(events, [[1, 20]]);
      mock.timers.tick(280);
      await done;
      mock.timers.tick(20);
      assert.deepEqual(events, [
        [1, 20],
        [0, 320],
      ]);
      assert.equal(await btn.read(), 0);
    } finally {
      mock.timers.reset();
    }
  });

  test('contact bounce collapses into a single edge; edge filters apply', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    try {
      const g = new SimGpio();
      const a = await g.open('buttonA', sim.buttonA, { direction: 'in', edge: 'both', debounceMs: 10 });
      const b = await g.open('buttonB', sim.buttonB, { direction: 'in', edge: 'falling' });
      const ea: number[] = [];
      const eb: number[] = [];
      a.watch((v) => ea.push(v));
      b.watch((v) => eb.push(v));
      g.bounce('buttonA', 1, 6, 1);
      // Step through time: timers armed inside a tick fire on a later tick (Node 20 mock timers).
      for (let i = 0; i < 50; i++) mock.timers.tick(1);
      assert.deepEqual(ea, [1]);
      g.setInput('buttonB', 1);
      g.setInput('buttonB', 0);
      assert.deepEqual(eb, [0], 'only the falling edge');
    } finally {
      mock.timers.reset();
    }
  });
});

describe('serial adapter discovery (/dev/serial/by-id)', () => {
  test('VE.Direct prefers the Victron cable; a single adapter is taken; none or ambiguous is a coded error', async () => {
    const { findSerialPort } = await import('../../hardware/serial/find-port.ts');
    const env = fakeTree({});
    const root = env['POPKIT_HOST_ROOT']!;
    assert.throws(() => findSerialPort('vedirect', env), { code: 'HW_UNAVAILABLE' });
    const dir = path.join(root, 'dev/serial/by-id');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'usb-Prolific_Technology_Inc._USB-Serial_Controller-if00-port0'), '');
    assert.equal(
      findSerialPort('renogy', env),
      '/dev/serial/by-id/usb-Prolific_Technology_Inc._USB-Serial_Controller-if00-port0',
    );
    writeFileSync(path.join(dir, 'usb-VictronEnergy_BV_VE_Direct_cable_VE5XQ1RB-if00-port0'), '');
    assert.equal(
      findSerialPort('vedirect', env),
      '/dev/serial/by-id/usb-VictronEnergy_BV_VE_Direct_cable_VE5XQ1RB-if00-port0',
    );
    assert.throws(() => findSerialPort('renogy', env), {
      code: 'BAD_REQUEST',
      message: /several serial adapters/,
    });
  });
});

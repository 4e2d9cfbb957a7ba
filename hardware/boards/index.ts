// Board profiles: which GPIO lines, which I2C bus, which power devices and which video encoder a
// board has (docs/hardware-facts.md). One matcher per family, chosen from POPKIT_BOARD, BALENA_DEVICE_TYPE or
// the device-tree model, as balena-supervisor picks a device class with matches(deviceType).
import { readFileSync } from 'node:fs';
import { KitError } from '../../core/errors.ts';
import { HOST_PATHS, hostPath } from '../../core/host-paths.ts';
import type { PowerDeviceConfig } from '../power/reading.ts';

export type BoardId = 'pi4' | 'pi5' | 'pi-zero-2w' | 'jetson-orin-nano' | 'jetson-orin-nx' | 'sim';
export const BOARD_IDS: readonly BoardId[] = [
  'pi4',
  'pi5',
  'pi-zero-2w',
  'jetson-orin-nano',
  'jetson-orin-nx',
  'sim',
];

export interface GpioLineRef {
  /** The gpiochip label as the kernel reports it, e.g. `pinctrl-bcm2711`. */
  chip: string;
  /** Line offset within that chip (not a global number: bases are dynamic on 6.6+ kernels). */
  line: number;
  /** The line's name where the kernel names it (`GPIO17`, `PQ.05`). */
  name?: string;
}

export interface VideoProfile {
  source: 'v4l2src' | 'libcamerasrc' | 'videotestsrc';
  encoder: 'v4l2h264enc' | 'nvv4l2h264enc' | 'x264enc';
  maxWidth: number;
  maxHeight: number;
  maxFps: number;
  maxBitrateKbps: number;
  /** Whether the encoder's bitrate can change while the pipeline plays. */
  runtimeBitrate: boolean;
  /** v4l2h264enc refuses to start unless the H.264 level is pinned in caps. */
  needsLevelCaps: boolean;
}

export interface BoardProfile {
  id: BoardId;
  model: string;
  gpio: { ledGreen: GpioLineRef; ledRed: GpioLineRef; buttonA: GpioLineRef; buttonB: GpioLineRef };
  i2cBus: number;
  powerDevices: PowerDeviceConfig[];
  video: VideoProfile;
  /** RAM of the board (MB) where every model of it has the same; a small one runs the kit combined */
  ramMb?: number;
}

/** A board with this much RAM or less runs checkout, sync and kitd as one process (POPKIT_KIT_MODE). */
export const SMALL_BOARD_RAM_MB = 512;

/** The kit mode a board runs unless POPKIT_KIT_MODE says otherwise (docs/architecture.md#small-boards-one-kit-process). */
export function defaultKitMode(board: Pick<BoardProfile, 'ramMb'>): 'split' | 'combined' {
  return board.ramMb !== undefined && board.ramMb <= SMALL_BOARD_RAM_MB ? 'combined' : 'split';
}

const bcm = (chip: string, n: number): GpioLineRef => ({ chip, line: n, name: `GPIO${n}` });

// The same HAT wiring on every Pi: LEDs on GPIO17/27, buttons on GPIO5/6 (pull-ups in config.txt),
// a Waveshare-style UPS HAT INA219 at 0x42 and a VE.Direct charger on the first USB serial adapter.
const piGpio = (chip: string): BoardProfile['gpio'] => ({
  ledGreen: bcm(chip, 17),
  ledRed: bcm(chip, 27),
  buttonA: bcm(chip, 5),
  buttonB: bcm(chip, 6),
});

const piPower = (): PowerDeviceConfig[] => [
  {
    name: 'ups-hat',
    driver: 'ina219',
    bus: 1,
    address: 0x42,
    shuntOhms: 0.01,
    maxCurrentA: 5,
    chemistry: 'li-ion',
    cellsInSeries: 2,
  },
  { name: 'mppt', driver: 'vedirect', port: '/dev/ttyUSB0' },
];

// Orin Nano / NX developer-kit header: pins 29, 31, 33, 15 sit on the main tegra234-gpio chip
// (PQ.05, PQ.06, PH.00, PN.01). They may need a pinmux change (jetson-io) before they drive.
const jetsonGpio = (): BoardProfile['gpio'] => ({
  ledGreen: { chip: 'tegra234-gpio', line: 105, name: 'PQ.05' },
  ledRed: { chip: 'tegra234-gpio', line: 106, name: 'PQ.06' },
  buttonA: { chip: 'tegra234-gpio', line: 43, name: 'PH.00' },
  buttonB: { chip: 'tegra234-gpio', line: 85, name: 'PN.01' },
});

// Header pins 3/5 are /dev/i2c-7 on Orin developer kits.
const jetsonPower = (): PowerDeviceConfig[] => [
  {
    name: 'shunt',
    driver: 'ina226',
    bus: 7,
    address: 0x40,
    shuntOhms: 0.002,
    maxCurrentA: 20,
    chemistry: 'lifepo4',
    cellsInSeries: 4,
    capacityAh: 100,
  },
  { name: 'charger', driver: 'renogy', port: '/dev/ttyUSB0', unitId: 'scan' },
];

const PROFILES: Record<BoardId, () => BoardProfile> = {
  pi4: () => ({
    id: 'pi4',
    model: 'Raspberry Pi 4 Model B',
    gpio: piGpio('pinctrl-bcm2711'),
    i2cBus: 1,
    powerDevices: piPower(),
    video: {
      source: 'v4l2src',
      encoder: 'v4l2h264enc',
      maxWidth: 1920, // the encoder takes up to 2032 wide; 1080p30 or 720p60
      maxHeight: 1080,
      maxFps: 30,
      maxBitrateKbps: 20000,
      // extra-controls set live (patched binding: patches/gstreamer-superficial+1.7.4.patch)
      runtimeBitrate: true,
      needsLevelCaps: true,
    },
  }),
  pi5: () => ({
    id: 'pi5',
    model: 'Raspberry Pi 5 Model B',
    gpio: piGpio('pinctrl-rp1'),
    i2cBus: 1,
    powerDevices: piPower(),
    video: {
      source: 'libcamerasrc',
      encoder: 'x264enc', // no hardware encoder on the Pi 5
      maxWidth: 1920,
      maxHeight: 1080,
      maxFps: 30,
      maxBitrateKbps: 8000,
      runtimeBitrate: true,
      needsLevelCaps: false,
    },
  }),
  'pi-zero-2w': () => ({
    id: 'pi-zero-2w',
    model: 'Raspberry Pi Zero 2 W',
    gpio: piGpio('pinctrl-bcm2835'),
    i2cBus: 1,
    // A 1S fuel gauge (PiSugar / UPS-lite class) at 0x36 is the usual power source for a Zero.
    powerDevices: [{ name: 'fuel-gauge', driver: 'max17048', bus: 1, address: 0x36 }],
    video: {
      source: 'v4l2src',
      encoder: 'v4l2h264enc',
      maxWidth: 1280,
      maxHeight: 720,
      maxFps: 30,
      maxBitrateKbps: 4000,
      // extra-controls set live (patched binding: patches/gstreamer-superficial+1.7.4.patch)
      runtimeBitrate: true,
      needsLevelCaps: true,
    },
    // 512 MB LPDDR2 for everything: the kit runs combined there (POPKIT_KIT_MODE)
    ramMb: 512,
  }),
  'jetson-orin-nano': () => ({
    id: 'jetson-orin-nano',
    model: 'NVIDIA Jetson Orin Nano',
    gpio: jetsonGpio(),
    i2cBus: 7,
    powerDevices: jetsonPower(),
    video: {
      source: 'v4l2src',
      encoder: 'x264enc', // no NVENC; never probe nvv4l2h264enc here (it can hang the OS)
      maxWidth: 1920,
      maxHeight: 1080,
      maxFps: 30,
      maxBitrateKbps: 8000,
      runtimeBitrate: true,
      needsLevelCaps: false,
    },
  }),
  'jetson-orin-nx': () => ({
    id: 'jetson-orin-nx',
    model: 'NVIDIA Jetson Orin NX',
    gpio: jetsonGpio(),
    i2cBus: 7,
    powerDevices: jetsonPower(),
    video: {
      source: 'v4l2src',
      encoder: 'nvv4l2h264enc',
      maxWidth: 3840,
      maxHeight: 2160,
      maxFps: 60,
      maxBitrateKbps: 40000,
      runtimeBitrate: true,
      needsLevelCaps: false,
    },
  }),
  sim: () => ({
    id: 'sim',
    model: 'Popkit simulator',
    gpio: {
      ledGreen: { chip: 'popkit-sim', line: 0, name: 'LED_GREEN' },
      ledRed: { chip: 'popkit-sim', line: 1, name: 'LED_RED' },
      buttonA: { chip: 'popkit-sim', line: 2, name: 'BUTTON_A' },
      buttonB: { chip: 'popkit-sim', line: 3, name: 'BUTTON_B' },
    },
    i2cBus: 1,
    powerDevices: [
      { name: 'mppt', driver: 'vedirect', port: 'sim' },
      {
        name: 'shunt',
        driver: 'ina226',
        bus: 1,
        address: 0x40,
        shuntOhms: 0.002,
        maxCurrentA: 20,
        chemistry: 'lifepo4',
        cellsInSeries: 4,
        capacityAh: 100,
      },
      { name: 'fuel-gauge', driver: 'max17048', bus: 1, address: 0x36 },
    ],
    video: {
      source: 'videotestsrc',
      encoder: 'x264enc',
      maxWidth: 1280,
      maxHeight: 720,
      maxFps: 30,
      maxBitrateKbps: 4000,
      runtimeBitrate: true,
      needsLevelCaps: false,
    },
  }),
};

export function isBoardId(v: unknown): v is BoardId {
  return typeof v === 'string' && (BOARD_IDS as readonly string[]).includes(v);
}

/** A fresh copy each call, so a caller may adjust its profile without touching anyone else's. */
export function getBoardProfile(id: BoardId): BoardProfile {
  const make = PROFILES[id];
  if (!make)
    throw new KitError('BAD_REQUEST', `unknown board '${String(id)}' (one of ${BOARD_IDS.join(', ')})`);
  return make();
}

interface BoardMatcher {
  id: BoardId;
  /** balena device-type slugs, e.g. `raspberrypi4-64`. */
  deviceType: (t: string) => boolean;
  /** /proc/device-tree/model text, e.g. `Raspberry Pi 4 Model B Rev 1.4`. */
  model: (m: string) => boolean;
}

// Order matters: Orin NX before Orin Nano is irrelevant (distinct words), but "Pi Zero 2" must be
// tested before a generic "Raspberry Pi" fallback.
const MATCHERS: BoardMatcher[] = [
  {
    id: 'pi-zero-2w',
    deviceType: (t) => /^raspberrypi0-2w/.test(t),
    model: (m) => /Raspberry Pi Zero 2/i.test(m),
  },
  {
    id: 'pi5',
    deviceType: (t) => /^raspberrypi5/.test(t),
    model: (m) => /Raspberry Pi (5|Compute Module 5)/i.test(m),
  },
  {
    id: 'pi4',
    deviceType: (t) => /^(raspberrypi4|raspberrypicm4)/.test(t),
    model: (m) => /Raspberry Pi (4|400|Compute Module 4)/i.test(m),
  },
  {
    id: 'jetson-orin-nx',
    deviceType: (t) => /^jetson-orin-nx/.test(t),
    model: (m) => /Orin NX/i.test(m),
  },
  {
    id: 'jetson-orin-nano',
    deviceType: (t) => /^jetson-orin-nano/.test(t),
    model: (m) => /Orin Nano/i.test(m),
  },
];

export function boardFromDeviceType(deviceType: string): BoardId | undefined {
  return MATCHERS.find((m) => m.deviceType(deviceType.trim().toLowerCase()))?.id;
}

export function boardFromModel(model: string): BoardId | undefined {
  return MATCHERS.find((m) => m.model(model))?.id;
}

/** Reads `/proc/device-tree/model` (under POPKIT_HOST_ROOT); the kernel NUL-terminates it. */
export function readDeviceTreeModel(env: NodeJS.ProcessEnv = process.env): string | undefined {
  try {
    return readFileSync(hostPath(HOST_PATHS.deviceTreeModel, env), 'latin1').replace(/\0+$/, '').trim();
  } catch {
    return undefined;
  }
}

/**
 * POPKIT_BOARD (unless `auto`), else BALENA_DEVICE_TYPE, else the device-tree model, else `sim`.
 * An explicit POPKIT_BOARD that names no board is an error, never silently the simulator.
 */
export function detectBoard(env: NodeJS.ProcessEnv = process.env): BoardProfile {
  const forced = env['POPKIT_BOARD'];
  if (forced && forced !== 'auto') {
    if (!isBoardId(forced)) {
      throw new KitError(
        'CONFIG_INVALID',
        `POPKIT_BOARD='${forced}' names no board (one of auto, ${BOARD_IDS.join(', ')})`,
      );
    }
    return getBoardProfile(forced);
  }
  const deviceType = env['BALENA_DEVICE_TYPE'];
  if (deviceType) {
    const id = boardFromDeviceType(deviceType);
    if (id) return getBoardProfile(id);
  }
  const model = readDeviceTreeModel(env);
  if (model) {
    const id = boardFromModel(model);
    if (id) return { ...getBoardProfile(id), model };
  }
  return getBoardProfile('sim');
}

// Finds a GPIO chip's dynamic base in sysfs by its label. On 6.6+ kernels the Pi's header chip is
// no longer at base 0 (Pi 4: 512, Pi 5: 571), so `export 17` fails with EINVAL; label + offset works.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { KitError } from '../../core/errors.ts';
import { HOST_PATHS, hostPath } from '../../core/host-paths.ts';
import type { GpioLineRef } from '../boards/index.ts';

export interface SysfsGpioChip {
  /** Directory name, e.g. `gpiochip512`. */
  dir: string;
  label: string;
  base: number;
  ngpio: number;
}

export const NO_SYSFS_FIX =
  'this image has no /sys/class/gpio (Debian Trixie and JetPack 6 drop the sysfs GPIO interface): ' +
  'use the character-device adapter instead: apt-get install libgpiod-dev && npm install node-libgpiod@0.5.3, ' +
  'then set POPKIT_GPIO=libgpiod (or run with POPKIT_BOARD=sim to simulate GPIO)';

export function listSysfsGpioChips(env: NodeJS.ProcessEnv = process.env): SysfsGpioChip[] {
  const root = hostPath(HOST_PATHS.gpioSysfs, env);
  if (!existsSync(root)) throw new KitError('HW_GPIO_UNSUPPORTED', NO_SYSFS_FIX);
  const chips: SysfsGpioChip[] = [];
  for (const dir of readdirSync(root)) {
    if (!/^gpiochip\d+$/.test(dir)) continue;
    const read = (f: string) => readFileSync(path.join(root, dir, f), 'utf8').trim();
    try {
      chips.push({
        dir,
        label: read('label'),
        base: Number.parseInt(read('base'), 10),
        ngpio: Number.parseInt(read('ngpio'), 10),
      });
    } catch {
      // a chip directory without the usual attributes is not one we can use
    }
  }
  return chips.sort((x, y) => x.base - y.base);
}

export function findChipBase(label: string, env: NodeJS.ProcessEnv = process.env): SysfsGpioChip {
  const chips = listSysfsGpioChips(env);
  const chip = chips.find((c) => c.label === label);
  if (!chip) {
    const seen = chips.map((c) => `${c.label}@${c.base}`).join(', ') || 'none';
    throw new KitError(
      'HW_UNAVAILABLE',
      `no GPIO chip labelled '${label}' in /sys/class/gpio (found: ${seen}); wrong board profile?`,
    );
  }
  return chip;
}

/** The global sysfs number for a line: the chip's base plus the line's offset. */
export function sysfsGpioNumber(ref: GpioLineRef, env: NodeJS.ProcessEnv = process.env): number {
  const chip = findChipBase(ref.chip, env);
  if (!Number.isInteger(ref.line) || ref.line < 0 || ref.line >= chip.ngpio) {
    throw new KitError('BAD_REQUEST', `line ${ref.line} is outside ${ref.chip} (0–${chip.ngpio - 1})`);
  }
  return chip.base + ref.line;
}

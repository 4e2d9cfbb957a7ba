// GPIO through the character device (/dev/gpiochipN) with node-libgpiod, for images without
// /sys/class/gpio. node-libgpiod is an optional dependency pinned to one version (it builds against
// libgpiod 1.x headers, so it is not always installed): it is loaded by name at run time, a missing
// module names the fix, and another minor version is refused, because its API moved between minor
// versions (0.4: `Chip#getChipLabel()`, `requestOutputMode(value, consumer)`; 0.5: `Chip#label`,
// `requestOutputMode(consumer, value)`, `getChipNames()`).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { KitError } from '../../core/errors.ts';
import { HOST_PATHS, hostPath } from '../../core/host-paths.ts';
import type { GpioLineRef } from '../boards/index.ts';
import type { GpioChipProvider, GpioLine, GpioOpenOptions, GpioValue } from './types.ts';

/** The node-libgpiod version this adapter is written against (package.json pins the same). */
export const NODE_LIBGPIOD_VERSION = '0.5.3';

export const LIBGPIOD_FIX =
  `node-libgpiod is not installed: apt-get install libgpiod-dev && npm install node-libgpiod@${NODE_LIBGPIOD_VERSION} ` +
  '(it builds against libgpiod 1.x), or run with POPKIT_BOARD=sim';

/** node-libgpiod 0.5's Chip (lib/chip.js): getters over the native handle. */
export interface LibgpiodChip {
  readonly name: string;
  readonly label: string;
  readonly numberOfLines: number;
}
/** node-libgpiod 0.5's Line (lib/line.js); note the consumer comes first in requestOutputMode. */
export interface LibgpiodLine {
  requestInputMode(consumer?: string): void;
  requestOutputMode(consumer?: string, defaultValue?: 0 | 1): void;
  getValue(): number;
  setValue(v: 0 | 1): void;
  release(): void;
}
export interface LibgpiodModule {
  getChipNames(): string[];
  Chip: new (n: number | string) => LibgpiodChip;
  Line: new (chip: LibgpiodChip, offset: number) => LibgpiodLine;
}

/** Accepts the pinned minor version only (0.5.x); anything else is a coded error naming the pin. */
export function checkLibgpiodVersion(version: unknown): void {
  const want = NODE_LIBGPIOD_VERSION.split('.').slice(0, 2).join('.');
  const m = typeof version === 'string' ? /^(\d+)\.(\d+)\.\d+/.exec(version) : null;
  if (!m || `${m[1]}.${m[2]}` !== want) {
    throw new KitError(
      'HW_GPIO_UNSUPPORTED',
      `node-libgpiod ${typeof version === 'string' ? version.slice(0, 40) : 'of unknown version'} is installed; ` +
        `this adapter speaks ${want}.x (npm install node-libgpiod@${NODE_LIBGPIOD_VERSION})`,
    );
  }
}

export async function loadLibgpiod(moduleName = 'node-libgpiod'): Promise<LibgpiodModule> {
  const req = createRequire(import.meta.url);
  let entry: string;
  let version: unknown;
  try {
    entry = req.resolve(moduleName);
    version = (req(`${moduleName}/package.json`) as { version?: unknown }).version;
  } catch {
    throw new KitError('HW_GPIO_UNSUPPORTED', LIBGPIOD_FIX);
  }
  checkLibgpiodVersion(version);
  let m: Partial<LibgpiodModule> & { default?: Partial<LibgpiodModule> };
  try {
    m = (await import(pathToFileURL(entry).href)) as typeof m;
  } catch (err) {
    // Installed but its native part does not load (built for another Node, libgpiod missing).
    throw new KitError(
      'HW_GPIO_UNSUPPORTED',
      `node-libgpiod does not load: ${(err as Error).message.slice(0, 200)}; ${LIBGPIOD_FIX}`,
    );
  }
  const lib = m.Chip ? m : m.default;
  if (
    typeof lib?.Chip !== 'function' ||
    typeof lib.Line !== 'function' ||
    typeof lib.getChipNames !== 'function'
  ) {
    throw new KitError(
      'HW_GPIO_UNSUPPORTED',
      `node-libgpiod lacks Chip, Line or getChipNames; ${LIBGPIOD_FIX}`,
    );
  }
  return lib as LibgpiodModule;
}

/**
 * The /dev/gpiochipN whose chip carries `label`, when sysfs can tell; -1 when only the character
 * device can (then ask libgpiod, which reads the label with GPIO_GET_CHIPINFO_IOCTL).
 *
 * The kernel's documented place for a chip's label by device number is `/sys/class/gpio/chipX/label`,
 * X being the GPIO device id, the N of /dev/gpiochipN (Documentation/ABI/obsolete/sysfs-gpio, kernels
 * with the per-chip sysfs interface). `/sys/class/gpio/gpiochipN/label` is keyed by the chip's first
 * global GPIO number (its base), not by N, and `/sys/bus/gpio/devices/gpiochipN/of_node/label` is a
 * device-tree property, not the chip label: neither maps a label to a /dev node.
 */
export function findCharDevChip(label: string, env: NodeJS.ProcessEnv = process.env): number {
  const sysfs = hostPath(HOST_PATHS.gpioSysfs, env);
  if (existsSync(sysfs)) {
    for (const d of readdirSync(sysfs)) {
      const m = /^chip(\d+)$/.exec(d);
      if (!m) continue;
      try {
        const l = readFileSync(path.join(sysfs, d, 'label'), 'utf8')
          .replace(/\0/g, '')
          .trim();
        if (l === label) return Number(m[1]);
      } catch {
        // a chip directory without a label: the character device will tell
      }
    }
  }
  const devDir = hostPath(HOST_PATHS.dev, env);
  if (!existsSync(devDir) || !readdirSync(devDir).some((f) => /^gpiochip\d+$/.test(f))) {
    throw new KitError(
      'HW_GPIO_UNSUPPORTED',
      `no /dev/gpiochip* devices: map them into the container (balena: devices or privileged)`,
    );
  }
  return -1;
}

/**
 * Input edges are sampled every `pollMs` (node-libgpiod 0.5's edge requests expose no event read or
 * callback) with debounce applied here: good enough for buttons; LEDs only write.
 */
export class LibgpiodProvider implements GpioChipProvider {
  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly pollMs = 10,
    private readonly load: () => Promise<LibgpiodModule> = () => loadLibgpiod(),
  ) {}

  async open(name: string, ref: GpioLineRef, opts: GpioOpenOptions): Promise<GpioLine> {
    const lib = await this.load();
    let chip: LibgpiodChip | undefined;
    const n = findCharDevChip(ref.chip, this.env);
    if (n >= 0) {
      chip = new lib.Chip(n);
      // sysfs and the character device must agree; a mismatch means a stale or foreign tree
      if (chip.label !== ref.chip) {
        throw new KitError(
          'HW_UNAVAILABLE',
          `/dev/gpiochip${n} is labelled '${chip.label}', not '${ref.chip}' as sysfs said`,
        );
      }
    } else {
      const seen: string[] = [];
      for (const chipName of lib.getChipNames()) {
        const c = new lib.Chip(chipName);
        seen.push(`${chipName}=${c.label}`);
        if (c.label === ref.chip) {
          chip = c;
          break;
        }
      }
      if (!chip)
        throw new KitError(
          'HW_UNAVAILABLE',
          `no GPIO chip labelled '${ref.chip}' (found: ${seen.join(', ') || 'none'})`,
        );
    }
    if (!Number.isInteger(ref.line) || ref.line < 0 || ref.line >= chip.numberOfLines) {
      throw new KitError(
        'BAD_REQUEST',
        `line ${ref.line} is outside ${ref.chip} (0–${chip.numberOfLines - 1})`,
      );
    }
    const line = new lib.Line(chip, ref.line);
    const inv = (v: number): GpioValue => ((opts.activeLow ? 1 - v : v) ? 1 : 0);
    // 0.5 order: consumer first, then the initial value (0.4 took them the other way round)
    if (opts.direction === 'out') line.requestOutputMode(`popkit-${name}`, opts.activeLow ? 1 : 0);
    else line.requestInputMode(`popkit-${name}`);
    const watchers = new Set<(v: GpioValue, at: number) => void>();
    let reported = inv(line.getValue());
    let candidate = reported;
    let since = Date.now();
    const edge = opts.edge ?? 'none';
    const timer =
      opts.direction === 'in' && edge !== 'none'
        ? setInterval(() => {
            const v = inv(line.getValue());
            const now = Date.now();
            if (v !== candidate) {
              candidate = v;
              since = now;
            }
            if (candidate !== reported && now - since >= (opts.debounceMs ?? 0)) {
              reported = candidate;
              if (edge === 'both' || (edge === 'rising' && v === 1) || (edge === 'falling' && v === 0)) {
                for (const cb of watchers) cb(v, now);
              }
            }
          }, this.pollMs)
        : undefined;
    return {
      name,
      read: async () => inv(line.getValue()),
      write: async (v) => line.setValue(opts.activeLow ? (v === 1 ? 0 : 1) : v),
      watch: (cb) => {
        watchers.add(cb);
        return () => watchers.delete(cb);
      },
      close: async () => {
        if (timer) clearInterval(timer);
        watchers.clear();
        line.release();
      },
    };
  }
}

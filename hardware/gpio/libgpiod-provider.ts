// GPIO through the character device (/dev/gpiochipN) with node-libgpiod, for images without
// /sys/class/gpio. node-libgpiod is not a dependency (it needs libgpiod-dev to build), so it is
// loaded by name at run time and a missing module names the fix.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { KitError } from '../../core/errors.ts';
import { HOST_PATHS, hostPath } from '../../core/host-paths.ts';
import type { GpioLineRef } from '../boards/index.ts';
import type { GpioChipProvider, GpioLine, GpioOpenOptions, GpioValue } from './types.ts';

export const LIBGPIOD_FIX =
  'node-libgpiod is not installed: apt-get install libgpiod-dev && npm install node-libgpiod ' +
  '(it builds against libgpiod 1.x), or run with POPKIT_BOARD=sim';

interface LibgpiodChip {
  readonly label: string;
  readonly numberOfLines: number;
}
interface LibgpiodLine {
  requestInputMode(consumer?: string): void;
  requestOutputMode(defaultValue?: number, consumer?: string): void;
  getValue(): number;
  setValue(v: number): void;
  release(): void;
}
interface LibgpiodModule {
  getChipNames(): string[];
  Chip: new (n: number | string) => LibgpiodChip;
  Line: new (chip: LibgpiodChip, offset: number) => LibgpiodLine;
}

export async function loadLibgpiod(moduleName = 'node-libgpiod'): Promise<LibgpiodModule> {
  try {
    const m = (await import(moduleName)) as LibgpiodModule & { default?: LibgpiodModule };
    return m.Chip ? m : (m.default as LibgpiodModule);
  } catch {
    throw new KitError('HW_GPIO_UNSUPPORTED', LIBGPIOD_FIX);
  }
}

/** Maps a chip label to its /dev/gpiochipN through /sys/bus/gpio/devices (present without sysfs GPIO). */
export function findCharDevChip(label: string, env: NodeJS.ProcessEnv = process.env): number {
  const dir = hostPath('/sys/bus/gpio/devices', env);
  if (existsSync(dir)) {
    for (const d of readdirSync(dir)) {
      const m = /^gpiochip(\d+)$/.exec(d);
      if (!m) continue;
      try {
        const l = readFileSync(path.join(dir, d, 'of_node', 'label'), 'utf8')
          .replace(/\0/g, '')
          .trim();
        if (l === label) return Number(m[1]);
      } catch {
        // no of_node label: fall through to asking libgpiod
      }
    }
  }
  const devDir = hostPath(HOST_PATHS.dev, env);
  if (!existsSync(devDir) || !readdirSync(devDir).some((f) => f.startsWith('gpiochip'))) {
    throw new KitError(
      'HW_GPIO_UNSUPPORTED',
      `no /dev/gpiochip* devices: map them into the container (balena: devices or privileged)`,
    );
  }
  return -1;
}

/**
 * Input edges are sampled every `pollMs` (node-libgpiod 0.5's edge requests expose no callback) with
 * debounce applied here: good enough for buttons; LEDs only write.
 */
export class LibgpiodProvider implements GpioChipProvider {
  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly pollMs = 10,
  ) {}

  async open(name: string, ref: GpioLineRef, opts: GpioOpenOptions): Promise<GpioLine> {
    const lib = await loadLibgpiod();
    let chip: LibgpiodChip | undefined;
    const n = findCharDevChip(ref.chip, this.env);
    if (n >= 0) chip = new lib.Chip(n);
    else {
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
    if (ref.line >= chip.numberOfLines) {
      throw new KitError(
        'BAD_REQUEST',
        `line ${ref.line} is outside ${ref.chip} (0–${chip.numberOfLines - 1})`,
      );
    }
    const line = new lib.Line(chip, ref.line);
    const inv = (v: number): GpioValue => ((opts.activeLow ? 1 - v : v) ? 1 : 0);
    if (opts.direction === 'out') line.requestOutputMode(opts.activeLow ? 1 : 0, `popkit-${name}`);
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
      write: async (v) => line.setValue(opts.activeLow ? 1 - v : v),
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

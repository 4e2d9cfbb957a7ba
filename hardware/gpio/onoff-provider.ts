// GPIO through sysfs with onoff, addressed by chip label + offset. onoff is imported only here and
// only when a line is opened; it hard-codes /sys/class/gpio, so tests use SimGpio instead.
import { KitError } from '../../core/errors.ts';
import type { GpioLineRef } from '../boards/index.ts';
import { sysfsGpioNumber } from './sysfs-base.ts';
import type { GpioChipProvider, GpioLine, GpioOpenOptions, GpioValue } from './types.ts';

type OnoffModule = typeof import('onoff');

async function loadOnoff(): Promise<OnoffModule['Gpio']> {
  try {
    const m = await import('onoff');
    return m.Gpio;
  } catch (err) {
    throw new KitError(
      'HW_UNAVAILABLE',
      `the onoff module does not load (${(err as Error).message}); run \`npm install onoff\` (optional dependency)`,
    );
  }
}

export class OnoffGpioProvider implements GpioChipProvider {
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  async open(name: string, ref: GpioLineRef, opts: GpioOpenOptions): Promise<GpioLine> {
    const n = sysfsGpioNumber(ref, this.env); // fails with a clear message before touching onoff
    const Gpio = await loadOnoff();
    if (!Gpio.accessible)
      throw new KitError('HW_GPIO_UNSUPPORTED', 'onoff reports sysfs GPIO is not accessible here');
    const edge = opts.direction === 'in' ? (opts.edge ?? 'none') : 'none';
    let gpio: InstanceType<OnoffModule['Gpio']>;
    try {
      gpio = new Gpio(n, opts.direction, edge, {
        debounceTimeout: opts.debounceMs ?? 0,
        activeLow: opts.activeLow ?? false,
        reconfigureDirection: true,
      });
    } catch (err) {
      throw new KitError(
        'HW_UNAVAILABLE',
        `cannot export GPIO ${n} (${ref.chip} line ${ref.line}) for '${name}': ${(err as Error).message}`,
      );
    }
    const watchers = new Set<(v: GpioValue, at: number) => void>();
    if (edge !== 'none') {
      gpio.watch((err, value) => {
        if (err) return;
        const at = Date.now();
        for (const cb of watchers) cb(value as GpioValue, at);
      });
    }
    return {
      name,
      read: async () => (await gpio.read()) as GpioValue,
      write: async (v) => {
        await gpio.write(v);
      },
      watch: (cb) => {
        watchers.add(cb);
        return () => watchers.delete(cb);
      },
      close: async () => {
        watchers.clear();
        gpio.unwatchAll();
        gpio.unexport();
      },
    };
  }
}

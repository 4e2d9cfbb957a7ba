// Chooses the GPIO provider for this machine: the simulator for the `sim` board, onoff where
// /sys/class/gpio exists, node-libgpiod where it does not (POPKIT_GPIO forces one).
import { existsSync } from 'node:fs';
import { KitError } from '../../core/errors.ts';
import { HOST_PATHS, hostPath } from '../../core/host-paths.ts';
import type { BoardProfile } from '../boards/index.ts';
import { LibgpiodProvider } from '../gpio/libgpiod-provider.ts';
import { OnoffGpioProvider } from '../gpio/onoff-provider.ts';
import type { GpioChipProvider } from '../gpio/types.ts';
import { SimGpio } from '../sim/gpio-sim.ts';

export type { GpioChipProvider, GpioEdge, GpioLine, GpioOpenOptions, GpioValue } from '../gpio/types.ts';

export type GpioBackend = 'sim' | 'sysfs' | 'libgpiod';

export function chooseGpioBackend(profile: BoardProfile, env: NodeJS.ProcessEnv = process.env): GpioBackend {
  const forced = env['POPKIT_GPIO'];
  if (forced) {
    if (forced !== 'sim' && forced !== 'sysfs' && forced !== 'libgpiod') {
      throw new KitError('CONFIG_INVALID', `POPKIT_GPIO='${forced}' must be sim, sysfs or libgpiod`);
    }
    return forced;
  }
  if (profile.id === 'sim') return 'sim';
  return existsSync(hostPath(HOST_PATHS.gpioSysfs, env)) ? 'sysfs' : 'libgpiod';
}

export function createGpioProvider(
  profile: BoardProfile,
  env: NodeJS.ProcessEnv = process.env,
): GpioChipProvider {
  switch (chooseGpioBackend(profile, env)) {
    case 'sim':
      return new SimGpio();
    case 'sysfs':
      return new OnoffGpioProvider(env);
    case 'libgpiod':
      return new LibgpiodProvider(env);
  }
}

// Picks a serial adapter from /dev/serial/by-id (stable across reboots and replugs, unlike ttyUSBn)
// for `--port auto` and board defaults: a Victron cable for VE.Direct, else the only adapter there is.
import { existsSync, readdirSync } from 'node:fs';
import { KitError } from '../../core/errors.ts';
import { HOST_PATHS, hostPath } from '../../core/host-paths.ts';
import type { PowerDriver } from '../power/reading.ts';

const PREFERRED: Partial<Record<PowerDriver, RegExp>> = {
  vedirect: /VictronEnergy|VE_Direct/i,
};

export function listSerialById(env: NodeJS.ProcessEnv = process.env): string[] {
  const dir = hostPath(HOST_PATHS.serialById, env);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((n) => `${HOST_PATHS.serialById}/${n}`);
}

/** The by-id path to use for a driver; a clear coded error when there is none or it is ambiguous. */
export function findSerialPort(driver: PowerDriver, env: NodeJS.ProcessEnv = process.env): string {
  const all = listSerialById(env);
  if (all.length === 0) {
    throw new KitError(
      'HW_UNAVAILABLE',
      `no serial adapters in ${HOST_PATHS.serialById} (plugged in? mapped into the container?)`,
    );
  }
  const pref = PREFERRED[driver];
  const matching = pref ? all.filter((p) => pref.test(p)) : [];
  if (matching.length === 1) return matching[0]!;
  const others = pref ? all.filter((p) => !pref.test(p)) : all;
  if (matching.length === 0 && others.length === 1) return others[0]!;
  throw new KitError(
    'BAD_REQUEST',
    `several serial adapters could be the ${driver} device; pass --port one of: ${all.join(', ')}`,
  );
}

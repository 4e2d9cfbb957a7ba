// Every host path (sysfs, /proc, /dev, the balena lock dir) comes from here so that tests can root
// them in a fake tree with POPKIT_HOST_ROOT (as balena-supervisor does with its constants module).
import path from 'node:path';

export function hostRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env['POPKIT_HOST_ROOT'] ?? '/';
}

export function hostPath(p: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(hostRoot(env), p);
}

export const HOST_PATHS = {
  deviceTreeModel: '/proc/device-tree/model',
  gpioSysfs: '/sys/class/gpio',
  dev: '/dev',
  serialById: '/dev/serial/by-id',
  balenaLockDir: '/tmp/balena',
  balenaLockFile: '/tmp/balena/updates.lock',
} as const;

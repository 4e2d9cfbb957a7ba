// A pseudo-terminal pair from socat: the driver opens one end with the real serialport binding,
// a device simulator the other. Killing socat is an unplug; starting it again on the same link
// names is a replug (new /dev/pts numbers behind the same stable paths, like /dev/serial/by-id).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { KitError } from '../../core/errors.ts';

export interface PtyPair {
  /** Stable link paths (symlinks to /dev/pts/N). */
  a: string;
  b: string;
  process: ChildProcess;
  /** Ends socat (the "unplug"); resolves once it has exited. */
  kill(): Promise<void>;
}

export async function startPtyPair(
  a: string,
  b: string,
  opts: { timeoutMs?: number } = {},
): Promise<PtyPair> {
  for (const p of [a, b]) mkdirSync(path.dirname(p), { recursive: true });
  const child = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (err) =>
      reject(
        new KitError(
          'HW_UNAVAILABLE',
          `cannot start socat (${err.message}); install it: apt-get install socat`,
        ),
      ),
    ),
  );
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  const ready = (async () => {
    // socat logs "starting data transfer loop" once both ends exist.
    while (!(existsSync(a) && existsSync(b) && stderr.includes('starting data transfer loop'))) {
      if (child.exitCode !== null) throw new KitError('HW_UNAVAILABLE', `socat exited: ${stderr.trim()}`);
      if (Date.now() > deadline)
        throw new KitError('HW_UNAVAILABLE', `socat pty pair not ready: ${stderr.trim()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  try {
    await Promise.race([ready, spawnError]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    a,
    b,
    process: child,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

// `popkit up` as a child process, as a person starts it: the common environment of the tests that run
// it (sim board, loopback, brokers on free ports, quiet logs unless said), its output gathered from
// stdout and stderr, and its exit code.
import { type ChildProcess, spawn } from 'node:child_process';
import { BIN, captureOutput } from './checkout.ts';

export interface RunningUp {
  proc: ChildProcess;
  /** everything it printed so far */
  output(): string;
  exited: Promise<number | null>;
}

export function spawnPopkitUp(args: string[], env: Record<string, string>): RunningUp {
  const proc = spawn(process.execPath, [BIN, 'up', ...args], {
    env: {
      PATH: process.env['PATH'],
      NODE_ENV: 'test',
      POPKIT_HTTP_HOST: '127.0.0.1',
      POPKIT_LOCAL_BUS_PORT: '0',
      POPKIT_EMBEDDED_HUB_MQTT_PORT: '0',
      POPKIT_LOG_LEVEL: 'silent',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, output: captureOutput(proc), exited };
}

// `popkit up` keeps its services running: the ProcessSupervisor it uses restarts a child killed with
// SIGKILL, with a delay that grows on each crash in a row and starts over after a healthy run (delays
// read from the supervisor's own 'exit' events, never from the clock). And `popkit up` fails cleanly
// at start-up: a broker port another program holds is an error naming the port, exit code 1, and
// whatever had started (the local bus) is stopped again.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, test } from 'node:test';
import { ProcessSupervisor } from '../../core/process-supervisor.ts';
import { tempDir } from '../support/checkout.ts';
import { freePort, waitFor } from '../support/hub-link.ts';
import { processesUsing } from '../support/processes.ts';
import { spawnPopkitUp } from '../support/up.ts';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Exit {
  name: string;
  code: number | null;
  signal: string | null;
  delay: number;
}

function watch(sup: ProcessSupervisor) {
  const exits: Exit[] = [];
  const starts: number[] = [];
  sup.on('exit', (name: string, code: number | null, signal: string | null, delay: number) =>
    exits.push({ name, code, signal, delay }),
  );
  sup.on('start', (_name: string, pid: number) => starts.push(pid));
  return { exits, starts };
}

const SLEEPER = ['-e', 'setInterval(() => {}, 1 << 30)'];

/** A supervisor (40 ms first delay) running one long-lived child named `name`. */
function superviseSleeper(name: string, healthyAfterMs: number) {
  const sup = new ProcessSupervisor(tempDir('popkit-sup-'), { minBackoffMs: 40, maxBackoffMs: 10_000 });
  cleanups.push(() => sup.stop(2000));
  const seen = watch(sup);
  sup.add({ name, command: process.execPath, args: SLEEPER, env: {}, healthyAfterMs });
  return { sup, seen };
}

/** SIGKILL the running child `times` times in a row, each time once it has been restarted. */
async function crashInARow(seen: ReturnType<typeof watch>, times: number) {
  for (let i = 0; i < times; i++) {
    const started = seen.starts.length;
    const pid = await waitFor(() => seen.starts[started - 1], 15_000, 'a running child');
    process.kill(pid, 'SIGKILL');
    await waitFor(() => seen.starts.length > started, 15_000, `restart #${started}`);
  }
}

test('a child killed with SIGKILL is restarted, each time after a longer delay', {
  timeout: 60_000,
}, async () => {
  const { sup, seen } = superviseSleeper('checkout', 60_000);
  await crashInARow(seen, 4);
  assert.deepEqual(
    seen.exits.map((e) => e.signal),
    ['SIGKILL', 'SIGKILL', 'SIGKILL', 'SIGKILL'],
  );
  const delays = seen.exits.map((e) => e.delay);
  assert.deepEqual(delays, [40, 80, 160, 320], 'the restart delay doubles on each crash in a row');
  assert.equal(new Set(seen.starts).size, 5, 'each restart is a new process');
  const view = sup.view()[0];
  assert.equal(view?.restarts, 4);
  assert.equal(view?.running, true);
  assert.equal(view?.lastExit?.signal, 'SIGKILL');
});

test('after a healthy run the delay starts over', { timeout: 60_000 }, async () => {
  const { seen } = superviseSleeper('sync', 300);
  // two quick crashes: 40, then 80
  await crashInARow(seen, 2);
  // a run longer than healthyAfterMs, then a crash: back to the first delay
  await new Promise((r) => setTimeout(r, 800));
  await crashInARow(seen, 1);
  assert.deepEqual(
    seen.exits.map((e) => e.delay),
    [40, 80, 40],
  );
});

test('popkit up with its hub broker port taken fails at start-up, exit 1, nothing left running', {
  timeout: 120_000,
}, async () => {
  // another program holds the port (it accepts connections but is no MQTT broker)
  const holder = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => holder.close(() => r())));
  const taken = (holder.address() as net.AddressInfo).port;
  const dataDir = tempDir('popkit-up-fail-');
  const run = spawnPopkitUp(['--no-media'], {
    POPKIT_DATA_DIR: dataDir,
    POPKIT_HTTP_PORT: String(await freePort()),
    POPKIT_HUB_HTTP_PORT: String(await freePort()),
    POPKIT_EMBEDDED_HUB_MQTT_PORT: String(taken),
  });
  const { proc: up, exited } = run;
  // a popkit up that wrongly comes up is stopped (SIGTERM: it takes its children down) and fails the test
  cleanups.push(async () => {
    if (up.exitCode === null && up.signalCode === null) {
      up.kill('SIGTERM');
      await exited;
    }
  });
  const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 60_000))]);
  assert.equal(code, 1, run.output());
  assert.match(
    run.output(),
    new RegExp(`BROKER_UNAVAILABLE: .*hub broker.*127\\.0\\.0\\.1:${taken} is already in use`),
  );
  assert.doesNotMatch(run.output(), /Popkit is up/);
  // the local bus had started before the failure: it was stopped again, and no service was started
  assert.ok(fs.existsSync(path.join(dataDir, 'bus', 'mosquitto.conf')), 'the local bus was started first');
  assert.deepEqual(processesUsing(dataDir), []);
});

// What an LED costs: kitd's edge-timed driver (wakes only at pattern edges) against the common
// alternative measured in the same run, a 10 ms poll that recomputes the level. Prints CPU time,
// wake-ups and GPIO writes for each, and the ratio. Run: node --import tsx bench/leds.ts [--seconds N]
import { parseArgs } from 'node:util';
import { systemTimers, type TimerHost } from '../firmware/edge-timer.ts';
import { LedDriver, levelAt } from '../firmware/led-patterns.ts';
import { getBoardProfile } from '../hardware/boards/index.ts';
import { SimGpio } from '../hardware/sim/gpio-sim.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' } } });
const seconds = Number(values.seconds);
const profile = getBoardProfile('sim');

async function measure(name: string, run: (gpio: SimGpio, wake: () => void) => Promise<() => void>) {
  const gpio = new SimGpio({ historyLimit: 1_000_000 });
  let wakeups = 0;
  const stop = await run(gpio, () => wakeups++);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  stop();
  const writes = gpio.history('ledGreen').length + gpio.history('ledRed').length;
  const cpuMs = (cpu.user + cpu.system) / 1000;
  console.log(
    `${name.padEnd(22)} cpu ${cpuMs.toFixed(1).padStart(7)} ms over ${(wall / 1000).toFixed(1)} s  ` +
      `(${((cpuMs / wall) * 100).toFixed(3)} % of a core)  wake-ups ${wakeups}  writes ${writes}`,
  );
  return { cpuMs, wakeups };
}

// an idle process first: warms the JIT and gives the floor the other two are measured above
const idle = await measure('idle process', async () => () => undefined);

const edge = await measure('edge-timed (kitd)', async (gpio, wake) => {
  const counting: TimerHost = {
    ...systemTimers,
    setTimeout: (cb, ms) =>
      systemTimers.setTimeout(() => {
        wake();
        cb();
      }, ms),
  };
  const g = await gpio.open('ledGreen', profile.gpio.ledGreen, { direction: 'out' });
  const r = await gpio.open('ledRed', profile.gpio.ledRed, { direction: 'out' });
  const d = new LedDriver(g, r, counting);
  d.start();
  d.set('heartbeat', 'mirror');
  return () => d.stop();
});

const poll = await measure('10 ms poll (baseline)', async (gpio, wake) => {
  const g = await gpio.open('ledGreen', profile.gpio.ledGreen, { direction: 'out' });
  const r = await gpio.open('ledRed', profile.gpio.ledRed, { direction: 'out' });
  const epoch = Date.now();
  let last = -1;
  const t = setInterval(() => {
    wake();
    const v = levelAt('heartbeat', epoch, Date.now());
    if (v !== last) {
      last = v;
      void g.write(v);
      void r.write(v);
    }
  }, 10);
  return () => clearInterval(t);
});

const net = (ms: number) => Math.max(0.1, ms - idle.cpuMs);
console.log(
  `edge-timed / poll: CPU above idle ${(net(edge.cpuMs) / net(poll.cpuMs)).toFixed(2)}×, ` +
    `wake-ups ${(edge.wakeups / poll.wakeups).toFixed(3)}×`,
);

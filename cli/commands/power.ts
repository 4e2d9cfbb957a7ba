// `popkit power read`: read one charge controller or monitor directly and print the normalized
// reading; vendors use it to bring up a new kit (`--sim` tries it without any hardware).
import { parseArgs } from 'node:util';
import { KitError } from '../../core/errors.ts';
import {
  POWER_DRIVERS,
  type PowerDeviceConfig,
  type PowerDriver,
  type PowerReading,
  type PowerSource,
} from '../../hardware/power/reading.ts';

const USAGE = `usage: popkit power read --driver D [--port P] [--bus N --address A] [--once] [--json] [--sim]

  --driver D        ${POWER_DRIVERS.join(' | ')}
  --port P          serial port for vedirect, renogy, epever (prefer /dev/serial/by-id/…;
                    'auto' picks the adapter in /dev/serial/by-id)
  --unit ID         Modbus unit id for renogy/epever (default 1; 'scan' tries 1–247 and 255)
  --bus N           I2C bus for ina219, ina226, max17048 (default 1)
  --address A       I2C address, e.g. 0x40 (defaults: ina2xx 0x40, max17048 0x36)
  --shunt-ohms R    INA219/INA226 shunt resistance (defaults 0.1 / 0.002)
  --max-current A   INA219/INA226 calibration current (defaults 3.2 / 20)
  --interval MS     poll period for polled devices (default 1000)
  --once            print one reading and exit (exit 1 if the device gives none)
  --json            JSON (one object per line when streaming)
  --sim             read a simulated device of that kind instead of hardware
`;

const SERIAL: ReadonlySet<PowerDriver> = new Set(['vedirect', 'renogy', 'epever']);

function parseNumber(
  name: string,
  v: string | undefined,
  opts: { int?: boolean; min?: number; max?: number } = {},
): number | undefined {
  if (v === undefined) return undefined;
  const n = /^0x[0-9a-f]+$/i.test(v) ? Number.parseInt(v.slice(2), 16) : Number(v);
  if (
    !Number.isFinite(n) ||
    (opts.int && !Number.isInteger(n)) ||
    (opts.min !== undefined && n < opts.min) ||
    (opts.max !== undefined && n > opts.max)
  ) {
    throw new KitError('BAD_REQUEST', `--${name} '${v}' is not a valid value`);
  }
  return n;
}

export function deviceConfigFromArgs(argv: string[]): {
  config: PowerDeviceConfig;
  once: boolean;
  json: boolean;
  sim: boolean;
} {
  const { values } = parseArgs({
    args: argv,
    options: {
      driver: { type: 'string' },
      port: { type: 'string' },
      unit: { type: 'string' },
      bus: { type: 'string' },
      address: { type: 'string' },
      'shunt-ohms': { type: 'string' },
      'max-current': { type: 'string' },
      interval: { type: 'string' },
      once: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      sim: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const driver = values.driver;
  if (!driver || !(POWER_DRIVERS as readonly string[]).includes(driver)) {
    throw new KitError(
      'BAD_REQUEST',
      `--driver must be one of ${POWER_DRIVERS.join(', ')}${driver ? ` (got '${driver}')` : ''}`,
    );
  }
  const d = driver as PowerDriver;
  if (SERIAL.has(d) && !values.port && !values.sim)
    throw new KitError('BAD_REQUEST', `--driver ${d} needs --port (or --sim)`);
  if (!SERIAL.has(d) && values.port)
    throw new KitError('BAD_REQUEST', `--port is for serial drivers; ${d} is on I2C (--bus, --address)`);
  if (SERIAL.has(d) && (values.bus || values.address))
    throw new KitError('BAD_REQUEST', `--bus/--address are for I2C drivers; ${d} is serial (--port)`);
  const unit =
    values.unit === 'scan' ? 'scan' : parseNumber('unit', values.unit, { int: true, min: 1, max: 255 });
  const config: PowerDeviceConfig = {
    name: values.sim ? `sim-${d}` : d,
    driver: d,
    port: values.port ?? (values.sim ? 'sim' : undefined),
    unitId: unit,
    bus: parseNumber('bus', values.bus, { int: true, min: 0, max: 255 }),
    address: parseNumber('address', values.address, { int: true, min: 0x03, max: 0x77 }),
    shuntOhms: parseNumber('shunt-ohms', values['shunt-ohms'], { min: 1e-6 }),
    maxCurrentA: parseNumber('max-current', values['max-current'], { min: 1e-3 }),
    pollMs: parseNumber('interval', values.interval, { int: true, min: 50, max: 3_600_000 }),
  };
  for (const k of Object.keys(config) as Array<keyof PowerDeviceConfig>)
    if (config[k] === undefined) delete config[k];
  return { config, once: values.once ?? false, json: values.json ?? false, sim: values.sim ?? false };
}

export function formatReading(r: PowerReading): string {
  const parts: string[] = [`${r.device} (${r.driver})`];
  const f = (v: number | undefined, unit: string, digits = 2) =>
    v === undefined ? undefined : `${v.toFixed(digits)} ${unit}`;
  const add = (s: string | undefined) => {
    if (s) parts.push(s);
  };
  add(f(r.batteryV, 'V'));
  add(f(r.batteryA, 'A'));
  add(r.socPct === undefined ? undefined : `SOC ${r.socPct.toFixed(1)} %`);
  add(f(r.batteryTempC, '°C', 1));
  if (r.solarV !== undefined || r.solarW !== undefined)
    add(`solar ${[f(r.solarV, 'V'), f(r.solarW, 'W', 0)].filter(Boolean).join(' ')}`);
  add(r.loadW === undefined ? undefined : `load ${r.loadW.toFixed(1)} W`);
  add(r.chargeState);
  if (r.stale) parts.push(`STALE: ${r.staleReason ?? 'unknown'}`);
  return `${r.at}  ${parts.join('  ')}`;
}

function once(source: PowerSource, timeoutMs: number): Promise<PowerReading | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      unsub();
      resolve(source.latest());
    }, timeoutMs);
    const unsub = source.onReading((r) => {
      // A port that cannot be opened will not get better within --once's wait.
      if (!r.stale || r.staleReason?.startsWith('cannot open')) {
        clearTimeout(timer);
        unsub();
        resolve(r);
      }
    });
  });
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (sub !== 'read') {
    process.stderr.write(`popkit power: unknown subcommand '${sub ?? ''}'\n\n${USAGE}`);
    return 2;
  }
  let parsed: ReturnType<typeof deviceConfigFromArgs>;
  try {
    parsed = deviceConfigFromArgs(rest);
  } catch (err) {
    const msg = err instanceof KitError ? err.message : (err as Error).message;
    process.stderr.write(`popkit power read: ${msg}\n\n${USAGE}`);
    return 2;
  }
  const { config, json, sim } = parsed;
  // The reading is this command's output; driver warnings (pino JSON on stdout) would garble it.
  process.env['POPKIT_LOG_LEVEL'] ??= 'error';
  // Loaded here, after the log level is set, and so that `--help` never touches a driver.
  let source: PowerSource;
  if (sim) {
    const [{ BatteryModel }, { createSimDevice }] = await Promise.all([
      import('../../hardware/sim/battery-model.ts'),
      import('../../hardware/factories/sim-power-rig.ts'),
    ]);
    source = createSimDevice(config, new BatteryModel({ speed: 60 }));
  } else {
    const { createRealSource } = await import('../../hardware/factories/power-sources.ts');
    if (config.port === 'auto') {
      const { findSerialPort } = await import('../../hardware/serial/find-port.ts');
      config.port = findSerialPort(config.driver);
      if (!json) process.stderr.write(`popkit power read: using ${config.port}\n`);
    }
    source = createRealSource(config);
  }
  const print = (r: PowerReading) => process.stdout.write(`${json ? JSON.stringify(r) : formatReading(r)}\n`);
  const periodMs = config.pollMs ?? 1000;
  if (parsed.once) {
    const wait = once(source, 3 * periodMs + 1500);
    await source.start();
    const r = await wait;
    await source.stop();
    if (!r) {
      process.stderr.write(
        `popkit power read: no reading from ${config.driver} within ${3 * periodMs + 1500} ms\n`,
      );
      return 1;
    }
    print(r);
    return r.stale ? 1 : 0;
  }
  source.onReading(print);
  await source.start();
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await source.stop();
  return 0;
}

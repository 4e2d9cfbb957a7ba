// Builds the PowerSources a board's profile names: real drivers on real buses, or the same drivers
// wired to simulated devices that one BatteryModel drives.
import { KitError } from '../../core/errors.ts';
import type { BoardProfile } from '../boards/index.ts';
import { EPEVER_BAUD, EpeverSource } from '../drivers/epever-tracer.ts';
import { InaSource } from '../drivers/ina2xx.ts';
import { Max17048Source } from '../drivers/max17048.ts';
import { RENOGY_BAUD, RenogySource } from '../drivers/renogy-rover.ts';
import { VEDIRECT_BAUD, VeDirectSource } from '../drivers/vedirect.ts';
import { I2cBusAdapter } from '../i2c/i2c-bus-adapter.ts';
import type { PowerDeviceConfig, PowerSource } from '../power/reading.ts';
import { ReconnectingLink } from '../serial/reconnecting-link.ts';
import { SerialPortLink } from '../serial/serialport-link.ts';
import { BatteryModel } from '../sim/battery-model.ts';
import { createSimDevice, type SimDeviceHandle } from './sim-power-rig.ts';

export type { PowerDeviceConfig, PowerReading, PowerSource } from '../power/reading.ts';

export interface CreatePowerSourcesOptions {
  sim: boolean;
  battery?: BatteryModel;
  /** Overrides every device's poll period (the benchmark samples at 10 Hz). */
  pollMs?: number;
  env?: NodeJS.ProcessEnv;
}

const BAUD = { vedirect: VEDIRECT_BAUD, renogy: RENOGY_BAUD, epever: EPEVER_BAUD } as const;

/** One real PowerSource for a device config; nothing is opened until start(). */
export function createRealSource(
  c: PowerDeviceConfig,
  opts: { pollMs?: number; env?: NodeJS.ProcessEnv } = {},
): PowerSource {
  const pollMs = opts.pollMs ?? c.pollMs;
  switch (c.driver) {
    case 'vedirect':
    case 'renogy':
    case 'epever': {
      const port = c.port;
      if (!port) throw new KitError('BAD_REQUEST', `power device '${c.name}' (${c.driver}) needs a port`);
      const baudRate = BAUD[c.driver];
      const link = new ReconnectingLink(port, () => new SerialPortLink({ path: port, baudRate }, opts.env));
      if (c.driver === 'vedirect')
        return new VeDirectSource({ device: c.name, link, periodMs: pollMs ?? 1000 });
      const o = { device: c.name, link, unitId: c.unitId, pollMs };
      return c.driver === 'renogy' ? new RenogySource(o) : new EpeverSource(o);
    }
    case 'ina219':
    case 'ina226': {
      const bus = c.bus ?? 1;
      return new InaSource({
        device: c.name,
        chip: c.driver,
        bus: () => I2cBusAdapter.open(bus),
        address: c.address ?? 0x40,
        shuntOhms: c.shuntOhms ?? (c.driver === 'ina219' ? 0.1 : 0.002),
        maxCurrentA: c.maxCurrentA ?? (c.driver === 'ina219' ? 3.2 : 20),
        pollMs,
        chemistry: c.chemistry,
        cellsInSeries: c.cellsInSeries,
        capacityAh: c.capacityAh,
      });
    }
    case 'max17048': {
      const bus = c.bus ?? 1;
      return new Max17048Source({
        device: c.name,
        bus: () => I2cBusAdapter.open(bus),
        address: c.address,
        pollMs,
      });
    }
    default:
      throw new KitError('BAD_REQUEST', `unknown power driver '${String((c as PowerDeviceConfig).driver)}'`);
  }
}

export interface SimPowerSource extends PowerSource {
  readonly sim: SimDeviceHandle;
}

export function createPowerSources(
  profile: BoardProfile,
  opts: CreatePowerSourcesOptions,
): PowerSource[] | SimPowerSource[] {
  if (opts.sim) {
    const battery = opts.battery ?? new BatteryModel();
    return profile.powerDevices.map((c) => createSimDevice(c, battery, { pollMs: opts.pollMs }));
  }
  return profile.powerDevices.map((c) => createRealSource(c, { pollMs: opts.pollMs, env: opts.env }));
}

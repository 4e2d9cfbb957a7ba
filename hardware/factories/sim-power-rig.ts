// Wires a real driver to a simulated device of the same kind (serial pair or simulated I2C bus),
// so a simulated kit runs the production parsing code end to end.
import { EpeverSource } from '../drivers/epever-tracer.ts';
import { InaSource } from '../drivers/ina2xx.ts';
import { MAX17048_ADDRESS, Max17048Source } from '../drivers/max17048.ts';
import { RenogySource } from '../drivers/renogy-rover.ts';
import { VeDirectSource } from '../drivers/vedirect.ts';
import type { PowerDeviceConfig, PowerReading, PowerSource } from '../power/reading.ts';
import { ReconnectingLink } from '../serial/reconnecting-link.ts';
import type { BatteryModel } from '../sim/battery-model.ts';
import { Ina219Model, Ina226Model, Max17048Model, SimI2cBus } from '../sim/i2c-sim.ts';
import { EpeverSimulator, RenogySimulator } from '../sim/modbus-sims.ts';
import { SimSerialPair } from '../sim/serial-pair.ts';
import { VeDirectSimulator } from '../sim/vedirect-sim.ts';

export type SimDeviceHandle =
  | { kind: 'serial'; pair: SimSerialPair; device: VeDirectSimulator | RenogySimulator | EpeverSimulator }
  | { kind: 'i2c'; bus: SimI2cBus; address: number };

class SimulatedSource implements PowerSource {
  constructor(
    private readonly inner: PowerSource,
    readonly sim: SimDeviceHandle,
    private readonly device0?: { start(): Promise<void>; stop(): Promise<void> },
  ) {}

  get device(): string {
    return this.inner.device;
  }

  async start(): Promise<void> {
    await this.device0?.start();
    await this.inner.start();
  }

  async stop(): Promise<void> {
    await this.inner.stop();
    await this.device0?.stop();
  }

  latest(): PowerReading | undefined {
    return this.inner.latest();
  }

  onReading(cb: (r: PowerReading) => void): () => void {
    return this.inner.onReading(cb);
  }

  /** The real driver behind the simulation, for callers that reach past the interface (RenogySource.setLoad). */
  get source(): PowerSource {
    return this.inner;
  }
}

export function createSimDevice(
  c: PowerDeviceConfig,
  battery: BatteryModel,
  opts: { pollMs?: number; bus?: SimI2cBus } = {},
): PowerSource & { sim: SimDeviceHandle; source: PowerSource } {
  const pollMs = opts.pollMs ?? c.pollMs ?? 1000;
  switch (c.driver) {
    case 'vedirect':
    case 'renogy':
    case 'epever': {
      const pair = new SimSerialPair(`sim:${c.name}`);
      const link = new ReconnectingLink(pair.host.path, () => pair.hostLink(), {
        initialDelayMs: 100,
        maxDelayMs: 2000,
      });
      if (c.driver === 'vedirect') {
        const device = new VeDirectSimulator({ link: pair.device, battery, periodMs: pollMs });
        const src = new VeDirectSource({ device: c.name, link, periodMs: pollMs });
        return new SimulatedSource(src, { kind: 'serial', pair, device }, device);
      }
      const unitId = typeof c.unitId === 'number' ? c.unitId : 1;
      const device =
        c.driver === 'renogy'
          ? new RenogySimulator({ link: pair.device, battery, unitId })
          : new EpeverSimulator({ link: pair.device, battery, unitId });
      const o = { device: c.name, link, unitId: c.unitId ?? 1, pollMs, timeoutMs: Math.min(500, pollMs) };
      const src = c.driver === 'renogy' ? new RenogySource(o) : new EpeverSource(o);
      return new SimulatedSource(src, { kind: 'serial', pair, device }, device);
    }
    case 'ina219':
    case 'ina226': {
      const bus = opts.bus ?? new SimI2cBus(c.bus ?? 1);
      const address = c.address ?? 0x40;
      const shuntOhms = c.shuntOhms ?? (c.driver === 'ina219' ? 0.1 : 0.002);
      bus.attach(
        address,
        c.driver === 'ina219' ? new Ina219Model(battery, shuntOhms) : new Ina226Model(battery, shuntOhms),
      );
      const src = new InaSource({
        device: c.name,
        chip: c.driver,
        bus,
        address,
        shuntOhms,
        maxCurrentA: c.maxCurrentA ?? (c.driver === 'ina219' ? 3.2 : 20),
        pollMs,
        chemistry: c.chemistry,
        cellsInSeries: c.cellsInSeries,
        capacityAh: c.capacityAh,
      });
      return new SimulatedSource(src, { kind: 'i2c', bus, address });
    }
    case 'max17048': {
      const bus = opts.bus ?? new SimI2cBus(c.bus ?? 1);
      const address = c.address ?? MAX17048_ADDRESS;
      bus.attach(address, new Max17048Model(battery));
      const src = new Max17048Source({ device: c.name, bus, address, pollMs });
      return new SimulatedSource(src, { kind: 'i2c', bus, address });
    }
  }
}

// Simulated Renogy Rover and EPEver Tracer controllers: Modbus RTU slaves that answer real request
// bytes from a register map computed from the BatteryModel. Faults: silence, bad CRC, busy.
import {
  encodeException,
  encodeReadResponse,
  FC_READ_HOLDING,
  FC_READ_INPUT,
  type ModbusFrame,
  ModbusRtuParser,
  withCrc,
} from '../drivers/modbus-rtu.ts';
import type { ChargeState } from '../power/reading.ts';
import type { SerialLink } from '../serial/types.ts';
import type { BatteryModel, BatterySnapshot } from './battery-model.ts';

export interface ModbusSimFaults {
  silent?: boolean;
  /** The next N answers go out with a corrupted CRC. */
  badCrc?: number;
  /** Answer every request with exception 6 (slave busy). */
  busy?: boolean;
}

export interface ModbusSimOptions {
  link: SerialLink;
  battery: BatteryModel;
  unitId?: number;
}

abstract class ModbusSlaveSim {
  readonly faults: ModbusSimFaults = {};
  requests = 0;
  protected readonly parser: ModbusRtuParser;
  protected readonly unitId: number;
  private unsub: (() => void) | undefined;

  constructor(protected readonly o: ModbusSimOptions) {
    this.unitId = o.unitId ?? 1;
    this.parser = new ModbusRtuParser('slave', (f) => void this.handle(f));
  }

  inject(f: ModbusSimFaults): void {
    Object.assign(this.faults, f);
  }

  clearFaults(): void {
    for (const k of Object.keys(this.faults)) delete (this.faults as Record<string, unknown>)[k];
  }

  async start(): Promise<void> {
    this.unsub = this.o.link.onData((c) => this.parser.push(c));
    if (!this.o.link.isOpen) await this.o.link.open();
  }

  async stop(): Promise<void> {
    this.unsub?.();
  }

  /** The answer to one request frame, or undefined for no answer (not for us, or silent). */
  answer(f: ModbusFrame): Buffer | undefined {
    if (f.unit !== this.unitId || this.faults.silent) return undefined;
    this.requests++;
    if (this.faults.busy) return encodeException(f.unit, f.fc, 6);
    if (f.kind === 'read-request') {
      const regs = this.registers(f.fc, f.address, f.count);
      return regs ? encodeReadResponse(f.unit, f.fc, regs) : encodeException(f.unit, f.fc, 2);
    }
    if (f.kind === 'write-single') {
      return this.write(f.address, f.value) ? withCrc(f.raw.subarray(0, 6)) : encodeException(f.unit, 6, 2);
    }
    return undefined;
  }

  protected abstract registers(fc: 3 | 4, address: number, count: number): number[] | undefined;
  protected abstract write(address: number, value: number): boolean;

  private async handle(f: ModbusFrame): Promise<void> {
    let out = this.answer(f);
    if (!out) return;
    if ((this.faults.badCrc ?? 0) > 0) {
      this.faults.badCrc!--;
      out = Buffer.from(out);
      out[out.length - 1] = out[out.length - 1]! ^ 0xff;
    }
    try {
      await this.o.link.write(out);
    } catch {
      // unplugged: the host will time out
    }
  }
}

const RENOGY_STATE: Record<ChargeState, number> = {
  off: 0,
  bulk: 2,
  absorption: 4,
  float: 5,
  equalize: 3,
  fault: 0,
  other: 1,
};

function signMag(c: number): number {
  const m = Math.min(127, Math.round(Math.abs(c)));
  return c < 0 ? 0x80 | m : m;
}

export class RenogySimulator extends ModbusSlaveSim {
  model = 'RNG-CTRL-RVR40';
  /** Controller temperature; the battery sensor follows the model. */
  controllerTempC = 28;
  faultBits = 0;

  statusRegisters(s: BatterySnapshot): number[] {
    const r = new Array<number>(0x23).fill(0);
    const set = (reg: number, v: number) => {
      r[reg - 0x0100] = Math.max(0, Math.min(0xffff, Math.round(v)));
    };
    const chargeA = Math.max(0, s.batteryA + s.loadA);
    set(0x0100, s.socPct);
    set(0x0101, s.batteryV * 10);
    set(0x0102, chargeA * 100);
    r[0x0103 - 0x0100] = (signMag(this.controllerTempC) << 8) | signMag(s.temperatureC);
    set(0x0104, s.loadOn ? s.batteryV * 10 : 0);
    set(0x0105, s.loadA * 100);
    set(0x0106, s.loadW);
    set(0x0107, s.solarV * 10);
    set(0x0108, s.solarV > 0 ? (s.solarW / s.solarV) * 100 : 0);
    set(0x0109, s.solarW);
    set(0x010b, (s.batteryV - 0.4) * 10);
    set(0x010c, (s.batteryV + 0.3) * 10);
    set(0x010f, s.maxPowerTodayW);
    set(0x0113, s.yieldTodayWh); // Wh, as the Rover counts it
    set(0x0115, Math.floor(s.atMs / 86_400_000) % 10000);
    const totalGen = Math.round(s.yieldTotalWh); // Wh, u32 high word first
    set(0x011c, Math.floor(totalGen / 0x10000) & 0xffff);
    set(0x011d, totalGen & 0xffff);
    r[0x0120 - 0x0100] = (s.loadOn ? 0x8000 : 0) | RENOGY_STATE[s.chargeState];
    r[0x0121 - 0x0100] = (this.faultBits >>> 16) & 0xffff;
    r[0x0122 - 0x0100] = this.faultBits & 0xffff;
    return r;
  }

  protected registers(fc: 3 | 4, address: number, count: number): number[] | undefined {
    if (fc !== FC_READ_HOLDING) return undefined;
    const end = address + count;
    if (address >= 0x000a && end <= 0x0014) {
      const info = new Array<number>(10).fill(0);
      info[0] = (24 << 8) | 40; // up to 24 V systems, 40 A rated
      const model = Buffer.alloc(16, 0x20);
      model.write(this.model, 'latin1');
      for (let i = 0; i < 8; i++) info[2 + i] = model.readUInt16BE(i * 2);
      return info.slice(address - 0x000a, end - 0x000a);
    }
    if (address >= 0x0100 && end <= 0x0123) {
      return this.statusRegisters(this.o.battery.sync()).slice(address - 0x0100, end - 0x0100);
    }
    return undefined;
  }

  protected write(address: number, value: number): boolean {
    if (address !== 0x010a || value > 1) return false;
    this.o.battery.setLoadOn(value === 1);
    return true;
  }
}

export class EpeverSimulator extends ModbusSlaveSim {
  deviceTempC = 31;

  inputRegisters(s: BatterySnapshot): Map<number, number> {
    const m = new Map<number, number>();
    const x100 = (v: number) => Math.max(0, Math.min(0xffff, Math.round(v * 100)));
    const u32lo = (reg: number, v: number) => {
      const n = Math.max(0, Math.round(v * 100));
      m.set(reg, n & 0xffff);
      m.set(reg + 1, Math.floor(n / 0x10000) & 0xffff);
    };
    const chargeA = Math.max(0, s.batteryA + s.loadA);
    m.set(0x3100, x100(s.solarV));
    m.set(0x3101, x100(s.solarV > 0 ? s.solarW / s.solarV : 0));
    u32lo(0x3102, s.solarW);
    m.set(0x3104, x100(s.batteryV));
    m.set(0x3105, x100(chargeA));
    u32lo(0x3106, chargeA * s.batteryV);
    for (const reg of [0x3108, 0x3109, 0x310a, 0x310b]) m.set(reg, 0);
    m.set(0x310c, x100(s.loadOn ? s.batteryV : 0));
    m.set(0x310d, x100(s.loadA));
    u32lo(0x310e, s.loadW);
    m.set(0x3110, Math.round(s.temperatureC * 100) & 0xffff);
    m.set(0x3111, Math.round(this.deviceTempC * 100) & 0xffff);
    m.set(0x311a, Math.round(s.socPct));
    m.set(0x311b, Math.round(s.temperatureC * 100) & 0xffff);
    const stage =
      s.chargeState === 'float' ? 1 : s.chargeState === 'off' ? 0 : s.chargeState === 'equalize' ? 3 : 2;
    m.set(0x3200, 0);
    m.set(0x3201, (stage << 2) | (stage > 0 ? 1 : 0));
    return m;
  }

  protected registers(fc: 3 | 4, address: number, count: number): number[] | undefined {
    if (fc !== FC_READ_INPUT) return undefined;
    const m = this.inputRegisters(this.o.battery.sync());
    const out: number[] = [];
    for (let a = address; a < address + count; a++) {
      const v = m.get(a);
      if (v === undefined) return undefined;
      out.push(v);
    }
    return out;
  }

  protected write(): boolean {
    return false;
  }
}

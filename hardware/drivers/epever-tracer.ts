// EPEver Tracer charge controllers over Modbus RTU: real-time data from input registers (FC 0x04),
// values ×100, 32-bit values low word first.
import { type ChargeState, round } from '../power/reading.ts';
import type { ReadingValues } from '../power/source-base.ts';
import { FC_READ_INPUT, type ModbusRtuMaster } from './modbus-rtu.ts';
import { discoveryOrder, ModbusPollSource, type ModbusSourceOptions } from './renogy-rover.ts';

export const EPEVER_BAUD = 115200;
export const REG_REALTIME = 0x3100;
export const REALTIME_COUNT = 0x12; // 0x3100 … 0x3111
export const REG_SOC = 0x311a;
export const REG_BATTERY_STATUS = 0x3200;

export interface EpeverStatus {
  pvV: number;
  pvA: number;
  pvW: number;
  batteryV: number;
  chargeA: number;
  chargeW: number;
  loadV: number;
  loadA: number;
  loadW: number;
  batteryTempC: number;
  deviceTempC: number;
  socPct: number;
  batteryStatus: number;
  chargingStatus: number;
  chargeState: ChargeState;
  batteryVoltageStatus: string;
  batteryTempStatus: string;
  running: boolean;
}

const s16 = (v: number) => (v & 0x8000 ? v - 0x10000 : v);

const VOLTAGE_STATUS = ['normal', 'over voltage', 'under voltage', 'low voltage disconnect', 'fault'];
const TEMP_STATUS = ['normal', 'over temperature', 'low temperature'];

export function epeverChargeState(chargingStatus: number): ChargeState {
  if (chargingStatus & 0x0002) return 'fault';
  switch ((chargingStatus >> 2) & 0x3) {
    case 0:
      return 'off';
    case 1:
      return 'float';
    case 2:
      return 'bulk'; // EPEver's "boost" covers bulk and absorption
    default:
      return 'equalize';
  }
}

export function decodeEpever(
  realtime: ReadonlyArray<number>,
  soc: number,
  status: ReadonlyArray<number>,
): EpeverStatus {
  const at = (reg: number) => realtime[reg - REG_REALTIME] ?? 0;
  const u32lo = (reg: number) => at(reg) + at(reg + 1) * 0x10000; // low word first
  const batteryStatus = status[0] ?? 0;
  const chargingStatus = status[1] ?? 0;
  return {
    pvV: at(0x3100) / 100,
    pvA: at(0x3101) / 100,
    pvW: u32lo(0x3102) / 100,
    batteryV: at(0x3104) / 100,
    chargeA: at(0x3105) / 100,
    chargeW: u32lo(0x3106) / 100,
    loadV: at(0x310c) / 100,
    loadA: at(0x310d) / 100,
    loadW: u32lo(0x310e) / 100,
    batteryTempC: s16(at(0x3110)) / 100,
    deviceTempC: s16(at(0x3111)) / 100,
    socPct: soc,
    batteryStatus,
    chargingStatus,
    chargeState: epeverChargeState(chargingStatus),
    batteryVoltageStatus: VOLTAGE_STATUS[batteryStatus & 0xf] ?? `unknown (${batteryStatus & 0xf})`,
    batteryTempStatus: TEMP_STATUS[(batteryStatus >> 4) & 0xf] ?? `unknown (${(batteryStatus >> 4) & 0xf})`,
    running: (chargingStatus & 1) === 1,
  };
}

export async function readEpever(master: ModbusRtuMaster, unit: number): Promise<EpeverStatus> {
  const realtime = await master.readRegisters(unit, FC_READ_INPUT, REG_REALTIME, REALTIME_COUNT);
  const [soc] = await master.readRegisters(unit, FC_READ_INPUT, REG_SOC, 1);
  const status = await master.readRegisters(unit, FC_READ_INPUT, REG_BATTERY_STATUS, 2);
  return decodeEpever(realtime, soc ?? 0, status);
}

export function epeverToReading(s: EpeverStatus): ReadingValues {
  return {
    batteryV: s.batteryV,
    batteryA: round(s.chargeA - s.loadA, 2),
    socPct: s.socPct,
    batteryTempC: s.batteryTempC,
    solarV: s.pvV,
    solarW: s.pvW,
    loadW: s.loadW,
    chargeState: s.chargeState,
    extras: {
      chargeA: s.chargeA,
      deviceTempC: s.deviceTempC,
      batteryVoltageStatus: s.batteryVoltageStatus,
      batteryTempStatus: s.batteryTempStatus,
      running: s.running,
    },
  };
}

export class EpeverSource extends ModbusPollSource {
  constructor(o: ModbusSourceOptions) {
    super(o, 'epever');
  }

  protected async read(unit: number): Promise<ReadingValues> {
    return epeverToReading(await readEpever(this.master, unit));
  }

  protected async discover(): Promise<number | undefined> {
    // 1 (the factory id) and the unit found last tried again between chunks of the sweep
    for (const u of discoveryOrder([1], this.lastFound)) {
      try {
        await this.master.readRegisters(u, FC_READ_INPUT, REG_BATTERY_STATUS, 1, 150);
        return u;
      } catch {
        // keep looking
      }
    }
    return undefined;
  }
}

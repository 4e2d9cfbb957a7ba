// Renogy Rover / Wanderer (SRNE-made) charge controllers over Modbus RTU: one bulk read of the
// 0x0100 block per poll, sign-magnitude temperatures, address discovery (1–247 and 255), load switch.
// The energy registers (0x0113/0x0114 today, 0x011C–0x011F cumulative, u32 high word first) count
// watt-hours (Renogy "ROVER MODBUS" protocol document, register table 0x0100–0x0122; SolarThing's
// RoverModbusSlaveRead divides them by 1000 for kWh): the *KWh fields are Wh / 1000.
import { KitError } from '../../core/errors.ts';
import { moduleLogger } from '../../core/logger.ts';
import { alignedDelay } from '../../core/poll-loop.ts';
import { type ChargeState, round } from '../power/reading.ts';
import { PowerSourceBase, type ReadingValues } from '../power/source-base.ts';
import { openFailure, type ReconnectingLink } from '../serial/reconnecting-link.ts';
import type { SerialLink } from '../serial/types.ts';
import { FC_READ_HOLDING, ModbusRtuMaster } from './modbus-rtu.ts';

const log = moduleLogger('hardware.renogy');

export const RENOGY_BAUD = 9600;
export const REG_SYSTEM = 0x000a;
export const REG_MODEL = 0x000c;
export const REG_STATUS = 0x0100;
/** 0x0100 … 0x0122: SOC through the fault words. */
export const STATUS_COUNT = 0x23;
export const REG_LOAD = 0x010a;

export const RENOGY_STATES: Record<number, string> = {
  0: 'charging deactivated',
  1: 'charging activated',
  2: 'mppt',
  3: 'equalizing',
  4: 'boost',
  5: 'floating',
  6: 'current limiting',
};

export const RENOGY_FAULTS: ReadonlyArray<readonly [number, string]> = [
  [30, 'charge MOS short circuit'],
  [29, 'anti-reverse MOS short'],
  [28, 'PV panel reversely connected'],
  [27, 'PV working point over voltage'],
  [26, 'PV counter current'],
  [25, 'PV input side over-voltage'],
  [24, 'PV input side short circuit'],
  [23, 'PV input overpower'],
  [22, 'ambient temperature too high'],
  [21, 'controller temperature too high'],
  [20, 'load overpower or over-current'],
  [19, 'load short circuit'],
  [18, 'battery under-voltage warning'],
  [17, 'battery over-voltage'],
  [16, 'battery over-discharge'],
];

/** Bit 7 is the sign, the rest the magnitude (not two's complement). */
export function signMagnitude8(b: number): number {
  return b & 0x80 ? -(b & 0x7f) : b & 0x7f;
}

export function renogyChargeState(code: number): ChargeState {
  switch (code) {
    case 0:
      return 'off';
    case 2:
    case 6:
      return 'bulk';
    case 3:
      return 'equalize';
    case 4:
      return 'absorption';
    case 5:
      return 'float';
    default:
      return 'other';
  }
}

export interface RenogyStatus {
  socPct: number;
  batteryV: number;
  chargeA: number;
  controllerTempC: number;
  batteryTempC: number;
  loadV: number;
  loadA: number;
  loadW: number;
  pvV: number;
  pvA: number;
  pvW: number;
  today: {
    batteryMinV: number;
    batteryMaxV: number;
    maxChargeA: number;
    maxDischargeA: number;
    maxChargeW: number;
    maxDischargeW: number;
    chargeAh: number;
    dischargeAh: number;
    generationKWh: number;
    consumptionKWh: number;
  };
  operatingDays: number;
  overDischarges: number;
  fullCharges: number;
  totalChargeAh: number;
  totalDischargeAh: number;
  totalGenerationKWh: number;
  totalConsumptionKWh: number;
  loadOn: boolean;
  stateCode: number;
  state: string;
  chargeState: ChargeState;
  faultBits: number;
  faults: string[];
}

/** Register counts are whole watt-hours; three decimals of kWh keep every count. */
export function whToKWh(wh: number): number {
  return round(wh / 1000, 3);
}

/** Decodes the registers read from 0x0100 (at least 0x21 of them; 0x23 to include the fault words). */
export function decodeRenogyStatus(r: ReadonlyArray<number>): RenogyStatus {
  if (r.length < 0x21)
    throw new KitError('BAD_REQUEST', `Renogy status needs 33+ registers, got ${r.length}`);
  const at = (reg: number) => r[reg - REG_STATUS] ?? 0;
  const u32 = (reg: number) => at(reg) * 0x10000 + at(reg + 1); // high word first
  const temps = at(0x0103);
  const stateWord = at(0x0120);
  const faultBits = r.length >= 0x23 ? u32(0x0121) : 0;
  const stateCode = stateWord & 0xff;
  return {
    socPct: at(0x0100),
    batteryV: round(at(0x0101) * 0.1, 1),
    chargeA: round(at(0x0102) * 0.01, 2),
    controllerTempC: signMagnitude8(temps >> 8),
    batteryTempC: signMagnitude8(temps & 0xff),
    loadV: round(at(0x0104) * 0.1, 1),
    loadA: round(at(0x0105) * 0.01, 2),
    loadW: at(0x0106),
    pvV: round(at(0x0107) * 0.1, 1),
    pvA: round(at(0x0108) * 0.01, 2),
    pvW: at(0x0109),
    today: {
      batteryMinV: round(at(0x010b) * 0.1, 1),
      batteryMaxV: round(at(0x010c) * 0.1, 1),
      maxChargeA: round(at(0x010d) * 0.01, 2),
      maxDischargeA: round(at(0x010e) * 0.01, 2),
      maxChargeW: at(0x010f),
      maxDischargeW: at(0x0110),
      chargeAh: at(0x0111),
      dischargeAh: at(0x0112),
      generationKWh: whToKWh(at(0x0113)),
      consumptionKWh: whToKWh(at(0x0114)),
    },
    operatingDays: at(0x0115),
    overDischarges: at(0x0116),
    fullCharges: at(0x0117),
    totalChargeAh: u32(0x0118),
    totalDischargeAh: u32(0x011a),
    totalGenerationKWh: whToKWh(u32(0x011c)),
    totalConsumptionKWh: whToKWh(u32(0x011e)),
    loadOn: (stateWord & 0x8000) !== 0,
    stateCode,
    state: RENOGY_STATES[stateCode] ?? `unknown (${stateCode})`,
    chargeState: faultBits !== 0 && stateCode === 0 ? 'fault' : renogyChargeState(stateCode),
    faultBits,
    faults: RENOGY_FAULTS.filter(([bit]) => (faultBits & (1 << bit)) !== 0).map(([, n]) => n),
  };
}

export function renogyToReading(s: RenogyStatus): ReadingValues {
  // The Rover reports charge current only; the net battery current is charge minus load.
  const batteryA = round(s.chargeA - s.loadA, 2);
  return {
    batteryV: s.batteryV,
    batteryA,
    socPct: s.socPct,
    batteryTempC: s.batteryTempC,
    solarV: s.pvV,
    solarW: s.pvW,
    loadW: s.loadW,
    chargeState: s.chargeState,
    extras: {
      state: s.state,
      controllerTempC: s.controllerTempC,
      chargeA: s.chargeA,
      loadOn: s.loadOn,
      faults: s.faults,
      today: s.today,
      totalGenerationKWh: s.totalGenerationKWh,
      operatingDays: s.operatingDays,
    },
  };
}

/** Unit ids worth trying first: the default, what some BT modules set, newer Rover 40A units. */
export const LIKELY_UNITS = [1, 16, 255];

/** Ids of the sweep probed between two tries of the likely ones. */
export const SWEEP_CHUNK = 16;

/**
 * The order of a unit id scan: the likely ids (`first` before them: the unit found last time), then
 * 1–247 in chunks of SWEEP_CHUNK, the likely ids tried again after each chunk. One answer missed by a
 * busy controller or link (a reply later than the probe's timeout) then costs one chunk, not the whole
 * sweep: 243 ids at 150 ms each are 36 s without a reading.
 */
export function discoveryOrder(likely: readonly number[] = LIKELY_UNITS, first?: number): number[] {
  const again = first === undefined ? [...likely] : [first, ...likely.filter((u) => u !== first)];
  const rest: number[] = [];
  for (let u = 1; u <= 247; u++) if (!again.includes(u)) rest.push(u);
  const order = [...again];
  for (let i = 0; i < rest.length; i += SWEEP_CHUNK) order.push(...rest.slice(i, i + SWEEP_CHUNK), ...again);
  return order;
}

export class RenogyRover {
  constructor(
    readonly master: ModbusRtuMaster,
    public unit = 1,
  ) {}

  async readStatus(): Promise<RenogyStatus> {
    return decodeRenogyStatus(
      await this.master.readRegisters(this.unit, FC_READ_HOLDING, REG_STATUS, STATUS_COUNT),
    );
  }

  async readInfo(): Promise<{ maxSystemV: number; ratedChargeA: number; model: string }> {
    const r = await this.master.readRegisters(this.unit, FC_READ_HOLDING, REG_SYSTEM, 10);
    const sys = r[0] ?? 0;
    const model = Buffer.alloc(16);
    for (let i = 0; i < 8; i++) model.writeUInt16BE(r[2 + i] ?? 0, i * 2);
    return {
      maxSystemV: sys >> 8,
      ratedChargeA: sys & 0xff,
      model: model.toString('latin1').replace(/\0/g, '').trim(),
    };
  }

  async setLoad(on: boolean): Promise<void> {
    await this.master.writeRegister(this.unit, REG_LOAD, on ? 1 : 0);
  }

  /** Probes ids 1, 16, 255 first, then 2–247 (discoveryOrder); resolves the first that answers, else undefined. */
  async discover(opts: { timeoutMs?: number; units?: number[] } = {}): Promise<number | undefined> {
    for (const u of opts.units ?? discoveryOrder()) {
      try {
        await this.master.readRegisters(u, FC_READ_HOLDING, REG_SYSTEM, 1, opts.timeoutMs ?? 150);
        this.unit = u;
        return u;
      } catch (err) {
        // A Modbus exception is still an answer: someone lives at that id.
        if ((err as KitError).code === 'HW_MODBUS_EXCEPTION') {
          this.unit = u;
          return u;
        }
        if ((err as KitError).code === 'HW_SERIAL_CLOSED') throw err;
      }
    }
    return undefined;
  }
}

export interface ModbusSourceOptions {
  device: string;
  link: SerialLink | ReconnectingLink;
  unitId?: number | 'scan';
  pollMs?: number;
  timeoutMs?: number;
  clock?: () => number;
}

/**
 * Polls a Modbus charge controller. Three poll periods without a valid answer turn it stale; a
 * closed link turns it stale at once. `read` is the device-specific part.
 */
export abstract class ModbusPollSource extends PowerSourceBase {
  protected readonly link: SerialLink | ReconnectingLink;
  protected readonly master: ModbusRtuMaster;
  protected unit: number | undefined;
  /** the unit a scan found last: probed first when the scan runs again (after a replug) */
  protected lastFound: number | undefined;
  private readonly scan: boolean;
  private readonly pollMs: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private lastOkAt = 0;
  private startedAt = 0;
  private lastError = '';
  private unsub: (() => void) | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(o: ModbusSourceOptions, driver: 'renogy' | 'epever') {
    super(o.device, driver, o.clock);
    this.link = o.link;
    this.master = new ModbusRtuMaster(o.link, { timeoutMs: o.timeoutMs ?? 500 });
    this.scan = o.unitId === 'scan';
    this.unit = o.unitId === 'scan' ? undefined : (o.unitId ?? 1);
    this.pollMs = o.pollMs ?? 1000;
  }

  protected abstract read(unit: number): Promise<ReadingValues>;
  protected abstract discover(): Promise<number | undefined>;

  async start(): Promise<void> {
    this.running = true;
    this.startedAt = this.clock();
    this.master.attach();
    const unsubs = [
      this.link.onClose((err) => this.markStale(`serial link lost: ${err?.message ?? 'closed'}`)),
    ];
    if ('onState' in this.link) {
      unsubs.push(
        this.link.onState((s) => {
          if (s.state === 'closed' && s.openFailed) this.markStale(openFailure(this.link.path, s.reason));
        }),
      );
    }
    this.unsub = () => {
      for (const u of unsubs) u();
    };
    try {
      await this.link.open();
    } catch (err) {
      this.markStale(`cannot open ${this.link.path}: ${(err as Error).message}`);
    }
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight?.catch(() => {});
    this.unsub?.();
    this.master.detach();
    await this.link.close();
  }

  /** One poll now (also what the CLI's --once uses). */
  async pollOnce(): Promise<void> {
    try {
      if (this.unit === undefined) {
        if (!this.link.isOpen) throw new KitError('HW_SERIAL_CLOSED', `${this.link.path} is not connected`);
        this.unit = await this.discover();
        if (this.unit !== undefined) this.lastFound = this.unit;
        if (this.unit === undefined)
          throw new KitError('HW_STALE', 'no Modbus unit answered on 1–247 or 255');
        log.info({ device: this.device, unit: this.unit }, 'found Modbus unit');
      }
      const values = await this.read(this.unit);
      this.lastOkAt = this.clock();
      if ('markHealthy' in this.link) this.link.markHealthy();
      values.extras = { ...values.extras, unitId: this.unit };
      this.emitValues(values);
    } catch (err) {
      this.lastError = (err as Error).message;
      // A scanned unit that stays silent for a while may have moved (a BT module re-addressed it).
      if (this.scan && this.latest()?.stale && (err as KitError).code === 'HW_STALE') this.unit = undefined;
      const since = this.lastOkAt || this.startedAt;
      if (!this.link.isOpen) {
        if (!this.latest()?.stale) this.markStale(this.lastError);
      } else if (this.clock() - since >= 3 * this.pollMs) {
        this.markStale(this.lastError);
      }
    }
  }

  private schedule(delay: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.inFlight = this.pollOnce().finally(() => {
        this.inFlight = undefined;
        this.schedule(alignedDelay(this.pollMs, this.clock()));
      });
    }, delay);
  }
}

export class RenogySource extends ModbusPollSource {
  readonly rover: RenogyRover;

  constructor(o: ModbusSourceOptions) {
    super(o, 'renogy');
    this.rover = new RenogyRover(this.master, typeof o.unitId === 'number' ? o.unitId : 1);
  }

  protected async read(unit: number): Promise<ReadingValues> {
    this.rover.unit = unit;
    return renogyToReading(await this.rover.readStatus());
  }

  protected discover(): Promise<number | undefined> {
    return this.rover.discover({ units: discoveryOrder(LIKELY_UNITS, this.lastFound) });
  }

  async setLoad(on: boolean): Promise<void> {
    if (this.unit === undefined) throw new KitError('HW_STALE', 'Renogy controller not found yet');
    this.rover.unit = this.unit;
    await this.rover.setLoad(on);
  }
}

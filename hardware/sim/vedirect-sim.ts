// A simulated Victron charger (MPPT) or battery monitor (BMV / SmartShunt) that writes real
// VE.Direct text blocks, driven by a BatteryModel, to any SerialLink: an in-process pair or the
// far end of a socat pty pair. Faults: bad checksums, interleaved HEX frames, silence, garbage.

import { pollLoop } from '../../core/poll-loop.ts';
import {
  encodeVeDirectBlock,
  encodeVeDirectHexFrame,
  type VeDirectField,
  VeDirectParser,
  veDirectHexFrameValid,
} from '../drivers/vedirect-parser.ts';
import type { ChargeState } from '../power/reading.ts';
import type { SerialLink } from '../serial/types.ts';
import type { BatteryModel, BatterySnapshot } from './battery-model.ts';

export type VeDirectSimKind = 'mppt' | 'bmv';

export interface VeDirectSimOptions {
  link: SerialLink;
  battery: BatteryModel;
  kind?: VeDirectSimKind;
  periodMs?: number;
  serial?: string;
  /**
   * MPPT only: send `FWE` (24-bit firmware version, e.g. `316FF`) in place of `FW`, as newer
   * SmartSolar units do.
   */
  fwe?: string;
  /** MPPT only: a charger with a relay sends `RELAY` ON/OFF. */
  relay?: boolean;
}

export interface VeDirectFaults {
  /** The next N blocks go out with a wrong checksum byte. */
  badChecksums?: number;
  /** Put an asynchronous HEX frame right after every checksum byte. */
  hexAfterChecksum?: boolean;
  /** Send nothing (the device stays connected but mute). */
  silent?: boolean;
  /** The next N blocks are preceded by random noise bytes. */
  garbage?: number;
  /** Send the checksum byte as `:` by tuning a field (exercises the "`:` is the checksum" rule). */
  colonChecksum?: boolean;
}

const CS_CODE: Record<ChargeState, number> = {
  off: 0,
  fault: 2,
  bulk: 3,
  absorption: 4,
  float: 5,
  equalize: 7,
  other: 252,
};

// An asynchronous HEX frame as chargers send it unasked (a register update), checksum to 0x55.
export const SAMPLE_HEX_FRAME = ':A0102000543\n';

export function mpptFields(
  s: BatterySnapshot,
  serial: string,
  extra: { fwe?: string; relay?: boolean } = {},
): VeDirectField[] {
  const mV = (v: number) => String(Math.round(v * 1000));
  return [
    ['PID', '0xA053'],
    extra.fwe === undefined ? ['FW', '159'] : ['FWE', extra.fwe],
    ['SER#', serial],
    ['V', mV(s.batteryV)],
    ['I', String(Math.round((s.batteryA + s.loadA) * 1000))],
    ['VPV', mV(s.solarV)],
    ['PPV', String(Math.round(s.solarW))],
    ['CS', String(CS_CODE[s.chargeState])],
    ['MPPT', s.solarW > 0.5 ? (s.chargeState === 'bulk' ? '2' : '1') : '0'],
    ['OR', s.solarW > 0.5 ? '0x00000000' : '0x00000001'],
    ['ERR', '0'],
    ['LOAD', s.loadOn ? 'ON' : 'OFF'],
    ...(extra.relay === undefined ? [] : [['RELAY', extra.relay ? 'ON' : 'OFF'] as VeDirectField]),
    ['IL', String(Math.round(s.loadA * 1000))],
    ['H19', String(Math.round(s.yieldTotalWh / 10))],
    ['H20', String(Math.round(s.yieldTodayWh / 10))],
    ['H21', String(Math.round(s.maxPowerTodayW))],
    ['H22', '0'],
    ['H23', '0'],
    ['HSDS', String(Math.floor(s.atMs / 86_400_000) % 365)],
  ];
}

export function bmvFields(s: BatterySnapshot, capacityAh: number): [VeDirectField[], VeDirectField[]] {
  const remainingAh = (s.socPct / 100) * capacityAh;
  const consumed = Math.round(s.consumedAh * 1000);
  const main: VeDirectField[] = [
    ['PID', '0xA389'],
    ['V', String(Math.round(s.batteryV * 1000))],
    ['T', String(Math.round(s.temperatureC))],
    ['I', String(Math.round(s.batteryA * 1000))],
    ['P', String(Math.round(s.batteryA * s.batteryV))],
    ['CE', String(consumed)],
    ['SOC', String(Math.round(s.socPct * 10))],
    ['TTG', s.batteryA >= 0 ? '-1' : String(Math.round((remainingAh / -s.batteryA) * 60))],
    ['Alarm', s.socPct < 20 ? 'ON' : 'OFF'],
    ['Relay', 'OFF'],
    ['AR', s.socPct < 20 ? '4' : '0'],
    ['BMV', 'SmartShunt 500A/50mV'],
    ['FW', '0416'],
  ];
  const history: VeDirectField[] = [
    ['H1', '-102345'],
    ['H2', String(consumed)],
    ['H3', '-80000'],
    ['H4', '12'],
    ['H5', '0'],
    ['H6', String(-Math.round(s.yieldTotalWh * 70))],
    ['H7', '11000'],
    ['H8', '14600'],
    ['H9', '3600'],
    ['H10', '0'],
    ['H11', '0'],
    ['H12', '0'],
    ['H15', '0'],
    ['H16', '0'],
    ['H17', String(Math.round(s.yieldTotalWh / 10))],
    ['H18', String(Math.round(s.yieldTotalWh / 10))],
  ];
  return [main, history];
}

export class VeDirectSimulator {
  readonly faults: VeDirectFaults = {};
  blocksSent = 0;
  private readonly o: Required<Omit<VeDirectSimOptions, 'serial' | 'fwe' | 'relay'>> &
    Pick<VeDirectSimOptions, 'fwe' | 'relay'> & { serial: string };
  private stopTimer: (() => void) | undefined;
  private unsubData: (() => void) | undefined;
  /** Reads what the host sends: HEX-protocol commands (text mode has no requests). */
  private readonly inbound = new VeDirectParser({ onHexFrame: (f) => void this.onHexCommand(f) });
  hexCommands = 0;

  constructor(o: VeDirectSimOptions) {
    this.o = { kind: 'mppt', periodMs: 1000, serial: 'HQ2242SIMUL', ...o };
  }

  inject(f: VeDirectFaults): void {
    Object.assign(this.faults, f);
  }

  clearFaults(): void {
    for (const k of Object.keys(this.faults)) delete (this.faults as Record<string, unknown>)[k];
  }

  async start(): Promise<void> {
    this.unsubData = this.o.link.onData((c) => this.inbound.push(c));
    if (!this.o.link.isOpen) await this.o.link.open();
    const loop = pollLoop(this.o.periodMs, () => void this.tick(), { aligned: true });
    this.stopTimer = () => loop.stop();
  }

  async stop(): Promise<void> {
    this.stopTimer?.();
    this.stopTimer = undefined;
    this.unsubData?.();
  }

  /** Answers a ping (`:154`) with the firmware version, as a charger does; other commands get "unknown". */
  private async onHexCommand(frame: Buffer): Promise<void> {
    if (this.faults.silent || !veDirectHexFrameValid(frame)) return;
    this.hexCommands++;
    const command = Number.parseInt(String.fromCharCode(frame[0]!), 16);
    // Ping → command 5 with the version word 0x4159 (application firmware 1.59), little-endian.
    const answer =
      command === 1 ? encodeVeDirectHexFrame(5, [0x59, 0x41]) : encodeVeDirectHexFrame(3, [command]);
    try {
      await this.o.link.write(answer);
    } catch {
      // unplugged
    }
  }

  /** The bytes of one transmission (one block, or two for a BMV), faults applied. */
  nextBytes(): Buffer {
    const s = this.o.battery.sync();
    const capacityAh = this.o.battery.capacityWh / (this.o.battery.cellsInSeries * 3.2);
    const blocks =
      this.o.kind === 'mppt'
        ? [mpptFields(s, this.o.serial, { fwe: this.o.fwe, relay: this.o.relay })]
        : bmvFields(s, capacityAh);
    const out: Buffer[] = [];
    for (const fields of blocks) {
      if ((this.faults.garbage ?? 0) > 0) {
        this.faults.garbage!--;
        out.push(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x7e, 0x0d]));
      }
      let block = encodeVeDirectBlock(this.faults.colonChecksum ? withColonChecksum(fields) : fields);
      if ((this.faults.badChecksums ?? 0) > 0) {
        this.faults.badChecksums!--;
        block = Buffer.from(block);
        block[block.length - 1] = (block[block.length - 1]! + 1) & 0xff;
      }
      out.push(block);
      if (this.faults.hexAfterChecksum) out.push(Buffer.from(SAMPLE_HEX_FRAME, 'latin1'));
      this.blocksSent++;
    }
    return Buffer.concat(out);
  }

  private async tick(): Promise<void> {
    if (this.faults.silent || !this.o.link.isOpen) return;
    try {
      await this.o.link.write(this.nextBytes());
    } catch {
      // the cable is out; the device keeps trying like the real one
    }
  }
}

/** Pads the serial number so that the checksum byte comes out as `:` (0x3A). */
function withColonChecksum(fields: VeDirectField[]): VeDirectField[] {
  for (let pad = 0; pad < 256; pad++) {
    const f = fields.map(
      ([k, v]): VeDirectField =>
        k === 'SER#' ? [k, `${v.slice(0, 8)}${pad.toString(16).padStart(2, '0')}`] : [k, v],
    );
    const b = encodeVeDirectBlock(f);
    if (b[b.length - 1] === 0x3a) return f;
  }
  return fields;
}

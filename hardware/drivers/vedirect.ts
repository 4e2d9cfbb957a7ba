// Victron VE.Direct text: field decoding with units (MPPT and BMV / SmartShunt), BMV multi-block
// merging, and the PowerSource that reads a charger or monitor over a (reconnecting) serial link.

import { pollLoop } from '../../core/poll-loop.ts';
import type { ChargeState } from '../power/reading.ts';
import { round } from '../power/reading.ts';
import { PowerSourceBase, type ReadingValues } from '../power/source-base.ts';
import { openFailure, type ReconnectingLink } from '../serial/reconnecting-link.ts';
import type { SerialLink } from '../serial/types.ts';
import { type VeDirectBlock, VeDirectParser } from './vedirect-parser.ts';

export const VEDIRECT_BAUD = 19200;

export const CS_NAMES: Record<number, string> = {
  0: 'off',
  1: 'low power',
  2: 'fault',
  3: 'bulk',
  4: 'absorption',
  5: 'float',
  6: 'storage',
  7: 'equalize (manual)',
  9: 'inverting',
  11: 'power supply',
  245: 'starting-up',
  246: 'repeated absorption',
  247: 'auto equalize / recondition',
  248: 'BatterySafe',
  252: 'external control',
};

export const ERR_NAMES: Record<number, string> = {
  0: 'no error',
  2: 'battery voltage too high',
  17: 'charger temperature too high',
  18: 'charger over current',
  19: 'charger current reversed',
  20: 'bulk time limit exceeded',
  21: 'current sensor issue',
  26: 'terminals overheated',
  28: 'converter issue',
  33: 'input voltage too high (solar panel)',
  34: 'input current too high (solar panel)',
  38: 'input shutdown (excessive battery voltage)',
  39: 'input shutdown (current flow during off mode)',
  65: 'lost communication with one of the devices',
  66: 'synchronised charging device configuration issue',
  67: 'BMS connection lost',
  68: 'network misconfigured',
  116: 'factory calibration data lost',
  117: 'invalid/incompatible firmware',
  119: 'user settings invalid',
};

/** ERR 19 and 21 show up briefly while a charger starts or stops; not worth an alarm. */
export const TRANSIENT_ERRORS = new Set([19, 21]);

export const ALARM_REASONS: ReadonlyArray<readonly [number, string]> = [
  [1, 'low voltage'],
  [2, 'high voltage'],
  [4, 'low SOC'],
  [8, 'low starter voltage'],
  [16, 'high starter voltage'],
  [32, 'low temperature'],
  [64, 'high temperature'],
  [128, 'mid voltage'],
];

export function chargeStateFromCs(cs: number): ChargeState {
  switch (cs) {
    case 0:
      return 'off';
    case 2:
      return 'fault';
    case 3:
      return 'bulk';
    case 4:
    case 246:
      return 'absorption';
    case 5:
    case 6:
      return 'float';
    case 7:
    case 247:
      return 'equalize';
    default:
      return 'other';
  }
}

export function alarmReasons(ar: number): string[] {
  return ALARM_REASONS.filter(([bit]) => (ar & bit) !== 0).map(([, name]) => name);
}

/** Typed view of a VE.Direct record; only the fields the device sent are present. */
export interface VeDirectDecoded {
  pid?: string;
  fw?: string;
  /** `FWE`, the 24-bit firmware version as sent (newer SmartSolar, Phoenix Charger, BuckBoost). */
  fwe?: string;
  /** `FWE` read out: `3.16`, or `2.08-beta-01` when its last byte is not FF. */
  firmwareVersion?: string;
  serial?: string;
  batteryV?: number;
  auxV?: number;
  midV?: number;
  batteryA?: number;
  batteryW?: number;
  consumedAh?: number;
  socPct?: number;
  timeToGoMin?: number | null;
  alarm?: boolean;
  alarmReasons?: string[];
  relay?: boolean;
  temperatureC?: number;
  panelV?: number;
  panelW?: number;
  cs?: number;
  chargeState?: ChargeState;
  chargeStateName?: string;
  mppt?: number;
  err?: number;
  errName?: string;
  offReason?: number;
  load?: boolean;
  loadA?: number;
  yieldTotalKWh?: number;
  yieldTodayKWh?: number;
  maxPowerTodayW?: number;
  yieldYesterdayKWh?: number;
  maxPowerYesterdayW?: number;
  daySequence?: number;
  history?: Record<string, number>;
}

function int(v: string | undefined): number | undefined {
  if (v === undefined || !/^-?\d+$/.test(v)) return undefined;
  return Number.parseInt(v, 10);
}

const onOff = (v: string | undefined) => (v === 'ON' ? true : v === 'OFF' ? false : undefined);

/**
 * `FWE`: up to 6 hex digits, zero padding on the left optional; the first four (after padding) are
 * the version's decimal digits, the last two `FF` for a release or the beta number (Victron
 * "VE.Direct Protocol" 3.33, field FWE: `0208FF` or `208FF` is 2.08, `020801` is 2.08-beta-01).
 * Anything else (NUL bytes, letters in the version digits, more than 6 digits) is no version.
 */
export function decodeFwe(v: string | undefined): { fwe: string; firmwareVersion: string } | undefined {
  if (v === undefined || !/^[0-9A-Fa-f]{3,6}$/.test(v)) return undefined;
  const p = v.padStart(6, '0');
  if (!/^\d{4}$/.test(p.slice(0, 4))) return undefined;
  const version = `${Number.parseInt(p.slice(0, 2), 10)}.${p.slice(2, 4)}`;
  const tag = p.slice(4).toUpperCase();
  return { fwe: v, firmwareVersion: tag === 'FF' ? version : `${version}-beta-${tag}` };
}

export function decodeVeDirect(f: ReadonlyMap<string, string>): VeDirectDecoded {
  const d: VeDirectDecoded = {};
  const set = <K extends keyof VeDirectDecoded>(k: K, v: VeDirectDecoded[K] | undefined) => {
    if (v !== undefined && !(typeof v === 'number' && Number.isNaN(v))) d[k] = v;
  };
  const scaled = (
    label: string,
    k: 'batteryV' | 'auxV' | 'midV' | 'batteryA' | 'panelV' | 'loadA' | 'consumedAh',
  ) => {
    const n = int(f.get(label));
    if (n !== undefined) d[k] = n / 1000;
  };
  set('pid', f.get('PID'));
  set('fw', f.get('FW'));
  const fwe = decodeFwe(f.get('FWE'));
  if (fwe) {
    d.fwe = fwe.fwe;
    d.firmwareVersion = fwe.firmwareVersion;
  }
  set('serial', f.get('SER#'));
  scaled('V', 'batteryV');
  scaled('VS', 'auxV');
  scaled('VM', 'midV');
  scaled('I', 'batteryA');
  scaled('VPV', 'panelV');
  scaled('IL', 'loadA');
  scaled('CE', 'consumedAh');
  set('batteryW', int(f.get('P')));
  const soc = int(f.get('SOC'));
  if (soc !== undefined) d.socPct = soc / 10;
  const ttg = int(f.get('TTG'));
  if (ttg !== undefined) d.timeToGoMin = ttg === -1 ? null : ttg;
  set('alarm', onOff(f.get('Alarm')));
  const ar = int(f.get('AR'));
  if (ar !== undefined) d.alarmReasons = alarmReasons(ar);
  // BMVs send `Relay`; SmartSolar chargers with a relay send `Relay` or `RELAY` (both seen in the field).
  set('relay', onOff(f.get('Relay')) ?? onOff(f.get('RELAY')));
  set('temperatureC', int(f.get('T')));
  set('panelW', int(f.get('PPV')));
  const cs = int(f.get('CS'));
  if (cs !== undefined) {
    d.cs = cs;
    d.chargeState = chargeStateFromCs(cs);
    d.chargeStateName = CS_NAMES[cs] ?? `unknown (${cs})`;
  }
  set('mppt', int(f.get('MPPT')));
  const err = int(f.get('ERR'));
  if (err !== undefined) {
    d.err = err;
    d.errName = ERR_NAMES[err] ?? `unknown error ${err}`;
  }
  const or = f.get('OR');
  if (or && /^0x[0-9a-fA-F]+$/.test(or)) d.offReason = Number.parseInt(or.slice(2), 16);
  set('load', onOff(f.get('LOAD')));
  const kwh = (label: string) => {
    const n = int(f.get(label));
    return n === undefined ? undefined : round(n * 0.01, 2);
  };
  set('yieldTotalKWh', kwh('H19'));
  set('yieldTodayKWh', kwh('H20'));
  set('maxPowerTodayW', int(f.get('H21')));
  set('yieldYesterdayKWh', kwh('H22'));
  set('maxPowerYesterdayW', int(f.get('H23')));
  set('daySequence', int(f.get('HSDS')));
  const history: Record<string, number> = {};
  for (let i = 1; i <= 18; i++) {
    const n = int(f.get(`H${i}`));
    if (n !== undefined) history[`H${i}`] = n;
  }
  if (Object.keys(history).length > 0) d.history = history;
  return d;
}

/** The normalized reading from a decoded record (absent fields stay absent). */
export function veDirectToReading(d: VeDirectDecoded): ReadingValues {
  const loadW =
    d.loadA !== undefined && d.batteryV !== undefined ? round(d.loadA * d.batteryV, 2) : undefined;
  const extras: Record<string, unknown> = {};
  for (const k of [
    'pid',
    'fw',
    'fwe',
    'firmwareVersion',
    'serial',
    'cs',
    'chargeStateName',
    'mppt',
    'err',
    'errName',
    'offReason',
    'load',
    'consumedAh',
    'timeToGoMin',
    'alarm',
    'alarmReasons',
    'relay',
    'auxV',
    'midV',
    'batteryW',
    'yieldTotalKWh',
    'yieldTodayKWh',
    'maxPowerTodayW',
    'yieldYesterdayKWh',
    'maxPowerYesterdayW',
    'daySequence',
    'history',
  ] as const) {
    if (d[k] !== undefined) extras[k] = d[k];
  }
  return {
    batteryV: d.batteryV,
    batteryA: d.batteryA,
    socPct: d.socPct,
    batteryTempC: d.temperatureC,
    solarV: d.panelV,
    solarW: d.panelW,
    loadW,
    chargeState: d.chargeState,
    extras,
  };
}

/**
 * Merges blocks into one record. A BMV splits its fields over blocks each with its own checksum;
 * a block that starts with PID begins a new record, so a history-only block updates the record
 * it belongs to instead of standing alone.
 */
export class VeDirectRecord {
  readonly fields = new Map<string, string>();
  blocks = 0;

  add(block: VeDirectBlock): void {
    if (block.fields[0]?.[0] === 'PID') this.blocks = 0;
    for (const [k, v] of block.fields) this.fields.set(k, v);
    this.blocks++;
  }
}

export interface VeDirectSourceOptions {
  device: string;
  /** A ReconnectingLink in production; any SerialLink works (the CLI's --once uses a plain one). */
  link: SerialLink | ReconnectingLink;
  /** How often the device sends a block (1 s for every VE.Direct product). */
  periodMs?: number;
  ignoreChecksum?: boolean;
  clock?: () => number;
}

export class VeDirectSource extends PowerSourceBase {
  readonly parser: VeDirectParser;
  readonly record = new VeDirectRecord();
  private readonly link: SerialLink | ReconnectingLink;
  private readonly periodMs: number;
  private stopWatchdog: (() => void) | undefined;
  private unsubs: Array<() => void> = [];
  private lastFrameAt = 0;
  private startedAt = 0;

  constructor(o: VeDirectSourceOptions) {
    super(o.device, 'vedirect', o.clock);
    this.link = o.link;
    this.periodMs = o.periodMs ?? 1000;
    this.parser = new VeDirectParser({
      ignoreChecksum: o.ignoreChecksum ?? false,
      onBlock: (b) => this.onBlock(b),
    });
  }

  async start(): Promise<void> {
    this.startedAt = this.clock();
    this.unsubs.push(
      this.link.onData((chunk) => this.parser.push(chunk)),
      this.link.onClose((err) => {
        this.parser.reset();
        this.markStale(`serial link lost: ${err?.message ?? 'closed'}`);
      }),
    );
    if ('onState' in this.link) {
      this.unsubs.push(
        this.link.onState((s) => {
          if (s.state === 'closed' && s.openFailed) this.markStale(openFailure(this.link.path, s.reason));
        }),
      );
    }
    // Checked every period: three periods without a valid block is stale, whatever the reason.
    const loop = pollLoop(this.periodMs, () => this.checkSilence(), { aligned: true });
    this.stopWatchdog = () => loop.stop();
    try {
      await this.link.open();
    } catch (err) {
      this.markStale(`cannot open ${this.link.path}: ${(err as Error).message}`);
    }
  }

  async stop(): Promise<void> {
    this.stopWatchdog?.();
    this.stopWatchdog = undefined;
    for (const u of this.unsubs) u();
    this.unsubs = [];
    await this.link.close();
  }

  private checkSilence(): void {
    // While the port itself is down, the link's own reason is the better one to show.
    if (!this.link.isOpen && this.latest()?.stale) return;
    const since = this.lastFrameAt || this.startedAt;
    if (this.clock() - since >= 3 * this.periodMs) {
      const { rejectedChecksum, rejectedCorrupt } = this.parser.stats;
      const bad = rejectedChecksum + rejectedCorrupt;
      this.markStale(
        `no valid VE.Direct block for ${Math.round((3 * this.periodMs) / 1000)} s${bad > 0 ? ` (${bad} rejected so far)` : ''}`,
      );
    }
  }

  private onBlock(block: VeDirectBlock): void {
    this.lastFrameAt = this.clock();
    if ('markHealthy' in this.link) this.link.markHealthy();
    this.record.add(block);
    const values = veDirectToReading(decodeVeDirect(this.record.fields));
    values.extras = { ...values.extras, blocksAccepted: this.parser.stats.accepted };
    if (this.parser.stats.rejectedChecksum > 0) {
      values.extras['blocksRejected'] =
        this.parser.stats.rejectedChecksum + this.parser.stats.rejectedCorrupt;
    }
    this.emitValues(values);
  }
}

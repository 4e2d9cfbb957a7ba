// Victron VE.Direct text protocol framing as a byte-level state machine (the shape of Victron's
// reference frame handler). Bytes, never UTF-8: a checksum byte may be anything from 0x00 to 0xFF.
//
// - The checksum covers every byte from the `\r\n` that opens a block through the checksum byte;
//   the block is good when that sum is 0 mod 256.
// - HEX-protocol frames (`:` … `\n`, sometimes ending in 0xFE) may arrive anywhere, even right after
//   the checksum byte; their bytes stay out of the checksum. A `:` that *is* the checksum byte is
//   the checksum.
// - Oversized labels, values, blocks or HEX frames mark the block corrupt; it is then rejected.

export type VeDirectField = readonly [label: string, value: string];

export interface VeDirectBlock {
  fields: VeDirectField[];
  /** Sum of the block's bytes mod 256; 0 for a good block. */
  sum: number;
  checksumOk: boolean;
  /** The bytes the checksum covered (HEX frames excluded), only with `keepRaw`. */
  raw?: Buffer;
}

export interface VeDirectParserOptions {
  /** Accept blocks whose checksum fails (some Phoenix chargers send bad ones); they are still counted. */
  ignoreChecksum?: boolean;
  onBlock?: (block: VeDirectBlock) => void;
  /** Rejected blocks, with why; for fault counters and logs. */
  onReject?: (reason: 'checksum' | 'corrupt', block: VeDirectBlock) => void;
  /** Complete HEX frames (without the `:` and terminator), for callers that speak HEX mode. */
  onHexFrame?: (frame: Buffer) => void;
  /** Attach each block's checksummed bytes (for audits and property tests; costs a copy). */
  keepRaw?: boolean;
}

export interface VeDirectParserStats {
  bytes: number;
  accepted: number;
  rejectedChecksum: number;
  rejectedCorrupt: number;
  hexFrames: number;
}

enum S {
  Idle = 0,
  RecordBegin = 1,
  Name = 2,
  Value = 3,
  Checksum = 4,
  Hex = 5,
}

const CR = 0x0d;
const LF = 0x0a;
const TAB = 0x09;
const COLON = 0x3a;
const HEX_END_ALT = 0xfe;

const MAX_LABEL = 9; // labels are ≤ 8 characters; one spare for field firmware that pads
const MAX_VALUE = 33; // values are ≤ 32 characters
const MAX_FIELDS = 64;
const MAX_HEX = 128;

export class VeDirectParser {
  readonly stats: VeDirectParserStats = {
    bytes: 0,
    accepted: 0,
    rejectedChecksum: 0,
    rejectedCorrupt: 0,
    hexFrames: 0,
  };
  private state: S = S.Idle;
  private hexReturn: S = S.Idle;
  private sum = 0;
  private corrupt = false;
  private labelStr = '';
  private labelLen = 0;
  private valueStr = '';
  private valueLen = 0;
  private readonly hex = Buffer.alloc(MAX_HEX);
  private hexLen = 0;
  private prev = 0;
  private raw: number[] = [];
  private fields: VeDirectField[] = [];
  private readonly opts: VeDirectParserOptions;

  constructor(opts: VeDirectParserOptions = {}) {
    this.opts = opts;
  }

  /** Feed any number of bytes; blocks are reported through the callbacks as they complete. */
  push(chunk: Uint8Array): void {
    this.stats.bytes += chunk.length;
    // The hot loop keeps its state in locals and writes it back once per chunk: at 19200 baud this
    // hardly matters, but the same parser replays captures and feeds the simulators' benchmarks.
    const keepRaw = this.opts.keepRaw === true;
    let state = this.state;
    let sum = this.sum;
    let prev = this.prev;
    let label = this.labelStr;
    let value = this.valueStr;
    let labelLen = this.labelLen;
    let valueLen = this.valueLen;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (state === S.Hex) {
        if (b === LF || b === HEX_END_ALT) {
          this.stats.hexFrames++;
          this.opts.onHexFrame?.(Buffer.from(this.hex.subarray(0, this.hexLen)));
          state = this.hexReturn;
        } else if (this.hexLen < MAX_HEX) {
          this.hex[this.hexLen++] = b;
        } else {
          // A runaway HEX frame means we lost sync; whatever text block was open cannot be trusted.
          this.corrupt = true;
          state = this.hexReturn;
        }
        continue;
      }
      if (b === COLON && state !== S.Checksum) {
        this.hexReturn = state;
        state = S.Hex;
        this.hexLen = 0;
        continue;
      }
      sum = (sum + b) & 0xff;
      if (keepRaw) this.raw.push(b);
      switch (state) {
        case S.Idle:
          // A block starts at its `\r\n`: whatever came before (the tail of a block we joined
          // half-way, line noise) must not count towards its checksum.
          if (b === LF) {
            sum = prev === CR ? CR + LF : LF;
            if (keepRaw) this.raw = prev === CR ? [CR, LF] : [LF];
            state = S.RecordBegin;
          }
          prev = b;
          break;
        case S.RecordBegin:
          if (b === CR || b === LF) break;
          label = String.fromCharCode(b);
          labelLen = 1;
          value = '';
          valueLen = 0;
          state = S.Name;
          break;
        case S.Name:
          if (b === TAB) {
            state = label === 'Checksum' ? S.Checksum : S.Value;
          } else if (b === CR || b === LF || labelLen >= MAX_LABEL) {
            this.corrupt = true;
            if (b === LF) state = S.RecordBegin;
          } else {
            label += String.fromCharCode(b);
            labelLen++;
          }
          break;
        case S.Value:
          if (b === LF) {
            if (this.fields.length < MAX_FIELDS) this.fields.push([label, value]);
            else this.corrupt = true;
            state = S.RecordBegin;
          } else if (b !== CR) {
            if (valueLen >= MAX_VALUE) this.corrupt = true;
            else {
              value += String.fromCharCode(b);
              valueLen++;
            }
          }
          break;
        case S.Checksum:
          this.sum = sum;
          this.finishBlock();
          sum = 0;
          prev = 0;
          state = S.Idle;
          break;
      }
    }
    this.state = state;
    this.sum = sum;
    this.prev = prev;
    this.labelStr = label;
    this.valueStr = value;
    this.labelLen = labelLen;
    this.valueLen = valueLen;
  }

  /** Forget any partial block (e.g. after the port was reopened). */
  reset(): void {
    this.state = S.Idle;
    this.sum = 0;
    this.prev = 0;
    this.raw = [];
    this.corrupt = false;
    this.labelStr = '';
    this.valueStr = '';
    this.labelLen = 0;
    this.valueLen = 0;
    this.hexLen = 0;
    this.fields = [];
  }

  private finishBlock(): void {
    const block: VeDirectBlock = { fields: this.fields, sum: this.sum, checksumOk: this.sum === 0 };
    if (this.opts.keepRaw) {
      block.raw = Buffer.from(this.raw);
      this.raw = [];
    }
    const corrupt = this.corrupt;
    this.fields = [];
    this.sum = 0;
    this.corrupt = false;
    this.prev = 0;
    this.state = S.Idle;
    if (corrupt || block.fields.length === 0) {
      this.stats.rejectedCorrupt++;
      this.opts.onReject?.('corrupt', block);
      return;
    }
    if (!block.checksumOk && !this.opts.ignoreChecksum) {
      this.stats.rejectedChecksum++;
      this.opts.onReject?.('checksum', block);
      return;
    }
    this.stats.accepted++;
    this.opts.onBlock?.(block);
  }
}

/** The checksum byte that makes `body` (from the opening `\r\n` through `Checksum\t`) sum to 0. */
export function veDirectChecksumByte(body: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < body.length; i++) s = (s + body[i]!) & 0xff;
  return (256 - s) & 0xff;
}

/** Encodes one text block exactly as a device sends it, checksum included. */
export function encodeVeDirectBlock(fields: ReadonlyArray<VeDirectField>): Buffer {
  let text = '';
  for (const [label, value] of fields) text += `\r\n${label}\t${value}`;
  text += '\r\nChecksum\t';
  const body = Buffer.from(text, 'latin1');
  return Buffer.concat([body, Buffer.of(veDirectChecksumByte(body))]);
}

/**
 * Checks a HEX-protocol frame as delivered by onHexFrame (without `:` and terminator): a command
 * nibble, then hex byte pairs, the last being a checksum so that nibble + bytes sum to 0x55.
 */
export function veDirectHexFrameValid(frame: Uint8Array): boolean {
  const text = Buffer.from(frame).toString('latin1');
  if (!/^[0-9A-Fa-f]([0-9A-Fa-f]{2})+$/.test(text)) return false;
  let sum = Number.parseInt(text[0]!, 16);
  for (let i = 1; i < text.length; i += 2) sum += Number.parseInt(text.slice(i, i + 2), 16);
  return (sum & 0xff) === 0x55;
}

/** Encodes a HEX frame: `:` + command nibble + data bytes + checksum + `\n`. */
export function encodeVeDirectHexFrame(command: number, data: ReadonlyArray<number>): Buffer {
  let sum = command & 0xf;
  for (const b of data) sum += b & 0xff;
  const check = (0x55 - sum) & 0xff;
  const hex = [...data, check].map((b) => (b & 0xff).toString(16).toUpperCase().padStart(2, '0')).join('');
  return Buffer.from(`:${(command & 0xf).toString(16).toUpperCase()}${hex}\n`, 'latin1');
}

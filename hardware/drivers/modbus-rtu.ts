// Modbus RTU framing (CRC-16/Modbus, low byte first) and a small master that talks to one serial
// link: one request in flight, answered by CRC-checked response or a timeout. Used by the Renogy
// and EPEver drivers; the simulators use the slave-side parser.
import { KitError } from '../../core/errors.ts';
import type { SerialLink } from '../serial/types.ts';

const CRC_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-16/Modbus: init 0xFFFF, reflected polynomial 0xA001. */
export function crc16modbus(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ buf[i]!) & 0xff]!;
  return crc;
}

/** Appends the CRC, low byte first. */
export function withCrc(body: Uint8Array): Buffer {
  const out = Buffer.alloc(body.length + 2);
  out.set(body);
  const crc = crc16modbus(body);
  out[body.length] = crc & 0xff;
  out[body.length + 1] = crc >>> 8;
  return out;
}

export function crcOk(frame: Uint8Array): boolean {
  if (frame.length < 4) return false;
  const crc = crc16modbus(frame, 0, frame.length - 2);
  return frame[frame.length - 2] === (crc & 0xff) && frame[frame.length - 1] === crc >>> 8;
}

export const FC_READ_HOLDING = 0x03;
export const FC_READ_INPUT = 0x04;
export const FC_WRITE_SINGLE = 0x06;

function checkUnit(unit: number): void {
  if (!Number.isInteger(unit) || unit < 0 || unit > 255)
    throw new KitError('BAD_REQUEST', `Modbus unit id must be 0–255, got ${unit}`);
}

export function encodeReadRequest(unit: number, fc: 3 | 4, address: number, count: number): Buffer {
  checkUnit(unit);
  if (!Number.isInteger(count) || count < 1 || count > 125)
    throw new KitError('BAD_REQUEST', `register count must be 1–125, got ${count}`);
  if (!Number.isInteger(address) || address < 0 || address > 0xffff)
    throw new KitError('BAD_REQUEST', `register address out of range: ${address}`);
  return withCrc(Buffer.of(unit, fc, address >> 8, address & 0xff, count >> 8, count & 0xff));
}

export function encodeWriteSingle(unit: number, address: number, value: number): Buffer {
  checkUnit(unit);
  if (!Number.isInteger(value) || value < 0 || value > 0xffff)
    throw new KitError('BAD_REQUEST', `register value out of range: ${value}`);
  return withCrc(Buffer.of(unit, FC_WRITE_SINGLE, address >> 8, address & 0xff, value >> 8, value & 0xff));
}

export function encodeReadResponse(unit: number, fc: 3 | 4, registers: ReadonlyArray<number>): Buffer {
  const body = Buffer.alloc(3 + registers.length * 2);
  body[0] = unit;
  body[1] = fc;
  body[2] = registers.length * 2;
  for (let i = 0; i < registers.length; i++) body.writeUInt16BE(registers[i]! & 0xffff, 3 + i * 2);
  return withCrc(body);
}

export function encodeException(unit: number, fc: number, code: number): Buffer {
  return withCrc(Buffer.of(unit, fc | 0x80, code));
}

export type ModbusFrame =
  | { kind: 'read-request'; unit: number; fc: 3 | 4; address: number; count: number; raw: Buffer }
  | { kind: 'write-single'; unit: number; fc: 6; address: number; value: number; raw: Buffer }
  | { kind: 'read-response'; unit: number; fc: 3 | 4; registers: number[]; raw: Buffer }
  | { kind: 'exception'; unit: number; fc: number; code: number; raw: Buffer };

export interface ModbusParserStats {
  bytes: number;
  frames: number;
  /** Bytes dropped while hunting for the next frame (noise, CRC failures). */
  skipped: number;
  crcErrors: number;
}

/**
 * Splits a byte stream into CRC-valid frames. A master parses responses, a slave requests; the
 * role decides a frame's length from its function code. A candidate with a bad CRC costs one byte
 * of resync, so a stream of noise never produces a frame whose CRC is wrong.
 */
export class ModbusRtuParser {
  readonly stats: ModbusParserStats = { bytes: 0, frames: 0, skipped: 0, crcErrors: 0 };
  private buf = Buffer.alloc(0);
  private readonly role: 'master' | 'slave';
  private readonly onFrame: (f: ModbusFrame) => void;

  constructor(role: 'master' | 'slave', onFrame: (f: ModbusFrame) => void) {
    this.role = role;
    this.onFrame = onFrame;
  }

  reset(): void {
    this.buf = Buffer.alloc(0);
  }

  push(chunk: Uint8Array): void {
    this.stats.bytes += chunk.length;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    let i = 0;
    const b = this.buf;
    while (b.length - i >= 4) {
      const len = this.frameLength(b, i);
      if (len === 0) {
        i++;
        this.stats.skipped++;
        continue;
      }
      if (b.length - i < len) break; // wait for more bytes
      const frame = b.subarray(i, i + len);
      if (!crcOk(frame)) {
        this.stats.crcErrors++;
        this.stats.skipped++;
        i++;
        continue;
      }
      const decoded = this.decode(Buffer.from(frame));
      i += len;
      this.stats.frames++;
      this.onFrame(decoded);
    }
    this.buf = i > 0 ? Buffer.from(b.subarray(i)) : b;
    // Never hold more than one maximal frame of undecidable bytes.
    if (this.buf.length > 260) {
      this.stats.skipped += this.buf.length - 260;
      this.buf = Buffer.from(this.buf.subarray(this.buf.length - 260));
    }
  }

  /** 0 when the bytes at `i` cannot start a frame of this role. */
  private frameLength(b: Buffer, i: number): number {
    const fc = b[i + 1]!;
    if (this.role === 'slave') {
      return fc === 3 || fc === 4 || fc === 6 ? 8 : 0;
    }
    if (fc & 0x80) return (fc & 0x7f) === 3 || (fc & 0x7f) === 4 || (fc & 0x7f) === 6 ? 5 : 0;
    if (fc === 3 || fc === 4) {
      const n = b[i + 2]!;
      return n > 0 && n % 2 === 0 && n <= 250 ? 5 + n : 0;
    }
    if (fc === 6) return 8;
    return 0;
  }

  private decode(f: Buffer): ModbusFrame {
    const unit = f[0]!;
    const fc = f[1]!;
    if (fc & 0x80) return { kind: 'exception', unit, fc: fc & 0x7f, code: f[2]!, raw: f };
    if (fc === 6)
      return {
        kind: 'write-single',
        unit,
        fc: 6,
        address: f.readUInt16BE(2),
        value: f.readUInt16BE(4),
        raw: f,
      };
    if (this.role === 'slave') {
      return {
        kind: 'read-request',
        unit,
        fc: fc as 3 | 4,
        address: f.readUInt16BE(2),
        count: f.readUInt16BE(4),
        raw: f,
      };
    }
    const n = f[2]! / 2;
    const registers = new Array<number>(n);
    for (let k = 0; k < n; k++) registers[k] = f.readUInt16BE(3 + 2 * k);
    return { kind: 'read-response', unit, fc: fc as 3 | 4, registers, raw: f };
  }
}

export const EXCEPTION_NAMES: Record<number, string> = {
  1: 'illegal function',
  2: 'illegal data address',
  3: 'illegal data value',
  4: 'slave device failure',
  6: 'slave device busy',
};

/** One request at a time over a serial link; a missing or malformed answer is a timeout. */
export class ModbusRtuMaster {
  private readonly link: SerialLink;
  private readonly parser: ModbusRtuParser;
  private pending:
    | {
        match: (f: ModbusFrame) => boolean;
        resolve: (f: ModbusFrame) => void;
        timer: ReturnType<typeof setTimeout>;
      }
    | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private unsub: (() => void) | undefined;
  readonly timeoutMs: number;

  constructor(link: SerialLink, opts: { timeoutMs?: number } = {}) {
    this.link = link;
    this.timeoutMs = opts.timeoutMs ?? 500;
    this.parser = new ModbusRtuParser('master', (f) => {
      const p = this.pending;
      if (p?.match(f)) {
        clearTimeout(p.timer);
        this.pending = undefined;
        p.resolve(f);
      }
    });
  }

  get stats(): ModbusParserStats {
    return this.parser.stats;
  }

  attach(): void {
    this.unsub ??= this.link.onData((c) => this.parser.push(c));
  }

  detach(): void {
    this.unsub?.();
    this.unsub = undefined;
  }

  async readRegisters(
    unit: number,
    fc: 3 | 4,
    address: number,
    count: number,
    timeoutMs = this.timeoutMs,
  ): Promise<number[]> {
    const req = encodeReadRequest(unit, fc, address, count);
    const f = await this.transact(
      req,
      (r) =>
        r.unit === unit &&
        r.fc === fc &&
        (r.kind === 'exception' || (r.kind === 'read-response' && r.registers.length === count)),
      timeoutMs,
    );
    if (f.kind === 'exception') {
      throw new KitError(
        'HW_MODBUS_EXCEPTION',
        `unit ${unit} refused FC ${fc} @0x${address.toString(16)}: ${EXCEPTION_NAMES[f.code] ?? `code ${f.code}`}`,
      );
    }
    return (f as Extract<ModbusFrame, { kind: 'read-response' }>).registers;
  }

  async writeRegister(
    unit: number,
    address: number,
    value: number,
    timeoutMs = this.timeoutMs,
  ): Promise<void> {
    const req = encodeWriteSingle(unit, address, value);
    const f = await this.transact(req, (r) => r.unit === unit && r.fc === FC_WRITE_SINGLE, timeoutMs);
    if (f.kind === 'exception') {
      throw new KitError(
        'HW_MODBUS_EXCEPTION',
        `unit ${unit} refused write @0x${address.toString(16)}: ${EXCEPTION_NAMES[f.code] ?? `code ${f.code}`}`,
      );
    }
    if (f.kind !== 'write-single' || f.address !== address || f.value !== value) {
      throw new KitError('HW_MODBUS_EXCEPTION', `unit ${unit} echoed a different write`);
    }
  }

  private transact(req: Buffer, match: (f: ModbusFrame) => boolean, timeoutMs: number): Promise<ModbusFrame> {
    const run = async (): Promise<ModbusFrame> => {
      this.attach();
      this.parser.reset();
      const answer = new Promise<ModbusFrame>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending = undefined;
          reject(
            new KitError('HW_STALE', `no valid Modbus answer from unit ${req[0]} within ${timeoutMs} ms`),
          );
        }, timeoutMs);
        this.pending = { match, resolve, timer };
      });
      try {
        await this.link.write(req);
      } catch (err) {
        if (this.pending) clearTimeout(this.pending.timer);
        this.pending = undefined;
        answer.catch(() => {});
        throw err;
      }
      return answer;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => {});
    return p;
  }
}

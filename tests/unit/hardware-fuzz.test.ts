// Property tests: random and mutated byte streams never crash the VE.Direct or Modbus parsers, and
// never yield a block whose checksum or a frame whose CRC is wrong (checked independently here).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  crc16modbus,
  encodeException,
  encodeReadRequest,
  encodeReadResponse,
  encodeWriteSingle,
  type ModbusFrame,
  ModbusRtuParser,
} from '../../hardware/drivers/modbus-rtu.ts';
import {
  encodeVeDirectBlock,
  type VeDirectBlock,
  VeDirectParser,
} from '../../hardware/drivers/vedirect-parser.ts';

const RUNS = 300;

const label = fc.stringMatching(/^[A-Z][A-Z0-9#]{0,7}$/).filter((l) => l !== 'Checksum');
const value = fc.stringMatching(/^[A-Za-z0-9 .-]{0,20}$/);
const veBlock = fc.array(fc.tuple(label, value), { minLength: 1, maxLength: 12 });
const hexFrame = fc.stringMatching(/^[0-9A-F]{1,20}$/).map((h) => Buffer.from(`:${h}\n`));

function sum(b: Uint8Array): number {
  let s = 0;
  for (const x of b) s = (s + x) & 0xff;
  return s;
}

function parseVe(bytes: Uint8Array, chunk: number) {
  const blocks: VeDirectBlock[] = [];
  const p = new VeDirectParser({ keepRaw: true, onBlock: (b) => blocks.push(b) });
  for (let i = 0; i < bytes.length; i += chunk) p.push(bytes.subarray(i, i + chunk));
  return { blocks, stats: p.stats };
}

/** A stream of valid blocks with HEX frames at some boundaries, and the fields that were sent. */
const veStream = fc
  .array(fc.tuple(veBlock, fc.option(hexFrame, { nil: undefined })), { minLength: 1, maxLength: 8 })
  .map((items) => ({
    bytes: Buffer.concat(
      items.flatMap(([fields, hex]) =>
        hex ? [encodeVeDirectBlock(fields), hex] : [encodeVeDirectBlock(fields)],
      ),
    ),
    sent: items.map(([fields]) => fields),
  }));

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), byte: fc.constant(0) }),
);

function mutate(
  bytes: Buffer,
  ms: Array<{ kind: 'flip' | 'insert' | 'delete'; at: number; byte: number }>,
): Buffer {
  const out = [...bytes];
  for (const m of ms) {
    if (out.length === 0) break;
    const at = m.at % out.length;
    if (m.kind === 'flip') out[at] = m.byte;
    else if (m.kind === 'insert') out.splice(at, 0, m.byte);
    else out.splice(at, 1);
  }
  return Buffer.from(out);
}

describe('VE.Direct parser properties', () => {
  test('random bytes: never throws, every accepted block sums to 0 over the bytes it covered', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.integer({ min: 1, max: 64 }), (bytes, chunk) => {
        const { blocks, stats } = parseVe(bytes, chunk);
        assert.equal(stats.bytes, bytes.length);
        for (const b of blocks) {
          assert.equal(sum(b.raw!), 0);
          assert.equal(b.checksumOk, true);
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('random bytes salted with protocol tokens: same guarantees', () => {
    const token = fc.oneof(
      fc
        .constantFrom('\r\n', '\t', 'Checksum\t', ':', '\n', 'V\t12800', 'PID\t0xA053')
        .map((s) => Buffer.from(s, 'latin1')),
      fc.uint8Array({ minLength: 1, maxLength: 4 }).map((u) => Buffer.from(u)),
    );
    fc.assert(
      fc.property(fc.array(token, { maxLength: 300 }), (parts) => {
        const { blocks } = parseVe(Buffer.concat(parts), 13);
        for (const b of blocks) assert.equal(sum(b.raw!), 0);
      }),
      { numRuns: RUNS },
    );
  });

  test('clean streams with HEX frames between blocks: every block comes back, in order, at any chunking', () => {
    fc.assert(
      fc.property(veStream, fc.integer({ min: 1, max: 50 }), ({ bytes, sent }, chunk) => {
        const { blocks } = parseVe(bytes, chunk);
        assert.deepEqual(
          blocks.map((b) => b.fields),
          sent,
        );
      }),
      { numRuns: RUNS },
    );
  });

  test('mutated streams: never throws, accepted blocks always checksum-correct', () => {
    fc.assert(
      fc.property(veStream, fc.array(mutation, { minLength: 1, maxLength: 6 }), ({ bytes }, ms) => {
        const { blocks } = parseVe(mutate(bytes, ms), 7);
        for (const b of blocks) assert.equal(sum(b.raw!), 0);
      }),
      { numRuns: RUNS },
    );
  });
});

const modbusFrame = fc.oneof(
  fc
    .tuple(
      fc.integer({ min: 0, max: 255 }),
      fc.constantFrom(3 as const, 4 as const),
      fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 40 }),
    )
    .map(([u, f, regs]) => encodeReadResponse(u, f, regs)),
  fc
    .tuple(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 0, max: 0xffff }),
    )
    .map(([u, a, v]) => encodeWriteSingle(u, a, v)),
  fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.constantFrom(3, 4, 6), fc.integer({ min: 1, max: 11 }))
    .map(([u, f, c]) => encodeException(u, f, c)),
);

function crcGood(raw: Buffer): boolean {
  const crc = crc16modbus(raw.subarray(0, raw.length - 2));
  return raw.readUInt16LE(raw.length - 2) === crc;
}

function parseModbus(role: 'master' | 'slave', bytes: Uint8Array, chunk: number): ModbusFrame[] {
  const frames: ModbusFrame[] = [];
  const p = new ModbusRtuParser(role, (f) => frames.push(f));
  for (let i = 0; i < bytes.length; i += chunk) p.push(bytes.subarray(i, i + chunk));
  return frames;
}

describe('Modbus RTU parser properties', () => {
  test('random bytes, both roles: never throws, every frame has a correct CRC', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 1500 }),
        fc.integer({ min: 1, max: 40 }),
        fc.boolean(),
        (bytes, chunk, master) => {
          for (const f of parseModbus(master ? 'master' : 'slave', bytes, chunk))
            assert.ok(crcGood(f.raw), f.raw.toString('hex'));
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('clean response streams come back whole, in order, at any chunking', () => {
    fc.assert(
      fc.property(
        fc.array(modbusFrame, { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 30 }),
        (frames, chunk) => {
          const got = parseModbus('master', Buffer.concat(frames), chunk);
          assert.deepEqual(
            got.map((f) => f.raw.toString('hex')),
            frames.map((f) => f.toString('hex')),
          );
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('mutated streams: never throws, never a frame with a wrong CRC', () => {
    fc.assert(
      fc.property(
        fc.array(modbusFrame, { minLength: 1, maxLength: 8 }),
        fc.array(mutation, { minLength: 1, maxLength: 6 }),
        (frames, ms) => {
          for (const f of parseModbus('master', mutate(Buffer.concat(frames), ms), 5))
            assert.ok(crcGood(f.raw));
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('requests: clean slave-side streams decode to what was encoded', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 1, max: 247 }),
            fc.constantFrom(3 as const, 4 as const),
            fc.integer({ min: 0, max: 0xff00 }),
            fc.integer({ min: 1, max: 125 }),
          ),
          {
            minLength: 1,
            maxLength: 10,
          },
        ),
        (reqs) => {
          const got = parseModbus(
            'slave',
            Buffer.concat(reqs.map(([u, f, a, c]) => encodeReadRequest(u, f, a, c))),
            3,
          );
          assert.deepEqual(
            got.map((f) => (f.kind === 'read-request' ? [f.unit, f.fc, f.address, f.count] : f.kind)),
            reqs,
          );
        },
      ),
      { numRuns: RUNS },
    );
  });
});

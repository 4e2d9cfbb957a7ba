// Hardware benchmark: parser throughput for VE.Direct and Modbus RTU against naive baselines run in
// the same process, and the CPU cost of sampling every simulated power device at 10 Hz.
//   node --import tsx bench/hardware.ts [--seconds N]   (default 60; the target is ≤ 1 % of a core)
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

process.env['POPKIT_LOG_LEVEL'] ??= 'silent';

const { getBoardProfile } = await import('../hardware/boards/index.ts');
const { encodeReadResponse, ModbusRtuParser } = await import('../hardware/drivers/modbus-rtu.ts');
const { VeDirectParser } = await import('../hardware/drivers/vedirect-parser.ts');
const { createPowerSources } = await import('../hardware/factories/power-sources.ts');
const { BatteryModel } = await import('../hardware/sim/battery-model.ts');

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '60' } } });
const seconds = Number(values.seconds);
if (!(seconds > 0)) {
  process.stderr.write('--seconds must be a positive number\n');
  process.exit(2);
}

const CHUNK = 256; // a generous USB-serial read

function chunks(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += CHUNK) out.push(buf.subarray(i, i + CHUNK));
  return out;
}

function timeIt(fn: () => number, minMs = 1500): { ms: number; rounds: number; result: number } {
  fn(); // warm-up
  let rounds = 0;
  let result = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    result = fn();
    rounds++;
  }
  return { ms: (performance.now() - t0) / rounds, rounds, result };
}

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

// --- VE.Direct -------------------------------------------------------------------------------
const fixtures = path.join(import.meta.dirname, '..', 'tests', 'fixtures', 'vedirect');
const captures = ['bluesolar_1.23.dump', 'smartsolar_1.39.dump', 'bvm702.dump'].map((f) =>
  readFileSync(path.join(fixtures, f)),
);
const veCorpus = Buffer.concat(Array.from({ length: 20 }, () => captures).flat());
const veChunks = chunks(veCorpus);

function veDirectStateMachine(): number {
  let blocks = 0;
  const p = new VeDirectParser({ onBlock: () => blocks++ });
  for (const c of veChunks) p.push(c);
  return blocks;
}

// The usual first attempt: accumulate a string, cut at "Checksum\t" + one byte, regex out HEX
// frames, sum the characters, split lines and tabs.
function veDirectNaive(): number {
  let blocks = 0;
  let buf = '';
  for (const c of veChunks) {
    buf += c.toString('latin1');
    for (;;) {
      const i = buf.indexOf('Checksum\t');
      if (i < 0 || buf.length < i + 10) break;
      let block = buf.slice(0, i + 10);
      buf = buf.slice(i + 10);
      const start = block.indexOf('\r\n');
      if (start < 0) continue;
      block = block.slice(start);
      const checksumChar = block.slice(-1);
      const body = block.slice(0, -1).replace(/:[0-9A-Fa-f]*\n/g, '') + checksumChar;
      let sum = 0;
      for (let k = 0; k < body.length; k++) sum = (sum + body.charCodeAt(k)) & 0xff;
      if (sum !== 0) continue;
      const fields: Record<string, string> = {};
      for (const line of body.split('\r\n')) {
        const t = line.indexOf('\t');
        if (t > 0) fields[line.slice(0, t)] = line.slice(t + 1);
      }
      if (Object.keys(fields).length > 0) blocks++;
    }
  }
  return blocks;
}

// --- Modbus RTU ------------------------------------------------------------------------------
const responses: Buffer[] = [];
for (let i = 0; i < 20_000; i++) {
  const regs = Array.from({ length: 35 }, (_, k) => (i * 31 + k * 7) & 0xffff);
  responses.push(encodeReadResponse(1 + (i % 3), 3, regs));
}
const mbCorpus = Buffer.concat(responses);
const mbChunks = chunks(mbCorpus);

function modbusTable(): number {
  let frames = 0;
  const p = new ModbusRtuParser('master', () => frames++);
  for (const c of mbChunks) p.push(c);
  return frames;
}

// Baseline: bit-by-bit CRC and an array that grows and is re-sliced per chunk.
function crcBitwise(bytes: number[], end: number): number {
  let crc = 0xffff;
  for (let i = 0; i < end; i++) {
    crc ^= bytes[i]!;
    for (let b = 0; b < 8; b++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

function modbusNaive(): number {
  let frames = 0;
  let buf: number[] = [];
  for (const c of mbChunks) {
    buf = buf.concat([...c]);
    while (buf.length >= 5) {
      const len = 5 + buf[2]!;
      if (buf.length < len) break;
      const frame = buf.slice(0, len);
      const crc = crcBitwise(frame, len - 2);
      if (frame[len - 2] === (crc & 0xff) && frame[len - 1] === crc >> 8) {
        frames++;
        buf = buf.slice(len);
      } else {
        buf = buf.slice(1);
      }
    }
  }
  return frames;
}

function throughput(name: string, bytes: number, fast: () => number, naive: () => number): void {
  const a = timeIt(fast);
  const b = timeIt(naive);
  if (a.result !== b.result) throw new Error(`${name}: parsers disagree (${a.result} vs ${b.result})`);
  process.stdout.write(
    `${name.padEnd(10)} ${(bytes / 1e6).toFixed(1)} MB, ${a.result} frames:  ours ${mbps(bytes, a.ms).toFixed(1)} MB/s,` +
      `  naive baseline ${mbps(bytes, b.ms).toFixed(1)} MB/s,  ratio ${(b.ms / a.ms).toFixed(2)}x\n`,
  );
}

process.stdout.write(`== parser throughput (${CHUNK}-byte chunks, same corpus for both)\n`);
throughput('VE.Direct', veCorpus.length, veDirectStateMachine, veDirectNaive);
throughput('Modbus', mbCorpus.length, modbusTable, modbusNaive);

// --- sampling cost ---------------------------------------------------------------------------
// process.cpuUsage() counts every thread, including tsx's module-loader worker and V8's helpers,
// which idle at a noisy ~0.5-1 % here; the main thread's own ticks (/proc/self/task/PID/stat,
// 10 ms resolution) isolate the event loop where drivers and simulators run.
const TICK_MS = 10;
function mainThreadMs(): number | undefined {
  const f = `/proc/self/task/${process.pid}/stat`;
  if (!existsSync(f)) return undefined;
  const st = readFileSync(f, 'utf8');
  const parts = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return (Number(parts[11]) + Number(parts[12])) * TICK_MS;
}

async function cpuOver(
  ms: number,
  body: () => Promise<() => Promise<void>>,
): Promise<{ pct: number; mainPct: number | undefined }> {
  const stop = await body();
  await new Promise((r) => setTimeout(r, 300)); // let start-up settle out of the window
  const c0 = process.cpuUsage();
  const m0 = mainThreadMs();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const c = process.cpuUsage(c0);
  const m1 = mainThreadMs();
  const wall = performance.now() - t0;
  await stop();
  return {
    pct: ((c.user + c.system) / 1000 / wall) * 100,
    mainPct: m0 === undefined || m1 === undefined ? undefined : ((m1 - m0) / wall) * 100,
  };
}

const profile = getBoardProfile('sim');
profile.powerDevices.push(
  { name: 'rover', driver: 'renogy', port: 'sim' },
  { name: 'tracer', driver: 'epever', port: 'sim' },
  { name: 'ups', driver: 'ina219', bus: 1, address: 0x42, shuntOhms: 0.01, maxCurrentA: 8 },
);
const drivers = profile.powerDevices.map((d) => d.driver).join(', ');
const baselineMs = Math.min(seconds, 10) * 1000;

process.stdout.write(
  `\n== sampling every simulated device at 10 Hz (${profile.powerDevices.length} devices: ${drivers})\n`,
);
const idle = await cpuOver(baselineMs, async () => {
  // The same process with only a 10 Hz timer: what Node costs before any device work.
  const t = setInterval(() => {}, 100);
  return async () => clearInterval(t);
});
let readings = 0;
let staleSeen = 0;
const sampled = await cpuOver(seconds * 1000, async () => {
  const battery = new BatteryModel({ socPct: 70, loadW: 20 });
  const sources = createPowerSources(profile, { sim: true, battery, pollMs: 100 });
  for (const s of sources) {
    s.onReading((r) => {
      readings++;
      if (r.stale) staleSeen++;
    });
    await s.start();
  }
  return async () => {
    for (const s of sources) await s.stop();
  };
});
const perDevice = readings / profile.powerDevices.length / seconds;
const pct = (v: number | undefined) => (v === undefined ? 'n/a' : `${v.toFixed(2)} %`);
process.stdout.write(
  `                          whole process   main thread\n` +
    `idle 10 Hz timer (${baselineMs / 1000} s)     ${pct(idle.pct).padStart(9)}     ${pct(idle.mainPct).padStart(9)}\n` +
    `sampling (${seconds} s)${' '.repeat(Math.max(0, 13 - String(seconds).length))}${pct(sampled.pct).padStart(9)}     ${pct(sampled.mainPct).padStart(9)}   of one core\n` +
    `net (sampling - idle)     ${pct(sampled.pct - idle.pct).padStart(9)}     ${pct(sampled.mainPct === undefined || idle.mainPct === undefined ? undefined : sampled.mainPct - idle.mainPct).padStart(9)}   target ≤ 1 %\n` +
    `${readings} readings (${perDevice.toFixed(1)} Hz per device), ${staleSeen} stale; simulators run in the same process and are included\n`,
);

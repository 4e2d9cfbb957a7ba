// bench/media: software encoding on this machine through the media service, with baselines measured in
// the same run: the raw GStreamer encode without our wrapper, x264 medium vs ultrafast, a Pi 4 style
// rebuild vs a live bitrate change, and a cold start vs a watchdog restart.
//   node --import tsx bench/media.ts [--seconds 10] [--only 2,3,4,5]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseMediaPlaylist } from '../core/contracts/hls-playlist.ts';
import { dataLayout } from '../core/data-dir.ts';
import { getBoardProfile } from '../hardware/boards/index.ts';
import { loadGst } from '../services/media/gst-loader.ts';
import type { LadderTop } from '../services/media/ladder.ts';
import { MediaService, type MediaSettings } from '../services/media/media-service.ts';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, only: { type: 'string', default: '1,2,3,4,5' } },
});
const only = new Set(values.only.split(','));
const seconds = Math.max(3, Number(values.seconds));
const gstLoad = loadGst();
if (!gstLoad.ok) {
  console.error(`bench/media: ${gstLoad.reason}`);
  process.exit(1);
}
const gst = gstLoad.gst;
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-bench-media-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');

function cpuNow() {
  const u = process.cpuUsage();
  return { us: u.user + u.system, at: process.hrtime.bigint() };
}
function coresSince(c: { us: number; at: bigint }) {
  const n = cpuNow();
  return (n.us - c.us) / (Number(n.at - c.at) / 1000);
}

async function waitFor<T>(
  probe: () => T | undefined,
  timeoutMs: number,
  stepMs = 10,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = probe();
    if (v !== undefined) return v;
    await sleep(stepMs);
  }
  return undefined;
}

let seq = 0;
function makeService(top: LadderTop, over: Partial<MediaSettings> = {}, runtimeBitrate = true) {
  const dataDir = path.join(tmpRoot, `run-${++seq}`);
  const board = getBoardProfile('sim');
  board.video = { ...board.video, maxWidth: 1920, maxHeight: 1080, runtimeBitrate };
  const service = new MediaService({
    gst: gstLoad as { ok: true; gst: typeof gst },
    board,
    dataDir,
    // The ladder stays on the top rung: this measures the encode, not the policy.
    settings: {
      top,
      segmentSeconds: 1,
      playlistLength: 5,
      maxRestarts: 10,
      ladder: { dropHigh: 2, cpuHigh: 2, ordersHigh: Number.POSITIVE_INFINITY },
      watchdog: { stallMs: 1000 },
      ...over,
    },
  });
  return { service, hlsDir: dataLayout(dataDir).hls, dataDir };
}

// --- 1. live encode through the service vs the raw pipeline ------------------------------------
async function throughServiceLive(top: LadderTop) {
  const { service } = makeService(top);
  service.start();
  await sleep(2000); // warm-up
  const c = cpuNow();
  await sleep(seconds * 1000);
  const cores = coresSince(c);
  const st = service.stats();
  await service.stop();
  return { fps: st.fps, cores, dropped: st.droppedFrames };
}

async function rawLive(top: LadderTop, preset = 'ultrafast') {
  const p = new gst.Pipeline(
    `videotestsrc is-live=true pattern=ball ! video/x-raw,width=${top.width},height=${top.height},framerate=${top.fps}/1` +
      ` ! clockoverlay ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=${preset}` +
      ` bitrate=${top.bitrateKbps} key-int-max=${top.fps} ! h264parse ! fakesink name=sink sync=true`,
  );
  p.play();
  await sleep(2000);
  const sink = p.findChild('sink');
  const statsOf = () => Number(/rendered=\(guint64\)(\d+)/.exec(String(sink?.['stats']))?.[1] ?? Number.NaN);
  const r0 = statsOf();
  const c = cpuNow();
  const t0 = Date.now();
  await sleep(seconds * 1000);
  const cores = coresSince(c);
  const fps = (statsOf() - r0) / ((Date.now() - t0) / 1000);
  p.stop();
  return { fps, cores };
}

/** Not live: how many frames per second the encoder can do flat out on this machine. */
async function capacity(top: LadderTop, preset: string, frames: number) {
  const p = new gst.Pipeline(
    `videotestsrc num-buffers=${frames} pattern=ball ! video/x-raw,width=${top.width},height=${top.height},framerate=${top.fps}/1` +
      ` ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=${preset} bitrate=${top.bitrateKbps}` +
      ` key-int-max=${top.fps} ! fakesink sync=false`,
  );
  let done: () => void = () => {};
  const eos = new Promise<void>((r) => {
    done = r;
  });
  p.pollBus((m) => {
    if (m.type === 'eos' || m.type === 'error') done();
  });
  const c = cpuNow();
  const t0 = process.hrtime.bigint();
  p.play();
  await eos;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const cores = coresSince(c);
  p.stop();
  return { fps: frames / s, cores };
}

/** Bytes at a constant quantizer for an IDR every `keyInt` frames: what an IDR per part costs in bits. */
async function gopCost(top: LadderTop, keyInt: number, frames: number) {
  const file = path.join(tmpRoot, `gop-${keyInt}.h264`);
  const p = new gst.Pipeline(
    `videotestsrc num-buffers=${frames} pattern=ball ! video/x-raw,width=${top.width},height=${top.height},framerate=${top.fps}/1` +
      ` ! clockoverlay time-format="%H:%M:%S" ! videoconvert ! video/x-raw,format=I420` +
      ` ! x264enc tune=zerolatency speed-preset=ultrafast pass=quant quantizer=23 key-int-max=${keyInt}` +
      ` ! h264parse ! filesink location=${file}`,
  );
  let done: () => void = () => {};
  const eos = new Promise<void>((r) => {
    done = r;
  });
  p.pollBus((m) => {
    if (m.type === 'eos' || m.type === 'error') done();
  });
  p.play();
  await eos;
  p.stop();
  return fs.statSync(file).size;
}

// --- 2. HLS latency: a segment's / part's first frame (PDT, the capture clock) to its listing ------
async function hlsLatency(top: LadderTop) {
  const { service, hlsDir } = makeService(top);
  service.start();
  const segSeen = new Map<number, { at: number; pdt: number; dur: number }>();
  const partSeen = new Map<string, number>();
  const partLag: number[] = [];
  const deadline = Date.now() + Math.max(8, seconds) * 1000;
  let first = true;
  while (Date.now() < deadline) {
    const p = readLl(hlsDir);
    const now = Date.now();
    if (p) {
      for (const s of p.segments) {
        if (!segSeen.has(s.msn)) segSeen.set(s.msn, { at: now, pdt: s.pdtMs, dur: s.durationS });
      }
      // part start = its segment's PDT + the parts before it
      const open = { pdt: p.openPdtMs ?? Number.NaN, parts: p.openParts };
      const groups = [...p.segments.map((s) => ({ pdt: s.pdtMs, parts: s.parts })), open];
      for (const g of groups) {
        let t = g.pdt;
        for (const part of g.parts) {
          if (!partSeen.has(part.uri)) {
            partSeen.set(part.uri, now);
            // the parts listed at the first look were not seen appearing
            if (!first) partLag.push(now - (t + part.durationS * 1000));
          }
          t += part.durationS * 1000;
        }
      }
      first = false;
    }
    await sleep(10);
  }
  await service.stop();
  const firstFrame: number[] = [];
  const lastFrame: number[] = [];
  const all = [...segSeen.values()].slice(1, -1); // the first includes start-up; the last may be cut
  for (const s of all) {
    firstFrame.push(s.at - s.pdt);
    lastFrame.push(s.at - (s.pdt + s.dur * 1000));
  }
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  return {
    firstFrameMs: mean(firstFrame),
    lastFrameMs: mean(lastFrame),
    segments: firstFrame.length,
    partEndToListedMs: mean(partLag),
    parts: partLag.length,
  };
}

function readLl(hlsDir: string) {
  try {
    return parseMediaPlaylist(fs.readFileSync(path.join(hlsDir, 'll.m3u8'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** Listed parts of the LL playlist with their bytes per second. */
function partRates(hlsDir: string): { uri: string; bps: number }[] {
  const p = readLl(hlsDir);
  if (!p) return [];
  const parts = [...p.segments.flatMap((s) => s.parts), ...p.openParts];
  const out: { uri: string; bps: number }[] = [];
  for (const part of parts) {
    try {
      out.push({ uri: part.uri, bps: fs.statSync(path.join(hlsDir, part.uri)).size / part.durationS });
    } catch {
      // removed meanwhile
    }
  }
  return out;
}

// --- 3. step-down: command to the first listed part at the new bitrate -----------------------------
async function stepDown(runtimeBitrate: boolean) {
  const top = { width: 320, height: 240, fps: 30, bitrateKbps: 1000 };
  const { service, hlsDir } = makeService(top, { simPattern: 'snow' }, runtimeBitrate);
  service.start();
  const before = await waitFor(() => {
    const r = partRates(hlsDir);
    return r.length >= 9 ? r.slice(3) : undefined;
  }, 20_000);
  if (!before) throw new Error('no parts');
  const avgBefore = before.reduce((a, e) => a + e.bps, 0) / before.length;
  const seen = new Set(partRates(hlsDir).map((e) => e.uri));
  await sleep(300);
  const tCmd = Date.now();
  service.handleCommand({ v: 1, cmd: 'set-step', step: 2 }); // 1000 → 350 kbit/s
  const target = (350 * 1000) / 8;
  const threshold = (avgBefore + target) / 2;
  const hit = await waitFor(
    () => partRates(hlsDir).find((e) => !seen.has(e.uri) && e.bps < threshold),
    15_000,
  );
  const ms = hit ? Date.now() - tCmd : Number.NaN;
  await service.stop();
  return ms;
}

// --- 4. restart: stall to the restarted pipeline's first listed part -------------------------------
async function coldStart(top: LadderTop) {
  const { service, hlsDir } = makeService(top);
  const t0 = Date.now();
  service.start();
  const hit = await waitFor(() => readLl(hlsDir)?.segments[0] ?? readLl(hlsDir)?.openParts[0], 15_000);
  const ms = hit ? Date.now() - t0 : Number.NaN;
  await service.stop();
  return ms;
}

async function restartAfterStall(top: LadderTop, stallMs: number) {
  const { service, hlsDir } = makeService(top, { watchdog: { stallMs } });
  service.start();
  const ready = await waitFor(() => ((readLl(hlsDir)?.segments.length ?? 0) >= 2 ? true : undefined), 15_000);
  if (!ready) throw new Error('no segments');
  const tStall = Date.now();
  service.handleCommand({ v: 1, cmd: 'sim-fault', fault: 'stall' });
  // the restarted run's first part: listed after a segment or part group marked DISCONTINUITY
  const hit = await waitFor(() => {
    const p = readLl(hlsDir);
    if (!p) return undefined;
    if (p.openDiscontinuity && p.openParts.length > 0) return true;
    return p.segments.some((s) => s.discontinuity) ? true : undefined;
  }, 20_000);
  const ms = hit ? Date.now() - tStall : Number.NaN;
  await service.stop();
  return ms;
}

const p720 = { width: 1280, height: 720, fps: 30, bitrateKbps: 2500 };
const p1080 = { width: 1920, height: 1080, fps: 30, bitrateKbps: 4000 };

console.log(
  `bench/media on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${seconds} s per live run\n`,
);

if (only.has('1')) {
  console.log(
    '1. live encode (videotestsrc + clock overlay, x264enc ultrafast zerolatency), service vs raw pipeline',
  );
  for (const [name, top] of [
    ['720p30', p720],
    ['1080p30', p1080],
  ] as const) {
    const svc = await throughServiceLive(top);
    const raw = await rawLive(top);
    console.log(
      `   ${name}: service ${f1(svc.fps)} fps, ${f2(svc.cores)} cores, ${svc.dropped} dropped | raw ${f1(raw.fps)} fps, ${f2(raw.cores)} cores | CPU ratio service/raw ${f2(svc.cores / raw.cores)}`,
    );
  }
  const capFrames = Math.max(150, seconds * 30);
  for (const [name, top] of [
    ['720p', p720],
    ['1080p', p1080],
  ] as const) {
    const fast = await capacity(top, 'ultrafast', capFrames);
    const medium = await capacity(top, 'medium', Math.round(capFrames / 3));
    console.log(
      `   ${name} flat out: ultrafast ${f1(fast.fps)} fps on ${f2(fast.cores)} cores | medium ${f1(medium.fps)} fps on ${f2(medium.cores)} cores | ultrafast/medium ${f2(fast.fps / medium.fps)}×`,
    );
  }
}
if (only.has('5')) {
  console.log(
    '\n5. the bit cost of an IDR per part (x264 ultrafast, constant quantizer 23, ball + clock, 720p30)',
  );
  const frames = Math.max(300, seconds * 30);
  const perPart = await gopCost(p720, 10, frames);
  const perSecond = await gopCost(p720, 30, frames);
  console.log(
    `   IDR every 10 frames: ${f1((perPart * 8) / (frames / 30) / 1000)} kbit/s | every 30 frames: ${f1((perSecond * 8) / (frames / 30) / 1000)} kbit/s | ratio ${f2(perPart / perSecond)}`,
  );
}
if (only.has('2')) {
  console.log('\n2. HLS latency (first frame captured, by PDT → listed in ll.m3u8), 720p30');
  const lat = await hlsLatency(p720);
  console.log(
    `   segment: first frame ${f1(lat.firstFrameMs)} ms, last frame ${f1(lat.lastFrameMs)} ms (${lat.segments} segments) | part: end → listed ${f1(lat.partEndToListedMs)} ms (${lat.parts} parts)`,
  );
}
if (only.has('3')) {
  console.log(
    '\n3. step-down (command → first listed part below the midpoint of old and new bitrate), 320x240 snow',
  );
  const live = await stepDown(true);
  const rebuild = await stepDown(false);
  console.log(
    `   live bitrate change (x264enc): ${f1(live)} ms | Pi 4 style rebuild: ${f1(rebuild)} ms | live/rebuild ${f2(live / rebuild)} (target ≤ 2000 ms)`,
  );
}
if (only.has('4')) {
  console.log('\n4. restart (stall → restarted pipeline lists a part), 720p30, watchdog stallMs 1000');
  const cold = await coldStart(p720);
  const restart = await restartAfterStall(p720, 1000);
  console.log(
    `   stall to parts again: ${f1(restart)} ms (of which 1000 ms detection) | cold start to first part: ${f1(cold)} ms | restart/cold ${f2(restart / cold)} (target ≤ 3000 ms)`,
  );
}

fs.rmSync(tmpRoot, { recursive: true, force: true });
process.exit(0);

// bench/media-ll: how far behind the capture clock a real player shows the stream, on this machine:
// the media service at 720p30 (videotestsrc), checkout's /live route, hls.js 1.x in headless Chromium.
// Latency = wall clock now − the EXT-X-PROGRAM-DATE-TIME of the frame on screen (hls.playingDate);
// media stamps PDT from the capture clock, so this is capture-to-display less the screen's own delay.
// The plain playlist (index.m3u8, no LL-HLS) is the baseline measured in the same run.
//   node --import tsx bench/media-ll.ts [--seconds 20]
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import type Hls from 'hls.js';
import { dataLayout } from '../core/data-dir.ts';
import { getBoardProfile } from '../hardware/boards/index.ts';
import { mediaRoutes } from '../services/checkout/routes/media.ts';
import { loadGst } from '../services/media/gst-loader.ts';
import { MediaService } from '../services/media/media-service.ts';
import { launchChromium } from '../tests/support/browser.ts';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '20' }, width: { type: 'string', default: '1280' } },
});
const seconds = Math.max(8, Number(values.seconds));
const width = Number(values.width);
const height = Math.round((width * 9) / 16 / 2) * 2;
const gst = loadGst();
if (!gst.ok) {
  console.error(`bench/media-ll: ${gst.reason}`);
  process.exit(1);
}
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-bench-ll-'));
const board = getBoardProfile('sim');
board.video = { ...board.video, maxWidth: 1920, maxHeight: 1080 };
const service = new MediaService({
  gst,
  board,
  dataDir,
  settings: {
    top: { width, height, fps: 30, bitrateKbps: 2500 },
    segmentSeconds: 1,
    playlistLength: 5,
    maxRestarts: 10,
    ladder: { dropHigh: 2, cpuHigh: 2, ordersHigh: Number.POSITIVE_INFINITY },
    watchdog: { stallMs: 1000 },
  },
});
const hlsJs = path.join(path.dirname(createRequire(import.meta.url).resolve('hls.js')), 'hls.min.js');
const app = Fastify();
await app.register(mediaRoutes, { hlsDir: dataLayout(dataDir).hls });
app.get('/hls.js', (_req, reply) => reply.type('text/javascript').send(fs.readFileSync(hlsJs)));
app.get('/', (_req, reply) =>
  reply
    .type('text/html')
    .send('<!doctype html><video id=v muted autoplay playsinline></video><script src=/hls.js></script>'),
);
const base = await app.listen({ port: 0, host: '127.0.0.1' });
service.start();
const browser = await launchChromium();

async function watch(playlist: string, lowLatencyMode: boolean, catchUp = 1) {
  const page = await browser.newPage();
  await page.goto(base);
  await page.evaluate(
    ({ src, ll, rate }) => {
      const w = window as unknown as { Hls: typeof Hls; hls: Hls; samples: number[] };
      w.samples = [];
      // maxLiveSyncPlaybackRate > 1 lets hls.js play slightly fast until it is back at its target latency
      const hls = new w.Hls({ lowLatencyMode: ll, maxLiveSyncPlaybackRate: rate });
      w.hls = hls;
      hls.loadSource(src);
      hls.attachMedia(document.getElementById('v') as HTMLVideoElement);
      setInterval(() => {
        const d = hls.playingDate;
        const v = document.getElementById('v') as HTMLVideoElement;
        if (d && !v.paused && v.readyState >= 3) w.samples.push(Date.now() - d.getTime());
      }, 250);
    },
    { src: `${base}/live/${playlist}`, ll: lowLatencyMode, rate: catchUp },
  );
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const out = await page.evaluate(() => {
    const w = window as unknown as { hls: Hls; samples: number[] };
    const v = document.getElementById('v') as HTMLVideoElement;
    const d = w.hls.latestLevelDetails ?? w.hls.levels?.[0]?.details;
    return {
      samples: w.samples,
      info: {
        latency: w.hls.latency,
        target: w.hls.targetLatency,
        partTarget: d?.partTarget,
        canBlock: d?.canBlockReload,
        partHoldBack: d?.partHoldBack,
        live: d?.live,
        buffered: v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : -1,
      },
    };
  });
  await page.close();
  // the first seconds are the player settling on its target: judge the second half
  const s = out.samples.slice(Math.floor(out.samples.length / 2)).sort((a, b) => a - b);
  const pick = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  if (process.env['DEBUG_LL']) console.log(playlist, out.info, out.samples.slice(-5));
  return { median: pick(0.5), p90: pick(0.9), n: s.length };
}

/**
 * Playback across restarts: while hls.js plays ll.m3u8, the ladder rebuilds the pipeline (frame rate
 * halves) and then the watchdog restarts a stalled one. Reports the longest time the picture stood
 * still (video.currentTime not advancing) around each, and whether hls.js is still playing at the end.
 */
async function acrossRestarts() {
  const page = await browser.newPage();
  await page.goto(base);
  await page.evaluate((src) => {
    const w = window as unknown as { Hls: typeof Hls; hls: Hls; still: number[]; fatal: string[] };
    w.still = [];
    w.fatal = [];
    const hls = new w.Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 });
    w.hls = hls;
    hls.on(w.Hls.Events.ERROR, (_e, d) => {
      if (d.fatal) w.fatal.push(`${d.type}:${d.details}`);
    });
    hls.loadSource(src);
    const v = document.getElementById('v') as HTMLVideoElement;
    hls.attachMedia(v);
    let last = -1;
    let since = performance.now();
    setInterval(() => {
      const now = performance.now();
      if (v.currentTime !== last) {
        if (last >= 0) w.still.push(now - since);
        last = v.currentTime;
        since = now;
      }
    }, 50);
  }, `${base}/live/ll.m3u8`);
  const longestStill = async () =>
    page.evaluate(() => {
      const w = window as unknown as { still: number[] };
      const m = Math.max(0, ...w.still);
      w.still = [];
      return m;
    });
  await new Promise((r) => setTimeout(r, 6000));
  const steady = await longestStill();
  service.handleCommand({ v: 1, cmd: 'set-step', step: 3 });
  await new Promise((r) => setTimeout(r, 6000));
  const rebuild = await longestStill();
  service.handleCommand({ v: 1, cmd: 'sim-fault', fault: 'stall' });
  await new Promise((r) => setTimeout(r, 8000));
  const restart = await longestStill();
  const end = await page.evaluate(() => {
    const w = window as unknown as { fatal: string[] };
    const v = document.getElementById('v') as HTMLVideoElement;
    return { t: v.currentTime, paused: v.paused, fatal: w.fatal };
  });
  await new Promise((r) => setTimeout(r, 1000));
  const advancing = await page.evaluate(
    (t0) => (document.getElementById('v') as HTMLVideoElement).currentTime > t0,
    end.t,
  );
  await page.close();
  service.handleCommand({ v: 1, cmd: 'set-step', step: 0 });
  return { steady, rebuild, restart, advancing, fatal: end.fatal };
}

await new Promise((r) => setTimeout(r, 3000)); // a few segments first
const ll = await watch('ll.m3u8', true);
const llCatchUp = await watch('ll.m3u8', true, 1.5);
const plain = await watch('index.m3u8', false);
console.log(
  `LL-HLS latency at ${width}x${height}p30 (capture clock → frame on screen, hls.js in Chromium, ${seconds} s each, second half)`,
);
console.log(
  `   ll.m3u8 lowLatencyMode: median ${ll.median} ms, p90 ${ll.p90} ms (${ll.n} samples; target ≤ 1500 ms)`,
);
console.log(
  `   ll.m3u8 lowLatencyMode + maxLiveSyncPlaybackRate 1.5: median ${llCatchUp.median} ms, p90 ${llCatchUp.p90} ms`,
);
console.log(`   index.m3u8 plain:       median ${plain.median} ms, p90 ${plain.p90} ms (${plain.n} samples)`);
console.log(
  `   LL/plain ${(ll.median / plain.median).toFixed(2)}, LL with catch-up/plain ${(llCatchUp.median / plain.median).toFixed(2)}`,
);
const across = await acrossRestarts();
console.log('Across restarts (hls.js on ll.m3u8): longest time the picture stood still');
console.log(
  `   steady ${Math.round(across.steady)} ms | around a ladder rebuild ${Math.round(across.rebuild)} ms | around a watchdog restart (stall detected after 1 s, then a rebuild) ${Math.round(across.restart)} ms | still playing after: ${across.advancing} | fatal errors: ${across.fatal.length ? across.fatal.join(', ') : 'none'}`,
);
await browser.close();
await service.stop();
await app.close();
fs.rmSync(dataDir, { recursive: true, force: true });
process.exit(0);

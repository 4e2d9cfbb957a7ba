// bench/player: the latency a viewer gets from the kit's stream in a real player, hls.js in headless
// Chromium (the venue screen's player script), for the plain playlist (index.m3u8) and the LL-HLS one
// (ll.m3u8, hls.js lowLatencyMode) played side by side from the same 720p30 stream in the same run, so
// the ratio LL/plain compares like with like. Latency = wall clock minus the EXT-X-PROGRAM-DATE-TIME of
// what is on screen (hls.js `playingDate`); also hls.js's distance behind the live edge, and stalls.
//   npm run bench:player                      (builds dist, runs media and checkout from it)
//   node --import tsx bench/player.ts [--seconds 30] [--warmup 8] [--width 1280 --height 720 --fps 30]
import { parseArgs } from 'node:util';
import type { Browser } from 'playwright-core';
import { loadGst } from '../services/media/gst-loader.ts';
import { launchChromium } from '../tests/support/browser.ts';
import {
  openPlayer,
  type Player,
  type PlayerStats,
  playlistText,
  startMediaKit,
  waitUntilTrue,
} from '../tests/support/hls-player.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '8' },
    width: { type: 'string', default: '1280' },
    height: { type: 'string', default: '720' },
    fps: { type: 'string', default: '30' },
    kbps: { type: 'string', default: '2500' },
  },
});
const seconds = Math.max(5, Number(values.seconds));
const warmup = Math.max(2, Number(values.warmup));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const f2 = (n: number | undefined | null) =>
  n !== undefined && n !== null && Number.isFinite(n) ? n.toFixed(2) : 'n/a';

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

interface Run {
  name: string;
  playlist: string;
  player?: Player;
  latency: number[];
  edge: number[];
  start?: PlayerStats;
  end?: PlayerStats;
  skipped?: string;
}

if (!loadGst().ok) {
  console.error('bench/player: the GStreamer binding is missing (scripts/setup.sh)');
  process.exit(1);
}

const kit = await startMediaKit({
  width: Number(values.width),
  height: Number(values.height),
  fps: Number(values.fps),
  bitrateKbps: Number(values.kbps),
});
let browser: Browser | undefined;
try {
  await waitUntilTrue(
    'three segments',
    () => (playlistText(kit.hlsDir).match(/#EXTINF/g)?.length ?? 0) >= 3,
    60_000,
  );
  browser = await launchChromium();
  const runs: Run[] = [
    { name: 'plain HLS', playlist: 'index.m3u8', latency: [], edge: [] },
    { name: 'LL-HLS', playlist: 'll.m3u8', latency: [], edge: [] },
  ];
  for (const r of runs) {
    const res = await fetch(`${kit.origin}/live/${r.playlist}`);
    if (!res.ok) {
      r.skipped = `${r.playlist} is not served (${res.status}): this build writes no such playlist`;
      continue;
    }
    r.player = await openPlayer(kit, r.playlist, { lowLatency: r.playlist === 'll.m3u8', browser });
  }
  await sleep(warmup * 1000);
  for (const r of runs) r.start = await r.player?.stats();
  const until = Date.now() + seconds * 1000;
  const steps = new Set<number>();
  while (Date.now() < until) {
    steps.add(Number(kit.mediaStatus()['ladderStep']));
    for (const r of runs) {
      if (!r.player) continue;
      const s = await r.player.stats();
      if (s.latencyS !== null) r.latency.push(s.latencyS);
      if (s.edgeLatencyS !== null) r.edge.push(s.edgeLatencyS);
    }
    await sleep(500);
  }
  for (const r of runs) r.end = await r.player?.stats();

  const cpu = kit.mediaStatus();
  console.log(
    `bench/player: ${values.width}x${values.height}@${values.fps} ${values.kbps} kbit/s, ${seconds} s measured after ${warmup} s warm-up` +
      ` (media: ${String(cpu['encoder'])}, ${String(cpu['fps'])} fps, step ${String(cpu['ladderStep'])})`,
  );
  console.log(
    '| playlist | latency p50 (s) | p90 | max | behind live edge p50 (s) | stalls | longest stall (ms) | played (s) | fatal | reloads |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of runs) {
    if (r.skipped || !r.start || !r.end) {
      console.log(`| ${r.name} | ${r.skipped ?? 'no data'} | | | | | | | | |`);
      continue;
    }
    console.log(
      `| ${r.name} | ${f2(quantile(r.latency, 0.5))} | ${f2(quantile(r.latency, 0.9))} | ${f2(Math.max(...r.latency))} | ` +
        `${f2(quantile(r.edge, 0.5))} | ${r.end.stalls - r.start.stalls} | ${r.end.maxStallMs} | ` +
        `${f2(r.end.played - r.start.played)} | ${r.end.fatal.length} | ${r.end.reloads} |`,
    );
    if (r.latency.length === 0)
      console.log(
        `  ${r.name}: no EXT-X-PROGRAM-DATE-TIME in the playlist, so no wall-clock latency (hls.js playingDate is null)`,
      );
  }
  if ([...steps].some((x) => x !== 0))
    console.log(
      `  media ran at ladder step(s) ${[...steps].sort().join(', ')}, not only the top rung: the ladder steps down ` +
        'when the whole machine is over 92 % busy (services/media/ladder.ts), so other work here moves it; ' +
        'both playlists carry the same stream, so the ratio still compares like with like',
    );
  const [plain, ll] = runs;
  const p = quantile(plain?.latency ?? [], 0.5);
  const l = quantile(ll?.latency ?? [], 0.5);
  const pe = quantile(plain?.edge ?? [], 0.5);
  const le = quantile(ll?.edge ?? [], 0.5);
  console.log(
    `ratio LL/plain: latency p50 ${Number.isFinite(p) && Number.isFinite(l) ? (l / p).toFixed(2) : 'n/a'}, ` +
      `behind the live edge p50 ${Number.isFinite(pe) && Number.isFinite(le) ? (le / pe).toFixed(2) : 'n/a'}`,
  );
} finally {
  await browser?.close();
  await kit.stop();
}

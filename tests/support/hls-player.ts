// A kit's stream in a real player: `popkit media` (sim board, real GStreamer) kept running by the kit's
// own ProcessSupervisor as `popkit up` runs it (so a `kill -9` comes back as it would there), a private
// Mosquitto for its commands, a real checkout serving /live and /screen, and headless Chromium playing
// /live/*.m3u8 with hls.js through the kit's player script (services/checkout/screen/player.js), the
// same code the venue screen runs. Used by tests/browser/media-player.test.ts and bench/player.ts.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import { localTopics } from '../../core/contracts/local-bus.ts';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { ProcessSupervisor } from '../../core/process-supervisor.ts';
import { launchChromium } from './browser.ts';
import { BIN, kitEnv, spawnCheckout, startCheckout, tempDir } from './checkout.ts';
import { type Mosquitto, mosquitto } from './hub-link.ts';
import { freePort } from './ports.ts';

export interface MediaKitOptions {
  width?: number;
  height?: number;
  fps?: number;
  bitrateKbps?: number;
  /** POPKIT_MEDIA_STALL_MS for the media process */
  stallMs?: number;
  /** more environment for the media process */
  env?: Record<string, string>;
  /** run checkout as its own `popkit checkout` process (so a restart is a real kill and start) */
  checkoutProcess?: boolean;
}

export interface MediaKit {
  origin: string;
  dataDir: string;
  hlsDir: string;
  /** publish a media command on the local bus, as kitd or the dashboard would */
  command(cmd: Record<string, unknown>): Promise<void>;
  /** media's run status (run/media.json) */
  mediaStatus(): Record<string, unknown>;
  mediaPid(): number | null;
  /** times the supervisor restarted media */
  mediaRestarts(): number;
  /** `kill -9` the media process; resolves once the supervisor started a new one */
  killMedia(): Promise<number>;
  /** `kill -9` checkout (a process) or close it (in-process); resolves once it is down */
  stopCheckout(): Promise<void>;
  /** start checkout again on the same port and data; resolves once it answers */
  startCheckoutAgain(): Promise<void>;
  stop(): Promise<void>;
}

export async function waitUntilTrue<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function startMediaKit(opts: MediaKitOptions = {}): Promise<MediaKit> {
  const dataDir = tempDir('popkit-player-');
  const broker: Mosquitto = await mosquitto();
  const topics = localTopics(`popkit-test/player-${process.pid}-${Math.random().toString(16).slice(2, 8)}`);
  // the first restart after a crash as `popkit up` does it (ProcessSupervisor's default), later ones capped
  const sup = new ProcessSupervisor(path.join(dataDir, 'logs'), { maxBackoffMs: 4000 });
  const env = kitEnv(dataDir, {
    POPKIT_LOG_LEVEL: 'info',
    POPKIT_LOCAL_BUS_URL: broker.url,
    POPKIT_LOCAL_BUS_PREFIX: topics.prefix,
    POPKIT_MEDIA_WIDTH: String(opts.width ?? 320),
    POPKIT_MEDIA_HEIGHT: String(opts.height ?? 240),
    POPKIT_MEDIA_FPS: String(opts.fps ?? 30),
    POPKIT_MEDIA_BITRATE_KBPS: String(opts.bitrateKbps ?? 500),
    POPKIT_MEDIA_STALL_MS: String(opts.stallMs ?? 1500),
    // as `popkit up` starts media (cli/commands/up.ts): GStreamer's bus polling needs the threads
    UV_THREADPOOL_SIZE: '8',
    // media as the image runs it: compiled dist/ under plain node when the suite built it this run
    // (scripts/test.sh), so a restart after kill -9 does not also pay tsx's transpiling start-up
    ...(process.env['POPKIT_RUNTIME']
      ? { POPKIT_RUNTIME: process.env['POPKIT_RUNTIME'] }
      : process.env['POPKIT_TEST_DIST_BUILT'] === '1'
        ? { POPKIT_RUNTIME: 'dist' }
        : {}),
    ...opts.env,
  });
  sup.add({ name: 'media', command: process.execPath, args: [BIN, 'media'], env, healthyAfterMs: 5000 });
  const bus = await mqtt.connectAsync(broker.url);

  // checkout in this process (light), or as its own process (a restart is then a real kill and start)
  let inProcess: Awaited<ReturnType<typeof startCheckout>> | undefined;
  let child: ChildProcess | undefined;
  let port = 0;
  const origin = () => `http://127.0.0.1:${port}`;
  const startCo = async () => {
    if (opts.checkoutProcess) {
      port ||= await freePort();
      const spawned = spawnCheckout(dataDir, port, 'warn');
      child = spawned.proc;
      await waitUntilTrue(
        'checkout to answer',
        () =>
          fetch(`${origin()}/buy/clock`).then(
            (r) => r.ok,
            () => false,
          ),
        30_000,
        100,
      ).catch((err) => {
        throw new Error(`${(err as Error).message}: ${spawned.output()}`);
      });
    } else {
      inProcess = await startCheckout({}, dataDir);
      await inProcess.app.listen({ port, host: '127.0.0.1' });
      port = (inProcess.app.server.address() as { port: number }).port;
    }
  };
  const stopCo = async () => {
    if (child) {
      const c = child;
      child = undefined;
      if (c.exitCode === null && c.signalCode === null) {
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await gone;
      }
    }
    await inProcess?.kit.close();
    inProcess = undefined;
  };
  await startCo();
  const view = () => sup.view().find((v) => v.name === 'media');

  return {
    origin: origin(),
    dataDir,
    hlsDir: path.join(dataDir, 'hls'),
    async command(cmd) {
      await bus.publishAsync(topics.mediaCmd, JSON.stringify({ v: 1, ...cmd }));
    },
    mediaStatus: () => (readRunStatus(dataDir, 'media') ?? {}) as Record<string, unknown>,
    mediaPid: () => view()?.pid ?? null,
    mediaRestarts: () => view()?.restarts ?? 0,
    async killMedia() {
      const pid = view()?.pid;
      if (!pid) throw new Error('media is not running');
      process.kill(pid, 'SIGKILL');
      return waitUntilTrue('the supervisor to start media again', () => {
        const p = view()?.pid;
        return p && p !== pid ? p : undefined;
      });
    },
    stopCheckout: stopCo,
    startCheckoutAgain: startCo,
    async stop() {
      await sup.stop(5000);
      await stopCo().catch(() => {});
      await bus.endAsync();
      await broker.stop();
    },
  };
}

/** What the page's player reports (services/checkout/screen/player.js `stats()`). */
export interface PlayerStats {
  supported: boolean;
  firstProgressAt: number | null;
  currentTime: number;
  played: number;
  stalls: number;
  stalledNow: boolean;
  maxStallMs: number;
  waiting: number;
  ended: number;
  reloads: number;
  mediaRecoveries: number;
  fatal: string[];
  /** the newest few fatal errors' reasons (hls.js's own text) */
  fatalReasons: string[];
  errors: Record<string, number>;
  discontinuities: number;
  levelsLoaded: number;
  ptsJumps: number;
  skips: number;
  skippedS: number;
  liveJumps: number;
  latencyS: number | null;
  edgeLatencyS: number | null;
  latencySamples: number[];
  playingDate: number | null;
}

export interface Player {
  browser: Browser;
  page: Page;
  stats(): Promise<PlayerStats>;
  /** record the player's latency now into its samples (bench) */
  sampleLatency(): Promise<number | null>;
  /** page errors and console errors */
  errors: string[];
  close(): Promise<void>;
}

/**
 * A bare test page on the kit's origin (fulfilled by the browser, so the kit serves nothing for
 * tests) that loads hls.js and the player script from the kit's /screen assets and plays `playlist`.
 */
export async function openPlayer(
  kit: { origin: string },
  playlist = 'index.m3u8',
  opts: { lowLatency?: boolean; browser?: Browser } = {},
): Promise<Player> {
  const browser = opts.browser ?? (await launchChromium());
  const page = await browser.newPage({ viewport: { width: 640, height: 360 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  // the asset paths come from the kit's own screen page, as a screen's browser finds them
  const screenHtml = await (await fetch(`${kit.origin}/screen`)).text();
  const scripts = [...screenHtml.matchAll(/<script src="([^"]+)"><\/script>/g)].map((m) => m[1]);
  if (scripts.length !== 2) throw new Error(`the screen page names ${scripts.length} scripts, not 2`);
  const testUrl = `${kit.origin}/__player-test`;
  await page.route(testUrl, (route) =>
    route.fulfill({
      contentType: 'text/html',
      body: `<!doctype html><body style="margin:0;background:#000">
<video id="v" muted playsinline autoplay style="width:100%"></video>
${scripts.map((s) => `<script src="${s}"></script>`).join('\n')}
<script>window.player = window.popkitPlayer.start(document.getElementById('v'), ${JSON.stringify(`/live/${playlist}`)}, ${JSON.stringify({ lowLatency: Boolean(opts.lowLatency) })});</script>
</body>`,
    }),
  );
  await page.goto(testUrl);
  type Win = { player: { stats(): PlayerStats; sampleLatency(): number | null } };
  return {
    browser,
    page,
    errors,
    stats: () => page.evaluate(() => (window as unknown as Win).player.stats()),
    sampleLatency: () => page.evaluate(() => (window as unknown as Win).player.sampleLatency()),
    async close() {
      await page.close();
      if (!opts.browser) await browser.close();
    },
  };
}

/** The playlist's text now, for failure messages. */
export function playlistText(hlsDir: string, name = 'index.m3u8'): string {
  try {
    return fs.readFileSync(path.join(hlsDir, name), 'utf8');
  } catch (err) {
    return `(${(err as Error).message})`;
  }
}

// Composition root for `popkit media`: config, board, binding, bus, service; runs until a signal
// (exit 0) or a fatal condition (exit 1, so `popkit up` / kitd restart the process).
//
// Missing GStreamer or binding is not fatal: media stays up idle, says `unavailable` with a reason in
// its status and on the bus, and exits 0 on SIGTERM. Exiting would only make the supervisor restart
// it in a loop, and the rest of the kit keeps selling either way.
import { BaseConfig, composeConfig, loadConfig, resolveDataDir } from '../../core/config.ts';
import { localTopics } from '../../core/contracts/local-bus.ts';
import { moduleLogger } from '../../core/logger.ts';
import { DiskWatch } from '../../core/priorities.ts';
import { detectBoard } from '../../hardware/boards/index.ts';
import { MediaConfig } from './config.ts';
import { type GstLoader, loadGst } from './gst-loader.ts';
import { ladderTopFor } from './ladder.ts';
import { MqttMediaBus } from './local-bus.ts';
import { MediaService } from './media-service.ts';

export const MediaProcessConfig = composeConfig(BaseConfig, MediaConfig);

export interface RunMediaOptions {
  loader?: GstLoader;
  signal?: AbortSignal;
}

export async function runMedia(
  env: NodeJS.ProcessEnv = process.env,
  opts: RunMediaOptions = {},
): Promise<number> {
  const cfg = loadConfig(MediaProcessConfig, env);
  const log = moduleLogger('media');
  const board = detectBoard(env);
  const dataDir = resolveDataDir(cfg);
  const gst = loadGst(opts.loader);
  const bus = cfg.POPKIT_LOCAL_BUS_URL
    ? new MqttMediaBus(cfg.POPKIT_LOCAL_BUS_URL, localTopics(cfg.POPKIT_LOCAL_BUS_PREFIX), log)
    : undefined;
  bus?.start();

  let fatal: string | undefined;
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const service = new MediaService({
    gst,
    board,
    dataDir,
    bus,
    log,
    disk: new DiskWatch(dataDir, cfg.POPKIT_STORE_RESERVE_MB * 1024 * 1024),
    settings: {
      top: ladderTopFor(board.video, {
        width: cfg.POPKIT_MEDIA_WIDTH,
        height: cfg.POPKIT_MEDIA_HEIGHT,
        fps: cfg.POPKIT_MEDIA_FPS,
        bitrateKbps: cfg.POPKIT_MEDIA_BITRATE_KBPS ?? Math.min(2500, board.video.maxBitrateKbps),
      }),
      segmentSeconds: cfg.POPKIT_MEDIA_SEGMENT_S,
      playlistLength: cfg.POPKIT_MEDIA_PLAYLIST_LENGTH,
      maxFiles: cfg.POPKIT_MEDIA_MAX_FILES,
      upstreamUrl: cfg.POPKIT_MEDIA_UPSTREAM_URL,
      device: cfg.POPKIT_MEDIA_DEVICE,
      simPattern: cfg.POPKIT_MEDIA_SIM_PATTERN,
      maxRestarts: cfg.POPKIT_MEDIA_MAX_RESTARTS,
      ladder: { ordersHigh: cfg.POPKIT_MEDIA_ORDERS_HIGH },
      watchdog: { stallMs: cfg.POPKIT_MEDIA_STALL_MS },
    },
    onFatal: (reason) => {
      fatal = reason;
      finish();
    },
  });

  const onSignal = () => finish();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  opts.signal?.addEventListener('abort', onSignal, { once: true });
  service.start();
  log.info(
    { board: board.id, encoder: board.video.encoder, dataDir, bus: Boolean(bus), gst: gst.ok },
    'media started; HLS at <dataDir>/hls/index.m3u8 (served as /live/index.m3u8)',
  );
  await done;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  await service.stop();
  await bus?.close();
  if (fatal) {
    log.fatal(`media giving up in this process: ${fatal}`);
    return 1;
  }
  return 0;
}
